/* fuzz_records.c — records and signed tree heads as `renkei records verify`
 * reads them from a node's database (src/tools/records_cmd.c through
 * records_check.h; leaves and roots by src/records): whatever a damaged or
 * tampered database holds, the check reports findings and never crashes,
 * and a log that is intact has none.
 *
 * Input, one line each, fields split at '|':
 *   R seq|leaf|exchange_id|side|requester|provider|business|item|operator|
 *     subject|requested_ms|provided_ms|outcome|reason|payload_sha256
 *   H size|root|time_ms|signature    a head as stored
 *   S size|root|time_ms              a head signed here with the node's key
 * where leaf or root "*" is the true one, "-" is NULL (a damaged row). */
#include "crypto/cms.h"
#include "fuzz.h"
#include "records/records_log.h"
#include "tools/records_check.h"

static X509 *cert;
static EVP_PKEY *key;
static FILE *devnull;
static const rk_peer_node node = {.id = "pref-kanagawa", .role = RK_ROLE_AGENCY};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    cert = fz_cert("provider");
    key = fz_key("provider");
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        abort();
    return 0;
}

static char *field(char **rest)
{
    char *f = *rest ? strsep(rest, "|") : NULL;
    return f ? f : "";
}

#define COPY(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fz_str(data, size);
    node_check c = {.node = &node, .cert = cert, .out = devnull};
    if (rk_records_check_start(&c) != RK_OK)
        abort();
    int records_done = 0, tampered = 0;
    for (char *line, *next = text; (line = strsep(&next, "\n"));) {
        char kind = line[0];
        char *rest = line[0] ? line + 1 : line;
        if (kind == 'R' && !records_done) {
            rk_record r;
            memset(&r, 0, sizeof r);
            long long seq = strtoll(field(&rest), NULL, 10);
            char *leaf = field(&rest);
            COPY(r.exchange_id, field(&rest));
            COPY(r.side, field(&rest));
            COPY(r.requester, field(&rest));
            COPY(r.provider, field(&rest));
            COPY(r.business, field(&rest));
            COPY(r.item, field(&rest));
            COPY(r.operator_id, field(&rest));
            COPY(r.subject, field(&rest));
            r.requested_ms = strtoll(field(&rest), NULL, 10);
            r.provided_ms = strtoll(field(&rest), NULL, 10);
            COPY(r.outcome, field(&rest));
            COPY(r.reason, field(&rest));
            COPY(r.payload_sha256, field(&rest));
            char hex[65];
            uint8_t h[32];
            rk_record_leaf(&r, h);
            rk_merkle_hex(h, hex);
            tampered |= seq != c.expected || (strcmp(leaf, "*") != 0 && strcmp(leaf, hex) != 0);
            const char *stored = strcmp(leaf, "*") == 0 ? hex : strcmp(leaf, "-") == 0 ? NULL : leaf;
            FZ_CHECK(rk_records_check_record(&c, seq, stored, &r) == RK_OK);
        } else if (kind == 'H' || kind == 'S') {
            records_done = 1;
            long long hsize = strtoll(field(&rest), NULL, 10);
            char *root = field(&rest), hex[65];
            long long t = strtoll(field(&rest), NULL, 10);
            char *sig = kind == 'H' ? field(&rest) : NULL, *made = NULL;
            rk_hash mine;
            if (strcmp(root, "*") == 0) {
                rk_merkle_root(c.leaves, hsize >= 0 && (size_t)hsize <= c.n ? (size_t)hsize : 0, mine);
                rk_merkle_hex(mine, hex);
                root = hex;
            }
            if (kind == 'S') {
                rk_hash r;
                if (rk_merkle_unhex(root, r) == RK_OK && rk_head_sign(key, node.id, (uint64_t)hsize, r, t, &made) == RK_OK)
                    sig = made;
                tampered |= hsize < 0 || (size_t)hsize > c.n || root != hex;
            } else {
                tampered = 1; /* a stored signature is the fuzzer's: no claim */
            }
            FZ_CHECK(rk_records_check_head(&c, hsize, strcmp(root, "-") == 0 ? NULL : root, t,
                                           sig && strcmp(sig, "-") == 0 ? NULL : sig) == RK_OK);
            free(made);
        }
    }
    /* an intact log (contiguous records, true leaves, heads signed over the
     * true roots) has no finding */
    if (!tampered)
        FZ_CHECK(c.findings == 0);
    rk_records_check_end(&c);
    free(text);
    return 0;
}
