#include "node/incidents.h"

#include "lib/ids.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/http_server.h"
#include "lib/log.h"
#include "node/node.h"
#include "lib/util.h"

static const char *const incidents_steps[] = {
    /* 1: the tables of before versions, IF NOT EXISTS: an existing database opens as it is */
    "CREATE TABLE IF NOT EXISTS incidents ("
    "  seq {id}, incident_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,"
    "  node TEXT NOT NULL, detected_ms BIGINT NOT NULL, summary TEXT NOT NULL, details TEXT NOT NULL DEFAULT '',"
    "  actions TEXT NOT NULL DEFAULT '', cause TEXT NOT NULL DEFAULT '', prevention TEXT NOT NULL DEFAULT '',"
    "  updated_ms BIGINT NOT NULL, reported_ms BIGINT);"
    "CREATE INDEX IF NOT EXISTS incidents_unreported ON incidents(seq) WHERE reported_ms IS NULL;",
};

rk_rc rk_incidents_migrate(rk_db *db)
{
    return rk_db_migrate(db, "incidents", incidents_steps, (int)(sizeof incidents_steps / sizeof incidents_steps[0]));
}

static const char *const kinds[] = {"outage", "unauthorized_access", "leak", "unlawful_request",
                                    "unlawful_provision", "check_code_mismatch", "clock"};

int rk_incident_kind_valid(const char *kind)
{
    for (size_t i = 0; kind && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kind, kinds[i]) == 0)
            return 1;
    return 0;
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* One incident to write; id is never NULL. */
typedef struct incident_put {
    rk_incident in;
    int reported;
    int64_t now_ms;
} incident_put;

static void put_init(incident_put *p, const rk_incident *in, int reported, char fresh[33])
{
    p->in = *in;
    p->reported = reported;
    p->now_ms = rk_now_ms();
    if (!p->in.incident_id) {
        uint8_t raw[16];
        rk_random(raw, sizeof raw);
        rk_hex(raw, sizeof raw, fresh);
        p->in.incident_id = fresh;
    }
    if (!p->in.detected_ms)
        p->in.detected_ms = p->now_ms;
}

static rk_rc put_incident(rk_db *db, void *arg)
{
    const incident_put *p = arg;
    const rk_incident *in = &p->in;
    /* An update keeps what it does not name (cause and prevention come later). */
    rk_stmt *st = rk_db_stmt(db,
        "INSERT INTO incidents(incident_id, kind, node, detected_ms, summary, details, actions, cause, prevention,"
        " updated_ms, reported_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(incident_id) DO UPDATE SET"
        " details = CASE WHEN excluded.details = '' THEN incidents.details ELSE excluded.details END,"
        " actions = CASE WHEN excluded.actions = '' THEN incidents.actions ELSE excluded.actions END,"
        " cause = CASE WHEN excluded.cause = '' THEN incidents.cause ELSE excluded.cause END,"
        " prevention = CASE WHEN excluded.prevention = '' THEN incidents.prevention ELSE excluded.prevention END,"
        " updated_ms = excluded.updated_ms, reported_ms = excluded.reported_ms"
        " WHERE incidents.node = excluded.node");
    rk_bind_text(st, 1, in->incident_id);
    rk_bind_text(st, 2, or_empty(in->kind));
    rk_bind_text(st, 3, or_empty(in->node));
    rk_bind_int(st, 4, in->detected_ms);
    rk_bind_text(st, 5, or_empty(in->summary));
    rk_bind_text(st, 6, or_empty(in->details));
    rk_bind_text(st, 7, or_empty(in->actions));
    rk_bind_text(st, 8, or_empty(in->cause));
    rk_bind_text(st, 9, or_empty(in->prevention));
    rk_bind_int(st, 10, p->now_ms);
    if (p->reported)
        rk_bind_int(st, 11, p->now_ms);
    else
        rk_bind_null(st, 11);
    rk_rc rc = rk_stmt_exec(st);
    if (rc == RK_OK && rk_db_changes(db) == 0)
        rc = RK_ERR_CONFLICT; /* the id is another node's: left as it was */
    return rc;
}

static void log_stored(const rk_incident *in)
{
    rk_warn("incident %s (%s) at %s: %s", in->incident_id, in->kind, in->node, in->summary);
}

rk_rc rk_incident_store(rk_db *db, const rk_incident *in, int reported, int in_write)
{
    char fresh[33];
    incident_put p;
    put_init(&p, in, reported, fresh);
    rk_rc rc = in_write ? put_incident(db, &p) : rk_db_write(db, put_incident, &p);
    if (rc == RK_OK)
        log_stored(&p.in);
    return rc;
}

/* An incident on its way through the committer thread: the put and its
 * strings in one allocation, freed on the loop once written. */
typedef struct incident_later {
    incident_put put;
    rk_incident_stored_fn done;
    void *arg;
    char text[];
} incident_later;

static void incident_written(void *arg, rk_rc rc)
{
    incident_later *l = arg;
    if (rc == RK_OK)
        log_stored(&l->put.in);
    l->done(l->arg, rc);
    free(l);
}

rk_rc rk_incident_store_later(rk_db *db, struct event_base *base, const rk_incident *in, int reported,
                              rk_incident_stored_fn done, void *arg)
{
    char fresh[33];
    incident_put p;
    put_init(&p, in, reported, fresh);
    const char **fields[] = {&p.in.incident_id, &p.in.kind, &p.in.node, &p.in.summary, &p.in.details,
                             &p.in.actions, &p.in.cause, &p.in.prevention};
    size_t n_fields = sizeof fields / sizeof fields[0], size = 0;
    for (size_t i = 0; i < n_fields; i++)
        size += strlen(or_empty(*fields[i])) + 1;
    incident_later *l = malloc(sizeof *l + size);
    if (!l)
        return RK_ERR_NOMEM;
    char *at = l->text;
    for (size_t i = 0; i < n_fields; i++) {
        size_t len = strlen(or_empty(*fields[i])) + 1;
        memcpy(at, or_empty(*fields[i]), len);
        *fields[i] = at;
        at += len;
    }
    l->put = p;
    l->done = done;
    l->arg = arg;
    rk_rc rc = rk_db_write_later(db, base, put_incident, &l->put, incident_written, l);
    if (rc != RK_OK)
        free(l);
    return rc;
}

static const char *field(const rk_request *req, const char *name, size_t cap, int *bad)
{
    json_t *v = json_object_get(req->json, name);
    if (!v)
        return NULL;
    if (!json_is_string(v) || json_string_length(v) > cap) {
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

int rk_incident_read(const rk_request *req, rk_response *resp, rk_incident *in)
{
    int bad = 0;
    memset(in, 0, sizeof *in);
    in->incident_id = rk_req_string(req, resp, "incident_id", RK_INCIDENT_ID_MAX);
    in->kind = in->incident_id ? rk_req_string(req, resp, "kind", RK_KIND_FIELD_MAX) : NULL;
    in->summary = in->kind ? rk_req_string(req, resp, "summary", RK_SUMMARY_MAX) : NULL;
    if (!in->summary)
        return -1;
    in->node = field(req, "node", 64, &bad);
    in->details = field(req, "details", RK_INCIDENT_TEXT_MAX, &bad);
    in->actions = field(req, "actions", RK_INCIDENT_TEXT_MAX, &bad);
    in->cause = field(req, "cause", RK_INCIDENT_TEXT_MAX, &bad);
    in->prevention = field(req, "prevention", RK_INCIDENT_TEXT_MAX, &bad);
    json_t *at = json_object_get(req->json, "detected_ms");
    in->detected_ms = json_is_integer(at) ? json_integer_value(at) : req->received_ms;
    if (bad || !rk_incident_kind_valid(in->kind)) {
        rk_reply_error(resp, 400, "invalid_field", "an incident needs a known kind and text fields within their caps");
        return -1;
    }
    return 0;
}

int rk_incident_accept(rk_db *db, const rk_registry *reg, const rk_request *req, rk_response *resp)
{
    rk_incident in;
    if (rk_incident_read(req, resp, &in) != 0)
        return -1;
    if (!in.node)
        in.node = req->peer->id;
    /* A node reports for itself, a gateway also for its own agency's nodes,
     * the network operator for anyone. */
    const rk_peer_node *named = rk_registry_by_id(reg, in.node);
    int own = strcmp(in.node, req->peer->id) == 0 ||
              (named && req->peer->agency[0] && strcmp(named->agency, req->peer->agency) == 0);
    int network_operator = req->peer->role == RK_ROLE_OPERATOR && !req->peer->agency[0];
    if (!named || (!network_operator && !own)) {
        rk_reply_error(resp, 403, "not_your_node", "a node reports only for itself or its own agency");
        return -1;
    }
    rk_rc rc = rk_incident_store(db, &in, 1, 0);
    if (rc == RK_ERR_CONFLICT) {
        rk_reply_error(resp, 409, "conflict", "incident %s was reported by another node", in.incident_id);
        return -1;
    }
    if (rc != RK_OK) {
        rk_reply_error(resp, 500, "store_error", "the incident could not be stored; retry");
        return -1;
    }
    rk_reply_json(resp, 200, json_pack("{s:s,s:s}", "incident_id", in.incident_id, "status", "recorded"));
    return 0;
}

static json_t *incident_json(rk_stmt *q)
{
    char detected[32], updated[32];
    rk_format_time(rk_col_int(q, 4), detected, sizeof detected);
    rk_format_time(rk_col_int(q, 10), updated, sizeof updated);
#define COL(i) rk_col_text(q, i)
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)rk_col_int(q, 0),
                     "incident_id", COL(1), "kind", COL(2), "node", COL(3), "detected_at", detected, "summary",
                     COL(5), "details", COL(6), "actions", COL(7), "cause", COL(8), "prevention", COL(9),
                     "updated_at", updated);
#undef COL
}

typedef struct incident_list {
    const char *kind; /* NULL: every kind */
    json_t *arr;
} incident_list;

/* The newest 500, the newest first. */
static rk_rc list_incidents(rk_db *db, void *arg)
{
    incident_list *l = arg;
    rk_stmt *q;
    if (l->kind) {
        q = rk_db_stmt(db, "SELECT seq, incident_id, kind, node, detected_ms, summary, details, actions, cause,"
                           " prevention, updated_ms FROM incidents WHERE kind = ? ORDER BY seq DESC LIMIT 500");
        rk_bind_text(q, 1, l->kind);
    } else {
        q = rk_db_stmt(db, "SELECT seq, incident_id, kind, node, detected_ms, summary, details, actions, cause,"
                           " prevention, updated_ms FROM incidents ORDER BY seq DESC LIMIT 500");
    }
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK)
        json_array_append_new(l->arr, incident_json(q));
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

void rk_incidents_serve(rk_db *db, const rk_request *req, rk_response *resp)
{
    char kind[40];
    int has_kind = rk_query_param(req, "kind", kind, sizeof kind);
    if (has_kind < 0) {
        rk_reply_error(resp, 400, "invalid_field", "kind is not a known incident kind");
        return;
    }
    incident_list l = {has_kind ? kind : NULL, json_array()};
    if (!l.arr || rk_db_scan(db, list_incidents, &l) != RK_OK) {
        json_decref(l.arr);
        rk_reply_error(resp, 500, "store_error", "the incidents could not be read");
        return;
    }
    rk_reply_json(resp, 200, json_pack("{s:o}", "incidents", l.arr));
}

typedef struct incident_count {
    const char *kind; /* NULL: every kind */
    int64_t n;
} incident_count;

static rk_rc count_incidents(rk_db *db, void *arg)
{
    incident_count *c = arg;
    rk_stmt *q;
    if (c->kind) {
        q = rk_db_stmt(db, "SELECT count(*) FROM incidents WHERE kind = ?");
        rk_bind_text(q, 1, c->kind);
    } else {
        q = rk_db_stmt(db, "SELECT count(*) FROM incidents");
    }
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        c->n = rk_col_int(q, 0);
    return rc;
}

int64_t rk_incidents_count_kind(rk_db *db, const char *kind)
{
    incident_count c = {kind, 0};
    return rk_db_scan(db, count_incidents, &c) == RK_OK ? c.n : -1;
}

int64_t rk_incidents_count(rk_db *db, const char *kind)
{
    int64_t n = rk_incidents_count_kind(db, kind);
    return n < 0 ? 0 : n;
}

/* ---------- reporter: forwards unreported incidents ---------- */

struct rk_incident_reporter {
    rk_node *node;
    rk_db *db;
    const rk_peer_node *to;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
};

typedef struct unreported {
    int64_t seq;
    char *body; /* malloc'ed request body */
} unreported;

static rk_rc read_unreported(rk_db *db, void *arg)
{
    unreported *u = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT seq, incident_id, kind, node, detected_ms, summary, details, actions, cause,"
                                " prevention FROM incidents WHERE reported_ms IS NULL ORDER BY seq LIMIT 1");
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc;
    u->seq = rk_col_int(q, 0);
#define COL(i) rk_col_text(q, i)
    json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s}", "incident_id", COL(1), "kind", COL(2), "node",
                          COL(3), "detected_ms", (json_int_t)rk_col_int(q, 4), "summary", COL(5), "details", COL(6),
                          "actions", COL(7), "cause", COL(8), "prevention", COL(9));
#undef COL
    u->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return u->body ? RK_OK : RK_ERR_NOMEM;
}

/* The oldest unreported incident as a request body, or NULL (none, or the
 * store failed: the reporter tries again later either way). */
static char *next_unreported(rk_db *db, int64_t *seq)
{
    unreported u = {0, NULL};
    if (rk_db_read(db, read_unreported, &u) != RK_OK)
        return NULL;
    *seq = u.seq;
    return u.body;
}

typedef struct reported_mark {
    int64_t seq, now_ms;
} reported_mark;

static rk_rc write_reported(rk_db *db, void *arg)
{
    const reported_mark *m = arg;
    rk_stmt *st = rk_db_stmt(db, "UPDATE incidents SET reported_ms = ? WHERE seq = ?");
    rk_bind_int(st, 1, m->now_ms);
    rk_bind_int(st, 2, m->seq);
    return rk_stmt_exec(st);
}

/* A failure leaves it unreported: it is sent again, and the core takes the
 * same incident_id as an update. */
static void mark_reported(rk_db *db, int64_t seq)
{
    reported_mark m = {seq, rk_now_ms()};
    rk_rc rc = rk_db_write(db, write_reported, &m);
    if (rc != RK_OK)
        rk_error("incident %lld: could not be marked as reported: %s", (long long)seq, rk_strerror(rc));
}

static void wait_ms(rk_incident_reporter *r, int ms)
{
    pthread_mutex_lock(&r->lock);
    if (!r->stopping)
        rk_cond_wait_ms(&r->wake, &r->lock, ms);
    pthread_mutex_unlock(&r->lock);
}

static void *reporter_main(void *arg)
{
    rk_incident_reporter *r = arg;
    int backoff = 200;
    while (!__atomic_load_n(&r->stopping, __ATOMIC_ACQUIRE)) {
        int64_t seq = 0;
        char *body = next_unreported(r->db, &seq);
        if (!body) {
            wait_ms(r, 1000);
            continue;
        }
        rk_http_result res = {0};
        rk_rc rc = rk_node_post(r->node, r->to, "/v1/incidents", body, &res, NULL);
        free(body);
        int refused = res.status == 400 || res.status == 403 || res.status == 409;
        if (rc == RK_OK && (res.status == 200 || refused)) {
            /* refused: the core will never take it; say so here, do not retry forever */
            if (refused)
                rk_error("incident %lld refused by the core (kept here only): %.200s", (long long)seq,
                         res.body ? res.body : "");
            mark_reported(r->db, seq);
            backoff = 200;
        } else {
            wait_ms(r, backoff);
            backoff = backoff < 30000 ? backoff * 2 : 30000;
        }
        rk_http_result_clear(&res);
    }
    return NULL;
}

rk_rc rk_incident_reporter_start(rk_node *node, rk_db *db, const rk_peer_node *to, rk_incident_reporter **out)
{
    rk_incident_reporter *r = calloc(1, sizeof *r);
    if (!r)
        return RK_ERR_NOMEM;
    r->node = node;
    r->db = db;
    r->to = to;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    if (pthread_create(&r->thread, NULL, reporter_main, r) != 0) {
        free(r);
        return RK_ERR_NOMEM;
    }
    *out = r;
    return RK_OK;
}

void rk_incident_reporter_wake(rk_incident_reporter *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

void rk_incident_reporter_stop(rk_incident_reporter *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    __atomic_store_n(&r->stopping, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    free(r);
}
