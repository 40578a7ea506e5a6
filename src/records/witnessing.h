/* witnessing.h — the core's log before its witnesses (DESIGN §4.1, C2SP
 * tlog-witness): each checkpoint the leader signs is sent to every witness
 * of network.json with a consistency proof from the size that witness last
 * cosigned (from the stored tiles), on a thread of its own so that a slow or
 * absent witness never holds up signing. The cosignature lines that verify
 * with each witness's vkey are kept with the head (tree_heads.cosignatures)
 * and given to done(), which serves them with the checkpoint. A witness
 * that finds the log inconsistent, or has cosigned a larger tree than this
 * log signed, is an incident here as well as there (第3-5(2)). */
#ifndef RK_RECORDS_WITNESSING_H
#define RK_RECORDS_WITNESSING_H

#include <stdint.h>
#include "lib/err.h"
#include "store/db.h"

struct rk_node;
typedef struct rk_witnessing rk_witnessing;

/* done(arg, size, lines): lines (malloc'ed, the caller's) are the
 * cosignatures gathered for the checkpoint of that size. */
typedef void (*rk_witnessing_done_fn)(void *arg, uint64_t size, char *lines);

/* *out NULL (and RK_OK) when network.json names no witness. */
rk_rc rk_witnessing_start(struct rk_node *node, rk_db *db, rk_witnessing_done_fn done, void *arg,
                          rk_witnessing **out);
/* A new checkpoint (copied): sent when the thread is free, the latest only. */
void rk_witnessing_offer(rk_witnessing *w, const char *checkpoint, uint64_t size);
void rk_witnessing_stop(rk_witnessing *w);

#endif
