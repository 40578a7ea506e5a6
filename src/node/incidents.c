#include "node/incidents.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/http_server.h"
#include "lib/log.h"
#include "node/node.h"
#include "lib/util.h"

const char rk_incidents_schema[] =
    "CREATE TABLE IF NOT EXISTS incidents ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, incident_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,"
    "  node TEXT NOT NULL, detected_ms INTEGER NOT NULL, summary TEXT NOT NULL, details TEXT NOT NULL DEFAULT '',"
    "  actions TEXT NOT NULL DEFAULT '', cause TEXT NOT NULL DEFAULT '', prevention TEXT NOT NULL DEFAULT '',"
    "  updated_ms INTEGER NOT NULL, reported_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS incidents_unreported ON incidents(seq) WHERE reported_ms IS NULL;";

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

rk_rc rk_incident_store(rk_db *db, const rk_incident *in, int reported, int locked)
{
    char fresh[33];
    const char *id = in->incident_id;
    if (!id) {
        uint8_t raw[16];
        rk_random(raw, sizeof raw);
        rk_hex(raw, sizeof raw, fresh);
        id = fresh;
    }
    if (!locked)
        rk_db_lock(db);
    /* An update keeps what it does not name (cause and prevention come later). */
    sqlite3_stmt *st = rk_db_sqlite_stmt(db,
        "INSERT INTO incidents(incident_id, kind, node, detected_ms, summary, details, actions, cause, prevention,"
        " updated_ms, reported_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"
        " ON CONFLICT(incident_id) DO UPDATE SET"
        " details = CASE WHEN ?6 = '' THEN details ELSE ?6 END, actions = CASE WHEN ?7 = '' THEN actions ELSE ?7 END,"
        " cause = CASE WHEN ?8 = '' THEN cause ELSE ?8 END, prevention = CASE WHEN ?9 = '' THEN prevention ELSE ?9 END,"
        " updated_ms = ?10, reported_ms = ?11 WHERE node = excluded.node");
    rk_rc rc = RK_ERR_STORE;
    if (st) {
        const char *text[] = {id, in->kind, in->node, NULL, in->summary, in->details, in->actions, in->cause,
                              in->prevention};
        for (int i = 0; i < 9; i++)
            if (i != 3)
                sqlite3_bind_text(st, i + 1, or_empty(text[i]), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 4, in->detected_ms ? in->detected_ms : rk_now_ms());
        sqlite3_bind_int64(st, 10, rk_now_ms());
        if (reported)
            sqlite3_bind_int64(st, 11, rk_now_ms());
        else
            sqlite3_bind_null(st, 11);
        rc = rk_db_step_rc(db, sqlite3_step(st));
        if (rc == RK_OK && sqlite3_changes(rk_db_handle(db)) == 0)
            rc = RK_ERR_CONFLICT; /* the id is another node's: left as it was */
        sqlite3_reset(st);
    }
    if (!locked)
        rk_db_unlock(db);
    if (rc == RK_OK)
        rk_warn("incident %s (%s) at %s: %s", id, in->kind, in->node, in->summary);
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

int rk_incident_accept(rk_db *db, const rk_registry *reg, const rk_request *req, rk_response *resp)
{
    int bad = 0;
    rk_incident in = {0};
    in.incident_id = rk_req_string(req, resp, "incident_id", 128);
    in.kind = in.incident_id ? rk_req_string(req, resp, "kind", 32) : NULL;
    in.summary = in.kind ? rk_req_string(req, resp, "summary", 500) : NULL;
    if (!in.summary)
        return -1;
    in.node = field(req, "node", 64, &bad);
    in.details = field(req, "details", 4000, &bad);
    in.actions = field(req, "actions", 4000, &bad);
    in.cause = field(req, "cause", 4000, &bad);
    in.prevention = field(req, "prevention", 4000, &bad);
    json_t *at = json_object_get(req->json, "detected_ms");
    in.detected_ms = json_is_integer(at) ? json_integer_value(at) : req->received_ms;
    if (bad || !rk_incident_kind_valid(in.kind)) {
        rk_reply_error(resp, 400, "invalid_field", "an incident needs a known kind and text fields within their caps");
        return -1;
    }
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

static json_t *incident_json(sqlite3_stmt *q)
{
    char detected[32], updated[32];
    rk_format_time(sqlite3_column_int64(q, 4), detected, sizeof detected);
    rk_format_time(sqlite3_column_int64(q, 10), updated, sizeof updated);
#define COL(i) ((const char *)sqlite3_column_text(q, i))
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)sqlite3_column_int64(q, 0),
                     "incident_id", COL(1), "kind", COL(2), "node", COL(3), "detected_at", detected, "summary",
                     COL(5), "details", COL(6), "actions", COL(7), "cause", COL(8), "prevention", COL(9),
                     "updated_at", updated);
#undef COL
}

void rk_incidents_serve(rk_db *db, const rk_request *req, rk_response *resp)
{
    char kind[40];
    int has_kind = rk_query_param(req, "kind", kind, sizeof kind);
    if (has_kind < 0) {
        rk_reply_error(resp, 400, "invalid_field", "kind is not a known incident kind");
        return;
    }
    json_t *arr = json_array();
    rk_db_scan_lock(db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(db,
        "SELECT seq, incident_id, kind, node, detected_ms, summary, details, actions, cause, prevention, updated_ms"
        " FROM incidents WHERE (?1 IS NULL OR kind = ?1) ORDER BY seq DESC LIMIT 500");
    if (q) {
        if (has_kind)
            sqlite3_bind_text(q, 1, kind, -1, SQLITE_STATIC);
        while (sqlite3_step(q) == SQLITE_ROW)
            json_array_append_new(arr, incident_json(q));
        sqlite3_reset(q);
    }
    rk_db_read_unlock(db);
    if (!q) {
        json_decref(arr);
        rk_reply_error(resp, 500, "store_error", "the incidents could not be read");
        return;
    }
    rk_reply_json(resp, 200, json_pack("{s:o}", "incidents", arr));
}

int64_t rk_incidents_count(rk_db *db, const char *kind)
{
    rk_db_scan_lock(db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(db, "SELECT count(*) FROM incidents WHERE (?1 IS NULL OR kind = ?1)");
    int64_t n = 0;
    if (q) {
        if (kind)
            sqlite3_bind_text(q, 1, kind, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            n = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
    }
    rk_db_read_unlock(db);
    return n;
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

/* The oldest unreported incident as a request body, or NULL. */
static char *next_unreported(rk_db *db, int64_t *seq)
{
    char *body = NULL;
    rk_db_lock(db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(db,
        "SELECT seq, incident_id, kind, node, detected_ms, summary, details, actions, cause, prevention"
        " FROM incidents WHERE reported_ms IS NULL ORDER BY seq LIMIT 1");
    if (q && sqlite3_step(q) == SQLITE_ROW) {
        *seq = sqlite3_column_int64(q, 0);
#define COL(i) ((const char *)sqlite3_column_text(q, i))
        json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s}", "incident_id", COL(1), "kind", COL(2),
                              "node", COL(3), "detected_ms", (json_int_t)sqlite3_column_int64(q, 4), "summary",
                              COL(5), "details", COL(6), "actions", COL(7), "cause", COL(8), "prevention", COL(9));
#undef COL
        body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
    }
    if (q)
        sqlite3_reset(q);
    rk_db_unlock(db);
    return body;
}

static void mark_reported(rk_db *db, int64_t seq)
{
    rk_db_lock(db);
    sqlite3_stmt *st = rk_db_sqlite_stmt(db, "UPDATE incidents SET reported_ms = ?1 WHERE seq = ?2");
    if (st) {
        sqlite3_bind_int64(st, 1, rk_now_ms());
        sqlite3_bind_int64(st, 2, seq);
        rk_db_step_rc(db, sqlite3_step(st));
        sqlite3_reset(st);
    }
    rk_db_unlock(db);
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
