/* witness.h — what the witness role reads of the outside (witness.c), for
 * its tests and fuzzing. */
#ifndef RK_WITNESS_H
#define RK_WITNESS_H

#include <stddef.h>
#include <stdint.h>
#include "records/merkle.h"

#define RK_WITNESS_MAX_PROOF 63 /* C2SP tlog-witness */

/* An add-checkpoint body: "old N\n", up to 63 base64 proof lines, an empty
 * line, the checkpoint (pointing into body). */
typedef struct rk_witness_add {
    uint64_t old_size;
    rk_hash proof[RK_WITNESS_MAX_PROOF];
    size_t proof_len;
    const char *note;
    size_t note_len;
} rk_witness_add;

/* 0, or -1 when body is not such a request (old size with a leading zero or
 * beyond 2^64, a proof line that is not one base64 hash, more than 63 of
 * them, no empty line, no checkpoint). */
int rk_witness_parse(const char *body, size_t len, rk_witness_add *out);

#endif
