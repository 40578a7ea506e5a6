/* witness_store.c — see witness_store.h. */
#include "witness/witness_store.h"

#include <stdlib.h>
#include <string.h>

struct witness_store {
    rk_db *db;
};

static const char *const witness_steps[] = {
    "CREATE TABLE witnessed (origin TEXT PRIMARY KEY, size BIGINT NOT NULL, root TEXT NOT NULL,"
    "  checkpoint TEXT NOT NULL, at_ms BIGINT NOT NULL){without_rowid};",
};

rk_rc witness_store_open(const char *target, int flags, witness_store **out)
{
    witness_store *s = calloc(1, sizeof *s);
    if (!s)
        return RK_ERR_NOMEM;
    rk_rc rc = rk_db_open(target, flags, &s->db);
    if (rc == RK_OK && !(flags & RK_DB_READONLY))
        rc = rk_db_migrate(s->db, "witness", witness_steps, (int)(sizeof witness_steps / sizeof witness_steps[0]));
    if (rc != RK_OK) {
        rk_db_close(s->db);
        free(s);
        return rc;
    }
    *out = s;
    return RK_OK;
}

void witness_store_close(witness_store *s)
{
    if (!s)
        return;
    rk_db_close(s->db);
    free(s);
}

rk_db *witness_store_db(witness_store *s)
{
    return s->db;
}

static rk_rc add_in_tx(rk_db *db, void *arg)
{
    witness_request *r = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT size, root FROM witnessed WHERE origin = ?");
    rk_bind_text(q, 1, r->origin);
    rk_rc rc = rk_stmt_next(q);
    uint64_t stored = 0;
    rk_hash stored_root = {0};
    if (rc == RK_OK) {
        stored = (uint64_t)rk_col_int(q, 0);
        if (rk_merkle_unhex(rk_col_text(q, 1), stored_root) != RK_OK)
            return RK_ERR_STORE;
    } else if (rc != RK_ERR_NOT_FOUND) {
        return rc;
    }
    r->latest = stored;
    if (r->old_size != stored) {
        r->verdict = WITNESS_SIZE_CONFLICT;
        return RK_OK;
    }
    if (r->old_size == r->size && r->size > 0) {
        if (memcmp(stored_root, r->root, sizeof(rk_hash)) != 0) {
            r->verdict = WITNESS_FORK;
            return RK_OK;
        }
    } else if (r->old_size == 0 ? r->proof_len != 0
                                : rk_merkle_verify_consistency(r->old_size, r->size, stored_root, r->root, r->proof,
                                                               r->proof_len) != RK_OK) {
        r->verdict = WITNESS_INCONSISTENT;
        return RK_OK;
    }
    char hex[65];
    rk_merkle_hex(r->root, hex);
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO witnessed(origin, size, root, checkpoint, at_ms) VALUES (?,?,?,?,?)"
                                 " ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root,"
                                 " checkpoint = excluded.checkpoint, at_ms = excluded.at_ms");
    rk_bind_text(st, 1, r->origin);
    rk_bind_int(st, 2, (int64_t)r->size);
    rk_bind_text(st, 3, hex);
    rk_bind_text(st, 4, r->checkpoint);
    rk_bind_int(st, 5, r->now_ms);
    r->verdict = WITNESS_COSIGN;
    return rk_stmt_exec(st);
}

rk_rc witness_store_add(witness_store *s, witness_request *r)
{
    return rk_db_write(s->db, add_in_tx, r);
}

static rk_rc count_fn(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT count(*) FROM witnessed");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        *(int64_t *)arg = rk_col_int(q, 0);
    return rc;
}

int64_t witness_store_count(witness_store *s)
{
    int64_t n = 0;
    rk_db_read(s->db, count_fn, &n);
    return n;
}
