/* bench_cms.c — `renkei bench cms` (see bench_cms.h). */
#include "tools/bench_cms.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/cms.h"
#include "lib/pki.h"
#include "lib/util.h"

#define SIG_MAX 128

/* A provision's inner document as the provider signs it (provision.c). */
static const char payload[] =
    "{\"exchange_id\":\"pref-kanagawa.0123456789abcdef0123456789abcdef\",\"provider\":\"city-yokohama\","
    "\"item\":\"local_tax\",\"value\":{\"year\":2026,\"income\":4200000,\"tax\":210000},"
    "\"as_of\":\"2026-04-01\",\"version\":1}";

typedef struct cms_bench {
    char dir[64];
    X509 *provider_cert, *requester_cert;
    EVP_PKEY *provider_key, *requester_key;
    EVP_PKEY *ephemeral;  /* an ephemeral key as CMS makes one per message */
    char *sealed;         /* one payload sealed to the requester */
    unsigned char sig[SIG_MAX];
    size_t sig_len;
} cms_bench;

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void path_in(const cms_bench *b, const char *file, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", b->dir, file);
}

static rk_rc issue(const cms_bench *b, const char *id, X509 **cert, EVP_PKEY **key)
{
    char ca_cert[128], ca_key[128], cert_path[128], key_path[128], name[64];
    path_in(b, "ca.pem", ca_cert, sizeof ca_cert);
    path_in(b, "ca.key", ca_key, sizeof ca_key);
    snprintf(name, sizeof name, "%s.pem", id);
    path_in(b, name, cert_path, sizeof cert_path);
    snprintf(name, sizeof name, "%s.key", id);
    path_in(b, name, key_path, sizeof key_path);
    rk_cert_spec spec = {.common_name = id, .role = "agency", .name = id};
    rk_rc rc = rk_pki_issue(ca_cert, ca_key, &spec, cert_path, key_path, NULL);
    if (rc == RK_OK)
        rc = rk_pki_load_cert(cert_path, cert);
    if (rc == RK_OK)
        rc = rk_pki_load_key(key_path, NULL, key);
    unlink(cert_path);
    unlink(key_path);
    return rc;
}

static rk_rc bench_open(cms_bench *b)
{
    snprintf(b->dir, sizeof b->dir, "/tmp/renkei-bench-cms-XXXXXX");
    if (!mkdtemp(b->dir)) {
        b->dir[0] = '\0';
        return RK_ERR_IO;
    }
    char ca_cert[128], ca_key[128];
    path_in(b, "ca.pem", ca_cert, sizeof ca_cert);
    path_in(b, "ca.key", ca_key, sizeof ca_key);
    rk_rc rc = rk_pki_create_ca(ca_cert, ca_key, "renkei bench CA", 1);
    if (rc == RK_OK)
        rc = issue(b, "city-yokohama", &b->provider_cert, &b->provider_key);
    if (rc == RK_OK)
        rc = issue(b, "pref-kanagawa", &b->requester_cert, &b->requester_key);
    unlink(ca_cert);
    unlink(ca_key);
    if (rc == RK_OK && !(b->ephemeral = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")))
        rc = RK_ERR_CRYPTO;
    if (rc == RK_OK)
        rc = rk_cms_seal(b->provider_cert, b->provider_key, b->requester_cert, payload, strlen(payload),
                         &b->sealed);
    return rc;
}

static void bench_close(cms_bench *b)
{
    X509_free(b->provider_cert);
    X509_free(b->requester_cert);
    EVP_PKEY_free(b->provider_key);
    EVP_PKEY_free(b->requester_key);
    EVP_PKEY_free(b->ephemeral);
    free(b->sealed);
    if (b->dir[0])
        rmdir(b->dir);
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
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    b->sig_len = sizeof b->sig;
    int ok = md && EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, b->provider_key, NULL) == 1 &&
             EVP_DigestSign(md, b->sig, &b->sig_len, (const unsigned char *)payload, strlen(payload)) == 1;
    EVP_MD_CTX_free(md);
    return ok;
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
    double start = mono_s(), now = start;
    while (now - start < seconds) {
        for (int i = 0; i < 16; i++, n++)
            if (!op->run(b))
                return -1;
        now = mono_s();
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
    rk_rc rc = bench_open(&b);
    if (rc != RK_OK) {
        bench_close(&b);
        fprintf(stderr, "renkei bench: cannot make the certificates and a sealed payload: %s\n", rk_strerror(rc));
        return 1;
    }
    printf("renkei bench cms: one thread, %.1f s per operation, payload %zu bytes, sealed %zu bytes (base64)\n",
           seconds, strlen(payload), strlen(b.sealed));
    printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
    int failed = 0;
    for (int i = 0; i < N_OPS && !failed; i++)
        failed = time_op(&b, &ops[i], seconds) != 0;
    if (!failed)
        print_split(ops);
    bench_close(&b);
    if (failed) {
        fprintf(stderr, "renkei bench: an operation failed during the run: the figures above are not valid\n");
        return 1;
    }
    return 0;
}
