/* fuzz_cert.c — certificates from outside (src/crypto/pki.c,
 * src/net/peer_certs.c): the requester's certificate inside an exchange,
 * the provider's with its answer, a PEM file. Parsing fails cleanly or
 * gives a certificate whose fingerprint, pin and identity can be read; a
 * certificate is admitted only with its registered fingerprint and the
 * network CA's signature. */
#include "crypto/pki.h"
#include "fuzz.h"
#include "net/peer_certs.h"

static rk_peer_certs *pc;
static char requester_fp[RK_FINGERPRINT_LEN];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    X509_STORE *st = X509_STORE_new();
    X509 *ca = fz_cert("ca"), *requester = fz_cert("requester");
    if (!st || X509_STORE_add_cert(st, ca) != 1 || rk_peer_certs_new(st, 4, &pc) != RK_OK ||
        rk_pki_fingerprint(requester, requester_fp) != RK_OK)
        abort();
    X509_STORE_free(st);
    X509_free(ca);
    X509_free(requester);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *pem = fz_str(data, size);
    X509 *x = NULL;
    char fp[RK_FINGERPRINT_LEN], raw_fp[RK_FINGERPRINT_LEN], pin[RK_PIN_LEN], role[32], name[80];
    int raw = rk_pem_cert_fingerprint(pem, raw_fp) == RK_OK;
    if (raw)
        FZ_CHECK(strlen(raw_fp) == 64);
    if (rk_pki_cert_from_pem(pem, strlen(pem), &x) == RK_OK) {
        FZ_CHECK(rk_pki_fingerprint(x, fp) == RK_OK && strlen(fp) == 64);
        /* one block: the fingerprint of its DER is that of the certificate */
        if (raw)
            FZ_CHECK(strcmp(fp, raw_fp) == 0);
        if (rk_pki_spki_pin(x, pin) == RK_OK)
            FZ_CHECK(strncmp(pin, "sha256//", 8) == 0 && strlen(pin) < RK_PIN_LEN);
        if (rk_pki_cert_identity(x, role, sizeof role, name, sizeof name) == RK_OK)
            FZ_CHECK(strlen(role) < sizeof role && strlen(name) < sizeof name);
        char *back = NULL;
        if (rk_pki_cert_to_pem(x, &back) == RK_OK) {
            X509 *y = NULL;
            char fp2[RK_FINGERPRINT_LEN];
            FZ_CHECK(rk_pki_cert_from_pem(back, strlen(back), &y) == RK_OK);
            FZ_CHECK(rk_pki_fingerprint(y, fp2) == RK_OK && strcmp(fp, fp2) == 0);
            X509_free(y);
            free(back);
        }
        X509_free(x);
    }
    /* admitted only under its own fingerprint, and only if the CA issued it */
    X509 *got = NULL;
    if (raw && rk_peer_certs_get(pc, pem, raw_fp, &got) == RK_OK) {
        FZ_CHECK(rk_pki_fingerprint(got, fp) == RK_OK && strcmp(fp, raw_fp) == 0);
        X509_free(got);
    }
    got = NULL;
    if (rk_peer_certs_get(pc, pem, requester_fp, &got) == RK_OK) {
        FZ_CHECK(raw && strcmp(raw_fp, requester_fp) == 0);
        X509_free(got);
    }
    free(pem);
    return 0;
}
