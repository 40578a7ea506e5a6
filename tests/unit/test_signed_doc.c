/* Unit tests: the operator's signed documents (crypto/signed_doc.h) — what
 * opens, and every way an envelope is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/signed_doc.h"

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static char *sign(EVP_PKEY *key, const char *kind, const char *doc)
{
    char *env = NULL;
    size_t len = 0;
    assert_int_equal(rk_signed_doc_sign(key, kind, doc, strlen(doc), &env, &len), RK_OK);
    assert_int_equal(len, strlen(env));
    return env;
}

static rk_rc open_env(EVP_PKEY *anchor, const char *kind, const char *env, size_t cap, char **doc)
{
    size_t len = 0;
    char err[128] = "";
    *doc = NULL;
    rk_rc rc = rk_signed_doc_open(anchor, kind, env, strlen(env), cap, doc, &len, err, sizeof err);
    if (rc != RK_OK)
        assert_true(err[0] != 0); /* every refusal says why */
    else
        assert_int_equal(len, strlen(*doc));
    return rc;
}

static void opens_what_it_signed(void **state)
{
    (void)state;
    EVP_PKEY *key = new_key();
    const char *text = "{\"serial\":7,\"nodes\":[]}";
    char *env = sign(key, "registry", text), *doc = NULL;
    assert_int_equal(open_env(key, "registry", env, 1024, &doc), RK_OK);
    assert_string_equal(doc, text);
    /* The envelope names the key that signed it. */
    char id[RK_SIGNED_DOC_KEY_ID_LEN];
    assert_int_equal(rk_signed_doc_key_id(key, id), RK_OK);
    assert_non_null(strstr(env, id));
    free(doc);
    free(env);
    EVP_PKEY_free(key);
}

static void refuses_another_kind_or_key(void **state)
{
    (void)state;
    EVP_PKEY *key = new_key(), *other = new_key();
    char *env = sign(key, "catalog", "{}"), *doc = NULL;
    assert_int_equal(open_env(key, "registry", env, 1024, &doc), RK_ERR_INVALID);
    assert_int_equal(open_env(other, "catalog", env, 1024, &doc), RK_ERR_CRYPTO);
    assert_null(doc);
    free(env);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}

/* The kind inside the envelope rewritten: the signature covers the kind. */
static void refuses_a_rewritten_kind_or_document(void **state)
{
    (void)state;
    EVP_PKEY *key = new_key();
    char *env = sign(key, "catalog", "{\"a\":1}"), *doc = NULL;
    json_t *j = json_loads(env, 0, NULL);
    json_object_set_new(j, "kind", json_string("registry"));
    char *forged = json_dumps(j, JSON_COMPACT);
    assert_int_equal(open_env(key, "registry", forged, 1024, &doc), RK_ERR_CRYPTO);
    free(forged);
    json_object_set_new(j, "kind", json_string("catalog"));
    json_object_set_new(j, "document", json_string("eyJhIjoyfQ==")); /* {"a":2} */
    forged = json_dumps(j, JSON_COMPACT);
    assert_int_equal(open_env(key, "catalog", forged, 1024, &doc), RK_ERR_CRYPTO);
    free(forged);
    json_decref(j);
    free(env);
    EVP_PKEY_free(key);
}

static void refuses_malformed_and_oversized(void **state)
{
    (void)state;
    EVP_PKEY *key = new_key();
    char *doc = NULL;
    assert_int_equal(open_env(key, "registry", "", 1024, &doc), RK_ERR_INVALID);
    assert_int_equal(open_env(key, "registry", "{\"format\":\"renkei-signed/v1\"", 1024, &doc), RK_ERR_INVALID);
    assert_int_equal(open_env(key, "registry",
                              "{\"format\":\"renkei-signed/v1\",\"kind\":\"registry\",\"document\":\"!!\","
                              "\"signature\":\"AAAA\"}",
                              1024, &doc),
                     RK_ERR_INVALID);
    assert_int_equal(open_env(key, "registry",
                              "{\"format\":\"renkei-signed/v2\",\"kind\":\"registry\",\"document\":\"e30=\","
                              "\"signature\":\"AAAA\"}",
                              1024, &doc),
                     RK_ERR_INVALID);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    char *env = sign(key, "registry", big);
    assert_int_equal(open_env(key, "registry", env, 100, &doc), RK_ERR_TOO_LARGE);
    assert_int_equal(open_env(key, "registry", env, 599, &doc), RK_OK);
    free(doc);
    free(env);
    /* Bad kinds are refused on both sides. */
    char *out = NULL;
    assert_int_equal(rk_signed_doc_sign(key, "Reg istry", "x", 1, &out, NULL), RK_ERR_INVALID);
    assert_int_equal(rk_signed_doc_sign(key, "", "x", 1, &out, NULL), RK_ERR_INVALID);
    EVP_PKEY_free(key);
}

static void loads_a_public_anchor_only(void **state)
{
    (void)state;
    EVP_PKEY *key = new_key();
    char pub[] = "/tmp/rk-anchor-XXXXXX", priv[] = "/tmp/rk-anchor-key-XXXXXX";
    int fd = mkstemp(pub), fd2 = mkstemp(priv);
    assert_true(fd >= 0 && fd2 >= 0);
    FILE *f = fdopen(fd, "w");
    PEM_write_PUBKEY(f, key);
    fclose(f);
    f = fdopen(fd2, "w");
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    EVP_PKEY *anchor = NULL;
    assert_int_equal(rk_signed_doc_load_anchor(pub, &anchor), RK_OK);
    char *env = sign(key, "registry", "{}"), *doc = NULL;
    assert_int_equal(open_env(anchor, "registry", env, 64, &doc), RK_OK);
    free(doc);
    free(env);
    EVP_PKEY_free(anchor);
    anchor = NULL;
    assert_int_equal(rk_signed_doc_load_anchor(priv, &anchor), RK_ERR_CRYPTO);
    assert_null(anchor);
    unlink(pub);
    unlink(priv);
    EVP_PKEY_free(key);
}

/* An envelope is recognised as the wrapping of a document byte for byte,
 * without a copy of it: what the core checks before it keeps a delta. */
static void knows_its_own_wrapping(void **state)
{
    (void)state;
    EVP_PKEY *key = new_key();
    size_t big = 10007; /* several blocks of base64, and not a multiple of 3 */
    char *doc = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        doc[i] = (char)('a' + i % 26);
    doc[big] = '\0';
    char *env = sign(key, "registry", doc);
    json_t *o = json_loads(env, 0, NULL);
    char key_id[RK_SIGNED_DOC_KEY_ID_LEN], sig[RK_SIGNED_DOC_SIG64_MAX];
    assert_int_equal(rk_signed_doc_wrapped_as("registry", doc, big, env, strlen(env), key_id, sig), RK_OK);
    assert_string_equal(key_id, json_string_value(json_object_get(o, "key_id")));
    assert_string_equal(sig, json_string_value(json_object_get(o, "signature")));
    /* the same from its parts */
    char *again = NULL;
    size_t len = 0;
    assert_int_equal(rk_signed_doc_wrap("registry", key_id, doc, big, sig, &again, &len), RK_OK);
    assert_string_equal(again, env);
    free(again);
    /* anything else is not it */
    assert_int_equal(rk_signed_doc_wrapped_as("catalog", doc, big, env, strlen(env), key_id, sig), RK_ERR_INVALID);
    doc[5000] = 'Z';
    assert_int_equal(rk_signed_doc_wrapped_as("registry", doc, big, env, strlen(env), key_id, sig), RK_ERR_INVALID);
    doc[5000] = 'a' + 5000 % 26;
    assert_int_equal(rk_signed_doc_wrapped_as("registry", doc, big - 1, env, strlen(env), key_id, sig), RK_ERR_INVALID);
    assert_int_equal(rk_signed_doc_wrapped_as("registry", doc, big, env, strlen(env) - 1, key_id, sig), RK_ERR_INVALID);
    char *spaced = malloc(strlen(env) + 2);
    sprintf(spaced, "{ %s", env + 1);
    assert_int_equal(rk_signed_doc_wrapped_as("registry", doc, big, spaced, strlen(spaced), key_id, sig), RK_ERR_INVALID);
    free(spaced);
    json_decref(o);
    free(env);
    free(doc);
    EVP_PKEY_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(opens_what_it_signed),
        cmocka_unit_test(refuses_another_kind_or_key),
        cmocka_unit_test(refuses_a_rewritten_kind_or_document),
        cmocka_unit_test(refuses_malformed_and_oversized),
        cmocka_unit_test(loads_a_public_anchor_only),
        cmocka_unit_test(knows_its_own_wrapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
