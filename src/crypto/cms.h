/* cms.h — end-to-end protection of a provided value (standard 第6-4).
 *
 * The provider signs the value with its own key (CMS SignedData; its
 * certificate travels beside the payload, not inside it) and encrypts that
 * to the requester's certificate (CMS AuthEnvelopedData, AES-256-GCM with
 * ECDH key agreement). The core and both gateways relay the result and
 * cannot read it. The requester decrypts with its key and verifies the
 * signature with the provider's registered certificate (checked against
 * the registry's fingerprint and the network CA by rk_peer_certs).
 * Standard formats only: OpenSSL's CMS API, DER, base64 on the wire. */
#ifndef RK_CMS_H
#define RK_CMS_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include "lib/err.h"

/* Signs and encrypts data; *b64 is malloc'ed base64 of the DER. */
rk_rc rk_cms_seal(X509 *signer_cert, EVP_PKEY *signer_key, X509 *recipient, const void *data, size_t len,
                  char **b64);

/* Decrypts and verifies. signer: the certificate that must have signed
 * (the provider's registered one; certificates inside the message are not
 * used). RK_ERR_CRYPTO on any failure: not base64, not CMS, not for us,
 * altered, or signed by someone else. *data is malloc'ed, NUL-terminated. */
rk_rc rk_cms_open(X509 *my_cert, EVP_PKEY *my_key, X509 *signer, const char *b64, char **data, size_t *len);

/* SHA-256 hex of the DER behind a base64 payload (the digest the core
 * records). */
rk_rc rk_payload_digest(const char *b64, char out[65]);

/* A store holding the network CA, for verification. Caller frees it. */
rk_rc rk_ca_store_load(const char *ca_path, X509_STORE **out);

/* Base64 helpers (no newlines). */
rk_rc rk_base64_encode(const unsigned char *in, size_t len, char **out);
rk_rc rk_base64_decode(const char *in, unsigned char **out, size_t *len);

#endif
