/* pki.c — the network CA, node certificates and private keys (DESIGN §3).
 *
 * Peer authentication (standard 第5-2(3)(4)) rests on these certificates:
 * one CA, one P-256 certificate per node that serves TLS 1.3 client and
 * server authentication as well as CMS signing and ECDH key agreement.
 * Key protection (第5-2(5)): keys are written 0600 from the first byte,
 * optionally encrypted (PKCS#8, AES-256-CBC, PBKDF2), refused when group or
 * others may read them, and every buffer that held key or passphrase bytes
 * is wiped before it is freed.
 *
 * Ownership: every X509 / EVP_PKEY handed out belongs to the caller; every
 * object created here is freed at the single exit label of its function.
 * On failure the OpenSSL error queue is cleared so that a stale error does
 * not confuse a later TLS call on the same thread. */
#include "crypto/pki.h"
#include "crypto/keys.h"

#include <errno.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/util.h"

#define PKI_DEFAULT_LEAF_DAYS 825
#define PKI_DEFAULT_CA_DAYS 3650
#define PKI_MAX_DAYS 36500
#define PKI_BACKDATE_SECS 300 /* tolerate peers whose clocks run a little slow */
#define PKI_SECS_PER_DAY INT64_C(86400)
#define PKI_SERIAL_BYTES 16
#define PKI_MAX_ID_LEN 64 /* X.520 ub-common-name */
#define PKI_CERT_FILE_CAP (1024 * 1024)
#define PKI_URN_PREFIX "urn:renkei:"

static const char *const known_roles[] = {"core", "jlis", "gateway", "agency", "system", "operator", "witness", "portal",
                                          "ppc", "ppc-operator"};

/* ---- small helpers ---------------------------------------------------- */

static rk_rc finish(rk_rc rc)
{
    if (rc != RK_OK)
        ERR_clear_error();
    return rc;
}

static int is_known_role(const char *role)
{
    for (size_t i = 0; i < sizeof known_roles / sizeof known_roles[0]; i++)
        if (role && strcmp(role, known_roles[i]) == 0)
            return 1;
    return 0;
}

/* Node ids and agency ids: 1..64 of [A-Za-z0-9._-], so that the SAN URI
 * cannot be made ambiguous and the CN stays plain. */
static int is_valid_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > PKI_MAX_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

static EVP_PKEY *generate_p256_key(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* ---- certificate construction ----------------------------------------- */

/* 16 random bytes, top bit clear (positive) and second bit set (never zero,
 * always the full length), as RFC 5280 §4.1.2.2 asks. */
static rk_rc set_random_serial(X509 *x)
{
    uint8_t bytes[PKI_SERIAL_BYTES];
    rk_rc rc = rk_random(bytes, sizeof bytes);
    if (rc != RK_OK)
        return rc;
    bytes[0] = (uint8_t)((bytes[0] & 0x7f) | 0x40);
    BIGNUM *bn = BN_bin2bn(bytes, sizeof bytes, NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
        rc = RK_ERR_CRYPTO;
    BN_free(bn);
    return rc;
}

static rk_rc set_validity(X509 *x, int64_t not_before, int64_t not_after)
{
    if (!ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after))
        return RK_ERR_CRYPTO;
    return RK_OK;
}

static rk_rc set_subject_cn(X509 *x, const char *cn)
{
    X509_NAME *subject = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                    -1, 0))
        return RK_ERR_CRYPTO;
    return RK_OK;
}

rk_rc rk_pki_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    rk_rc rc = ext && X509_add_ext(x, ext, -1) ? RK_OK : RK_ERR_CRYPTO;
    X509_EXTENSION_free(ext);
    return rc;
}

/* Version 3, random serial, validity, subject CN and public key. */
static rk_rc new_cert(const char *cn, EVP_PKEY *key, int64_t not_before, int64_t not_after,
                      X509 **out)
{
    rk_rc rc = RK_OK;
    X509 *x = X509_new();
    if (!x || !X509_set_version(x, X509_VERSION_3) || !X509_set_pubkey(x, key)) {
        rc = RK_ERR_CRYPTO;
        goto done;
    }
    if ((rc = set_random_serial(x)) != RK_OK || (rc = set_validity(x, not_before, not_after)) != RK_OK ||
        (rc = set_subject_cn(x, cn)) != RK_OK)
        goto done;
    *out = x;
    x = NULL;
done:
    X509_free(x);
    return rc;
}

static rk_rc push_ia5_name(GENERAL_NAMES *names, int type, const char *text)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    if (!gn || !s || !ASN1_STRING_set(s, text, -1)) {
        GENERAL_NAME_free(gn);
        ASN1_IA5STRING_free(s);
        return RK_ERR_CRYPTO;
    }
    GENERAL_NAME_set0_value(gn, type, s);
    if (!sk_GENERAL_NAME_push(names, gn)) {
        GENERAL_NAME_free(gn);
        return RK_ERR_NOMEM;
    }
    return RK_OK;
}

static rk_rc push_ip_name(GENERAL_NAMES *names, const char *ip)
{
    ASN1_OCTET_STRING *addr = a2i_IPADDRESS(ip);
    if (!addr)
        return RK_ERR_INVALID;
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (!gn) {
        ASN1_OCTET_STRING_free(addr);
        return RK_ERR_NOMEM;
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, addr);
    if (!sk_GENERAL_NAME_push(names, gn)) {
        GENERAL_NAME_free(gn);
        return RK_ERR_NOMEM;
    }
    return RK_OK;
}

/* subjectAltName: URI urn:renkei:<role>:<name>, the IP if any, DNS localhost.
 * Built as GENERAL_NAMEs, not as configuration text, so no input can add
 * names of its own. */
static rk_rc add_subject_alt_names(X509 *x, const rk_cert_spec *spec)
{
    char uri[sizeof PKI_URN_PREFIX + 2 * PKI_MAX_ID_LEN + 2];
    snprintf(uri, sizeof uri, PKI_URN_PREFIX "%s:%s", spec->role, spec->name);
    rk_rc rc = RK_OK;
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    if (!names) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    if ((rc = push_ia5_name(names, GEN_URI, uri)) != RK_OK)
        goto done;
    if (spec->ip && *spec->ip && (rc = push_ip_name(names, spec->ip)) != RK_OK)
        goto done;
    if ((rc = push_ia5_name(names, GEN_DNS, "localhost")) != RK_OK)
        goto done;
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) != 1)
        rc = RK_ERR_CRYPTO;
done:
    GENERAL_NAMES_free(names);
    return rc;
}

static rk_rc build_ca_cert(EVP_PKEY *key, const char *name, int64_t not_before, int64_t not_after,
                           X509 **out)
{
    X509 *x = NULL;
    rk_rc rc = new_cert(name, key, not_before, not_after, &x);
    if (rc != RK_OK)
        goto done;
    if (!X509_set_issuer_name(x, X509_get_subject_name(x))) {
        rc = RK_ERR_CRYPTO;
        goto done;
    }
    if ((rc = rk_pki_add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) != RK_OK ||
        (rc = rk_pki_add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign")) != RK_OK ||
        (rc = rk_pki_add_ext(x, x, NID_subject_key_identifier, "hash")) != RK_OK)
        goto done;
    if (X509_sign(x, key, EVP_sha256()) <= 0) {
        rc = RK_ERR_CRYPTO;
        goto done;
    }
    *out = x;
    x = NULL;
done:
    X509_free(x);
    return rc;
}

/* Key usage and EKU cover TLS (both ends), CMS signatures (emailProtection,
 * digitalSignature) and CMS ECDH key agreement (keyAgreement). */
static rk_rc build_leaf_cert(const rk_cert_spec *spec, EVP_PKEY *key, int64_t not_before,
                             int64_t not_after, X509 *ca_cert, EVP_PKEY *ca_key, X509 **out)
{
    X509 *x = NULL;
    rk_rc rc = new_cert(spec->common_name, key, not_before, not_after, &x);
    if (rc != RK_OK)
        goto done;
    if (!X509_set_issuer_name(x, X509_get_subject_name(ca_cert))) {
        rc = RK_ERR_CRYPTO;
        goto done;
    }
    if ((rc = rk_pki_add_ext(x, ca_cert, NID_basic_constraints, "critical,CA:FALSE")) != RK_OK ||
        (rc = rk_pki_add_ext(x, ca_cert, NID_key_usage, "critical,digitalSignature,keyAgreement")) != RK_OK ||
        (rc = rk_pki_add_ext(x, ca_cert, NID_ext_key_usage, "serverAuth,clientAuth,emailProtection")) != RK_OK ||
        (rc = rk_pki_add_ext(x, ca_cert, NID_subject_key_identifier, "hash")) != RK_OK ||
        (rc = rk_pki_add_ext(x, ca_cert, NID_authority_key_identifier, "keyid:always")) != RK_OK ||
        (rc = add_subject_alt_names(x, spec)) != RK_OK)
        goto done;
    if (X509_sign(x, ca_key, EVP_sha256()) <= 0) {
        rc = RK_ERR_CRYPTO;
        goto done;
    }
    *out = x;
    x = NULL;
done:
    X509_free(x);
    return rc;
}

/* ---- files ------------------------------------------------------------ */

static rk_rc write_cert_pem(X509 *cert, const char *path)
{
    rk_rc rc = RK_OK;
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    if (!bio || !PEM_write_bio_X509(bio, cert)) {
        rc = RK_ERR_CRYPTO;
        goto done;
    }
    long len = BIO_get_mem_data(bio, &data);
    rc = rk_write_file(path, data, (size_t)len, 0644);
done:
    BIO_free(bio);
    return rc;
}

/* PKCS#8 PEM in secure memory, written 0600 from the start (第5-2(5)). */
static rk_rc write_key_pem(EVP_PKEY *key, const char *path, const char *passphrase)
{
    rk_rc rc = RK_OK;
    const EVP_CIPHER *cipher = passphrase ? EVP_aes_256_cbc() : NULL;
    int passlen = passphrase ? (int)strlen(passphrase) : 0;
    BIO *bio = BIO_new(BIO_s_secmem());
    char *data = NULL;
    long len = 0;
    if (!bio || !PEM_write_bio_PKCS8PrivateKey(bio, key, cipher, passphrase, passlen, NULL, NULL)) {
        rc = RK_ERR_CRYPTO;
        goto done;
    }
    len = BIO_get_mem_data(bio, &data);
    rc = rk_write_file(path, data, (size_t)len, 0600);
done:
    if (data && len > 0)
        rk_wipe(data, (size_t)len);
    BIO_free(bio);
    return rc;
}

/* ---- public functions ------------------------------------------------- */

/* Every private key is loaded by crypto/keys.c (files and tokens). */
rk_rc rk_pki_load_key(const char *path, const char *passphrase_file, EVP_PKEY **out)
{
    return rk_pkey_load(path, passphrase_file, out, NULL, 0);
}

/* A signature BIT STRING with unused bits is not what any signer makes;
 * OpenSSL clears those bits when it reads it, so that re-encoding the
 * certificate may not show the difference. */
static int signature_has_unused_bits(const X509 *cert)
{
    const ASN1_BIT_STRING *sig = NULL;
    X509_get0_signature(&sig, NULL, cert);
    return !sig || ((sig->flags & ASN1_STRING_FLAG_BITS_LEFT) && (sig->flags & 0x07));
}

rk_rc rk_pki_cert_from_pem(const char *pem, size_t len, X509 **out)
{
    if (!pem || len > INT_MAX)
        return RK_ERR_INVALID;
    rk_rc rc = RK_OK;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *cert = NULL;
    unsigned char *der = NULL;
    long der_len = 0;
    if (!bio) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    /* The block's DER must be one certificate in DER (no BER liberties)
     * and nothing after it: else two texts would be one certificate, and
     * the digest of the bytes received (rk_pem_cert_fingerprint, the
     * registry's fingerprint) not the certificate's (rk_pki_fingerprint). */
    const unsigned char *p = NULL;
    unsigned char *again = NULL;
    int again_len = 0;
    if (PEM_bytes_read_bio(&der, &der_len, NULL, PEM_STRING_X509, bio, NULL, NULL) != 1 ||
        !(p = der, cert = d2i_X509(NULL, &p, der_len)) || p != der + der_len ||
        (again_len = i2d_X509(cert, &again)) != der_len || memcmp(again, der, (size_t)der_len) != 0 ||
        signature_has_unused_bits(cert)) {
        OPENSSL_free(again);
        X509_free(cert);
        rc = RK_ERR_CRYPTO;
        goto done;
    }
    OPENSSL_free(again);
    *out = cert;
done:
    OPENSSL_free(der);
    BIO_free(bio);
    return finish(rc);
}

rk_rc rk_pki_load_cert(const char *path, X509 **out)
{
    char *pem = NULL;
    size_t len = 0;
    rk_rc rc = rk_read_file(path, PKI_CERT_FILE_CAP, &pem, &len);
    if (rc != RK_OK)
        return rc;
    rc = rk_pki_cert_from_pem(pem, len, out);
    free(pem);
    return rc;
}

rk_rc rk_pki_cert_to_pem(X509 *cert, char **out)
{
    rk_rc rc = RK_OK;
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL, *copy = NULL;
    if (!bio || !PEM_write_bio_X509(bio, cert)) {
        rc = RK_ERR_CRYPTO;
        goto done;
    }
    long len = BIO_get_mem_data(bio, &data);
    copy = malloc((size_t)len + 1);
    if (!copy) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    memcpy(copy, data, (size_t)len);
    copy[len] = '\0';
    *out = copy;
done:
    BIO_free(bio);
    return finish(rc);
}

rk_rc rk_pki_create_ca(const char *cert_path, const char *key_path, const char *name, int days)
{
    if (!cert_path || !key_path || !name || !*name || strlen(name) > PKI_MAX_ID_LEN || days < 0 ||
        days > PKI_MAX_DAYS)
        return RK_ERR_INVALID;
    int64_t not_before = (int64_t)time(NULL) - PKI_BACKDATE_SECS;
    int64_t not_after = not_before + (days ? days : PKI_DEFAULT_CA_DAYS) * PKI_SECS_PER_DAY;
    X509 *cert = NULL;
    rk_rc rc = RK_OK;
    EVP_PKEY *key = generate_p256_key();
    if (!key) {
        rc = RK_ERR_CRYPTO;
        goto done;
    }
    if ((rc = build_ca_cert(key, name, not_before, not_after, &cert)) != RK_OK ||
        (rc = write_key_pem(key, key_path, NULL)) != RK_OK)
        goto done;
    rc = write_cert_pem(cert, cert_path);
done:
    X509_free(cert);
    EVP_PKEY_free(key);
    return finish(rc);
}

static rk_rc check_spec(const rk_cert_spec *spec)
{
    if (!spec || !is_valid_id(spec->common_name) || !is_known_role(spec->role) ||
        !is_valid_id(spec->name) || spec->days < 0 || spec->days > PKI_MAX_DAYS)
        return RK_ERR_INVALID;
    return RK_OK;
}

static rk_rc resolve_validity(const rk_cert_spec *spec, int64_t *not_before, int64_t *not_after)
{
    int64_t days = spec->days ? spec->days : PKI_DEFAULT_LEAF_DAYS;
    *not_before = spec->not_before ? spec->not_before : (int64_t)time(NULL) - PKI_BACKDATE_SECS;
    if (*not_before < 0 || *not_before > INT64_MAX / 2)
        return RK_ERR_INVALID;
    *not_after = spec->not_after ? spec->not_after : *not_before + days * PKI_SECS_PER_DAY;
    return *not_after > *not_before ? RK_OK : RK_ERR_INVALID;
}

/* The CA's own key must match its certificate before it signs anything. */
static rk_rc load_ca(const char *cert_path, const char *key_path, X509 **cert, EVP_PKEY **key)
{
    rk_rc rc = rk_pki_load_cert(cert_path, cert);
    if (rc != RK_OK)
        return rc;
    if ((rc = rk_pki_load_key(key_path, NULL, key)) != RK_OK)
        goto fail;
    if (X509_check_private_key(*cert, *key) == 1)
        return RK_OK;
    rc = RK_ERR_CRYPTO;
    EVP_PKEY_free(*key);
    *key = NULL;
fail:
    X509_free(*cert);
    *cert = NULL;
    return rc;
}

/* ---- an issuer: the CA loaded once, many certificates ---------------------- */

struct rk_pki_issuer {
    X509 *ca_cert;
    EVP_PKEY *ca_key;
    pthread_mutex_t lock; /* around what reads the CA's objects: building and signing */
};

rk_rc rk_pki_issuer_open(const char *ca_cert_path, const char *ca_key_path, rk_pki_issuer **out)
{
    rk_pki_issuer *is = calloc(1, sizeof *is);
    *out = NULL;
    if (!is)
        return RK_ERR_NOMEM;
    rk_rc rc = load_ca(ca_cert_path, ca_key_path, &is->ca_cert, &is->ca_key);
    if (rc != RK_OK) {
        free(is);
        return finish(rc);
    }
    pthread_mutex_init(&is->lock, NULL);
    *out = is;
    return RK_OK;
}

void rk_pki_issuer_close(rk_pki_issuer *is)
{
    if (!is)
        return;
    X509_free(is->ca_cert);
    EVP_PKEY_free(is->ca_key);
    pthread_mutex_destroy(&is->lock);
    free(is);
}

rk_rc rk_pki_issuer_issue(rk_pki_issuer *is, const rk_cert_spec *spec, const char *cert_path, const char *key_path,
                          const char *passphrase, X509 **out)
{
    int64_t not_before = 0, not_after = 0;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    rk_rc rc = check_spec(spec);
    if (rc != RK_OK || !is || (passphrase && !*passphrase) || !cert_path || !key_path) {
        rc = RK_ERR_INVALID;
        goto done;
    }
    if ((rc = resolve_validity(spec, &not_before, &not_after)) != RK_OK)
        goto done;
    if (!(key = generate_p256_key())) { /* a key of its own for every certificate */
        rc = RK_ERR_CRYPTO;
        goto done;
    }
    pthread_mutex_lock(&is->lock);
    rc = build_leaf_cert(spec, key, not_before, not_after, is->ca_cert, is->ca_key, &cert);
    pthread_mutex_unlock(&is->lock);
    if (rc != RK_OK || (rc = write_key_pem(key, key_path, passphrase)) != RK_OK)
        goto done;
    if ((rc = write_cert_pem(cert, cert_path)) == RK_OK && out) {
        *out = cert;
        cert = NULL;
    }
done:
    X509_free(cert);
    EVP_PKEY_free(key);
    return finish(rc);
}

rk_rc rk_pki_issue(const char *ca_cert_path, const char *ca_key_path, const rk_cert_spec *spec,
                   const char *cert_path, const char *key_path, const char *passphrase)
{
    rk_pki_issuer *is = NULL;
    rk_rc rc = check_spec(spec);
    if (rc != RK_OK || (passphrase && !*passphrase) || !cert_path || !key_path)
        return finish(RK_ERR_INVALID);
    if ((rc = rk_pki_issuer_open(ca_cert_path, ca_key_path, &is)) != RK_OK)
        return rc;
    rc = rk_pki_issuer_issue(is, spec, cert_path, key_path, passphrase, NULL);
    rk_pki_issuer_close(is);
    return rc;
}

rk_rc rk_pki_fingerprint(X509 *cert, char out[RK_FINGERPRINT_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!cert || !X509_digest(cert, EVP_sha256(), md, &md_len) || md_len != 32)
        return finish(RK_ERR_CRYPTO);
    rk_hex(md, md_len, out);
    return RK_OK;
}

rk_rc rk_pki_spki_pin(X509 *cert, char out[RK_PIN_LEN])
{
    static const char prefix[] = "sha256//";
    unsigned char md[32];
    unsigned char *der = NULL;
    rk_rc rc = RK_OK;
    EVP_PKEY *pub = cert ? X509_get0_pubkey(cert) : NULL;
    int der_len = pub ? i2d_PUBKEY(pub, &der) : -1;
    if (der_len <= 0 || !EVP_Digest(der, (size_t)der_len, md, NULL, EVP_sha256(), NULL)) {
        rc = RK_ERR_CRYPTO;
        goto done;
    }
    memcpy(out, prefix, sizeof prefix - 1);
    EVP_EncodeBlock((unsigned char *)out + sizeof prefix - 1, md, sizeof md);
done:
    OPENSSL_free(der);
    return finish(rc);
}

/* Copies a URI "urn:renkei:<role>:<name>" into role and name, if it is one. */
static rk_rc split_renkei_uri(const ASN1_IA5STRING *uri, char *role, size_t rolelen, char *name,
                              size_t namelen)
{
    const char *text = (const char *)ASN1_STRING_get0_data(uri);
    size_t len = (size_t)ASN1_STRING_length(uri);
    size_t prefix_len = sizeof PKI_URN_PREFIX - 1;
    if (len <= prefix_len || memchr(text, '\0', len) || memcmp(text, PKI_URN_PREFIX, prefix_len) != 0)
        return RK_ERR_NOT_FOUND;
    const char *rest = text + prefix_len;
    size_t rest_len = len - prefix_len;
    const char *colon = memchr(rest, ':', rest_len);
    if (!colon)
        return RK_ERR_INVALID;
    size_t role_len = (size_t)(colon - rest), name_len = rest_len - role_len - 1;
    if (role_len == 0 || name_len == 0 || role_len >= rolelen || name_len >= namelen)
        return RK_ERR_INVALID;
    memcpy(role, rest, role_len);
    role[role_len] = '\0';
    memcpy(name, colon + 1, name_len);
    name[name_len] = '\0';
    return RK_OK;
}

rk_rc rk_pki_cert_identity(X509 *cert, char *role, size_t rolelen, char *name, size_t namelen)
{
    if (!cert || !role || !name || rolelen == 0 || namelen == 0)
        return RK_ERR_INVALID;
    rk_rc rc = RK_ERR_INVALID;
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI)
            continue;
        rk_rc found = split_renkei_uri(gn->d.uniformResourceIdentifier, role, rolelen, name, namelen);
        if (found != RK_ERR_NOT_FOUND) {
            rc = found;
            break;
        }
    }
    GENERAL_NAMES_free(names);
    return finish(rc);
}

/* ---- certificate revocation list (DESIGN §3; standard 第5-2(2)) -------- */

#define PKI_CRL_FILE_CAP (4u << 20)
#define PKI_CRL_NEXT_UPDATE_DAYS 7

/* RFC 5280 §5.3.1 reasonCode words, by their code (7 is unused). */
static const char *const crl_reasons[] = {
    "unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
    "cessationOfOperation", "certificateHold", NULL, "removeFromCRL", "privilegeWithdrawn", "aACompromise",
};

int rk_pki_crl_reason_parse(const char *word)
{
    for (size_t i = 0; word && i < sizeof crl_reasons / sizeof crl_reasons[0]; i++)
        if (crl_reasons[i] && strcmp(crl_reasons[i], word) == 0)
            return (int)i;
    return -1;
}

const char *rk_pki_crl_reason_name(int reason)
{
    return reason >= 0 && (size_t)reason < sizeof crl_reasons / sizeof crl_reasons[0] && crl_reasons[reason]
               ? crl_reasons[reason]
               : "unspecified";
}

static int blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return 0;
    return 1;
}

rk_rc rk_pki_crl_from_pem(const char *pem, size_t len, X509_CRL **out)
{
    if (!pem || len == 0 || len > PKI_CRL_FILE_CAP)
        return RK_ERR_INVALID;
    unsigned char *der = NULL;
    long der_len = 0;
    const unsigned char *p = NULL;
    X509_CRL *crl = NULL;
    rk_rc rc = RK_OK;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return RK_ERR_NOMEM;
    /* One CRL block and nothing after it but blank space, its DER exactly one CRL. */
    char *rest = NULL;
    long rest_len = 0;
    if (PEM_bytes_read_bio(&der, &der_len, NULL, PEM_STRING_X509_CRL, bio, NULL, NULL) != 1 ||
        (rest_len = BIO_get_mem_data(bio, &rest)) < 0 || !blank(rest, (size_t)rest_len) ||
        !(p = der, crl = d2i_X509_CRL(NULL, &p, der_len)) || p != der + der_len) {
        X509_CRL_free(crl);
        rc = RK_ERR_INVALID;
        goto done;
    }
    *out = crl;
done:
    OPENSSL_free(der);
    BIO_free(bio);
    return finish(rc);
}

rk_rc rk_pki_crl_check(X509_CRL *crl, X509 *ca, uint64_t *number)
{
    EVP_PKEY *pub = ca ? X509_get0_pubkey(ca) : NULL;
    if (!crl || !pub)
        return RK_ERR_INVALID;
    int crit = 0;
    ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, &crit, NULL);
    uint64_t n = 0;
    int ok_num = num && ASN1_INTEGER_get_uint64(&n, num) == 1;
    ASN1_INTEGER_free(num);
    if (!ok_num || X509_CRL_get_version(crl) != X509_CRL_VERSION_2 || !X509_CRL_get0_nextUpdate(crl))
        return finish(RK_ERR_INVALID);
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0 || X509_CRL_verify(crl, pub) != 1)
        return finish(RK_ERR_CRYPTO);
    if (number)
        *number = n;
    return RK_OK;
}

int rk_pki_crl_lists(X509_CRL *crl, X509 *cert)
{
    X509_REVOKED *rev = NULL;
    if (!crl || !cert || X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(cert)) != 0)
        return 0;
    return X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(cert)) == 1;
}

static rk_rc crl_add_entry(X509_CRL *crl, X509 *cert, int reason, time_t now)
{
    X509_REVOKED *rev = X509_REVOKED_new();
    ASN1_TIME *when = ASN1_TIME_set(NULL, now);
    ASN1_ENUMERATED *code = ASN1_ENUMERATED_new();
    rk_rc rc = RK_ERR_CRYPTO;
    if (rev && when && code && X509_REVOKED_set_serialNumber(rev, (ASN1_INTEGER *)X509_get0_serialNumber(cert)) &&
        X509_REVOKED_set_revocationDate(rev, when) && ASN1_ENUMERATED_set(code, reason) &&
        X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, code, 0, 0) == 1 && X509_CRL_add0_revoked(crl, rev) == 1) {
        rev = NULL;
        rc = RK_OK;
    }
    X509_REVOKED_free(rev);
    ASN1_TIME_free(when);
    ASN1_ENUMERATED_free(code);
    return rc;
}

/* A new CRL: the entries of prev (if any), number prev+1, this update now,
 * next update in PKI_CRL_NEXT_UPDATE_DAYS, signed by the CA. */
static rk_rc crl_build(X509_CRL *prev, uint64_t prev_number, X509 *ca, EVP_PKEY *ca_key, X509 *cert, int reason,
                       X509_CRL **out)
{
    time_t now = time(NULL);
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *last = ASN1_TIME_set(NULL, now), *next = ASN1_TIME_set(NULL, now + PKI_CRL_NEXT_UPDATE_DAYS * 86400);
    ASN1_INTEGER *num = ASN1_INTEGER_new();
    rk_rc rc = RK_ERR_CRYPTO;
    if (!crl || !last || !next || !num || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) || !X509_CRL_set1_lastUpdate(crl, last) ||
        !X509_CRL_set1_nextUpdate(crl, next) || !ASN1_INTEGER_set_uint64(num, prev_number + 1) ||
        X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1)
        goto done;
    STACK_OF(X509_REVOKED) *old = prev ? X509_CRL_get_REVOKED(prev) : NULL;
    for (int i = 0; i < sk_X509_REVOKED_num(old); i++) {
        X509_REVOKED *copy = X509_REVOKED_dup(sk_X509_REVOKED_value(old, i));
        if (!copy || X509_CRL_add0_revoked(crl, copy) != 1) {
            X509_REVOKED_free(copy);
            goto done;
        }
    }
    if (cert && (rc = crl_add_entry(crl, cert, reason, now)) != RK_OK)
        goto done;
    rc = RK_ERR_CRYPTO;
    if (!X509_CRL_sort(crl) || !X509_CRL_sign(crl, ca_key, EVP_sha256()))
        goto done;
    *out = crl;
    crl = NULL;
    rc = RK_OK;
done:
    X509_CRL_free(crl);
    ASN1_TIME_free(last);
    ASN1_TIME_free(next);
    ASN1_INTEGER_free(num);
    return rc;
}

rk_rc rk_pki_crl_revoke(const char *ca_cert_path, const char *ca_key_path, const char *crl_path, X509 *cert,
                        int reason, uint64_t *number)
{
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    X509_CRL *prev = NULL, *crl = NULL;
    char *pem = NULL;
    size_t len = 0;
    uint64_t prev_number = 0;
    BIO *bio = NULL;
    int known = reason >= 0 && (size_t)reason < sizeof crl_reasons / sizeof crl_reasons[0] && crl_reasons[reason];
    if (!crl_path || (cert && !known))
        return RK_ERR_INVALID;
    rk_rc rc = load_ca(ca_cert_path, ca_key_path, &ca, &ca_key);
    if (rc != RK_OK)
        goto done;
    /* The CRL in force, if any, must be this CA's: its entries carry over. */
    rc = rk_read_file(crl_path, PKI_CRL_FILE_CAP, &pem, &len);
    if (rc == RK_OK) {
        if ((rc = rk_pki_crl_from_pem(pem, len, &prev)) != RK_OK || (rc = rk_pki_crl_check(prev, ca, &prev_number)) != RK_OK)
            goto done;
    } else if (rc != RK_ERR_NOT_FOUND)
        goto done;
    if (cert && X509_check_issued(ca, cert) != X509_V_OK) {
        rc = RK_ERR_INVALID;
        goto done;
    }
    if (cert && rk_pki_crl_lists(prev, cert)) {
        rc = RK_ERR_EXISTS;
        goto done;
    }
    if ((rc = crl_build(prev, prev_number, ca, ca_key, cert, reason, &crl)) != RK_OK)
        goto done;
    char *data = NULL;
    rc = RK_ERR_CRYPTO;
    if (!(bio = BIO_new(BIO_s_mem())) || !PEM_write_bio_X509_CRL(bio, crl))
        goto done;
    long n = BIO_get_mem_data(bio, &data);
    if ((rc = rk_write_file(crl_path, data, (size_t)n, 0644)) == RK_OK && number)
        *number = prev_number + 1;
done:
    BIO_free(bio);
    free(pem);
    X509_CRL_free(prev);
    X509_CRL_free(crl);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return finish(rc);
}
