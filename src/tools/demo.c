/* demo.c — `renkei demo [--keep] [--persons N]` (DESIGN §5).
 *
 * Builds a whole network in a temporary folder (rk_net_init: a CA, the core
 * with its two lines, J-LIS, three agencies of different kinds with their
 * gateways and agency nodes, synthetic residents), starts it on 127.0.0.1,
 * and runs the flows as the agencies' business systems would, saying in
 * plain words what happened:
 *
 *   1. the network that was built and started;
 *   2. code acquisition (DESIGN §2.1): resident #1 at all three agencies,
 *      residents #2..#4 at one each; every code read back from the agency
 *      node's database; the three codes of resident #1 checked to differ
 *      and every check code checked against the core's record (第8-2(1)イ);
 *   3. refusals: an invalid My Number and one that no resident has;
 *   (request and provision: demo_exchanges, added with the exchange flow;)
 *   4. stopping every node (each must exit 0) and removing the folder.
 *
 * No My Number is ever printed: residents are "resident #1" etc., and the
 * buffers that held a number are wiped. Exit 0 only when every step did
 * what it should; the network is stopped whatever failed. */
#include "tools/demo.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agency/agency_store.h"
#include "core/core_store.h"
#include "lib/csv.h"
#include "lib/mynumber.h"
#include "node/config.h"
#include "node/incidents.h"
#include "store/db.h"
#include "crypto/pki.h"
#include "lib/util.h"
#include "tools/toolkit.h"
#include "tools/tools.h"

#define EXIT_USAGE 2
#define DEMO_DEFAULT_PERSONS 50
#define DEMO_MAX_PERSONS 5000000
#define DEMO_HEALTHY_MS 60000
#define DEMO_CALL_MS 15000
#define DEMO_LINK_WAIT_MS 20000
#define DEMO_POLL_MS 100
#define DEMO_TRIES 5           /* POST attempts on 503 or no answer */
#define DEMO_RETRY_FIRST_MS 200 /* doubling */
#define DEMO_CODE_SHOWN 16     /* characters of a code shown, then "…" */
#define DEMO_LINE_CAP 4096
#define DEMO_INVALID_NUMBER "123456789017" /* check digit should be 8 */

static const struct {
    const char *id, *prefix;
} demo_agency_ids[DEMO_AGENCIES] = {
    {"city-yokohama", "Y"},
    {"pref-kanagawa", "K"},
    {"nenkin-kikou", "N"},
};

/* Who is enrolled where: resident #1 at every agency (one person, three
 * codes), the others at one agency each. */
static const struct {
    int agency, resident;
} demo_plan[DEMO_ENROLMENTS] = {{0, 1}, {1, 1}, {2, 1}, {0, 2}, {1, 3}, {2, 4}};

static const char usage_demo[] =
    "usage: renkei demo [--keep] [--persons N]\n"
    "\n"
    "Builds a whole renkei network in a temporary folder ($TMPDIR or /tmp,\n"
    "renkei-demo-XXXXXX): a CA, the core with its two lines, J-LIS, three\n"
    "agencies of different kinds (city-yokohama municipality, pref-kanagawa\n"
    "prefecture, nenkin-kikou pension), each with its gateway and agency node,\n"
    "and synthetic residents. Starts it on 127.0.0.1, runs the flows as the\n"
    "agencies' business systems would, and says in plain words what happened:\n"
    "\n"
    "  code acquisition  residents enrolled at the agencies; one resident at all\n"
    "                    three gets three different, unlinkable codes\n"
    "  refusals          an invalid My Number, and a valid one no resident has\n"
    "  exchanges         a permitted request and the value the requester received,\n"
    "                    a request the permission table refuses, one with no data,\n"
    "                    and the three nodes' records of one exchange side by side\n"
    "\n"
    "Then stops every node and removes the folder. No My Number is printed.\n"
    "\n"
    "  --keep         keep the folder (network, databases, node logs) and say where\n"
    "  --persons N    synthetic residents, 4..5000000 (default 50)\n"
    "  --help         show this help\n"
    "\n"
    "Exit 0 only when every step did what it should, 1 otherwise, 2 on a usage error.\n";

/* ---- small helpers ------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static rk_rc remove_tree(const char *dir)
{
    return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? RK_OK : RK_ERR_IO;
}

void demo_step_begin(demo *d, const char *title)
{
    d->step++;
    printf("\n%d. %s\n", d->step, title);
    fflush(stdout);
}

rk_rc demo_fail(demo *d, rk_rc rc, const char *f, ...)
{
    char msg[sizeof d->failure];
    va_list ap;
    va_start(ap, f);
    vsnprintf(msg, sizeof msg, f, ap);
    va_end(ap);
    printf("   FAILED: %s\n", msg);
    fflush(stdout);
    if (!d->failed_step) {
        d->failed_step = d->step;
        snprintf(d->failure, sizeof d->failure, "%s", msg);
    }
    if (d->last_failed_step != d->step) {
        d->last_failed_step = d->step;
        d->n_failed_steps++;
    }
    return rc == RK_OK ? RK_ERR_INVALID : rc;
}

/* ---- step 1: the network ------------------------------------------------- */

static rk_rc make_folder(demo *d)
{
    char err[TK_PATH_CAP + 64];
    rk_rc rc = tk_temp_dir("renkei-demo", d->dir, sizeof d->dir, err, sizeof err);
    return rc == RK_OK ? RK_OK : demo_fail(d, rc, "%s", err);
}

static rk_rc start_network(demo *d)
{
    char exe[PATH_MAX], err[1024] = "", path[DEMO_PATH_CAP];
    rk_net_options opt = {.agencies = DEMO_AGENCIES, .persons = d->persons};
    rk_rc rc = rk_net_init(d->dir, &opt, err, sizeof err);
    if (rc != RK_OK)
        return demo_fail(d, rc, "cannot write the network: %s", err[0] ? err : rk_strerror(rc));
    if ((rc = tk_path(path, sizeof path, "%s/network.json", d->dir)) != RK_OK ||
        (rc = rk_registry_load(path, &d->reg, err, sizeof err)) != RK_OK)
        return demo_fail(d, rc, "cannot read network.json: %s", err[0] ? err : rk_strerror(rc));
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return demo_fail(d, RK_ERR_IO, "cannot find my own executable: %s", strerror(errno));
    exe[n] = '\0';
    if ((rc = rk_net_start(d->dir, exe, &d->procs, err, sizeof err)) != RK_OK)
        return demo_fail(d, rc, "cannot start the nodes: %s", err[0] ? err : rk_strerror(rc));
    if ((rc = rk_net_wait_healthy(d->dir, DEMO_HEALTHY_MS)) != RK_OK)
        return demo_fail(d, rc, "the nodes did not all answer /healthz within %d s (logs: nodes/<id>/node.log)",
                         DEMO_HEALTHY_MS / 1000);
    return RK_OK;
}

static int id_width(const rk_registry *reg)
{
    int w = 4;
    for (size_t i = 0; i < reg->n_nodes; i++)
        if ((int)strlen(reg->nodes[i].id) > w)
            w = (int)strlen(reg->nodes[i].id);
    return w;
}

static rk_rc print_network(demo *d)
{
    const rk_peer_node *core = rk_registry_find(d->reg, RK_ROLE_CORE, NULL);
    const rk_peer_node *jlis = rk_registry_find(d->reg, RK_ROLE_JLIS, NULL);
    int w = id_width(d->reg);
    if (!core || !jlis)
        return demo_fail(d, RK_ERR_CONFIG, "network.json has no %s", core ? "J-LIS" : "core");
    printf("   core system   %-*s  %s  primary line\n", w, core->id, core->url);
    printf("                 %-*s  %s  backup line\n", w, "", core->backup_url);
    printf("   J-LIS         %-*s  %s  resident registry, %d synthetic residents\n", w, jlis->id, jlis->url,
           d->persons);
    for (int i = 0; i < DEMO_AGENCIES; i++) {
        const char *id = demo_agency_ids[i].id;
        const rk_peer_node *gw = rk_registry_find(d->reg, RK_ROLE_GATEWAY, id);
        const rk_peer_node *node = rk_registry_find(d->reg, RK_ROLE_AGENCY, id);
        if (!gw || !node)
            return demo_fail(d, RK_ERR_CONFIG, "network.json has no %s for agency %s", gw ? "agency node" : "gateway",
                             id);
        printf("   %s (%s)\n", id, node->kind);
        printf("     gateway     %-*s  %s  its only line to the core\n", w, gw->id, gw->url);
        printf("     agency node %-*s  %s  its business systems' API\n", w, node->id, node->url);
    }
    printf("   One CA issued every certificate; every call is TLS 1.3 with a client certificate.\n");
    printf("   All %zu nodes are running and answer /healthz.\n", rk_net_count(d->procs));
    fflush(stdout);
    return RK_OK;
}

static rk_rc step_network(demo *d)
{
    demo_step_begin(d, "The network");
    rk_rc rc = make_folder(d);
    if (rc != RK_OK)
        return rc;
    printf("   built in %s, all on 127.0.0.1:\n", d->dir);
    fflush(stdout);
    if ((rc = start_network(d)) != RK_OK)
        return rc;
    return print_network(d);
}

/* ---- agencies' business systems ------------------------------------------ */

static rk_rc open_agency(demo *d, int i)
{
    demo_agency *a = &d->agencies[i];
    a->id = demo_agency_ids[i].id;
    a->prefix = demo_agency_ids[i].prefix;
    if (!(a->node = rk_registry_find(d->reg, RK_ROLE_AGENCY, a->id)))
        return demo_fail(d, RK_ERR_CONFIG, "network.json has no agency node for %s", a->id);
    char client_dir[DEMO_PATH_CAP];
    rk_rc rc = tk_path(client_dir, sizeof client_dir, "clients/%s", a->id);
    if (rc == RK_OK)
        rc = tk_client_open(d->dir, client_dir, &a->cred, NULL, 0);
    if (rc != RK_OK)
        return demo_fail(d, rc, "cannot load the business system credential of %s: %s", a->id, rk_strerror(rc));
    return RK_OK;
}

static void close_agencies(demo *d)
{
    for (int i = 0; i < DEMO_AGENCIES; i++) {
        tk_client_close(&d->agencies[i].cred);
    }
}

rk_rc demo_call(demo *d, int agency, const char *method, const char *path, const char *body, rk_http_result *out)
{
    demo_agency *a = &d->agencies[agency];
    char url[RK_URL_MAX + 128];
    memset(out, 0, sizeof *out);
    if (!a->cred.client || tk_path(url, sizeof url, "%s%s", a->node->url, path) != RK_OK)
        return RK_ERR_INVALID;
    return rk_client_call(a->cred.client, method, url, a->node->pin, body, body ? strlen(body) : 0, DEMO_CALL_MS, out);
}

/* The node's error code and message from {"error":{"code","message"}}. */
static void answer_error(const rk_http_result *res, char *code, size_t codelen, char *msg, size_t msglen)
{
    json_t *j = res->body ? json_loads(res->body, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *c = json_string_value(json_object_get(e, "code"));
    const char *m = json_string_value(json_object_get(e, "message"));
    snprintf(code, codelen, "%s", c ? c : "(no error code)");
    snprintf(msg, msglen, "%s", m ? m : "(no message)");
    json_decref(j);
}

/* The "status" of a {"person","status"} answer into out ("" when none). */
static void answer_status(const rk_http_result *res, char *out, size_t outlen)
{
    json_t *j = res->body ? json_loads(res->body, 0, NULL) : NULL;
    const char *s = json_string_value(json_object_get(j, "status"));
    snprintf(out, outlen, "%s", s ? s : "");
    json_decref(j);
}

/* ---- residents ----------------------------------------------------------- */

/* Where the basic items are in residents.csv's header (-1: absent). */
typedef struct item_columns {
    int n, name, birth_date, sex, address;
} item_columns;

static int read_header(char *line, item_columns *c)
{
    char *f[16];
    line[strcspn(line, "\r\n")] = '\0';
    int n = rk_csv_split(line, f, 16);
    *c = (item_columns){.n = n, .name = -1, .birth_date = -1, .sex = -1, .address = -1};
    for (int i = 2; i < n && i < 16; i++) {
        if (strcmp(f[i], "name") == 0)
            c->name = i;
        else if (strcmp(f[i], "birth_date") == 0)
            c->birth_date = i;
        else if (strcmp(f[i], "sex") == 0)
            c->sex = i;
        else if (strcmp(f[i], "address") == 0)
            c->address = i;
    }
    return n >= 2 && n <= 16 && c->name > 0 && c->birth_date > 0 && c->sex > 0 && c->address > 0 ? 0 : -1;
}

/* One row: the My Number into number (the caller wipes it), the resident
 * code, check code and basic items into r. */
static rk_rc read_row(char *line, const item_columns *c, char number[16], demo_resident *r)
{
    char *f[16];
    line[strcspn(line, "\r\n")] = '\0';
    if (rk_csv_split(line, f, 16) != c->n || strlen(f[0]) != 12 || strlen(f[1]) != 11)
        return RK_ERR_INVALID;
    memcpy(number, f[0], 13);
    memcpy(r->resident_code, f[1], 12);
    if ((r->check_code = rk_mynumber_check_code(number)) < 0 ||
        tk_path(r->name, sizeof r->name, "%s", f[c->name]) != RK_OK ||
        tk_path(r->birth_date, sizeof r->birth_date, "%s", f[c->birth_date]) != RK_OK ||
        tk_path(r->sex, sizeof r->sex, "%s", f[c->sex]) != RK_OK ||
        tk_path(r->address, sizeof r->address, "%s", f[c->address]) != RK_OK)
        return RK_ERR_INVALID;
    return RK_OK;
}

/* Residents #1..#4 of residents.csv: their My Numbers into numbers (the
 * caller wipes them), their resident codes, check codes and basic items
 * into d. */
static rk_rc read_residents(demo *d, char numbers[DEMO_RESIDENTS][16])
{
    char path[DEMO_PATH_CAP], line[DEMO_LINE_CAP];
    item_columns cols;
    int n = 0;
    rk_rc rc = tk_path(path, sizeof path, "%s/residents.csv", d->dir);
    FILE *f = rc == RK_OK ? fopen(path, "r") : NULL;
    if (!f)
        return demo_fail(d, RK_ERR_IO, "cannot read residents.csv");
    if (!fgets(line, sizeof line, f) || read_header(line, &cols) != 0)
        rc = RK_ERR_INVALID;
    while (rc == RK_OK && n < DEMO_RESIDENTS && fgets(line, sizeof line, f))
        if ((rc = read_row(line, &cols, numbers[n], &d->residents[n])) == RK_OK)
            n++;
    rk_wipe(line, sizeof line);
    fclose(f);
    if (rc == RK_OK && n < DEMO_RESIDENTS)
        rc = RK_ERR_INVALID;
    return rc == RK_OK ? RK_OK : demo_fail(d, rc, "residents.csv: resident #%d is not a valid row", n + 1);
}

/* True when a row of residents.csv starts with number. */
static int resident_listed(const demo *d, const char *number)
{
    char path[DEMO_PATH_CAP], line[DEMO_LINE_CAP];
    int found = 0;
    FILE *f = tk_path(path, sizeof path, "%s/residents.csv", d->dir) == RK_OK ? fopen(path, "r") : NULL;
    if (!f)
        return 1; /* cannot tell: treat as listed */
    while (!found && fgets(line, sizeof line, f))
        found = strncmp(line, number, 12) == 0 && line[12] == ',';
    rk_wipe(line, sizeof line);
    fclose(f);
    return found;
}

/* A valid My Number (11 digits + check digit, 省令第5条) that no resident has. */
static rk_rc unknown_number(const demo *d, char out[16])
{
    for (long long i = 10000000000LL; i < 10000001000LL; i++) {
        snprintf(out, 16, "%011lld", i);
        out[11] = (char)('0' + rk_mynumber_check_digit(out));
        out[12] = '\0';
        if (!resident_listed(d, out))
            return RK_OK;
    }
    return RK_ERR_NOT_FOUND;
}

/* ---- step 2: code acquisition -------------------------------------------- */

/* POST /v1/persons {"person","my_number","name","birth_date"[,"sex"],"address"}
 * with who's basic items; retried on 503 or no answer. The body is wiped
 * once sent (it held the My Number). */
static rk_rc post_person(demo *d, int agency, const char *person, const char *number, const demo_resident *who,
                         rk_http_result *res)
{
    json_t *msg = json_pack("{s:s,s:s,s:s,s:s,s:s}", "person", person, "my_number", number, "name", who->name,
                            "birth_date", who->birth_date, "address", who->address);
    if (msg && who->sex[0])
        json_object_set_new(msg, "sex", json_string(who->sex));
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    rk_rc rc = body ? RK_OK : RK_ERR_NOMEM;
    for (int t = 0, pause = DEMO_RETRY_FIRST_MS; rc == RK_OK && t < DEMO_TRIES; t++, pause *= 2) {
        rk_http_result_clear(res);
        rk_rc call = demo_call(d, agency, "POST", "/v1/persons", body, res);
        if (call == RK_OK && res->status != 503)
            break;
        if (t + 1 == DEMO_TRIES)
            rc = call;
        else
            tk_sleep_ms(pause);
    }
    if (body) {
        rk_wipe(body, strlen(body));
        free(body);
    }
    return rc;
}

static rk_rc enrol(demo *d, demo_enrolment *e, const char *number)
{
    rk_http_result res = {0};
    char code[64], msg[256];
    rk_rc rc = post_person(d, e->agency, e->person, number, &d->residents[e->resident - 1], &res);
    if (rc != RK_OK) {
        rc = demo_fail(d, rc, "%s did not answer the enrolment of %s: %s", d->agencies[e->agency].id, e->person,
                       rk_strerror(rc));
    } else if (res.status != 202) {
        answer_error(&res, code, sizeof code, msg, sizeof msg);
        rc = demo_fail(d, RK_ERR_UPSTREAM, "%s refused %s: HTTP %ld %s: %s", d->agencies[e->agency].id, e->person,
                       res.status, code, msg);
    } else {
        answer_status(&res, e->status, sizeof e->status);
    }
    rk_http_result_clear(&res);
    return rc;
}

/* Polls GET /v1/persons/{person} until linked or failed, or the timeout. */
static rk_rc wait_linked(demo *d, demo_enrolment *e)
{
    char path[64];
    int64_t deadline = rk_mono_ms() + DEMO_LINK_WAIT_MS;
    rk_rc rc = tk_path(path, sizeof path, "/v1/persons/%s", e->person);
    while (rc == RK_OK) {
        rk_http_result res;
        if (demo_call(d, e->agency, "GET", path, NULL, &res) == RK_OK && res.status == 200)
            answer_status(&res, e->status, sizeof e->status);
        rk_http_result_clear(&res);
        if (strcmp(e->status, "linked") == 0 || strcmp(e->status, "failed") == 0 || rk_mono_ms() >= deadline)
            break;
        tk_sleep_ms(DEMO_POLL_MS);
    }
    if (strcmp(e->status, "linked") != 0)
        return demo_fail(d, RK_ERR_TIMEOUT, "%s %s is %s, not linked, after %d s", d->agencies[e->agency].id,
                         e->person, e->status[0] ? e->status : "unknown", DEMO_LINK_WAIT_MS / 1000);
    return RK_OK;
}

/* ---- reading the nodes' stores (read-only, through their store modules) ---- */

/* The store a node's configuration names (DESIGN §6), so that the demo
 * reads where the node writes, whatever the engine. */
static rk_rc node_store(const demo *d, const char *node_id, char *target, size_t len)
{
    char path[DEMO_PATH_CAP], err[256];
    rk_node_config cfg;
    if (tk_path(path, sizeof path, "%s/nodes/%s/node.conf", d->dir, node_id) != RK_OK ||
        rk_config_load(path, &cfg, err, sizeof err) != RK_OK)
        return RK_ERR_CONFIG;
    return tk_path(target, len, "%s", cfg.db);
}

static rk_rc open_agency_store(const demo *d, int agency, agency_store **out)
{
    char target[RK_PATH_MAX];
    const rk_peer_node *node = d->agencies[agency].node;
    rk_rc rc = node_store(d, node->id, target, sizeof target);
    return rc == RK_OK ? agency_store_open(target, RK_DB_READONLY, node->id, out) : rc;
}

/* The code each agency holds, and whether it recorded a check-code
 * mismatch, from its node's store. */
static rk_rc read_codes(demo *d)
{
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < d->n_enrolments; i++) {
        demo_enrolment *e = &d->enrolments[i];
        agency_store *s = NULL;
        rk_rc r = open_agency_store(d, e->agency, &s);
        if (r == RK_OK)
            r = agency_store_code_of(s, e->person, e->code, sizeof e->code);
        if (r == RK_OK)
            e->mismatches = rk_incidents_count_kind(agency_store_db(s), "check_code_mismatch");
        agency_store_close(s);
        if (r != RK_OK)
            rc = demo_fail(d, r, "cannot read the code of %s from %s's store: %s", e->person,
                           d->agencies[e->agency].id, rk_strerror(r));
    }
    return rc;
}

/* For each linked person: the check code the core sent (its record of what
 * J-LIS computed) equals the one the agency computed from the My Number,
 * and the agency recorded no check-code mismatch. */
static rk_rc check_codes(demo *d, core_store *core)
{
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < d->n_enrolments; i++) {
        demo_enrolment *e = &d->enrolments[i];
        const demo_resident *r = &d->residents[e->resident - 1];
        int64_t count = 0;
        int lo = -1, hi = -1;
        rk_rc q = core_store_acquisitions_of(core, d->agencies[e->agency].id, r->resident_code, &count, &lo, &hi);
        e->check_ok = q == RK_OK && count >= 1 && lo == r->check_code && hi == r->check_code &&
                      e->mismatches == 0 && strcmp(e->status, "linked") == 0;
        if (!e->check_ok)
            rc = demo_fail(d, q == RK_OK ? RK_ERR_CONFLICT : q, "%s %s: the check code was not shown to match",
                           d->agencies[e->agency].id, e->person);
    }
    return rc;
}

/* Resident #1: three different codes, yet one person at the core. */
static rk_rc check_unlinkable(demo *d, core_store *core)
{
    const demo_enrolment *e = d->enrolments;
    int64_t persons = 0, agencies = 0;
    for (int i = 0; i < DEMO_AGENCIES; i++)
        for (int j = i + 1; j < DEMO_AGENCIES; j++)
            if (!e[i].code[0] || strcmp(e[i].code, e[j].code) == 0)
                return demo_fail(d, RK_ERR_CONFLICT, "resident #1 does not hold a different code at each agency");
    rk_rc rc = core_store_person_spread(core, d->residents[0].resident_code, &persons, &agencies);
    if (rc != RK_OK || persons != 1 || agencies != DEMO_AGENCIES)
        return demo_fail(d, rc, "the core does not know resident #1 as one person at %d agencies", DEMO_AGENCIES);
    return RK_OK;
}

static void print_codes(const demo *d)
{
    printf("   %-14s %-7s %-12s %-7s %-11s %s\n", "agency", "person", "who", "status", "check code",
           "code held by the agency");
    for (size_t i = 0; i < d->n_enrolments; i++) {
        const demo_enrolment *e = &d->enrolments[i];
        char who[16];
        snprintf(who, sizeof who, "resident #%d", e->resident);
        printf("   %-14s %-7s %-12s %-7s %-11s %.*s%s\n", d->agencies[e->agency].id, e->person, who,
               e->status[0] ? e->status : "-", e->check_ok ? "matched" : "NOT SHOWN", DEMO_CODE_SHOWN,
               e->code[0] ? e->code : "-", strlen(e->code) > DEMO_CODE_SHOWN ? "…" : "");
    }
}

/* Sends every enrolment, then waits for each to be linked. */
static rk_rc enrol_all(demo *d)
{
    char numbers[DEMO_RESIDENTS][16];
    rk_rc rc = read_residents(d, numbers);
    for (int i = 0; rc == RK_OK && i < DEMO_ENROLMENTS; i++) {
        demo_enrolment *e = &d->enrolments[d->n_enrolments++];
        e->agency = demo_plan[i].agency;
        e->resident = demo_plan[i].resident;
        tk_path(e->person, sizeof e->person, "%s-%04d", d->agencies[e->agency].prefix, e->resident);
        if (enrol(d, e, numbers[e->resident - 1]) != RK_OK)
            rc = RK_ERR_UPSTREAM;
    }
    rk_wipe(numbers, sizeof numbers);
    for (size_t i = 0; i < d->n_enrolments; i++)
        if (d->enrolments[i].status[0] && wait_linked(d, &d->enrolments[i]) != RK_OK)
            rc = RK_ERR_TIMEOUT;
    return rc;
}

static rk_rc step_codes(demo *d)
{
    core_store *core = NULL;
    char target[RK_PATH_MAX];
    demo_step_begin(d, "Code acquisition: each agency's business system enrols residents (POST /v1/persons)");
    rk_rc rc = RK_OK;
    for (int i = 0; i < DEMO_AGENCIES && rc == RK_OK; i++)
        rc = open_agency(d, i);
    if (rc != RK_OK)
        return rc;
    rc = enrol_all(d);
    if (read_codes(d) != RK_OK)
        rc = RK_ERR_STORE;
    const rk_peer_node *core_node = rk_registry_find(d->reg, RK_ROLE_CORE, NULL);
    if (!core_node || node_store(d, core_node->id, target, sizeof target) != RK_OK ||
        core_store_open(target, RK_DB_READONLY, &core) != RK_OK) {
        rc = demo_fail(d, RK_ERR_STORE, "cannot open the core's database");
    } else {
        rk_rc checks = check_codes(d, core);
        print_codes(d);
        if (checks != RK_OK || check_unlinkable(d, core) != RK_OK)
            rc = RK_ERR_CONFLICT;
    }
    core_store_close(core);
    if (rc == RK_OK) {
        printf("   Each enrolment carried the person's 4 basic items (氏名, 生年月日, 性別, 住所); J-LIS\n"
               "   found them equal to its registry's before it relayed the acquisition.\n");
        printf("   Resident #1 holds a different code at each of the three agencies, yet is one person\n"
               "   at the core: no agency can link its code to another's without the core's key.\n"
               "   Check codes: for all %zu links, the check code the core sent (as J-LIS computed it)\n"
               "   equals the one the agency computed from the My Number (sum of the first 11 digits\n"
               "   mod 10); a person is linked only on a match (第8-2(1)イ); no agency recorded a mismatch.\n",
               d->n_enrolments);
    }
    fflush(stdout);
    return rc;
}

/* ---- step 3: refusals ---------------------------------------------------- */

/* Enrols person with number and who's items at the first agency; expects
 * HTTP want with error code want_code, and that nothing was linked: the
 * person unknown (404), or failed for want_reason. */
static rk_rc refuse(demo *d, const char *what, const char *person, const char *number, const demo_resident *who,
                    long want, const char *want_code, const char *want_reason)
{
    rk_http_result res = {0}, get = {0};
    char code[64] = "", msg[256] = "", path[64], after[64] = "";
    rk_rc rc = post_person(d, 0, person, number, who, &res);
    if (rc == RK_OK)
        answer_error(&res, code, sizeof code, msg, sizeof msg);
    printf("   %-42s %3ld %s\n", what, res.status, code);
    if (rc != RK_OK)
        rc = demo_fail(d, rc, "%s: no answer: %s", what, rk_strerror(rc));
    else if (res.status != want || strcmp(code, want_code) != 0)
        rc = demo_fail(d, RK_ERR_INVALID, "%s: expected %ld %s, got %ld %s: %s", what, want, want_code, res.status,
                       code, msg);
    else if (tk_path(path, sizeof path, "/v1/persons/%s", person) != RK_OK ||
             demo_call(d, 0, "GET", path, NULL, &get) != RK_OK)
        rc = demo_fail(d, RK_ERR_UPSTREAM, "%s: cannot read person %s back", what, person);
    if (rc == RK_OK && get.status == 200 && get.body) {
        json_t *j = json_loads(get.body, 0, NULL);
        tk_path(after, sizeof after, "%s/%s", json_string_value(json_object_get(j, "status")) ?: "",
                json_string_value(json_object_get(j, "reason")) ?: "");
        json_decref(j);
    }
    if (rc == RK_OK && (want_reason ? strncmp(after, "failed/", 7) != 0 || strcmp(after + 7, want_reason) != 0
                                    : get.status != 404))
        rc = demo_fail(d, RK_ERR_CONFLICT, "%s: person %s was stored anyway (HTTP %ld %s)", what, person, get.status,
                       after);
    rk_http_result_clear(&res);
    rk_http_result_clear(&get);
    return rc;
}

static rk_rc step_refusals(demo *d)
{
    char number[16], numbers[DEMO_RESIDENTS][16];
    demo_step_begin(d, "Refusals: enrolments that must not succeed");
    if (!d->agencies[0].cred.client)
        return demo_fail(d, RK_ERR_CONFIG, "no business system credential to call with");
    rk_rc rc = unknown_number(d, number);
    if (rc != RK_OK)
        return demo_fail(d, rc, "cannot find a valid My Number that no resident has");
    if ((rc = read_residents(d, numbers)) != RK_OK)
        return rc;
    /* resident #3 enrolled with resident #2's My Number: 2023's mislinking */
    const demo_resident *other = &d->residents[2];
    printf("   %-42s %s\n", "sent to city-yokohama's node", "answer: HTTP status, error code");
    if (refuse(d, "a My Number with a wrong check digit", "Y-BADNUM", DEMO_INVALID_NUMBER, &d->residents[0], 400,
               "invalid_my_number", NULL) != RK_OK)
        rc = RK_ERR_INVALID;
    if (refuse(d, "a valid My Number no resident has", "Y-NOBODY", number, &d->residents[0], 404, "unknown_person",
               NULL) != RK_OK)
        rc = RK_ERR_INVALID;
    if (refuse(d, "resident #3 with resident #2's My Number", "Y-WRONG", numbers[1], other, 409,
               "basic_info_mismatch", "basic_info_mismatch") != RK_OK)
        rc = RK_ERR_INVALID;
    rk_wipe(number, sizeof number);
    rk_wipe(numbers, sizeof numbers);
    if (rc == RK_OK)
        printf("   All were refused with a reason and none was linked; the last is kept as failed\n"
               "   (basic_info_mismatch): J-LIS's registry holds other basic items for that number.\n");
    fflush(stdout);
    return rc;
}

/* ---- last step: stop ----------------------------------------------------- */

static rk_rc step_stop(demo *d)
{
    rk_rc rc = RK_OK;
    size_t n = rk_net_count(d->procs);
    demo_step_begin(d, "Stopping the network");
    fflush(stdout);
    close_agencies(d);
    rk_rc stopped = rk_net_stop(d->procs); /* names any unclean node on stderr */
    d->procs = NULL;
    if (stopped != RK_OK)
        rc = demo_fail(d, stopped, "not every node exited cleanly (see above and nodes/<id>/node.log)");
    else if (n)
        printf("   All %zu nodes stopped cleanly (each exited 0).\n", n);
    else
        printf("   No node was running.\n");
    if (!d->dir[0]) {
        /* no folder was made */
    } else if (d->keep) {
        printf("   Kept the folder: %s\n   (network.json, nodes/<id>/node.db and node.log; run it again with:"
               " renkei net up %s)\n", d->dir, d->dir);
    } else if (remove_tree(d->dir) != RK_OK) {
        rc = demo_fail(d, RK_ERR_IO, "cannot remove %s: %s", d->dir, strerror(errno));
    } else {
        printf("   Removed the folder %s.\n", d->dir);
    }
    fflush(stdout);
    return rc;
}

/* ---- command line -------------------------------------------------------- */

#define usage_error(...) tk_usage_error("demo", __VA_ARGS__)

/* A step that failed without saying why still counts as failed. */
static rk_rc settle(demo *d, rk_rc rc)
{
    if (rc != RK_OK && d->last_failed_step != d->step)
        demo_fail(d, rc, "%s", rk_strerror(rc));
    return rc;
}

/* -1 to go on; otherwise the exit code. */
static int parse_args(int argc, char **argv, demo *d)
{
    static const struct option opts[] = {{"keep", no_argument, NULL, 'k'},
                                         {"persons", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h')
            return fputs(usage_demo, stdout), 0;
        if (c == 'k') {
            d->keep = 1;
            continue;
        }
        if (c == 'p') {
            if (!tk_parse_int(optarg, DEMO_RESIDENTS, DEMO_MAX_PERSONS, &d->persons))
                return usage_error("--persons must be %d..%d", DEMO_RESIDENTS, DEMO_MAX_PERSONS);
            continue;
        }
        if (c == ':')
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        return usage_error("unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    return -1;
}

int rk_cmd_demo(int argc, char **argv)
{
    demo *d = calloc(1, sizeof *d);
    if (!d)
        return fputs("renkei demo: out of memory\n", stderr), EXIT_FAILURE;
    d->persons = DEMO_DEFAULT_PERSONS;
    int code = parse_args(argc, argv, d);
    if (code >= 0)
        goto done;
    printf("renkei demo: a whole Information Provision Network on this machine\n");
    if (settle(d, step_network(d)) == RK_OK) {
        settle(d, step_codes(d));
        settle(d, step_refusals(d));
        settle(d, demo_exchanges(d));
        settle(d, demo_held(d));
    }
    settle(d, step_stop(d));
    if (d->failed_step) {
        printf("\n");
        fflush(stdout);
        fprintf(stderr, "demo: step %d failed: %s%s\n", d->failed_step, d->failure,
                d->n_failed_steps > 1 ? " (and later steps failed too; see above)" : "");
        code = EXIT_FAILURE;
    } else {
        printf("\ndemo: all %d steps did what they should\n", d->step);
        code = 0;
    }
done:
    close_agencies(d);
    rk_registry_free(d->reg);
    free(d);
    return code;
}
