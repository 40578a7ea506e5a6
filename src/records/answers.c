/* answers.c — the answers kept for retries (by key, side and the request's
 * hash) and settlement: a record and its kept answer in one commit. */
#include "records/answers.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_server.h"
#include "records/records.h"
#include "lib/util.h"

void rk_request_hash(json_t *request, char out[65])
{
    char *text = json_dumps(request, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(text ? text : "", text ? strlen(text) : 0, md, &n, EVP_sha256(), NULL);
    rk_hex(md, n, out);
    free(text);
}

typedef struct answer_get {
    const char *key, *side, *request_hash;
    int *status;
    char **body;
} answer_get;

static rk_rc answer_get_fn(rk_db *db, void *arg)
{
    answer_get *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT request_hash, status, body FROM answers WHERE key = ? AND side = ?");
    rk_bind_text(q, 1, a->key);
    rk_bind_text(q, 2, a->side);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc;
    const char *hash = rk_col_text(q, 0);
    if (a->request_hash && (!hash || strcmp(hash, a->request_hash) != 0))
        return RK_ERR_CONFLICT;
    const char *body = rk_col_text(q, 2);
    *a->status = (int)rk_col_int(q, 1);
    *a->body = strdup(body ? body : "");
    return *a->body ? RK_OK : RK_ERR_NOMEM;
}

rk_rc rk_answer_get(rk_db *db, const char *key, const char *side, const char *request_hash, int *status,
                    char **body)
{
    answer_get a = {key, side, request_hash, status, body};
    return rk_db_read(db, answer_get_fn, &a);
}

int rk_answer_entry(rk_db *db, const char *key, const char *side, const char *request_hash, const char *id_name,
                    int *status, char **text)
{
    *status = 0;
    *text = NULL;
    rk_rc rc = rk_answer_get(db, key, side, request_hash, status, text);
    if (rc == RK_ERR_CONFLICT) {
        *status = 409;
        *text = rk_error_text("conflict", "%s %s was used with another request", id_name, key);
    }
    return rc == RK_OK || rc == RK_ERR_CONFLICT;
}

int rk_answer_replay(rk_db *db, const char *key, const char *side, const char *request_hash, const char *id_name,
                     rk_response *resp)
{
    int status = 0;
    char *kept = NULL;
    if (!rk_answer_entry(db, key, side, request_hash, id_name, &status, &kept))
        return 0;
    rk_reply_text(resp, status, kept);
    return 1;
}

rk_rc rk_answer_keep(rk_db *db, const char *key, const char *side, const char *hash, int status, const char *body)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO answers(key, side, request_hash, status, body, at_ms)"
                                 " VALUES (?,?,?,?,?,?)");
    rk_bind_text(st, 1, key);
    rk_bind_text(st, 2, side);
    rk_bind_text(st, 3, hash);
    rk_bind_int(st, 4, status);
    rk_bind_text(st, 5, body);
    rk_bind_int(st, 6, rk_now_ms());
    return rk_stmt_exec(st);
}

rk_rc rk_settle_in_tx(rk_db *db, const rk_settlement *a)
{
    rk_rc rc = a->record ? rk_record_append(db, a->record) : RK_OK;
    if (rc == RK_OK)
        rc = rk_answer_keep(db, a->key, a->record ? a->record->side : "answer", a->request_hash, a->status, a->body);
    if (rc == RK_OK && a->extra)
        rc = a->extra(db, a->extra_arg);
    return rc;
}

static rk_rc settle_in_tx(rk_db *db, void *arg)
{
    return rk_settle_in_tx(db, arg);
}

typedef struct settle_many {
    rk_settlement *s;
    size_t n;
} settle_many;

static rk_rc settle_many_in_tx(rk_db *db, void *arg)
{
    settle_many *m = arg;
    for (size_t i = 0; i < m->n; i++)
        m->s[i].rc = rk_db_item(db, settle_in_tx, &m->s[i]);
    return RK_OK;
}

rk_rc rk_settle_many(rk_db *db, rk_settlement *s, size_t n)
{
    settle_many m = {s, n};
    return n ? rk_db_write(db, settle_many_in_tx, &m) : RK_OK;
}

rk_rc rk_settle_later(rk_db *db, struct event_base *base, const rk_settlement *s, rk_db_written_fn written,
                      void *arg)
{
    return rk_db_write_later(db, base, settle_in_tx, (void *)s, written, arg);
}

void rk_settle_entries(rk_db *db, rk_entry_answer *e, size_t n, const char *id_name)
{
    rk_settlement *s = calloc(n ? n : 1, sizeof *s);
    size_t *of = calloc(n ? n : 1, sizeof *of), k = 0;
    for (size_t i = 0; s && of && i < n; i++)
        if (e[i].settle && e[i].text) {
            s[k] = e[i].s;
            s[k].body = e[i].text;
            of[k++] = i;
        } else if (e[i].settle) {
            e[i].s.rc = RK_ERR_NOMEM;
        }
    rk_rc rc = s && of ? rk_settle_many(db, s, k) : RK_ERR_NOMEM;
    for (size_t j = 0; j < k; j++)
        e[of[j]].s.rc = rc == RK_OK ? s[j].rc : rc;
    for (size_t i = 0; i < n; i++) {
        rk_entry_answer *a = &e[i];
        if (!a->settle || a->s.rc == RK_OK)
            continue;
        free(a->text);
        a->text = NULL;
        const char *side = a->s.record ? a->s.record->side : "answer";
        if (a->s.rc == RK_ERR_CONFLICT && /* settled meanwhile: the first answer */
            rk_answer_entry(db, a->s.key, side, a->s.request_hash, id_name, &a->status, &a->text))
            continue;
        a->status = 500;
        a->text = rk_error_text("store_error", "%s could not be recorded; retry with the same id", a->id);
    }
    free(s);
    free(of);
}

json_t *rk_entry_results(const rk_entry_answer *e, size_t n, const char *id_name)
{
    json_t *results = json_array();
    for (size_t i = 0; results && i < n; i++) {
        json_t *answer = e[i].text ? json_loads(e[i].text, 0, NULL) : NULL;
        int status = answer ? e[i].status : 500; /* no text: out of memory */
        if (!answer)
            answer = json_object();
        if (json_array_append_new(results, json_pack("{s:s,s:i,s:o}", id_name, e[i].id, "http_status", status,
                                                     "answer", answer)) != 0) {
            json_decref(results);
            return NULL;
        }
    }
    json_t *out = results ? json_pack("{s:o}", "results", results) : NULL;
    return out;
}

json_t *rk_entry_result(json_t *results, size_t j, const char *id_name, const char *id, long *status)
{
    json_t *one = json_array_get(results, j);
    const char *named = json_string_value(json_object_get(one, id_name));
    json_t *st = json_object_get(one, "http_status");
    if (!named || strcmp(named, id) != 0 || !json_is_integer(st))
        return NULL;
    *status = (long)json_integer_value(st);
    return json_object_get(one, "answer");
}
