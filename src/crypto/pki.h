/* pki.h — the network's certificates and keys (DESIGN §3, standard 第5-2(3)-(5)).
 *
 * One network CA issues every node's certificate: ECDSA P-256, subject CN =
 * node id, SAN URI "urn:renkei:<role>:<name>" where name is the agency id for
 * agency-scoped roles (gateway, agency, system) and the node id otherwise,
 * plus an IP SAN for the address the node listens on. The same certificate
 * serves TLS (server and client) and CMS signing and encryption.
 *
 * Private keys are PKCS#8 PEM files of mode 0600, optionally encrypted
 * (AES-256-CBC, PBKDF2) with a passphrase read from a file. A key file that
 * group or others can read is refused. Ownership: every X509 / EVP_PKEY
 * returned belongs to the caller (X509_free / EVP_PKEY_free). */
#ifndef RK_PKI_H
#define RK_PKI_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"

#define RK_FINGERPRINT_LEN 65 /* SHA-256 hex + NUL */
#define RK_PIN_LEN 64         /* "sha256//" + base64 of 32 bytes + NUL */

typedef struct rk_cert_spec {
    const char *common_name; /* the node id */
    const char *role;        /* core, jlis, gateway, agency, system, operator */
    const char *name;        /* agency id or node id: goes into the SAN URI */
    const char *ip;          /* optional IP SAN, e.g. "127.0.0.1" */
    int64_t not_before;      /* unix seconds; 0 = now minus 5 minutes */
    int64_t not_after;       /* unix seconds; 0 = not_before + days */
    int days;                /* validity when not_after is 0; 0 = 825 */
} rk_cert_spec;

/* Creates a self-signed CA (P-256, basicConstraints CA:TRUE, keyCertSign,
 * cRLSign) and writes cert (0644) and key (0600). */
rk_rc rk_pki_create_ca(const char *cert_path, const char *key_path, const char *name, int days);

/* Issues a leaf certificate signed by the CA and writes cert and a fresh key.
 * passphrase: NULL writes the key unencrypted. */
rk_rc rk_pki_issue(const char *ca_cert_path, const char *ca_key_path, const rk_cert_spec *spec,
                   const char *cert_path, const char *key_path, const char *passphrase);

/* An issuer: the CA's certificate and key loaded (and checked to match)
 * once, for many certificates — `net init` of thousands of nodes. Every
 * certificate still gets a fresh key of its own. rk_pki_issuer_issue may be
 * called from several threads at once. out (may be NULL): the certificate
 * written, the caller's. Errors as rk_pki_issue's. */
typedef struct rk_pki_issuer rk_pki_issuer;
rk_rc rk_pki_issuer_open(const char *ca_cert_path, const char *ca_key_path, rk_pki_issuer **out);
rk_rc rk_pki_issuer_issue(rk_pki_issuer *is, const rk_cert_spec *spec, const char *cert_path, const char *key_path,
                          const char *passphrase, X509 **out);
void rk_pki_issuer_close(rk_pki_issuer *is); /* NULL: nothing */

/* Loads a private key through crypto/keys.h's rk_pkey_load (a file, or a
 * pkcs11: URI of a token key). Refuses (RK_ERR_DENIED) a file readable by
 * group or others. passphrase_file: NULL or "" for an unencrypted key;
 * otherwise the first line of that file is the passphrase or the token's
 * PIN (wiped after use). */
rk_rc rk_pki_load_key(const char *path, const char *passphrase_file, EVP_PKEY **out);

rk_rc rk_pki_load_cert(const char *path, X509 **out);
rk_rc rk_pki_cert_from_pem(const char *pem, size_t len, X509 **out);
/* PEM text of a certificate, malloc'ed, NUL-terminated. */
rk_rc rk_pki_cert_to_pem(X509 *cert, char **out);

/* SHA-256 of the certificate's DER, lowercase hex. */
rk_rc rk_pki_fingerprint(X509 *cert, char out[RK_FINGERPRINT_LEN]);
/* libcurl public-key pin: "sha256//" + base64(SHA-256(SubjectPublicKeyInfo DER)). */
rk_rc rk_pki_spki_pin(X509 *cert, char out[RK_PIN_LEN]);
/* Role and name from the SAN URI urn:renkei:<role>:<name>. */
rk_rc rk_pki_cert_identity(X509 *cert, char *role, size_t rolelen, char *name, size_t namelen);

/* Adds to certificate x, issued by issuer, an X509v3 extension from its
 * configuration text ("critical,CA:TRUE"); RK_ERR_CRYPTO when refused. */
rk_rc rk_pki_add_ext(X509 *x, X509 *issuer, int nid, const char *value);

/* ---- the network CA's CRL (DESIGN §3: certificates revoked) ----------- */

/* RFC 5280 reasonCode of a word (keyCompromise, superseded,
 * cessationOfOperation, …); -1 when unknown. And the word of a code. */
int rk_pki_crl_reason_parse(const char *word);
const char *rk_pki_crl_reason_name(int reason);

/* One PEM "X509 CRL" block, its DER exactly one CRL (at most 4 MiB).
 * RK_ERR_INVALID otherwise. */
rk_rc rk_pki_crl_from_pem(const char *pem, size_t len, X509_CRL **out);
/* The CRL is a v2 CRL of the CA ca (issuer and signature), with a
 * nextUpdate and a CRL number (*number, may be NULL). RK_ERR_INVALID when
 * malformed or incomplete, RK_ERR_CRYPTO when not signed by ca. */
rk_rc rk_pki_crl_check(X509_CRL *crl, X509 *ca, uint64_t *number);
/* True when crl lists cert (same issuer, its serial). */
int rk_pki_crl_lists(X509_CRL *crl, X509 *cert);
/* Writes at crl_path the CA's next CRL: the entries of the CRL there (which
 * must be the CA's), plus cert (issued by the CA) with reason when cert is
 * not NULL, number + 1, next update in 7 days. *number: the new number.
 * RK_ERR_EXISTS: cert is listed already; RK_ERR_INVALID: reason unknown or
 * cert not issued by the CA; the file is then unchanged. */
rk_rc rk_pki_crl_revoke(const char *ca_cert_path, const char *ca_key_path, const char *crl_path, X509 *cert,
                        int reason, uint64_t *number);

#endif
