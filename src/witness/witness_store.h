/* witness_store.h — a witness's memory (C2SP tlog-witness): for each log it
 * witnesses, by origin, the latest checkpoint it cosigned. */
#ifndef RK_WITNESS_STORE_H
#define RK_WITNESS_STORE_H

#include <stdint.h>
#include "lib/err.h"
#include "records/merkle.h"
#include "store/db.h"

typedef struct witness_store witness_store;

rk_rc witness_store_open(const char *target, int flags, witness_store **out);
void witness_store_close(witness_store *s);
rk_db *witness_store_db(witness_store *s);

/* What one add-checkpoint asks of the store, decided and (when it passes)
 * recorded in one write, so that two requests cannot roll the log back
 * (tlog-witness: check and persist atomically). */
typedef enum {
    WITNESS_COSIGN,       /* recorded: cosign it */
    WITNESS_SIZE_CONFLICT, /* old is not the size last cosigned: *latest says it */
    WITNESS_FORK,         /* same size, another root: a split view */
    WITNESS_INCONSISTENT, /* the consistency proof does not verify */
} witness_verdict;

typedef struct witness_request {
    const char *origin, *checkpoint;
    uint64_t old_size, size;
    rk_hash root;
    const rk_hash *proof;
    size_t proof_len;
    int64_t now_ms;
    witness_verdict verdict; /* out */
    uint64_t latest;         /* out: the size last cosigned */
} witness_request;

rk_rc witness_store_add(witness_store *s, witness_request *r);
/* Logs witnessed so far (health). */
int64_t witness_store_count(witness_store *s);

#endif
