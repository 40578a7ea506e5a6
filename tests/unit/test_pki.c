/* test_pki.c — the network CA, node certificates and keys (src/crypto/pki.c)
 * and `renkei pki` (src/tools/pki_cmd.c).
 *
 * One group fixture builds, in a mkdtemp directory: CA "a", a leaf from it,
 * an encrypted leaf, an expired leaf, and CA "b" with a leaf of its own.
 * The tests check files, loading, identity, chain verification, a TLS 1.3
 * mutual handshake and a CMS sign-then-encrypt round trip with one cert. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto/cms.h"
#include "crypto/pki.h"
#include "lib/util.h"

int rk_cmd_pki(int argc, char **argv);

#define PASSPHRASE "correct horse battery staple"

struct fixture {
    char dir[64];
    char ca_a[256], ca_a_key[256], ca_b[256], ca_b_key[256];
    char leaf[256], leaf_key[256];
    char enc[256], enc_key[256], pass_ok[256], pass_bad[256];
    char expired[256], expired_key[256];
    char other[256], other_key[256];
};

static struct fixture fx;

static void path_in(char *out, const char *file)
{
    snprintf(out, 256, "%s/%s", fx.dir, file);
}

static void write_text(const char *path, const char *text)
{
    assert_int_equal(rk_write_file(path, text, strlen(text), 0600), RK_OK);
}

static rk_cert_spec leaf_spec(const char *id, const char *role, const char *name)
{
    rk_cert_spec spec = {.common_name = id, .role = role, .name = name, .ip = "127.0.0.1"};
    return spec;
}

static void name_fixture_files(void)
{
    path_in(fx.ca_a, "ca-a.pem");
    path_in(fx.ca_a_key, "ca-a-key.pem");
    path_in(fx.ca_b, "ca-b.pem");
    path_in(fx.ca_b_key, "ca-b-key.pem");
    path_in(fx.leaf, "leaf.pem");
    path_in(fx.leaf_key, "leaf-key.pem");
    path_in(fx.enc, "enc.pem");
    path_in(fx.enc_key, "enc-key.pem");
    path_in(fx.pass_ok, "pass-ok.txt");
    path_in(fx.pass_bad, "pass-bad.txt");
    path_in(fx.expired, "expired.pem");
    path_in(fx.expired_key, "expired-key.pem");
    path_in(fx.other, "other.pem");
    path_in(fx.other_key, "other-key.pem");
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(fx.dir, sizeof fx.dir, "/tmp/rk-test-pki-XXXXXX");
    assert_non_null(mkdtemp(fx.dir));
    name_fixture_files();
    assert_int_equal(rk_pki_create_ca(fx.ca_a, fx.ca_a_key, "CA a", 0), RK_OK);
    assert_int_equal(rk_pki_create_ca(fx.ca_b, fx.ca_b_key, "CA b", 30), RK_OK);

    rk_cert_spec spec = leaf_spec("agency-1-gw", "gateway", "agency-1");
    assert_int_equal(rk_pki_issue(fx.ca_a, fx.ca_a_key, &spec, fx.leaf, fx.leaf_key, NULL), RK_OK);
    assert_int_equal(rk_pki_issue(fx.ca_a, fx.ca_a_key, &spec, fx.enc, fx.enc_key, PASSPHRASE), RK_OK);

    int64_t now = (int64_t)time(NULL);
    rk_cert_spec old = leaf_spec("old-node", "core", "old-node");
    old.not_before = now - 10 * 86400;
    old.not_after = now - 86400;
    assert_int_equal(rk_pki_issue(fx.ca_a, fx.ca_a_key, &old, fx.expired, fx.expired_key, NULL), RK_OK);

    rk_cert_spec stranger = leaf_spec("agency-1-gw", "gateway", "agency-1");
    assert_int_equal(rk_pki_issue(fx.ca_b, fx.ca_b_key, &stranger, fx.other, fx.other_key, NULL), RK_OK);

    write_text(fx.pass_ok, PASSPHRASE "\r\nsecond line is ignored\n");
    write_text(fx.pass_bad, "not the passphrase\n");
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(fx.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static X509 *load_cert(const char *path)
{
    X509 *cert = NULL;
    assert_int_equal(rk_pki_load_cert(path, &cert), RK_OK);
    return cert;
}

static EVP_PKEY *load_key(const char *path)
{
    EVP_PKEY *key = NULL;
    assert_int_equal(rk_pki_load_key(path, NULL, &key), RK_OK);
    return key;
}

static mode_t file_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 0777;
}

/* ---- files and loading ------------------------------------------------ */

static void test_load_cert_and_key(void **state)
{
    (void)state;
    X509 *cert = load_cert(fx.leaf);
    EVP_PKEY *key = load_key(fx.leaf_key);
    assert_int_equal(X509_check_private_key(cert, key), 1);
    assert_true(EVP_PKEY_is_a(key, "EC"));
    X509_free(cert);
    EVP_PKEY_free(key);
}

static void test_missing_files(void **state)
{
    (void)state;
    char path[256];
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    path_in(path, "nope.pem");
    assert_int_equal(rk_pki_load_cert(path, &cert), RK_ERR_NOT_FOUND);
    assert_int_equal(rk_pki_load_key(path, NULL, &key), RK_ERR_NOT_FOUND);
    assert_int_equal(rk_pki_load_cert(fx.pass_bad, &cert), RK_ERR_CRYPTO);
}

/* 第5-2(5): keys are 0600, anything wider is refused. */
static void test_key_file_mode(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    assert_int_equal(file_mode(fx.leaf_key), 0600);
    assert_int_equal(file_mode(fx.ca_a_key), 0600);
    assert_int_equal(file_mode(fx.enc_key), 0600);
    assert_int_equal(file_mode(fx.leaf), 0644);
    assert_int_equal(chmod(fx.leaf_key, 0644), 0);
    assert_int_equal(rk_pki_load_key(fx.leaf_key, NULL, &key), RK_ERR_DENIED);
    assert_null(key);
    assert_int_equal(chmod(fx.leaf_key, 0640), 0);
    assert_int_equal(rk_pki_load_key(fx.leaf_key, NULL, &key), RK_ERR_DENIED);
    assert_int_equal(chmod(fx.leaf_key, 0600), 0);
    assert_int_equal(rk_pki_load_key(fx.leaf_key, NULL, &key), RK_OK);
    EVP_PKEY_free(key);
}

static void test_key_is_pkcs8_pem(void **state)
{
    (void)state;
    char *text = NULL;
    assert_int_equal(rk_read_file(fx.leaf_key, 65536, &text, NULL), RK_OK);
    assert_non_null(strstr(text, "-----BEGIN " "PRIVATE KEY-----") /* split: no key-looking literal in the tree */);
    free(text);
    assert_int_equal(rk_read_file(fx.enc_key, 65536, &text, NULL), RK_OK);
    assert_non_null(strstr(text, "-----BEGIN " "ENCRYPTED PRIVATE KEY-----"));
    free(text);
}

static void test_passphrase_round_trip(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    X509 *cert = load_cert(fx.enc);
    assert_int_equal(rk_pki_load_key(fx.enc_key, fx.pass_ok, &key), RK_OK);
    assert_int_equal(X509_check_private_key(cert, key), 1);
    EVP_PKEY_free(key);
    key = NULL;
    assert_int_equal(rk_pki_load_key(fx.enc_key, fx.pass_bad, &key), RK_ERR_CRYPTO);
    assert_null(key);
    assert_int_equal(rk_pki_load_key(fx.enc_key, NULL, &key), RK_ERR_CRYPTO);
    assert_int_equal(rk_pki_load_key(fx.enc_key, "", &key), RK_ERR_CRYPTO);
    assert_null(key);
    assert_int_equal(ERR_peek_error(), 0);
    X509_free(cert);
}

static void test_pem_round_trip(void **state)
{
    (void)state;
    X509 *cert = load_cert(fx.leaf), *again = NULL;
    char *pem = NULL;
    char fp1[RK_FINGERPRINT_LEN], fp2[RK_FINGERPRINT_LEN];
    assert_int_equal(rk_pki_cert_to_pem(cert, &pem), RK_OK);
    assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE-----"));
    assert_int_equal(rk_pki_cert_from_pem(pem, strlen(pem), &again), RK_OK);
    assert_int_equal(rk_pki_fingerprint(cert, fp1), RK_OK);
    assert_int_equal(rk_pki_fingerprint(again, fp2), RK_OK);
    assert_string_equal(fp1, fp2);
    assert_int_equal(rk_pki_cert_from_pem("garbage", 7, &again) == RK_ERR_CRYPTO, 1);
    /* Found by fuzzing (tests/fuzz/corpus/cert/crash-der-with-trailing-bytes):
     * bytes after the certificate inside the block are refused, not ignored */
    X509 *longer = NULL;
    unsigned char *der = NULL;
    int der_len = i2d_X509(cert, &der);
    assert_true(der_len > 0);
    unsigned char *padded = malloc((size_t)der_len + 3);
    memcpy(padded, der, (size_t)der_len);
    memcpy(padded + der_len, "\x05\x00\x00", 3);
    char *b64 = NULL, block[4096];
    assert_int_equal(rk_base64_encode(padded, (size_t)der_len + 3, &b64), RK_OK);
    snprintf(block, sizeof block, "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n", b64);
    assert_int_equal(rk_pki_cert_from_pem(block, strlen(block), &longer), RK_ERR_CRYPTO);
    assert_null(longer);
    free(b64);
    /* and so is a certificate that is BER, not DER (tests/fuzz/corpus/cert/
     * crash-ber-bit-string: the signature's BIT STRING with an unused bit) */
    unsigned char *sig_bits = NULL;
    for (int i = der_len - 4; i > 0 && !sig_bits; i--)
        if (der[i] == 0x03 && der[i + 2] == 0x00 && der[i + 3] == 0x30 && der[i + 1] == der_len - i - 2)
            sig_bits = der + i + 2;
    assert_non_null(sig_bits);
    *sig_bits = 0x01;
    assert_int_equal(rk_base64_encode(der, (size_t)der_len, &b64), RK_OK);
    snprintf(block, sizeof block, "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n", b64);
    assert_int_equal(rk_pki_cert_from_pem(block, strlen(block), &longer), RK_ERR_CRYPTO);
    assert_null(longer);
    free(b64);
    free(padded);
    OPENSSL_free(der);
    free(pem);
    X509_free(cert);
    X509_free(again);
}

/* ---- digests and identity --------------------------------------------- */

static void test_fingerprint(void **state)
{
    (void)state;
    X509 *cert = load_cert(fx.leaf), *same = load_cert(fx.leaf), *other = load_cert(fx.other);
    char a[RK_FINGERPRINT_LEN], b[RK_FINGERPRINT_LEN], c[RK_FINGERPRINT_LEN];
    assert_int_equal(rk_pki_fingerprint(cert, a), RK_OK);
    assert_int_equal(rk_pki_fingerprint(same, b), RK_OK);
    assert_int_equal(rk_pki_fingerprint(other, c), RK_OK);
    assert_int_equal(strlen(a), 64);
    assert_int_equal(strspn(a, "0123456789abcdef"), 64);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    X509_free(cert);
    X509_free(same);
    X509_free(other);
}

static void test_spki_pin(void **state)
{
    (void)state;
    X509 *cert = load_cert(fx.leaf);
    char pin[RK_PIN_LEN], expected[RK_PIN_LEN];
    unsigned char *der = NULL, md[32];
    assert_int_equal(rk_pki_spki_pin(cert, pin), RK_OK);
    assert_int_equal(strncmp(pin, "sha256//", 8), 0);
    assert_int_equal(strlen(pin), 8 + 44);
    int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
    assert_true(len > 0);
    assert_int_equal(EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL), 1);
    memcpy(expected, "sha256//", 8);
    EVP_EncodeBlock((unsigned char *)expected + 8, md, 32);
    assert_string_equal(pin, expected);
    OPENSSL_free(der);
    X509_free(cert);
}

static void test_identity(void **state)
{
    (void)state;
    X509 *leaf = load_cert(fx.leaf), *ca = load_cert(fx.ca_a);
    char role[16], name[64], tiny[4];
    assert_int_equal(rk_pki_cert_identity(leaf, role, sizeof role, name, sizeof name), RK_OK);
    assert_string_equal(role, "gateway");
    assert_string_equal(name, "agency-1");
    assert_int_equal(rk_pki_cert_identity(leaf, role, sizeof role, tiny, sizeof tiny), RK_ERR_INVALID);
    assert_int_equal(rk_pki_cert_identity(ca, role, sizeof role, name, sizeof name), RK_ERR_INVALID);
    char cn[64];
    X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof cn);
    assert_string_equal(cn, "agency-1-gw");
    X509_free(leaf);
    X509_free(ca);
}

static void test_extensions(void **state)
{
    (void)state;
    X509 *leaf = load_cert(fx.leaf), *ca = load_cert(fx.ca_a);
    assert_int_equal(X509_check_ca(ca), 1);
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_int_equal(X509_get_pathlen(ca), 0);
    assert_true(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN);
    assert_true(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE);
    assert_true(X509_get_key_usage(leaf) & KU_KEY_AGREEMENT);
    assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
    assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT);
    assert_true(X509_get_extended_key_usage(leaf) & XKU_SMIME);
    assert_non_null(X509_get0_authority_key_id(leaf));
    assert_non_null(X509_get0_subject_key_id(ca));
    assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf), X509_get0_subject_key_id(ca)), 0);
    assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_host(leaf, "localhost", 0, 0, NULL), 1);
    BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    assert_int_equal(BN_num_bytes(serial), 16);
    assert_false(BN_is_negative(serial));
    BN_free(serial);
    X509_free(leaf);
    X509_free(ca);
}

static void test_invalid_specs(void **state)
{
    (void)state;
    char cert[256], key[256];
    path_in(cert, "bad.pem");
    path_in(key, "bad-key.pem");
    rk_cert_spec spec = leaf_spec("n1", "wizard", "n1");
    assert_int_equal(rk_pki_issue(fx.ca_a, fx.ca_a_key, &spec, cert, key, NULL), RK_ERR_INVALID);
    spec = leaf_spec("n1", "core", "a,URI:urn:renkei:core:x");
    assert_int_equal(rk_pki_issue(fx.ca_a, fx.ca_a_key, &spec, cert, key, NULL), RK_ERR_INVALID);
    spec = leaf_spec("n1", "core", "n1");
    spec.ip = "not-an-ip";
    assert_int_equal(rk_pki_issue(fx.ca_a, fx.ca_a_key, &spec, cert, key, NULL), RK_ERR_INVALID);
    spec = leaf_spec("n1", "core", "n1");
    spec.not_before = 2000000000;
    spec.not_after = 1000000000;
    assert_int_equal(rk_pki_issue(fx.ca_a, fx.ca_a_key, &spec, cert, key, NULL), RK_ERR_INVALID);
    spec = leaf_spec("n1", "core", "n1");
    assert_int_equal(rk_pki_issue(fx.ca_a, fx.ca_b_key, &spec, cert, key, NULL), RK_ERR_CRYPTO);
    assert_int_equal(access(cert, F_OK), -1);
    assert_int_equal(access(key, F_OK), -1);
}

/* ---- chain verification (第5-2(3)(4)) ---------------------------------- */

static int verify_against(const char *ca_path, const char *leaf_path, int purpose)
{
    X509 *ca = load_cert(ca_path), *leaf = load_cert(leaf_path);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_non_null(store);
    assert_non_null(ctx);
    assert_int_equal(X509_STORE_add_cert(store, ca), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
    if (purpose)
        X509_STORE_CTX_set_purpose(ctx, purpose);
    int ok = X509_verify_cert(ctx);
    int err = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(ca);
    X509_free(leaf);
    ERR_clear_error();
    return ok == 1 ? X509_V_OK : (err ? err : -1);
}

/* ---- the issuer: the CA loaded once, many certificates ------------------- */

#define ISSUER_THREADS 4
#define ISSUER_EACH 3

struct issue_job {
    rk_pki_issuer *is;
    int t;
    rk_rc rc;
};

static void *issue_some(void *arg)
{
    struct issue_job *j = arg;
    for (int k = 0; k < ISSUER_EACH && j->rc == RK_OK; k++) {
        char id[32], cert[256], key[256], file[64];
        snprintf(id, sizeof id, "node-%d-%d", j->t, k);
        snprintf(file, sizeof file, "%s.pem", id);
        path_in(cert, file);
        snprintf(file, sizeof file, "%s-key.pem", id);
        path_in(key, file);
        rk_cert_spec spec = leaf_spec(id, "gateway", id);
        j->rc = rk_pki_issuer_issue(j->is, &spec, cert, key, NULL, NULL);
    }
    return NULL;
}

static void test_issuer(void **state)
{
    (void)state;
    rk_pki_issuer *is = NULL;
    char cert[256], key[256], fp[RK_FINGERPRINT_LEN], fp_file[RK_FINGERPRINT_LEN];
    /* refusals: no CA, a key that is not the CA's; nothing opened */
    path_in(cert, "missing.pem");
    assert_int_not_equal(rk_pki_issuer_open(cert, fx.ca_a_key, &is), RK_OK);
    assert_null(is);
    assert_int_equal(rk_pki_issuer_open(fx.ca_a, fx.ca_b_key, &is), RK_ERR_CRYPTO);
    assert_null(is);
    rk_pki_issuer_close(NULL);

    assert_int_equal(rk_pki_issuer_open(fx.ca_a, fx.ca_a_key, &is), RK_OK);
    /* the certificate handed back is the one written */
    X509 *out = NULL, *written = NULL;
    rk_cert_spec spec = leaf_spec("issued-1", "agency", "city-x");
    path_in(cert, "issued-1.pem");
    path_in(key, "issued-1-key.pem");
    assert_int_equal(rk_pki_issuer_issue(is, &spec, cert, key, NULL, &out), RK_OK);
    assert_int_equal(rk_pki_load_cert(cert, &written), RK_OK);
    assert_int_equal(rk_pki_fingerprint(out, fp), RK_OK);
    assert_int_equal(rk_pki_fingerprint(written, fp_file), RK_OK);
    assert_string_equal(fp, fp_file);
    assert_int_equal(verify_against(fx.ca_a, cert, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    assert_int_equal(verify_against(fx.ca_b, cert, 0), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* a bad spec is refused and writes nothing */
    char bad[256], bad_key[256];
    path_in(bad, "issued-bad.pem");
    path_in(bad_key, "issued-bad-key.pem");
    spec = leaf_spec("issued-bad", "wizard", "issued-bad");
    assert_int_equal(rk_pki_issuer_issue(is, &spec, bad, bad_key, NULL, NULL), RK_ERR_INVALID);
    spec = leaf_spec("issued-bad", "core", "issued-bad");
    assert_int_equal(rk_pki_issuer_issue(NULL, &spec, bad, bad_key, NULL, NULL), RK_ERR_INVALID);
    assert_int_equal(rk_pki_issuer_issue(is, &spec, bad, bad_key, "", NULL), RK_ERR_INVALID);
    assert_int_equal(access(bad, F_OK), -1);
    assert_int_equal(access(bad_key, F_OK), -1);

    /* from several threads at once: every certificate verifies, every key its own */
    pthread_t threads[ISSUER_THREADS];
    struct issue_job jobs[ISSUER_THREADS];
    for (int t = 0; t < ISSUER_THREADS; t++) {
        jobs[t] = (struct issue_job){.is = is, .t = t, .rc = RK_OK};
        assert_int_equal(pthread_create(&threads[t], NULL, issue_some, &jobs[t]), 0);
    }
    for (int t = 0; t < ISSUER_THREADS; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(jobs[t].rc, RK_OK);
    }
    rk_pki_issuer_close(is);
    char pins[ISSUER_THREADS * ISSUER_EACH + 1][RK_PIN_LEN];
    int n = 0;
    assert_int_equal(rk_pki_spki_pin(out, pins[n++]), RK_OK);
    for (int t = 0; t < ISSUER_THREADS; t++)
        for (int k = 0; k < ISSUER_EACH; k++) {
            char file[64];
            X509 *x = NULL;
            snprintf(file, sizeof file, "node-%d-%d.pem", t, k);
            path_in(cert, file);
            assert_int_equal(verify_against(fx.ca_a, cert, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
            assert_int_equal(rk_pki_load_cert(cert, &x), RK_OK);
            assert_int_equal(rk_pki_spki_pin(x, pins[n]), RK_OK);
            for (int m = 0; m < n; m++)
                assert_string_not_equal(pins[m], pins[n]);
            n++;
            X509_free(x);
        }
    X509_free(out);
    X509_free(written);
}

static void test_chain_verification(void **state)
{
    (void)state;
    assert_int_equal(verify_against(fx.ca_a, fx.leaf, 0), X509_V_OK);
    assert_int_equal(verify_against(fx.ca_a, fx.leaf, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    assert_int_equal(verify_against(fx.ca_a, fx.leaf, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    assert_int_equal(verify_against(fx.ca_a, fx.leaf, X509_PURPOSE_SMIME_SIGN), X509_V_OK);
    /* Not X509_PURPOSE_SMIME_ENCRYPT: OpenSSL ties it to keyEncipherment (RSA);
     * an ECDH recipient has keyAgreement, and CMS_encrypt needs no purpose. */
    assert_int_not_equal(verify_against(fx.ca_a, fx.other, 0), X509_V_OK);
    assert_int_not_equal(verify_against(fx.ca_b, fx.leaf, 0), X509_V_OK);
    assert_int_equal(verify_against(fx.ca_b, fx.other, 0), X509_V_OK);
    assert_int_equal(verify_against(fx.ca_a, fx.expired, 0), X509_V_ERR_CERT_HAS_EXPIRED);
}

/* ---- TLS 1.3 mutual authentication in memory -------------------------- */

static SSL_CTX *tls_context(const char *cert_path, const char *key_path, const char *ca_path)
{
    X509 *cert = load_cert(cert_path), *ca = load_cert(ca_path);
    EVP_PKEY *key = load_key(key_path);
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
    assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    return ctx;
}

/* Drives both ends over a BIO pair; 1 when both finished the handshake. */
static int handshake(SSL *client, SSL *server)
{
    int client_done = 0, server_done = 0;
    for (int round = 0; round < 64 && !(client_done && server_done); round++) {
        if (!client_done) {
            int rc = SSL_do_handshake(client);
            if (rc == 1)
                client_done = 1;
            else if (SSL_get_error(client, rc) != SSL_ERROR_WANT_READ)
                return 0;
        }
        if (!server_done) {
            int rc = SSL_do_handshake(server);
            if (rc == 1)
                server_done = 1;
            else if (SSL_get_error(server, rc) != SSL_ERROR_WANT_READ)
                return 0;
        }
    }
    return client_done && server_done;
}

static int tls_pair(const char *client_cert, const char *client_key, const char *server_ca)
{
    SSL_CTX *client_ctx = tls_context(client_cert, client_key, fx.ca_a);
    SSL_CTX *server_ctx = tls_context(fx.leaf, fx.leaf_key, server_ca);
    SSL *client = SSL_new(client_ctx), *server = SSL_new(server_ctx);
    BIO *client_bio = NULL, *server_bio = NULL;
    assert_int_equal(BIO_new_bio_pair(&client_bio, 0, &server_bio, 0), 1);
    SSL_set_bio(client, client_bio, client_bio);
    SSL_set_bio(server, server_bio, server_bio);
    SSL_set_connect_state(client);
    SSL_set_accept_state(server);
    int ok = handshake(client, server);
    if (ok) {
        assert_int_equal(SSL_version(client), TLS1_3_VERSION);
        assert_int_equal(SSL_get_verify_result(client), X509_V_OK);
        assert_int_equal(SSL_get_verify_result(server), X509_V_OK);
        assert_non_null(SSL_get0_peer_certificate(server));
    }
    SSL_free(client);
    SSL_free(server);
    SSL_CTX_free(client_ctx);
    SSL_CTX_free(server_ctx);
    ERR_clear_error();
    return ok;
}

static void test_tls13_mutual_auth(void **state)
{
    (void)state;
    assert_true(tls_pair(fx.leaf, fx.leaf_key, fx.ca_a));
    /* A client certificate from another CA is refused by the server. */
    assert_false(tls_pair(fx.other, fx.other_key, fx.ca_a));
}

/* ---- CMS: sign, encrypt to the same certificate, decrypt, verify ------ */

static BIO *cms_to_der(CMS_ContentInfo *cms)
{
    BIO *out = BIO_new(BIO_s_mem());
    assert_non_null(out);
    assert_int_equal(i2d_CMS_bio(out, cms), 1);
    return out;
}

static CMS_ContentInfo *sign_and_encrypt(X509 *cert, EVP_PKEY *key, const char *msg)
{
    BIO *in = BIO_new_mem_buf(msg, (int)strlen(msg));
    CMS_ContentInfo *signed_cms = CMS_sign(cert, key, NULL, in, CMS_BINARY);
    assert_non_null(signed_cms);
    BIO *signed_der = cms_to_der(signed_cms);
    STACK_OF(X509) *recipients = sk_X509_new_null();
    assert_true(sk_X509_push(recipients, cert) > 0);
    CMS_ContentInfo *enveloped = CMS_encrypt(recipients, signed_der, EVP_aes_256_gcm(), CMS_BINARY);
    assert_non_null(enveloped);
    assert_int_equal(OBJ_obj2nid(CMS_get0_type(enveloped)), NID_id_smime_ct_authEnvelopedData);
    sk_X509_free(recipients);
    BIO_free(signed_der);
    CMS_ContentInfo_free(signed_cms);
    BIO_free(in);
    return enveloped;
}

static int decrypt_and_verify(BIO *wire, X509 *cert, EVP_PKEY *key, const char *ca_path, BIO *out)
{
    X509 *ca = load_cert(ca_path);
    X509_STORE *store = X509_STORE_new();
    assert_int_equal(X509_STORE_add_cert(store, ca), 1);
    CMS_ContentInfo *enveloped = d2i_CMS_bio(wire, NULL);
    assert_non_null(enveloped);
    BIO *plain = BIO_new(BIO_s_mem());
    assert_int_equal(CMS_decrypt(enveloped, key, cert, NULL, plain, CMS_BINARY), 1);
    CMS_ContentInfo *signed_cms = d2i_CMS_bio(plain, NULL);
    assert_non_null(signed_cms);
    int ok = CMS_verify(signed_cms, NULL, store, NULL, out, CMS_BINARY);
    CMS_ContentInfo_free(signed_cms);
    BIO_free(plain);
    CMS_ContentInfo_free(enveloped);
    X509_STORE_free(store);
    X509_free(ca);
    ERR_clear_error();
    return ok;
}

static void test_cms_round_trip(void **state)
{
    (void)state;
    static const char msg[] = "{\"status\":\"provided\",\"value\":42}";
    X509 *cert = load_cert(fx.leaf);
    EVP_PKEY *key = load_key(fx.leaf_key);
    CMS_ContentInfo *enveloped = sign_and_encrypt(cert, key, msg);
    BIO *wire = cms_to_der(enveloped), *wire_copy = cms_to_der(enveloped);
    BIO *out = BIO_new(BIO_s_mem());
    assert_int_equal(decrypt_and_verify(wire, cert, key, fx.ca_a, out), 1);
    char *data = NULL;
    long len = BIO_get_mem_data(out, &data);
    assert_int_equal(len, (long)strlen(msg));
    assert_memory_equal(data, msg, strlen(msg));
    BIO *ignored = BIO_new(BIO_s_mem());
    assert_int_equal(decrypt_and_verify(wire_copy, cert, key, fx.ca_b, ignored), 0);
    BIO_free(ignored);
    BIO_free(out);
    BIO_free(wire);
    BIO_free(wire_copy);
    CMS_ContentInfo_free(enveloped);
    EVP_PKEY_free(key);
    X509_free(cert);
}

/* ---- renkei pki ------------------------------------------------------- */

static int run_pki(int argc, const char *const *args)
{
    char *argv[24] = {0};
    for (int i = 0; i < argc; i++)
        argv[i] = (char *)args[i];
    return rk_cmd_pki(argc, argv);
}

static void test_cli(void **state)
{
    (void)state;
    char ca_dir[256], out_dir[256], cert[256], key[256], ca_cert[256];
    path_in(ca_dir, "cli/ca");
    path_in(out_dir, "cli/node");
    path_in(cert, "cli/node/cert.pem");
    path_in(key, "cli/node/key.pem");
    path_in(ca_cert, "cli/ca/ca.pem");
    const char *init[] = {"pki", "init", ca_dir, "--days", "10"};
    assert_int_equal(run_pki(5, init), 0);
    assert_int_equal(run_pki(5, init), 1);
    const char *issue[] = {"pki", "issue", "--ca", ca_dir, "--id", "jlis", "--role", "jlis",
                           "--ip", "::1", "--passphrase-file", fx.pass_ok, "--out", out_dir};
    assert_int_equal(run_pki(14, issue), 0);
    EVP_PKEY *pkey = NULL;
    assert_int_equal(rk_pki_load_key(key, fx.pass_ok, &pkey), RK_OK);
    EVP_PKEY_free(pkey);
    assert_int_equal(verify_against(ca_cert, cert, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    const char *show[] = {"pki", "show", cert};
    assert_int_equal(run_pki(3, show), 0);
    const char *fingerprint[] = {"pki", "fingerprint", cert};
    assert_int_equal(run_pki(3, fingerprint), 0);
    const char *bad_role[] = {"pki", "issue", "--ca", ca_dir, "--id", "x", "--role", "king", "--out", out_dir};
    assert_int_equal(run_pki(10, bad_role), 2);
    const char *missing[] = {"pki", "issue", "--ca", ca_dir, "--role", "core"};
    assert_int_equal(run_pki(6, missing), 2);
    const char *unknown[] = {"pki", "init", ca_dir, "--frobnicate"};
    assert_int_equal(run_pki(4, unknown), 2);
    const char *help[] = {"pki", "issue", "--help"};
    assert_int_equal(run_pki(3, help), 0);
    const char *nothing[] = {"pki"};
    assert_int_equal(run_pki(1, nothing), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_cert_and_key),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_key_file_mode),
        cmocka_unit_test(test_key_is_pkcs8_pem),
        cmocka_unit_test(test_passphrase_round_trip),
        cmocka_unit_test(test_pem_round_trip),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_spki_pin),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_extensions),
        cmocka_unit_test(test_invalid_specs),
        cmocka_unit_test(test_chain_verification),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_tls13_mutual_auth),
        cmocka_unit_test(test_cms_round_trip),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
