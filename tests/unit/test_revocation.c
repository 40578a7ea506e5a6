/* test_revocation.c — the network CA's CRL (src/crypto/pki.c, CRL section)
 * and the CRL in force (src/net/revocation.c).
 *
 * In a mkdtemp directory: CA "a" with two leaves, CA "b" (another network)
 * with a leaf. CRLs are written by rk_pki_crl_revoke as `renkei pki revoke`
 * does; the tests swap them in and out, refuse an older number, a CRL
 * signed by CA b, garbage and a truncated CRL, and run a TLS 1.3 handshake
 * whose verify callback refuses a revoked client certificate. Readers on
 * other threads see one CRL or the other while it is swapped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/pki.h"
#include "lib/util.h"
#include "net/revocation.h"

struct fixture {
    char dir[64];
    char ca_a[256], ca_a_key[256], ca_b[256], ca_b_key[256];
    char leaf1[256], leaf1_key[256], leaf2[256], leaf2_key[256], other[256], other_key[256];
    char crl[256], crl_b[256];
    X509 *ca_a_cert, *ca_b_cert, *c1, *c2, *c_other;
};

static struct fixture fx;

static void path_in(char *out, const char *file)
{
    snprintf(out, 256, "%s/%s", fx.dir, file);
}

static int setup(void **state)
{
    (void)state;
    snprintf(fx.dir, sizeof fx.dir, "/tmp/rk-revocation-XXXXXX");
    if (!mkdtemp(fx.dir))
        return -1;
    path_in(fx.ca_a, "a.pem");
    path_in(fx.ca_a_key, "a-key.pem");
    path_in(fx.ca_b, "b.pem");
    path_in(fx.ca_b_key, "b-key.pem");
    path_in(fx.leaf1, "l1.pem");
    path_in(fx.leaf1_key, "l1-key.pem");
    path_in(fx.leaf2, "l2.pem");
    path_in(fx.leaf2_key, "l2-key.pem");
    path_in(fx.other, "o.pem");
    path_in(fx.other_key, "o-key.pem");
    path_in(fx.crl, "crl.pem");
    path_in(fx.crl_b, "crl-b.pem");
    rk_cert_spec s1 = {.common_name = "gw-1", .role = "gateway", .name = "city-a", .ip = "127.0.0.1"};
    rk_cert_spec s2 = {.common_name = "ag-2", .role = "agency", .name = "city-b", .ip = "127.0.0.1"};
    if (rk_pki_create_ca(fx.ca_a, fx.ca_a_key, "renkei-network-ca", 0) != RK_OK ||
        rk_pki_create_ca(fx.ca_b, fx.ca_b_key, "renkei-network-ca", 0) != RK_OK || /* the same name, another key */
        rk_pki_issue(fx.ca_a, fx.ca_a_key, &s1, fx.leaf1, fx.leaf1_key, NULL) != RK_OK ||
        rk_pki_issue(fx.ca_a, fx.ca_a_key, &s2, fx.leaf2, fx.leaf2_key, NULL) != RK_OK ||
        rk_pki_issue(fx.ca_b, fx.ca_b_key, &s1, fx.other, fx.other_key, NULL) != RK_OK)
        return -1;
    if (rk_pki_load_cert(fx.ca_a, &fx.ca_a_cert) || rk_pki_load_cert(fx.ca_b, &fx.ca_b_cert) ||
        rk_pki_load_cert(fx.leaf1, &fx.c1) || rk_pki_load_cert(fx.leaf2, &fx.c2) ||
        rk_pki_load_cert(fx.other, &fx.c_other))
        return -1;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    X509_free(fx.ca_a_cert);
    X509_free(fx.ca_b_cert);
    X509_free(fx.c1);
    X509_free(fx.c2);
    X509_free(fx.c_other);
    rk_revocation_reset();
    nftw(fx.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Each test starts with no CRL in force, CA a set, and no CRL file. */
static int fresh(void **state)
{
    (void)state;
    rk_revocation_reset();
    unlink(fx.crl);
    unlink(fx.crl_b);
    return rk_revocation_set_ca(fx.ca_a_cert) == RK_OK ? 0 : -1;
}

static char *read_text(const char *path, size_t *len)
{
    char *text = NULL;
    assert_int_equal(rk_read_file(path, 1 << 22, &text, len), RK_OK);
    return text;
}

static rk_rc set_file(const char *path)
{
    return rk_revocation_load_file(path);
}

static void test_reasons(void **state)
{
    (void)state;
    assert_int_equal(rk_pki_crl_reason_parse("keyCompromise"), 1);
    assert_int_equal(rk_pki_crl_reason_parse("superseded"), 4);
    assert_int_equal(rk_pki_crl_reason_parse("cessationOfOperation"), 5);
    assert_int_equal(rk_pki_crl_reason_parse("aACompromise"), 10);
    assert_int_equal(rk_pki_crl_reason_parse("keycompromise"), -1);
    assert_int_equal(rk_pki_crl_reason_parse(""), -1);
    assert_int_equal(rk_pki_crl_reason_parse(NULL), -1);
    assert_string_equal(rk_pki_crl_reason_name(5), "cessationOfOperation");
    /* a code that is no reason is refused when revoking, the file untouched */
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, fx.c1, 7, NULL), RK_ERR_INVALID);
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, fx.c1, 11, NULL), RK_ERR_INVALID);
    assert_int_not_equal(access(fx.crl, F_OK), 0);
}

/* An empty CRL, then one listing c1: swapped in; c2 never listed. */
static void test_swap(void **state)
{
    (void)state;
    uint64_t n = 0;
    assert_int_equal(rk_revocation_number(), 0);
    assert_false(rk_revocation_is_revoked(fx.c1));
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, NULL, 0, &n), RK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(set_file(fx.crl), RK_OK);
    assert_int_equal(rk_revocation_number(), 1);
    assert_false(rk_revocation_is_revoked(fx.c1));
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, fx.c1, 1, &n), RK_OK);
    assert_int_equal(n, 2);
    assert_false(rk_revocation_is_revoked(fx.c1)); /* not in force until set */
    assert_int_equal(set_file(fx.crl), RK_OK);
    assert_int_equal(rk_revocation_number(), 2);
    assert_true(rk_revocation_is_revoked(fx.c1));
    assert_false(rk_revocation_is_revoked(fx.c2));
    /* the same CRL again: kept, no error */
    assert_int_equal(set_file(fx.crl), RK_OK);
    /* a second entry carries the first over */
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, fx.c2, 5, &n), RK_OK);
    assert_int_equal(n, 3);
    assert_int_equal(set_file(fx.crl), RK_OK);
    assert_true(rk_revocation_is_revoked(fx.c1));
    assert_true(rk_revocation_is_revoked(fx.c2));
    /* revoking twice: refused, the file unchanged */
    size_t l1 = 0, l2 = 0;
    char *before = read_text(fx.crl, &l1);
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, fx.c1, 4, &n), RK_ERR_EXISTS);
    char *after = read_text(fx.crl, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(before, after, l1);
    free(before);
    free(after);
    /* a certificate of CA b with c1's serial is not c1: not revoked by CA a's list */
    assert_false(rk_revocation_is_revoked(fx.c_other));
    /* CA a cannot revoke what CA b issued */
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, fx.c_other, 1, &n), RK_ERR_INVALID);
}

/* An older CRL (a rollback) is refused and the newer stays in force; the
 * same number with other entries too. */
static void test_older_refused(void **state)
{
    (void)state;
    size_t len1 = 0, len2 = 0;
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, NULL, 0, NULL), RK_OK);
    char *first = read_text(fx.crl, &len1); /* number 1, empty */
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, fx.c1, 4, NULL), RK_OK);
    char *second = read_text(fx.crl, &len2); /* number 2, c1 */
    assert_int_equal(rk_revocation_set_pem(second, len2), RK_OK);
    assert_int_equal(rk_revocation_set_pem(first, len1), RK_ERR_CONFLICT);
    assert_int_equal(rk_revocation_number(), 2);
    assert_true(rk_revocation_is_revoked(fx.c1));
    /* another number-2 list (c2 instead of c1), from another file history */
    unlink(fx.crl_b);
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl_b, NULL, 0, NULL), RK_OK);
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl_b, fx.c2, 4, NULL), RK_OK);
    assert_int_equal(set_file(fx.crl_b), RK_ERR_CONFLICT);
    assert_true(rk_revocation_is_revoked(fx.c1));
    assert_false(rk_revocation_is_revoked(fx.c2));
    free(first);
    free(second);
}

/* A CRL signed by another CA (even under the same name), garbage, a
 * truncated CRL, two CRLs in one text, nothing: refused, the CRL in force
 * stays. Without a CA set nothing is accepted. */
static void test_bad_crls(void **state)
{
    (void)state;
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, fx.c1, 1, NULL), RK_OK);
    assert_int_equal(set_file(fx.crl), RK_OK);
    assert_int_equal(rk_pki_crl_revoke(fx.ca_b, fx.ca_b_key, fx.crl_b, NULL, 0, NULL), RK_OK);
    assert_int_equal(rk_pki_crl_revoke(fx.ca_b, fx.ca_b_key, fx.crl_b, fx.c_other, 1, NULL), RK_OK);
    assert_int_equal(rk_pki_crl_revoke(fx.ca_b, fx.ca_b_key, fx.crl_b, NULL, 0, NULL), RK_OK); /* number 3 */
    assert_int_equal(set_file(fx.crl_b), RK_ERR_CRYPTO);
    /* CA a's writer refuses to extend CA b's list */
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl_b, fx.c2, 1, NULL), RK_ERR_CRYPTO);
    size_t len = 0;
    char *pem = read_text(fx.crl, &len);
    assert_int_equal(rk_revocation_set_pem(pem, len / 2), RK_ERR_INVALID);
    assert_int_equal(rk_revocation_set_pem("not a crl", 9), RK_ERR_INVALID);
    /* two CRLs in one text, or anything after the one */
    char *twice = malloc(2 * len + 1);
    memcpy(twice, pem, len);
    memcpy(twice + len, pem, len);
    assert_int_equal(rk_revocation_set_pem(twice, 2 * len), RK_ERR_INVALID);
    memcpy(twice + len, "x\n", 2);
    assert_int_equal(rk_revocation_set_pem(twice, len + 2), RK_ERR_INVALID);
    memcpy(twice + len, " \n", 2);
    assert_int_equal(rk_revocation_set_pem(twice, len + 2), RK_OK); /* the same CRL, blank after it */
    free(twice);
    assert_int_equal(rk_revocation_set_pem(pem, 0), RK_ERR_INVALID);
    assert_int_equal(rk_revocation_set_pem(NULL, 10), RK_ERR_INVALID);
    /* a flipped byte inside the signed part */
    char *bad = strdup(pem);
    char *mid = strstr(bad, "\n") + 20;
    *mid = *mid == 'A' ? 'B' : 'A';
    assert_int_not_equal(rk_revocation_set_pem(bad, len), RK_OK);
    free(bad);
    assert_int_equal(rk_revocation_number(), 1);
    assert_true(rk_revocation_is_revoked(fx.c1));
    assert_int_equal(rk_revocation_load_file("/nonexistent/crl.pem"), RK_ERR_NOT_FOUND);
    rk_revocation_reset();
    assert_int_equal(rk_revocation_set_pem(pem, len), RK_ERR_CONFIG);
    assert_false(rk_revocation_is_revoked(fx.c1));
    free(pem);
}

/* Readers on other threads while the CRL is swapped: always an answer of
 * one CRL or the other, never a crash (run under the sanitizers too). */
struct reader {
    int stop, seen_revoked, seen_clear;
};

static void *read_loop(void *arg)
{
    struct reader *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        if (rk_revocation_is_revoked(fx.c1))
            r->seen_revoked = 1;
        else
            r->seen_clear = 1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    size_t lens[20];
    char *texts[20];
    unlink(fx.crl);
    for (int i = 0; i < 20; i++) {
        /* numbers 1..20; c1 listed from number 11 on */
        assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, i == 10 ? fx.c1 : NULL, 1, NULL), RK_OK);
        texts[i] = read_text(fx.crl, &lens[i]);
    }
    struct reader r = {0};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, read_loop, &r), 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(rk_revocation_set_pem(texts[i], lens[i]), RK_OK);
        usleep(2000);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_true(r.seen_revoked);
    assert_true(r.seen_clear);
    assert_int_equal(rk_revocation_number(), 20);
    for (int i = 0; i < 20; i++)
        free(texts[i]);
}

/* A TLS 1.3 handshake with the verify callback the listeners use: a
 * revoked client certificate is refused, another one passes. */
static int handshake(const char *client_cert, const char *client_key)
{
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(sctx);
    assert_non_null(cctx);
    assert_int_equal(SSL_CTX_use_certificate_file(sctx, fx.leaf2, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(sctx, fx.leaf2_key, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_load_verify_locations(sctx, fx.ca_a, NULL), 1);
    SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, rk_revocation_verify);
    assert_int_equal(SSL_CTX_use_certificate_file(cctx, client_cert, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(cctx, client_key, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_load_verify_locations(cctx, fx.ca_a, NULL), 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, rk_revocation_verify);
    SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
    SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    BIO *sb = NULL, *cb = NULL;
    assert_int_equal(BIO_new_bio_pair(&sb, 0, &cb, 0), 1);
    SSL_set_bio(s, sb, sb);
    SSL_set_bio(c, cb, cb);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    int done_s = 0, done_c = 0, failed = 0;
    char byte;
    for (int i = 0; i < 50 && !failed && !(done_s && done_c); i++) {
        int rc = SSL_connect(c);
        if (rc == 1) {
            done_c = 1;
            SSL_read(c, &byte, 1); /* takes the server's verdict on the client certificate */
        } else if (SSL_get_error(c, rc) != SSL_ERROR_WANT_READ)
            failed = 1;
        rc = SSL_do_handshake(s);
        if (rc == 1)
            done_s = 1;
        else if (SSL_get_error(s, rc) != SSL_ERROR_WANT_READ)
            failed = 1;
    }
    long verdict = SSL_get_verify_result(s);
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    ERR_clear_error();
    return !failed && done_s && verdict == X509_V_OK;
}

static void test_handshake(void **state)
{
    (void)state;
    assert_true(handshake(fx.leaf1, fx.leaf1_key));
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, fx.c1, 1, NULL), RK_OK);
    assert_int_equal(set_file(fx.crl), RK_OK);
    assert_false(handshake(fx.leaf1, fx.leaf1_key));
    /* the server's certificate (leaf2) alone revoked: the client refuses it */
    assert_int_equal(fresh(NULL), 0);
    assert_true(handshake(fx.leaf1, fx.leaf1_key));
    assert_int_equal(rk_pki_crl_revoke(fx.ca_a, fx.ca_a_key, fx.crl, fx.c2, 1, NULL), RK_OK);
    assert_int_equal(set_file(fx.crl), RK_OK);
    assert_false(handshake(fx.leaf1, fx.leaf1_key));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_reasons, fresh),
        cmocka_unit_test_setup(test_swap, fresh),
        cmocka_unit_test_setup(test_older_refused, fresh),
        cmocka_unit_test_setup(test_bad_crls, fresh),
        cmocka_unit_test_setup(test_threads, fresh),
        cmocka_unit_test_setup(test_handshake, fresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
