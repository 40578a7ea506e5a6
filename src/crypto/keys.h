/* keys.h — the one place that loads a private key (DESIGN §3, standard 第5-2(5)).
 *
 * A key reference is either
 *   - a file path: a PKCS#8 PEM file of mode 0600 (refused when group or
 *     others can read it), encrypted when a passphrase file is given; the
 *     file's text and the passphrase are wiped after use; or
 *   - a "pkcs11:" URI (RFC 7512) naming a private key in a PKCS#11 token,
 *     loaded through libp11's OpenSSL engine ("pkcs11", Debian
 *     libengine-pkcs11-openssl). Path attributes (token, object, id, type...)
 *     go to the engine; the query attributes are read here:
 *       module-path=/usr/lib/softhsm/libsofthsm2.so   the PKCS#11 module
 *                  (default: the engine's, p11-kit's proxy)
 *       pin-value=1234   the user PIN (discouraged: it sits in the file)
 *       pin-source=file:/path   a file whose first line is the PIN
 *     or, when the URI has neither, the first line of the passphrase file
 *     (node.conf key_passphrase_file) is the PIN. The key never leaves the
 *     token: signing and TLS run inside it; for CMS decryption (ECDH key
 *     agreement) the token derives the shared secret (CKM_ECDH1_DERIVE, a
 *     session object libp11 reads back) and OpenSSL runs the X9.63 KDF and
 *     the AES key unwrap on it. So the object needs CKA_SIGN and CKA_DERIVE,
 *     and a certificate of the same id
 *     in the token (libp11 takes the public key from it). The token's login
 *     is the process's: once logged in, libp11 keeps the session and a later
 *     load in the same process does not check a PIN again. Logins of several
 *     processes are serialised by a lock on the module file (SoftHSM2 writes
 *     its token state at each login).
 *   - a file whose whole content is one "pkcs11:" URI line (such as the
 *     CA's ca-key.pem once the CA key is in the token) is followed once.
 * Every X509/EVP_PKEY returned belongs to the caller (EVP_PKEY_free). */
#ifndef RK_KEYS_H
#define RK_KEYS_H

#include <openssl/evp.h>
#include <stddef.h>
#include "lib/err.h"

#define RK_PKCS11_URI_MAX 1024

/* Nonzero when ref is a "pkcs11:" URI. */
int rk_pkey_is_uri(const char *ref);

/* Loads the private key named by ref. secret_file: NULL or "" for none;
 * otherwise its first line is the file's passphrase or the token's PIN.
 * RK_ERR_NOT_FOUND: no such file or token object; RK_ERR_DENIED: a key file
 * readable by group or others, or the token refused the PIN; RK_ERR_CONFIG:
 * a malformed URI or no PKCS#11 engine; RK_ERR_CRYPTO: anything else.
 * err (may be NULL): one line saying why, without the PIN. */
rk_rc rk_pkey_load(const char *ref, const char *secret_file, EVP_PKEY **out, char *err, size_t errlen);

#endif
