/* fuzz_cms.c — the CMS payload a requester opens (src/crypto/cms.c): the
 * base64 of an AuthEnvelopedData holding a SignedData, as the core relays
 * it. Whatever arrives, opening it fails cleanly or gives the provider's
 * signed content; nothing opens as signed by anyone but the given signer. */
#include "crypto/cms.h"
#include "fuzz.h"

static X509 *requester, *provider;
static EVP_PKEY *requester_key, *provider_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    requester = fz_cert("requester");
    provider = fz_cert("provider");
    requester_key = fz_key("requester");
    provider_key = fz_key("provider");
    return 0;
}

static void open_b64(const char *b64)
{
    char *data = NULL, digest[65];
    size_t len = 0;
    rk_rc rc = rk_cms_open(requester, requester_key, provider, b64, &data, &len);
    FZ_CHECK(rc == RK_OK || rc == RK_ERR_CRYPTO);
    if (rc == RK_OK) {
        FZ_CHECK(data && data[len] == '\0');
        FZ_CHECK(rk_payload_digest(b64, digest) == RK_OK && strlen(digest) == 64);
        free(data);
        data = NULL;
    }
    /* the requester never signed anything: nothing verifies as its */
    FZ_CHECK(rk_cms_open(requester, requester_key, requester, b64, &data, &len) != RK_OK);
    if (rk_payload_digest(b64, digest) == RK_OK)
        FZ_CHECK(strlen(digest) == 64);
}

/* 'S' <n> <value>: the value sealed now by the provider to the requester
 * (the keys are made at start, so sealed seeds cannot be kept in the
 * tree), byte n*7 of its DER flipped by n when n > 0, then opened. */
static void seal_and_open(const uint8_t *data, size_t size)
{
    char *b64 = NULL, *again = NULL;
    unsigned char *der = NULL;
    size_t der_len = 0;
    FZ_CHECK(rk_cms_seal(provider, provider_key, requester, data + 1, size - 1, &b64) == RK_OK);
    if (data[0] && rk_base64_decode(b64, &der, &der_len) == RK_OK && der_len > 0) {
        der[(size_t)data[0] * 7 % der_len] ^= data[0];
        FZ_CHECK(rk_base64_encode(der, der_len, &again) == RK_OK);
        open_b64(again);
    } else {
        open_b64(b64);
    }
    free(der);
    free(again);
    free(b64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] == 'S') {
        if (size >= 2)
            seal_and_open(data + 1, size - 1);
        return 0;
    }
    if (data[0] == 'B') { /* the payload field as it comes: base64 text */
        char *b64 = fz_str(data + 1, size - 1);
        open_b64(b64);
        free(b64);
        return 0;
    }
    /* DER bytes: base64 made of them, and decoded back the same (no bytes
     * are no payload: the decoder refuses an empty text) */
    if (size == 1)
        return 0;
    char *b64 = NULL;
    FZ_CHECK(rk_base64_encode(data + 1, size - 1, &b64) == RK_OK);
    unsigned char *back = NULL;
    size_t back_len = 0;
    FZ_CHECK(rk_base64_decode(b64, &back, &back_len) == RK_OK);
    FZ_CHECK(back_len == size - 1 && memcmp(back, data + 1, back_len) == 0);
    free(back);
    open_b64(b64);
    free(b64);
    return 0;
}
