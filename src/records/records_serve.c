/* records_serve.c — the HTTP endpoints of the records: GET /v1/records; the
 * records log's inclusion proofs, consistency proofs and signed heads, read
 * from its tiles; its checkpoint and tiles as C2SP readers fetch them. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/ids.h"
#include "net/http_server.h"
#include "records/records.h"
#include "records/records_log.h"
#include "records/records_log_priv.h"
#include "records/tiles.h"

/* ---------- the records ---------- */

/* since= / until=: a UTC date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SSZ), as
 * the records show requested_at. 1 with *ms, 0 absent, -1 malformed. */
static int time_param(const rk_request *req, const char *name, int64_t *ms)
{
    char text[32];
    int got = rk_query_param(req, name, text, sizeof text);
    if (got != 1)
        return got;
    size_t n = strlen(text);
    char date[11];
    if (n < 10)
        return -1;
    memcpy(date, text, 10);
    date[10] = 0;
    struct tm tm = {0};
    if (!rk_date_valid(date) || (n != 10 && (n != 20 || text[10] != 'T' || text[19] != 'Z')))
        return -1;
    tm.tm_year = atoi(date) - 1900;
    tm.tm_mon = atoi(date + 5) - 1;
    tm.tm_mday = atoi(date + 8);
    if (n == 20) {
        int h, m, sec;
        char tail;
        if (sscanf(text + 11, "%2d:%2d:%2d%c", &h, &m, &sec, &tail) != 4 || tail != 'Z' || h > 23 || m > 59 ||
            sec > 59 || h < 0 || m < 0 || sec < 0)
            return -1;
        tm.tm_hour = h;
        tm.tm_min = m;
        tm.tm_sec = sec;
    }
    *ms = (int64_t)timegm(&tm) * 1000;
    return 1;
}

void rk_records_serve(rk_db *db, const rk_request *req, rk_response *resp)
{
    char exchange_id[RK_EXCHANGE_ID_MAX + 1], person[65], agency[RK_AGENCY_FIELD_MAX + 1], outcome[32];
    rk_records_query q = {0};
    int fx = rk_query_param(req, "exchange_id", exchange_id, sizeof exchange_id);
    int fp = rk_query_param(req, "person", person, sizeof person);
    int fa = rk_query_param(req, "agency", agency, sizeof agency);
    int fo = rk_query_param(req, "outcome", outcome, sizeof outcome);
    int fs = time_param(req, "since", &q.since_ms), fu = time_param(req, "until", &q.until_ms);
    if (fx < 0 || fp < 0 || fa < 0 || fo < 0) {
        rk_reply_error(resp, 400, "invalid_field", "exchange_id, person, agency and outcome must be within their caps");
        return;
    }
    if (fs < 0 || fu < 0 || (fs == 1 && fu == 1 && q.until_ms <= q.since_ms)) {
        rk_reply_error(resp, 400, "invalid_field",
                       "since and until are UTC dates (YYYY-MM-DD) or times (YYYY-MM-DDTHH:MM:SSZ), since before until");
        return;
    }
    if (rk_page_params(req, resp, &q.before_seq, &q.limit) != 0)
        return;
    q.exchange_id = fx == 1 ? exchange_id : NULL;
    q.subject = fp == 1 ? person : NULL;
    q.agency = fa == 1 ? agency : NULL;
    q.outcome = fo == 1 ? outcome : NULL;
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

/* ---------- the records log: proofs and heads ---------- */

typedef struct head_json_args {
    const char *node_id;
    uint64_t size;
    json_t *head;
} head_json_args;

static rk_rc head_json_fn(rk_db *db, void *arg)
{
    head_json_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT size, root, time_ms, signature, checkpoint, signer, cosignatures"
                                " FROM tree_heads WHERE size = ?");
    rk_bind_int(q, 1, (int64_t)a->size);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK) {
        /* the checkpoint with the witnesses' cosignatures gathered so far, as GET /v1/checkpoint serves it */
        const char *note = rk_col_text(q, 4), *signer = rk_col_text(q, 5), *cosigs = rk_col_text(q, 6);
        char *full = NULL;
        if (note && asprintf(&full, "%s%s", note, cosigs ? cosigs : "") < 0)
            return RK_ERR_NOMEM;
        a->head = json_pack("{s:s,s:I,s:s,s:I,s:s,s:o}", "node", signer ? signer : a->node_id, "size",
                            (json_int_t)rk_col_int(q, 0), "root", rk_col_text(q, 1), "time_ms",
                            (json_int_t)rk_col_int(q, 2), "signature", rk_col_text(q, 3), "checkpoint",
                            full ? json_string(full) : json_null());
        free(full);
    }
    return rc;
}

/* The signed head of exactly this size, as JSON; NULL if none. */
static json_t *head_json(rk_records_log *log, uint64_t size)
{
    head_json_args a = {rk_records_log_node_id(log), size, NULL};
    rk_db_read(rk_records_log_db(log), head_json_fn, &a);
    return a.head;
}

static json_t *hashes_json(const rk_hash *h, size_t n)
{
    json_t *arr = json_array();
    char hex[65];
    for (size_t i = 0; i < n; i++) {
        rk_merkle_hex(h[i], hex);
        json_array_append_new(arr, json_string(hex));
    }
    return arr;
}

typedef struct leaf_args {
    const char *exchange_id, *side;
    uint64_t *index;
} leaf_args;

static rk_rc find_leaf_fn(rk_db *db, void *arg)
{
    leaf_args *a = arg;
    /* seq counts from 1 without gaps (append-only), so the leaf index is seq - 1 */
    rk_stmt *q = rk_db_stmt(db, "SELECT seq - 1 FROM records WHERE exchange_id = ?"
                                " AND (CAST(? AS TEXT) IS NULL OR side = ?) ORDER BY seq LIMIT 1");
    rk_bind_text(q, 1, a->exchange_id);
    rk_bind_text(q, 2, a->side);
    rk_bind_text(q, 3, a->side);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        *a->index = (uint64_t)rk_col_int(q, 0);
    return rc;
}

/* Position (0-based) of the record of an exchange. */
static rk_rc find_leaf(rk_db *db, const char *exchange_id, const char *side, uint64_t *index)
{
    leaf_args a = {exchange_id, side, index};
    return rk_db_read(db, find_leaf_fn, &a);
}

/* A number parameter: 1 when present and in [0, max], 0 when absent, -1 when bad. */
static int u64_param(const rk_request *req, const char *name, uint64_t max, uint64_t *out)
{
    char text[24], *end;
    int got = rk_query_param(req, name, text, sizeof text);
    if (got != 1)
        return got;
    if (text[0] < '0' || text[0] > '9')
        return -1;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end || v > max)
        return -1;
    *out = v;
    return 1;
}

/* The leaf at index proved in the tree of `size` leaves from the tiles; the
 * answer names the head and checkpoint it proves against. */
static void reply_inclusion(rk_records_log *log, rk_response *resp, const char *exchange_id, uint64_t index,
                            uint64_t size, json_t *head)
{
    rk_tile_reader r;
    rk_tile_reader_init(&r, rk_records_log_db(log), size);
    rk_tile_reader_share(&r, rk_records_log_tile_cache(log));
    rk_merkle_source src = rk_tile_reader_source(&r);
    rk_hash leaf, *path = NULL;
    size_t path_len = 0;
    rk_rc rc = index < size ? rk_tile_reader_leaf(&r, index, leaf) : RK_ERR_STORE;
    if (rc == RK_OK)
        rc = rk_merkle_inclusion_proof_from(&src, size, index, &path, &path_len);
    if (rc == RK_OK && !head)
        head = head_json(log, size);
    else if (rc != RK_OK) {
        json_decref(head);
        head = NULL;
    }
    if (!head) {
        rk_reply_error(resp, 500, "store_error", "no signed head covers the record yet");
    } else {
        char leaf_hex[65];
        rk_merkle_hex(leaf, leaf_hex);
        json_t *checkpoint = json_incref(json_object_get(head, "checkpoint"));
        json_t *body = json_pack("{s:I,s:I,s:s,s:o,s:o,s:o}", "leaf_index", (json_int_t)index, "tree_size",
                                 (json_int_t)size, "leaf_hash", leaf_hex, "audit_path", hashes_json(path, path_len),
                                 "head", head, "checkpoint", checkpoint ? checkpoint : json_null());
        if (exchange_id)
            json_object_set_new(body, "exchange_id", json_string(exchange_id));
        rk_reply_json(resp, 200, body);
    }
    free(path);
}

void rk_records_proof_serve(rk_records_log *log, const rk_request *req, rk_response *resp)
{
    char exchange_id[RK_EXCHANGE_ID_MAX + 1], side[16];
    uint64_t index = 0, tree_size = 0;
    int has_side = rk_query_param(req, "side", side, sizeof side);
    int has_xid = rk_query_param(req, "exchange_id", exchange_id, sizeof exchange_id);
    int has_index = u64_param(req, "index", INT64_MAX, &index);
    int has_size = u64_param(req, "tree_size", INT64_MAX, &tree_size);
    if (has_side < 0 || has_xid < 0 || has_index < 0 || has_size < 0 || has_xid == has_index ||
        (has_side == 1 && has_xid != 1) || (has_size == 1 && has_index != 1)) {
        rk_reply_error(resp, 400, "invalid_field",
                       "give exchange_id (and side, if wanted) or index (and tree_size, if wanted)");
        return;
    }
    if (has_xid == 1) {
        rk_rc rc = find_leaf(rk_records_log_db(log), exchange_id, has_side == 1 ? side : NULL, &index);
        if (rc != RK_OK) {
            rk_reply_error(resp, rc == RK_ERR_NOT_FOUND ? 404 : 500, rc == RK_ERR_NOT_FOUND ? "not_found" : "store_error",
                           "no record of exchange %s here", exchange_id);
            return;
        }
    }
    json_t *head = NULL;
    if (has_size == 1) { /* a tree a head was signed for, that holds the leaf */
        head = head_json(log, tree_size);
        if (!head || index >= tree_size) {
            json_decref(head);
            rk_reply_error(resp, 404, "not_found", "no signed head of size %llu holds leaf %llu",
                           (unsigned long long)tree_size, (unsigned long long)index);
            return;
        }
    } else {
        tree_size = rk_records_log_head_covering(log, index);
        if (index >= tree_size) {
            rk_reply_error(resp, 404, "not_found", "no record at index %llu", (unsigned long long)index);
            return;
        }
    }
    reply_inclusion(log, resp, has_xid == 1 ? exchange_id : NULL, index, tree_size, head);
}

void rk_records_consistency_serve(rk_records_log *log, const rk_request *req, rk_response *resp)
{
    uint64_t from = 0, to = 0, latest = rk_records_log_head_size(log);
    if (u64_param(req, "from", INT64_MAX, &from) != 1 || u64_param(req, "to", INT64_MAX, &to) != 1 || to < from ||
        to > latest) {
        rk_reply_error(resp, 400, "invalid_field", "need 0 <= from <= to <= %llu (the latest signed head)",
                       (unsigned long long)latest);
        return;
    }
    rk_tile_reader r;
    rk_tile_reader_init(&r, rk_records_log_db(log), to);
    rk_tile_reader_share(&r, rk_records_log_tile_cache(log));
    rk_merkle_source src = rk_tile_reader_source(&r);
    rk_hash *proof = NULL;
    size_t proof_len = 0;
    if (rk_merkle_consistency_proof_from(&src, to, from, &proof, &proof_len) != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the proof could not be computed");
    } else {
        json_t *from_head = head_json(log, from), *to_head = head_json(log, to);
        rk_reply_json(resp, 200, json_pack("{s:I,s:I,s:o,s:o,s:o}", "from", (json_int_t)from, "to", (json_int_t)to,
                                           "proof", hashes_json(proof, proof_len), "from_head",
                                           from_head ? from_head : json_null(), "to_head",
                                           to_head ? to_head : json_null()));
    }
    free(proof);
}

typedef struct sizes_args {
    uint64_t *sizes;
    size_t n, cap;
} sizes_args;

static rk_rc head_sizes_fn(rk_db *db, void *arg)
{
    sizes_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT size FROM tree_heads ORDER BY size DESC LIMIT 1000");
    while (a->n < a->cap && rk_stmt_next(q) == RK_OK)
        a->sizes[a->n++] = (uint64_t)rk_col_int(q, 0);
    return RK_OK;
}

void rk_records_heads_serve(rk_records_log *log, const rk_request *req, rk_response *resp)
{
    json_t *arr = json_array();
    uint64_t sizes[1000];
    sizes_args a = {sizes, 0, 1000};
    rk_db_read(rk_records_log_db(log), head_sizes_fn, &a);
    for (size_t i = 0; i < a.n; i++) {
        json_t *h = head_json(log, sizes[i]);
        if (h)
            json_array_append_new(arr, h);
    }
    rk_reply_json(resp, 200, json_pack("{s:o}", "heads", arr));
}

/* ---------- the log as C2SP readers see it (DESIGN §4.1) ---------- */

void rk_records_checkpoint_serve(rk_records_log *log, const rk_request *req, rk_response *resp)
{
    char *note = rk_records_log_checkpoint(log);
    if (!note) {
        rk_reply_error(resp, 503, "no_checkpoint", "no checkpoint has been signed yet");
        return;
    }
    resp->status = 200;
    resp->body = note;
    resp->body_len = strlen(note);
    resp->content_type = "text/plain; charset=utf-8";
    resp->cache_control = "no-cache";
}

/* Tiles hold hashes only, so any registered caller may read them; a tile
 * is served when the latest checkpoint covers it, and never changes. */
void rk_records_tile_serve(rk_records_log *log, const rk_request *req, rk_response *resp)
{
    static const char prefix[] = "/v1/tile/";
    int level = 0, width = 0, got = 0;
    uint64_t index = 0;
    if (strncmp(req->path, prefix, sizeof prefix - 1) != 0 ||
        rk_tile_path_parse(req->path + sizeof prefix - 1, &level, &index, &width) != 0) {
        rk_reply_error(resp, 400, "invalid_field", "a tile path is /v1/tile/<L>/<N>[.p/<W>] (C2SP tlog-tiles)");
        return;
    }
    uint64_t have = rk_tile_level_hashes(rk_records_log_head_size(log), level);
    int want = width ? width : RK_TILE_WIDTH;
    if (index > have / RK_TILE_WIDTH || index * RK_TILE_WIDTH + (uint64_t)want > have) {
        rk_reply_error(resp, 404, "not_found", "no checkpoint covers that tile yet");
        return;
    }
    rk_hash *hashes = malloc(RK_TILE_WIDTH * sizeof *hashes);
    rk_rc rc = hashes ? rk_tile_read_cached(rk_records_log_tile_cache(log), rk_records_log_db(log), level, index, want,
                                            hashes, &got)
                      : RK_ERR_NOMEM;
    if (rc != RK_OK || got < want) {
        free(hashes);
        rk_reply_error(resp, 500, "store_error", "the tile could not be read");
        return;
    }
    resp->status = 200;
    resp->body = (char *)hashes;
    resp->body_len = (size_t)want * sizeof(rk_hash);
    resp->content_type = "application/octet-stream";
    resp->cache_control = "public, max-age=31536000, immutable";
}
