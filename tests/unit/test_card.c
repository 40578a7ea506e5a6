/* Unit tests: persons' cards (crypto/card.h) — a card names its serial and
 * nothing else, its PKCS#12 holds the same key and certificate, the CRL
 * grows by one serial a revocation with the next number, a CRL of another
 * CA or an older one is refused, and the person listener's store accepts a
 * card only while a CRL is in force that does not list it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto/card.h"
#include "crypto/pki.h"
#include "lib/util.h"

static char dir[64], ca[128], ca_key[128], crl[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/rk-test-card-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(ca, sizeof ca, "%s/card-ca.pem", dir);
    snprintf(ca_key, sizeof ca_key, "%s/card-ca-key.pem", dir);
    snprintf(crl, sizeof crl, "%s/card-crl.pem", dir);
    return rk_card_ca_create(ca, ca_key, crl) == RK_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *read_text(const char *path, size_t *len)
{
    char *text = NULL;
    assert_int_equal(rk_read_file(path, 1 << 20, &text, len), RK_OK);
    return text;
}

/* Issues a card into dir/<name>; its certificate. */
static X509 *issue(const char *name, char serial[RK_CARD_SERIAL_LEN + 1])
{
    char out[160], path[200];
    X509 *cert = NULL;
    snprintf(out, sizeof out, "%s/%s", dir, name);
    assert_int_equal(rk_card_issue(ca, ca_key, out, serial), RK_OK);
    snprintf(path, sizeof path, "%s/cert.pem", out);
    assert_int_equal(rk_pki_load_cert(path, &cert), RK_OK);
    return cert;
}

/* 1 when the store verifies cert for client authentication. */
static int verifies(X509_STORE *store, X509 *cert)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, NULL), 1);
    int ok = X509_verify_cert(ctx) == 1;
    X509_STORE_CTX_free(ctx);
    return ok;
}

static void serials(void **state)
{
    (void)state;
    assert_true(rk_card_serial_valid("0123456789abcdef0123456789abcdef"));
    assert_false(rk_card_serial_valid("0123456789ABCDEF0123456789abcdef"));
    assert_false(rk_card_serial_valid("0123456789abcdef0123456789abcde"));
    assert_false(rk_card_serial_valid("0123456789abcdef0123456789abcdef0"));
    assert_false(rk_card_serial_valid("0123456789abcdef0123456789abcdeg"));
    assert_false(rk_card_serial_valid(""));
    assert_false(rk_card_serial_valid(NULL));
}

static void a_card_names_its_serial_only(void **state)
{
    (void)state;
    char serial[RK_CARD_SERIAL_LEN + 1], other[RK_CARD_SERIAL_LEN + 1], seen[RK_CARD_SERIAL_LEN + 1], cn[64];
    X509 *cert = issue("a", serial), *second = issue("b", other);
    assert_true(rk_card_serial_valid(serial));
    assert_string_not_equal(serial, other);
    assert_int_equal(rk_card_serial_of(cert, seen), RK_OK);
    assert_string_equal(seen, serial);
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0);
    assert_string_equal(cn, serial);
    assert_null(X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL)); /* no urn:renkei: name */
    assert_true(X509_check_purpose(cert, X509_PURPOSE_SSL_CLIENT, 0) == 1);
    assert_true(X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0) != 1);
    /* the key is private, the PKCS#12 holds the same pair */
    char path[200];
    struct stat st;
    snprintf(path, sizeof path, "%s/a/key.pem", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/a/card.p12", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    PKCS12 *p12 = d2i_PKCS12_fp(f, NULL);
    fclose(f);
    EVP_PKEY *key = NULL;
    X509 *in = NULL;
    assert_int_equal(PKCS12_parse(p12, "", &key, &in, NULL), 1);
    assert_int_equal(X509_cmp(in, cert), 0);
    assert_int_equal(X509_check_private_key(cert, key), 1);
    PKCS12_free(p12);
    EVP_PKEY_free(key);
    X509_free(in);
    X509_free(cert);
    X509_free(second);
}

static void revocation_and_the_trust_of_the_person_listener(void **state)
{
    (void)state;
    char a[RK_CARD_SERIAL_LEN + 1], b[RK_CARD_SERIAL_LEN + 1];
    X509 *card_a = issue("a", a), *card_b = issue("b", b);
    rk_card_trust *t = NULL;
    assert_int_equal(rk_card_trust_new(ca, &t), RK_OK);
    X509_STORE *store = rk_card_trust_store(t);
    assert_int_equal(rk_card_trust_crl_number(t), 0);
    assert_false(verifies(store, card_a)); /* no CRL in force: no card */

    size_t len = 0;
    char *first = read_text(crl, &len);
    assert_int_equal(rk_card_trust_set_crl(t, first, len), RK_OK);
    assert_int_equal(rk_card_trust_crl_number(t), 1);
    assert_true(verifies(store, card_a));
    assert_true(verifies(store, card_b));

    assert_int_equal(rk_card_revoke(ca, ca_key, crl, a), RK_OK);
    assert_int_equal(rk_card_revoke(ca, ca_key, crl, a), RK_ERR_EXISTS); /* nothing written */
    assert_int_equal(rk_card_revoke(ca, ca_key, crl, "xyz"), RK_ERR_INVALID);
    char *second = read_text(crl, &len);
    X509 *ca_cert = NULL;
    X509_CRL *parsed = NULL;
    long number = 0;
    assert_int_equal(rk_pki_load_cert(ca, &ca_cert), RK_OK);
    assert_int_equal(rk_card_crl_read(second, len, ca_cert, &parsed, &number), RK_OK);
    assert_int_equal(number, 2);
    assert_true(rk_card_crl_lists(parsed, a));
    assert_false(rk_card_crl_lists(parsed, b));
    X509_CRL_free(parsed);
    /* until the portal takes the new CRL, the card still passes; then not, the other still does */
    assert_true(verifies(store, card_a));
    assert_int_equal(rk_card_trust_set_crl(t, second, len), RK_OK);
    assert_false(verifies(store, card_a));
    assert_true(verifies(store, card_b));
    /* an older CRL is refused and the one in force stays */
    assert_int_equal(rk_card_trust_set_crl(t, first, strlen(first)), RK_ERR_CONFLICT);
    assert_int_equal(rk_card_trust_crl_number(t), 2);
    assert_false(verifies(store, card_a));
    /* a CRL another CA signed, and garbage, are refused */
    char other_ca[160], other_key[160], other_crl[160];
    snprintf(other_ca, sizeof other_ca, "%s/other-ca.pem", dir);
    snprintf(other_key, sizeof other_key, "%s/other-key.pem", dir);
    snprintf(other_crl, sizeof other_crl, "%s/other-crl.pem", dir);
    assert_int_equal(rk_card_ca_create(other_ca, other_key, other_crl), RK_OK);
    char *foreign = read_text(other_crl, &len);
    assert_int_equal(rk_card_trust_set_crl(t, foreign, len), RK_ERR_CRYPTO);
    assert_int_equal(rk_card_trust_set_crl(t, "not a crl", 9), RK_ERR_INVALID);
    assert_int_equal(rk_card_trust_crl_number(t), 2);
    /* a card of the other CA passes nowhere here, nor a node certificate of another CA */
    char other_serial[RK_CARD_SERIAL_LEN + 1], out[160], path[200];
    X509 *stranger = NULL;
    snprintf(out, sizeof out, "%s/stranger", dir);
    assert_int_equal(rk_card_issue(other_ca, other_key, out, other_serial), RK_OK);
    snprintf(path, sizeof path, "%s/cert.pem", out);
    assert_int_equal(rk_pki_load_cert(path, &stranger), RK_OK);
    assert_false(verifies(store, stranger));
    X509_free(stranger);
    free(foreign);
    free(first);
    free(second);
    X509_free(ca_cert);
    X509_free(card_a);
    X509_free(card_b);
    rk_card_trust_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(serials),
        cmocka_unit_test_setup_teardown(a_card_names_its_serial_only, setup, teardown),
        cmocka_unit_test_setup_teardown(revocation_and_the_trust_of_the_person_listener, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
