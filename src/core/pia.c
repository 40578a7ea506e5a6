/* pia.c — the core's PIA gate: see pia.h. */
#include "core/pia.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/util.h"
#include "node/service.h"
#include "lib/pia.h"

#define PIA_MAX_ENTRIES (1u << 20) /* (agency, business) pairs the core keeps */
#define PIA_MAX_PAGES 1000         /* calls in one round */
#define PIA_RETRY_MS 500           /* between polls while no state is known at all */
#define PIA_KEY_MAX (RK_ID_MAX + RK_CATALOGUE_ID_MAX + 2)

typedef struct pia_slot {
    char key[PIA_KEY_MAX]; /* "agency\x1f" "business"; "" when free */
    unsigned char state;   /* rk_pia_state */
} pia_slot;

struct core_pia {
    core *c;
    const rk_peer_node *ppc;
    rk_service *service;
    int64_t refresh_ms;
    /* the states, for the check (any thread) */
    pthread_rwlock_t lock;
    pia_slot *slots;
    size_t cap, n;
    /* the poller's (one thread) */
    int64_t since;       /* the register's serial last applied */
    int failing;         /* 1: the last round could not read the register, 0: it could, -1: none yet */
    /* read by health and metrics */
    int known;           /* states were kept or polled */
    int64_t synced_ms;   /* the last poll that answered; 0 none since start */
    unsigned long long refusals, poll_failures;
};

static const char *const pia_steps[] = {
    "CREATE TABLE pia_states (agency TEXT NOT NULL, business TEXT NOT NULL, state TEXT NOT NULL,"
    "  evaluated_on TEXT NOT NULL, serial BIGINT NOT NULL, PRIMARY KEY (agency, business)){without_rowid};",
};

/* ---------- the table in memory ---------- */

static uint64_t key_hash(const char *k)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return h;
}

static int make_key(char out[PIA_KEY_MAX], const char *agency, const char *business)
{
    int n = snprintf(out, PIA_KEY_MAX, "%s\x1f%s", agency, business);
    return n > 0 && n < PIA_KEY_MAX ? 0 : -1;
}

static pia_slot *slot_of(pia_slot *slots, size_t cap, const char *key)
{
    for (size_t i = key_hash(key) & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!slots[i].key[0] || strcmp(slots[i].key, key) == 0)
            return &slots[i];
}

/* Under the write lock. */
static rk_rc table_put(core_pia *p, const char *agency, const char *business, rk_pia_state state)
{
    char key[PIA_KEY_MAX];
    if (make_key(key, agency, business) != 0)
        return RK_ERR_INVALID;
    if ((p->n + 1) * 10 > p->cap * 7) { /* grow at 70 % */
        if (p->n >= PIA_MAX_ENTRIES)
            return RK_ERR_TOO_LARGE;
        size_t cap = p->cap ? p->cap * 2 : 1024;
        pia_slot *slots = calloc(cap, sizeof *slots);
        if (!slots)
            return RK_ERR_NOMEM;
        for (size_t i = 0; i < p->cap; i++)
            if (p->slots[i].key[0])
                *slot_of(slots, cap, p->slots[i].key) = p->slots[i];
        free(p->slots);
        p->slots = slots;
        p->cap = cap;
    }
    pia_slot *s = slot_of(p->slots, p->cap, key);
    if (!s->key[0]) {
        memcpy(s->key, key, sizeof key);
        p->n++;
    }
    s->state = (unsigned char)state;
    return RK_OK;
}

/* Under the read lock. */
static rk_pia_state table_get(const core_pia *p, const char *agency, const char *business)
{
    char key[PIA_KEY_MAX];
    if (!p->cap || make_key(key, agency, business) != 0)
        return RK_PIA_NONE;
    pia_slot *s = slot_of(p->slots, p->cap, key);
    return s->key[0] ? (rk_pia_state)s->state : RK_PIA_NONE;
}

int core_pia_refuses(core_pia *p, const char *requester, const char *provider, const char *business,
                     const char **agency, const char **state)
{
    pthread_rwlock_rdlock(&p->lock);
    rk_pia_state r = table_get(p, requester, business);
    rk_pia_state q = r == RK_PIA_PUBLISHED ? table_get(p, provider, business) : RK_PIA_NONE;
    pthread_rwlock_unlock(&p->lock);
    if (r == RK_PIA_PUBLISHED && q == RK_PIA_PUBLISHED)
        return 0;
    *agency = r != RK_PIA_PUBLISHED ? requester : provider;
    *state = rk_pia_state_name(r != RK_PIA_PUBLISHED ? r : q);
    __atomic_add_fetch(&p->refusals, 1, __ATOMIC_RELAXED);
    return 1;
}

/* ---------- the states kept in the core's store ---------- */

typedef struct page {
    core_pia_change *e;
    size_t n;
    int reset; /* the register started again: forget what was kept */
} page;

static rk_rc load_fn(rk_db *db, void *arg)
{
    core_pia *p = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT agency, business, state, serial FROM pia_states");
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        rk_pia_state s = rk_pia_state_parse(rk_col_text(q, 2));
        const char *agency = rk_col_text(q, 0), *business = rk_col_text(q, 1);
        if (s == RK_PIA_NONE || !agency || !business || (rc = table_put(p, agency, business, s)) != RK_OK)
            return s == RK_PIA_NONE ? RK_ERR_STORE : rc;
        if (rk_col_int(q, 3) > p->since)
            p->since = rk_col_int(q, 3);
        p->known = 1;
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

static rk_rc keep_fn(rk_db *db, void *arg)
{
    page *pg = arg;
    if (pg->reset && rk_stmt_exec(rk_db_stmt(db, "DELETE FROM pia_states")) != RK_OK)
        return RK_ERR_STORE;
    for (size_t i = 0; i < pg->n; i++) {
        const core_pia_change *e = &pg->e[i];
        rk_stmt *st = rk_db_stmt(db, "INSERT INTO pia_states(agency, business, state, evaluated_on, serial)"
                                     " VALUES (?,?,?,?,?) ON CONFLICT (agency, business) DO UPDATE SET"
                                     " state = excluded.state, evaluated_on = excluded.evaluated_on,"
                                     " serial = excluded.serial WHERE excluded.serial > pia_states.serial");
        rk_bind_text(st, 1, e->agency);
        rk_bind_text(st, 2, e->business);
        rk_bind_text(st, 3, rk_pia_state_name(e->state));
        rk_bind_text(st, 4, e->evaluated_on);
        rk_bind_int(st, 5, e->serial);
        rk_rc rc = rk_stmt_exec(st);
        if (rc != RK_OK)
            return rc;
    }
    return RK_OK;
}

/* ---------- polling the register ---------- */

static int64_t int_field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : -1;
}

const char *core_pia_read_answer(const char *text, size_t len, int64_t since, core_pia_change *out, size_t *n,
                                 int64_t *next, int64_t *latest, int *more)
{
    json_t *body = json_loadb(text, len, 0, NULL);
    json_t *changes = json_object_get(body, "changes");
    const char *bad = NULL;
    *n = 0;
    *next = int_field(body, "next");
    *latest = int_field(body, "latest");
    *more = json_is_true(json_object_get(body, "more"));
    if (!json_is_object(body))
        bad = "not a JSON object";
    else if (!json_is_array(changes) || json_array_size(changes) > CORE_PIA_PAGE)
        bad = "changes";
    else if (*next < 0 || *latest < 0)
        bad = "next or latest";
    size_t i;
    json_t *c;
    int64_t last = since;
    json_array_foreach(bad ? NULL : changes, i, c) {
        core_pia_change *e = &out[*n];
        const char *agency = json_string_value(json_object_get(c, "agency"));
        const char *business = json_string_value(json_object_get(c, "business"));
        const char *date = json_string_value(json_object_get(c, "evaluated_on"));
        e->serial = int_field(c, "serial");
        e->state = rk_pia_state_parse(json_string_value(json_object_get(c, "state")));
        if (!agency || !rk_id_valid(agency, RK_AGENCY_FIELD_MAX) || !business || !rk_catalogue_id_valid(business) ||
            e->state == RK_PIA_NONE || !date || strlen(date) != RK_DATE_LEN || !rk_date_valid(date) ||
            e->serial <= last) {
            bad = "an entry of changes";
            break;
        }
        last = e->serial;
        snprintf(e->agency, sizeof e->agency, "%s", agency);
        snprintf(e->business, sizeof e->business, "%s", business);
        snprintf(e->evaluated_on, sizeof e->evaluated_on, "%s", date);
        (*n)++;
    }
    if (!bad && *n && *next != last)
        bad = "next";
    json_decref(body);
    if (bad)
        *n = 0;
    return bad;
}

/* One call: the changes since p->since applied, kept and p->since moved.
 * *more when the register has more to give. */
static rk_rc poll_page(core_pia *p, core_pia_change *buf, int *more)
{
    char path[96];
    snprintf(path, sizeof path, "/v1/pia?since=%lld&limit=%d", (long long)p->since, CORE_PIA_PAGE);
    rk_http_result res = {0};
    rk_rc rc = rk_node_call(p->c->node, "GET", p->ppc, path, NULL, &res, NULL);
    if (rc == RK_OK && res.status != 200)
        rc = RK_ERR_UNAVAILABLE;
    page pg = {.e = buf};
    int64_t next = 0, latest = 0;
    const char *bad = rc != RK_OK ? NULL
                    : res.body ? core_pia_read_answer(res.body, strlen(res.body), p->since, buf, &pg.n, &next, &latest, more)
                               : "no body";
    rk_http_result_clear(&res);
    if (rc != RK_OK)
        return rc;
    if (bad) {
        rk_error("the PIA register's answer was refused (%s); the states known stay", bad);
        return RK_ERR_INVALID;
    }
    if (!pg.n)
        *more = 0; /* nothing more to read, whatever it says */
    if (latest < p->since) { /* a register started again: its serials are not those kept */
        rk_warn("the PIA register's last serial %lld is below the one applied (%lld): all states read again",
                (long long)latest, (long long)p->since);
        pg.reset = 1;
        pg.n = 0;
        *more = 1;
    }
    if ((rc = rk_db_write(core_store_db(p->c->store), keep_fn, &pg)) != RK_OK)
        return rc; /* nothing moves: the same changes are asked for again */
    pthread_rwlock_wrlock(&p->lock);
    if (pg.reset) {
        memset(p->slots, 0, p->cap * sizeof *p->slots);
        p->n = 0;
    }
    for (size_t i = 0; i < pg.n && rc == RK_OK; i++)
        rc = table_put(p, pg.e[i].agency, pg.e[i].business, pg.e[i].state);
    pthread_rwlock_unlock(&p->lock);
    if (rc != RK_OK) {
        rk_error("the PIA states could not be kept in memory: %s", rk_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < pg.n; i++)
        if (pg.e[i].state != RK_PIA_PUBLISHED)
            rk_info("PIA of %s for %s is %s: its exchanges under it are refused", pg.e[i].agency, pg.e[i].business,
                    rk_pia_state_name(pg.e[i].state));
    p->since = pg.reset ? 0 : pg.n ? next : p->since;
    return RK_OK;
}

static int64_t poll_round(void *arg)
{
    core_pia *p = arg;
    core_pia_change *buf = calloc(CORE_PIA_PAGE, sizeof *buf);
    int more = 1;
    rk_rc rc = buf ? RK_OK : RK_ERR_NOMEM;
    for (int i = 0; i < PIA_MAX_PAGES && more && rc == RK_OK; i++)
        rc = poll_page(p, buf, &more);
    free(buf);
    if (rc == RK_OK) {
        __atomic_store_n(&p->synced_ms, rk_now_ms(), __ATOMIC_RELAXED);
        __atomic_store_n(&p->known, 1, __ATOMIC_RELAXED);
        if (p->failing)
            rk_info("PIA states in force from the register (serial %lld)", (long long)p->since);
    } else {
        __atomic_add_fetch(&p->poll_failures, 1, __ATOMIC_RELAXED);
        if (p->failing != 1) /* once per outage */
            rk_warn("the PIA register could not be read (%s); the last known states stay in force",
                    rk_strerror(rc));
    }
    p->failing = rc != RK_OK;
    int64_t wait = p->refresh_ms;
    return __atomic_load_n(&p->known, __ATOMIC_RELAXED) || wait < PIA_RETRY_MS ? wait : PIA_RETRY_MS;
}

/* ---------- the gate's life ---------- */

rk_rc core_pia_start(core *c)
{
    const rk_peer_node *ppc = rk_registry_find(c->node->registry, RK_ROLE_PPC, NULL);
    if (!ppc) {
        rk_error("network.json names no ppc node: the core cannot check PIAs (法28条); add the PIA register");
        return RK_ERR_CONFIG;
    }
    core_pia *p = calloc(1, sizeof *p);
    if (!p)
        return RK_ERR_NOMEM;
    p->c = c;
    p->ppc = ppc;
    p->refresh_ms = (int64_t)c->node->cfg.pia_refresh_s * 1000;
    p->failing = -1;
    pthread_rwlock_init(&p->lock, NULL);
    c->pia = p;
    rk_db *db = core_store_db(c->store);
    rk_rc rc = rk_db_migrate(db, "core_pia", pia_steps, (int)(sizeof pia_steps / sizeof pia_steps[0]));
    if (rc == RK_OK)
        rc = rk_db_scan(db, load_fn, p);
    if (rc != RK_OK) {
        rk_error("the PIA states kept could not be read: %s", rk_strerror(rc));
        return rc;
    }
    if (p->known)
        rk_info("PIA states kept: %zu, serial %lld", p->n, (long long)p->since);
    return rk_service_start(1, poll_round, p, &p->service);
}

void core_pia_stop(core_pia *p)
{
    if (!p)
        return;
    rk_service_stop(p->service);
    p->service = NULL;
}

void core_pia_free(core_pia *p)
{
    if (!p)
        return;
    core_pia_stop(p);
    pthread_rwlock_destroy(&p->lock);
    free(p->slots);
    free(p);
}

int core_pia_health(core_pia *p, json_t *checks)
{
    if (!p)
        return 1;
    pthread_rwlock_rdlock(&p->lock);
    size_t n = p->n;
    pthread_rwlock_unlock(&p->lock);
    int64_t synced = __atomic_load_n(&p->synced_ms, __ATOMIC_RELAXED);
    int known = __atomic_load_n(&p->known, __ATOMIC_RELAXED);
    json_object_set_new(checks, "pia_states", json_integer((json_int_t)n));
    json_object_set_new(checks, "pia_synced_age_s",
                        synced ? json_integer((json_int_t)((rk_now_ms() - synced) / 1000)) : json_null());
    return !known;
}

void core_pia_metrics(core_pia *p, struct evbuffer *out)
{
    if (!p)
        return;
    rk_metric_head(out, "renkei_pia_refusals_total", "counter",
                   "Exchanges refused because a PIA was not published (法28条).");
    evbuffer_add_printf(out, "renkei_pia_refusals_total %llu\n",
                        (unsigned long long)__atomic_load_n(&p->refusals, __ATOMIC_RELAXED));
    rk_metric_head(out, "renkei_pia_poll_failures_total", "counter", "Polls of the PIA register that failed.");
    evbuffer_add_printf(out, "renkei_pia_poll_failures_total %llu\n",
                        (unsigned long long)__atomic_load_n(&p->poll_failures, __ATOMIC_RELAXED));
    int64_t synced = __atomic_load_n(&p->synced_ms, __ATOMIC_RELAXED);
    rk_metric_head(out, "renkei_pia_sync_age_seconds", "gauge",
                   "Seconds since the PIA register last answered; -1 before the first answer.");
    evbuffer_add_printf(out, "renkei_pia_sync_age_seconds %.3f\n",
                        synced ? (double)(rk_now_ms() - synced) / 1000.0 : -1.0);
}
