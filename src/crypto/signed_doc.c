/* signed_doc.c — the operator's signed documents (see signed_doc.h). */
#include "crypto/signed_doc.h"

#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define SIG_MAX 160 /* a DER ECDSA P-256 signature is at most 72 bytes */

static void say(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

static rk_rc b64_encode(const unsigned char *in, size_t len, char **out)
{
    if (len > (size_t)INT32_MAX / 2)
        return RK_ERR_TOO_LARGE;
    char *b = malloc(4 * ((len + 2) / 3) + 1);
    if (!b)
        return RK_ERR_NOMEM;
    EVP_EncodeBlock((unsigned char *)b, in, (int)len);
    *out = b;
    return RK_OK;
}

/* Strict base64 (no newlines, padded) of at most cap bytes decoded. */
static rk_rc b64_decode(const char *in, size_t cap, unsigned char **out, size_t *len)
{
    size_t n = strlen(in);
    if (n == 0 || n % 4 != 0)
        return RK_ERR_INVALID;
    if (n / 4 * 3 > cap + 2)
        return RK_ERR_TOO_LARGE;
    unsigned char *b = malloc(n / 4 * 3 + 1);
    if (!b)
        return RK_ERR_NOMEM;
    int got = EVP_DecodeBlock(b, (const unsigned char *)in, (int)n);
    if (got < 0) {
        free(b);
        return RK_ERR_INVALID;
    }
    size_t real = (size_t)got - (in[n - 1] == '=') - (in[n - 2] == '=');
    if (real > cap) {
        free(b);
        return RK_ERR_TOO_LARGE;
    }
    b[real] = 0;
    *out = b;
    *len = real;
    return RK_OK;
}

/* "renkei-signed/v1\n" ‖ kind ‖ "\n" ‖ doc, fed to an open digest. */
static int feed(EVP_MD_CTX *md, const char *kind, const void *doc, size_t len)
{
    return EVP_DigestUpdate(md, RK_SIGNED_DOC_FORMAT "\n", strlen(RK_SIGNED_DOC_FORMAT) + 1) == 1 &&
           EVP_DigestUpdate(md, kind, strlen(kind)) == 1 && EVP_DigestUpdate(md, "\n", 1) == 1 &&
           EVP_DigestUpdate(md, doc, len) == 1;
}

static int kind_ok(const char *kind)
{
    size_t n = kind ? strlen(kind) : 0;
    if (n == 0 || n >= RK_SIGNED_DOC_KIND_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((kind[i] >= 'a' && kind[i] <= 'z') || kind[i] == '-'))
            return 0;
    return 1;
}

rk_rc rk_signed_doc_key_id(EVP_PKEY *key, char out[RK_SIGNED_DOC_KEY_ID_LEN])
{
    unsigned char *der = NULL;
    int n = key ? i2d_PUBKEY(key, &der) : -1;
    if (n <= 0)
        return RK_ERR_CRYPTO;
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256(der, (size_t)n, h);
    OPENSSL_free(der);
    rk_hex(h, sizeof h, out);
    return RK_OK;
}

rk_rc rk_signed_doc_sign(EVP_PKEY *key, const char *kind, const void *doc, size_t len, char **out, size_t *outlen)
{
    if (!key || !kind_ok(kind) || (!doc && len))
        return RK_ERR_INVALID;
    char key_id[RK_SIGNED_DOC_KEY_ID_LEN];
    rk_rc rc = rk_signed_doc_key_id(key, key_id);
    if (rc != RK_OK)
        return rc;
    unsigned char sig[SIG_MAX];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 && feed(md, kind, doc, len) &&
             EVP_DigestSignFinal(md, sig, &siglen) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return RK_ERR_CRYPTO;
    char *sig64 = NULL;
    rc = b64_encode(sig, siglen, &sig64);
    if (rc == RK_OK)
        rc = rk_signed_doc_wrap(kind, key_id, doc, len, sig64, out, outlen);
    free(sig64);
    return rc;
}

rk_rc rk_signed_doc_wrap(const char *kind, const char *key_id, const void *doc, size_t len, const char *sig64,
                         char **out, size_t *outlen)
{
    if (!kind_ok(kind) || !key_id || !sig64 || (!doc && len))
        return RK_ERR_INVALID;
    char *doc64 = NULL;
    rk_rc rc = b64_encode(doc, len, &doc64);
    if (rc != RK_OK)
        return rc;
    json_t *env = json_pack("{s:s,s:s,s:s,s:s,s:s}", "format", RK_SIGNED_DOC_FORMAT, "kind", kind, "key_id", key_id,
                            "document", doc64, "signature", sig64);
    free(doc64);
    if (!env)
        return RK_ERR_INVALID; /* a key id or signature that is not UTF-8 */
    char *s = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    if (!s)
        return RK_ERR_NOMEM;
    size_t n = strlen(s);
    char *withnl = realloc(s, n + 2);
    if (!withnl) {
        free(s);
        return RK_ERR_NOMEM;
    }
    withnl[n] = '\n';
    withnl[n + 1] = 0;
    *out = withnl;
    if (outlen)
        *outlen = n + 1;
    return RK_OK;
}

/* Moves *p past the text t, if it is there. */
static int expect(const char **p, const char *end, const char *t)
{
    size_t n = strlen(t);
    if ((size_t)(end - *p) < n || memcmp(*p, t, n) != 0)
        return 0;
    *p += n;
    return 1;
}

/* Copies the JSON string's characters up to its closing quote (only the
 * characters of hex or base64: nothing a writer would escape). */
static int token(const char **p, const char *end, char *out, size_t outlen)
{
    size_t n = 0;
    while (*p < end && **p != '"') {
        char c = **p;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' || c == '/' ||
              c == '=') ||
            n + 1 >= outlen)
            return 0;
        out[n++] = c;
        (*p)++;
    }
    out[n] = '\0';
    return *p < end && n > 0;
}

rk_rc rk_signed_doc_wrapped_as(const char *kind, const void *doc, size_t len, const char *env, size_t envlen,
                               char key_id[RK_SIGNED_DOC_KEY_ID_LEN], char sig64[RK_SIGNED_DOC_SIG64_MAX])
{
    const char *p = env, *end = env + envlen;
    if (!kind_ok(kind) || !env || (!doc && len) || !expect(&p, end, "{\"format\":\"" RK_SIGNED_DOC_FORMAT "\",\"kind\":\"") ||
        !expect(&p, end, kind) || !expect(&p, end, "\",\"key_id\":\"") ||
        !token(&p, end, key_id, RK_SIGNED_DOC_KEY_ID_LEN) || !expect(&p, end, "\",\"document\":\""))
        return RK_ERR_INVALID;
    /* the document's base64, block by block as b64_encode writes it whole */
    unsigned char block[4 * 1024 + 1];
    const unsigned char *d = doc;
    for (size_t at = 0; at < len; at += 3 * 1024) {
        size_t n = len - at < 3 * 1024 ? len - at : 3 * 1024;
        int w = EVP_EncodeBlock(block, d + at, (int)n);
        if (w < 0 || (size_t)(end - p) < (size_t)w || memcmp(p, block, (size_t)w) != 0)
            return RK_ERR_INVALID;
        p += w;
    }
    if (!expect(&p, end, "\",\"signature\":\"") || !token(&p, end, sig64, RK_SIGNED_DOC_SIG64_MAX) ||
        !expect(&p, end, "\"}\n") || p != end)
        return RK_ERR_INVALID;
    return RK_OK;
}

rk_rc rk_signed_doc_open(EVP_PKEY *anchor, const char *kind, const char *env, size_t envlen, size_t cap, char **doc,
                         size_t *doclen, char *err, size_t errlen)
{
    if (!anchor || !kind_ok(kind) || !env) {
        say(err, errlen, "no anchor, kind or envelope");
        return RK_ERR_INVALID;
    }
    /* The envelope is the document in base64 and a few fields: 4/3 of the
     * cap plus room for the rest bounds it. */
    if (envlen > cap / 3 * 4 + 4096) {
        say(err, errlen, "signed document over its size cap");
        return RK_ERR_TOO_LARGE;
    }
    json_error_t jerr;
    json_t *root = json_loadb(env, envlen, JSON_REJECT_DUPLICATES, &jerr);
    const char *format = NULL, *got_kind = NULL, *doc64 = NULL, *sig64 = NULL;
    if (!root || json_unpack(root, "{s:s,s:s,s:s,s:s}", "format", &format, "kind", &got_kind, "document", &doc64,
                             "signature", &sig64) != 0) {
        json_decref(root);
        say(err, errlen, "not a signed document (format, kind, document, signature)");
        return RK_ERR_INVALID;
    }
    if (strcmp(format, RK_SIGNED_DOC_FORMAT) != 0 || strcmp(got_kind, kind) != 0) {
        json_decref(root);
        say(err, errlen, "a signed document of another format or kind");
        return RK_ERR_INVALID;
    }
    unsigned char *body = NULL, *sig = NULL;
    size_t body_len = 0, sig_len = 0;
    rk_rc rc = b64_decode(doc64, cap, &body, &body_len);
    if (rc == RK_OK)
        rc = b64_decode(sig64, SIG_MAX, &sig, &sig_len);
    json_decref(root);
    if (rc != RK_OK) {
        free(body);
        say(err, errlen, rc == RK_ERR_TOO_LARGE ? "signed document over its size cap" : "document or signature not base64");
        return rc;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, anchor) == 1 && feed(md, kind, body, body_len) &&
             EVP_DigestVerifyFinal(md, sig, sig_len) == 1;
    EVP_MD_CTX_free(md);
    free(sig);
    if (!ok) {
        free(body);
        say(err, errlen, "the signature does not verify under the trust anchor");
        return RK_ERR_CRYPTO;
    }
    *doc = (char *)body;
    if (doclen)
        *doclen = body_len;
    return RK_OK;
}

rk_rc rk_signed_doc_load_anchor(const char *path, EVP_PKEY **out)
{
    char *pem = NULL;
    size_t len = 0;
    rk_rc rc = rk_read_file(path, 64 * 1024, &pem, &len);
    if (rc != RK_OK)
        return rc;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    free(pem);
    if (!key)
        return RK_ERR_CRYPTO;
    *out = key;
    return RK_OK;
}
