/* ppc.c — the `ppc` role (DESIGN §1, §4): 個人情報保護委員会's register of
 * 特定個人情報保護評価 (法28条). For each agency and business it keeps the
 * state of the agency's evaluation — published, lapsed or breach — with the
 * date it was evaluated on; the core polls the changes and refuses an
 * exchange under a business whose requester or provider has no published
 * evaluation (法21条, core/pia.c).
 *
 * PUT /v1/pia/{agency}/{business} (caller: the register's operator, role
 * ppc-operator, whose credential opens this route and no other, net/authz.c)
 * `{"state","evaluated_on"}`: 404 unknown_agency (no agency node in the
 * registry) or unknown_business (no row of [ppc] permissions names it), 400
 * invalid_field for a state or a date that is not one; the same state and
 * date again change nothing. GET /v1/pia?since=SERIAL[&limit=N] (caller:
 * the core): the entries changed after that serial, in serial order. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/csv.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/util.h"
#include "node/node.h"
#include "ppc/ppc_store.h"
#include "roles.h"

#define PPC_PAGE_MAX 1000            /* entries of one GET /v1/pia answer */
#define PPC_INITIAL_MAX 1000000      /* rows of [ppc] initial */
#define PPC_INITIAL_CAP (64u << 20)  /* its bytes */
#define PPC_PERMISSIONS_CAP (16u << 20) /* [ppc] permissions' bytes */

typedef struct ppc {
    rk_node *node;
    ppc_store *store;
    char **businesses; /* the permission table's businesses, sorted, each once */
    size_t n_businesses;
} ppc;

/* ---------- the businesses the register knows ([ppc] permissions) ---------- */

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int known_business(const ppc *p, const char *business)
{
    return rk_catalogue_id_valid(business) &&
           bsearch(&business, p->businesses, p->n_businesses, sizeof *p->businesses, str_cmp) != NULL;
}

/* The column `business` of the permission table (DESIGN §5: header
 * requester_kind,business,provider_kind,item, more columns may follow). */
static rk_rc load_businesses(ppc *p, const char *path)
{
    char *text = NULL, *fields[16];
    size_t cap = 0;
    long line_no = 0;
    int col = -1;
    rk_rc rc = rk_read_file(path, PPC_PERMISSIONS_CAP, &text, NULL);
    if (rc != RK_OK) {
        rk_error("%s: cannot read the permission table: %s", path, rk_strerror(rc));
        return rc;
    }
    const char *bad = text[0] ? NULL : "empty: no header";
    for (char *line = text, *end; line && !bad; line = end) { /* every line counted, empty ones too */
        if ((end = strchr(line, '\n')))
            *end++ = '\0';
        line_no++;
        line[strcspn(line, "\r")] = '\0';
        if (!line[0])
            continue;
        int n = rk_csv_split(line, fields, 16);
        if (col < 0) { /* the header: the first line that is not empty */
            for (int i = 0; i < n; i++)
                if (strcmp(fields[i], "business") == 0)
                    col = i;
            if (col < 0)
                bad = "no column business in the header";
            continue;
        }
        if (n <= col || !rk_catalogue_id_valid(fields[col])) {
            bad = "a row without a valid business";
            break;
        }
        if (p->n_businesses == cap) {
            char **more = realloc(p->businesses, (cap ? 2 * cap : 32) * sizeof *more);
            if (!more) {
                bad = "out of memory";
                break;
            }
            p->businesses = more;
            cap = cap ? 2 * cap : 32;
        }
        if (!(p->businesses[p->n_businesses] = strdup(fields[col]))) {
            bad = "out of memory";
            break;
        }
        p->n_businesses++;
    }
    free(text);
    if (!bad && col < 0)
        bad = "no header";
    if (bad) {
        rk_error("%s:%ld: %s", path, line_no, bad);
        return RK_ERR_CONFIG;
    }
    qsort(p->businesses, p->n_businesses, sizeof *p->businesses, str_cmp);
    size_t w = 0; /* each once */
    for (size_t i = 0; i < p->n_businesses; i++) {
        if (w && strcmp(p->businesses[w - 1], p->businesses[i]) == 0)
            free(p->businesses[i]);
        else
            p->businesses[w++] = p->businesses[i];
    }
    p->n_businesses = w;
    return RK_OK;
}

/* ---------- PUT /v1/pia/{agency}/{business} ---------- */

/* The path's two ids into agency and business; 0 when it has two. */
static int path_ids(const char *path, char *agency, size_t alen, char *business, size_t blen)
{
    const char *a = path + strlen("/v1/pia/"), *slash = strchr(a, '/');
    if (!slash || slash == a || !slash[1] || strchr(slash + 1, '/'))
        return -1;
    size_t n = (size_t)(slash - a);
    if (n >= alen || strlen(slash + 1) >= blen)
        return -1;
    memcpy(agency, a, n);
    agency[n] = '\0';
    strcpy(business, slash + 1);
    return 0;
}

static json_t *entry_json(const pia_entry *e)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:I}", "agency", e->agency, "business", e->business, "state",
                     rk_pia_state_name(e->state), "evaluated_on", e->evaluated_on, "serial", (json_int_t)e->serial);
}

static void handle_put(void *app, const rk_request *req, rk_response *resp)
{
    ppc *p = app;
    pia_entry e = {0};
    if (path_ids(req->path, e.agency, sizeof e.agency, e.business, sizeof e.business) != 0) {
        rk_reply_error(resp, 404, "not_found", "the path is /v1/pia/{agency}/{business}");
        return;
    }
    if (!rk_id_valid(e.agency, RK_AGENCY_FIELD_MAX) || !rk_registry_find(p->node->registry, RK_ROLE_AGENCY, e.agency)) {
        rk_reply_error(resp, 404, "unknown_agency", "no agency \"%.63s\" in this network", e.agency);
        return;
    }
    if (!known_business(p, e.business)) {
        rk_reply_error(resp, 404, "unknown_business", "no business \"%.64s\" in the permission table", e.business);
        return;
    }
    const char *state = rk_req_string(req, resp, "state", 16);
    if (!state)
        return;
    if ((e.state = rk_pia_state_parse(state)) == RK_PIA_NONE) {
        rk_reply_error(resp, 400, "invalid_field", "field \"state\" must be published, lapsed or breach");
        return;
    }
    const char *date = rk_req_string(req, resp, "evaluated_on", RK_DATE_LEN);
    if (!date)
        return;
    if (!rk_date_valid(date)) {
        rk_reply_error(resp, 400, "invalid_field", "field \"evaluated_on\" must be a date YYYY-MM-DD");
        return;
    }
    snprintf(e.evaluated_on, sizeof e.evaluated_on, "%s", date);
    e.changed_ms = rk_node_now_ms(p->node);
    int changed = 0;
    rk_rc rc = ppc_store_set(p->store, &e, &changed);
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the register could not be written; retry");
        return;
    }
    if (changed)
        rk_info("PIA of %s for %s: %s (evaluated on %s), serial %lld", e.agency, e.business, rk_pia_state_name(e.state),
                e.evaluated_on, (long long)e.serial);
    json_t *body = entry_json(&e);
    if (body)
        json_object_set_new(body, "changed", json_boolean(changed));
    rk_reply_json(resp, 200, body);
}

/* ---------- GET /v1/pia?since=SERIAL ---------- */

/* A query parameter of digits only, at most 18 of them; 0 when absent. */
static int digits_param(const rk_request *req, const char *name, int64_t *out, int *present)
{
    char v[24];
    int found = rk_query_param(req, name, v, sizeof v);
    *present = found == 1;
    if (found == 0)
        return 0;
    size_t n = found == 1 ? strlen(v) : 0;
    if (n == 0 || n > 18 || strspn(v, "0123456789") != n)
        return -1;
    *out = strtoll(v, NULL, 10);
    return 0;
}

static void handle_get(void *app, const rk_request *req, rk_response *resp)
{
    ppc *p = app;
    int64_t since = 0, limit = PPC_PAGE_MAX;
    int has_since = 0, has_limit = 0;
    if (digits_param(req, "since", &since, &has_since) != 0 || !has_since) {
        rk_reply_error(resp, 400, "invalid_field", "since is required: a serial of the register (digits)");
        return;
    }
    if (digits_param(req, "limit", &limit, &has_limit) != 0 || limit < 1 || limit > PPC_PAGE_MAX) {
        rk_reply_error(resp, 400, "invalid_field", "limit must be 1..%d", PPC_PAGE_MAX);
        return;
    }
    pia_entry *page = calloc((size_t)limit, sizeof *page);
    size_t n = 0;
    int64_t latest = 0;
    rk_rc rc = page ? ppc_store_since(p->store, since, page, (size_t)limit, &n, &latest) : RK_ERR_NOMEM;
    if (rc != RK_OK) {
        free(page);
        rk_reply_error(resp, 500, "store_error", "the register could not be read; retry");
        return;
    }
    json_t *changes = json_array();
    for (size_t i = 0; i < n && changes; i++)
        json_array_append_new(changes, entry_json(&page[i]));
    int64_t next = n ? page[n - 1].serial : since;
    free(page);
    rk_reply_json(resp, 200,
                  json_pack("{s:o,s:I,s:I,s:b}", "changes", changes ? changes : json_array(), "next", (json_int_t)next,
                            "latest", (json_int_t)latest, "more", n == (size_t)limit));
}

static const rk_route routes[] = {
    {"PUT", "/v1/pia/*", RK_ROLE_PPC_OPERATOR, 0, handle_put},
    {"GET", "/v1/pia", RK_ROLE_CORE, 0, handle_get},
};

/* ---------- the register's first states ([ppc] initial) ---------- */

static int entry_cmp(const void *a, const void *b)
{
    const pia_entry *x = a, *y = b;
    int c = strcmp(x->agency, y->agency);
    return c ? c : strcmp(x->business, y->business);
}

/* One row "agency,business,state,evaluated_on" into e; NULL or the fault. */
static const char *parse_row(ppc *p, char *line, pia_entry *e)
{
    char *f[5] = {0};
    int n = 0;
    for (char *s = line; n < 5; n++) {
        f[n] = s;
        char *comma = strchr(s, ',');
        if (!comma) {
            n++;
            break;
        }
        *comma = '\0';
        s = comma + 1;
    }
    if (n != 4)
        return "a row has four fields: agency,business,state,evaluated_on";
    if (!rk_id_valid(f[0], RK_AGENCY_FIELD_MAX) || !rk_registry_find(p->node->registry, RK_ROLE_AGENCY, f[0]))
        return "unknown agency";
    if (!known_business(p, f[1]))
        return "unknown business";
    if ((e->state = rk_pia_state_parse(f[2])) == RK_PIA_NONE)
        return "state is not published, lapsed or breach";
    if (strlen(f[3]) != RK_DATE_LEN || !rk_date_valid(f[3]))
        return "evaluated_on is not a date YYYY-MM-DD";
    snprintf(e->agency, sizeof e->agency, "%s", f[0]);
    snprintf(e->business, sizeof e->business, "%s", f[1]);
    snprintf(e->evaluated_on, sizeof e->evaluated_on, "%s", f[3]);
    return NULL;
}

/* Loads [ppc] initial into an empty register; a register that holds
 * entries already keeps them (the file is its first day only). A bad file
 * is refused with its line, and nothing is written. */
static rk_rc seed(ppc *p)
{
    const char *path = p->node->cfg.pia_initial;
    if (!path[0] || ppc_store_count(p->store) > 0)
        return RK_OK;
    char *text = NULL;
    size_t len = 0, n = 0, cap = 64;
    rk_rc rc = rk_read_file(path, PPC_INITIAL_CAP, &text, &len);
    if (rc != RK_OK) {
        rk_error("%s: cannot read the register's first states: %s", path, rk_strerror(rc));
        return rc;
    }
    pia_entry *rows = malloc(cap * sizeof *rows);
    const char *bad = !rows ? "out of memory"
                    : !text[0] ? "the file is empty: the header agency,business,state,evaluated_on is required"
                               : NULL;
    long line_no = 0;
    for (char *line = text, *end; line && !bad; line = end) { /* every line counted, empty ones too */
        if ((end = strchr(line, '\n')))
            *end++ = '\0';
        line_no++;
        line[strcspn(line, "\r")] = '\0';
        if (line_no == 1) {
            if (strcmp(line, "agency,business,state,evaluated_on") != 0)
                bad = "the header must be agency,business,state,evaluated_on";
            continue;
        }
        if (!line[0])
            continue;
        if (n == PPC_INITIAL_MAX) {
            bad = "too many rows";
            break;
        }
        if (n == cap) {
            pia_entry *more = realloc(rows, 2 * cap * sizeof *rows);
            if (!more) {
                bad = "out of memory";
                break;
            }
            rows = more;
            cap *= 2;
        }
        memset(&rows[n], 0, sizeof rows[n]);
        if (!(bad = parse_row(p, line, &rows[n])))
            n++;
    }
    if (!bad && n > 1) {
        qsort(rows, n, sizeof *rows, entry_cmp);
        for (size_t i = 1; i < n && !bad; i++)
            if (entry_cmp(&rows[i - 1], &rows[i]) == 0) {
                rk_error("%s: %s %s is given twice", path, rows[i].agency, rows[i].business);
                rc = RK_ERR_CONFIG;
                bad = "";
            }
    }
    if (bad) {
        if (bad[0])
            rk_error("%s:%ld: %s", path, line_no, bad);
        rc = RK_ERR_CONFIG;
    } else if ((rc = ppc_store_seed(p->store, rows, n, rk_node_now_ms(p->node))) == RK_OK) {
        rk_info("the PIA register starts with %zu entries from %s", n, path);
    } else if (rc == RK_ERR_CONFLICT) {
        rc = RK_OK; /* another process seeded it meanwhile */
    }
    free(rows);
    free(text);
    return rc;
}

/* ---------- the role ---------- */

static rk_rc open_ppc(rk_node *node, void *app)
{
    ppc *p = app;
    p->node = node;
    if (!node->cfg.permissions[0]) {
        rk_error("[ppc] permissions is required: the businesses the register knows");
        return RK_ERR_CONFIG;
    }
    rk_rc rc = load_businesses(p, node->cfg.permissions);
    if (rc != RK_OK)
        return rc;
    if ((rc = ppc_store_open(node->cfg.db, 0, &p->store)) != RK_OK || (rc = seed(p)) != RK_OK)
        return rc;
    if ((rc = rk_node_incidents_start(node, ppc_store_db(p->store))) == RK_OK)
        rc = rk_node_clock_start(node);
    return rc;
}

static void close_ppc(void *app)
{
    ppc *p = app;
    ppc_store_close(p->store);
    for (size_t i = 0; i < p->n_businesses; i++)
        free(p->businesses[i]);
    free(p->businesses);
}

static rk_db *ppc_db(void *app)
{
    return ppc_store_db(((ppc *)app)->store);
}

static int health(void *app, json_t *checks)
{
    json_object_set_new(checks, "pia_entries", json_integer((json_int_t)ppc_store_count(((ppc *)app)->store)));
    return 0;
}

const rk_role_desc rk_ppc_role = {
    .role = RK_ROLE_PPC,
    .help = "run the PIA register of 個人情報保護委員会, 法28条 (--config FILE)",
    .app_size = sizeof(ppc),
    .open = open_ppc,
    .close = close_ppc,
    .store = ppc_db,
    .routes = routes,
    .n_routes = sizeof routes / sizeof routes[0],
    .health = health,
};
