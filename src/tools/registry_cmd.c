/* registry_cmd.c — `renkei registry publish|show DIR`: the operator's signed
 * registry (DESIGN §3, §5; standard 第5-2(2), 第5-4(1): only registered
 * nodes are used, and the registry in force is the operator's).
 *
 * Publishing signs DIR/network.json's content, with "serial" (one more than
 * the published one's) and "issued_at" added, with the operator's registry
 * key (crypto/signed_doc.h, kind "registry") into DIR/registry/registry.signed.
 * The core reads that file at every refresh and on SIGHUP ([registry]
 * published) and serves it (GET /v1/registry); the key itself never goes to
 * a node. A file rather than a route to the core: signing stays with the
 * operator, offline or in a token, and no node holds a route that could
 * install a registry. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/pki.h"
#include "crypto/signed_doc.h"
#include "lib/util.h"
#include "net/registry.h"
#include "tools/registry_cmd.h"
#include "tools/toolkit.h"
#include "tools/tools.h"

#define NETWORK_JSON_MAX (RK_REGISTRY_MAX_BYTES / 4 * 3 - 4096)

#define set_err(err, errlen, ...)                    \
    do {                                             \
        if ((err) && (errlen))                       \
            snprintf((err), (errlen), __VA_ARGS__);  \
    } while (0)

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

rk_rc rk_registry_key_create(const char *dir, char *err, size_t errlen)
{
    char key_path[TK_PATH_CAP], pub_path[TK_PATH_CAP], pki[TK_PATH_CAP];
    if (tk_path(key_path, sizeof key_path, "%s/%s", dir, RK_REGISTRY_KEY_FILE) != RK_OK ||
        tk_path(pub_path, sizeof pub_path, "%s/%s", dir, RK_REGISTRY_PUB_FILE) != RK_OK ||
        tk_path(pki, sizeof pki, "%s/pki", dir) != RK_OK) {
        set_err(err, errlen, "%s: path too long", dir);
        return RK_ERR_INVALID;
    }
    if (exists(key_path)) {
        set_err(err, errlen, "%s already exists: refusing to replace the registry key", key_path);
        return RK_ERR_EXISTS;
    }
    if (rk_mkdirs(pki, 0700) != RK_OK) {
        set_err(err, errlen, "%s: cannot create: %s", pki, strerror(errno));
        return RK_ERR_IO;
    }
    rk_rc rc = RK_ERR_CRYPTO;
    EVP_PKEY *key = EVP_EC_gen("P-256"); /* a token can hold it (DESIGN §3) */
    BIO *priv = BIO_new(BIO_s_secmem()), *pub = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;
    if (key && priv && pub && PEM_write_bio_PrivateKey(priv, key, NULL, NULL, 0, NULL, NULL) == 1 &&
        PEM_write_bio_PUBKEY(pub, key) == 1) {
        len = BIO_get_mem_data(priv, &data);
        rc = rk_write_file(key_path, data, (size_t)len, 0600); /* 第5-2(5) */
        if (rc == RK_OK) {
            len = BIO_get_mem_data(pub, &data);
            rc = rk_write_file(pub_path, data, (size_t)len, 0644);
        }
    }
    BIO_free(priv); /* a secure-heap BIO: cleansed on free */
    BIO_free(pub);
    EVP_PKEY_free(key);
    if (rc != RK_OK)
        set_err(err, errlen, "cannot make the registry key in %s: %s", pki, rk_strerror(rc));
    return rc;
}

/* The serial of the published registry, 0 when none is published yet. */
static rk_rc published_serial(const char *dir, EVP_PKEY *anchor, uint64_t *serial, char *err, size_t errlen)
{
    char path[TK_PATH_CAP], why[300] = "";
    char *env = NULL;
    size_t len = 0;
    *serial = 0;
    if (tk_path(path, sizeof path, "%s/%s", dir, RK_REGISTRY_SIGNED_FILE) != RK_OK)
        return RK_ERR_INVALID;
    rk_rc rc = rk_read_file(path, RK_REGISTRY_MAX_BYTES, &env, &len);
    if (rc == RK_ERR_NOT_FOUND)
        return RK_OK;
    rk_registry *reg = NULL;
    if (rc == RK_OK)
        rc = rk_registry_open_signed(anchor, env, len, NULL, 0, &reg, why, sizeof why);
    free(env);
    if (rc != RK_OK) {
        /* its serial is unknown: a guess could publish one the nodes refuse as a rollback */
        set_err(err, errlen, "%s: the published registry cannot be read (%s); restore it before publishing", path,
                why[0] ? why : rk_strerror(rc));
        return rc;
    }
    *serial = reg->serial;
    rk_registry_free(reg);
    return RK_OK;
}

rk_rc rk_registry_publish(const char *dir, uint64_t *serial_out, char *err, size_t errlen)
{
    char net_path[TK_PATH_CAP], key_path[TK_PATH_CAP], pub_path[TK_PATH_CAP], out_path[TK_PATH_CAP],
        folder[TK_PATH_CAP], why[400] = "";
    char *text = NULL, *doc = NULL, *env = NULL;
    size_t len = 0, envlen = 0;
    EVP_PKEY *key = NULL, *anchor = NULL;
    json_t *root = NULL;
    rk_registry *check = NULL;
    uint64_t serial = 0;
    rk_rc rc = RK_ERR_INVALID;
    if (tk_path(net_path, sizeof net_path, "%s/network.json", dir) != RK_OK ||
        tk_path(key_path, sizeof key_path, "%s/%s", dir, RK_REGISTRY_KEY_FILE) != RK_OK ||
        tk_path(pub_path, sizeof pub_path, "%s/%s", dir, RK_REGISTRY_PUB_FILE) != RK_OK ||
        tk_path(out_path, sizeof out_path, "%s/%s", dir, RK_REGISTRY_SIGNED_FILE) != RK_OK ||
        tk_path(folder, sizeof folder, "%s/registry", dir) != RK_OK) {
        set_err(err, errlen, "%s: path too long", dir);
        goto done;
    }
    if ((rc = rk_read_file(net_path, NETWORK_JSON_MAX, &text, &len)) != RK_OK) {
        set_err(err, errlen, "%s: %s", net_path, rk_strerror(rc));
        goto done;
    }
    /* what the nodes will parse must parse here first */
    if ((rc = rk_registry_parse(text, len, &check, why, sizeof why)) != RK_OK) {
        set_err(err, errlen, "%s: %s", net_path, why);
        goto done;
    }
    tk_use_network_token(dir); /* net init --hsm: the key is in the network's token */
    if ((rc = rk_pki_load_key(key_path, NULL, &key)) != RK_OK) {
        set_err(err, errlen, "%s: cannot load the registry key: %s", key_path,
                rc == RK_ERR_DENIED ? "readable by group or others (chmod 600)" : rk_strerror(rc));
        goto done;
    }
    if ((rc = rk_signed_doc_load_anchor(pub_path, &anchor)) != RK_OK) {
        set_err(err, errlen, "%s: cannot load the registry's public key: %s", pub_path, rk_strerror(rc));
        goto done;
    }
    if ((rc = published_serial(dir, anchor, &serial, err, errlen)) != RK_OK)
        goto done;
    serial++;
    char issued[40];
    rk_format_time(rk_now_ms(), issued, sizeof issued);
    json_error_t jerr;
    root = json_loadb(text, len, 0, &jerr);
    if (!root || json_object_set_new(root, "serial", json_integer((json_int_t)serial)) != 0 ||
        json_object_set_new(root, "issued_at", json_string(issued)) != 0 || !(doc = json_dumps(root, JSON_COMPACT))) {
        rc = RK_ERR_NOMEM;
        set_err(err, errlen, "%s: cannot make the document: %s", net_path, rk_strerror(rc));
        goto done;
    }
    if ((rc = rk_signed_doc_sign(key, "registry", doc, strlen(doc), &env, &envlen)) != RK_OK) {
        set_err(err, errlen, "cannot sign the registry: %s", rk_strerror(rc));
        goto done;
    }
    rk_registry_free(check);
    check = NULL;
    if ((rc = rk_registry_open_signed(anchor, env, envlen, NULL, 0, &check, why, sizeof why)) != RK_OK) {
        set_err(err, errlen, "the signed registry does not open under %s: %s", pub_path, why);
        goto done;
    }
    if ((rc = rk_mkdirs(folder, 0755)) != RK_OK || (rc = rk_write_file(out_path, env, envlen, 0644)) != RK_OK) {
        set_err(err, errlen, "%s: cannot write: %s", out_path, rk_strerror(rc));
        goto done;
    }
    if (serial_out)
        *serial_out = serial;
done:
    free(text);
    free(doc);
    free(env);
    json_decref(root);
    rk_registry_free(check);
    EVP_PKEY_free(key);
    EVP_PKEY_free(anchor);
    return rc;
}

/* ---- the command ---- */

static const char usage_registry[] =
    "usage: renkei registry COMMAND DIR\n"
    "\n"
    "The network's signed registry (DESIGN §3).\n"
    "\n"
    "commands:\n"
    "  publish DIR   sign DIR/network.json with the next serial and publish it\n"
    "  show DIR      print the published registry's serial, time and members\n"
    "\n"
    "Run 'renkei registry COMMAND --help' for more.\n";

static const char usage_publish[] =
    "usage: renkei registry publish DIR\n"
    "\n"
    "Signs DIR/network.json, with the next serial and the time, with the\n"
    "operator's registry key (DIR/pki/registry-key.pem) into\n"
    "DIR/registry/registry.signed. The core serves it from its next refresh or\n"
    "SIGHUP; every node applies it within one [registry] refresh.\n"
    "\n"
    "  --help   show this help\n";

static const char usage_show[] =
    "usage: renkei registry show DIR\n"
    "\n"
    "Checks DIR/registry/registry.signed against DIR/pki/registry.pub and prints\n"
    "its serial, issue time, network, member count and CRL, then one line per\n"
    "member: id, role, agency, kind, url.\n"
    "\n"
    "  --help   show this help\n";

static int show(const char *dir)
{
    char path[TK_PATH_CAP], pub_path[TK_PATH_CAP], why[400] = "", crl_path[TK_PATH_CAP];
    char *env = NULL;
    size_t len = 0;
    EVP_PKEY *anchor = NULL;
    rk_registry *reg = NULL;
    if (tk_path(path, sizeof path, "%s/%s", dir, RK_REGISTRY_SIGNED_FILE) != RK_OK ||
        tk_path(pub_path, sizeof pub_path, "%s/%s", dir, RK_REGISTRY_PUB_FILE) != RK_OK ||
        tk_path(crl_path, sizeof crl_path, "%s/%s", dir, RK_REGISTRY_CRL_FILE) != RK_OK)
        return tk_failure("registry", "%s: path too long", dir);
    rk_rc rc = rk_signed_doc_load_anchor(pub_path, &anchor);
    if (rc != RK_OK)
        return tk_failure("registry", "%s: cannot load the registry's public key: %s", pub_path, rk_strerror(rc));
    if ((rc = rk_read_file(path, RK_REGISTRY_MAX_BYTES, &env, &len)) == RK_OK)
        rc = rk_registry_open_signed(anchor, env, len, NULL, 0, &reg, why, sizeof why);
    free(env);
    EVP_PKEY_free(anchor);
    if (rc != RK_OK)
        return tk_failure("registry", "%s: %s", path, why[0] ? why : rk_strerror(rc));
    char issued[40];
    rk_format_time(reg->issued_at_ms, issued, sizeof issued);
    printf("serial %llu\nissued_at %s\nnetwork %s\nmembers %zu\ncrl %s\n", (unsigned long long)reg->serial, issued,
           reg->network, reg->n_nodes, exists(crl_path) ? crl_path : "none");
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        printf("%s %s %s %s %s\n", n->id, rk_role_name(n->role), n->agency[0] ? n->agency : "-",
               n->kind[0] ? n->kind : "-", n->url[0] ? n->url : "-");
    }
    rk_registry_free(reg);
    return fflush(stdout) == 0 ? 0 : 1;
}

int rk_cmd_registry(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(i > 1 && strcmp(argv[1], "publish") == 0 ? usage_publish
                  : i > 1 && strcmp(argv[1], "show") == 0  ? usage_show
                                                           : usage_registry,
                  stdout);
            return 0;
        }
    if (argc != 3 || (strcmp(argv[1], "publish") != 0 && strcmp(argv[1], "show") != 0))
        return tk_usage_error("registry", "expected 'publish DIR' or 'show DIR'");
    if (strcmp(argv[1], "show") == 0)
        return show(argv[2]);
    char err[TK_PATH_CAP + 512] = "";
    uint64_t serial = 0;
    if (rk_registry_publish(argv[2], &serial, err, sizeof err) != RK_OK)
        return tk_failure("registry", "%s", err);
    printf("published registry serial %llu\n", (unsigned long long)serial);
    return 0;
}

rk_rc rk_registry_changed_nodes(const char *dir, const char *const *node_ids, size_t n, uint64_t *serial, char *err,
                                size_t errlen)
{
    char signed_path[TK_PATH_CAP], kept[TK_PATH_CAP];
    if (serial)
        *serial = 0;
    if (tk_path(signed_path, sizeof signed_path, "%s/" RK_REGISTRY_SIGNED_FILE, dir) != RK_OK) {
        snprintf(err, errlen, "directory name too long");
        return RK_ERR_INVALID;
    }
    if (exists(signed_path)) {
        rk_rc rc = rk_registry_publish(dir, serial, err, errlen);
        if (rc != RK_OK)
            return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (tk_path(kept, sizeof kept, "%s/nodes/%s/registry-last-good.json", dir, node_ids[i]) != RK_OK) {
            snprintf(err, errlen, "directory name too long");
            return RK_ERR_INVALID;
        }
        if (unlink(kept) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "%s: cannot remove: %s", kept, strerror(errno));
            return RK_ERR_IO;
        }
    }
    return RK_OK;
}
