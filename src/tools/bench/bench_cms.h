/* bench_cms.h — `renkei bench cms`: what sealing and opening one provision
 * payload costs, and how much of it is elliptic-curve arithmetic.
 *
 * Creates a throw-away CA and two agency certificates in a temporary folder
 * (removed afterwards), then times on one thread, `seconds` each:
 *   - the provider's step, rk_cms_seal (SignedData in AuthEnvelopedData);
 *   - the requester's step, rk_cms_open (decrypt, then verify the signer);
 *   - the P-256 operations inside them, through EVP alone: ECDSA sign and
 *     verify, an ephemeral key, an ECDH derive, and the full public-key
 *     check that OpenSSL 3.0 runs before every ECDH derive in CMS
 *     (EVP_PKEY_derive_set_peer validates the peer; OpenSSL 3.4 reduces it
 *     to an on-curve check for curves of cofactor 1).
 * Prints µs per operation and the split of one exchange's CMS work into the
 * curve arithmetic it needs, the peer checks, and the rest of the library.
 * Returns 0, or 1 after a one-line error on stderr. */
#ifndef RK_TOOLS_BENCH_CMS_H
#define RK_TOOLS_BENCH_CMS_H

int rk_bench_cms(double seconds);

#endif
