#include "core/codes.h"

#include <openssl/pem.h> /* before cms.h: its PEM_read_bio_CMS */
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/* An EVP context keeps per-call state, so one codec is shared by the
 * worker threads under a mutex (uncontended, tens of nanoseconds). */
struct rk_codec {
    pthread_mutex_t lock;
    int versions;                            /* keys 1..versions */
    EVP_CIPHER_CTX *enc[RK_CODE_MAX_KEYS + 1];
    EVP_CIPHER_CTX *dec[RK_CODE_MAX_KEYS + 1];
};

static rk_rc derive_key(const uint8_t *master, size_t mlen, int version, uint8_t key[16])
{
    char info[32];
    int ilen = snprintf(info, sizeof info, "renkei code key v%d", version);
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t klen = 16;
    rk_rc rc = RK_ERR_CRYPTO;
    if (kctx && EVP_PKEY_derive_init(kctx) > 0 && EVP_PKEY_CTX_set_hkdf_md(kctx, EVP_sha256()) > 0 &&
        EVP_PKEY_CTX_set1_hkdf_key(kctx, master, (int)mlen) > 0 &&
        EVP_PKEY_CTX_add1_hkdf_info(kctx, (const unsigned char *)info, ilen) > 0 &&
        EVP_PKEY_derive(kctx, key, &klen) > 0 && klen == 16)
        rc = RK_OK;
    EVP_PKEY_CTX_free(kctx);
    return rc;
}

static rk_rc codec_make(const uint8_t *master, size_t master_len, const uint8_t (*masters)[32], int versions,
                        rk_codec **out)
{
    if ((masters ? 0 : master_len < 32) || versions < 1 || versions > RK_CODE_MAX_KEYS)
        return RK_ERR_INVALID;
    rk_codec *c = calloc(1, sizeof *c);
    if (!c)
        return RK_ERR_NOMEM;
    pthread_mutex_init(&c->lock, NULL);
    c->versions = versions;
    rk_rc rc = RK_OK;
    for (int v = 1; v <= versions && rc == RK_OK; v++) {
        uint8_t key[16];
        rc = masters ? derive_key(masters[v - 1], 32, v, key) : derive_key(master, master_len, v, key);
        c->enc[v] = EVP_CIPHER_CTX_new();
        c->dec[v] = EVP_CIPHER_CTX_new();
        if (rc == RK_OK &&
            (!c->enc[v] || !c->dec[v] ||
             EVP_EncryptInit_ex(c->enc[v], EVP_aes_128_ecb(), NULL, key, NULL) != 1 ||
             EVP_DecryptInit_ex(c->dec[v], EVP_aes_128_ecb(), NULL, key, NULL) != 1))
            rc = RK_ERR_CRYPTO;
        if (rc == RK_OK) {
            EVP_CIPHER_CTX_set_padding(c->enc[v], 0);
            EVP_CIPHER_CTX_set_padding(c->dec[v], 0);
        }
        rk_wipe(key, sizeof key);
    }
    if (rc != RK_OK) {
        rk_codec_free(c);
        return rc;
    }
    *out = c;
    return RK_OK;
}

rk_rc rk_codec_new(const uint8_t *master, size_t master_len, int versions, rk_codec **out)
{
    return codec_make(master, master_len, NULL, versions, out);
}

rk_rc rk_codec_new_versions(const uint8_t (*masters)[32], int versions, rk_codec **out)
{
    return masters ? codec_make(NULL, 0, masters, versions, out) : RK_ERR_INVALID;
}

int rk_codec_versions(const rk_codec *c)
{
    return c->versions;
}

/* ---- the master key file ------------------------------------------------ */

#define KEY_FILE_CAP (64 * 1024)
#define SAY(...)                                \
    do {                                        \
        if (err && errlen)                      \
            snprintf(err, errlen, __VA_ARGS__); \
    } while (0)

/* Plain form: lines of 64 hex digits; a blank last line is allowed. */
static rk_rc parse_plain(const char *text, size_t len, uint8_t (*masters)[32], int *versions)
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        size_t l = e - i;
        if (l && text[i + l - 1] == '\r')
            l--;
        if (l) {
            char hex[65];
            if (l != 64 || n == RK_CODE_MAX_KEYS)
                return RK_ERR_INVALID;
            memcpy(hex, text + i, 64);
            hex[64] = '\0';
            rk_rc rc = rk_unhex(hex, masters[n], 32);
            rk_wipe(hex, sizeof hex);
            if (rc != RK_OK)
                return RK_ERR_INVALID;
            n++;
        }
        i = e + 1;
    }
    if (n == 0)
        return RK_ERR_INVALID;
    *versions = n;
    return RK_OK;
}

rk_rc rk_code_keys_read(const char *path, X509 *cert, EVP_PKEY *key, uint8_t (*masters)[32], int *versions,
                        int *wrapped, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    BIO *in = NULL, *out = BIO_new(BIO_s_secmem());
    CMS_ContentInfo *cms = NULL;
    rk_rc rc = rk_file_private(path);
    *wrapped = 0;
    if (rc == RK_ERR_DENIED) {
        SAY("%s: the master key is readable by group or others (chmod 600)", path);
        goto done;
    }
    if ((rc = rk_read_file(path, KEY_FILE_CAP, &text, &len)) != RK_OK) {
        SAY("%s: cannot read the master key", path);
        goto done;
    }
    if (strncmp(text, "-----BEGIN CMS-----", 19) == 0) {
        *wrapped = 1;
        char *plain = NULL;
        long plen = 0;
        if (!cert || !key) {
            rc = RK_ERR_CONFIG;
            SAY("%s: the master key is wrapped: it needs the core's key", path);
            goto done;
        }
        in = BIO_new_mem_buf(text, (int)len);
        cms = in ? PEM_read_bio_CMS(in, NULL, NULL, NULL) : NULL;
        /* The token does the ECDH (CKM_ECDH1_DERIVE) when the key is there. */
        if (!out || !cms || CMS_decrypt(cms, key, cert, NULL, out, CMS_BINARY) != 1 ||
            (plen = BIO_get_mem_data(out, &plain)) <= 0) {
            rc = RK_ERR_CRYPTO;
            SAY("%s: cannot unwrap the master key with the core's key", path);
            goto done;
        }
        rc = parse_plain(plain, (size_t)plen, masters, versions);
        rk_wipe(plain, (size_t)plen);
    } else {
        rc = parse_plain(text, len, masters, versions);
    }
    if (rc != RK_OK)
        SAY("%s: the master key must be lines of 64 hex digits (at most %d)", path, RK_CODE_MAX_KEYS);
done:
    if (text) {
        rk_wipe(text, len);
        free(text);
    }
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    BIO_free(out);
    ERR_clear_error();
    return rc;
}

rk_rc rk_code_keys_write(const char *path, const uint8_t (*masters)[32], int versions, X509 *wrap_to)
{
    if (versions < 1 || versions > RK_CODE_MAX_KEYS)
        return RK_ERR_INVALID;
    char plain[RK_CODE_MAX_KEYS * 65];
    size_t plen = 0;
    for (int v = 0; v < versions; v++) {
        rk_hex(masters[v], 32, plain + plen);
        plen += 64;
        plain[plen++] = '\n';
    }
    rk_rc rc = RK_OK;
    if (!wrap_to) {
        rc = rk_write_file(path, plain, plen, 0600);
        rk_wipe(plain, sizeof plain);
        return rc;
    }
    BIO *in = BIO_new_mem_buf(plain, (int)plen), *pem = BIO_new(BIO_s_mem());
    STACK_OF(X509) *to = sk_X509_new_null();
    CMS_ContentInfo *cms = NULL;
    char *data = NULL;
    long dlen = 0;
    if (!in || !pem || !to || !sk_X509_push(to, wrap_to) ||
        !(cms = CMS_encrypt(to, in, EVP_aes_256_cbc(), CMS_BINARY)) || PEM_write_bio_CMS(pem, cms) != 1 ||
        (dlen = BIO_get_mem_data(pem, &data)) <= 0)
        rc = RK_ERR_CRYPTO;
    else
        rc = rk_write_file(path, data, (size_t)dlen, 0600);
    rk_wipe(plain, sizeof plain);
    CMS_ContentInfo_free(cms);
    sk_X509_free(to);
    BIO_free(in);
    BIO_free(pem);
    ERR_clear_error();
    return rc;
}

rk_rc rk_codec_load(const char *path, X509 *cert, EVP_PKEY *key, rk_codec **out, char *err, size_t errlen)
{
    uint8_t masters[RK_CODE_MAX_KEYS][32];
    int versions = 0, wrapped = 0;
    rk_rc rc = rk_code_keys_read(path, cert, key, masters, &versions, &wrapped, err, errlen);
    if (rc == RK_OK && (rc = rk_codec_new_versions((const uint8_t(*)[32])masters, versions, out)) != RK_OK)
        SAY("%s: cannot derive the code keys", path);
    rk_wipe(masters, sizeof masters); /* 第5-2(5) */
    return rc;
}

void rk_codec_free(rk_codec *c)
{
    if (!c)
        return;
    for (int v = 0; v <= RK_CODE_MAX_KEYS; v++) {
        EVP_CIPHER_CTX_free(c->enc[v]); /* frees and cleanses the key schedule */
        EVP_CIPHER_CTX_free(c->dec[v]);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

uint32_t rk_agency_number(const char *agency_id)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    char buf[128];
    int n = snprintf(buf, sizeof buf, "renkei agency:%s", agency_id);
    EVP_Digest(buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1), md, NULL, EVP_sha256(), NULL);
    return (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 | (uint32_t)md[2] << 8 | md[3];
}

static void pack(uint64_t serial, uint32_t agency_no, uint8_t block[16])
{
    for (int i = 0; i < 6; i++)
        block[i] = (uint8_t)(serial >> (8 * (5 - i)));
    for (int i = 0; i < 4; i++)
        block[6 + i] = (uint8_t)(agency_no >> (8 * (3 - i)));
    memset(block + 10, 0, 6);
}

static rk_rc encode(const rk_codec *c, int v, const uint8_t plain[16], char out[RK_CODE_TEXT_MAX])
{
    uint8_t ct[16];
    int n = 0;
    pthread_mutex_lock((pthread_mutex_t *)&c->lock);
    int ok = EVP_EncryptUpdate(c->enc[v], ct, &n, plain, 16) == 1 && n == 16;
    pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
    if (!ok)
        return RK_ERR_CRYPTO;
    out[0] = 'v';
    out[1] = (char)('0' + v);
    out[2] = '-';
    rk_hex(ct, 16, out + 3);
    return RK_OK;
}

rk_rc rk_code_derive_version(const rk_codec *c, int version, uint64_t serial, uint32_t agency_no,
                             char out[RK_CODE_TEXT_MAX])
{
    if (serial == 0 || serial > RK_CODE_MAX_SERIAL || version < 1 || version > c->versions)
        return RK_ERR_INVALID;
    uint8_t block[16];
    pack(serial, agency_no, block);
    return encode(c, version, block, out);
}

rk_rc rk_code_derive(const rk_codec *c, uint64_t serial, uint32_t agency_no, char out[RK_CODE_TEXT_MAX])
{
    return rk_code_derive_version(c, c->versions, serial, agency_no, out);
}

static rk_rc decode(const rk_codec *c, const char *code, int *version, uint8_t plain[16])
{
    if (!code || code[0] != 'v' || code[1] < '1' || code[1] > '0' + c->versions || code[2] != '-')
        return RK_ERR_INVALID;
    uint8_t ct[16];
    if (strlen(code) != 3 + 32 || rk_unhex(code + 3, ct, 16) != RK_OK)
        return RK_ERR_INVALID;
    int v = code[1] - '0', n = 0;
    pthread_mutex_lock((pthread_mutex_t *)&c->lock);
    int ok = EVP_DecryptUpdate(c->dec[v], plain, &n, ct, 16) == 1 && n == 16;
    pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
    if (!ok)
        return RK_ERR_CRYPTO;
    static const uint8_t zeros[6];
    if (memcmp(plain + 10, zeros, 6) != 0)
        return RK_ERR_INVALID;
    *version = v;
    return RK_OK;
}

rk_rc rk_code_open(const rk_codec *c, const char *code, uint64_t *serial, uint32_t *agency_no)
{
    uint8_t p[16];
    int v;
    rk_rc rc = decode(c, code, &v, p);
    if (rc != RK_OK)
        return rc;
    uint64_t s = 0;
    for (int i = 0; i < 6; i++)
        s = s << 8 | p[i];
    if (s == 0)
        return RK_ERR_INVALID;
    *serial = s;
    *agency_no = (uint32_t)p[6] << 24 | (uint32_t)p[7] << 16 | (uint32_t)p[8] << 8 | p[9];
    return RK_OK;
}

rk_rc rk_code_convert(const rk_codec *c, const char *code, uint32_t from, uint32_t to,
                      char out[RK_CODE_TEXT_MAX])
{
    uint64_t serial;
    uint32_t owner;
    rk_rc rc = rk_code_open(c, code, &serial, &owner);
    if (rc != RK_OK)
        return rc;
    if (owner != from)
        return RK_ERR_DENIED;
    return rk_code_derive(c, serial, to, out);
}
