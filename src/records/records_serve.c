/* records_serve.c — the HTTP endpoints of the records: GET /v1/records, and
 * the records log's inclusion proofs, consistency proofs and signed heads. */
#include <jansson.h>
#include <stdlib.h>

#include "net/http_server.h"
#include "records/records.h"
#include "records/records_log.h"
#include "records/records_log_priv.h"

/* ---------- the records ---------- */

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

/* ---------- the records log: proofs and heads ---------- */

typedef struct head_json_args {
    const char *node_id;
    uint64_t size;
    json_t *head;
} head_json_args;

static rk_rc head_json_fn(rk_db *db, void *arg)
{
    head_json_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT size, root, time_ms, signature FROM tree_heads WHERE size = ?");
    rk_bind_int(q, 1, (int64_t)a->size);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        a->head = json_pack("{s:s,s:I,s:s,s:I,s:s}", "node", a->node_id, "size", (json_int_t)rk_col_int(q, 0),
                            "root", rk_col_text(q, 1), "time_ms", (json_int_t)rk_col_int(q, 2), "signature",
                            rk_col_text(q, 3));
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
    char *leaf;
} leaf_args;

static rk_rc find_leaf_fn(rk_db *db, void *arg)
{
    leaf_args *a = arg;
    /* seq counts from 1 without gaps (append-only), so the leaf index is seq - 1 */
    rk_stmt *q = rk_db_stmt(db, "SELECT seq - 1, leaf_hash FROM records WHERE exchange_id = ?"
                                " AND (CAST(? AS TEXT) IS NULL OR side = ?) ORDER BY seq LIMIT 1");
    rk_bind_text(q, 1, a->exchange_id);
    rk_bind_text(q, 2, a->side);
    rk_bind_text(q, 3, a->side);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK) {
        *a->index = (uint64_t)rk_col_int(q, 0);
        rk_col_copy(q, 1, a->leaf, 65);
    }
    return rc;
}

/* Position (0-based) and leaf hash of the record of an exchange. */
static rk_rc find_leaf(rk_db *db, const char *exchange_id, const char *side, uint64_t *index, char leaf[65])
{
    leaf_args a = {exchange_id, side, index, leaf};
    return rk_db_read(db, find_leaf_fn, &a);
}

void rk_records_proof_serve(rk_records_log *log, const rk_request *req, rk_response *resp)
{
    char exchange_id[RK_EXCHANGE_ID_MAX + 1], side[16], leaf[65];
    uint64_t index = 0;
    int has_side = rk_query_param(req, "side", side, sizeof side);
    if (rk_query_param(req, "exchange_id", exchange_id, sizeof exchange_id) != 1 || has_side < 0) {
        rk_reply_error(resp, 400, "invalid_field", "exchange_id is required (and side, if given, is a side)");
        return;
    }
    rk_db *db = rk_records_log_db(log);
    rk_rc rc = find_leaf(db, exchange_id, has_side == 1 ? side : NULL, &index, leaf);
    if (rc != RK_OK) {
        rk_reply_error(resp, rc == RK_ERR_NOT_FOUND ? 404 : 500, rc == RK_ERR_NOT_FOUND ? "not_found" : "store_error",
                       "no record of exchange %s here", exchange_id);
        return;
    }
    uint64_t size = rk_records_log_head_covering(log, index);
    rk_hash *leaves = NULL, *path = NULL;
    size_t path_len = 0;
    rc = index < size ? rk_records_leaves(db, size, &leaves) : RK_ERR_STORE;
    if (rc == RK_OK)
        rc = rk_merkle_inclusion_proof(leaves, size, index, &path, &path_len);
    json_t *head = rc == RK_OK ? head_json(log, size) : NULL;
    if (!head)
        rk_reply_error(resp, 500, "store_error", "no signed head covers the record yet");
    else
        rk_reply_json(resp, 200, json_pack("{s:s,s:I,s:I,s:s,s:o,s:o}", "exchange_id", exchange_id, "leaf_index",
                                           (json_int_t)index, "tree_size", (json_int_t)size, "leaf_hash", leaf,
                                           "audit_path", hashes_json(path, path_len), "head", head));
    free(leaves);
    free(path);
}

void rk_records_consistency_serve(rk_records_log *log, const rk_request *req, rk_response *resp)
{
    char from_s[24], to_s[24];
    long long from = -1, to = -1;
    if (rk_query_param(req, "from", from_s, sizeof from_s) == 1)
        from = strtoll(from_s, NULL, 10);
    if (rk_query_param(req, "to", to_s, sizeof to_s) == 1)
        to = strtoll(to_s, NULL, 10);
    uint64_t latest = rk_records_log_head_size(log);
    if (from < 1 || to < from || (uint64_t)to > latest) {
        rk_reply_error(resp, 400, "invalid_field", "need 1 <= from <= to <= %llu (the latest signed head)",
                       (unsigned long long)latest);
        return;
    }
    rk_hash *leaves = NULL, *proof = NULL;
    size_t proof_len = 0;
    rk_rc rc = rk_records_leaves(rk_records_log_db(log), (uint64_t)to, &leaves);
    if (rc == RK_OK)
        rc = rk_merkle_consistency_proof(leaves, (size_t)to, (size_t)from, &proof, &proof_len);
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the proof could not be computed");
    } else {
        json_t *from_head = head_json(log, (uint64_t)from), *to_head = head_json(log, (uint64_t)to);
        rk_reply_json(resp, 200, json_pack("{s:I,s:I,s:o,s:o,s:o}", "from", (json_int_t)from, "to", (json_int_t)to,
                                           "proof", hashes_json(proof, proof_len), "from_head",
                                           from_head ? from_head : json_null(), "to_head",
                                           to_head ? to_head : json_null()));
    }
    free(leaves);
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
