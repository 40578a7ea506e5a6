/* fuzz_card.c — the card CRL from outside (src/crypto/card.c): the file
 * J-LIS reads and publishes, the answer the portal fetches. Reading it
 * fails cleanly, or gives a CRL the card CA signed with a number of at
 * least 1, which the portal's trust takes unless it is older than the one
 * in force; a serial is listed or not without harm. The input is the CRL,
 * then, after a line "%%", a card serial to look up. The card CA is made
 * at start, with a CRL that lists one serial. */
#include "crypto/card.h"
#include "crypto/pki.h"
#include "fuzz.h"
#include "lib/util.h"

static char dir[64], ca_path[128], key_path[128], crl_path[128];
static X509 *ca;
static rk_card_trust *trust;

static void remove_dir(void)
{
    char path[160];
    static const char *const files[] = {"card-ca.pem", "card-ca-key.pem", "card-crl.pem"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/rk-fuzz-card-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    atexit(remove_dir);
    snprintf(ca_path, sizeof ca_path, "%s/card-ca.pem", dir);
    snprintf(key_path, sizeof key_path, "%s/card-ca-key.pem", dir);
    snprintf(crl_path, sizeof crl_path, "%s/card-crl.pem", dir);
    char *pem = NULL;
    size_t len = 0;
    if (rk_card_ca_create(ca_path, key_path, crl_path) != RK_OK ||
        rk_card_revoke(ca_path, key_path, crl_path, "4000000000000000000000000000000a") != RK_OK ||
        rk_pki_load_cert(ca_path, &ca) != RK_OK || rk_card_trust_new(ca_path, &trust) != RK_OK ||
        rk_read_file(crl_path, RK_CARD_CRL_MAX, &pem, &len) != RK_OK || rk_card_trust_set_crl(trust, pem, len) != RK_OK)
        abort();
    free(pem);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fz_str(data, size), *parts[2] = {NULL, NULL};
    int n = fz_parts(text, parts, 2);
    const char *serial = n > 1 ? parts[1] : "4000000000000000000000000000000a";
    X509_CRL *crl = NULL;
    long number = 0, before = rk_card_trust_crl_number(trust);
    if (rk_card_crl_read(parts[0], strlen(parts[0]), ca, &crl, &number) == RK_OK) {
        FZ_CHECK(crl && number >= 1);
        FZ_CHECK(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) == 0);
        int listed = rk_card_crl_lists(crl, serial);
        FZ_CHECK(!listed || rk_card_serial_valid(serial)); /* only a serial's grammar is ever listed */
        rk_rc rc = rk_card_trust_set_crl(trust, parts[0], strlen(parts[0]));
        FZ_CHECK(number < before ? rc == RK_ERR_CONFLICT : rc == RK_OK);
        FZ_CHECK(rk_card_trust_crl_number(trust) == (number < before ? before : number));
        X509_CRL_free(crl);
    } else {
        FZ_CHECK(!crl);
        FZ_CHECK(rk_card_trust_set_crl(trust, parts[0], strlen(parts[0])) != RK_OK);
        FZ_CHECK(rk_card_trust_crl_number(trust) == before);
    }
    free(text);
    return 0;
}
