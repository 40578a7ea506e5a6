/* fuzz_crl.c — the network CA's CRL from outside (src/crypto/pki.c, CRL
 * section; src/net/revocation.c): the file a node loads at start and on
 * SIGHUP, the CRL served beside the registry. Parsing fails cleanly; a CRL
 * not signed by the network CA never comes into force; the same bytes
 * re-signed by the CA are checked for their number and nextUpdate, and once
 * in force say of a certificate exactly what the CRL lists. */
#include <openssl/pem.h>

#include "crypto/pki.h"
#include "fuzz.h"
#include "net/revocation.h"

static X509 *ca, *requester, *provider;
static EVP_PKEY *ca_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ca = fz_cert("ca");
    ca_key = fz_key("ca");
    requester = fz_cert("requester");
    provider = fz_cert("provider");
    if (rk_revocation_set_ca(ca) != RK_OK)
        abort();
    return 0;
}

static char *to_pem(X509_CRL *crl, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL, *copy = NULL;
    if (bio && PEM_write_bio_X509_CRL(bio, crl)) {
        long n = BIO_get_mem_data(bio, &data);
        if ((copy = malloc((size_t)n + 1))) {
            memcpy(copy, data, (size_t)n);
            copy[n] = '\0';
            *len = (size_t)n;
        }
    }
    BIO_free(bio);
    return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *pem = fz_str(data, size);
    size_t len = strlen(pem);
    uint64_t before = rk_revocation_number();
    int was_revoked = rk_revocation_is_revoked(requester);
    /* as it came: only the network CA's signature brings it into force */
    rk_rc rc = rk_revocation_set_pem(pem, len);
    X509_CRL *crl = NULL;
    if (rk_pki_crl_from_pem(pem, len, &crl) != RK_OK) {
        FZ_CHECK(rc != RK_OK);
        FZ_CHECK(rk_revocation_number() == before && rk_revocation_is_revoked(requester) == was_revoked);
        free(pem);
        return 0;
    }
    if (rc == RK_OK)
        FZ_CHECK(rk_pki_crl_check(crl, ca, NULL) == RK_OK);
    else
        FZ_CHECK(rk_revocation_number() == before && rk_revocation_is_revoked(requester) == was_revoked);
    (void)rk_pki_crl_lists(crl, provider);
    /* the same content signed by the CA: its own number and nextUpdate decide */
    uint64_t number = 0;
    if (X509_CRL_sign(crl, ca_key, EVP_sha256()) && rk_pki_crl_check(crl, ca, &number) == RK_OK) {
        size_t n = 0;
        char *signed_pem = to_pem(crl, &n);
        if (signed_pem) {
            before = rk_revocation_number();
            rc = rk_revocation_set_pem(signed_pem, n);
            if (number > before)
                FZ_CHECK(rc == RK_OK && rk_revocation_number() == number);
            if (number < before)
                FZ_CHECK(rc == RK_ERR_CONFLICT && rk_revocation_number() == before);
            if (rc == RK_OK)
                FZ_CHECK(rk_revocation_is_revoked(requester) == rk_pki_crl_lists(crl, requester));
            free(signed_pem);
        }
        /* a bounded state between inputs: the next one starts without a CRL */
        rk_revocation_reset();
        FZ_CHECK(rk_revocation_set_ca(ca) == RK_OK);
    }
    X509_CRL_free(crl);
    free(pem);
    return 0;
}
