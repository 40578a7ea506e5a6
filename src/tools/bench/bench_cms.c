/* bench_cms.c — `renkei bench cms` (see bench_cms.h): its options and usage,
 * and the timing of CMS sealing and opening. */
#include "tools/bench/bench_cms.h"

#include <getopt.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/cms.h"
#include "crypto/pki.h"
#include "lib/util.h"
#include "tools/bench/bench.h"
#include "tools/toolkit.h"

#define SIG_MAX 128

/* A provision's inner document as the provider signs it (provision.c). */
static const char payload[] =
    "{\"exchange_id\":\"pref-kanagawa.0123456789abcdef0123456789abcdef\",\"provider\":\"city-yokohama\","
    "\"item\":\"local_tax\",\"value\":{\"year\":2026,\"income\":4200000,\"tax\":210000},"
    "\"as_of\":\"2026-04-01\",\"version\":1}";

typedef struct cms_bench {
    X509 *provider_cert, *requester_cert;
    EVP_PKEY *provider_key, *requester_key;
    EVP_PKEY *ephemeral;  /* an ephemeral key as CMS makes one per message */
    char *sealed;         /* one payload sealed to the requester */
    unsigned char sig[SIG_MAX]; /* the provider's signature over payload */
    size_t sig_len;
    char err[256];
} cms_bench;

/* A certificate and key for agency `id`, issued by the CA in `dir`, loaded
 * and their files removed. */
static rk_rc issue(const char *dir, const char *id, X509 **cert, EVP_PKEY **key)
{
    char ca_cert[TK_PATH_CAP], ca_key[TK_PATH_CAP], cert_path[TK_PATH_CAP], key_path[TK_PATH_CAP];
    rk_rc rc = tk_path(cert_path, sizeof cert_path, "%s/%s.pem", dir, id);
    if (rc == RK_OK && (rc = tk_path(key_path, sizeof key_path, "%s/%s.key", dir, id)) == RK_OK &&
        (rc = tk_path(ca_cert, sizeof ca_cert, "%s/ca.pem", dir)) == RK_OK &&
        (rc = tk_path(ca_key, sizeof ca_key, "%s/ca.key", dir)) == RK_OK) {
        rk_cert_spec spec = {.common_name = id, .role = "agency", .name = id};
        rc = rk_pki_issue(ca_cert, ca_key, &spec, cert_path, key_path, NULL);
        if (rc == RK_OK)
            rc = rk_pki_load_cert(cert_path, cert);
        if (rc == RK_OK)
            rc = rk_pki_load_key(key_path, NULL, key);
        unlink(cert_path);
        unlink(key_path);
    }
    return rc;
}

/* The CA and the two agencies' certificates and keys, in a folder that is
 * gone again before anything is timed. */
static rk_rc make_parties(cms_bench *b)
{
    char dir[TK_PATH_CAP], ca_cert[TK_PATH_CAP], ca_key[TK_PATH_CAP];
    rk_rc rc = tk_temp_dir("renkei-bench-cms", dir, sizeof dir, b->err, sizeof b->err);
    if (rc != RK_OK)
        return rc;
    if ((rc = tk_path(ca_cert, sizeof ca_cert, "%s/ca.pem", dir)) == RK_OK &&
        (rc = tk_path(ca_key, sizeof ca_key, "%s/ca.key", dir)) == RK_OK) {
        rc = rk_pki_create_ca(ca_cert, ca_key, "renkei bench CA", 1);
        if (rc == RK_OK)
            rc = issue(dir, "city-yokohama", &b->provider_cert, &b->provider_key);
        if (rc == RK_OK)
            rc = issue(dir, "pref-kanagawa", &b->requester_cert, &b->requester_key);
        unlink(ca_cert);
        unlink(ca_key);
    }
    rmdir(dir);
    if (rc != RK_OK)
        snprintf(b->err, sizeof b->err, "cannot make the CA and two agency certificates: %s", rk_strerror(rc));
    return rc;
}

/* The provider's ECDSA P-256 / SHA-256 signature over payload into sig. */
static int sign_payload(const cms_bench *b, unsigned char sig[SIG_MAX], size_t *len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    *len = SIG_MAX;
    int ok = md && EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, b->provider_key, NULL) == 1 &&
             EVP_DigestSign(md, sig, len, (const unsigned char *)payload, strlen(payload)) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static rk_rc bench_open(cms_bench *b)
{
    rk_rc rc = make_parties(b);
    if (rc != RK_OK)
        return rc;
    if (!(b->ephemeral = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) || !sign_payload(b, b->sig, &b->sig_len) ||
        rk_cms_seal(b->provider_cert, b->provider_key, b->requester_cert, payload, strlen(payload), &b->sealed) !=
            RK_OK) {
        snprintf(b->err, sizeof b->err, "cannot make a key, a signature and a sealed payload");
        return RK_ERR_CRYPTO;
    }
    return RK_OK;
}

static void bench_close(cms_bench *b)
{
    X509_free(b->provider_cert);
    X509_free(b->requester_cert);
    EVP_PKEY_free(b->provider_key);
    EVP_PKEY_free(b->requester_key);
    EVP_PKEY_free(b->ephemeral);
    free(b->sealed);
    ERR_clear_error();
}

/* ---- the operations: each returns 1 when it succeeded ---------------------- */

static int op_seal(cms_bench *b)
{
    char *out = NULL;
    int ok = rk_cms_seal(b->provider_cert, b->provider_key, b->requester_cert, payload, strlen(payload), &out) ==
             RK_OK;
    free(out);
    return ok;
}

static int op_open(cms_bench *b)
{
    char *data = NULL;
    size_t len = 0;
    int ok = rk_cms_open(b->requester_cert, b->requester_key, b->provider_cert, b->sealed, &data, &len) == RK_OK &&
             len == strlen(payload) && memcmp(data, payload, len) == 0;
    if (data)
        rk_wipe(data, len);
    free(data);
    return ok;
}

static int op_sign(cms_bench *b)
{
    unsigned char sig[SIG_MAX];
    size_t len;
    return sign_payload(b, sig, &len);
}

static int op_verify(cms_bench *b)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md &&
             EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, X509_get0_pubkey(b->provider_cert), NULL) ==
                 1 &&
             EVP_DigestVerify(md, b->sig, b->sig_len, (const unsigned char *)payload, strlen(payload)) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static int op_keygen(cms_bench *b)
{
    (void)b;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY_free(k);
    return k != NULL;
}

/* One ECDH derive against the requester's public key, the peer not checked. */
static int op_ecdh(cms_bench *b)
{
    unsigned char secret[32];
    size_t len = sizeof secret;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, b->ephemeral, NULL);
    int ok = ctx && EVP_PKEY_derive_init(ctx) == 1 &&
             EVP_PKEY_derive_set_peer_ex(ctx, X509_get0_pubkey(b->requester_cert), 0) == 1 &&
             EVP_PKEY_derive(ctx, secret, &len) == 1;
    EVP_PKEY_CTX_free(ctx);
    rk_wipe(secret, sizeof secret);
    return ok;
}

/* The check EVP_PKEY_derive_set_peer runs on the peer's key first. */
static int op_peer_check(cms_bench *b)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, X509_get0_pubkey(b->requester_cert), NULL);
    int ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* ---- timing ------------------------------------------------------------------ */

typedef struct cms_op {
    const char *name;
    const char *what;
    int (*run)(cms_bench *b);
    double us; /* measured: µs per operation */
} cms_op;

/* Runs op for `seconds` in batches; 0 when every call succeeded. */
static int time_op(cms_bench *b, cms_op *op, double seconds)
{
    long n = 0;
    double start = rk_mono_s(), now = start;
    while (now - start < seconds) {
        for (int i = 0; i < 16; i++, n++)
            if (!op->run(b))
                return -1;
        now = rk_mono_s();
    }
    op->us = (now - start) * 1e6 / (double)n;
    printf("  %-11s %9.1f us/op %9.0f ops/s   %s\n", op->name, op->us, 1e6 / op->us, op->what);
    fflush(stdout);
    return 0;
}

enum { SEAL, OPEN, SIGN, VERIFY, KEYGEN, ECDH, CHECK, N_OPS };

static void print_split(const cms_op *ops)
{
    double cms = ops[SEAL].us + ops[OPEN].us;
    /* seal: a signature, an ephemeral key, one derive; open: one derive, one verification */
    double curve = ops[SIGN].us + ops[KEYGEN].us + 2 * ops[ECDH].us + ops[VERIFY].us;
    double checks = 2 * ops[CHECK].us;
    double rest = cms - curve - checks;
    printf("\none exchange's CMS work (seal + open)   %7.1f us\n", cms);
    printf("  P-256 arithmetic it needs            %7.1f us  %3.0f%%  (sign, ephemeral key, 2 derives, verify)\n",
           curve, 100 * curve / cms);
    printf("  peer-key checks before each derive   %7.1f us  %3.0f%%  (2 full checks, OpenSSL 3.0)\n", checks,
           100 * checks / cms);
    printf("  the rest (CMS, ASN.1, fetches)       %7.1f us  %3.0f%%\n", rest, 100 * rest / cms);
    printf("CMS alone allows at most %.0f exchanges/s per core.\n", 1e6 / cms);
}

int rk_bench_cms(double seconds)
{
    cms_op ops[N_OPS] = {
        [SEAL] = {"seal", "rk_cms_seal: the provider signs and encrypts a payload", op_seal, 0},
        [OPEN] = {"open", "rk_cms_open: the requester decrypts and verifies it", op_open, 0},
        [SIGN] = {"sign", "ECDSA P-256 / SHA-256 signature (EVP)", op_sign, 0},
        [VERIFY] = {"verify", "ECDSA P-256 / SHA-256 verification (EVP)", op_verify, 0},
        [KEYGEN] = {"keygen", "a P-256 ephemeral key (EVP)", op_keygen, 0},
        [ECDH] = {"ecdh", "one ECDH derive, peer not re-checked (EVP)", op_ecdh, 0},
        [CHECK] = {"peer-check", "EVP_PKEY_public_check on the peer (pub x order)", op_peer_check, 0},
    };
    cms_bench b = {0};
    if (bench_open(&b) != RK_OK) {
        bench_close(&b);
        return tk_failure("bench", "%s", b.err);
    }
    printf("renkei bench cms: one thread, %.1f s per operation, payload %zu bytes, sealed %zu bytes (base64)\n",
           seconds, strlen(payload), strlen(b.sealed));
    printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
    const char *failed = NULL;
    for (int i = 0; i < N_OPS && !failed; i++)
        if (time_op(&b, &ops[i], seconds) != 0)
            failed = ops[i].name;
    if (!failed)
        print_split(ops);
    bench_close(&b);
    if (failed)
        return tk_failure("bench", "%s failed during the run: the figures above are not valid", failed);
    return 0;
}

static const char usage_cms[] =
    "usage: renkei bench cms [--seconds S]\n"
    "\n"
    "Times, S seconds each (default 3) on one thread, with a throw-away CA and\n"
    "two agency certificates: rk_cms_seal (the provider signs and encrypts a\n"
    "payload), rk_cms_open (the requester decrypts and verifies it), and the\n"
    "P-256 operations inside them through EVP alone (sign, verify, ephemeral\n"
    "key, ECDH derive, and the peer-key check OpenSSL 3.0 runs before each\n"
    "derive). Prints us/op and how one exchange's CMS work splits between the\n"
    "curve arithmetic it needs, the peer checks and the rest of the library.\n";

int bench_cmd_cms(int argc, char **argv)
{
    static const struct option table[] = {
        {"seconds", required_argument, NULL, BENCH_OPT_SECONDS},
        BENCH_O_HELP,
        BENCH_O_END,
    };
    bench_opts o = {.seconds = 3};
    enum bench_parse_result pr = bench_parse_opts(argc, argv, table, &o);
    if (pr != BENCH_PARSE_OK)
        return pr == BENCH_PARSE_HELP ? (fputs(usage_cms, stdout), 0) : TK_EXIT_USAGE;
    return rk_bench_cms(o.seconds);
}
