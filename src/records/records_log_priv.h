/* records_log_priv.h — what the records log's endpoints (records_serve.c)
 * read of a running log; for src/records only. */
#ifndef RK_RECORDS_LOG_PRIV_H
#define RK_RECORDS_LOG_PRIV_H

#include <stdint.h>
#include "records/records_log.h"

rk_db *rk_records_log_db(rk_records_log *log);
/* The tiles of level >= 1 in memory, shared by the proofs (NULL: none). */
struct rk_tile_cache *rk_records_log_tile_cache(rk_records_log *log);
const char *rk_records_log_node_id(rk_records_log *log);
/* The size of the last signed head. */
uint64_t rk_records_log_head_size(rk_records_log *log);
/* The size of a signed head that covers leaf `index`: when the last one does
 * not, a head is signed now (if that fails, the last head's size, which does
 * not cover it). */
uint64_t rk_records_log_head_covering(rk_records_log *log, uint64_t index);
/* The latest checkpoint (a C2SP signed note), malloc'ed; NULL before the first. */
char *rk_records_log_checkpoint(rk_records_log *log);
const char *rk_records_log_origin(rk_records_log *log);

#endif
