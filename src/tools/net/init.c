/* init.c — `rk_net_init`: writes a network into a folder: the PKI,
 * network.json, node configs, the master key, permissions.csv and residents.csv. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/permissions.h"
#include "crypto/card.h"
#include "crypto/pki.h"
#include "lib/mynumber.h"
#include "records/checkpoint.h"
#include "lib/util.h"
#include "net/registry.h"
#include "tools/net/net.h"
#include "tools/net/net_internal.h"
#include "tools/registry_cmd.h"
#include "tools/toolkit.h"
#include "core/permissions.h"
#include "tools/catalog_cmd.h"

/* One CA and a certificate per node and business-system client (standard
 * 第5-2(3)(4)), keys 0600 (第5-2(5)), the registry network.json that every
 * node checks its peers against (第5-2(2), 第5-4(1)), node configs, the core's
 * master key, the permission table and a synthetic resident registry for
 * J-LIS (DESIGN §1, §3, §5). */

#ifndef RENKEI_DATA_DIR
#define RENKEI_DATA_DIR "data"
#endif

#define NET_CA_NAME "renkei-network-ca"
#define NET_NAME "renkei" /* network.json's "network"; the logs' origins are renkei/<network>/<node> */
#define NET_PERMISSIONS_CAP (64u << 20)
#define NET_FIRST_CATALOG_DATE "2017-11-13" /* 情報連携's start: version 1 is in force from the first */
#define NET_PERMISSIONS_HEADER "requester_kind,business,provider_kind,item\n"
#define NET_RESIDENTS_HEADER "my_number,resident_code,previous_resident_codes,name,birth_date,sex,address\n"
#define NET_PREVIOUS_EVERY 20
#define NET_RESIDENT_SPACE UINT64_C(100000000000) /* 10^11: 11 digits */
#define NET_RAND_BATCH 4096

/* ---- PKI ------------------------------------------------------------------ */

/* Servers: DIR/nodes/<id>; systems: DIR/clients/<agency>; operator: DIR/clients/operator; the PIA
 * register's operator: DIR/clients/ppc. */
static rk_rc node_dir(const char *dir, const net_node *n, char *out, size_t outlen)
{
    if (net_is_server_role(n->role))
        return tk_path(out, outlen, "%s/nodes/%s", dir, n->id);
    return tk_path(out, outlen, "%s/clients/%s", dir,
                   n->role == RK_ROLE_SYSTEM ? n->agency : n->role == RK_ROLE_PPC_OPERATOR ? "ppc" : n->id);
}

static int keeps_records(const net_node *n)
{
    return n->role == RK_ROLE_CORE || n->role == RK_ROLE_AGENCY;
}

/* A core instance after the first shares the first one's key `name` (the
 * master key, so that every instance derives the same codes; the log key,
 * since the instances keep one log): a copy, mode 0600. */
static rk_rc share_first_instance_key(const char *dir, const net_node *n, const char *name)
{
    char from[NET_PATH_CAP], to[NET_PATH_CAP], *text = NULL;
    size_t len = 0;
    rk_rc rc = tk_path(from, sizeof from, "%s/nodes/core-1/%s", dir, name);
    if (rc == RK_OK)
        rc = tk_path(to, sizeof to, "%s/nodes/%s/%s", dir, n->id, name);
    if (rc == RK_OK && (rc = rk_read_file(from, 1u << 16, &text, &len)) == RK_OK)
        rc = rk_write_file(to, text, len, 0600);
    if (text)
        rk_wipe(text, len);
    free(text);
    return rc;
}

/* What network.json names each node's certificate by, kept from its issue. */
typedef struct net_cert_ids {
    char fp[RK_FINGERPRINT_LEN], pin[RK_PIN_LEN];
} net_cert_ids;

typedef struct net_issue {
    rk_pki_issuer *issuer;
    net_cert_ids *ids; /* one per node of the plan */
} net_issue;

static rk_rc issue_node(const char *dir, rk_pki_issuer *issuer, const net_node *n, net_cert_ids *ids, char *err,
                        size_t errlen)
{
    X509 *x = NULL;
    char nd[NET_PATH_CAP], cert[NET_PATH_CAP], key[NET_PATH_CAP];
    rk_rc rc;
    if ((rc = node_dir(dir, n, nd, sizeof nd)) != RK_OK || (rc = tk_path(cert, sizeof cert, "%s/cert.pem", nd)) ||
        (rc = tk_path(key, sizeof key, "%s/key.pem", nd))) {
        net_set_err(err, errlen, "%s: path too long", dir);
        return rc;
    }
    if ((rc = rk_mkdirs(nd, 0700)) != RK_OK) {
        net_set_err(err, errlen, "%s: cannot create: %s", nd, strerror(errno));
        return rc;
    }
    rk_cert_spec spec = {
        .common_name = n->id,
        .role = rk_role_name(n->role),
        .name = n->agency[0] ? n->agency : n->id,
        .ip = net_is_server_role(n->role) ? NET_LOOPBACK : NULL,
    };
    if ((rc = rk_pki_issuer_issue(issuer, &spec, cert, key, NULL, &x)) != RK_OK ||
        (rc = rk_pki_fingerprint(x, ids->fp)) != RK_OK || (rc = rk_pki_spki_pin(x, ids->pin)) != RK_OK) {
        X509_free(x);
        net_set_err(err, errlen, "cannot issue the certificate of %s: %s", n->id, rk_strerror(rc));
        return rc;
    }
    X509_free(x);
    /* a witness cosigns with a key of its own (DESIGN §4.1) */
    if (n->role == RK_ROLE_WITNESS && ((rc = tk_path(key, sizeof key, "%s/witness_key.pem", nd)) != RK_OK ||
                                       (rc = rk_log_key_create(key)) != RK_OK))
        net_set_err(err, errlen, "cannot make the witness key of %s: %s", n->id, rk_strerror(rc));
    /* a node that keeps records signs its log's checkpoints with a key of its own (DESIGN §4.1) */
    if (rc != RK_OK || !keeps_records(n))
        return rc;
    if (n->instance > 1)
        rc = share_first_instance_key(dir, n, "log_key.pem");
    else if ((rc = tk_path(key, sizeof key, "%s/log_key.pem", nd)) == RK_OK)
        rc = rk_log_key_create(key);
    if (rc != RK_OK)
        net_set_err(err, errlen, "cannot make the log key of %s: %s", n->id, rk_strerror(rc));
    return rc;
}

/* ---- node by node, on several threads ------------------------------------------
 *
 * A network of thousands of agencies (issue 13, Scale: 5,000 agencies, 10,000
 * nodes) is tens of thousands of certificates, keys and files. What each costs
 * was mostly waiting for the disk (a fsync per file) and OpenSSL's PEM
 * reading of the CA for each issue: measured, docs/scale.md. So the CA is
 * loaded once (rk_pki_issuer), files are written without a fsync each and
 * the whole folder is synced once at the end (rk_net_init), and the nodes
 * are done on NET_THREADS threads; each node's work touches only its own
 * folder (the instances of a core after the first read the first's keys: the
 * first is done before the others start). */

#define NET_THREADS 8

typedef rk_rc (*node_fn)(const char *dir, const net_plan *plan, size_t i, void *arg, char *err, size_t errlen);

typedef struct node_pool {
    const char *dir;
    const net_plan *plan;
    node_fn fn;
    void *arg;
    size_t next, end;
    pthread_mutex_t lock;
    rk_rc rc;
    char *err;
    size_t errlen;
} node_pool;

static void *node_worker(void *arg)
{
    node_pool *p = arg;
    char err[512];
    for (;;) {
        pthread_mutex_lock(&p->lock);
        size_t i = p->rc == RK_OK && p->next < p->end ? p->next++ : SIZE_MAX;
        pthread_mutex_unlock(&p->lock);
        if (i == SIZE_MAX)
            return NULL;
        err[0] = '\0';
        rk_rc rc = p->fn(p->dir, p->plan, i, p->arg, err, sizeof err);
        if (rc != RK_OK) {
            pthread_mutex_lock(&p->lock);
            if (p->rc == RK_OK) { /* the first failure is the one told */
                p->rc = rc;
                net_set_err(p->err, p->errlen, "%s", err);
            }
            pthread_mutex_unlock(&p->lock);
        }
    }
}

/* fn for nodes from..plan->n-1, on up to NET_THREADS threads; the first failure stops the rest. */
static rk_rc for_each_node(const char *dir, const net_plan *plan, size_t from, node_fn fn, void *arg, char *err,
                           size_t errlen)
{
    node_pool p = {.dir = dir, .plan = plan, .fn = fn, .arg = arg, .next = from, .end = plan->n, .err = err,
                   .errlen = errlen};
    pthread_t threads[NET_THREADS];
    int started = 0;
    pthread_mutex_init(&p.lock, NULL);
    size_t want = plan->n > from ? (plan->n - from + 15) / 16 : 0;
    for (; started < NET_THREADS && (size_t)started < want; started++)
        if (pthread_create(&threads[started], NULL, node_worker, &p) != 0)
            break;
    if (!started) /* no thread: this one does it all */
        node_worker(&p);
    for (int t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    pthread_mutex_destroy(&p.lock);
    return p.rc;
}

static rk_rc issue_one(const char *dir, const net_plan *plan, size_t i, void *arg, char *err, size_t errlen)
{
    net_issue *is = arg;
    return issue_node(dir, is->issuer, &plan->nodes[i], &is->ids[i], err, errlen);
}

static rk_rc write_pki(const char *dir, const net_plan *plan, net_cert_ids *ids, char *err, size_t errlen)
{
    char pki[NET_PATH_CAP], ca[NET_PATH_CAP], ca_key[NET_PATH_CAP];
    rk_rc rc;
    if ((rc = tk_path(pki, sizeof pki, "%s/pki", dir)) || (rc = tk_path(ca, sizeof ca, "%s/ca.pem", pki)) ||
        (rc = tk_path(ca_key, sizeof ca_key, "%s/ca-key.pem", pki))) {
        net_set_err(err, errlen, "%s: path too long", dir);
        return rc;
    }
    if ((rc = rk_mkdirs(pki, 0700)) != RK_OK) {
        net_set_err(err, errlen, "%s: cannot create: %s", pki, strerror(errno));
        return rc;
    }
    if ((rc = rk_pki_create_ca(ca, ca_key, NET_CA_NAME, 0)) != RK_OK) {
        net_set_err(err, errlen, "cannot create the network CA in %s: %s", pki, rk_strerror(rc));
        return rc;
    }
    /* the network CA's CRL, empty (number 1), that `renkei pki revoke` extends (DESIGN §3) */
    char net_crl[NET_PATH_CAP];
    if ((rc = tk_path(net_crl, sizeof net_crl, "%s/crl.pem", pki)) != RK_OK ||
        (rc = rk_pki_crl_revoke(ca, ca_key, net_crl, NULL, 0, NULL)) != RK_OK) {
        net_set_err(err, errlen, "cannot write the network CA's CRL in %s: %s", pki, rk_strerror(rc));
        return rc;
    }
    /* the CA loaded once for every node; the first node (a core: its
     * instances share its keys) first, then the others in parallel */
    net_issue is = {.ids = ids};
    if ((rc = rk_pki_issuer_open(ca, ca_key, &is.issuer)) != RK_OK) {
        net_set_err(err, errlen, "cannot load the network CA in %s: %s", pki, rk_strerror(rc));
        return rc;
    }
    if (plan->n && (rc = issue_node(dir, is.issuer, &plan->nodes[0], &ids[0], err, errlen)) == RK_OK)
        rc = for_each_node(dir, plan, 1, issue_one, &is, err, errlen);
    rk_pki_issuer_close(is.issuer);
    if (rc != RK_OK)
        return rc;
    /* the card CA of persons' cards (a stand-in for JPKI, DESIGN §2.5): not the network CA */
    char card_ca[NET_PATH_CAP], card_key[NET_PATH_CAP], crl[NET_PATH_CAP];
    if ((rc = tk_path(card_ca, sizeof card_ca, "%s/card-ca.pem", pki)) ||
        (rc = tk_path(card_key, sizeof card_key, "%s/card-ca-key.pem", pki)) ||
        (rc = tk_path(crl, sizeof crl, "%s/card-crl.pem", pki))) {
        net_set_err(err, errlen, "%s: path too long", dir);
        return rc;
    }
    if ((rc = rk_card_ca_create(card_ca, card_key, crl)) != RK_OK)
        net_set_err(err, errlen, "cannot create the card CA in %s: %s", pki, rk_strerror(rc));
    return rc;
}

/* ---- network.json ---------------------------------------------------------- */

static rk_rc node_json(const char *dir, const net_node *n, const net_cert_ids *ids, json_t **out)
{
    char url[64] = "", backup[64] = "", person[64] = "";
    const char *fp = ids->fp, *pin = ids->pin;
    rk_rc rc = RK_OK;
    if (n->port)
        snprintf(url, sizeof url, "https://%s:%d", NET_LOOPBACK, n->port);
    if (n->backup_port)
        snprintf(backup, sizeof backup, "https://%s:%d", NET_LOOPBACK, n->backup_port);
    *out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:[s]}", "id", n->id, "role", rk_role_name(n->role),
                     "agency", n->agency, "kind", n->kind, "url", url, "backup_url", backup, "fingerprint", fp,
                     "pin", pin, "addresses", NET_LOOPBACK);
    if (!*out)
        return RK_ERR_NOMEM;
    if (n->person_port) { /* the portal's listener for persons' cards */
        snprintf(person, sizeof person, "https://%s:%d", NET_LOOPBACK, n->person_port);
        json_object_set_new(*out, "person_url", json_string(person));
    }
    if (keeps_records(n)) { /* the log's origin and the vkey its checkpoints verify with */
        char nd[NET_PATH_CAP], path[NET_PATH_CAP], origin[RK_ORIGIN_MAX], vkey[RK_VKEY_MAX];
        EVP_PKEY *key = NULL;
        /* the instances of a core keep one log, named for the core (DESIGN §4.1) */
        snprintf(origin, sizeof origin, "renkei/%s/%s", NET_NAME, n->instance ? "core" : n->id);
        if ((rc = node_dir(dir, n, nd, sizeof nd)) == RK_OK && (rc = tk_path(path, sizeof path, "%s/log_key.pem", nd)) == RK_OK &&
            (rc = rk_pki_load_key(path, NULL, &key)) == RK_OK && (rc = rk_vkey_of(origin, key, vkey)) == RK_OK) {
            json_object_set_new(*out, "log_origin", json_string(origin));
            json_object_set_new(*out, "log_vkey", json_string(vkey));
        }
        EVP_PKEY_free(key);
    }
    if (n->role == RK_ROLE_WITNESS) { /* its C2SP cosignature vkey (type 0x04) */
        char nd[NET_PATH_CAP], path[NET_PATH_CAP], name[RK_ORIGIN_MAX], vkey[RK_VKEY_MAX];
        EVP_PKEY *key = NULL;
        snprintf(name, sizeof name, "renkei/%s/%s", NET_NAME, n->id);
        if ((rc = node_dir(dir, n, nd, sizeof nd)) == RK_OK &&
            (rc = tk_path(path, sizeof path, "%s/witness_key.pem", nd)) == RK_OK &&
            (rc = rk_pki_load_key(path, NULL, &key)) == RK_OK &&
            (rc = rk_vkey_of_type(name, key, RK_VKEY_COSIGNATURE, vkey)) == RK_OK)
            json_object_set_new(*out, "vkey", json_string(vkey));
        EVP_PKEY_free(key);
    }
    return rc;
}

typedef struct net_json {
    json_t **objs;
    const net_cert_ids *ids;
} net_json;

static rk_rc json_one(const char *dir, const net_plan *plan, size_t i, void *arg, char *err, size_t errlen)
{
    net_json *j = arg;
    rk_rc rc = node_json(dir, &plan->nodes[i], &j->ids[i], &j->objs[i]);
    if (rc != RK_OK)
        net_set_err(err, errlen, "cannot read the certificate of %s: %s", plan->nodes[i].id, rk_strerror(rc));
    return rc;
}

/* Written last, through a temporary file: its presence means a complete network. */
static rk_rc write_network_json(const char *dir, const net_plan *plan, const net_cert_ids *ids, char *err,
                                 size_t errlen)
{
    char path[NET_PATH_CAP], tmp[NET_PATH_CAP];
    json_t *nodes = json_array();
    json_t *root = json_pack("{s:s,s:o}", "network", NET_NAME, "nodes", nodes);
    rk_rc rc = root ? RK_OK : RK_ERR_NOMEM;
    json_t **objs = calloc(plan->n + 1, sizeof *objs);
    if (!objs)
        rc = RK_ERR_NOMEM;
    if (rc == RK_OK)
        rc = for_each_node(dir, plan, 0, json_one, &(net_json){.objs = objs, .ids = ids}, err, errlen);
    for (size_t i = 0; i < plan->n && rc == RK_OK; i++) {
        if (json_array_append_new(nodes, objs[i]) != 0)
            rc = RK_ERR_NOMEM;
        objs[i] = NULL;
    }
    for (size_t i = 0; objs && i < plan->n; i++)
        json_decref(objs[i]);
    free(objs);
    if (rc != RK_OK)
        goto done;
    if ((rc = tk_path(path, sizeof path, "%s/network.json", dir)) ||
        (rc = tk_path(tmp, sizeof tmp, "%s/network.json.tmp", dir))) {
        net_set_err(err, errlen, "%s: path too long", dir);
        goto done;
    }
    if (json_dump_file(root, tmp, JSON_INDENT(2)) != 0 || rename(tmp, path) != 0) {
        net_set_err(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        rc = RK_ERR_IO;
    }
done:
    json_decref(root);
    return rc;
}

/* ---- the signed registry (DESIGN §3) ------------------------------------------ */

/* Every node's [registry] section: its trust anchor (the operator's registry
 * key, not the CA's); the core also reads the published registry and the
 * CA's CRL it serves (GET /v1/registry). */
static const char *registry_conf(const net_node *n)
{
    return n->role == RK_ROLE_CORE ? "\n[registry]\nanchor = ../../pki/registry.pub\n"
                                     "published = ../../" RK_REGISTRY_SIGNED_FILE "\n"
                                     "crl = ../../" RK_REGISTRY_CRL_FILE "\n"
                                   : "\n[registry]\nanchor = ../../pki/registry.pub\n";
}

/* The operator's registry key, then the first registry (serial 1) signed
 * with it from network.json (tools/registry_cmd.c). */
static rk_rc write_registry_key(const char *dir, char *err, size_t errlen)
{
    return rk_registry_key_create(dir, err, errlen);
}

static rk_rc publish_registry(const char *dir, char *err, size_t errlen)
{
    return rk_registry_publish(dir, NULL, err, errlen);
}

/* ---- node configs, master key, permission table ------------------------------ */

static rk_rc write_master_key(const char *nd)
{
    char path[NET_PATH_CAP];
    uint8_t key[32];
    char hex[2 * sizeof key + 2];
    rk_rc rc = tk_path(path, sizeof path, "%s/master.key", nd);
    if (rc == RK_OK && (rc = rk_random(key, sizeof key)) == RK_OK) {
        rk_hex(key, sizeof key, hex);
        hex[2 * sizeof key] = '\n';
        hex[2 * sizeof key + 1] = '\0';
        rc = rk_write_file(path, hex, 2 * sizeof key + 1, 0600);
    }
    rk_wipe(key, sizeof key);
    rk_wipe(hex, sizeof hex);
    return rc;
}

/* store: the node's `store` URI (a PostgreSQL network), or NULL for SQLite's node.db. */
static rk_rc write_node_conf(const char *dir, const net_node *n, const char *store, char *err, size_t errlen)
{
    char nd[NET_PATH_CAP], path[NET_PATH_CAP], text[2048];
    const char *extra = n->role == RK_ROLE_CORE ? "\n[core]\nmaster_key_file = master.key\n"
                                                  "permissions = ../../permissions.csv\n"
                                                  "catalogue = ../../catalogue\n"
                        : n->role == RK_ROLE_JLIS ? "\n[jlis]\nresidents = ../../residents.csv\n"
                                                    "cards = cards.csv\n"
                                                    "card_ca = ../../pki/card-ca.pem\n"
                                                    "card_crl = ../../pki/card-crl.pem\n"
                        : n->role == RK_ROLE_PORTAL ? "\n[portal]\ncard_ca = ../../pki/card-ca.pem\n"
                        : n->role == RK_ROLE_PPC ? "\n[ppc]\npermissions = ../../permissions.csv\ninitial = pia.csv\n"
                                                    : "";
    rk_rc rc = node_dir(dir, n, nd, sizeof nd);
    if (rc == RK_OK)
        rc = tk_path(path, sizeof path, "%s/node.conf", nd);
    if (rc == RK_OK)
        rc = tk_path(text, sizeof text,
                      "[node]\nid = %s\nnetwork = ../../network.json\nca = ../../pki/ca.pem\ncrl = ../../pki/crl.pem\n"
                      "cert = cert.pem\nkey = key.pem\n%s%s\n%s%s",
                      n->id, store ? "store = " : "db = node.db", store ? store : "", extra, registry_conf(n));
    if (rc == RK_OK) /* a store URI holds the node's database password */
        rc = rk_write_file(path, text, strlen(text), store ? 0600 : 0644);
    rk_wipe(text, sizeof text);
    if (rc == RK_OK && n->role == RK_ROLE_CORE)
        rc = n->instance > 1 ? share_first_instance_key(dir, n, "master.key") : write_master_key(nd);
    if (rc != RK_OK)
        net_set_err(err, errlen, "cannot write the configuration of %s in %s: %s", n->id, nd, rk_strerror(rc));
    return rc;
}

static rk_rc conf_one(const char *dir, const net_plan *plan, size_t i, void *arg, char *err, size_t errlen)
{
    char *const *stores = arg;
    if (!net_is_server_role(plan->nodes[i].role))
        return RK_OK;
    return write_node_conf(dir, &plan->nodes[i], stores ? stores[i] : NULL, err, errlen);
}

static rk_rc write_configs(const char *dir, const net_plan *plan, char *const *stores, char *err, size_t errlen)
{
    /* the first (a core) first: its instances copy its master key */
    rk_rc rc = plan->n ? conf_one(dir, plan, 0, (void *)stores, err, errlen) : RK_OK;
    return rc == RK_OK ? for_each_node(dir, plan, 1, conf_one, (void *)stores, err, errlen) : rc;
}

/* The permission table in force: $RENKEI_DATA_DIR (or the build's data
 * folder)/permissions.csv; just the header when there is none. */
static rk_rc copy_permissions(const char *dir, char *err, size_t errlen)
{
    const char *data = getenv("RENKEI_DATA_DIR");
    char src[NET_PATH_CAP], dst[NET_PATH_CAP];
    char *text = NULL;
    size_t len = 0;
    if (!data || !*data)
        data = RENKEI_DATA_DIR;
    rk_rc rc = tk_path(src, sizeof src, "%s/permissions.csv", data);
    if (rc == RK_OK)
        rc = tk_path(dst, sizeof dst, "%s/permissions.csv", dir);
    if (rc == RK_OK && (rc = rk_read_file(src, NET_PERMISSIONS_CAP, &text, &len)) == RK_ERR_NOT_FOUND) {
        rc = rk_write_file(dst, NET_PERMISSIONS_HEADER, strlen(NET_PERMISSIONS_HEADER), 0644);
        goto done;
    }
    if (rc != RK_OK) {
        net_set_err(err, errlen, "%s: cannot read: %s", src, rk_strerror(rc));
        goto done;
    }
    rc = rk_write_file(dst, text, len, 0644);
done:
    if (rc != RK_OK && err && !err[0])
        net_set_err(err, errlen, "%s/permissions.csv: cannot write: %s", dir, rk_strerror(rc));
    free(text);
    return rc;
}

/* The catalogues the core names businesses, items and kinds from (DESIGN
 * §2.3; persons read the names, §2.5): DIR/catalogue/{kinds,businesses,items}.csv
 * from $RENKEI_DATA_DIR (or the build's data folder); just the headers when
 * one is not there. */
static rk_rc copy_catalogue(const char *dir, char *err, size_t errlen)
{
    static const char *const files[] = {"kinds.csv", "businesses.csv", "items.csv"};
    static const char *const headers[] = {"kind,name_ja,name_en\n", "business,name_ja,name_en,law\n",
                                          "item,name_ja,name_en\n"};
    const char *data = getenv("RENKEI_DATA_DIR");
    char folder[NET_PATH_CAP], src[NET_PATH_CAP], dst[NET_PATH_CAP];
    if (!data || !*data)
        data = RENKEI_DATA_DIR;
    rk_rc rc = tk_path(folder, sizeof folder, "%s/catalogue", dir);
    if (rc == RK_OK)
        rc = rk_mkdirs(folder, 0755);
    for (size_t i = 0; rc == RK_OK && i < sizeof files / sizeof files[0]; i++) {
        char *text = NULL;
        size_t len = 0;
        if ((rc = tk_path(src, sizeof src, "%s/%s", data, files[i])) == RK_OK &&
            (rc = tk_path(dst, sizeof dst, "%s/%s", folder, files[i])) == RK_OK &&
            (rc = rk_read_file(src, NET_PERMISSIONS_CAP, &text, &len)) == RK_OK)
            rc = rk_write_file(dst, text, len, 0644);
        else if (rc == RK_ERR_NOT_FOUND)
            rc = rk_write_file(dst, headers[i], strlen(headers[i]), 0644);
        free(text);
        if (rc != RK_OK)
            net_set_err(err, errlen, "%s/%s: cannot copy to %s: %s", data, files[i], folder, rk_strerror(rc));
    }
    return rc;
}

/* The catalogue as a signed document (DESIGN §2.3): the operator's
 * registry key (made only when absent), version 1 of DIR's catalogue in
 * DIR/catalog, and the core's node.conf naming them. A data folder that is
 * not a whole catalogue (no names, no layout versions) publishes nothing:
 * its core runs the unsigned table of [core] permissions. */
static rk_rc write_first_catalog(const char *dir, const net_plan *plan, char *err, size_t errlen)
{
    static const char conf[] = "\n[core]\ncatalog_dir = ../../catalog\n"; /* [registry] anchor: registry_conf */
    char probe[256] = "", perms[NET_PATH_CAP], cats[NET_PATH_CAP], *doc = NULL;
    rk_permissions *tables = NULL;
    rk_rc rc = tk_path(perms, sizeof perms, "%s/permissions.csv", dir);
    if (rc == RK_OK)
        rc = tk_path(cats, sizeof cats, "%s/catalogue", dir);
    if (rc == RK_OK && (rc = rk_permissions_load(perms, cats, &tables, probe, sizeof probe)) == RK_OK)
        rc = rk_catalog_doc_build(tables, 1, NET_FIRST_CATALOG_DATE, &doc, NULL, probe, sizeof probe);
    free(doc);
    rk_permissions_free(tables);
    if (rc != RK_OK)
        return RK_OK; /* not a whole catalogue: the unsigned table */
    if ((rc = rk_catalog_registry_key(dir, err, errlen)) != RK_OK ||
        (rc = rk_catalog_publish(dir, NET_FIRST_CATALOG_DATE, 1, NULL, NULL, NULL, err, errlen)) != RK_OK)
        return rc;
    for (size_t i = 0; i < plan->n && rc == RK_OK; i++) {
        char nd[NET_PATH_CAP], path[NET_PATH_CAP];
        FILE *f = NULL;
        if (plan->nodes[i].role != RK_ROLE_CORE)
            continue;
        if ((rc = node_dir(dir, &plan->nodes[i], nd, sizeof nd)) == RK_OK &&
            (rc = tk_path(path, sizeof path, "%s/node.conf", nd)) == RK_OK && (!(f = fopen(path, "a")) ||
            fputs(conf, f) == EOF))
            rc = RK_ERR_IO;
        if (f && fclose(f) != 0)
            rc = RK_ERR_IO;
        if (rc != RK_OK)
            net_set_err(err, errlen, "%s: cannot name the catalogue in the core's configuration", nd);
    }
    return rc;
}

/* ---- residents.csv ------------------------------------------------------------ */

/* Open-addressing set of 64-bit keys (stored +1; 0 marks an empty slot). */
typedef struct id_set {
    uint64_t *slots;
    size_t mask;
} id_set;

static rk_rc id_set_init(id_set *s, size_t expected)
{
    size_t cap = 1024;
    while (cap < expected + expected / 3 + 1)
        cap <<= 1;
    s->slots = calloc(cap, sizeof *s->slots);
    s->mask = cap - 1;
    return s->slots ? RK_OK : RK_ERR_NOMEM;
}

/* 1 when key was added, 0 when it was there already. */
static int id_set_add(id_set *s, uint64_t key)
{
    uint64_t k = key + 1, h = k * UINT64_C(0x9E3779B97F4A7C15);
    for (size_t i = (size_t)(h ^ (h >> 29)) & s->mask;; i = (i + 1) & s->mask) {
        if (s->slots[i] == 0) {
            s->slots[i] = k;
            return 1;
        }
        if (s->slots[i] == k)
            return 0;
    }
}

typedef struct resident_gen {
    uint64_t rand[NET_RAND_BATCH];
    size_t pos;
    id_set seen; /* My Number prefixes (tag 0) and resident codes (tag 1) */
} resident_gen;

#define TAG_RESIDENT_CODE (UINT64_C(1) << 40) /* above 10^11 */

/* The next random value. */
static rk_rc draw(resident_gen *g, uint64_t *out)
{
    if (g->pos == NET_RAND_BATCH) {
        rk_rc rc = rk_random(g->rand, sizeof g->rand);
        if (rc != RK_OK)
            return rc;
        g->pos = 0;
    }
    *out = g->rand[g->pos++];
    return RK_OK;
}

/* A random 11-digit value not drawn before under tag. */
static rk_rc draw_unique(resident_gen *g, uint64_t tag, uint64_t *out)
{
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t v;
        rk_rc rc = draw(g, &v);
        if (rc != RK_OK)
            return rc;
        v %= NET_RESIDENT_SPACE; /* bias < 1e-8: fine for test data */
        if (id_set_add(&g->seen, v | tag)) {
            *out = v;
            return RK_OK;
        }
    }
    return RK_ERR_CONFLICT;
}

static char *put_digits(char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + n;
}

static rk_rc write_person(FILE *f, resident_gen *g, long i, int with_previous)
{
    uint64_t number = 0, code = 0, previous = 0; /* zeroed: gcc -O3 cannot see that draw_unique sets them */
    uint64_t r[4] = {0};
    char line[1024], *p = line;
    rk_rc rc;
    if ((rc = draw_unique(g, 0, &number)) != RK_OK || (rc = draw_unique(g, TAG_RESIDENT_CODE, &code)) != RK_OK ||
        (with_previous && (rc = draw_unique(g, TAG_RESIDENT_CODE, &previous)) != RK_OK))
        return rc;
    for (int k = 0; k < 4; k++)
        if ((rc = draw(g, &r[k])) != RK_OK)
            return rc;
    p = put_digits(p, number, 11);
    *p = (char)('0' + rk_mynumber_check_digit(line));
    p++;
    *p++ = ',';
    p = put_digits(p, code, 11);
    *p++ = ',';
    if (with_previous)
        p = put_digits(p, previous, 11);
    size_t items = net_resident_items(i, r, p, sizeof line - (size_t)(p - line) - 1);
    if (!items)
        return RK_ERR_TOO_LARGE;
    p += items;
    *p++ = '\n';
    return fwrite(line, 1, (size_t)(p - line), f) == (size_t)(p - line) ? RK_OK : RK_ERR_IO;
}

static rk_rc write_persons(FILE *f, long persons)
{
    resident_gen *g = calloc(1, sizeof *g);
    rk_rc rc = g ? RK_OK : RK_ERR_NOMEM;
    if (rc == RK_OK) {
        g->pos = NET_RAND_BATCH;
        rc = id_set_init(&g->seen, (size_t)persons * 2 + (size_t)persons / NET_PREVIOUS_EVERY);
    }
    if (rc == RK_OK && fputs(NET_RESIDENTS_HEADER, f) == EOF)
        rc = RK_ERR_IO;
    for (long i = 0; i < persons && rc == RK_OK; i++)
        rc = write_person(f, g, i, i % NET_PREVIOUS_EVERY == NET_PREVIOUS_EVERY - 1);
    if (g)
        free(g->seen.slots);
    free(g);
    return rc;
}

/* The PIA register's first states (法28条; DESIGN §5: agencies' PIAs start
 * published): DIR/nodes/<ppc>/pia.csv, a row `published` evaluated today
 * for every agency and every business the permission table lets its kind
 * ask or answer under. */
static rk_rc write_pia(const char *dir, const net_plan *plan, char *err, size_t errlen)
{
    char perms_path[NET_PATH_CAP], path[NET_PATH_CAP], today[16];
    const net_node *ppc = NULL;
    for (size_t i = 0; i < plan->n; i++)
        if (plan->nodes[i].role == RK_ROLE_PPC)
            ppc = &plan->nodes[i];
    if (!ppc)
        return RK_OK;
    rk_permissions *perms = NULL;
    FILE *f = NULL;
    rk_rc rc = tk_path(perms_path, sizeof perms_path, "%s/permissions.csv", dir);
    if (rc == RK_OK)
        rc = tk_path(path, sizeof path, "%s/nodes/%s/pia.csv", dir, ppc->id);
    if (rc == RK_OK)
        rc = rk_permissions_load(perms_path, NULL, &perms, err, errlen);
    if (rc == RK_OK && !(f = fopen(path, "we")))
        rc = RK_ERR_IO;
    rk_format_time(rk_now_ms(), today, sizeof today); /* YYYY-MM-DDT…: its date */
    today[RK_DATE_LEN] = '\0';
    if (rc == RK_OK && fputs("agency,business,state,evaluated_on\n", f) < 0)
        rc = RK_ERR_IO;
    for (size_t i = 0; rc == RK_OK && i < plan->n; i++) {
        const net_node *a = &plan->nodes[i];
        if (a->role != RK_ROLE_AGENCY)
            continue;
        /* rows are sorted: a business's rows follow one another */
        const char *last = "";
        for (size_t r = 0; rc == RK_OK && r < rk_permissions_count(perms); r++) {
            const char *rk = NULL, *business = NULL, *pk = NULL;
            rk_permissions_row(perms, r, &rk, &business, &pk, NULL);
            if (strcmp(business, last) == 0 || (strcmp(rk, a->kind) != 0 && strcmp(pk, a->kind) != 0))
                continue;
            if (fprintf(f, "%s,%s,published,%s\n", a->agency, business, today) < 0)
                rc = RK_ERR_IO;
            last = business;
        }
    }
    if (f && fclose(f) != 0 && rc == RK_OK)
        rc = RK_ERR_IO;
    rk_permissions_free(perms);
    if (rc != RK_OK && err && !err[0])
        net_set_err(err, errlen, "%s: cannot write: %s", path, rk_strerror(rc));
    return rc;
}

/* Synthetic resident registry: distinct valid My Numbers, distinct resident
 * codes, every 20th person with one earlier code, and each one's four basic
 * items (people.c). Mode 0600: it is a file of My Numbers and personal
 * data, even if invented ones. */
static rk_rc write_residents(const char *dir, long persons, char *err, size_t errlen)
{
    char path[NET_PATH_CAP], tmp[NET_PATH_CAP];
    FILE *f = NULL;
    rk_rc rc = tk_path(path, sizeof path, "%s/residents.csv", dir);
    if (rc == RK_OK)
        rc = tk_path(tmp, sizeof tmp, "%s/residents.csv.tmp", dir);
    if (rc != RK_OK)
        goto done;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        if (fd >= 0)
            close(fd);
        rc = RK_ERR_IO;
        goto done;
    }
    setvbuf(f, NULL, _IOFBF, 1u << 20);
    rc = write_persons(f, persons);
    if (rc == RK_OK && fflush(f) != 0) /* synced with the rest: rk_net_init */
        rc = RK_ERR_IO;
    if (fclose(f) != 0 && rc == RK_OK)
        rc = RK_ERR_IO;
    if (rc == RK_OK && rename(tmp, path) != 0)
        rc = RK_ERR_IO;
    if (rc != RK_OK)
        unlink(tmp);
done:
    if (rc != RK_OK)
        net_set_err(err, errlen, "%s/residents.csv: cannot write: %s", dir, rk_strerror(rc));
    return rc;
}

/* ---- rk_net_init ------------------------------------------------------------- */

/* Everything written so far on disk (rk_write_defer_sync). */
static rk_rc sync_dir(const char *dir, char *err, size_t errlen)
{
    rk_rc rc = rk_sync_folder(dir);
    if (rc != RK_OK)
        net_set_err(err, errlen, "%s: cannot sync to disk: %s", dir, strerror(errno));
    return rc;
}

static rk_rc resolve_options(const rk_net_options *opt, rk_net_options *o, char *err, size_t errlen)
{
    *o = opt ? *opt : (rk_net_options){0};
    if (!o->agencies)
        o->agencies = NET_DEFAULT_AGENCIES;
    if (!o->persons)
        o->persons = NET_DEFAULT_PERSONS;
    if (o->agencies < NET_MIN_AGENCIES || o->agencies > NET_MAX_AGENCIES) {
        net_set_err(err, errlen, "agencies must be %d..%d, not %d", NET_MIN_AGENCIES, NET_MAX_AGENCIES, o->agencies);
        return RK_ERR_INVALID;
    }
    if (o->persons < 1 || o->persons > NET_MAX_PERSONS) {
        net_set_err(err, errlen, "persons must be 1..%d, not %d", NET_MAX_PERSONS, o->persons);
        return RK_ERR_INVALID;
    }
    if (o->core_instances < 0 || o->core_instances > NET_MAX_CORE_INSTANCES) {
        net_set_err(err, errlen, "core instances must be 1..%d, not %d", NET_MAX_CORE_INSTANCES, o->core_instances);
        return RK_ERR_INVALID;
    }
    if (o->core_instances > 1 && !o->postgres) { /* they share one database: a server's */
        net_set_err(err, errlen, "several core instances need --store postgres");
        return RK_ERR_INVALID;
    }
    if (o->ha && !o->postgres) {
        net_set_err(err, errlen, "--ha needs --store postgres");
        return RK_ERR_INVALID;
    }
    if (o->base_port < 0 || o->base_port > 65535) {
        net_set_err(err, errlen, "base port must be 1..65535, not %d", o->base_port);
        return RK_ERR_INVALID;
    }
    return RK_OK;
}

static rk_rc prepare_dir(const char *dir, char *err, size_t errlen)
{
    char path[NET_PATH_CAP];
    struct stat st;
    if (!dir || !*dir || tk_path(path, sizeof path, "%s/network.json", dir) != RK_OK) {
        net_set_err(err, errlen, "bad network folder '%s'", dir ? dir : "");
        return RK_ERR_INVALID;
    }
    if (rk_mkdirs(dir, 0755) != RK_OK) {
        net_set_err(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
        return RK_ERR_IO;
    }
    if (stat(path, &st) == 0) {
        net_set_err(err, errlen, "%s already exists: refusing to overwrite a network", path);
        return RK_ERR_EXISTS;
    }
    return RK_OK;
}

rk_rc rk_net_init(const char *dir, const rk_net_options *opt, char *err, size_t errlen)
{
    rk_net_options o;
    net_plan plan = {0};
    char **stores = NULL; /* --store postgres: each server node's URI */
    net_cert_ids *ids = NULL; /* each node's certificate fingerprint and pin */
    if (err && errlen)
        err[0] = '\0';
    rk_rc rc = resolve_options(opt, &o, err, errlen);
    if (rc != RK_OK || (rc = prepare_dir(dir, err, errlen)) != RK_OK)
        goto done;
    /* thousands of files: none synced alone, all at once before network.json and at the end */
    rk_write_defer_sync(1);
    if ((rc = net_plan_build(o.agencies, o.core_instances, &plan)) != RK_OK) {
        net_set_err(err, errlen, "cannot plan the network: %s", rk_strerror(rc));
        goto done;
    }
    if ((o.postgres && !(stores = calloc(plan.n, sizeof *stores))) || !(ids = calloc(plan.n + 1, sizeof *ids))) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    if ((rc = net_plan_ports(&plan, o.base_port, err, errlen)) != RK_OK ||
        (rc = write_pki(dir, &plan, ids, err, errlen)) != RK_OK || (rc = write_registry_key(dir, err, errlen)) != RK_OK ||
        (o.postgres && (rc = (o.ha ? net_ha_init : net_pg_init)(dir, &plan, stores, err, errlen)) != RK_OK) ||
        (rc = write_configs(dir, &plan, stores, err, errlen)) != RK_OK ||
        (rc = copy_permissions(dir, err, errlen)) != RK_OK || (rc = copy_catalogue(dir, err, errlen)) != RK_OK ||
        (rc = write_pia(dir, &plan, err, errlen)) != RK_OK ||
        (rc = write_residents(dir, o.persons, err, errlen)) != RK_OK ||
        (rc = write_first_catalog(dir, &plan, err, errlen)) != RK_OK || (rc = sync_dir(dir, err, errlen)) != RK_OK)
        goto done;
    if ((rc = write_network_json(dir, &plan, ids, err, errlen)) == RK_OK)
        rc = publish_registry(dir, err, errlen);
    if (rc == RK_OK && o.hsm)
        rc = net_hsm_init(dir, &plan, err, errlen);
    if (rc == RK_OK) /* on disk when `net init` returns */
        rc = sync_dir(dir, err, errlen);
done:
    rk_write_defer_sync(0);
    for (size_t i = 0; stores && i < plan.n; i++)
        if (stores[i]) {
            rk_wipe(stores[i], strlen(stores[i]));
            free(stores[i]);
        }
    free(stores);
    free(ids);
    free(plan.nodes);
    return rc;
}
