/* revocation.h — the network CA's certificate revocation list in force
 * (DESIGN §3; standard 第5-2(2): a revoked node is no longer a member).
 *
 * One CRL per process, shared by every thread: the TLS handshakes (server
 * and client side) refuse a revoked peer certificate, and a CMS payload
 * signed with one is refused (net/peer_certs.h). A new CRL replaces the one
 * in force atomically, only when it is signed by the network CA and its CRL
 * number is not older. A CRL past its nextUpdate stays in force until a
 * newer one arrives: nothing expires silently. */
#ifndef RK_REVOCATION_H
#define RK_REVOCATION_H

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"

/* The network CA that every CRL must be signed by (a reference is kept). */
rk_rc rk_revocation_set_ca(X509 *ca);
/* Puts the CRL in pem in force. RK_ERR_INVALID: not one CRL, or no number
 * or nextUpdate; RK_ERR_CRYPTO: not signed by the network CA; RK_ERR_CONFLICT:
 * its number is older than the one in force (or the same number with other
 * entries); RK_ERR_CONFIG: no CA set. On any error the CRL in force stays. */
rk_rc rk_revocation_set_pem(const char *pem, size_t len);
/* The same from a file (at most 4 MiB). */
rk_rc rk_revocation_load_file(const char *path);
/* True when the CRL in force lists cert. */
int rk_revocation_is_revoked(X509 *cert);
/* The number of the CRL in force, 0 when none. */
uint64_t rk_revocation_number(void);
/* Drops the CRL and the CA (at exit; tests). */
void rk_revocation_reset(void);
/* For a verify callback (SSL_CTX_set_verify): ok, unless ok and the
 * certificate being checked is the leaf and is revoked; then the store's
 * error is X509_V_ERR_CERT_REVOKED and 0. */
int rk_revocation_verify(int ok, X509_STORE_CTX *store);

#endif
