/* Unit tests: crypto/keys (one loader of private keys, files and pkcs11:
 * URIs, 第5-2(5)) and the core's code key file (core/codes.h): rotation
 * keeps earlier codes converting, an unknown version is refused, a wrapped
 * file opens only with the core's key, also when that key is in a token.
 * The token is a real SoftHSM2 token made in a temporary folder
 * (softhsm2-util, pkcs11-tool: scripts/install-deps.sh installs them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/codes.h"
#include "crypto/cms.h"
#include "crypto/keys.h"
#include "crypto/pki.h"
#include "lib/util.h"

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"

static struct {
    char dir[256], ca[300], ca_key[300], cert[300], key[300], pin[300], bad_pin[300], conf[300];
    char uri[600];
    X509 *x509;
} fx;

static void put(const char *path, const char *text, int mode)
{
    assert_int_equal(rk_write_file(path, text, strlen(text), (unsigned)mode), RK_OK);
}


/* A CA, a leaf and its key file; a SoftHSM2 token of this test's own
 * holding a copy of the leaf's key (CKA_SIGN, CKA_DERIVE) and certificate. */
static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(fx.dir, sizeof fx.dir, "%s/rk-test-keys-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fx.dir))
        return -1;
    snprintf(fx.ca, sizeof fx.ca, "%s/ca.pem", fx.dir);
    snprintf(fx.ca_key, sizeof fx.ca_key, "%s/ca-key.pem", fx.dir);
    snprintf(fx.cert, sizeof fx.cert, "%s/cert.pem", fx.dir);
    snprintf(fx.key, sizeof fx.key, "%s/key.pem", fx.dir);
    snprintf(fx.pin, sizeof fx.pin, "%s/pin", fx.dir);
    snprintf(fx.bad_pin, sizeof fx.bad_pin, "%s/bad-pin", fx.dir);
    snprintf(fx.conf, sizeof fx.conf, "%s/softhsm2.conf", fx.dir);
    rk_cert_spec spec = {.common_name = "core", .role = "core", .name = "core"};
    if (rk_pki_create_ca(fx.ca, fx.ca_key, "test CA", 0) != RK_OK ||
        rk_pki_issue(fx.ca, fx.ca_key, &spec, fx.cert, fx.key, NULL) != RK_OK ||
        rk_pki_load_cert(fx.cert, &fx.x509) != RK_OK)
        return -1;
    char text[600];
    snprintf(text, sizeof text, "directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
             fx.dir);
    if (rk_write_file(fx.conf, text, strlen(text), 0600) != RK_OK ||
        rk_write_file(fx.pin, "246810\n", 7, 0600) != RK_OK || rk_write_file(fx.bad_pin, "111111\n", 7, 0600) != RK_OK)
        return -1;
    setenv("SOFTHSM2_CONF", fx.conf, 1); /* before the engine starts */
    char cmd[4096];
    const char *d = fx.dir;
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/tokens && softhsm2-util --init-token --free --label unit --pin 246810 --so-pin 135790"
             " >/dev/null && openssl pkey -in %s/key.pem -outform DER -out %s/key.der && openssl x509 -in %s/cert.pem"
             " -outform DER -out %s/cert.der && openssl pkey -in %s/ca-key.pem -outform DER -out %s/ca-key.der"
             " && openssl x509 -in %s/ca.pem -outform DER -out %s/ca.der",
             d, d, d, d, d, d, d, d, d);
    if (system(cmd) != 0)
        return -1;
    snprintf(cmd, sizeof cmd,
             "pkcs11-tool --module " MODULE " --token-label unit --login --pin 246810 --write-object %s/key.der"
             " --type privkey --id 01 --label core --usage-sign --usage-derive >/dev/null 2>&1 && pkcs11-tool --module "
             MODULE " --token-label unit --login --pin 246810 --write-object %s/cert.der --type cert --id 01"
             " --label core >/dev/null 2>&1",
             d, d);
    if (system(cmd) != 0)
        return -1;
    snprintf(cmd, sizeof cmd,
             "pkcs11-tool --module " MODULE " --token-label unit --login --pin 246810 --write-object %s/ca-key.der"
             " --type privkey --id 02 --label ca --usage-sign --usage-derive >/dev/null 2>&1 && pkcs11-tool --module "
             MODULE " --token-label unit --login --pin 246810 --write-object %s/ca.der --type cert --id 02"
             " --label ca >/dev/null 2>&1",
             d, d);
    if (system(cmd) != 0)
        return -1;
    snprintf(fx.uri, sizeof fx.uri, "pkcs11:token=unit;object=core;type=private?module-path=" MODULE);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    X509_free(fx.x509);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx.dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- files -------------------------------------------------------------- */

static void a_key_file_loads_and_group_readable_is_refused(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    char err[512];
    assert_int_equal(rk_pkey_load(fx.key, NULL, &k, err, sizeof err), RK_OK);
    assert_int_equal(X509_check_private_key(fx.x509, k), 1);
    EVP_PKEY_free(k);
    k = NULL;
    chmod(fx.key, 0640);
    assert_int_equal(rk_pkey_load(fx.key, NULL, &k, err, sizeof err), RK_ERR_DENIED);
    assert_non_null(strstr(err, "chmod 600"));
    chmod(fx.key, 0600);
    char missing[320];
    snprintf(missing, sizeof missing, "%s/none.pem", fx.dir);
    assert_int_equal(rk_pkey_load(missing, NULL, &k, err, sizeof err), RK_ERR_NOT_FOUND);
    assert_null(k);
}

static void malformed_uris_and_no_pin_are_refused(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    char err[512];
    static const char *const bad[] = {"pkcs11:", "pkcs11:object=core?pin-value=%zz", "pkcs11:object=core?pin-value",
                                      "pkcs11:object=core;pin-value=%4"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rk_pkey_load(bad[i], NULL, &k, err, sizeof err), RK_ERR_CONFIG);
        assert_null(k);
    }
    assert_int_equal(rk_pkey_load(fx.uri, NULL, &k, err, sizeof err), RK_ERR_CONFIG);
    assert_non_null(strstr(err, "no PIN"));
}

/* ---- the token ------------------------------------------------------------ */

static void a_token_key_signs_and_decrypts_cms_inside_the_token(void **state)
{
    (void)state;
    EVP_PKEY *tok = NULL, *file = NULL;
    char err[512], *b64 = NULL, *back = NULL;
    size_t len = 0;
    assert_int_equal(rk_pkey_load(fx.uri, fx.pin, &tok, err, sizeof err), RK_OK);
    assert_int_equal(X509_check_private_key(fx.x509, tok), 1);
    assert_int_equal(rk_pkey_load(fx.key, NULL, &file, err, sizeof err), RK_OK);
    /* signed in the token, opened (ECDH) with the file key; and the reverse */
    assert_int_equal(rk_cms_seal(fx.x509, tok, fx.x509, "payload", 7, &b64), RK_OK);
    assert_int_equal(rk_cms_open(fx.x509, file, fx.x509, b64, &back, &len), RK_OK);
    assert_memory_equal(back, "payload", 7);
    free(b64);
    free(back);
    b64 = back = NULL;
    assert_int_equal(rk_cms_seal(fx.x509, file, fx.x509, "other", 5, &b64), RK_OK);
    assert_int_equal(rk_cms_open(fx.x509, tok, fx.x509, b64, &back, &len), RK_OK); /* CKM_ECDH1_DERIVE */
    assert_memory_equal(back, "other", 5);
    free(b64);
    free(back);
    EVP_PKEY_free(tok);
    EVP_PKEY_free(file);
}

static void the_pin_from_the_uri_or_a_pin_source(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    char err[512], uri[1400], keyfile[320];
    snprintf(uri, sizeof uri, "%s&pin-value=246810", fx.uri);
    assert_int_equal(rk_pkey_load(uri, NULL, &k, err, sizeof err), RK_OK);
    EVP_PKEY_free(k);
    k = NULL;
    /* a key file holding one URI line, its PIN in a file (the CA's form) */
    snprintf(uri, sizeof uri, "%s&pin-source=file:%s\n", fx.uri, fx.pin);
    snprintf(keyfile, sizeof keyfile, "%s/ref-key.pem", fx.dir);
    put(keyfile, uri, 0600);
    assert_int_equal(rk_pkey_load(keyfile, NULL, &k, err, sizeof err), RK_OK);
    assert_int_equal(X509_check_private_key(fx.x509, k), 1);
    EVP_PKEY_free(k);
}

static void a_wrong_pin_or_a_missing_object_is_one_clear_line(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    char err[512], uri[900];
    assert_int_equal(rk_pkey_load(fx.uri, fx.bad_pin, &k, err, sizeof err), RK_ERR_DENIED);
    assert_non_null(strstr(err, "the token refused the PIN"));
    assert_null(strstr(err, "111111"));
    assert_null(strchr(err, '\n'));
    snprintf(uri, sizeof uri, "pkcs11:token=unit;object=nobody;type=private?module-path=" MODULE);
    assert_int_equal(rk_pkey_load(uri, fx.pin, &k, err, sizeof err), RK_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "no such private key in the token"));
    snprintf(uri, sizeof uri, "pkcs11:token=elsewhere;object=core;type=private?module-path=" MODULE);
    assert_int_equal(rk_pkey_load(uri, fx.pin, &k, err, sizeof err), RK_ERR_NOT_FOUND);
    /* a PIN in the URI never shows in the message */
    snprintf(uri, sizeof uri, "pkcs11:token=unit;object=nobody;type=private;pin-value=777999?module-path=" MODULE);
    assert_int_equal(rk_pkey_load(uri, NULL, &k, err, sizeof err), RK_ERR_NOT_FOUND);
    assert_null(strstr(err, "777999"));
    assert_null(k);
}

static void the_ca_signs_in_the_token(void **state)
{
    (void)state;
    char ref[320], text[1400], cert[320], key[320];
    snprintf(ref, sizeof ref, "%s/ca-ref.pem", fx.dir);
    snprintf(text, sizeof text, "pkcs11:token=unit;object=ca;type=private?module-path=" MODULE "&pin-source=file:%s\n",
             fx.pin);
    put(ref, text, 0600);
    snprintf(cert, sizeof cert, "%s/by-token.pem", fx.dir);
    snprintf(key, sizeof key, "%s/by-token-key.pem", fx.dir);
    rk_cert_spec spec = {.common_name = "jlis", .role = "jlis", .name = "jlis"};
    assert_int_equal(rk_pki_issue(fx.ca, ref, &spec, cert, key, NULL), RK_OK);
    X509 *ca = NULL, *leaf = NULL;
    assert_int_equal(rk_pki_load_cert(fx.ca, &ca), RK_OK);
    assert_int_equal(rk_pki_load_cert(cert, &leaf), RK_OK);
    assert_int_equal(X509_verify(leaf, X509_get0_pubkey(ca)), 1);
    X509_free(ca);
    X509_free(leaf);
}

/* ---- the code key file ----------------------------------------------------- */

static const uint8_t m1[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                               17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void key_file(char *path, size_t cap, const char *name)
{
    snprintf(path, cap, "%s/%s", fx.dir, name);
}

static void rotation_keeps_earlier_codes_converting(void **state)
{
    (void)state;
    char path[320], err[512], old[RK_CODE_TEXT_MAX], again[RK_CODE_TEXT_MAX], fresh[RK_CODE_TEXT_MAX];
    char conv[RK_CODE_TEXT_MAX], want[RK_CODE_TEXT_MAX];
    uint32_t a = rk_agency_number("city-yokohama"), b = rk_agency_number("nenkin-kikou");
    key_file(path, sizeof path, "master.key");
    /* today's file: one line, version 1 — the same key rk_codec_new made */
    char hex[66];
    rk_hex(m1, 32, hex);
    strcpy(hex + 64, "\n");
    put(path, hex, 0600);
    rk_codec *legacy = NULL, *c1 = NULL, *c2 = NULL;
    assert_int_equal(rk_codec_new(m1, 32, 1, &legacy), RK_OK);
    assert_int_equal(rk_codec_load(path, NULL, NULL, &c1, err, sizeof err), RK_OK);
    assert_int_equal(rk_codec_versions(c1), 1);
    assert_int_equal(rk_code_derive(legacy, 77, a, old), RK_OK);
    assert_int_equal(rk_code_derive(c1, 77, a, again), RK_OK);
    assert_string_equal(old, again);
    assert_int_equal(rk_code_derive(legacy, 77, b, want), RK_OK);
    /* rotation: a fresh master appended */
    uint8_t masters[RK_CODE_MAX_KEYS][32];
    int n = 0, wrapped = 1;
    assert_int_equal(rk_code_keys_read(path, NULL, NULL, masters, &n, &wrapped, err, sizeof err), RK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(wrapped, 0);
    assert_int_equal(rk_random(masters[1], 32), RK_OK);
    assert_int_equal(rk_code_keys_write(path, (const uint8_t(*)[32])masters, 2, NULL), RK_OK);
    assert_int_equal(rk_codec_load(path, NULL, NULL, &c2, err, sizeof err), RK_OK);
    assert_int_equal(rk_codec_versions(c2), 2);
    /* new codes are version 2; the version-1 code still opens and converts */
    assert_int_equal(rk_code_derive(c2, 77, a, fresh), RK_OK);
    assert_memory_equal(fresh, "v2-", 3);
    assert_string_not_equal(fresh, old);
    uint64_t serial = 0;
    uint32_t owner = 0;
    assert_int_equal(rk_code_open(c2, old, &serial, &owner), RK_OK);
    assert_true(serial == 77 && owner == a);
    assert_int_equal(rk_code_open(c2, fresh, &serial, &owner), RK_OK);
    assert_true(serial == 77 && owner == a);
    assert_int_equal(rk_code_derive_version(c2, 1, 77, b, conv), RK_OK);
    assert_string_equal(conv, want); /* the provider's version-1 code, unchanged */
    assert_int_equal(rk_code_convert(c2, old, a, b, conv), RK_OK);
    assert_memory_equal(conv, "v2-", 3);
    /* an unknown version is refused, before and after */
    char v3[RK_CODE_TEXT_MAX];
    strcpy(v3, fresh);
    v3[1] = '3';
    assert_int_equal(rk_code_open(c2, v3, &serial, &owner), RK_ERR_INVALID);
    assert_int_equal(rk_code_open(c1, fresh, &serial, &owner), RK_ERR_INVALID);
    v3[1] = '0';
    assert_int_equal(rk_code_open(c2, v3, &serial, &owner), RK_ERR_INVALID);
    assert_int_equal(rk_code_derive_version(c2, 3, 77, a, conv), RK_ERR_INVALID);
    assert_int_equal(rk_code_derive_version(c2, 0, 77, a, conv), RK_ERR_INVALID);
    rk_wipe(masters, sizeof masters);
    rk_codec_free(legacy);
    rk_codec_free(c1);
    rk_codec_free(c2);
}

static void bad_key_files_are_refused(void **state)
{
    (void)state;
    char path[320], err[512], text[RK_CODE_MAX_KEYS * 65 + 70] = "";
    rk_codec *c = NULL;
    key_file(path, sizeof path, "bad.key");
    put(path, "0123\n", 0600);
    assert_int_equal(rk_codec_load(path, NULL, NULL, &c, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "64 hex digits"));
    put(path, "", 0600);
    assert_int_equal(rk_codec_load(path, NULL, NULL, &c, err, sizeof err), RK_ERR_INVALID);
    for (int i = 0; i <= RK_CODE_MAX_KEYS; i++) /* one version too many */
        strcat(text, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    put(path, text, 0600);
    assert_int_equal(rk_codec_load(path, NULL, NULL, &c, err, sizeof err), RK_ERR_INVALID);
    put(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 0644);
    assert_int_equal(rk_codec_load(path, NULL, NULL, &c, err, sizeof err), RK_ERR_DENIED);
    assert_null(c);
}

static void a_wrapped_file_opens_only_with_the_core_key(void **state)
{
    (void)state;
    char path[320], err[512], plain_code[RK_CODE_TEXT_MAX], code[RK_CODE_TEXT_MAX];
    uint8_t masters[2][32];
    memcpy(masters[0], m1, 32);
    memset(masters[1], 0x5a, 32);
    key_file(path, sizeof path, "wrapped.key");
    assert_int_equal(rk_code_keys_write(path, (const uint8_t(*)[32])masters, 2, fx.x509), RK_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(rk_read_file(path, 1 << 16, &text, &len), RK_OK);
    assert_memory_equal(text, "-----BEGIN CMS-----", 19);
    free(text);
    rk_codec *c = NULL, *plain = NULL;
    assert_int_equal(rk_codec_load(path, NULL, NULL, &c, err, sizeof err), RK_ERR_CONFIG);
    assert_non_null(strstr(err, "wrapped"));
    /* opened with the token's key: the ECDH runs in the token */
    EVP_PKEY *tok = NULL;
    assert_int_equal(rk_pkey_load(fx.uri, fx.pin, &tok, err, sizeof err), RK_OK);
    assert_int_equal(rk_codec_load(path, fx.x509, tok, &c, err, sizeof err), RK_OK);
    assert_int_equal(rk_codec_versions(c), 2);
    assert_int_equal(rk_codec_new_versions((const uint8_t(*)[32])masters, 2, &plain), RK_OK);
    assert_int_equal(rk_code_derive(c, 5, 9, code), RK_OK);
    assert_int_equal(rk_code_derive(plain, 5, 9, plain_code), RK_OK);
    assert_string_equal(code, plain_code);
    rk_codec_free(c);
    c = NULL;
    /* another key cannot open it */
    char other_cert[320], other_key[320];
    snprintf(other_cert, sizeof other_cert, "%s/other.pem", fx.dir);
    snprintf(other_key, sizeof other_key, "%s/other-key.pem", fx.dir);
    rk_cert_spec spec = {.common_name = "core-2", .role = "core", .name = "core-2"};
    assert_int_equal(rk_pki_issue(fx.ca, fx.ca_key, &spec, other_cert, other_key, NULL), RK_OK);
    X509 *ox = NULL;
    EVP_PKEY *ok = NULL;
    assert_int_equal(rk_pki_load_cert(other_cert, &ox), RK_OK);
    assert_int_equal(rk_pkey_load(other_key, NULL, &ok, err, sizeof err), RK_OK);
    assert_int_equal(rk_codec_load(path, ox, ok, &c, err, sizeof err), RK_ERR_CRYPTO);
    assert_non_null(strstr(err, "cannot unwrap"));
    assert_null(c);
    X509_free(ox);
    EVP_PKEY_free(ok);
    EVP_PKEY_free(tok);
    rk_codec_free(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_key_file_loads_and_group_readable_is_refused),
        cmocka_unit_test(malformed_uris_and_no_pin_are_refused),
        /* first: once this process is logged in to the token, libp11 keeps
         * the login and a later PIN is not checked again */
        cmocka_unit_test(a_wrong_pin_or_a_missing_object_is_one_clear_line),
        cmocka_unit_test(a_token_key_signs_and_decrypts_cms_inside_the_token),
        cmocka_unit_test(the_pin_from_the_uri_or_a_pin_source),
        cmocka_unit_test(the_ca_signs_in_the_token),
        cmocka_unit_test(rotation_keeps_earlier_codes_converting),
        cmocka_unit_test(bad_key_files_are_refused),
        cmocka_unit_test(a_wrapped_file_opens_only_with_the_core_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
