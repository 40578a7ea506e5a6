/* disclosure.c — a person's records with their leaves and proofs, and the
 * witnessed head they prove against (records/disclosure.h). */
#include "records/disclosure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/cms.h"
#include "records/tiles.h"

static const char EM_DASH[] = "\xe2\x80\x94"; /* U+2014, a signature line's mark */

/* ---------- the head ---------- */

typedef struct heads_args {
    const rk_vkey *witnesses;
    size_t n_witnesses;
    rk_disclosure_head *out;
    int found;
} heads_args;

/* 1 when note (with its cosignature lines) holds a verifying line of every witness. */
static int witnessed(const heads_args *a, const char *note)
{
    for (size_t i = 0; i < a->n_witnesses; i++)
        if (rk_cosignature_check(&a->witnesses[i], note, strlen(note), NULL) != RK_OK)
            return 0;
    return 1;
}

static rk_rc heads_fn(rk_db *db, void *arg)
{
    heads_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT size, root, time_ms, checkpoint, cosignatures FROM tree_heads"
                                " WHERE checkpoint IS NOT NULL ORDER BY size DESC LIMIT ?");
    rk_bind_int(q, 1, RK_DISCLOSURE_HEADS);
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        const char *note = rk_col_text(q, 3), *lines = rk_col_text(q, 4);
        char *full = NULL;
        if (asprintf(&full, "%s%s", note ? note : "", lines ? lines : "") < 0)
            return RK_ERR_NOMEM;
        if (witnessed(a, full) && rk_merkle_unhex(rk_col_text(q, 1), a->out->root) == RK_OK) {
            a->out->size = (uint64_t)rk_col_int(q, 0);
            a->out->time_ms = rk_col_int(q, 2);
            a->out->checkpoint = full;
            a->found = 1;
            return RK_OK;
        }
        free(full);
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc rk_disclosure_head_find(rk_db *db, const rk_vkey *witnesses, size_t n_witnesses, rk_disclosure_head *out)
{
    memset(out, 0, sizeof *out);
    heads_args a = {witnesses, n_witnesses, out, 0};
    rk_rc rc = rk_db_read(db, heads_fn, &a);
    if (rc == RK_OK && !a.found)
        rc = RK_ERR_NOT_FOUND;
    if (rc != RK_OK)
        rk_disclosure_head_clear(out);
    return rc;
}

void rk_disclosure_head_clear(rk_disclosure_head *h)
{
    free(h->checkpoint);
    memset(h, 0, sizeof *h);
}

json_t *rk_disclosure_hashes_json(const rk_hash *h, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        char *b64 = NULL;
        if (rk_base64_encode(h[i], sizeof(rk_hash), &b64) != RK_OK) {
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, json_string(b64));
        free(b64);
    }
    return arr;
}

json_t *rk_disclosure_head_json(const rk_disclosure_head *h)
{
    const char *note = h->checkpoint, *body_end = strstr(note, "\n\n");
    size_t origin_len = strcspn(note, "\n");
    json_t *cosigs = json_array();
    char *root = NULL, *signature = NULL;
    /* the signature lines: the log's (named by the origin), then the witnesses' */
    for (const char *line = body_end ? body_end + 2 : ""; *line;) {
        size_t n = strcspn(line, "\n"), dash = sizeof EM_DASH - 1;
        if (n > dash + origin_len + 2 && memcmp(line, EM_DASH, dash) == 0 && line[dash] == ' ' &&
            memcmp(line + dash + 1, note, origin_len) == 0 && line[dash + 1 + origin_len] == ' ' && !signature)
            signature = strndup(line + dash + origin_len + 2, n - dash - origin_len - 2);
        else if (n)
            json_array_append_new(cosigs, json_stringn(line, n));
        line += n + (line[n] == '\n');
    }
    json_t *head = NULL;
    if (rk_base64_encode(h->root, sizeof h->root, &root) == RK_OK)
        head = json_pack("{s:I,s:s,s:I,s:s?,s:o,s:s}", "tree_size", (json_int_t)h->size, "root_hash", root,
                         "timestamp", (json_int_t)h->time_ms, "signature", signature, "cosignatures", cosigs,
                         "checkpoint", note);
    else
        json_decref(cosigs);
    free(root);
    free(signature);
    return head;
}

/* ---------- the person's records ---------- */

typedef struct list_args {
    const char *subject;
    int64_t before;
    int limit;
    rk_disclosed *out;
    size_t n;
    int64_t *next_before;
} list_args;

static rk_rc list_fn(rk_db *db, void *arg)
{
    list_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT seq, " RK_RECORD_COLUMNS " FROM records WHERE subject = ?"
                                " AND (CAST(? AS BIGINT) = 0 OR seq < ?) ORDER BY seq DESC LIMIT ?");
    rk_bind_text(q, 1, a->subject);
    rk_bind_int(q, 2, a->before);
    rk_bind_int(q, 3, a->before);
    rk_bind_int(q, 4, (int64_t)a->limit + 1);
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        if (a->n == (size_t)a->limit) { /* one more than the page: there is a next one */
            *a->next_before = a->out[a->n - 1].seq;
            break;
        }
        rk_disclosed *d = &a->out[a->n++];
        d->seq = rk_col_int(q, 0);
        rk_record_from_row(q, 1, &d->rec);
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc rk_disclosure_records(rk_db *db, const char *subject, int64_t before_seq, int limit, uint64_t size,
                            rk_disclosed **out, size_t *n, int64_t *next_before)
{
    *out = NULL;
    *n = 0;
    *next_before = 0;
    if (limit < 1 || limit > 500 || !subject || !*subject)
        return RK_ERR_INVALID;
    list_args a = {subject, before_seq, limit, calloc((size_t)limit, sizeof(rk_disclosed)), 0, next_before};
    if (!a.out)
        return RK_ERR_NOMEM;
    rk_rc rc = rk_db_scan(db, list_fn, &a);
    /* each leaf as the log hashed it, proved from the stored tiles (a few
     * reads each, the tiles of one page shared) */
    rk_tile_reader r;
    rk_tile_reader_init(&r, db, size);
    rk_merkle_source src = rk_tile_reader_source(&r);
    for (size_t i = 0; rc == RK_OK && i < a.n; i++) {
        rk_disclosed *d = &a.out[i];
        if (!(d->leaf = rk_record_leaf_text(&d->rec))) {
            rc = RK_ERR_NOMEM;
            break;
        }
        rk_merkle_leaf_hash(d->leaf, strlen(d->leaf), d->leaf_hash);
        uint64_t index = (uint64_t)d->seq - 1;
        if (index >= size)
            continue; /* newer than the head: its proof comes with a later one */
        rc = rk_merkle_inclusion_proof_from(&src, size, index, &d->proof, &d->proof_len);
        d->proven = rc == RK_OK;
    }
    if (rc != RK_OK) {
        rk_disclosed_free(a.out, a.n);
        return rc;
    }
    *out = a.out;
    *n = a.n;
    return RK_OK;
}

void rk_disclosed_free(rk_disclosed *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++) {
        free(d[i].leaf);
        free(d[i].proof);
    }
    free(d);
}
