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
    if (!hash || strcmp(hash, a->request_hash) != 0)
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

rk_rc rk_settle_later(rk_db *db, struct event_base *base, const rk_settlement *s, rk_db_written_fn written,
                      void *arg)
{
    return rk_db_write_later(db, base, settle_in_tx, (void *)s, written, arg);
}
