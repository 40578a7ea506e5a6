/* card.h — persons' cards (DESIGN §2.5, §3): a stand-in for JPKI's
 * 利用者証明用電子証明書, issued by the card CA of `renkei net init`.
 *
 * A card is an ECDSA P-256 key and a certificate of the card CA that names
 * a random card serial only — its X.509 serial number, and the same 32
 * lowercase hex digits as its subject CN — never a My Number nor a resident
 * code. J-LIS keeps which resident a serial belongs to. The card CA is not
 * the network CA: a card never passes as a node, nor a node as a person.
 *
 * The card CRL (a v2 CRL with a CRL number, signed by the card CA) lists
 * the revoked serials; J-LIS publishes it and the portal checks every
 * card's TLS handshake against the newest one it has (rk_card_trust).
 * Ownership: every X509_CRL and trust handed out is the caller's. */
#ifndef RK_CRYPTO_CARD_H
#define RK_CRYPTO_CARD_H

#include <openssl/x509.h>
#include <stddef.h>
#include "lib/err.h"

#define RK_CARD_SERIAL_LEN 32       /* hex digits of a card serial (16 bytes) */
#define RK_CARD_CRL_DAYS 365        /* a CRL's nextUpdate: re-signed by every `renkei card revoke` */
#define RK_CARD_CRL_MAX (4u << 20)  /* the largest CRL read from a file or the network */
#define RK_CARD_DAYS 1825           /* a card's validity (JPKI: about five years) */

/* 1 when s is 32 lowercase hex digits. */
int rk_card_serial_valid(const char *s);
/* The card serial a certificate names (its serial number as 32 hex digits);
 * RK_ERR_INVALID when it is not 16 bytes. */
rk_rc rk_card_serial_of(const X509 *cert, char out[RK_CARD_SERIAL_LEN + 1]);

/* The card CA (cert 0644, key 0600) and its first, empty CRL (number 1). */
rk_rc rk_card_ca_create(const char *ca_path, const char *ca_key_path, const char *crl_path);

/* A new card in folder out_dir: cert.pem, key.pem (0600) and card.p12 (the
 * two together, PKCS#12 with an empty passphrase, for a browser's store);
 * serial gets its card serial. */
rk_rc rk_card_issue(const char *ca_path, const char *ca_key_path, const char *out_dir,
                    char serial[RK_CARD_SERIAL_LEN + 1]);

/* Adds serial to the CRL at crl_path: a new CRL (number + 1, this update
 * now) signed by the card CA, written in place of the old one.
 * RK_ERR_EXISTS when it is already listed (nothing written). */
rk_rc rk_card_revoke(const char *ca_path, const char *ca_key_path, const char *crl_path, const char *serial);

/* A CRL (PEM, len bytes) that the card CA signed, with its CRL number;
 * RK_ERR_INVALID when malformed, RK_ERR_CRYPTO when another key signed it. */
rk_rc rk_card_crl_read(const char *pem, size_t len, X509 *ca, X509_CRL **out, long *number);
/* 1 when the CRL lists the card serial. */
int rk_card_crl_lists(X509_CRL *crl, const char *serial);

/* What the portal's person listener trusts: the card CA and the newest card
 * CRL given (none at first: every card is then refused). Thread-safe. */
typedef struct rk_card_trust rk_card_trust;
rk_rc rk_card_trust_new(const char *ca_path, rk_card_trust **out);
void rk_card_trust_free(rk_card_trust *t);
/* Takes the CRL (PEM) when the card CA signed it and its number is not
 * below the one in force; RK_ERR_CONFLICT for an older one (the one in
 * force stays), RK_ERR_INVALID or RK_ERR_CRYPTO as rk_card_crl_read. */
rk_rc rk_card_trust_set_crl(rk_card_trust *t, const char *pem, size_t len);
/* The CRL number in force, 0 when none. */
long rk_card_trust_crl_number(rk_card_trust *t);
/* The store a TLS context verifies cards with: the card CA, CRL checking
 * against the CRL in force, the client-authentication purpose. Borrowed:
 * it lives as long as t (SSL_CTX_set1_cert_store takes a reference). */
X509_STORE *rk_card_trust_store(rk_card_trust *t);

#endif
