/* codes.h — 情報提供用個人識別符号 ("codes"): derivation and conversion.
 *
 * A code is AES-128 under the core's versioned code key K_v (HKDF from the
 * master key) of one block: person serial (48 bits) | agency number (32
 * bits, from the agency id) | 48 zero bits of redundancy. The block is a
 * keyed pseudorandom permutation, so:
 *   - deterministic per (person, agency); unlinkable across agencies;
 *   - reversible only with K_v; nothing about a My Number or resident code
 *     is in it (the serial is the core's own internal number);
 *   - conversion is decrypt + encrypt, constant time, no table of pairs;
 *   - a string the core did not make fails the redundancy check.
 * Text form: "v<version>-<32 lowercase hex>" (for example "v1-3fa2…"). */
#ifndef RK_CODES_H
#define RK_CODES_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"

#define RK_CODE_TEXT_MAX 48
#define RK_CODE_MAX_SERIAL ((UINT64_C(1) << 48) - 1)
#define RK_CODE_MAX_KEYS 8

typedef struct rk_codec rk_codec;

/* master: the core's master key (32 bytes). Keys for versions 1..versions
 * are derived; new codes use the highest version. The master is not kept. */
rk_rc rk_codec_new(const uint8_t *master, size_t master_len, int versions, rk_codec **out);
void rk_codec_free(rk_codec *c); /* wipes the keys */

/* One master key per version: version v's code key is HKDF(masters[v-1],
 * "renkei code key v<v>"), so a file of one line (every file before
 * rotation) gives the same version-1 key as rk_codec_new(master, 32, 1). */
rk_rc rk_codec_new_versions(const uint8_t (*masters)[32], int versions, rk_codec **out);
int rk_codec_versions(const rk_codec *c);

/* The master key file ([core] master_key_file, mode 0600), in one of two forms:
 *   - plain: one line of 64 hex digits per key version, oldest first;
 *   - wrapped: a PEM "CMS" block, EnvelopedData (ECDH, AES-256) to the core's
 *     certificate, whose content is the plain form. It is opened with the
 *     core's private key, which may be in a PKCS#11 token (crypto/keys.h): the
 *     master keys are then only ever in clear in memory, wiped after use.
 * rk_code_keys_read: *versions keys into masters (RK_CODE_MAX_KEYS rows);
 * cert/key open a wrapped file (NULL: a wrapped file is refused);
 * *wrapped says which form it was. err: one line. */
rk_rc rk_code_keys_read(const char *path, X509 *cert, EVP_PKEY *key, uint8_t (*masters)[32], int *versions,
                        int *wrapped, char *err, size_t errlen);
/* Writes the file, mode 0600: wrapped to `wrap_to` when given, else plain. */
rk_rc rk_code_keys_write(const char *path, const uint8_t (*masters)[32], int versions, X509 *wrap_to);
/* Reads the file and makes the codec; the master keys are wiped. */
rk_rc rk_codec_load(const char *path, X509 *cert, EVP_PKEY *key, rk_codec **out, char *err, size_t errlen);

/* The agency number: the first 32 bits of SHA-256("renkei agency:" id). */
uint32_t rk_agency_number(const char *agency_id);

/* Derives the code of (serial, agency) with the current key version. */
rk_rc rk_code_derive(const rk_codec *c, uint64_t serial, uint32_t agency_no, char out[RK_CODE_TEXT_MAX]);
/* ... with key version `version` (1..rk_codec_versions): an agency keeps the
 * version its code for a person was first issued in (core_store's issued). */
rk_rc rk_code_derive_version(const rk_codec *c, int version, uint64_t serial, uint32_t agency_no,
                             char out[RK_CODE_TEXT_MAX]);

/* Opens a code: RK_ERR_INVALID if the core did not make it. */
rk_rc rk_code_open(const rk_codec *c, const char *code, uint64_t *serial, uint32_t *agency_no);

/* Converts a code of agency `from` into the code of agency `to`.
 * RK_ERR_INVALID: not a code; RK_ERR_DENIED: a valid code of another agency. */
rk_rc rk_code_convert(const rk_codec *c, const char *code, uint32_t from, uint32_t to,
                      char out[RK_CODE_TEXT_MAX]);

#endif
