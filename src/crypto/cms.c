#include "crypto/cms.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/pki.h"
#include "lib/util.h"

#define MAX_PAYLOAD (4u << 20)

rk_rc rk_base64_encode(const unsigned char *in, size_t len, char **out)
{
    if (len > MAX_PAYLOAD)
        return RK_ERR_TOO_LARGE;
    char *b = malloc(4 * ((len + 2) / 3) + 1);
    if (!b)
        return RK_ERR_NOMEM;
    EVP_EncodeBlock((unsigned char *)b, in, (int)len);
    *out = b;
    return RK_OK;
}

rk_rc rk_base64_decode(const char *in, unsigned char **out, size_t *len)
{
    size_t n = strlen(in);
    if (n == 0 || n % 4 != 0 || n > 4 * (MAX_PAYLOAD / 3 + 1))
        return RK_ERR_INVALID;
    unsigned char *b = malloc(n / 4 * 3 + 1);
    if (!b)
        return RK_ERR_NOMEM;
    int got = EVP_DecodeBlock(b, (const unsigned char *)in, (int)n);
    if (got < 0) {
        free(b);
        return RK_ERR_INVALID;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    size_t real = (size_t)got - (in[n - 1] == '=') - (in[n - 2] == '=');
    *out = b;
    *len = real;
    return RK_OK;
}

static rk_rc cms_to_b64(CMS_ContentInfo *cms, char **b64)
{
    unsigned char *der = NULL;
    int n = i2d_CMS_ContentInfo(cms, &der);
    if (n <= 0)
        return RK_ERR_CRYPTO;
    rk_rc rc = rk_base64_encode(der, (size_t)n, b64);
    OPENSSL_free(der);
    return rc;
}

rk_rc rk_cms_seal(X509 *signer_cert, EVP_PKEY *signer_key, X509 *recipient, const void *data, size_t len,
                  char **b64)
{
    rk_rc rc = RK_ERR_CRYPTO;
    /* Plaintext passes through these buffers: secure heap when the node set
     * one up (rk_node_open), cleansed on free in any case. */
    BIO *in = BIO_new_mem_buf(data, (int)len), *signed_bio = BIO_new(BIO_s_secmem());
    CMS_ContentInfo *sd = NULL, *env = NULL;
    STACK_OF(X509) *to = sk_X509_new_null();
    if (!in || !signed_bio || !to || !sk_X509_push(to, recipient))
        goto done;
    /* No S/MIME capabilities attribute: it lists every cipher the library
     * knows (costly to build, useless between two renkei nodes). */
    /* Nor the signer's certificate: the requester holds it (rk_peer_certs),
     * and parsing it from every payload would be the costliest step. */
    /* The digest named, not looked up from the key at every call; signer and
     * recipient named by their subject key identifiers (RFC 5652 5.3, 6.2.2),
     * not by copies of the issuer's name. Both certificates must carry the
     * extension: every renkei certificate does (rk_pki_issue). */
    const unsigned int flags = CMS_BINARY | CMS_NOSMIMECAP | CMS_NOCERTS | CMS_USE_KEYID;
    sd = CMS_sign(NULL, NULL, NULL, NULL, flags | CMS_PARTIAL);
    if (!sd || !CMS_add1_signer(sd, signer_cert, signer_key, EVP_sha256(), flags) ||
        CMS_final(sd, in, NULL, flags) != 1 || i2d_CMS_bio(signed_bio, sd) != 1)
        goto done;
    env = CMS_encrypt(to, signed_bio, EVP_aes_256_gcm(), CMS_BINARY | CMS_USE_KEYID);
    if (!env)
        goto done;
    rc = cms_to_b64(env, b64);
done:
    if (rc != RK_OK)
        ERR_clear_error();
    sk_X509_free(to);
    CMS_ContentInfo_free(sd);
    CMS_ContentInfo_free(env);
    BIO_free(in);
    BIO_free(signed_bio);
    return rc;
}

static rk_rc bio_to_string(BIO *b, char **data, size_t *len)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    if (n < 0)
        return RK_ERR_CRYPTO;
    char *copy = malloc((size_t)n + 1);
    if (!copy)
        return RK_ERR_NOMEM;
    if (n > 0) /* an empty content has no buffer at all (p is NULL) */
        memcpy(copy, p, (size_t)n);
    copy[n] = '\0';
    *data = copy;
    *len = (size_t)n;
    return RK_OK;
}

/* 1 when env has the one shape rk_cms_seal makes: one key agreement
 * recipient whose key encryption is ECDH (the standard single-pass scheme)
 * with AES-256 key wrap. Anything else is refused before OpenSSL decrypts
 * it: fuzzing found that a payload naming AES key wrap with padding
 * (id-aes256-wrap-pad) instead corrupts memory inside OpenSSL 3.0's
 * CMS_decrypt (tests/fuzz/corpus/cms/crash-kek-wrap-pad). */
static int sealed_shape(CMS_ContentInfo *env)
{
    STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(env);
    if (!ris || sk_CMS_RecipientInfo_num(ris) != 1)
        return 0;
    CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, 0);
    X509_ALGOR *alg = NULL;
    ASN1_OCTET_STRING *ukm = NULL;
    if (CMS_RecipientInfo_type(ri) != CMS_RECIPINFO_AGREE || CMS_RecipientInfo_kari_get0_alg(ri, &alg, &ukm) != 1)
        return 0;
    const ASN1_OBJECT *oid = NULL;
    int ptype = 0;
    const void *pval = NULL;
    X509_ALGOR_get0(&oid, &ptype, &pval, alg);
    if (OBJ_obj2nid(oid) != NID_dhSinglePass_stdDH_sha1kdf_scheme || ptype != V_ASN1_SEQUENCE || !pval)
        return 0;
    const ASN1_STRING *seq = pval;
    const unsigned char *p = ASN1_STRING_get0_data(seq);
    X509_ALGOR *wrap = d2i_X509_ALGOR(NULL, &p, ASN1_STRING_length(seq));
    int ok = wrap && p == ASN1_STRING_get0_data(seq) + ASN1_STRING_length(seq);
    if (ok) {
        X509_ALGOR_get0(&oid, &ptype, &pval, wrap);
        ok = OBJ_obj2nid(oid) == NID_id_aes256_wrap;
    }
    X509_ALGOR_free(wrap);
    return ok;
}

rk_rc rk_cms_open(X509 *my_cert, EVP_PKEY *my_key, X509 *signer, const char *b64, char **data, size_t *len)
{
    rk_rc rc = RK_ERR_CRYPTO;
    unsigned char *der = NULL;
    size_t der_len = 0;
    CMS_ContentInfo *env = NULL, *sd = NULL;
    int verified = 0;
    BIO *inner = BIO_new(BIO_s_secmem()), *content = BIO_new(BIO_s_secmem());
    if (!inner || !content || rk_base64_decode(b64, &der, &der_len) != RK_OK)
        goto done;
    const unsigned char *p = der;
    env = d2i_CMS_ContentInfo(NULL, &p, (long)der_len);
    if (!env || !sealed_shape(env) || CMS_decrypt(env, my_key, my_cert, NULL, inner, CMS_BINARY) != 1)
        goto done;
    sd = d2i_CMS_bio(inner, NULL);
    /* The signer must be exactly the given certificate: certificates inside
     * the message are never searched (CMS_NOINTERN), and the caller checked
     * the given one against the registry and the CA (rk_peer_certs). */
    STACK_OF(X509) *certs = sk_X509_new_null();
    if (sd && certs && sk_X509_push(certs, signer))
        verified = CMS_verify(sd, certs, NULL, NULL, content,
                              CMS_BINARY | CMS_NOINTERN | CMS_NO_SIGNER_CERT_VERIFY) == 1;
    sk_X509_free(certs);
    if (!verified || X509_cmp_current_time(X509_get0_notBefore(signer)) >= 0 ||
        X509_cmp_current_time(X509_get0_notAfter(signer)) <= 0)
        goto done;
    rc = bio_to_string(content, data, len);
done:
    if (rc != RK_OK)
        ERR_clear_error();
    free(der);
    CMS_ContentInfo_free(env);
    CMS_ContentInfo_free(sd);
    BIO_free(inner);
    BIO_free(content);
    return rc;
}

rk_rc rk_payload_digest(const char *b64, char out[65])
{
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    size_t len = 0;
    unsigned int mdlen = 0;
    rk_rc rc = rk_base64_decode(b64, &der, &len);
    if (rc != RK_OK)
        return rc;
    if (EVP_Digest(der, len, md, &mdlen, EVP_sha256(), NULL) != 1)
        rc = RK_ERR_CRYPTO;
    else
        rk_hex(md, mdlen, out);
    free(der);
    return rc;
}

rk_rc rk_ca_store_load(const char *ca_path, X509_STORE **out)
{
    X509_STORE *st = X509_STORE_new();
    if (!st)
        return RK_ERR_NOMEM;
    if (X509_STORE_load_file(st, ca_path) != 1) {
        X509_STORE_free(st);
        ERR_clear_error();
        return RK_ERR_CRYPTO;
    }
    *out = st;
    return RK_OK;
}
