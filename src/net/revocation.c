/* revocation.c — the CRL in force, swapped under a lock (net/revocation.h). */
#include "net/revocation.h"

#include <openssl/err.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/pki.h"
#include "lib/util.h"

#define CRL_FILE_CAP (4u << 20)

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static X509 *network_ca;
static X509_CRL *in_force;
static uint64_t in_force_number;

rk_rc rk_revocation_set_ca(X509 *ca)
{
    if (!ca || !X509_up_ref(ca))
        return RK_ERR_INVALID;
    pthread_rwlock_wrlock(&lock);
    X509 *old = network_ca;
    network_ca = ca;
    pthread_rwlock_unlock(&lock);
    X509_free(old);
    return RK_OK;
}

static int same_der(X509_CRL *a, X509_CRL *b)
{
    unsigned char *da = NULL, *db = NULL;
    int la = i2d_X509_CRL(a, &da), lb = i2d_X509_CRL(b, &db);
    int same = la > 0 && la == lb && memcmp(da, db, (size_t)la) == 0;
    OPENSSL_free(da);
    OPENSSL_free(db);
    return same;
}

rk_rc rk_revocation_set_pem(const char *pem, size_t len)
{
    X509_CRL *crl = NULL, *old = NULL;
    uint64_t number = 0;
    rk_rc rc = rk_pki_crl_from_pem(pem, len, &crl);
    if (rc != RK_OK)
        return rc;
    pthread_rwlock_wrlock(&lock);
    if (!network_ca)
        rc = RK_ERR_CONFIG;
    else if ((rc = rk_pki_crl_check(crl, network_ca, &number)) == RK_OK) {
        if (in_force && number < in_force_number)
            rc = RK_ERR_CONFLICT; /* a rollback: the newer list stays */
        else if (in_force && number == in_force_number)
            rc = same_der(crl, in_force) ? RK_OK : RK_ERR_CONFLICT; /* the same list again: kept */
        else {
            old = in_force;
            in_force = crl;
            in_force_number = number;
            crl = NULL;
        }
    }
    pthread_rwlock_unlock(&lock);
    X509_CRL_free(crl);
    X509_CRL_free(old);
    ERR_clear_error();
    return rc;
}

rk_rc rk_revocation_load_file(const char *path)
{
    char *pem = NULL;
    size_t len = 0;
    rk_rc rc = rk_read_file(path, CRL_FILE_CAP, &pem, &len);
    if (rc == RK_OK)
        rc = rk_revocation_set_pem(pem, len);
    free(pem);
    return rc;
}

int rk_revocation_is_revoked(X509 *cert)
{
    pthread_rwlock_rdlock(&lock);
    int revoked = in_force && rk_pki_crl_lists(in_force, cert);
    pthread_rwlock_unlock(&lock);
    return revoked;
}

uint64_t rk_revocation_number(void)
{
    pthread_rwlock_rdlock(&lock);
    uint64_t n = in_force ? in_force_number : 0;
    pthread_rwlock_unlock(&lock);
    return n;
}

void rk_revocation_reset(void)
{
    pthread_rwlock_wrlock(&lock);
    X509_CRL_free(in_force);
    X509_free(network_ca);
    in_force = NULL;
    network_ca = NULL;
    in_force_number = 0;
    pthread_rwlock_unlock(&lock);
}

int rk_revocation_verify(int ok, X509_STORE_CTX *store)
{
    if (!ok || X509_STORE_CTX_get_error_depth(store) != 0)
        return ok;
    X509 *leaf = X509_STORE_CTX_get_current_cert(store);
    if (leaf && rk_revocation_is_revoked(leaf)) {
        X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REVOKED);
        return 0;
    }
    return ok;
}
