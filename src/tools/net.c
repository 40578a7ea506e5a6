/* net.c — `renkei net`: writes, runs and checks a whole network in one
 * folder (DESIGN §1, §3, §5).
 *
 * init: one CA and a certificate per node and business-system client
 *       (standard 第5-2(3)(4)), keys 0600 (第5-2(5)), the registry
 *       network.json that every node checks its peers against (第5-2(2),
 *       第5-4(1)), node configs, the core's master key, the permission table
 *       and a synthetic resident registry for J-LIS.
 * up:   every server node as a child process, in the foreground, until
 *       SIGINT or SIGTERM.
 * status: each node's /healthz, called with the operator's credentials.
 *
 * Exit status: 0 success, 1 failure, 2 usage error; errors are one line on
 * stderr starting with "renkei net: ". */
#include "tools/net.h"
#include "tools/toolkit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/http_client.h"
#include "lib/mynumber.h"
#include "crypto/pki.h"
#include "net/registry.h"
#include "lib/util.h"

#ifndef RENKEI_DATA_DIR
#define RENKEI_DATA_DIR "data"
#endif

#define EXIT_USAGE TK_EXIT_USAGE
#define NET_PATH_CAP TK_PATH_CAP
#define NET_MIN_AGENCIES 2
#define NET_MAX_AGENCIES 200
#define NET_DEFAULT_AGENCIES 3
#define NET_MAX_PERSONS 5000000
#define NET_DEFAULT_PERSONS 100
#define NET_LOOPBACK "127.0.0.1"
#define NET_CA_NAME "renkei-network-ca"
#define NET_STOP_WAIT_MS 10000
#define NET_UP_HEALTH_MS 30000
#define NET_POLL_MS 100
#define NET_HEALTH_CALL_MS 2000
#define NET_PERMISSIONS_CAP (64u << 20)
#define NET_PERMISSIONS_HEADER "requester_kind,business,provider_kind,item\n"
#define NET_RESIDENTS_HEADER "my_number,resident_code,previous_resident_codes\n"
#define NET_PREVIOUS_EVERY 20
#define NET_RESIDENT_SPACE UINT64_C(100000000000) /* 10^11: 11 digits */
#define NET_RAND_BATCH 4096

/* ---- small helpers ------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int is_server_role(rk_role role)
{
    return (role & (RK_ROLE_CORE | RK_ROLE_JLIS | RK_ROLE_GATEWAY | RK_ROLE_AGENCY)) != 0;
}

/* ---- the plan: every node of the network, before anything is written ---- */

typedef struct net_node {
    char id[RK_ID_MAX];
    rk_role role;
    char agency[RK_ID_MAX]; /* "" for core, jlis, operator */
    const char *kind;       /* "" where not applicable */
    int port, backup_port;  /* 0 when none */
} net_node;

typedef struct net_plan {
    net_node *nodes;
    size_t n;
} net_plan;

static const struct {
    const char *id, *kind;
} named_agencies[] = {
    {"city-yokohama", "municipality"},
    {"pref-kanagawa", "prefecture"},
    {"nenkin-kikou", "pension"},
    {"kyokai-kenpo", "insurer"},
};

#define NAMED_AGENCIES (int)(sizeof named_agencies / sizeof named_agencies[0])

/* Agency i (1-based): the four named ones, then city-005, city-006, … */
static rk_rc agency_identity(int i, char *id, size_t idlen, const char **kind)
{
    if (i <= NAMED_AGENCIES) {
        *kind = named_agencies[i - 1].kind;
        return tk_path(id, idlen, "%s", named_agencies[i - 1].id);
    }
    *kind = "municipality";
    return tk_path(id, idlen, "city-%03d", i);
}

static net_node *plan_add(net_plan *plan, rk_role role, const char *agency, const char *kind)
{
    net_node *n = &plan->nodes[plan->n++];
    n->role = role;
    snprintf(n->agency, sizeof n->agency, "%s", agency);
    n->kind = kind;
    return n;
}

/* core, jlis, all gateways, all agency nodes, all systems, each agency's
 * privileged operator (第8-5 markings at its own node only), the network
 * operator: the order of network.json and of `net up`. */
static rk_rc plan_build(int agencies, net_plan *plan)
{
    static const rk_role per_agency[] = {RK_ROLE_GATEWAY, RK_ROLE_AGENCY, RK_ROLE_SYSTEM, RK_ROLE_OPERATOR};
    static const char *const suffix[] = {"-gateway", "", "-system", "-operator"};
    rk_rc rc = RK_OK;
    plan->nodes = calloc(3 + 4 * (size_t)agencies, sizeof *plan->nodes);
    if (!plan->nodes)
        return RK_ERR_NOMEM;
    snprintf(plan_add(plan, RK_ROLE_CORE, "", "")->id, RK_ID_MAX, "core");
    snprintf(plan_add(plan, RK_ROLE_JLIS, "", "")->id, RK_ID_MAX, "jlis");
    for (size_t r = 0; r < 4 && rc == RK_OK; r++) {
        for (int i = 1; i <= agencies && rc == RK_OK; i++) {
            char agency[RK_ID_MAX];
            const char *kind;
            if ((rc = agency_identity(i, agency, sizeof agency, &kind)) != RK_OK)
                break;
            net_node *n = plan_add(plan, per_agency[r], agency, kind);
            rc = tk_path(n->id, sizeof n->id, "%s%s", agency, suffix[r]);
        }
    }
    if (rc == RK_OK)
        snprintf(plan_add(plan, RK_ROLE_OPERATOR, "", "")->id, RK_ID_MAX, "operator");
    return rc;
}

/* Binds 127.0.0.1:0 count times, keeping every socket open until all are
 * bound so that the ports differ, then closes them. */
static rk_rc pick_free_ports(int *ports, size_t count)
{
    rk_rc rc = RK_OK;
    int *fds = malloc(count * sizeof *fds);
    if (!fds)
        return RK_ERR_NOMEM;
    for (size_t i = 0; i < count; i++)
        fds[i] = -1;
    for (size_t i = 0; i < count; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
        socklen_t len = sizeof sa;
        inet_pton(AF_INET, NET_LOOPBACK, &sa.sin_addr);
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&sa, &len) != 0) {
            rc = RK_ERR_IO;
            goto done;
        }
        ports[i] = ntohs(sa.sin_port);
    }
done:
    for (size_t i = 0; i < count; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    return rc;
}

/* The core gets two ports (primary and backup line), every other server one. */
static rk_rc plan_ports(net_plan *plan, int base_port, char *err, size_t errlen)
{
    size_t count = 0, k = 0;
    for (size_t i = 0; i < plan->n; i++)
        count += is_server_role(plan->nodes[i].role) ? (plan->nodes[i].role == RK_ROLE_CORE ? 2 : 1) : 0;
    if (base_port && (size_t)base_port + count - 1 > 65535) {
        set_err(err, errlen, "--base-port %d: the network needs %zu ports, beyond 65535", base_port, count);
        return RK_ERR_INVALID;
    }
    int *ports = calloc(count, sizeof *ports);
    if (!ports)
        return RK_ERR_NOMEM;
    rk_rc rc = RK_OK;
    for (size_t i = 0; base_port && i < count; i++)
        ports[i] = base_port + (int)i;
    if (!base_port && (rc = pick_free_ports(ports, count)) != RK_OK)
        set_err(err, errlen, "cannot find free ports on %s: %s", NET_LOOPBACK, strerror(errno));
    for (size_t i = 0; rc == RK_OK && i < plan->n; i++) {
        net_node *n = &plan->nodes[i];
        if (!is_server_role(n->role))
            continue;
        n->port = ports[k++];
        if (n->role == RK_ROLE_CORE)
            n->backup_port = ports[k++];
    }
    free(ports);
    return rc;
}

/* ---- PKI ------------------------------------------------------------------ */

/* Servers: DIR/nodes/<id>; systems: DIR/clients/<agency>; operator: DIR/clients/operator. */
static rk_rc node_dir(const char *dir, const net_node *n, char *out, size_t outlen)
{
    if (is_server_role(n->role))
        return tk_path(out, outlen, "%s/nodes/%s", dir, n->id);
    return tk_path(out, outlen, "%s/clients/%s", dir, n->role == RK_ROLE_SYSTEM ? n->agency : n->id);
}

static rk_rc issue_node(const char *dir, const net_node *n, char *err, size_t errlen)
{
    char nd[NET_PATH_CAP], ca[NET_PATH_CAP], ca_key[NET_PATH_CAP], cert[NET_PATH_CAP], key[NET_PATH_CAP];
    rk_rc rc;
    if ((rc = node_dir(dir, n, nd, sizeof nd)) != RK_OK || (rc = tk_path(ca, sizeof ca, "%s/pki/ca.pem", dir)) ||
        (rc = tk_path(ca_key, sizeof ca_key, "%s/pki/ca-key.pem", dir)) ||
        (rc = tk_path(cert, sizeof cert, "%s/cert.pem", nd)) || (rc = tk_path(key, sizeof key, "%s/key.pem", nd))) {
        set_err(err, errlen, "%s: path too long", dir);
        return rc;
    }
    if ((rc = rk_mkdirs(nd, 0700)) != RK_OK) {
        set_err(err, errlen, "%s: cannot create: %s", nd, strerror(errno));
        return rc;
    }
    rk_cert_spec spec = {
        .common_name = n->id,
        .role = rk_role_name(n->role),
        .name = n->agency[0] ? n->agency : n->id,
        .ip = is_server_role(n->role) ? NET_LOOPBACK : NULL,
    };
    if ((rc = rk_pki_issue(ca, ca_key, &spec, cert, key, NULL)) != RK_OK)
        set_err(err, errlen, "cannot issue the certificate of %s: %s", n->id, rk_strerror(rc));
    return rc;
}

static rk_rc write_pki(const char *dir, const net_plan *plan, char *err, size_t errlen)
{
    char pki[NET_PATH_CAP], ca[NET_PATH_CAP], ca_key[NET_PATH_CAP];
    rk_rc rc;
    if ((rc = tk_path(pki, sizeof pki, "%s/pki", dir)) || (rc = tk_path(ca, sizeof ca, "%s/ca.pem", pki)) ||
        (rc = tk_path(ca_key, sizeof ca_key, "%s/ca-key.pem", pki))) {
        set_err(err, errlen, "%s: path too long", dir);
        return rc;
    }
    if ((rc = rk_mkdirs(pki, 0700)) != RK_OK) {
        set_err(err, errlen, "%s: cannot create: %s", pki, strerror(errno));
        return rc;
    }
    if ((rc = rk_pki_create_ca(ca, ca_key, NET_CA_NAME, 0)) != RK_OK) {
        set_err(err, errlen, "cannot create the network CA in %s: %s", pki, rk_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < plan->n && rc == RK_OK; i++)
        rc = issue_node(dir, &plan->nodes[i], err, errlen);
    return rc;
}

/* ---- network.json ---------------------------------------------------------- */

static rk_rc cert_ids(const char *dir, const net_node *n, char fp[RK_FINGERPRINT_LEN], char pin[RK_PIN_LEN])
{
    char nd[NET_PATH_CAP], path[NET_PATH_CAP];
    X509 *cert = NULL;
    rk_rc rc = node_dir(dir, n, nd, sizeof nd);
    if (rc == RK_OK && (rc = tk_path(path, sizeof path, "%s/cert.pem", nd)) == RK_OK &&
        (rc = rk_pki_load_cert(path, &cert)) == RK_OK && (rc = rk_pki_fingerprint(cert, fp)) == RK_OK)
        rc = rk_pki_spki_pin(cert, pin);
    X509_free(cert);
    return rc;
}

static rk_rc node_json(const char *dir, const net_node *n, json_t **out)
{
    char fp[RK_FINGERPRINT_LEN], pin[RK_PIN_LEN], url[64] = "", backup[64] = "";
    rk_rc rc = cert_ids(dir, n, fp, pin);
    if (rc != RK_OK)
        return rc;
    if (n->port)
        snprintf(url, sizeof url, "https://%s:%d", NET_LOOPBACK, n->port);
    if (n->backup_port)
        snprintf(backup, sizeof backup, "https://%s:%d", NET_LOOPBACK, n->backup_port);
    *out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:[s]}", "id", n->id, "role", rk_role_name(n->role),
                     "agency", n->agency, "kind", n->kind, "url", url, "backup_url", backup, "fingerprint", fp,
                     "pin", pin, "addresses", NET_LOOPBACK);
    return *out ? RK_OK : RK_ERR_NOMEM;
}

/* Written last, through a temporary file: its presence means a complete network. */
static rk_rc write_network_json(const char *dir, const net_plan *plan, char *err, size_t errlen)
{
    char path[NET_PATH_CAP], tmp[NET_PATH_CAP];
    json_t *nodes = json_array();
    json_t *root = json_pack("{s:s,s:o}", "network", "renkei", "nodes", nodes);
    rk_rc rc = root ? RK_OK : RK_ERR_NOMEM;
    for (size_t i = 0; i < plan->n && rc == RK_OK; i++) {
        json_t *obj = NULL;
        if ((rc = node_json(dir, &plan->nodes[i], &obj)) != RK_OK)
            set_err(err, errlen, "cannot read the certificate of %s: %s", plan->nodes[i].id, rk_strerror(rc));
        else if (json_array_append_new(nodes, obj) != 0)
            rc = RK_ERR_NOMEM;
    }
    if (rc != RK_OK)
        goto done;
    if ((rc = tk_path(path, sizeof path, "%s/network.json", dir)) ||
        (rc = tk_path(tmp, sizeof tmp, "%s/network.json.tmp", dir))) {
        set_err(err, errlen, "%s: path too long", dir);
        goto done;
    }
    if (json_dump_file(root, tmp, JSON_INDENT(2)) != 0 || rename(tmp, path) != 0) {
        set_err(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        rc = RK_ERR_IO;
    }
done:
    json_decref(root);
    return rc;
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

static rk_rc write_node_conf(const char *dir, const net_node *n, char *err, size_t errlen)
{
    char nd[NET_PATH_CAP], path[NET_PATH_CAP], text[1024];
    const char *extra = n->role == RK_ROLE_CORE ? "\n[core]\nmaster_key_file = master.key\n"
                                                  "permissions = ../../permissions.csv\n"
                        : n->role == RK_ROLE_JLIS ? "\n[jlis]\nresidents = ../../residents.csv\n"
                                                  : "";
    rk_rc rc = node_dir(dir, n, nd, sizeof nd);
    if (rc == RK_OK)
        rc = tk_path(path, sizeof path, "%s/node.conf", nd);
    if (rc == RK_OK)
        rc = tk_path(text, sizeof text,
                      "[node]\nid = %s\nnetwork = ../../network.json\nca = ../../pki/ca.pem\n"
                      "cert = cert.pem\nkey = key.pem\ndb = node.db\n%s",
                      n->id, extra);
    if (rc == RK_OK)
        rc = rk_write_file(path, text, strlen(text), 0644);
    if (rc == RK_OK && n->role == RK_ROLE_CORE)
        rc = write_master_key(nd);
    if (rc != RK_OK)
        set_err(err, errlen, "cannot write the configuration of %s in %s: %s", n->id, nd, rk_strerror(rc));
    return rc;
}

static rk_rc write_configs(const char *dir, const net_plan *plan, char *err, size_t errlen)
{
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < plan->n && rc == RK_OK; i++)
        if (is_server_role(plan->nodes[i].role))
            rc = write_node_conf(dir, &plan->nodes[i], err, errlen);
    return rc;
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
        set_err(err, errlen, "%s: cannot read: %s", src, rk_strerror(rc));
        goto done;
    }
    rc = rk_write_file(dst, text, len, 0644);
done:
    if (rc != RK_OK && err && !err[0])
        set_err(err, errlen, "%s/permissions.csv: cannot write: %s", dir, rk_strerror(rc));
    free(text);
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

/* A random 11-digit value not drawn before under tag. */
static rk_rc draw_unique(resident_gen *g, uint64_t tag, uint64_t *out)
{
    for (int tries = 0; tries < 1000; tries++) {
        if (g->pos == NET_RAND_BATCH) {
            rk_rc rc = rk_random(g->rand, sizeof g->rand);
            if (rc != RK_OK)
                return rc;
            g->pos = 0;
        }
        uint64_t v = g->rand[g->pos++] % NET_RESIDENT_SPACE; /* bias < 1e-8: fine for test data */
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

static rk_rc write_person(FILE *f, resident_gen *g, int with_previous)
{
    uint64_t number = 0, code = 0, previous = 0; /* zeroed: gcc -O3 cannot see that draw_unique sets them */
    char line[64], *p = line;
    rk_rc rc;
    if ((rc = draw_unique(g, 0, &number)) != RK_OK || (rc = draw_unique(g, TAG_RESIDENT_CODE, &code)) != RK_OK ||
        (with_previous && (rc = draw_unique(g, TAG_RESIDENT_CODE, &previous)) != RK_OK))
        return rc;
    p = put_digits(p, number, 11);
    *p = (char)('0' + rk_mynumber_check_digit(line));
    p++;
    *p++ = ',';
    p = put_digits(p, code, 11);
    *p++ = ',';
    if (with_previous)
        p = put_digits(p, previous, 11);
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
        rc = write_person(f, g, i % NET_PREVIOUS_EVERY == NET_PREVIOUS_EVERY - 1);
    if (g)
        free(g->seen.slots);
    free(g);
    return rc;
}

/* Synthetic resident registry: distinct valid My Numbers, distinct resident
 * codes, every 20th person with one earlier code. Mode 0600: it is a file
 * of My Numbers, even if invented ones. */
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
    if (rc == RK_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = RK_ERR_IO;
    if (fclose(f) != 0 && rc == RK_OK)
        rc = RK_ERR_IO;
    if (rc == RK_OK && rename(tmp, path) != 0)
        rc = RK_ERR_IO;
    if (rc != RK_OK)
        unlink(tmp);
done:
    if (rc != RK_OK)
        set_err(err, errlen, "%s/residents.csv: cannot write: %s", dir, rk_strerror(rc));
    return rc;
}

/* ---- rk_net_init ------------------------------------------------------------- */

static rk_rc resolve_options(const rk_net_options *opt, rk_net_options *o, char *err, size_t errlen)
{
    *o = opt ? *opt : (rk_net_options){0};
    if (!o->agencies)
        o->agencies = NET_DEFAULT_AGENCIES;
    if (!o->persons)
        o->persons = NET_DEFAULT_PERSONS;
    if (o->agencies < NET_MIN_AGENCIES || o->agencies > NET_MAX_AGENCIES) {
        set_err(err, errlen, "agencies must be %d..%d, not %d", NET_MIN_AGENCIES, NET_MAX_AGENCIES, o->agencies);
        return RK_ERR_INVALID;
    }
    if (o->persons < 1 || o->persons > NET_MAX_PERSONS) {
        set_err(err, errlen, "persons must be 1..%d, not %d", NET_MAX_PERSONS, o->persons);
        return RK_ERR_INVALID;
    }
    if (o->base_port < 0 || o->base_port > 65535) {
        set_err(err, errlen, "base port must be 1..65535, not %d", o->base_port);
        return RK_ERR_INVALID;
    }
    return RK_OK;
}

static rk_rc prepare_dir(const char *dir, char *err, size_t errlen)
{
    char path[NET_PATH_CAP];
    struct stat st;
    if (!dir || !*dir || tk_path(path, sizeof path, "%s/network.json", dir) != RK_OK) {
        set_err(err, errlen, "bad network folder '%s'", dir ? dir : "");
        return RK_ERR_INVALID;
    }
    if (rk_mkdirs(dir, 0755) != RK_OK) {
        set_err(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
        return RK_ERR_IO;
    }
    if (stat(path, &st) == 0) {
        set_err(err, errlen, "%s already exists: refusing to overwrite a network", path);
        return RK_ERR_EXISTS;
    }
    return RK_OK;
}

rk_rc rk_net_init(const char *dir, const rk_net_options *opt, char *err, size_t errlen)
{
    rk_net_options o;
    net_plan plan = {0};
    if (err && errlen)
        err[0] = '\0';
    rk_rc rc = resolve_options(opt, &o, err, errlen);
    if (rc != RK_OK || (rc = prepare_dir(dir, err, errlen)) != RK_OK)
        goto done;
    if ((rc = plan_build(o.agencies, &plan)) != RK_OK) {
        set_err(err, errlen, "cannot plan the network: %s", rk_strerror(rc));
        goto done;
    }
    if ((rc = plan_ports(&plan, o.base_port, err, errlen)) != RK_OK ||
        (rc = write_pki(dir, &plan, err, errlen)) != RK_OK || (rc = write_configs(dir, &plan, err, errlen)) != RK_OK ||
        (rc = copy_permissions(dir, err, errlen)) != RK_OK ||
        (rc = write_residents(dir, o.persons, err, errlen)) != RK_OK)
        goto done;
    rc = write_network_json(dir, &plan, err, errlen);
done:
    free(plan.nodes);
    return rc;
}

/* ---- node processes ---------------------------------------------------------- */

typedef struct net_child {
    char id[RK_ID_MAX];
    pid_t pid;
    int running;
    int reported; /* its exit was already named on stderr */
    int status;   /* wait status once it exited */
} net_child;

struct rk_net_procs {
    net_child *children;
    size_t n;
};

/* Set by `net up`'s SIGINT/SIGTERM handler. */
static volatile sig_atomic_t net_stop_requested;

size_t rk_net_count(const rk_net_procs *p)
{
    return p ? p->n : 0;
}

/* In the child between fork and exec: async-signal-safe calls only. */
static void exec_child(char *const *args, int logfd, int nullfd, pid_t parent)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t none;
    sigemptyset(&none);
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    sigaction(SIGPIPE, &dfl, NULL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive `net up` */
    if (getppid() != parent)
        _exit(127);
    if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
        _exit(127);
    execv(args[0], args);
    _exit(127);
}

static rk_rc spawn_node(const char *dir, const char *exe, const rk_peer_node *node, net_child *child)
{
    char conf[NET_PATH_CAP], log[NET_PATH_CAP];
    int logfd = -1, nullfd = -1;
    rk_rc rc = tk_path(conf, sizeof conf, "%s/nodes/%s/node.conf", dir, node->id);
    if (rc == RK_OK)
        rc = tk_path(log, sizeof log, "%s/nodes/%s/node.log", dir, node->id);
    if (rc != RK_OK)
        goto done;
    char *const args[] = {(char *)exe, (char *)rk_role_name(node->role), "--config", conf, NULL};
    logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd < 0 || nullfd < 0) {
        rc = RK_ERR_IO;
        goto done;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        exec_child(args, logfd, nullfd, parent);
    if (pid < 0) {
        rc = RK_ERR_IO;
        goto done;
    }
    snprintf(child->id, sizeof child->id, "%s", node->id);
    child->pid = pid;
    child->running = 1;
done:
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    return rc;
}

rk_rc rk_net_start(const char *dir, const char *renkei_exe, rk_net_procs **out, char *err, size_t errlen)
{
    static const rk_role order[] = {RK_ROLE_CORE, RK_ROLE_JLIS, RK_ROLE_GATEWAY, RK_ROLE_AGENCY};
    rk_registry *reg = NULL;
    rk_net_procs *p = NULL;
    *out = NULL;
    rk_rc rc = tk_registry_load(dir, &reg, err, errlen);
    if (rc != RK_OK)
        goto done;
    if (!(p = calloc(1, sizeof *p)) || !(p->children = calloc(reg->n_nodes + 1, sizeof *p->children))) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    for (size_t r = 0; r < sizeof order / sizeof order[0] && rc == RK_OK; r++) {
        for (size_t i = 0; i < reg->n_nodes && rc == RK_OK; i++) {
            if (reg->nodes[i].role != order[r])
                continue;
            if ((rc = spawn_node(dir, renkei_exe, &reg->nodes[i], &p->children[p->n])) != RK_OK)
                set_err(err, errlen, "cannot start node %s: %s", reg->nodes[i].id, strerror(errno));
            else
                p->n++;
        }
    }
done:
    if (rc != RK_OK && p) {
        rk_net_stop(p);
        p = NULL;
    }
    rk_registry_free(reg);
    *out = p;
    return rc;
}

static int exited_cleanly(int status)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void describe_exit(int status, char *out, size_t outlen)
{
    if (WIFEXITED(status))
        snprintf(out, outlen, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, outlen, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(out, outlen, "ended with wait status %d", status);
}

/* Collects the child if it has exited (block: wait until it does). */
static void reap_child(net_child *c, int block)
{
    int status = 0;
    pid_t r;
    do
        r = waitpid(c->pid, &status, block ? 0 : WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->running = 0;
        c->status = r == c->pid ? status : -1;
    }
}

/* Reports children that exited on their own; returns how many did so
 * uncleanly (or at all, unless a stop was asked for). */
static int reap_unexpected(rk_net_procs *p)
{
    int count = 0;
    for (size_t i = 0; i < p->n; i++) {
        net_child *c = &p->children[i];
        if (!c->running)
            continue;
        reap_child(c, 0);
        if (c->running || (net_stop_requested && exited_cleanly(c->status)))
            continue;
        char how[96];
        describe_exit(c->status, how, sizeof how);
        fprintf(stderr, "renkei net: node %s %s\n", c->id, how);
        c->reported = 1;
        count++;
    }
    return count;
}

static size_t count_running(const rk_net_procs *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        n += p->children[i].running ? 1 : 0;
    return n;
}

/* Waits until every child is gone or deadline passes. */
static void await_children(rk_net_procs *p, int64_t deadline)
{
    while (count_running(p) > 0 && rk_mono_ms() < deadline) {
        for (size_t i = 0; i < p->n; i++)
            if (p->children[i].running)
                reap_child(&p->children[i], 0);
        if (count_running(p) > 0)
            tk_sleep_ms(20);
    }
}

rk_rc rk_net_stop(rk_net_procs *p)
{
    if (!p)
        return RK_OK;
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < p->n; i++)
        if (p->children[i].running)
            kill(p->children[i].pid, SIGTERM);
    await_children(p, rk_mono_ms() + NET_STOP_WAIT_MS);
    for (size_t i = 0; i < p->n; i++) {
        net_child *c = &p->children[i];
        if (c->running) {
            fprintf(stderr, "renkei net: node %s did not stop within %d s: killed\n", c->id, NET_STOP_WAIT_MS / 1000);
            kill(c->pid, SIGKILL);
            reap_child(c, 1);
        } else if (!exited_cleanly(c->status) && !c->reported) {
            char how[96];
            describe_exit(c->status, how, sizeof how);
            fprintf(stderr, "renkei net: node %s %s\n", c->id, how);
        }
        if (!exited_cleanly(c->status))
            rc = RK_ERR_UPSTREAM;
    }
    free(p->children);
    free(p);
    return rc;
}

/* ---- health ------------------------------------------------------------------ */

typedef enum { HEALTH_OK, HEALTH_DEGRADED, HEALTH_DOWN } net_health;

static const char *const health_names[] = {"ok", "degraded", "down"};

typedef struct health_ctx {
    rk_registry *reg;
    tk_client op; /* the operator's credential and client */
} health_ctx;

static void health_close(health_ctx *h)
{
    tk_client_close(&h->op);
    rk_registry_free(h->reg);
    memset(h, 0, sizeof *h);
}

/* The registry and a client holding the operator's credentials. */
static rk_rc health_open(const char *dir, health_ctx *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    rk_rc rc = tk_registry_load(dir, &h->reg, err, errlen);
    if (rc == RK_OK && (rc = tk_client_open(dir, "clients/operator", &h->op, err, errlen)) != RK_OK) {
        if (h->op.failed == TK_STEP_CERT)
            set_err(err, errlen, "%s: cannot load the operator certificate: %s", h->op.failed_path, rk_strerror(rc));
        else if (h->op.failed == TK_STEP_KEY)
            set_err(err, errlen, "%s: cannot load the operator key: %s", h->op.failed_path, rk_strerror(rc));
        else if (h->op.failed == TK_STEP_CLIENT)
            set_err(err, errlen, "cannot create a client: %s", rk_strerror(rc));
    }
    if (rc != RK_OK)
        health_close(h);
    return rc;
}

static net_health check_url(health_ctx *h, const char *base, const char *pin, int timeout_ms)
{
    char url[RK_URL_MAX + 16];
    rk_http_result res;
    if (tk_path(url, sizeof url, "%s/healthz", base) != RK_OK)
        return HEALTH_DOWN;
    rk_rc rc = rk_client_call(h->op.client, "GET", url, pin, NULL, 0, timeout_ms, &res);
    net_health health = rc != RK_OK ? HEALTH_DOWN : res.status == 200 ? HEALTH_OK : HEALTH_DEGRADED;
    rk_http_result_clear(&res);
    return health;
}

/* A node with a backup line (the core) is ok when both lines are, down when
 * both are down, degraded otherwise. */
static net_health check_node(health_ctx *h, const rk_peer_node *n, int timeout_ms)
{
    net_health primary = check_url(h, n->url, n->pin, timeout_ms);
    if (!n->backup_url[0])
        return primary;
    net_health backup = check_url(h, n->backup_url, n->pin, timeout_ms);
    if (primary == backup)
        return primary;
    return HEALTH_DEGRADED;
}

/* One round over the nodes not yet healthy; returns how many still are not,
 * naming the first in pending. */
static size_t health_round(health_ctx *h, char *healthy, char *pending, size_t pendlen)
{
    size_t left = 0;
    for (size_t i = 0; i < h->reg->n_nodes; i++) {
        const rk_peer_node *n = &h->reg->nodes[i];
        if (!is_server_role(n->role) || healthy[i])
            continue;
        if (check_node(h, n, NET_HEALTH_CALL_MS) == HEALTH_OK) {
            healthy[i] = 1;
            continue;
        }
        if (left++ == 0)
            set_err(pending, pendlen, "%s", n->id);
    }
    return left;
}

/* Polls until all server nodes are healthy. procs (optional): fails early
 * when one of them exits. Stops early when `net up` is asked to stop. */
static rk_rc wait_healthy(const char *dir, int timeout_ms, rk_net_procs *procs, char *pending, size_t pendlen)
{
    health_ctx h;
    char *healthy = NULL;
    int64_t deadline = rk_mono_ms() + timeout_ms;
    rk_rc rc = health_open(dir, &h, pending, pendlen);
    if (rc != RK_OK)
        return rc;
    if (!(healthy = calloc(h.reg->n_nodes + 1, 1))) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    for (;;) {
        if (health_round(&h, healthy, pending, pendlen) == 0)
            break;
        if ((procs && reap_unexpected(procs) > 0) || net_stop_requested) {
            rc = RK_ERR_UPSTREAM;
            break;
        }
        if (rk_mono_ms() >= deadline) {
            rc = RK_ERR_TIMEOUT;
            break;
        }
        tk_sleep_ms(NET_POLL_MS);
    }
done:
    free(healthy);
    health_close(&h);
    return rc;
}

rk_rc rk_net_wait_healthy(const char *dir, int timeout_ms)
{
    char pending[RK_ID_MAX + 256];
    return wait_healthy(dir, timeout_ms, NULL, pending, sizeof pending);
}

int rk_net_status(const char *dir, FILE *out)
{
    health_ctx h;
    char err[512] = "";
    if (health_open(dir, &h, err, sizeof err) != RK_OK) {
        fprintf(stderr, "renkei net: %s\n", err);
        return 1;
    }
    int width = 4, bad = 0;
    for (size_t i = 0; i < h.reg->n_nodes; i++)
        if (is_server_role(h.reg->nodes[i].role) && (int)strlen(h.reg->nodes[i].id) > width)
            width = (int)strlen(h.reg->nodes[i].id);
    for (size_t i = 0; i < h.reg->n_nodes; i++) {
        const rk_peer_node *n = &h.reg->nodes[i];
        if (!is_server_role(n->role))
            continue;
        net_health health = check_node(&h, n, NET_HEALTH_CALL_MS);
        fprintf(out, "%-*s %-7s %s %s\n", width, n->id, rk_role_name(n->role), n->url, health_names[health]);
        bad |= health != HEALTH_OK;
    }
    fflush(out);
    health_close(&h);
    return bad ? 1 : 0;
}

/* ---- command line -------------------------------------------------------------- */

enum parse_result { PARSE_OK, PARSE_HELP, PARSE_USAGE };

static const char usage_net[] =
    "usage: renkei net COMMAND DIR [options]\n"
    "\n"
    "A whole renkei network in one folder, on 127.0.0.1.\n"
    "\n"
    "commands:\n"
    "  init DIR [--agencies N] [--persons N] [--base-port P]\n"
    "                 write a runnable network (CA, certificates, network.json,\n"
    "                 node configs, permissions.csv, residents.csv) into DIR\n"
    "  up DIR         run every node in the foreground until SIGINT or SIGTERM\n"
    "  status DIR     print each node's health; exit 0 only when all are ok\n"
    "\n"
    "Run 'renkei net COMMAND --help' for the options of a command.\n";

static const char usage_init[] =
    "usage: renkei net init DIR [--agencies N] [--persons N] [--base-port P]\n"
    "\n"
    "Writes a runnable network into DIR (created if missing; refused when\n"
    "DIR/network.json exists): the CA (DIR/pki), every node's certificate, key\n"
    "and node.conf (DIR/nodes/<id>), the business systems' and the operator's\n"
    "credentials (DIR/clients), DIR/network.json, DIR/permissions.csv (copied\n"
    "from $RENKEI_DATA_DIR) and a synthetic DIR/residents.csv.\n"
    "\n"
    "  --agencies N    number of agencies, 2..200 (default 3)\n"
    "  --persons N     synthetic residents, 1..5000000 (default 100)\n"
    "  --base-port P   assign ports P, P+1, … (default: free ephemeral ports)\n"
    "  --help          show this help\n";

static const char usage_up[] =
    "usage: renkei net up DIR\n"
    "\n"
    "Starts every node of the network in DIR (core, jlis, gateways, agency\n"
    "nodes; each one's output appended to DIR/nodes/<id>/node.log), waits until\n"
    "all are healthy and stays in the foreground. SIGINT or SIGTERM stops them\n"
    "all; exit 0 only when every node stopped cleanly.\n";

static const char usage_status[] =
    "usage: renkei net status DIR\n"
    "\n"
    "Calls every node's /healthz with the operator's credentials and prints\n"
    "'<id> <role> <url> ok|degraded|down'; exit 0 only when all are ok.\n";

#define usage_error(...) tk_usage_error("net", __VA_ARGS__)
#define option_error(c, argv) tk_option_error("net", (c), (argv))

/* The one positional DIR after getopt_long. */
static enum parse_result take_dir(int argc, char **argv, const char **dir)
{
    if (optind >= argc) {
        usage_error("missing DIR");
        return PARSE_USAGE;
    }
    if (optind + 1 < argc) {
        usage_error("unexpected argument '%s'", argv[optind + 1]);
        return PARSE_USAGE;
    }
    *dir = argv[optind];
    return PARSE_OK;
}

static enum parse_result parse_init(int argc, char **argv, const char **dir, rk_net_options *o)
{
    static const struct option opts[] = {{"agencies", required_argument, NULL, 'a'},
                                         {"persons", required_argument, NULL, 'p'},
                                         {"base-port", required_argument, NULL, 'b'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h')
            return PARSE_HELP;
        if (c == 'a' && !tk_parse_int(optarg, NET_MIN_AGENCIES, NET_MAX_AGENCIES, &o->agencies))
            return usage_error("--agencies must be %d..%d", NET_MIN_AGENCIES, NET_MAX_AGENCIES), PARSE_USAGE;
        if (c == 'p' && !tk_parse_int(optarg, 1, NET_MAX_PERSONS, &o->persons))
            return usage_error("--persons must be 1..%d", NET_MAX_PERSONS), PARSE_USAGE;
        if (c == 'b' && !tk_parse_int(optarg, 1, 65535, &o->base_port))
            return usage_error("--base-port must be 1..65535"), PARSE_USAGE;
        if (c == '?' || c == ':')
            return option_error(c, argv), PARSE_USAGE;
    }
    return take_dir(argc, argv, dir);
}

static enum parse_result parse_dir_only(int argc, char **argv, const char **dir)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h')
            return PARSE_HELP;
        return option_error(c, argv), PARSE_USAGE;
    }
    return take_dir(argc, argv, dir);
}

static void print_summary(const char *dir, const rk_net_options *o)
{
    printf("network written to %s\n", dir);
    printf("  nodes:    %d servers (core with 2 lines, jlis, %d gateways, %d agency nodes), %d clients\n",
           2 + 2 * o->agencies, o->agencies, o->agencies, o->agencies + 1);
    printf("  agencies: %d (", o->agencies);
    for (int i = 1; i <= o->agencies && i <= NAMED_AGENCIES; i++)
        printf("%s%s %s", i > 1 ? ", " : "", named_agencies[i - 1].id, named_agencies[i - 1].kind);
    if (o->agencies > NAMED_AGENCIES)
        printf(", city-005..city-%03d municipality", o->agencies);
    printf(")\n");
    printf("  persons:  %d\n", o->persons);
    printf("run it with: renkei net up %s\n", dir);
}

static int cmd_init(int argc, char **argv)
{
    rk_net_options o = {.agencies = NET_DEFAULT_AGENCIES, .persons = NET_DEFAULT_PERSONS, .base_port = 0};
    const char *dir = NULL;
    char err[1024] = "";
    enum parse_result pr = parse_init(argc, argv, &dir, &o);
    if (pr == PARSE_HELP)
        return fputs(usage_init, stdout), 0;
    if (pr != PARSE_OK)
        return EXIT_USAGE;
    rk_rc rc = rk_net_init(dir, &o, err, sizeof err);
    if (rc != RK_OK) {
        fprintf(stderr, "renkei net: %s\n", err[0] ? err : rk_strerror(rc));
        return EXIT_FAILURE;
    }
    print_summary(dir, &o);
    return 0;
}

static void on_stop_signal(int sig)
{
    (void)sig;
    net_stop_requested = 1;
}

static void install_stop_handlers(void)
{
    struct sigaction sa = {.sa_handler = on_stop_signal}; /* no SA_RESTART: sleeps end early */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Foreground until a stop signal or until no node is left. */
static int run_until_stopped(rk_net_procs *p)
{
    int failed = 0;
    while (!net_stop_requested && count_running(p) > 0) {
        if (reap_unexpected(p) > 0)
            failed = 1;
        if (!net_stop_requested && count_running(p) > 0)
            tk_sleep_ms(200);
    }
    if (!net_stop_requested)
        fprintf(stderr, "renkei net: no node is left running\n");
    return failed;
}

static int cmd_up(int argc, char **argv)
{
    const char *dir = NULL;
    char exe[PATH_MAX], err[1024] = "";
    rk_net_procs *p = NULL;
    enum parse_result pr = parse_dir_only(argc, argv, &dir);
    if (pr != PARSE_OK)
        return pr == PARSE_HELP ? (fputs(usage_up, stdout), 0) : EXIT_USAGE;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return fprintf(stderr, "renkei net: cannot find my own executable: %s\n", strerror(errno)), EXIT_FAILURE;
    exe[n] = '\0';
    net_stop_requested = 0;
    install_stop_handlers();
    if (rk_net_start(dir, exe, &p, err, sizeof err) != RK_OK)
        return fprintf(stderr, "renkei net: %s\n", err), EXIT_FAILURE;
    int failed = 0;
    rk_rc rc = wait_healthy(dir, NET_UP_HEALTH_MS, p, err, sizeof err);
    if (rc == RK_OK) {
        printf("network up: %zu nodes (%s)\n", p->n, dir);
        fflush(stdout);
        failed = run_until_stopped(p);
    } else if (!net_stop_requested) {
        failed = 1;
        if (rc == RK_ERR_TIMEOUT)
            fprintf(stderr, "renkei net: the network is not healthy after %d s (%s is not)\n",
                    NET_UP_HEALTH_MS / 1000, err);
        else if (rc == RK_ERR_UPSTREAM)
            fprintf(stderr, "renkei net: a node exited during start-up; stopping the others\n");
        else
            fprintf(stderr, "renkei net: %s\n", err);
    }
    rc = rk_net_stop(p);
    return rc == RK_OK && !failed ? 0 : EXIT_FAILURE;
}

static int cmd_status(int argc, char **argv)
{
    const char *dir = NULL;
    enum parse_result pr = parse_dir_only(argc, argv, &dir);
    if (pr != PARSE_OK)
        return pr == PARSE_HELP ? (fputs(usage_status, stdout), 0) : EXIT_USAGE;
    return rk_net_status(dir, stdout) == 0 ? 0 : EXIT_FAILURE;
}

int rk_cmd_net(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing command (init, up or status)");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
        return fputs(usage_net, stdout), 0;
    if (strcmp(cmd, "init") == 0)
        return cmd_init(argc - 1, argv + 1);
    if (strcmp(cmd, "up") == 0)
        return cmd_up(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", cmd);
}
