/* records_cmd.c — `renkei records verify DIR` (DESIGN §5; standard 第3-1(2),
 * 法23条): checks every node's records log in a network folder.
 *
 * For each node that keeps records (the core and every agency node) it
 * reads the node's store as its node.conf names it (read-only, through the
 * records module: no SQL here, and the node may be running; a network's
 * PostgreSQL server that is down is started for the reading and stopped
 * after), recomputes every record's leaf from
 * its fields, and checks: positions are contiguous (nothing removed), each
 * stored leaf matches its record (nothing altered), every signed tree head
 * verifies with the node's registered certificate (nothing forged), and the
 * root of each head equals the root of the recomputed leaves (nothing
 * altered, removed or reordered up to that head; a later head extends an
 * earlier one). It names the node and the record, and exits 1 on any
 * finding. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records/merkle.h"
#include "crypto/pki.h"
#include "records/records.h"
#include "records/records_log.h"
#include "net/registry.h"
#include "node/config.h"
#include "tools/net/net.h"
#include "tools/tools.h"

typedef struct node_check {
    const rk_peer_node *node;
    const char *dir;
    rk_db *db;
    X509 *cert;
    rk_hash *leaves;   /* recomputed from the records' fields */
    long long *seqs;   /* the seq of each leaf */
    char (*xids)[RK_EXCHANGE_ID_MAX + 1]; /* the exchange of each leaf */
    size_t n, cap;
    long long expected; /* the next seq, when nothing was removed */
    int findings;
    int heads, mismatched; /* check_heads */
    long long last_good;
} node_check;

static void finding(node_check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void finding(node_check *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  %s: ", c->node->id);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    c->findings++;
}

/* One record: contiguous seq, stored leaf equal to the recomputed one. */
static rk_rc check_record(void *arg, int64_t seq64, const char *stored, const rk_record *r)
{
    node_check *c = arg;
    long long seq = (long long)seq64;
    if (seq != c->expected)
        finding(c, "record seq %lld%s is missing (removed)", c->expected,
                seq > c->expected + 1 ? " and following" : "");
    c->expected = seq + 1;
    if (c->n == c->cap) {
        rk_hash *bigger = realloc(c->leaves, 2 * c->cap * sizeof *c->leaves);
        long long *seqs = bigger ? realloc(c->seqs, 2 * c->cap * sizeof *c->seqs) : NULL;
        char(*xids)[RK_EXCHANGE_ID_MAX + 1] = seqs ? realloc(c->xids, 2 * c->cap * sizeof *c->xids) : NULL;
        if (bigger)
            c->leaves = bigger;
        if (seqs)
            c->seqs = seqs;
        if (!xids)
            return RK_ERR_NOMEM;
        c->xids = xids;
        c->cap *= 2;
    }
    c->seqs[c->n] = seq;
    snprintf(c->xids[c->n], sizeof c->xids[0], "%s", r->exchange_id);
    rk_record_leaf(r, c->leaves[c->n]);
    char hex[65];
    rk_merkle_hex(c->leaves[c->n], hex);
    if (!stored || strcmp(stored, hex) != 0)
        finding(c, "record seq %lld (exchange %s) was altered: its fields do not give its leaf", seq, r->exchange_id);
    c->n++;
    return RK_OK;
}

/* Reads every record in seq order. */
static int read_records(node_check *c)
{
    c->cap = 1024;
    c->expected = 1;
    c->leaves = malloc(c->cap * sizeof *c->leaves);
    c->seqs = malloc(c->cap * sizeof *c->seqs);
    c->xids = malloc(c->cap * sizeof *c->xids);
    if (!c->leaves || !c->seqs || !c->xids)
        return -1;
    rk_rc rc = rk_records_each(c->db, check_record, c);
    if (rc != RK_OK && rc != RK_ERR_NOMEM)
        finding(c, "cannot read its records: %s", rk_strerror(rc));
    return rc == RK_OK ? 0 : -1;
}

/* Names the records between two heads: the first mismatching head says a
 * record at positions (from, to] is not what was signed. */
static void name_range(node_check *c, long long from, long long to)
{
    if (to - from == 1) {
        finding(c, "record seq %lld (exchange %s) is not the record signed at position %lld "
                   "(altered, removed or reordered)", c->seqs[to - 1], c->xids[to - 1], to);
        return;
    }
    char list[300] = "";
    for (long long i = from; i < to && strlen(list) < 200; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%sseq %lld (exchange %s)", i > from ? ", " : "",
                 c->seqs[i], c->xids[i]);
    finding(c, "one of the records %s is not what the tree head of size %lld signed "
               "(altered, removed or reordered)", list, to);
}

/* One signed head: signature, size, root. */
static rk_rc check_head(void *arg, int64_t size64, const char *root_hex, int64_t time_ms, const char *signature)
{
    node_check *c = arg;
    long long size = (long long)size64;
    rk_hash root, mine;
    c->heads++;
    if (rk_merkle_unhex(root_hex, root) != RK_OK ||
        rk_head_verify(c->cert, c->node->id, (uint64_t)size, root, time_ms, signature) != RK_OK) {
        finding(c, "tree head of size %lld: the signature does not verify (forged or altered head)", size);
        return RK_OK;
    }
    if ((size_t)size > c->n) {
        finding(c, "tree head of size %lld covers records that are gone (only %zu remain)", size, c->n);
        return RK_OK;
    }
    rk_merkle_root(c->leaves, (size_t)size, mine);
    if (memcmp(mine, root, sizeof root) == 0) {
        c->last_good = size;
    } else if (!c->mismatched) { /* every later head fails as well: name the first */
        c->mismatched = 1;
        name_range(c, c->last_good, size);
    }
    return RK_OK;
}

/* Every signed head; their number, -1 when they cannot be read. */
static int check_heads(node_check *c)
{
    return rk_tree_heads_each(c->db, check_head, c) == RK_OK ? c->heads : -1;
}

static int verify_node(const char *dir, const rk_peer_node *node)
{
    node_check c = {.node = node, .dir = dir};
    char path[4200], fp[RK_FINGERPRINT_LEN];
    snprintf(path, sizeof path, "%s/nodes/%s/cert.pem", dir, node->id);
    if (rk_pki_load_cert(path, &c.cert) != RK_OK || rk_pki_fingerprint(c.cert, fp) != RK_OK ||
        strcmp(fp, node->fingerprint) != 0) {
        finding(&c, "its certificate is missing or is not the registered one");
        X509_free(c.cert);
        return c.findings;
    }
    /* the node's store as its node.conf says (nodes/<id>/node.db when it says nothing) */
    char err[256] = "";
    rk_node_config *cfg = calloc(1, sizeof *cfg);
    snprintf(path, sizeof path, "%s/nodes/%s/node.conf", dir, node->id);
    if (cfg && rk_config_load(path, cfg, err, sizeof err) == RK_OK)
        snprintf(path, sizeof path, "%s", cfg->db);
    else
        snprintf(path, sizeof path, "%s/nodes/%s/node.db", dir, node->id);
    free(cfg);
    if (rk_db_open(path, RK_DB_READONLY, &c.db) != RK_OK) {
        finding(&c, "cannot open its store%s%s", strstr(path, "://") ? "" : " ", strstr(path, "://") ? "" : path);
    } else if (read_records(&c) == 0) {
        int heads = check_heads(&c);
        if (heads == 0 && c.n > 0)
            finding(&c, "%zu records but no signed tree head", c.n);
        if (!c.findings)
            printf("  %-28s ok: %zu records, %d signed tree heads\n", node->id, c.n, heads);
    }
    rk_db_close(c.db);
    free(c.leaves);
    free(c.seqs);
    free(c.xids);
    X509_free(c.cert);
    return c.findings;
}

static int usage(FILE *out, int code)
{
    fprintf(out, "usage: renkei records verify DIR\n"
                 "  Checks the records of every node of the network in DIR (the core and each agency node):\n"
                 "  every record against its signed Merkle tree heads. Exit 0 when nothing was altered,\n"
                 "  removed, reordered or forged; otherwise each finding names the node and the record.\n");
    return code;
}

int rk_cmd_records(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--help") == 0)
        return usage(stdout, 0);
    if (argc != 3 || strcmp(argv[1], "verify") != 0)
        return usage(stderr, 2);
    char path[4200], err[512] = "";
    rk_registry *reg = NULL;
    snprintf(path, sizeof path, "%s/network.json", argv[2]);
    if (rk_registry_load(path, &reg, err, sizeof err) != RK_OK) {
        fprintf(stderr, "renkei records: %s\n", err);
        return 1;
    }
    int findings = 0, nodes = 0, pg_started = 0;
    if (rk_net_pg_start(argv[2], &pg_started, err, sizeof err) != RK_OK) { /* --store postgres, and down */
        fprintf(stderr, "renkei records: %s\n", err);
        rk_registry_free(reg);
        return 1;
    }
    printf("records of the network in %s:\n", argv[2]);
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        if (n->role != RK_ROLE_CORE && n->role != RK_ROLE_AGENCY)
            continue;
        nodes++;
        findings += verify_node(argv[2], n);
    }
    rk_registry_free(reg);
    if (pg_started && rk_net_pg_stop(argv[2]) != RK_OK)
        fprintf(stderr, "renkei records: the PostgreSQL server of %s/pg did not stop\n", argv[2]);
    if (findings) {
        printf("records verify: %d finding(s) in %d node(s) checked\n", findings, nodes);
        return 1;
    }
    printf("records verify: all %d nodes' records are intact\n", nodes);
    return 0;
}
