/* peer_certs.h — certificates of registered peers that arrive inside
 * messages: the requester's certificate in an exchange (the provider
 * encrypts to it), the provider's certificate with its answer (the
 * requester verifies the signature with it).
 *
 * A certificate is accepted only when the SHA-256 of its DER is the
 * fingerprint the registry holds for that peer; it is then checked once
 * against the network CA and kept parsed, so that an exchange pays a hash
 * instead of an ASN.1 parse (OpenSSL 3 parses a public key through its
 * decoder machinery, the costliest step of an exchange otherwise). The
 * cache holds at most one entry per registered node: only registered
 * fingerprints get in. Threads share it. */
#ifndef RK_PEER_CERTS_H
#define RK_PEER_CERTS_H

#include <openssl/x509.h>
#include <stddef.h>
#include "lib/err.h"
#include "crypto/pki.h"
#include "net/registry.h"

#define RK_CERT_PEM_MAX 8192

typedef struct rk_peer_certs rk_peer_certs;

/* capacity: the most certificates kept (the registry's node count). The
 * cache keeps its own reference to trusted. */
rk_rc rk_peer_certs_new(X509_STORE *trusted, size_t capacity, rk_peer_certs **out);
void rk_peer_certs_free(rk_peer_certs *pc);

/* SHA-256 hex of the DER inside one PEM "CERTIFICATE" block, without parsing
 * the certificate. RK_ERR_INVALID unless pem is exactly one such block
 * (surrounding whitespace allowed) of at most RK_CERT_PEM_MAX bytes. */
rk_rc rk_pem_cert_fingerprint(const char *pem, char out[RK_FINGERPRINT_LEN]);

/* The certificate in pem, if its fingerprint is `expected` and it chains to
 * the network CA, is within its validity period now and is not revoked
 * (net/revocation.h). *out is a new
 * reference (X509_free it). RK_ERR_INVALID: not that certificate, not a
 * certificate, or not valid. */
rk_rc rk_peer_certs_get(rk_peer_certs *pc, const char *pem, const char *expected, X509 **out);

/* The same for a registered node's certificate: its current one, or a
 * previous one within its overlap after a renewal (net/registry.h). */
rk_rc rk_peer_certs_get_node(rk_peer_certs *pc, const char *pem, const rk_peer_node *node, X509 **out);

#endif
