#include "records/records.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_server.h"
#include "records/merkle.h"
#include "lib/util.h"

const char rk_records_schema[] =
    "CREATE TABLE IF NOT EXISTS records ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, exchange_id TEXT NOT NULL, side TEXT NOT NULL,"
    "  requester TEXT NOT NULL, provider TEXT NOT NULL, business TEXT NOT NULL, item TEXT NOT NULL,"
    "  operator TEXT NOT NULL, subject TEXT NOT NULL, requested_ms INTEGER NOT NULL, provided_ms INTEGER,"
    "  outcome TEXT NOT NULL, reason TEXT NOT NULL, payload_sha256 TEXT NOT NULL, leaf_hash TEXT NOT NULL,"
    "  UNIQUE (exchange_id, side, outcome));"
    "CREATE TABLE IF NOT EXISTS tree_heads ("
    "  size INTEGER PRIMARY KEY, root TEXT NOT NULL, time_ms INTEGER NOT NULL, signature TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS records_subject ON records(subject);"
    /* Kept answers are large and keyed by random ids: rows in arrival order
     * and a small unique index cost a third of a B-tree ordered by the key
     * with the bodies in it (and overflow pages moved on every split). */
    "CREATE TABLE IF NOT EXISTS answers ("
    "  id INTEGER PRIMARY KEY, key TEXT NOT NULL, side TEXT NOT NULL, request_hash TEXT NOT NULL,"
    "  status INTEGER NOT NULL, body TEXT NOT NULL, at_ms INTEGER NOT NULL, UNIQUE (key, side));";

void rk_request_hash(json_t *request, char out[65])
{
    char *text = json_dumps(request, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(text ? text : "", text ? strlen(text) : 0, md, &n, EVP_sha256(), NULL);
    rk_hex(md, n, out);
    free(text);
}

rk_rc rk_answer_get(rk_db *db, const char *key, const char *side, const char *request_hash, int *status,
                    char **body)
{
    rk_db_read_lock(db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "SELECT request_hash, status, body FROM answers WHERE key = ? AND side = ?");
    rk_rc rc = q ? RK_ERR_NOT_FOUND : RK_ERR_STORE;
    if (q) {
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, side, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) {
            if (strcmp((const char *)sqlite3_column_text(q, 0), request_hash) != 0) {
                rc = RK_ERR_CONFLICT;
            } else {
                *status = sqlite3_column_int(q, 1);
                *body = strdup((const char *)sqlite3_column_text(q, 2));
                rc = *body ? RK_OK : RK_ERR_NOMEM;
            }
        }
        sqlite3_reset(q);
    }
    rk_db_read_unlock(db);
    return rc;
}

int rk_answer_replay(rk_db *db, const char *key, const char *side, const char *request_hash, const char *id_name,
                     rk_response *resp)
{
    int status = 0;
    char *kept = NULL;
    rk_rc rc = rk_answer_get(db, key, side, request_hash, &status, &kept);
    if (rc == RK_OK)
        rk_reply_text(resp, status, kept);
    else if (rc == RK_ERR_CONFLICT)
        rk_reply_error(resp, 409, "conflict", "%s %s was used with another request", id_name, key);
    return rc == RK_OK || rc == RK_ERR_CONFLICT;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* The leaf of the records log (RFC 9162 leaf hash over the canonical JSON
 * of the record: sorted keys, compact; seq is the leaf's position). */
void rk_record_leaf(const rk_record *r, uint8_t out[32])
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:s,s:s,s:s}", "exchange_id", r->exchange_id,
                          "side", r->side, "requester", r->requester, "provider", r->provider, "business",
                          r->business, "item", r->item, "operator", r->operator_id, "subject", r->subject,
                          "requested_ms", (json_int_t)r->requested_ms, "provided_ms",
                          r->provided_ms ? json_integer(r->provided_ms) : json_null(), "outcome", r->outcome,
                          "reason", r->reason, "payload_sha256", r->payload_sha256);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    rk_merkle_leaf_hash(text ? text : "", text ? strlen(text) : 0, out);
    free(text);
    json_decref(j);
}

rk_rc rk_record_append(rk_db *db, const rk_record *r)
{
    uint8_t leaf[32];
    char leaf_hex[65];
    rk_record_leaf(r, leaf);
    rk_merkle_hex(leaf, leaf_hex);
    sqlite3_stmt *st = rk_db_sqlite_stmt(db,
        "INSERT INTO records(exchange_id, side, requester, provider, business, item, operator, subject,"
        " requested_ms, provided_ms, outcome, reason, payload_sha256, leaf_hash)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!st)
        return RK_ERR_STORE;
    bind_text(st, 14, leaf_hex);
    bind_text(st, 1, r->exchange_id);
    bind_text(st, 2, r->side);
    bind_text(st, 3, r->requester);
    bind_text(st, 4, r->provider);
    bind_text(st, 5, r->business);
    bind_text(st, 6, r->item);
    bind_text(st, 7, r->operator_id);
    bind_text(st, 8, r->subject);
    sqlite3_bind_int64(st, 9, r->requested_ms);
    if (r->provided_ms)
        sqlite3_bind_int64(st, 10, r->provided_ms);
    else
        sqlite3_bind_null(st, 10);
    bind_text(st, 11, r->outcome);
    bind_text(st, 12, r->reason);
    bind_text(st, 13, r->payload_sha256);
    rk_rc rc = rk_db_step_rc(db, sqlite3_step(st));
    sqlite3_reset(st);
    return rc;
}

rk_rc rk_answer_keep(rk_db *db, const char *key, const char *side, const char *hash, int status, const char *body)
{
    sqlite3_stmt *st = rk_db_sqlite_stmt(db,
        "INSERT INTO answers(key, side, request_hash, status, body, at_ms) VALUES (?,?,?,?,?,?)");
    if (!st)
        return RK_ERR_STORE;
    bind_text(st, 1, key);
    bind_text(st, 2, side);
    bind_text(st, 3, hash);
    sqlite3_bind_int(st, 4, status);
    bind_text(st, 5, body);
    sqlite3_bind_int64(st, 6, rk_now_ms());
    rk_rc rc = rk_db_step_rc(db, sqlite3_step(st));
    sqlite3_reset(st);
    return rc;
}

static rk_rc settle_in_tx(rk_db *db, void *arg)
{
    const rk_settlement *a = arg;
    rk_rc rc = a->record ? rk_record_append(db, a->record) : RK_OK;
    if (rc == RK_OK)
        rc = rk_answer_keep(db, a->key, a->record ? a->record->side : "answer", a->request_hash, a->status, a->body);
    if (rc == RK_OK && a->extra)
        rc = a->extra(db, a->extra_arg);
    return rc;
}

rk_rc rk_settle(rk_db *db, const rk_record *r, const char *key, const char *request_hash, int status,
                const char *body, rk_rc (*extra)(rk_db *db, void *arg), void *arg)
{
    rk_settlement s = {r, key, request_hash, body, status, extra, arg};
    return rk_db_write(db, settle_in_tx, &s);
}

rk_rc rk_settle_later(rk_db *db, struct event_base *base, const rk_settlement *s, rk_db_written_fn written,
                      void *arg)
{
    return rk_db_write_later(db, base, settle_in_tx, (void *)s, written, arg);
}

void rk_settle_reply(rk_db *db, const rk_settlement *s, rk_rc rc, const char *id_name, char **text,
                     rk_response *resp)
{
    if (rc == RK_OK) {
        rk_reply_text(resp, s->status, *text); /* the answer as kept */
        *text = NULL;
        return;
    }
    const char *side = s->record ? s->record->side : "answer";
    if (rc == RK_ERR_CONFLICT && rk_answer_replay(db, s->key, side, s->request_hash, id_name, resp))
        return;
    rk_reply_error(resp, 500, "store_error", "the answer could not be recorded; retry with the same %s", id_name);
}

void rk_record_from_row(sqlite3_stmt *q, int col, rk_record *r)
{
    memset(r, 0, sizeof *r);
#define TXT(field, i) snprintf(r->field, sizeof r->field, "%s", (const char *)sqlite3_column_text(q, col + (i)))
    TXT(exchange_id, 0);
    TXT(side, 1);
    TXT(requester, 2);
    TXT(provider, 3);
    TXT(business, 4);
    TXT(item, 5);
    TXT(operator_id, 6);
    TXT(subject, 7);
    r->requested_ms = sqlite3_column_int64(q, col + 8);
    r->provided_ms = sqlite3_column_type(q, col + 9) == SQLITE_NULL ? 0 : sqlite3_column_int64(q, col + 9);
    TXT(outcome, 10);
    TXT(reason, 11);
    TXT(payload_sha256, 12);
#undef TXT
}

static json_t *row_to_json(sqlite3_stmt *q)
{
    char req[32] = "", prov[32] = "";
    rk_format_time(sqlite3_column_int64(q, 9), req, sizeof req);
    if (sqlite3_column_type(q, 10) != SQLITE_NULL)
        rk_format_time(sqlite3_column_int64(q, 10), prov, sizeof prov);
#define COL(i) ((const char *)sqlite3_column_text(q, i))
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:s,s:s,s:s}",
                     "seq", (json_int_t)sqlite3_column_int64(q, 0), "exchange_id", COL(1), "side", COL(2),
                     "requester", COL(3), "provider", COL(4), "business", COL(5), "item", COL(6), "operator",
                     COL(7), "subject", COL(8), "requested_at", req, "provided_at", prov[0] ? prov : NULL,
                     "outcome", COL(11), "reason", COL(12), "payload_sha256", COL(13));
#undef COL
}

rk_rc rk_records_list(rk_db *db, const rk_records_query *q, json_t **out, int64_t *next_before)
{
    json_t *arr = json_array();
    if (!arr)
        return RK_ERR_NOMEM;
    *next_before = 0;
    rk_db_scan_lock(db);
    sqlite3_stmt *st = rk_db_sqlite_stmt(db,
        "SELECT seq, exchange_id, side, requester, provider, business, item, operator, subject, requested_ms,"
        " provided_ms, outcome, reason, payload_sha256 FROM records"
        " WHERE (?1 IS NULL OR exchange_id = ?1) AND (?2 IS NULL OR subject = ?2) AND (?3 = 0 OR seq < ?3)"
        " ORDER BY seq DESC LIMIT ?4");
    rk_rc rc = st ? RK_OK : RK_ERR_STORE;
    if (st) {
        bind_text(st, 1, q->exchange_id);
        bind_text(st, 2, q->subject);
        sqlite3_bind_int64(st, 3, q->before_seq);
        sqlite3_bind_int(st, 4, q->limit + 1);
        int n = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (n++ == q->limit) {
                *next_before = json_integer_value(json_object_get(json_array_get(arr, (size_t)q->limit - 1), "seq"));
                break;
            }
            json_array_append_new(arr, row_to_json(st));
        }
        sqlite3_reset(st);
    }
    rk_db_read_unlock(db);
    *out = arr;
    return rc;
}

int64_t rk_records_count(rk_db *db)
{
    rk_db_scan_lock(db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "SELECT count(*) FROM records");
    int64_t n = q && sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    if (q)
        sqlite3_reset(q);
    rk_db_read_unlock(db);
    return n;
}

void rk_records_serve(rk_db *db, const rk_request *req, rk_response *resp)
{
    char exchange_id[RK_EXCHANGE_ID_MAX + 1], person[65];
    rk_records_query q = {0};
    int fx = rk_query_param(req, "exchange_id", exchange_id, sizeof exchange_id);
    int fp = rk_query_param(req, "person", person, sizeof person);
    if (fx < 0 || fp < 0) {
        rk_reply_error(resp, 400, "invalid_field", "exchange_id and person must be within their caps");
        return;
    }
    if (rk_page_params(req, resp, &q.before_seq, &q.limit) != 0)
        return;
    q.exchange_id = fx == 1 ? exchange_id : NULL;
    q.subject = fp == 1 ? person : NULL;
    json_t *arr = NULL;
    int64_t next = 0;
    if (rk_records_list(db, &q, &arr, &next) != RK_OK) {
        json_decref(arr);
        rk_reply_error(resp, 500, "store_error", "the records could not be read");
        return;
    }
    json_t *body = json_pack("{s:o}", "records", arr);
    if (next)
        json_object_set_new(body, "next_before", json_integer((json_int_t)next));
    rk_reply_json(resp, 200, body);
}

rk_rc rk_records_find(rk_db *db, const char *exchange_id, const char *side, const char *outcome, rk_record *out)
{
    rk_db_lock(db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "SELECT " RK_RECORD_COLUMNS " FROM records WHERE exchange_id = ?1 AND side = ?2"
                                     " AND (?3 IS NULL OR outcome = ?3) ORDER BY seq LIMIT 1");
    rk_rc rc = q ? RK_ERR_NOT_FOUND : RK_ERR_STORE;
    if (q) {
        bind_text(q, 1, exchange_id);
        bind_text(q, 2, side);
        bind_text(q, 3, outcome);
        if (sqlite3_step(q) == SQLITE_ROW) {
            rk_record_from_row(q, 0, out);
            rc = RK_OK;
        }
        sqlite3_reset(q);
    }
    rk_db_unlock(db);
    return rc;
}

rk_rc rk_records_append_step(rk_db *db, const rk_record *base, const char *outcome, const char *reason, int64_t now_ms)
{
    rk_record r = *base;
    r.requested_ms = now_ms;
    r.provided_ms = 0;
    r.payload_sha256[0] = '\0';
    snprintf(r.outcome, sizeof r.outcome, "%s", outcome);
    snprintf(r.reason, sizeof r.reason, "%s", reason);
    rk_db_lock(db);
    rk_rc rc = rk_record_append(db, &r);
    rk_db_unlock(db);
    return rc == RK_ERR_CONFLICT ? RK_OK : rc;
}
