/* hsm.c — `renkei net init DIR --hsm`: every server node's key, the network
 * CA's key and the operator's registry key in a PKCS#11 token (DESIGN §3,
 * standard 第5-2(5)).
 *
 * A SoftHSM2 token of the network's own: DIR/hsm/softhsm2.conf (its
 * directories.tokendir is DIR/hsm/tokens), so nothing global is touched; a
 * process finds it through SOFTHSM2_CONF (`renkei net up` sets it). The
 * user PIN is DIR/hsm/pin and the SO PIN DIR/hsm/so-pin (both 0600), handed
 * to pkcs11-tool through its environment. Each key made by the PKI is
 * imported (pkcs11-tool: CKA_SIGN for TLS and CMS
 * signing, CKA_DERIVE for ECDH, i.e. CMS decryption; sensitive, never
 * extractable) and its file wiped and removed. Each node.conf then names
 * its key by a pkcs11: URI with key_passphrase_file = the PIN file; the
 * CA's ca-key.pem and the registry-key.pem become one pkcs11: URI line each
 * (crypto/keys.h; the registry key, which has no certificate, with its
 * public key object beside it). The core's
 * code master key file is wrapped to the core's certificate (core/codes.h),
 * so it opens only with the token's key. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "core/codes.h"
#include "crypto/keys.h"
#include "crypto/pki.h"
#include "lib/util.h"
#include "tools/net/net_internal.h"

#define HSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define HSM_TOKEN "renkei"
#define HSM_PIN_BYTES 12

/* Runs pkcs11-tool with SOFTHSM2_CONF set, its output into DIR/hsm/init.log;
 * the PINs go through its environment ("--pin env:…"), never its arguments. */
static rk_rc run(const char *conf, const char *logpath, const char *pin, const char *so_pin, char *const *args)
{
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0)
        return RK_ERR_IO;
    pid_t pid = fork();
    if (pid == 0) {
        setenv("SOFTHSM2_CONF", conf, 1);
        if (pin)
            setenv("RENKEI_HSM_PIN", pin, 1);
        if (so_pin)
            setenv("RENKEI_HSM_SO_PIN", so_pin, 1);
        if (dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        execvp(args[0], args);
        _exit(127);
    }
    close(logfd);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return RK_ERR_IO;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? RK_OK : RK_ERR_CRYPTO;
}

static rk_rc wipe_remove(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (rk_read_file(path, 1u << 16, &text, &len) == RK_OK) {
        rk_wipe(text, len);
        rk_write_file(path, text, len, 0600); /* zeros over the key's bytes */
        free(text);
    }
    return unlink(path) == 0 ? RK_OK : RK_ERR_IO;
}

/* RFC 7512: a value's characters other than unreserved ones are %XX. */
static void pct_encode(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c))
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", c);
    }
    out[o] = '\0';
}

/* Imports key file `key` and its certificate as objects `label`, id `id`
 * (libp11 takes the key's public half from the certificate of the same id),
 * then removes the key file. */
/* A public object (a certificate or a public key, DER) into the token under
 * the private key's id and label, through a file removed after. */
static rk_rc put_public(const char *conf, const char *log, const char *pin, const char *der_path,
                        const unsigned char *der, int der_len, const char *type, const char *idhex, const char *label)
{
    rk_rc rc = der_len > 0 ? rk_write_file(der_path, der, (size_t)der_len, 0644) : RK_ERR_CRYPTO;
    char *const args[] = {"pkcs11-tool", "--module", HSM_MODULE, "--token-label", HSM_TOKEN, "--login",
                          "--pin", "env:RENKEI_HSM_PIN", "--write-object", (char *)der_path, "--type", (char *)type,
                          "--id", (char *)idhex, "--label", (char *)label, NULL};
    if (rc == RK_OK)
        rc = run(conf, log, pin, NULL, args);
    unlink(der_path);
    return rc;
}

static rk_rc import_key(const char *hsm, const char *conf, const char *log, const char *pin, const char *key,
                        const char *cert, const char *label, int id)
{
    char der_path[NET_PATH_CAP], idhex[8];
    EVP_PKEY *pk = NULL;
    unsigned char *der = NULL;
    int der_len = 0;
    rk_rc rc = tk_path(der_path, sizeof der_path, "%s/import.der", hsm);
    if (rc != RK_OK || (rc = rk_pkey_load(key, NULL, &pk, NULL, 0)) != RK_OK)
        return rc;
    der_len = i2d_PrivateKey(pk, &der);
    EVP_PKEY_free(pk);
    if (der_len <= 0)
        return RK_ERR_CRYPTO;
    rc = rk_write_file(der_path, der, (size_t)der_len, 0600);
    rk_wipe(der, (size_t)der_len);
    OPENSSL_free(der);
    if (rc != RK_OK)
        return rc;
    snprintf(idhex, sizeof idhex, "%04x", id);
    char *const args[] = {"pkcs11-tool", "--module", HSM_MODULE, "--token-label", HSM_TOKEN, "--login",
                          "--pin", "env:RENKEI_HSM_PIN", "--write-object", der_path, "--type", "privkey", "--id",
                          idhex, "--label", (char *)label, "--usage-sign", "--usage-derive", NULL};
    rc = run(conf, log, pin, NULL, args);
    rk_rc rc2 = wipe_remove(der_path);
    if (rc == RK_OK)
        rc = rc2;
    X509 *x = NULL;
    if (rc == RK_OK && !cert) { /* no certificate (the registry key): its public key, for the engine to find */
        pk = NULL;
        der = NULL;
        if ((rc = rk_pkey_load(key, NULL, &pk, NULL, 0)) == RK_OK) {
            der_len = i2d_PUBKEY(pk, &der);
            EVP_PKEY_free(pk);
            rc = put_public(conf, log, pin, der_path, der, der_len, "pubkey", idhex, label);
            OPENSSL_free(der);
        }
    } else if (rc == RK_OK && (rc = rk_pki_load_cert(cert, &x)) == RK_OK) {
        der = NULL;
        der_len = i2d_X509(x, &der);
        X509_free(x);
        rc = put_public(conf, log, pin, der_path, der, der_len, "cert", idhex, label);
        OPENSSL_free(der);
    }
    return rc == RK_OK ? wipe_remove(key) : rc;
}

/* node.conf: "key = key.pem" becomes the token object's URI and the PIN file. */
static rk_rc point_conf(const char *nd, const char *label)
{
    char path[NET_PATH_CAP], enc[256], line[NET_PATH_CAP];
    char *text = NULL, *out = NULL;
    size_t len = 0;
    rk_rc rc = tk_path(path, sizeof path, "%s/node.conf", nd);
    if (rc != RK_OK || (rc = rk_read_file(path, 1u << 16, &text, &len)) != RK_OK)
        return rc;
    pct_encode(label, enc, sizeof enc);
    snprintf(line, sizeof line,
             "key = pkcs11:token=" HSM_TOKEN ";object=%s;type=private?module-path=" HSM_MODULE
             "\nkey_passphrase_file = ../../hsm/pin\n",
             enc);
    char *at = strstr(text, "key = key.pem\n");
    if (!at || !(out = malloc(len + strlen(line) + 1))) {
        free(text);
        return at ? RK_ERR_NOMEM : RK_ERR_INVALID;
    }
    size_t head = (size_t)(at - text), tail_at = head + strlen("key = key.pem\n");
    memcpy(out, text, head);
    memcpy(out + head, line, strlen(line));
    memcpy(out + head + strlen(line), text + tail_at, len - tail_at);
    size_t outlen = head + strlen(line) + len - tail_at;
    rc = rk_write_file(path, out, outlen, 0644);
    free(text);
    free(out);
    return rc;
}

/* The core's master key file, wrapped to the core's own certificate. */
static rk_rc wrap_master(const char *nd)
{
    char path[NET_PATH_CAP], cert_path[NET_PATH_CAP], err[256];
    uint8_t masters[RK_CODE_MAX_KEYS][32];
    int versions = 0, wrapped = 0;
    X509 *cert = NULL;
    rk_rc rc = tk_path(path, sizeof path, "%s/master.key", nd);
    if (rc == RK_OK)
        rc = tk_path(cert_path, sizeof cert_path, "%s/cert.pem", nd);
    if (rc == RK_OK && (rc = rk_pki_load_cert(cert_path, &cert)) == RK_OK &&
        (rc = rk_code_keys_read(path, NULL, NULL, masters, &versions, &wrapped, err, sizeof err)) == RK_OK)
        rc = rk_code_keys_write(path, (const uint8_t(*)[32])masters, versions, cert);
    rk_wipe(masters, sizeof masters);
    X509_free(cert);
    return rc;
}

static rk_rc random_pin(const char *path, char pin[2 * HSM_PIN_BYTES + 1])
{
    uint8_t raw[HSM_PIN_BYTES];
    rk_rc rc = rk_random(raw, sizeof raw);
    if (rc == RK_OK) {
        rk_hex(raw, sizeof raw, pin);
        pin[2 * HSM_PIN_BYTES] = '\n';
        rc = rk_write_file(path, pin, 2 * HSM_PIN_BYTES + 1, 0600);
        pin[2 * HSM_PIN_BYTES] = '\0';
    }
    rk_wipe(raw, sizeof raw);
    return rc;
}

rk_rc net_hsm_init(const char *dir, const net_plan *plan, char *err, size_t errlen)
{
    char abs[PATH_MAX], hsm[NET_PATH_CAP], tokens[NET_PATH_CAP], conf[NET_PATH_CAP], log[NET_PATH_CAP];
    char pin_path[NET_PATH_CAP], so_path[NET_PATH_CAP], text[2 * NET_PATH_CAP];
    char pin[2 * HSM_PIN_BYTES + 1], so_pin[2 * HSM_PIN_BYTES + 1];
    rk_rc rc;
    if (!realpath(dir, abs) || tk_path(hsm, sizeof hsm, "%s/hsm", abs) ||
        tk_path(tokens, sizeof tokens, "%s/tokens", hsm) ||
        tk_path(conf, sizeof conf, "%s/softhsm2.conf", hsm) || tk_path(log, sizeof log, "%s/init.log", hsm) ||
        tk_path(pin_path, sizeof pin_path, "%s/pin", hsm) || tk_path(so_path, sizeof so_path, "%s/so-pin", hsm)) {
        net_set_err(err, errlen, "%s: path too long", dir);
        return RK_ERR_INVALID;
    }
    if ((rc = rk_mkdirs(tokens, 0700)) != RK_OK) {
        net_set_err(err, errlen, "%s: cannot create: %s", tokens, strerror(errno));
        return rc;
    }
    snprintf(text, sizeof text, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
    if ((rc = rk_write_file(conf, text, strlen(text), 0600)) != RK_OK || (rc = random_pin(pin_path, pin)) != RK_OK ||
        (rc = random_pin(so_path, so_pin)) != RK_OK) {
        net_set_err(err, errlen, "%s: cannot write the token's configuration", hsm);
        goto done;
    }
    /* the token in SoftHSM2's free slot, then its user PIN set by the SO */
    char *const init[] = {"pkcs11-tool", "--module", HSM_MODULE, "--init-token", "--label", HSM_TOKEN,
                          "--so-pin", "env:RENKEI_HSM_SO_PIN", NULL};
    char *const init_pin[] = {"pkcs11-tool", "--module", HSM_MODULE, "--token-label", HSM_TOKEN, "--login",
                              "--login-type", "so", "--so-pin", "env:RENKEI_HSM_SO_PIN", "--init-pin",
                              "--pin", "env:RENKEI_HSM_PIN", NULL};
    if ((rc = run(conf, log, pin, so_pin, init)) != RK_OK || (rc = run(conf, log, pin, so_pin, init_pin)) != RK_OK) {
        net_set_err(err, errlen, "cannot create the SoftHSM2 token (pkcs11-tool, see %s)", log);
        goto done;
    }
    for (size_t i = 0; i < plan->n && rc == RK_OK; i++) {
        const net_node *n = &plan->nodes[i];
        char nd[NET_PATH_CAP], key[NET_PATH_CAP], cert[NET_PATH_CAP];
        if (!net_is_server_role(n->role))
            continue; /* the agencies' systems and the operator are clients with key files */
        if ((rc = tk_path(nd, sizeof nd, "%s/nodes/%s", abs, n->id)) != RK_OK ||
            (rc = tk_path(key, sizeof key, "%s/key.pem", nd)) != RK_OK ||
            (rc = tk_path(cert, sizeof cert, "%s/cert.pem", nd)) != RK_OK)
            break;
        /* wrapped before the key goes: wrapping needs only the certificate */
        if (n->role == RK_ROLE_CORE && (rc = wrap_master(nd)) != RK_OK) {
            net_set_err(err, errlen, "cannot wrap the master key of %s: %s", n->id, rk_strerror(rc));
            break;
        }
        if ((rc = import_key(hsm, conf, log, pin, key, cert, n->id, (int)i + 1)) != RK_OK ||
            (rc = point_conf(nd, n->id)) != RK_OK)
            net_set_err(err, errlen, "cannot put the key of %s in the token (see %s): %s", n->id, log,
                        rk_strerror(rc));
    }
    if (rc != RK_OK)
        goto done;
    /* the network CA's key: `renkei pki` finds it through ca-key.pem's URI */
    char ca_key[NET_PATH_CAP], ca[NET_PATH_CAP];
    if ((rc = tk_path(ca_key, sizeof ca_key, "%s/pki/ca-key.pem", abs)) == RK_OK &&
        (rc = tk_path(ca, sizeof ca, "%s/pki/ca.pem", abs)) == RK_OK &&
        (rc = import_key(hsm, conf, log, pin, ca_key, ca, "network-ca", 0xca)) == RK_OK) {
        snprintf(text, sizeof text,
                 "pkcs11:token=" HSM_TOKEN ";object=network-ca;type=private?module-path=" HSM_MODULE
                 "&pin-source=file:%s\n",
                 pin_path);
        rc = rk_write_file(ca_key, text, strlen(text), 0600);
    }
    if (rc != RK_OK) {
        net_set_err(err, errlen, "cannot put the CA key in the token (see %s): %s", log, rk_strerror(rc));
        goto done;
    }
    /* the operator's registry key (DESIGN §3): `renkei registry publish`,
     * `catalog publish` and what publishes for them sign in the token */
    char reg_key[NET_PATH_CAP];
    if ((rc = tk_path(reg_key, sizeof reg_key, "%s/pki/registry-key.pem", abs)) == RK_OK &&
        (rc = import_key(hsm, conf, log, pin, reg_key, NULL, "registry", 0x7e)) == RK_OK) {
        snprintf(text, sizeof text,
                 "pkcs11:token=" HSM_TOKEN ";object=registry;type=private?module-path=" HSM_MODULE
                 "&pin-source=file:%s\n",
                 pin_path);
        rc = rk_write_file(reg_key, text, strlen(text), 0600);
    }
    if (rc != RK_OK)
        net_set_err(err, errlen, "cannot put the registry key in the token (see %s): %s", log, rk_strerror(rc));
done:
    rk_wipe(pin, sizeof pin);
    rk_wipe(so_pin, sizeof so_pin);
    return rc;
}

void net_hsm_env(const char *dir)
{
    char abs[PATH_MAX], conf[NET_PATH_CAP];
    if (realpath(dir, abs) && tk_path(conf, sizeof conf, "%s/hsm/softhsm2.conf", abs) == RK_OK &&
        access(conf, R_OK) == 0)
        setenv("SOFTHSM2_CONF", conf, 1);
}
