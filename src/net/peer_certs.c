#include "net/peer_certs.h"

#include <ctype.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/cms.h"
#include "lib/util.h"
#include "net/revocation.h"

#define PEM_BEGIN "-----BEGIN CERTIFICATE-----"
#define PEM_END "-----END CERTIFICATE-----"

typedef struct cached_cert {
    char fingerprint[RK_FINGERPRINT_LEN];
    X509 *cert;
} cached_cert;

struct rk_peer_certs {
    pthread_rwlock_t lock;
    X509_STORE *trusted;
    cached_cert *slots;
    size_t n, capacity;
};

rk_rc rk_peer_certs_new(X509_STORE *trusted, size_t capacity, rk_peer_certs **out)
{
    rk_peer_certs *pc = calloc(1, sizeof *pc);
    if (!pc || !(pc->slots = calloc(capacity ? capacity : 1, sizeof *pc->slots)) || !X509_STORE_up_ref(trusted)) {
        if (pc)
            free(pc->slots);
        free(pc);
        return RK_ERR_NOMEM;
    }
    pthread_rwlock_init(&pc->lock, NULL);
    pc->trusted = trusted;
    pc->capacity = capacity ? capacity : 1;
    *out = pc;
    return RK_OK;
}

void rk_peer_certs_free(rk_peer_certs *pc)
{
    if (!pc)
        return;
    for (size_t i = 0; i < pc->n; i++)
        X509_free(pc->slots[i].cert);
    X509_STORE_free(pc->trusted);
    pthread_rwlock_destroy(&pc->lock);
    free(pc->slots);
    free(pc);
}

/* The DER inside one PEM certificate block; *der is malloc'ed. */
static rk_rc pem_to_der(const char *pem, unsigned char **der, size_t *der_len)
{
    size_t len = strnlen(pem, RK_CERT_PEM_MAX + 1);
    if (len > RK_CERT_PEM_MAX)
        return RK_ERR_INVALID;
    const char *p = pem, *end = pem + len;
    while (p < end && isspace((unsigned char)*p))
        p++;
    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    size_t nb = strlen(PEM_BEGIN), ne = strlen(PEM_END);
    if ((size_t)(end - p) < nb + ne || memcmp(p, PEM_BEGIN, nb) != 0 || memcmp(end - ne, PEM_END, ne) != 0)
        return RK_ERR_INVALID;
    char b64[RK_CERT_PEM_MAX + 1];
    size_t n = 0;
    for (const char *c = p + nb; c < end - ne; c++) {
        if (*c == '\n' || *c == '\r')
            continue;
        if (!isalnum((unsigned char)*c) && *c != '+' && *c != '/' && *c != '=')
            return RK_ERR_INVALID; /* a header line, a second block, anything else */
        b64[n++] = *c;
    }
    b64[n] = '\0';
    return rk_base64_decode(b64, der, der_len) == RK_OK ? RK_OK : RK_ERR_INVALID;
}

static void der_fingerprint(const unsigned char *der, size_t len, char out[RK_FINGERPRINT_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_Digest(der, len, md, &md_len, EVP_sha256(), NULL);
    rk_hex(md, md_len, out);
}

rk_rc rk_pem_cert_fingerprint(const char *pem, char out[RK_FINGERPRINT_LEN])
{
    unsigned char *der = NULL;
    size_t len = 0;
    rk_rc rc = pem_to_der(pem, &der, &len);
    if (rc == RK_OK)
        der_fingerprint(der, len, out);
    free(der);
    return rc;
}

static int within_validity(X509 *cert)
{
    return X509_cmp_current_time(X509_get0_notBefore(cert)) < 0 &&
           X509_cmp_current_time(X509_get0_notAfter(cert)) > 0;
}

static int chains_to_ca(X509_STORE *trusted, X509 *cert)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok = ctx && X509_STORE_CTX_init(ctx, trusted, cert, NULL) == 1 && X509_verify_cert(ctx) == 1;
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* A new reference to the cached certificate with this fingerprint, or NULL. */
static X509 *cached(rk_peer_certs *pc, const char *fingerprint)
{
    X509 *found = NULL;
    pthread_rwlock_rdlock(&pc->lock);
    for (size_t i = 0; i < pc->n && !found; i++)
        if (strcmp(pc->slots[i].fingerprint, fingerprint) == 0 && X509_up_ref(pc->slots[i].cert))
            found = pc->slots[i].cert;
    pthread_rwlock_unlock(&pc->lock);
    return found;
}

/* Parses and checks a certificate first seen; keeps it if there is room. */
static X509 *admit(rk_peer_certs *pc, const unsigned char *der, size_t len, const char *fingerprint)
{
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)len);
    if (!cert || p != der + len || !chains_to_ca(pc->trusted, cert)) {
        X509_free(cert);
        ERR_clear_error();
        return NULL;
    }
    pthread_rwlock_wrlock(&pc->lock);
    int known = 0;
    for (size_t i = 0; i < pc->n; i++)
        known |= strcmp(pc->slots[i].fingerprint, fingerprint) == 0;
    if (!known && pc->n < pc->capacity && X509_up_ref(cert)) {
        memcpy(pc->slots[pc->n].fingerprint, fingerprint, RK_FINGERPRINT_LEN);
        pc->slots[pc->n++].cert = cert;
    }
    pthread_rwlock_unlock(&pc->lock);
    return cert;
}

rk_rc rk_peer_certs_get(rk_peer_certs *pc, const char *pem, const char *expected, X509 **out)
{
    unsigned char *der = NULL;
    size_t len = 0;
    char fingerprint[RK_FINGERPRINT_LEN];
    if (!pem || !expected || pem_to_der(pem, &der, &len) != RK_OK)
        return RK_ERR_INVALID;
    der_fingerprint(der, len, fingerprint);
    X509 *cert = NULL;
    if (strcmp(fingerprint, expected) == 0 && !(cert = cached(pc, fingerprint)))
        cert = admit(pc, der, len, fingerprint);
    free(der);
    /* 第5-2(2): out of its validity, or revoked by the network CA's CRL in force */
    if (cert && (!within_validity(cert) || rk_revocation_is_revoked(cert))) {
        X509_free(cert);
        cert = NULL;
    }
    if (!cert)
        return RK_ERR_INVALID;
    *out = cert;
    return RK_OK;
}

rk_rc rk_peer_certs_get_node(rk_peer_certs *pc, const char *pem, const rk_peer_node *node, X509 **out)
{
    char fingerprint[RK_FINGERPRINT_LEN];
    if (!pem || !node || rk_pem_cert_fingerprint(pem, fingerprint) != RK_OK ||
        !rk_peer_fingerprint_accepted(node, fingerprint, (int64_t)time(NULL)))
        return RK_ERR_INVALID;
    return rk_peer_certs_get(pc, pem, fingerprint, out);
}
