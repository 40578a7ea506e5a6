/* records_check.h — the checks of `renkei records verify DIR` on one node's
 * records log (records_cmd.c), by themselves: what the command feeds them
 * from the node's database (each record with its stored leaf, then each
 * signed tree head) can also be fed from elsewhere (tests/fuzz). Findings
 * are printed to `out` (stdout when NULL) and counted. */
#ifndef RK_TOOLS_RECORDS_CHECK_H
#define RK_TOOLS_RECORDS_CHECK_H

#include <openssl/x509.h>
#include <stdio.h>

#include "net/registry.h"
#include "records/merkle.h"
#include "records/records.h"
#include "store/db.h"

typedef struct node_check {
    const rk_peer_node *node;
    const char *dir;
    rk_db *db;
    X509 *cert;         /* the node's registered certificate: heads are checked against it */
    FILE *out;          /* where findings go; NULL: stdout */
    rk_hash *leaves;    /* recomputed from the records' fields */
    long long *seqs;    /* the seq of each leaf */
    char (*xids)[RK_EXCHANGE_ID_MAX + 1]; /* the exchange of each leaf */
    size_t n, cap;
    long long expected; /* the next seq, when nothing was removed */
    int findings;
    int heads, mismatched; /* rk_records_check_head */
    long long last_good;
} node_check;

/* Before the first record (node and cert set); RK_ERR_NOMEM. */
rk_rc rk_records_check_start(node_check *c);
/* Each record in seq order (an rk_record_fn): contiguous seqs, the stored
 * leaf (hex, may be NULL) equal to the one its fields give. */
rk_rc rk_records_check_record(void *arg, int64_t seq, const char *leaf_hex, const rk_record *r);
/* Each signed head after the records (an rk_tree_head_fn; root_hex and
 * signature may be NULL in a damaged database): its signature, and its
 * root against the records'. */
rk_rc rk_records_check_head(void *arg, int64_t size, const char *root_hex, int64_t time_ms, const char *signature);
void rk_records_check_end(node_check *c);

#endif
