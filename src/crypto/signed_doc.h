/* signed_doc.h — a document signed by the network operator (DESIGN §3, §2.3).
 *
 * The registry in force and the catalogue (the permission table with its
 * businesses and items) are each one document signed by the operator's
 * registry key: a key of its own, not the CA's, ECDSA P-256 so that it can
 * live in a PKCS#11 token. Every node holds the public key it was
 * installed with (its trust anchor) and accepts a document only when the
 * signature verifies under it.
 *
 * The envelope is JSON and carries the document's exact bytes, so nothing
 * depends on how JSON is re-encoded:
 *
 *   {"format":"renkei-signed/v1","kind":"registry","key_id":"<hex>",
 *    "document":"<base64 of the bytes>","signature":"<base64 DER ECDSA>"}
 *
 * The signature covers "renkei-signed/v1\n" ‖ kind ‖ "\n" ‖ the bytes: a
 * catalogue cannot pass for a registry. key_id is the SHA-256 of the key's
 * SubjectPublicKeyInfo (DER), hex: it names the key, it is not trusted.
 * What the document says (serial, issue time, effective date) is its
 * reader's business (net/registry, core/permissions). */
#ifndef RK_SIGNED_DOC_H
#define RK_SIGNED_DOC_H

#include <openssl/evp.h>
#include <stddef.h>
#include "lib/err.h"

#define RK_SIGNED_DOC_FORMAT "renkei-signed/v1"
#define RK_SIGNED_DOC_KIND_MAX 32
#define RK_SIGNED_DOC_KEY_ID_LEN 65 /* 64 hex digits and a NUL */
#define RK_SIGNED_DOC_SIG64_MAX 160 /* an envelope's signature, base64, and a NUL */

/* Signs doc (len bytes) as a document of that kind with key; *out is the
 * malloc'ed envelope (NUL-terminated, one JSON object and a newline). */
rk_rc rk_signed_doc_sign(EVP_PKEY *key, const char *kind, const void *doc, size_t len, char **out, size_t *outlen);

/* The envelope of a document already signed: what rk_signed_doc_sign writes,
 * byte for byte, from the kind, the key id, the document and the signature
 * (base64 as in an envelope). A registry rebuilt from a delta
 * (net/registry_delta.h) is wrapped so, then opened like any envelope. */
rk_rc rk_signed_doc_wrap(const char *kind, const char *key_id, const void *doc, size_t len, const char *sig64,
                         char **out, size_t *outlen);

/* RK_OK when env is byte for byte what rk_signed_doc_wrap makes of doc as
 * a document of that kind, with the key id and signature it names (copied
 * out; nothing is verified). Streams: no copy of the envelope is made, so a
 * large registry can be checked where memory is counted (the core). */
rk_rc rk_signed_doc_wrapped_as(const char *kind, const void *doc, size_t len, const char *env, size_t envlen,
                               char key_id[RK_SIGNED_DOC_KEY_ID_LEN], char sig64[RK_SIGNED_DOC_SIG64_MAX]);

/* Opens an envelope of the expected kind under the anchor (a public key).
 * cap bounds the document's size. *doc is malloc'ed and NUL-terminated
 * (the NUL not counted in *doclen). RK_ERR_INVALID: not an envelope, or of
 * another kind or format; RK_ERR_TOO_LARGE: over cap; RK_ERR_CRYPTO: the
 * signature does not verify under the anchor. err (may be NULL) says which. */
rk_rc rk_signed_doc_open(EVP_PKEY *anchor, const char *kind, const char *env, size_t envlen, size_t cap, char **doc,
                         size_t *doclen, char *err, size_t errlen);

/* The key id of a key (public or private): SHA-256 hex of its SPKI DER. */
rk_rc rk_signed_doc_key_id(EVP_PKEY *key, char out[RK_SIGNED_DOC_KEY_ID_LEN]);

/* Reads an anchor: a PEM public key (a private key's file is refused). */
rk_rc rk_signed_doc_load_anchor(const char *path, EVP_PKEY **out);

#endif
