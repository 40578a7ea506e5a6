/* agency_cmd.c — `renkei agency add|remove DIR …`: an agency joins or leaves
 * a running network (DESIGN §3, §5; standard 第5-2(2), 第5-4(1)).
 *
 * add: the agency's gateway and agency node, its business system's and its
 * operator's credentials, each with a key made in its own folder (never
 * copied) and a certificate from the network CA; node.conf files; the
 * entries in network.json; the registry published. Its operator then starts
 * `renkei gateway|agency --config DIR/nodes/…/node.conf`: every running
 * node applies the registry within one [registry] refresh, and no node
 * restarts. remove: its entries leave network.json and the registry is
 * published; every node refuses its certificates within one refresh (403
 * unknown_peer); its folders and records stay. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/codes.h"
#include "crypto/pki.h"
#include "lib/util.h"
#include "net/registry.h"
#include "records/checkpoint.h"
#include "tools/registry_cmd.h"
#include "tools/toolkit.h"
#include "tools/tools.h"

#define CMD "agency"
#define LOOPBACK "127.0.0.1"
#define AGENCY_ID_MAX 40 /* room for the "-operator" suffix within RK_ID_MAX */
#define NETWORK_JSON_MAX (16u << 20)
#define PORT_FLOOR 20000

static const char usage_agency[] =
    "usage: renkei agency COMMAND DIR [ARGS]\n"
    "       renkei agency --config FILE\n"
    "\n"
    "Changes the membership of network DIR while it runs (DESIGN §3); with\n"
    "--config, runs an agency node (node.conf(5)).\n"
    "\n"
    "commands:\n"
    "  add DIR --id ID --kind KIND [--name NAME]\n"
    "              makes agency ID and publishes the registry\n"
    "  remove DIR ID\n"
    "              takes agency ID out and publishes the registry\n"
    "\n"
    "Run 'renkei agency COMMAND --help' for the options of a command.\n";

static const char usage_add[] =
    "usage: renkei agency add DIR --id ID --kind KIND [--name NAME]\n"
    "\n"
    "Makes agency ID of kind KIND (e.g. municipality, insurer) in network DIR:\n"
    "its gateway DIR/nodes/ID-gateway and agency node DIR/nodes/ID, each with a\n"
    "key made in its folder and a certificate from the CA in DIR/pki, their\n"
    "node.conf files, its business system's credential DIR/clients/ID and its\n"
    "operator's DIR/clients/ID-operator; adds them to DIR/network.json and\n"
    "publishes the registry. Start the two nodes (renkei gateway and renkei\n"
    "agency, each with its node.conf): the running network works with them\n"
    "within one [registry] refresh.\n"
    "\n"
    "  --id ID       the agency's id (a-z, 0-9 and '-', at most 40)\n"
    "  --kind KIND   its kind, as the permission table names kinds\n"
    "  --name NAME   its name, kept in network.json\n"
    "  --help        show this help\n";

static const char usage_remove[] =
    "usage: renkei agency remove DIR ID\n"
    "\n"
    "Takes agency ID's nodes and clients out of DIR/network.json and publishes\n"
    "the registry: every node refuses them within one [registry] refresh. Their\n"
    "folders and records stay.\n"
    "\n"
    "  --help   show this help\n";

typedef struct member {
    const char *suffix;
    rk_role role;
    int server; /* a node that listens: under nodes/, with a port */
} member;

static const member members[] = {
    {"-gateway", RK_ROLE_GATEWAY, 1},
    {"", RK_ROLE_AGENCY, 1},
    {"-system", RK_ROLE_SYSTEM, 0},
    {"-operator", RK_ROLE_OPERATOR, 0},
};
#define N_MEMBERS (sizeof members / sizeof members[0])

static int id_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

static json_t *load_network(const char *dir, char *path, size_t pathlen, rk_registry **reg, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    if (tk_path(path, pathlen, "%s/network.json", dir) != RK_OK) {
        snprintf(err, errlen, "%s: path too long", dir);
        return NULL;
    }
    rk_rc rc = rk_read_file(path, NETWORK_JSON_MAX, &text, &len);
    if (rc != RK_OK) {
        snprintf(err, errlen, "%s: %s", path, rk_strerror(rc));
        return NULL;
    }
    char why[400] = "";
    json_error_t jerr;
    json_t *root = NULL;
    if (rk_registry_parse(text, len, reg, why, sizeof why) != RK_OK)
        snprintf(err, errlen, "%s: %s", path, why);
    else if (!(root = json_loadb(text, len, 0, &jerr)))
        snprintf(err, errlen, "%s: %s", path, jerr.text);
    free(text);
    return root;
}

static rk_rc save_network(const char *path, json_t *root, char *err, size_t errlen)
{
    char *text = json_dumps(root, JSON_INDENT(2));
    rk_rc rc = text ? rk_write_file(path, text, strlen(text), 0644) : RK_ERR_NOMEM;
    free(text);
    if (rc != RK_OK)
        snprintf(err, errlen, "%s: cannot write: %s", path, rk_strerror(rc));
    return rc;
}

/* Publishes when the network has a registry key; says what happened. */
static int publish(const char *dir, const char *what)
{
    char key[TK_PATH_CAP], err[TK_PATH_CAP + 512] = "";
    struct stat st;
    if (tk_path(key, sizeof key, "%s/%s", dir, RK_REGISTRY_KEY_FILE) != RK_OK || stat(key, &st) != 0) {
        printf("%s; %s has no registry key: restart the nodes to apply network.json\n", what, dir);
        return 0;
    }
    uint64_t serial = 0;
    if (rk_registry_publish(dir, &serial, err, sizeof err) != RK_OK)
        return tk_failure(CMD, "%s, but the registry was not published: %s", what, err);
    printf("%s; registry serial %llu published: every node applies it within one refresh\n", what,
           (unsigned long long)serial);
    return 0;
}

/* A port on the loopback that nothing listens on and network.json does not
 * name, below the kernel's ephemeral range (as `net init` picks them). */
static int pick_port(const rk_registry *reg, int avoid)
{
    for (int tries = 0; tries < 500; tries++) {
        uint32_t r = 0;
        rk_random(&r, sizeof r);
        int port = PORT_FLOOR + (int)(r % 12000u);
        char url[64];
        snprintf(url, sizeof url, "https://%s:%d", LOOPBACK, port);
        int taken = port == avoid;
        for (size_t i = 0; i < reg->n_nodes && !taken; i++)
            taken = strcmp(reg->nodes[i].url, url) == 0 || strcmp(reg->nodes[i].backup_url, url) == 0 ||
                    strcmp(reg->nodes[i].person_url, url) == 0;
        if (taken)
            continue;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, LOOPBACK, &sa.sin_addr);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    return 0;
}

/* The member's folder: DIR/nodes/<id> for a node, DIR/clients/<agency> for
 * the business system, DIR/clients/<id> for the operator (as `net init`). */
static rk_rc member_dir(const char *dir, const member *m, const char *agency, const char *id, char *out, size_t len)
{
    if (m->server)
        return tk_path(out, len, "%s/nodes/%s", dir, id);
    return tk_path(out, len, "%s/clients/%s", dir, m->role == RK_ROLE_SYSTEM ? agency : id);
}

static rk_rc write_conf(const char *nd, const char *id, int anchored)
{
    char path[TK_PATH_CAP], text[1024];
    rk_rc rc = tk_path(path, sizeof path, "%s/node.conf", nd);
    if (rc == RK_OK)
        rc = tk_path(text, sizeof text,
                     "[node]\nid = %s\nnetwork = ../../network.json\nca = ../../pki/ca.pem\n"
                     "cert = cert.pem\nkey = key.pem\ndb = node.db\n%s",
                     id, anchored ? "\n[registry]\nanchor = ../../pki/registry.pub\n" : "");
    return rc == RK_OK ? rk_write_file(path, text, strlen(text), 0644) : rc;
}

/* Issues one member (its key made in its folder) and returns its network.json entry. */
static json_t *make_member(const char *dir, const char *network, const member *m, const char *agency,
                           const char *kind, const char *name, int port, int anchored, char *err, size_t errlen)
{
    char id[RK_ID_MAX], nd[TK_PATH_CAP], ca[TK_PATH_CAP], ca_key[TK_PATH_CAP], cert[TK_PATH_CAP],
        key[TK_PATH_CAP], fp[RK_FINGERPRINT_LEN], pin[RK_PIN_LEN];
    struct stat st;
    snprintf(id, sizeof id, "%s%s", agency, m->suffix);
    if (member_dir(dir, m, agency, id, nd, sizeof nd) != RK_OK || tk_path(ca, sizeof ca, "%s/pki/ca.pem", dir) ||
        tk_path(ca_key, sizeof ca_key, "%s/pki/ca-key.pem", dir) || tk_path(cert, sizeof cert, "%s/cert.pem", nd) ||
        tk_path(key, sizeof key, "%s/key.pem", nd)) {
        snprintf(err, errlen, "%s: path too long", dir);
        return NULL;
    }
    if (stat(cert, &st) == 0 || stat(key, &st) == 0) {
        snprintf(err, errlen, "%s already holds a credential: refusing to replace it", nd);
        return NULL;
    }
    rk_rc rc = rk_mkdirs(nd, 0700);
    rk_cert_spec spec = {.common_name = id, .role = rk_role_name(m->role), .name = agency,
                         .ip = m->server ? LOOPBACK : NULL};
    if (rc != RK_OK || (rc = rk_pki_issue(ca, ca_key, &spec, cert, key, NULL)) != RK_OK) {
        snprintf(err, errlen, "cannot issue the certificate of %s in %s: %s", id, nd, rk_strerror(rc));
        return NULL;
    }
    X509 *x = NULL;
    if ((rc = rk_pki_load_cert(cert, &x)) != RK_OK || (rc = rk_pki_fingerprint(x, fp)) != RK_OK ||
        (rc = rk_pki_spki_pin(x, pin)) != RK_OK) {
        X509_free(x);
        snprintf(err, errlen, "%s: cannot read the certificate: %s", cert, rk_strerror(rc));
        return NULL;
    }
    X509_free(x);
    char url[64] = "";
    if (port)
        snprintf(url, sizeof url, "https://%s:%d", LOOPBACK, port);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:[s]}", "id", id, "role", rk_role_name(m->role),
                          "agency", agency, "kind", kind, "url", url, "backup_url", "", "fingerprint", fp, "pin", pin,
                          "addresses", LOOPBACK);
    if (o && name)
        json_object_set_new(o, "name", json_string(name));
    if (o && m->role == RK_ROLE_AGENCY) { /* it keeps records: its own log key (DESIGN §4.1) */
        char path[TK_PATH_CAP], origin[RK_ORIGIN_MAX], vkey[RK_VKEY_MAX];
        EVP_PKEY *lk = NULL;
        snprintf(origin, sizeof origin, "renkei/%s/%s", network, id);
        if ((rc = tk_path(path, sizeof path, "%s/log_key.pem", nd)) != RK_OK || (rc = rk_log_key_create(path)) != RK_OK ||
            (rc = rk_pki_load_key(path, NULL, &lk)) != RK_OK || (rc = rk_vkey_of(origin, lk, vkey)) != RK_OK) {
            snprintf(err, errlen, "cannot make the log key of %s: %s", id, rk_strerror(rc));
            json_decref(o);
            o = NULL;
        } else {
            json_object_set_new(o, "log_origin", json_string(origin));
            json_object_set_new(o, "log_vkey", json_string(vkey));
        }
        EVP_PKEY_free(lk);
    }
    if (o && m->server && (rc = write_conf(nd, id, anchored)) != RK_OK) {
        snprintf(err, errlen, "%s/node.conf: cannot write: %s", nd, rk_strerror(rc));
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* The kind named in the permission table (its first or third column)? */
static int kind_in_permissions(const char *dir, const char *kind)
{
    char path[TK_PATH_CAP], *text = NULL;
    if (tk_path(path, sizeof path, "%s/permissions.csv", dir) != RK_OK ||
        rk_read_file(path, 64u << 20, &text, NULL) != RK_OK)
        return 0;
    int found = 0;
    size_t klen = strlen(kind);
    for (char *line = text; line && *line && !found; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *c = line;
        for (int col = 0; col < 3 && c && !found; col++) {
            if ((col == 0 || col == 2) && strncmp(c, kind, klen) == 0 && (c[klen] == ',' || c[klen] == '\n'))
                found = 1;
            c = strchr(c, ',');
            c = c ? c + 1 : NULL;
        }
    }
    free(text);
    return found;
}

static int add(const char *dir, const char *agency, const char *kind, const char *name)
{
    char path[TK_PATH_CAP], err[TK_PATH_CAP + 512] = "", pub[TK_PATH_CAP];
    rk_registry *reg = NULL;
    if (!id_ok(agency, AGENCY_ID_MAX))
        return tk_usage_error(CMD, "--id must be 1..%d of a-z, 0-9 and '-'", AGENCY_ID_MAX);
    if (!id_ok(kind, RK_ID_MAX - 1))
        return tk_usage_error(CMD, "--kind must be 1..%d of a-z, 0-9 and '-'", RK_ID_MAX - 1);
    if (name && (strlen(name) > 200 || !*name))
        return tk_usage_error(CMD, "--name must be 1..200 bytes");
    json_t *root = load_network(dir, path, sizeof path, &reg, err, sizeof err);
    if (!root)
        return tk_failure(CMD, "%s", err);
    int rcode = 1;
    uint32_t number = rk_agency_number(agency);
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        char id[RK_ID_MAX];
        for (size_t k = 0; k < N_MEMBERS && err[0] == '\0'; k++) {
            snprintf(id, sizeof id, "%s%s", agency, members[k].suffix);
            if (strcmp(n->id, id) == 0)
                snprintf(err, sizeof err, "%s: node %s is already registered", path, id);
        }
        if (!err[0] && n->agency[0] && strcmp(n->agency, agency) == 0)
            snprintf(err, sizeof err, "%s: agency %s is already registered", path, agency);
        /* codes carry the agency number: two agencies must not share one */
        if (!err[0] && n->agency[0] && rk_agency_number(n->agency) == number)
            snprintf(err, sizeof err, "agency %s would have the same agency number as %s; choose another id",
                     agency, n->agency);
        if (err[0])
            break;
    }
    json_t *nodes = json_object_get(root, "nodes");
    const char *network = json_string_value(json_object_get(root, "network"));
    struct stat st;
    int anchored = tk_path(pub, sizeof pub, "%s/%s", dir, RK_REGISTRY_PUB_FILE) == RK_OK && stat(pub, &st) == 0;
    int gw_port = 0, ag_port = 0;
    if (!err[0] && (!(gw_port = pick_port(reg, 0)) || !(ag_port = pick_port(reg, gw_port))))
        snprintf(err, sizeof err, "no free port on %s for the agency's nodes", LOOPBACK);
    json_t *added = json_array();
    for (size_t k = 0; k < N_MEMBERS && !err[0]; k++) {
        int port = members[k].role == RK_ROLE_GATEWAY ? gw_port : members[k].role == RK_ROLE_AGENCY ? ag_port : 0;
        json_t *o = make_member(dir, network ? network : "renkei", &members[k], agency, kind, name, port, anchored,
                                err, sizeof err);
        if (o)
            json_array_append_new(added, o);
    }
    if (!err[0]) {
        json_array_extend(nodes, added);
        if (save_network(path, root, err, sizeof err) == RK_OK) {
            if (!kind_in_permissions(dir, kind))
                fprintf(stderr, "renkei agency: note: kind %s has no row in %s/permissions.csv: it exchanges nothing "
                                "until one is added\n", kind, dir);
            char what[200];
            snprintf(what, sizeof what, "agency %s (%s) added: nodes %s-gateway and %s", agency, kind, agency, agency);
            rcode = publish(dir, what);
        }
    }
    if (err[0])
        rcode = tk_failure(CMD, "%s", err);
    json_decref(added);
    json_decref(root);
    rk_registry_free(reg);
    return rcode;
}

static int remove_agency(const char *dir, const char *agency)
{
    char path[TK_PATH_CAP], err[TK_PATH_CAP + 512] = "";
    rk_registry *reg = NULL;
    if (!id_ok(agency, RK_ID_MAX - 1))
        return tk_usage_error(CMD, "ID must be of a-z, 0-9 and '-'");
    json_t *root = load_network(dir, path, sizeof path, &reg, err, sizeof err);
    if (!root)
        return tk_failure(CMD, "%s", err);
    json_t *nodes = json_object_get(root, "nodes"), *kept = json_array();
    size_t removed = 0, i;
    json_t *o;
    json_array_foreach(nodes, i, o) {
        const char *a = json_string_value(json_object_get(o, "agency"));
        if (a && strcmp(a, agency) == 0)
            removed++;
        else
            json_array_append(kept, o);
    }
    int rcode = 1;
    if (!removed)
        rcode = tk_failure(CMD, "%s: no agency %s", path, agency);
    else if (json_object_set(root, "nodes", kept) != 0 || save_network(path, root, err, sizeof err) != RK_OK)
        rcode = tk_failure(CMD, "%s", err[0] ? err : "out of memory");
    else {
        char what[200];
        snprintf(what, sizeof what, "agency %s removed (%zu entries; its folders and records stay)", agency, removed);
        rcode = publish(dir, what);
    }
    json_decref(kept);
    json_decref(root);
    rk_registry_free(reg);
    return rcode;
}

int rk_cmd_agency(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(i > 1 && strcmp(argv[1], "add") == 0      ? usage_add
                  : i > 1 && strcmp(argv[1], "remove") == 0 ? usage_remove
                                                            : usage_agency,
                  stdout);
            return 0;
        }
    if (argc >= 2 && strcmp(argv[1], "remove") == 0) {
        if (argc != 4)
            return tk_usage_error(CMD, "expected 'remove DIR ID'");
        tk_use_network_token(argv[2]);
        return remove_agency(argv[2], argv[3]);
    }
    if (argc < 3 || strcmp(argv[1], "add") != 0)
        return tk_usage_error(CMD, "expected 'add DIR --id ID --kind KIND' or 'remove DIR ID'");
    const char *id = NULL, *kind = NULL, *name = NULL;
    for (int i = 3; i < argc; i++) {
        const char **to = strcmp(argv[i], "--id") == 0     ? &id
                          : strcmp(argv[i], "--kind") == 0 ? &kind
                          : strcmp(argv[i], "--name") == 0 ? &name
                                                           : NULL;
        if (!to)
            return tk_usage_error(CMD, "unknown option '%s'", argv[i]);
        if (i + 1 >= argc)
            return tk_usage_error(CMD, "%s needs a value", argv[i]);
        *to = argv[++i];
    }
    if (!id || !kind)
        return tk_usage_error(CMD, "add needs --id ID and --kind KIND");
    tk_use_network_token(argv[2]); /* net init --hsm: the CA's and the registry's keys in its token */
    return add(argv[2], id, kind, name);
}
