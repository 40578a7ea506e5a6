/* Unit tests: end-to-end protection of a provided value (standard 第6-4):
 * sign + encrypt to the requester, open only with its key and only when
 * signed by the registered provider certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/cms.h"
#include "lib/pki.h"

typedef struct party {
    X509 *cert;
    EVP_PKEY *key;
    char fp[RK_FINGERPRINT_LEN];
} party;

static char dir[64];
static party provider, requester, stale;
static X509_STORE *trusted;

static void issue(const char *id, int64_t not_after, party *p)
{
    char cert[160], key[160];
    snprintf(cert, sizeof cert, "%s/%s.pem", dir, id);
    snprintf(key, sizeof key, "%s/%s.key", dir, id);
    char ca[160], ca_key[160];
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(ca_key, sizeof ca_key, "%s/ca.key", dir);
    rk_cert_spec spec = {.common_name = id, .role = "agency", .name = id};
    if (not_after) {
        spec.not_before = not_after - 86400;
        spec.not_after = not_after;
    }
    assert_int_equal(rk_pki_issue(ca, ca_key, &spec, cert, key, NULL), RK_OK);
    assert_int_equal(rk_pki_load_cert(cert, &p->cert), RK_OK);
    assert_int_equal(rk_pki_load_key(key, NULL, &p->key), RK_OK);
    assert_int_equal(rk_pki_fingerprint(p->cert, p->fp), RK_OK);
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/rk-test-cms-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char ca[160], ca_key[160];
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(ca_key, sizeof ca_key, "%s/ca.key", dir);
    if (rk_pki_create_ca(ca, ca_key, "test CA", 30) != RK_OK || rk_ca_store_load(ca, &trusted) != RK_OK)
        return -1;
    issue("provider", 0, &provider);
    issue("requester", 0, &requester);
    issue("stale", (int64_t)time(NULL) - 3600, &stale);
    return 0;
}

static int teardown(void **state)
{
    party *all[] = {&provider, &requester, &stale};
    for (int i = 0; i < 3; i++) {
        X509_free(all[i]->cert);
        EVP_PKEY_free(all[i]->key);
    }
    X509_STORE_free(trusted);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char value[] = "{\"value\":{\"tax\":131000},\"as_of\":\"2026-06-01\"}";

static void sealed_value_opens_only_for_the_requester(void **state)
{
    char *b64 = NULL, *out = NULL;
    size_t len = 0;
    assert_int_equal(rk_cms_seal(provider.cert, provider.key, requester.cert, value, strlen(value), &b64), RK_OK);
    assert_null(strstr(b64, "131000"));
    assert_int_equal(rk_cms_open(requester.cert, requester.key, trusted, provider.fp, b64, &out, &len), RK_OK);
    assert_int_equal(len, strlen(value));
    assert_string_equal(out, value);
    free(out);
    /* not the recipient */
    assert_int_equal(rk_cms_open(provider.cert, provider.key, trusted, provider.fp, b64, &out, &len), RK_ERR_CRYPTO);
    /* signed by someone other than the registered provider */
    assert_int_equal(rk_cms_open(requester.cert, requester.key, trusted, requester.fp, b64, &out, &len),
                     RK_ERR_CRYPTO);
    char digest1[65], digest2[65];
    assert_int_equal(rk_payload_digest(b64, digest1), RK_OK);
    assert_int_equal(rk_payload_digest(b64, digest2), RK_OK);
    assert_string_equal(digest1, digest2);
    free(b64);
}

static void altered_payload_is_refused(void **state)
{
    char *b64 = NULL, *out = NULL;
    size_t len = 0;
    assert_int_equal(rk_cms_seal(provider.cert, provider.key, requester.cert, value, strlen(value), &b64), RK_OK);
    unsigned char *der = NULL;
    size_t der_len = 0;
    assert_int_equal(rk_base64_decode(b64, &der, &der_len), RK_OK);
    der[der_len / 2] ^= 1;
    char *altered = NULL;
    assert_int_equal(rk_base64_encode(der, der_len, &altered), RK_OK);
    assert_int_equal(rk_cms_open(requester.cert, requester.key, trusted, provider.fp, altered, &out, &len),
                     RK_ERR_CRYPTO);
    assert_int_equal(rk_cms_open(requester.cert, requester.key, trusted, provider.fp, "not base64!", &out, &len),
                     RK_ERR_CRYPTO);
    free(der);
    free(altered);
    free(b64);
}

static void expired_signer_is_refused(void **state)
{
    char *b64 = NULL, *out = NULL;
    size_t len = 0;
    assert_int_equal(rk_cms_seal(stale.cert, stale.key, requester.cert, value, strlen(value), &b64), RK_OK);
    assert_int_equal(rk_cms_open(requester.cert, requester.key, trusted, stale.fp, b64, &out, &len), RK_ERR_CRYPTO);
    free(b64);
}

static void base64_round_trip(void **state)
{
    const unsigned char bytes[] = {0, 1, 2, 253, 254, 255, 7};
    for (size_t n = 1; n <= sizeof bytes; n++) {
        char *b64 = NULL;
        unsigned char *back = NULL;
        size_t len = 0;
        assert_int_equal(rk_base64_encode(bytes, n, &b64), RK_OK);
        assert_int_equal(rk_base64_decode(b64, &back, &len), RK_OK);
        assert_int_equal(len, n);
        assert_memory_equal(back, bytes, n);
        free(b64);
        free(back);
    }
    unsigned char *back = NULL;
    size_t len = 0;
    assert_int_equal(rk_base64_decode("abc", &back, &len), RK_ERR_INVALID);
    assert_int_equal(rk_base64_decode("", &back, &len), RK_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sealed_value_opens_only_for_the_requester),
        cmocka_unit_test(altered_payload_is_refused),
        cmocka_unit_test(expired_signer_is_refused),
        cmocka_unit_test(base64_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
