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

#include <openssl/cms.h>
#include <openssl/objects.h>

#include "crypto/cms.h"
#include "net/peer_certs.h"
#include "crypto/pki.h"

typedef struct party {
    X509 *cert;
    EVP_PKEY *key;
    char fp[RK_FINGERPRINT_LEN];
} party;

static char dir[64];
static party provider, requester, stale, foreign;
static X509_STORE *trusted;

static void issue_by(const char *ca_name, const char *id, int64_t not_after, party *p)
{
    char cert[160], key[160];
    snprintf(cert, sizeof cert, "%s/%s.pem", dir, id);
    snprintf(key, sizeof key, "%s/%s.key", dir, id);
    char ca[160], ca_key[160];
    snprintf(ca, sizeof ca, "%s/%s.pem", dir, ca_name);
    snprintf(ca_key, sizeof ca_key, "%s/%s.key", dir, ca_name);
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

static void issue(const char *id, int64_t not_after, party *p) { issue_by("ca", id, not_after, p); }

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
    char other[160], other_key[160];
    snprintf(other, sizeof other, "%s/other-ca.pem", dir);
    snprintf(other_key, sizeof other_key, "%s/other-ca.key", dir);
    if (rk_pki_create_ca(other, other_key, "another CA", 30) != RK_OK)
        return -1;
    issue_by("other-ca", "foreign", 0, &foreign);
    return 0;
}

static int teardown(void **state)
{
    party *all[] = {&provider, &requester, &stale, &foreign};
    for (int i = 0; i < 4; i++) {
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
    assert_int_equal(rk_cms_open(requester.cert, requester.key, provider.cert, b64, &out, &len), RK_OK);
    assert_int_equal(len, strlen(value));
    assert_string_equal(out, value);
    free(out);
    /* not the recipient */
    assert_int_equal(rk_cms_open(provider.cert, provider.key, provider.cert, b64, &out, &len), RK_ERR_CRYPTO);
    /* signed by someone other than the registered provider */
    assert_int_equal(rk_cms_open(requester.cert, requester.key, requester.cert, b64, &out, &len),
                     RK_ERR_CRYPTO);
    char digest1[65], digest2[65];
    assert_int_equal(rk_payload_digest(b64, digest1), RK_OK);
    assert_int_equal(rk_payload_digest(b64, digest2), RK_OK);
    assert_string_equal(digest1, digest2);
    free(b64);
}

/* Found by fuzzing (tests/fuzz/corpus/cms/sealed_1.*): an empty value
 * opened into a read of no buffer (memcpy from NULL). */
static void empty_value_opens(void **state)
{
    char *b64 = NULL, *out = NULL;
    size_t len = 1;
    assert_int_equal(rk_cms_seal(provider.cert, provider.key, requester.cert, "", 0, &b64), RK_OK);
    assert_int_equal(rk_cms_open(requester.cert, requester.key, provider.cert, b64, &out, &len), RK_OK);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    free(out);
    free(b64);
}

/* Found by fuzzing (tests/fuzz/corpus/cms/crash-kek-wrap-pad): a payload
 * naming AES key wrap with padding corrupted memory inside OpenSSL's
 * CMS_decrypt; only the shape rk_cms_seal makes is opened now. */
static void other_key_wrap_is_refused(void **state)
{
    char *b64 = NULL, *out = NULL, *again = NULL;
    size_t len = 0, der_len = 0;
    unsigned char *der = NULL;
    static const unsigned char aes256_wrap[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2d};
    assert_int_equal(rk_cms_seal(provider.cert, provider.key, requester.cert, value, strlen(value), &b64), RK_OK);
    assert_int_equal(rk_base64_decode(b64, &der, &der_len), RK_OK);
    unsigned char *at = memmem(der, der_len, aes256_wrap, sizeof aes256_wrap);
    assert_non_null(at);
    at[sizeof aes256_wrap - 1] = 0x30; /* id-aes256-wrap-pad */
    assert_int_equal(rk_base64_encode(der, der_len, &again), RK_OK);
    assert_int_equal(rk_cms_open(requester.cert, requester.key, provider.cert, again, &out, &len), RK_ERR_CRYPTO);
    assert_null(out);
    free(again);
    free(der);
    free(b64);
}

static CMS_ContentInfo *cms_of(const char *b64)
{
    unsigned char *der = NULL;
    size_t len = 0;
    assert_int_equal(rk_base64_decode(b64, &der, &len), RK_OK);
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    free(der);
    assert_non_null(cms);
    return cms;
}

/* The sealed payload names the requester and the provider by subject key
 * identifier (RFC 5652 6.2.2, 5.3) and the signer digests with SHA-256. */
static void parties_are_named_by_key_identifier(void **state)
{
    char *b64 = NULL;
    assert_int_equal(rk_cms_seal(provider.cert, provider.key, requester.cert, value, strlen(value), &b64), RK_OK);
    CMS_ContentInfo *env = cms_of(b64);
    STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(env);
    assert_int_equal(sk_CMS_RecipientInfo_num(ris), 1);
    CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, 0);
    assert_int_equal(CMS_RecipientInfo_type(ri), CMS_RECIPINFO_AGREE);
    STACK_OF(CMS_RecipientEncryptedKey) *reks = CMS_RecipientInfo_kari_get0_reks(ri);
    ASN1_OCTET_STRING *keyid = NULL;
    X509_NAME *issuer = NULL;
    ASN1_INTEGER *serial = NULL;
    assert_int_equal(CMS_RecipientEncryptedKey_get0_id(sk_CMS_RecipientEncryptedKey_value(reks, 0), &keyid, NULL,
                                                       NULL, &issuer, &serial),
                     1);
    assert_non_null(keyid);
    assert_null(issuer);
    assert_int_equal(ASN1_OCTET_STRING_cmp(keyid, X509_get0_subject_key_id(requester.cert)), 0);

    BIO *inner = BIO_new(BIO_s_mem());
    assert_int_equal(CMS_decrypt(env, requester.key, requester.cert, NULL, inner, CMS_BINARY), 1);
    CMS_ContentInfo *sd = d2i_CMS_bio(inner, NULL);
    assert_non_null(sd);
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(sd), 0);
    keyid = NULL;
    issuer = NULL;
    assert_int_equal(CMS_SignerInfo_get0_signer_id(si, &keyid, &issuer, &serial), 1);
    assert_non_null(keyid);
    assert_null(issuer);
    assert_int_equal(ASN1_OCTET_STRING_cmp(keyid, X509_get0_subject_key_id(provider.cert)), 0);
    X509_ALGOR *digest = NULL;
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &digest, NULL);
    assert_int_equal(OBJ_obj2nid(digest->algorithm), NID_sha256);
    assert_null(CMS_get1_certs(sd)); /* no certificate inside (CMS_NOCERTS) */
    CMS_ContentInfo_free(sd);
    BIO_free(inner);
    CMS_ContentInfo_free(env);
    free(b64);
}

/* A payload sealed as before (issuer and serial number, the key's default
 * digest) still opens: nodes of both versions can exchange. */
static void payload_naming_issuer_and_serial_opens(void **state)
{
    BIO *in = BIO_new_mem_buf(value, (int)strlen(value)), *signed_bio = BIO_new(BIO_s_mem());
    STACK_OF(X509) *to = sk_X509_new_null();
    assert_true(in && signed_bio && to && sk_X509_push(to, requester.cert));
    CMS_ContentInfo *sd = CMS_sign(provider.cert, provider.key, NULL, in, CMS_BINARY | CMS_NOSMIMECAP | CMS_NOCERTS);
    assert_non_null(sd);
    assert_int_equal(i2d_CMS_bio(signed_bio, sd), 1);
    CMS_ContentInfo *env = CMS_encrypt(to, signed_bio, EVP_aes_256_gcm(), CMS_BINARY);
    assert_non_null(env);
    unsigned char *der = NULL;
    int n = i2d_CMS_ContentInfo(env, &der);
    assert_true(n > 0);
    char *b64 = NULL, *out = NULL;
    size_t len = 0;
    assert_int_equal(rk_base64_encode(der, (size_t)n, &b64), RK_OK);
    assert_int_equal(rk_cms_open(requester.cert, requester.key, provider.cert, b64, &out, &len), RK_OK);
    assert_string_equal(out, value);
    free(out);
    free(b64);
    OPENSSL_free(der);
    CMS_ContentInfo_free(env);
    CMS_ContentInfo_free(sd);
    sk_X509_free(to);
    BIO_free(in);
    BIO_free(signed_bio);
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
    assert_int_equal(rk_cms_open(requester.cert, requester.key, provider.cert, altered, &out, &len),
                     RK_ERR_CRYPTO);
    assert_int_equal(rk_cms_open(requester.cert, requester.key, provider.cert, "not base64!", &out, &len),
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
    assert_int_equal(rk_cms_open(requester.cert, requester.key, stale.cert, b64, &out, &len), RK_ERR_CRYPTO);
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

static char *pem_of(X509 *cert)
{
    char *pem = NULL;
    assert_int_equal(rk_pki_cert_to_pem(cert, &pem), RK_OK);
    return pem;
}

static void pem_fingerprint_is_the_der_digest(void **state)
{
    char *pem = pem_of(provider.cert), fp[RK_FINGERPRINT_LEN], text[RK_CERT_PEM_MAX + 2];
    assert_int_equal(rk_pem_cert_fingerprint(pem, fp), RK_OK);
    assert_string_equal(fp, provider.fp);
    snprintf(text, sizeof text, "\n  %s\n\n", pem); /* surrounding whitespace is fine */
    assert_int_equal(rk_pem_cert_fingerprint(text, fp), RK_OK);
    assert_string_equal(fp, provider.fp);
    /* anything but one certificate block is refused */
    char *second = pem_of(requester.cert);
    snprintf(text, sizeof text, "%s%s", pem, second);
    assert_int_equal(rk_pem_cert_fingerprint(text, fp), RK_ERR_INVALID);
    snprintf(text, sizeof text, "%sjunk", pem);
    assert_int_equal(rk_pem_cert_fingerprint(text, fp), RK_ERR_INVALID);
    assert_int_equal(rk_pem_cert_fingerprint("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----", fp),
                     RK_ERR_INVALID);
    assert_int_equal(rk_pem_cert_fingerprint("", fp), RK_ERR_INVALID);
    memset(text, 'A', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    assert_int_equal(rk_pem_cert_fingerprint(text, fp), RK_ERR_INVALID);
    free(pem);
    free(second);
}

static void peer_certs_admit_only_the_registered_certificate(void **state)
{
    rk_peer_certs *pc = NULL;
    assert_int_equal(rk_peer_certs_new(trusted, 1, &pc), RK_OK);
    char *prov = pem_of(provider.cert), *req = pem_of(requester.cert), *old = pem_of(stale.cert),
         *other = pem_of(foreign.cert);
    X509 *a = NULL, *b = NULL;
    assert_int_equal(rk_peer_certs_get(pc, prov, provider.fp, &a), RK_OK);
    assert_int_equal(X509_cmp(a, provider.cert), 0);
    assert_int_equal(rk_peer_certs_get(pc, prov, provider.fp, &b), RK_OK);
    assert_ptr_equal(a, b); /* parsed once, then kept */
    X509_free(a);
    X509_free(b);
    /* the cache is full (capacity 1): still answered, not kept */
    assert_int_equal(rk_peer_certs_get(pc, req, requester.fp, &a), RK_OK);
    assert_int_equal(X509_cmp(a, requester.cert), 0);
    X509_free(a);
    /* not the registered certificate, expired, another CA, not a PEM */
    assert_int_equal(rk_peer_certs_get(pc, req, provider.fp, &a), RK_ERR_INVALID);
    assert_int_equal(rk_peer_certs_get(pc, old, stale.fp, &a), RK_ERR_INVALID);
    assert_int_equal(rk_peer_certs_get(pc, other, foreign.fp, &a), RK_ERR_INVALID);
    assert_int_equal(rk_peer_certs_get(pc, "nonsense", provider.fp, &a), RK_ERR_INVALID);
    assert_int_equal(rk_peer_certs_get(pc, NULL, provider.fp, &a), RK_ERR_INVALID);
    free(prov);
    free(req);
    free(old);
    free(other);
    rk_peer_certs_free(pc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sealed_value_opens_only_for_the_requester),
        cmocka_unit_test(empty_value_opens),
        cmocka_unit_test(other_key_wrap_is_refused),
        cmocka_unit_test(parties_are_named_by_key_identifier),
        cmocka_unit_test(payload_naming_issuer_and_serial_opens),
        cmocka_unit_test(altered_payload_is_refused),
        cmocka_unit_test(expired_signer_is_refused),
        cmocka_unit_test(base64_round_trip),
        cmocka_unit_test(pem_fingerprint_is_the_der_digest),
        cmocka_unit_test(peer_certs_admit_only_the_registered_certificate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
