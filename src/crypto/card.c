/* card.c — persons' cards and the card CRL (crypto/card.h). */
#include "crypto/card.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/pki.h"
#include "lib/util.h"

#define CARD_CA_NAME "renkei-card-ca"
#define CARD_BACKDATE_SECS 300
#define CARD_SERIAL_BYTES (RK_CARD_SERIAL_LEN / 2)
#define CARD_PEM_CAP (1u << 20)

static rk_rc finish(rk_rc rc)
{
    if (rc != RK_OK)
        ERR_clear_error();
    return rc;
}

int rk_card_serial_valid(const char *s)
{
    if (!s || strlen(s) != RK_CARD_SERIAL_LEN)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

/* The 16 bytes of an ASN.1 integer as 32 hex digits; RK_ERR_INVALID when it is another length. */
static rk_rc serial_hex(const ASN1_INTEGER *ai, char out[RK_CARD_SERIAL_LEN + 1])
{
    uint8_t bytes[CARD_SERIAL_BYTES];
    BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
    rk_rc rc = bn && !BN_is_negative(bn) && BN_num_bytes(bn) == CARD_SERIAL_BYTES &&
                       BN_bn2binpad(bn, bytes, sizeof bytes) == (int)sizeof bytes
                   ? RK_OK : RK_ERR_INVALID;
    BN_free(bn);
    if (rc == RK_OK)
        rk_hex(bytes, sizeof bytes, out);
    return finish(rc);
}

rk_rc rk_card_serial_of(const X509 *cert, char out[RK_CARD_SERIAL_LEN + 1])
{
    out[0] = '\0';
    return cert ? serial_hex(X509_get0_serialNumber(cert), out) : RK_ERR_INVALID;
}

/* A card serial as an ASN.1 integer (the caller frees it). */
static ASN1_INTEGER *serial_integer(const char *serial)
{
    uint8_t bytes[CARD_SERIAL_BYTES];
    if (!rk_card_serial_valid(serial) || rk_unhex(serial, bytes, sizeof bytes) != RK_OK)
        return NULL;
    BIGNUM *bn = BN_bin2bn(bytes, sizeof bytes, NULL);
    ASN1_INTEGER *ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    BN_free(bn);
    return ai;
}

/* The PEM of what write() puts in a memory BIO, written to path with mode. */
static rk_rc write_bio_file(BIO *bio, const char *path, unsigned mode)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    rk_rc rc = len > 0 ? rk_write_file(path, data, (size_t)len, mode) : RK_ERR_CRYPTO;
    if (data && len > 0)
        rk_wipe(data, (size_t)len); /* a key's PEM, or a public file: wiped either way */
    return rc;
}

static rk_rc load_ca(const char *ca_path, const char *ca_key_path, X509 **ca, EVP_PKEY **key)
{
    rk_rc rc = rk_pki_load_cert(ca_path, ca);
    if (rc == RK_OK && ca_key_path)
        rc = rk_pki_load_key(ca_key_path, NULL, key);
    if (rc == RK_OK && key && X509_check_private_key(*ca, *key) != 1)
        rc = RK_ERR_CRYPTO;
    return rc;
}

/* ---------- the CRL ---------- */

/* A CRL of the card CA with these revoked entries (taken from `from`, when
 * not NULL), one more serial (when not NULL), and the number. */
static rk_rc sign_crl(X509 *ca, EVP_PKEY *key, X509_CRL *from, const char *serial, long number, X509_CRL **out)
{
    rk_rc rc = RK_ERR_CRYPTO;
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL));
    ASN1_TIME *next = ASN1_TIME_adj(NULL, time(NULL), RK_CARD_CRL_DAYS, 0);
    ASN1_INTEGER *num = ASN1_INTEGER_new();
    if (!crl || !now || !next || !num || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) || !X509_CRL_set1_lastUpdate(crl, now) ||
        !X509_CRL_set1_nextUpdate(crl, next) || !ASN1_INTEGER_set(num, number) ||
        X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1)
        goto done;
    STACK_OF(X509_REVOKED) *old = from ? X509_CRL_get_REVOKED(from) : NULL;
    for (int i = 0; i < sk_X509_REVOKED_num(old); i++) {
        X509_REVOKED *r = X509_REVOKED_dup(sk_X509_REVOKED_value(old, i));
        if (!r || !X509_CRL_add0_revoked(crl, r)) {
            X509_REVOKED_free(r);
            goto done;
        }
    }
    if (serial) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *ai = serial_integer(serial);
        int ok = r && ai && X509_REVOKED_set_serialNumber(r, ai) && X509_REVOKED_set_revocationDate(r, now) &&
                 X509_CRL_add0_revoked(crl, r);
        ASN1_INTEGER_free(ai);
        if (!ok) {
            X509_REVOKED_free(r);
            goto done;
        }
    }
    if (!X509_CRL_sort(crl) || X509_CRL_sign(crl, key, EVP_sha256()) <= 0)
        goto done;
    *out = crl;
    crl = NULL;
    rc = RK_OK;
done:
    X509_CRL_free(crl);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    ASN1_INTEGER_free(num);
    return rc;
}

static rk_rc write_crl(X509_CRL *crl, const char *path)
{
    BIO *bio = BIO_new(BIO_s_mem());
    rk_rc rc = bio && PEM_write_bio_X509_CRL(bio, crl) ? write_bio_file(bio, path, 0644) : RK_ERR_CRYPTO;
    BIO_free(bio);
    return rc;
}

rk_rc rk_card_crl_read(const char *pem, size_t len, X509 *ca, X509_CRL **out, long *number)
{
    *out = NULL;
    if (len > RK_CARD_CRL_MAX)
        return RK_ERR_TOO_LARGE;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509_CRL *crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!crl)
        return finish(RK_ERR_INVALID);
    rk_rc rc = RK_OK;
    ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    long n = num ? ASN1_INTEGER_get(num) : -1;
    ASN1_INTEGER_free(num);
    EVP_PKEY *pub = X509_get0_pubkey(ca);
    if (n < 1)
        rc = RK_ERR_INVALID;
    else if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0 || !pub ||
             X509_CRL_verify(crl, pub) != 1)
        rc = RK_ERR_CRYPTO;
    if (rc != RK_OK) {
        X509_CRL_free(crl);
        return finish(rc);
    }
    if (number)
        *number = n;
    *out = crl;
    return RK_OK;
}

int rk_card_crl_lists(X509_CRL *crl, const char *serial)
{
    ASN1_INTEGER *ai = serial_integer(serial);
    X509_REVOKED *r = NULL;
    int listed = ai && crl && X509_CRL_get0_by_serial(crl, &r, ai) == 1;
    ASN1_INTEGER_free(ai);
    return listed;
}

static rk_rc read_crl_file(const char *path, X509 *ca, X509_CRL **out, long *number)
{
    char *text = NULL;
    size_t len = 0;
    rk_rc rc = rk_read_file(path, RK_CARD_CRL_MAX, &text, &len);
    if (rc == RK_OK)
        rc = rk_card_crl_read(text, len, ca, out, number);
    free(text);
    return rc;
}

rk_rc rk_card_ca_create(const char *ca_path, const char *ca_key_path, const char *crl_path)
{
    X509 *ca = NULL;
    EVP_PKEY *key = NULL;
    X509_CRL *crl = NULL;
    rk_rc rc = rk_pki_create_ca(ca_path, ca_key_path, CARD_CA_NAME, 0);
    if (rc == RK_OK)
        rc = load_ca(ca_path, ca_key_path, &ca, &key);
    if (rc == RK_OK)
        rc = sign_crl(ca, key, NULL, NULL, 1, &crl);
    if (rc == RK_OK)
        rc = write_crl(crl, crl_path);
    X509_CRL_free(crl);
    X509_free(ca);
    EVP_PKEY_free(key);
    return finish(rc);
}

rk_rc rk_card_revoke(const char *ca_path, const char *ca_key_path, const char *crl_path, const char *serial)
{
    if (!rk_card_serial_valid(serial))
        return RK_ERR_INVALID;
    X509 *ca = NULL;
    EVP_PKEY *key = NULL;
    X509_CRL *old = NULL, *crl = NULL;
    long number = 0;
    rk_rc rc = load_ca(ca_path, ca_key_path, &ca, &key);
    if (rc == RK_OK)
        rc = read_crl_file(crl_path, ca, &old, &number);
    if (rc == RK_OK && rk_card_crl_lists(old, serial))
        rc = RK_ERR_EXISTS;
    if (rc == RK_OK)
        rc = sign_crl(ca, key, old, serial, number + 1, &crl);
    if (rc == RK_OK)
        rc = write_crl(crl, crl_path);
    X509_CRL_free(old);
    X509_CRL_free(crl);
    X509_free(ca);
    EVP_PKEY_free(key);
    return finish(rc);
}

/* ---------- issuing a card ---------- */

/* The card's certificate: its serial number is the card serial, and its CN
 * the same digits; client authentication only. */
static rk_rc build_card(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, char serial[RK_CARD_SERIAL_LEN + 1], X509 **out)
{
    uint8_t bytes[CARD_SERIAL_BYTES];
    rk_rc rc = rk_random(bytes, sizeof bytes);
    if (rc != RK_OK)
        return rc;
    bytes[0] = (uint8_t)((bytes[0] & 0x7f) | 0x40); /* positive, full length (RFC 5280 §4.1.2.2) */
    rk_hex(bytes, sizeof bytes, serial);
    rc = RK_ERR_CRYPTO;
    X509 *x = X509_new();
    BIGNUM *bn = BN_bin2bn(bytes, sizeof bytes, NULL);
    time_t now = time(NULL);
    if (!x || !bn || !X509_set_version(x, X509_VERSION_3) || !X509_set_pubkey(x, key) ||
        !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
        !ASN1_TIME_set(X509_getm_notBefore(x), now - CARD_BACKDATE_SECS) ||
        !ASN1_TIME_adj(X509_getm_notAfter(x), now, RK_CARD_DAYS, 0) ||
        !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8, (const unsigned char *)serial,
                                    -1, -1, 0) ||
        !X509_set_issuer_name(x, X509_get_subject_name(ca)))
        goto done;
    if ((rc = rk_pki_add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE")) != RK_OK ||
        (rc = rk_pki_add_ext(x, ca, NID_key_usage, "critical,digitalSignature")) != RK_OK ||
        (rc = rk_pki_add_ext(x, ca, NID_ext_key_usage, "clientAuth")) != RK_OK ||
        (rc = rk_pki_add_ext(x, ca, NID_subject_key_identifier, "hash")) != RK_OK ||
        (rc = rk_pki_add_ext(x, ca, NID_authority_key_identifier, "keyid:always")) != RK_OK)
        goto done;
    rc = X509_sign(x, ca_key, EVP_sha256()) > 0 ? RK_OK : RK_ERR_CRYPTO;
    if (rc == RK_OK) {
        *out = x;
        x = NULL;
    }
done:
    X509_free(x);
    BN_free(bn);
    rk_wipe(bytes, sizeof bytes);
    return rc;
}

static rk_rc write_card_files(const char *out_dir, X509 *cert, EVP_PKEY *key)
{
    char path[4096];
    rk_rc rc = RK_ERR_CRYPTO;
    BIO *c = BIO_new(BIO_s_mem()), *k = BIO_new(BIO_s_secmem()), *p = BIO_new(BIO_s_secmem());
    /* PKCS#12 with OpenSSL 3's defaults (AES-256-CBC, PBKDF2, a SHA-256 MAC), as browsers' stores import */
    PKCS12 *p12 = PKCS12_create("", "renkei card", key, cert, NULL, 0, 0, 0, 0, 0);
    if (!c || !k || !p || !p12 || !PEM_write_bio_X509(c, cert) ||
        !PEM_write_bio_PKCS8PrivateKey(k, key, NULL, NULL, 0, NULL, NULL) || i2d_PKCS12_bio(p, p12) != 1)
        goto done;
    if ((size_t)snprintf(path, sizeof path, "%s/cert.pem", out_dir) >= sizeof path ||
        (rc = write_bio_file(c, path, 0644)) != RK_OK)
        goto done;
    snprintf(path, sizeof path, "%s/key.pem", out_dir);
    if ((rc = write_bio_file(k, path, 0600)) != RK_OK)
        goto done;
    snprintf(path, sizeof path, "%s/card.p12", out_dir);
    rc = write_bio_file(p, path, 0600);
done:
    PKCS12_free(p12);
    BIO_free(c);
    BIO_free(k);
    BIO_free(p);
    return rc;
}

rk_rc rk_card_issue(const char *ca_path, const char *ca_key_path, const char *out_dir,
                    char serial[RK_CARD_SERIAL_LEN + 1])
{
    X509 *ca = NULL, *cert = NULL;
    EVP_PKEY *ca_key = NULL, *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    rk_rc rc = key ? load_ca(ca_path, ca_key_path, &ca, &ca_key) : RK_ERR_CRYPTO;
    if (rc == RK_OK)
        rc = rk_mkdirs(out_dir, 0700);
    if (rc == RK_OK)
        rc = build_card(ca, ca_key, key, serial, &cert);
    if (rc == RK_OK)
        rc = write_card_files(out_dir, cert, key);
    X509_free(ca);
    X509_free(cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
    return finish(rc);
}

/* ---------- the trust of the person listener ---------- */

struct rk_card_trust {
    X509 *ca;
    X509_STORE *store;
    pthread_mutex_t lock;
    X509_CRL *crl; /* in force; NULL until the first */
    long number;
};

static int trust_index = -1;
static pthread_once_t trust_once = PTHREAD_ONCE_INIT;

static void make_trust_index(void)
{
    trust_index = X509_STORE_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* The verifier asks for the CRLs of an issuer: the one in force, when it is
 * the card CA's. None is a refused card (X509_V_FLAG_CRL_CHECK). */
static STACK_OF(X509_CRL) *lookup_crls(const X509_STORE_CTX *ctx, const X509_NAME *name)
{
    rk_card_trust *t = X509_STORE_get_ex_data(X509_STORE_CTX_get0_store(ctx), trust_index);
    STACK_OF(X509_CRL) *sk = sk_X509_CRL_new_null();
    if (!t || !sk)
        return sk;
    pthread_mutex_lock(&t->lock);
    if (t->crl && X509_NAME_cmp(name, X509_CRL_get_issuer(t->crl)) == 0 && X509_CRL_up_ref(t->crl) &&
        !sk_X509_CRL_push(sk, t->crl))
        X509_CRL_free(t->crl);
    pthread_mutex_unlock(&t->lock);
    return sk;
}

rk_rc rk_card_trust_new(const char *ca_path, rk_card_trust **out)
{
    pthread_once(&trust_once, make_trust_index);
    rk_card_trust *t = calloc(1, sizeof *t);
    if (!t)
        return RK_ERR_NOMEM;
    pthread_mutex_init(&t->lock, NULL);
    rk_rc rc = rk_pki_load_cert(ca_path, &t->ca);
    if (rc == RK_OK && (!(t->store = X509_STORE_new()) || X509_STORE_add_cert(t->store, t->ca) != 1 ||
                        X509_STORE_set_flags(t->store, X509_V_FLAG_CRL_CHECK) != 1 ||
                        X509_STORE_set_purpose(t->store, X509_PURPOSE_SSL_CLIENT) != 1 ||
                        X509_STORE_set_depth(t->store, 1) != 1 || trust_index < 0 ||
                        X509_STORE_set_ex_data(t->store, trust_index, t) != 1))
        rc = RK_ERR_CRYPTO;
    if (rc != RK_OK) {
        rk_card_trust_free(t);
        return finish(rc);
    }
    X509_STORE_set_lookup_crls(t->store, lookup_crls);
    *out = t;
    return RK_OK;
}

void rk_card_trust_free(rk_card_trust *t)
{
    if (!t)
        return;
    X509_STORE_free(t->store);
    X509_free(t->ca);
    X509_CRL_free(t->crl);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

rk_rc rk_card_trust_set_crl(rk_card_trust *t, const char *pem, size_t len)
{
    X509_CRL *crl = NULL;
    long number = 0;
    rk_rc rc = rk_card_crl_read(pem, len, t->ca, &crl, &number);
    if (rc != RK_OK)
        return rc;
    pthread_mutex_lock(&t->lock);
    if (number < t->number) {
        rc = RK_ERR_CONFLICT;
    } else {
        X509_CRL *old = t->crl;
        t->crl = crl;
        t->number = number;
        crl = old;
    }
    pthread_mutex_unlock(&t->lock);
    X509_CRL_free(crl);
    return rc;
}

long rk_card_trust_crl_number(rk_card_trust *t)
{
    pthread_mutex_lock(&t->lock);
    long n = t->number;
    pthread_mutex_unlock(&t->lock);
    return n;
}

X509_STORE *rk_card_trust_store(rk_card_trust *t)
{
    return t->store;
}
