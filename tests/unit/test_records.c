/* Unit tests: the records module on the store interface — its migration
 * (also over a database made before migrations), settling with kept
 * answers and conflicts (one by one, and a batch's entries in one commit), leaves, paging, later steps, and the iterations a
 * read-only tool uses (records and tree heads in order). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "store/db.h"
#include "records/records.h"
#include "records/records_log.h"
#include "pg_fixture.h"

static char dir[64];
static char path[256]; /* the store: a SQLite file or a PostgreSQL database */

/* The loop settlements are committed for, as on a node (rk_settle_later is
 * what production runs). */
static struct event_base *loop;

typedef struct settled_wait {
    int done;
    rk_rc rc;
} settled_wait;

static void on_settled(void *arg, rk_rc rc)
{
    settled_wait *w = arg;
    w->rc = rc;
    w->done = 1;
}

/* Settles as a flow does, and waits on the loop for the commit. */
static rk_rc settle(rk_db *db, const rk_record *r, const char *key, const char *request_hash, int status,
                    const char *body, rk_rc (*extra)(rk_db *db, void *arg), void *arg)
{
    rk_settlement s = {r, key, request_hash, body, status, extra, arg};
    settled_wait w = {0};
    rk_rc rc = rk_settle_later(db, loop, &s, on_settled, &w);
    if (rc != RK_OK)
        return rc;
    while (!w.done)
        event_base_loop(loop, EVLOOP_ONCE);
    return w.rc;
}

static int setup(void **state)
{
    if (!loop) {
        evthread_use_pthreads(); /* the committer wakes the loop */
        loop = event_base_new();
    }
    snprintf(dir, sizeof dir, "/tmp/rk-test-records-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    if (test_store_target(dir, "node", path, sizeof path) != 0)
        return -1;
    rk_db *db = NULL;
    if (rk_db_open(path, 0, &db) != RK_OK || rk_records_migrate(db) != RK_OK)
        return -1;
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    rk_db_loop_end(*state);
    rk_db_close(*state);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static rk_record sample(const char *xid, const char *outcome)
{
    rk_record r = {0};
    snprintf(r.exchange_id, sizeof r.exchange_id, "%s", xid);
    strcpy(r.side, "core");
    strcpy(r.requester, "city-a");
    strcpy(r.provider, "city-b");
    strcpy(r.business, "child_allowance");
    strcpy(r.item, "local_tax");
    strcpy(r.operator_id, "op-1");
    strcpy(r.subject, "42");
    r.requested_ms = 1700000000000;
    snprintf(r.outcome, sizeof r.outcome, "%s", outcome);
    return r;
}

/* Every record, as rk_records_each gives them. */
typedef struct seen {
    int64_t seqs[16];
    rk_record recs[16];
    uint8_t leaves[16][32]; /* each record's leaf, computed from its fields as read back */
    int n;
} seen;

static rk_rc collect(void *arg, int64_t seq, const rk_record *r)
{
    seen *s = arg;
    if (s->n == 16)
        return RK_ERR_TOO_LARGE;
    rk_record_leaf(r, s->leaves[s->n]);
    s->seqs[s->n] = seq;
    s->recs[s->n++] = *r;
    return RK_OK;
}

static void settle_keeps_the_first_answer(void **state)
{
    rk_db *db = *state;
    rk_record r = sample("city-a.x1", "provided");
    assert_int_equal(settle(db, &r, "city-a.x1", "hash-1", 200, "{\"status\":\"provided\"}", NULL, NULL), RK_OK);
    int status = 0;
    char *body = NULL;
    assert_int_equal(rk_answer_get(db, "city-a.x1", "core", "hash-1", &status, &body), RK_OK);
    assert_int_equal(status, 200);
    assert_string_equal(body, "{\"status\":\"provided\"}");
    free(body);
    assert_int_equal(rk_answer_get(db, "city-a.x1", "core", "hash-2", &status, &body), RK_ERR_CONFLICT);
    assert_int_equal(rk_answer_get(db, "city-a.x9", "core", "hash-1", &status, &body), RK_ERR_NOT_FOUND);
    /* settling the same exchange again is a conflict, and changes nothing */
    assert_int_equal(settle(db, &r, "city-a.x1", "hash-1", 200, "{}", NULL, NULL), RK_ERR_CONFLICT);
    assert_int_equal(rk_records_count(db), 1);
    /* an answer alone (no record) is kept under the side "answer" */
    assert_int_equal(settle(db, NULL, "q-1", "hash-q", 202, "{}", NULL, NULL), RK_OK);
    assert_int_equal(rk_answer_get(db, "q-1", "answer", "hash-q", &status, &body), RK_OK);
    assert_int_equal(status, 202);
    free(body);
    assert_int_equal(rk_records_count(db), 1);
}

/* `extra` runs in the same transaction: its failure undoes the record and
 * the answer. */
static rk_rc failing_extra(rk_db *db, void *arg)
{
    (void)db;
    (void)arg;
    return RK_ERR_INVALID;
}

static void a_failing_extra_settles_nothing(void **state)
{
    rk_db *db = *state;
    rk_record r = sample("city-a.x3", "provided");
    assert_int_equal(settle(db, &r, "city-a.x3", "h", 200, "{}", failing_extra, NULL), RK_ERR_INVALID);
    int status = 0;
    char *body = NULL;
    assert_int_equal(rk_answer_get(db, "city-a.x3", "core", "h", &status, &body), RK_ERR_NOT_FOUND);
    assert_int_equal(rk_records_count(db), 0);
    /* and the log has no gap: the next record is seq 1 */
    assert_int_equal(settle(db, &r, "city-a.x3", "h", 200, "{}", NULL, NULL), RK_OK);
    seen s = {0};
    assert_int_equal(rk_records_each(db, collect, &s), RK_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.seqs[0], 1);
}

/* The batch forms: entries settled in one commit each in its own
 * savepoint — one settled before takes its first answer, one failing its
 * extra a store_error, the others their own — and the results in order. */
static void entries_settle_alone_in_one_commit(void **state)
{
    rk_db *db = *state;
    rk_record before = sample("city-a.e1", "provided");
    assert_int_equal(settle(db, &before, "city-a.e1", "h1", 200, "{\"status\":\"first\"}", NULL, NULL), RK_OK);
    rk_record r[4] = {sample("city-a.e0", "no_data"), sample("city-a.e1", "no_data"), sample("city-a.e2", "x"),
                      sample("city-a.e3", "not_permitted")};
    rk_entry_answer e[5] = {0};
    const char *ids[5] = {"city-a.e0", "city-a.e1", "city-a.e2", "city-a.e3", "city-a.e4"};
    for (int i = 0; i < 4; i++) {
        e[i] = (rk_entry_answer){.id = ids[i], .status = i == 3 ? 403 : 200, .settle = 1,
                                 .s = {.record = &r[i], .key = ids[i], .request_hash = i == 1 ? "h1" : "h",
                                       .status = i == 3 ? 403 : 200}};
        e[i].text = strdup(i == 3 ? "{\"error\":{\"code\":\"not_permitted\",\"message\":\"m\"}}"
                                  : "{\"status\":\"no_data\"}");
    }
    e[2].s.extra = failing_extra;
    e[4] = (rk_entry_answer){.id = ids[4], .status = 502, .text = strdup("{\"error\":{\"code\":\"upstream_unavailable\","
                                                                         "\"message\":\"m\"}}")};
    rk_settle_entries(db, e, 5, "exchange_id");
    assert_int_equal(e[0].s.rc, RK_OK);
    assert_int_equal(e[1].s.rc, RK_ERR_CONFLICT);
    assert_string_equal(e[1].text, "{\"status\":\"first\"}"); /* the first answer */
    assert_int_equal(e[2].s.rc, RK_ERR_INVALID);
    assert_int_equal(e[2].status, 500);
    assert_non_null(strstr(e[2].text, "store_error"));
    assert_int_equal(e[3].s.rc, RK_OK);
    assert_int_equal(rk_records_count(db), 3); /* e1 before, e0 and e3 now; e2 and e4 not */
    int status = 0;
    char *body = NULL;
    assert_int_equal(rk_answer_get(db, "city-a.e2", "core", "h", &status, &body), RK_ERR_NOT_FOUND);
    assert_int_equal(rk_answer_get(db, "city-a.e4", "core", "h", &status, &body), RK_ERR_NOT_FOUND);
    assert_int_equal(rk_answer_entry(db, "city-a.e3", "core", "h", "exchange_id", &status, &body), 1);
    assert_int_equal(status, 403);
    free(body);
    assert_int_equal(rk_answer_entry(db, "city-a.e3", "core", "other", "exchange_id", &status, &body), 1);
    assert_int_equal(status, 409);
    assert_non_null(strstr(body, "\"conflict\""));
    free(body);
    assert_int_equal(rk_answer_entry(db, "city-a.e9", "core", "h", "exchange_id", &status, &body), 0);
    json_t *out = rk_entry_results(e, 5, "exchange_id");
    json_t *results = json_object_get(out, "results");
    assert_int_equal(json_array_size(results), 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(results, i), "exchange_id")), ids[i]);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(results, 3), "http_status")), 403);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(results, 4), "http_status")), 502);
    json_decref(out);
    for (int i = 0; i < 5; i++)
        free(e[i].text);
}

static void leaves_are_deterministic_and_field_sensitive(void **state)
{
    rk_record a = sample("city-a.x2", "provided"), b = a;
    uint8_t la[32], lb[32];
    rk_record_leaf(&a, la);
    rk_record_leaf(&b, lb);
    assert_memory_equal(la, lb, 32);
    strcpy(b.operator_id, "op-2");
    rk_record_leaf(&b, lb);
    assert_memory_not_equal(la, lb, 32);
}

/* The leaf is SHA-256(0x00 || the canonical JSON by jansson): records
 * written the fast way (plain ASCII) and the general way (quotes,
 * backslashes, control characters, Japanese) give the same bytes. */
static void leaf_is_the_canonical_json(void **state)
{
    static const char *const reasons[] = {"", "plain reason", "quote \" in it", "back\\slash", "tab\tand\nnewline",
                                          "\xe6\x9c\xac\xe4\xba\xba\xe7\xa2\xba\xe8\xaa\x8d", "slash / and ~"};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        for (int variant = 0; variant < 8; variant++) {
            int provided = variant & 1, with_condition = variant & 2, with_catalog = variant & 4;
            rk_record r = sample("city-a.canon", "provided");
            snprintf(r.reason, sizeof r.reason, "%s", reasons[i]);
            strcpy(r.payload_sha256, "ab12");
            r.provided_ms = provided ? 1700000000123 : 0;
            if (with_condition) /* a key of its own, in sorted place; none when there is no condition */
                strcpy(r.condition, "fiscal_year=2025");
            r.catalog_version = with_catalog ? 20260701 : 0; /* the same: a key only when set */
            if (variant == 5)
                r.requested_ms = -1234; /* a negative number, as jansson writes it */
            json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:s,s:s,s:s}", "exchange_id",
                                  r.exchange_id, "side", r.side, "requester", r.requester, "provider", r.provider,
                                  "business", r.business, "item", r.item, "operator", r.operator_id, "subject",
                                  r.subject, "requested_ms", (json_int_t)r.requested_ms, "provided_ms",
                                  r.provided_ms ? json_integer(r.provided_ms) : json_null(), "outcome", r.outcome,
                                  "reason", r.reason, "payload_sha256", r.payload_sha256);
            if (with_condition)
                json_object_set_new(j, "condition", json_string(r.condition));
            if (with_catalog)
                json_object_set_new(j, "catalog_version", json_integer(r.catalog_version));
            char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
            uint8_t want[32], got[32];
            rk_merkle_leaf_hash(text, strlen(text), want);
            rk_record_leaf(&r, got);
            assert_memory_equal(want, got, 32);
            free(text);
            json_decref(j);
        }
    }
}

static void list_pages_newest_first(void **state)
{
    rk_db *db = *state;
    char xid[32];
    for (int i = 0; i < 5; i++) {
        snprintf(xid, sizeof xid, "city-a.p%d", i);
        rk_record r = sample(xid, "no_data");
        if (i == 3) {
            strcpy(r.subject, "77");
            r.provided_ms = 1700000001000;
        }
        assert_int_equal(settle(db, &r, xid, "h", 200, "{}", NULL, NULL), RK_OK);
    }
    rk_records_query q = {.limit = 2};
    json_t *page = NULL;
    int64_t next = 0;
    assert_int_equal(rk_records_list(db, &q, &page, &next), RK_OK);
    assert_int_equal(json_array_size(page), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(page, 0), "exchange_id")), "city-a.p4");
    assert_true(next > 0);
    json_decref(page);
    q.before_seq = next;
    assert_int_equal(rk_records_list(db, &q, &page, &next), RK_OK);
    assert_string_equal(json_string_value(json_object_get(json_array_get(page, 0), "exchange_id")), "city-a.p2");
    json_decref(page);
    rk_records_query one = {.exchange_id = "city-a.p3", .limit = 10};
    assert_int_equal(rk_records_list(db, &one, &page, &next), RK_OK);
    assert_int_equal(json_array_size(page), 1);
    assert_int_equal(next, 0);
    json_t *rec = json_array_get(page, 0);
    assert_int_equal(json_integer_value(json_object_get(rec, "seq")), 4);
    assert_string_equal(json_string_value(json_object_get(rec, "subject")), "77");
    assert_string_equal(json_string_value(json_object_get(rec, "operator")), "op-1");
    assert_true(json_is_string(json_object_get(rec, "provided_at")));
    json_decref(page);
    rk_records_query person = {.subject = "42", .limit = 10};
    assert_int_equal(rk_records_list(db, &person, &page, &next), RK_OK);
    assert_int_equal(json_array_size(page), 4);
    assert_true(json_is_null(json_object_get(json_array_get(page, 0), "provided_at"))); /* nothing provided */
    json_decref(page);
}

static void steps_are_appended_once_and_found(void **state)
{
    rk_db *db = *state;
    rk_record r = sample("city-a.s1", "provided");
    strcpy(r.payload_sha256, "ab");
    r.provided_ms = 1700000002000;
    assert_int_equal(settle(db, &r, "city-a.s1", "h", 200, "{}", NULL, NULL), RK_OK);
    rk_record found;
    assert_int_equal(rk_records_find(db, "city-a.s1", "core", "provided", &found), RK_OK);
    assert_memory_equal(&found, &r, sizeof r);
    assert_int_equal(rk_records_find(db, "city-a.s1", "core", NULL, &found), RK_OK);
    assert_int_equal(rk_records_find(db, "city-a.s1", "provider", NULL, &found), RK_ERR_NOT_FOUND);
    assert_int_equal(rk_records_find(db, "city-a.s1", "core", "deletion_requested", &found), RK_ERR_NOT_FOUND);
    assert_int_equal(rk_records_append_step(db, &r, "deletion_requested", "asked", 1700000003000), RK_OK);
    assert_int_equal(rk_records_append_step(db, &r, "deletion_requested", "asked", 1700000004000), RK_OK); /* again */
    assert_int_equal(rk_records_count(db), 2);
    assert_int_equal(rk_records_find(db, "city-a.s1", "core", "deletion_requested", &found), RK_OK);
    assert_int_equal(found.requested_ms, 1700000003000);
    assert_int_equal(found.provided_ms, 0);
    assert_string_equal(found.payload_sha256, "");
    assert_string_equal(found.reason, "asked");
    /* the first record of the exchange when no outcome is asked */
    assert_int_equal(rk_records_find(db, "city-a.s1", "core", NULL, &found), RK_OK);
    assert_string_equal(found.outcome, "provided");
}

/* The records in seq order with their stored leaves, and the log's leaves. */
static void records_are_iterated_in_log_order(void **state)
{
    rk_db *db = *state;
    char xid[32];
    for (int i = 0; i < 3; i++) {
        snprintf(xid, sizeof xid, "city-a.e%d", i);
        rk_record r = sample(xid, "provided");
        assert_int_equal(settle(db, &r, xid, "h", 200, "{}", NULL, NULL), RK_OK);
        assert_int_equal(settle(db, &r, xid, "h", 200, "{}", NULL, NULL), RK_ERR_CONFLICT); /* no gap */
    }
    seen s = {0};
    assert_int_equal(rk_records_each(db, collect, &s), RK_OK);
    assert_int_equal(s.n, 3);
    for (int i = 0; i < 3; i++) { /* read back, each gives the leaf it was written with */
        snprintf(xid, sizeof xid, "city-a.e%d", i);
        rk_record w = sample(xid, "provided");
        uint8_t want[32];
        rk_record_leaf(&w, want);
        assert_memory_equal(s.leaves[i], want, 32);
        assert_int_equal(s.seqs[i], i + 1);
        snprintf(xid, sizeof xid, "city-a.e%d", i);
        assert_string_equal(s.recs[i].exchange_id, xid);
    }
}

static rk_rc stop_at_two(void *arg, int64_t seq, const rk_record *r)
{
    (void)r;
    *(int64_t *)arg = seq;
    return seq == 2 ? RK_ERR_EXISTS : RK_OK;
}

static rk_rc insert_head(rk_db *db, void *arg)
{
    int64_t size = *(int64_t *)arg;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO tree_heads(size, root, time_ms, signature) VALUES (?, ?, ?, ?)");
    if (!st)
        return RK_ERR_STORE;
    rk_bind_int(st, 1, size);
    rk_bind_text(st, 2, "00");
    rk_bind_int(st, 3, 1000 + size);
    rk_bind_text(st, 4, "sig");
    return rk_stmt_exec(st);
}

typedef struct heads_seen {
    int64_t sizes[8], times[8];
    int n;
} heads_seen;

static rk_rc collect_head(void *arg, const rk_tree_head_row *row)
{
    heads_seen *h = arg;
    if (h->n == 8 || !row->root_hex || !row->signature_b64 || strcmp(row->signature_b64, "sig") != 0)
        return RK_ERR_INVALID;
    h->sizes[h->n] = row->size;
    h->times[h->n++] = row->time_ms;
    return RK_OK;
}

/* What `renkei records verify` does: a read-only open, records and heads
 * in order, no write. */
static void a_read_only_tool_iterates_records_and_heads(void **state)
{
    rk_db *db = *state;
    char xid[32];
    for (int i = 0; i < 3; i++) {
        snprintf(xid, sizeof xid, "city-a.t%d", i);
        rk_record r = sample(xid, "provided");
        assert_int_equal(settle(db, &r, xid, "h", 200, "{}", NULL, NULL), RK_OK);
    }
    int64_t sizes[] = {3, 1, 2};
    for (int i = 0; i < 3; i++)
        assert_int_equal(rk_db_write(db, insert_head, &sizes[i]), RK_OK);
    rk_db *ro = NULL;
    assert_int_equal(rk_db_open(path, RK_DB_READONLY, &ro), RK_OK);
    seen s = {0};
    assert_int_equal(rk_records_each(ro, collect, &s), RK_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(rk_records_count(ro), 3);
    int64_t last = 0;
    assert_int_equal(rk_records_each(ro, stop_at_two, &last), RK_ERR_EXISTS); /* fn's result, at once */
    assert_int_equal(last, 2);
    heads_seen h = {0};
    assert_int_equal(rk_tree_heads_each(ro, collect_head, &h), RK_OK);
    assert_int_equal(h.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(h.sizes[i], i + 1);
        assert_int_equal(h.times[i], 1000 + i + 1);
    }
    rk_record r = sample("city-a.t9", "provided");
    assert_int_not_equal(settle(ro, &r, "city-a.t9", "h", 200, "{}", NULL, NULL), RK_OK);
    assert_int_not_equal(rk_records_migrate(ro), RK_OK);
    rk_db_close(ro);
    assert_int_equal(rk_records_count(db), 3);
}

static rk_rc legacy_row(rk_db *db, void *arg)
{
    (void)arg;
    rk_record r = sample("city-a.o1", "provided"); /* a record as the renkei of then wrote it */
    uint8_t leaf[32];
    char hex[65];
    rk_record_leaf(&r, leaf);
    rk_merkle_hex(leaf, hex);
    rk_stmt *rec = rk_db_stmt(db, "INSERT INTO records(exchange_id, side, requester, provider, business, item,"
                                  " operator, subject, requested_ms, outcome, reason, payload_sha256, leaf_hash)"
                                  " VALUES ('city-a.o1', 'core', 'city-a', 'city-b', 'child_allowance', 'local_tax',"
                                  " 'op-1', '42', 1700000000000, 'provided', '', '', ?)");
    rk_bind_text(rec, 1, hex);
    rk_rc rc = rk_stmt_exec(rec);
    if (rc != RK_OK)
        return rc;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO answers(key, side, request_hash, status, body, at_ms)"
                                 " VALUES ('old', 'core', 'h0', 200, '{\"old\":1}', 1)");
    return st ? rk_stmt_exec(st) : RK_ERR_STORE;
}

/* The records tables as renkei made them before migrations. */
static const char legacy_records_tables[] =
    "CREATE TABLE IF NOT EXISTS records ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, exchange_id TEXT NOT NULL, side TEXT NOT NULL,"
    "  requester TEXT NOT NULL, provider TEXT NOT NULL, business TEXT NOT NULL, item TEXT NOT NULL,"
    "  operator TEXT NOT NULL, subject TEXT NOT NULL, requested_ms INTEGER NOT NULL, provided_ms INTEGER,"
    "  outcome TEXT NOT NULL, reason TEXT NOT NULL, payload_sha256 TEXT NOT NULL, leaf_hash TEXT NOT NULL,"
    "  UNIQUE (exchange_id, side, outcome));"
    "CREATE TABLE IF NOT EXISTS tree_heads ("
    "  size INTEGER PRIMARY KEY, root TEXT NOT NULL, time_ms INTEGER NOT NULL, signature TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS records_subject ON records(subject);"
    "CREATE TABLE IF NOT EXISTS answers ("
    "  id INTEGER PRIMARY KEY, key TEXT NOT NULL, side TEXT NOT NULL, request_hash TEXT NOT NULL,"
    "  status INTEGER NOT NULL, body TEXT NOT NULL, at_ms INTEGER NOT NULL, UNIQUE (key, side));";

/* A database made before migrations (those tables, no version) opens: the
 * migration keeps its tables and rows. */
static void a_database_made_before_migrations_opens(void **state)
{
    (void)state;
    if (test_store_is_pg())
        skip(); /* only SQLite stores were made before migrations */
    char old[160];
    snprintf(old, sizeof old, "%s/old.db", dir);
    rk_db *db = NULL;
    const char *const legacy[] = {legacy_records_tables};
    assert_int_equal(rk_db_open(old, 0, &db), RK_OK);
    assert_int_equal(rk_db_migrate(db, "legacy", legacy, 1), RK_OK); /* as a role store ran it */
    assert_int_equal(rk_db_write(db, legacy_row, NULL), RK_OK);
    rk_db_close(db);
    assert_int_equal(rk_db_open(old, 0, &db), RK_OK);
    assert_int_equal(rk_records_migrate(db), RK_OK);
    assert_int_equal(rk_records_migrate(db), RK_OK); /* again: nothing to do */
    int status = 0;
    char *body = NULL;
    assert_int_equal(rk_answer_get(db, "old", "core", "h0", &status, &body), RK_OK);
    assert_string_equal(body, "{\"old\":1}");
    free(body);
    rk_record r = sample("city-a.o2", "provided");
    assert_int_equal(settle(db, &r, "city-a.o2", "h", 200, "{}", NULL, NULL), RK_OK);
    seen s = {0};
    assert_int_equal(rk_records_each(db, collect, &s), RK_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.seqs[1], 2);
    rk_record before = sample("city-a.o1", "provided");
    uint8_t want[32];
    rk_record_leaf(&before, want);
    assert_memory_equal(s.leaves[0], want, 32); /* the record made before keeps its leaf */
    rk_db_close(db);
}

/* A store as the renkei before compact rows left it (schema version 8), with
 * records of every shape: after the migration every record reads back the
 * same, with the same leaf; digests are 32 bytes; appends and conflicts go on
 * as before; an operator's UPDATE through the view changes the record. */
static const rk_record *old_rows(void)
{
    static rk_record rows[5];
    rows[0] = sample("city-a.m1", "provided");
    rows[0].provided_ms = 1700000000040;
    strcpy(rows[0].payload_sha256, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    rows[1] = sample("city-a.m2", "refused");
    strcpy(rows[1].reason, "not \"allowed\" \\ 法19条 \xe2\x80\x94 no");
    strcpy(rows[1].condition, "age_over:20");
    rows[1].catalog_version = 7;
    strcpy(rows[1].operator_id, "オペ-1");
    rows[2] = sample("city-a.m3", "provided");
    strcpy(rows[2].payload_sha256, "ABCDEF"); /* not canonical: kept as text */
    rows[3] = rows[0];
    strcpy(rows[3].outcome, "deleted");
    strcpy(rows[3].reason, "第8-5");
    rows[3].payload_sha256[0] = '\0';
    rows[3].provided_ms = 0;
    rows[4] = sample("city-a.m5", "no_data");
    strcpy(rows[4].side, "requester");
    strcpy(rows[4].requester, "pref-b");
    strcpy(rows[4].payload_sha256, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
    return rows;
}

static rk_rc insert_old_rows(rk_db *db, void *arg)
{
    (void)arg;
    const rk_record *rows = old_rows();
    for (int i = 0; i < 5; i++) {
        const rk_record *r = &rows[i];
        rk_stmt *st = rk_db_stmt(db, "INSERT INTO records(seq, exchange_id, side, requester, provider, business, item,"
                                     " operator, subject, requested_ms, provided_ms, outcome, reason, payload_sha256,"
                                     " condition, catalog_version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
        rk_bind_int(st, 1, i + 1);
        rk_bind_text(st, 2, r->exchange_id);
        rk_bind_text(st, 3, r->side);
        rk_bind_text(st, 4, r->requester);
        rk_bind_text(st, 5, r->provider);
        rk_bind_text(st, 6, r->business);
        rk_bind_text(st, 7, r->item);
        rk_bind_text(st, 8, r->operator_id);
        rk_bind_text(st, 9, r->subject);
        rk_bind_int(st, 10, r->requested_ms);
        if (r->provided_ms)
            rk_bind_int(st, 11, r->provided_ms);
        else
            rk_bind_null(st, 11);
        rk_bind_text(st, 12, r->outcome);
        rk_bind_text(st, 13, r->reason);
        rk_bind_text(st, 14, r->payload_sha256);
        rk_bind_text(st, 15, r->condition);
        rk_bind_int(st, 16, r->catalog_version);
        rk_rc rc = rk_stmt_exec(st);
        if (rc != RK_OK)
            return rc;
    }
    return RK_OK;
}

typedef struct counts {
    int64_t blobs, texts, names, max_id;
} counts;

static rk_rc count_rows(rk_db *db, void *arg)
{
    counts *c = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT (SELECT COUNT(*) FROM record_rows WHERE payload IS NOT NULL),"
                                " (SELECT COUNT(*) FROM record_rows WHERE payload_text IS NOT NULL),"
                                " (SELECT COUNT(*) FROM record_names), (SELECT MAX(id) FROM record_names)");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK) {
        c->blobs = rk_col_int(q, 0);
        c->texts = rk_col_int(q, 1);
        c->names = rk_col_int(q, 2);
        c->max_id = rk_col_int(q, 3);
    }
    return rc;
}

static rk_rc append_one(rk_db *db, void *arg)
{
    return rk_record_append(db, arg);
}

static rk_rc update_through_view(rk_db *db, void *arg)
{
    (void)arg;
    rk_stmt *st = rk_db_stmt(db, "UPDATE records SET reason = 'rewritten', outcome = 'brand_new' WHERE seq = 1");
    return rk_stmt_exec(st);
}

static void an_old_store_is_converted_in_place(void **state)
{
    (void)state;
    char target[256];
    assert_int_equal(test_store_target(dir, "old8", target, sizeof target), 0);
    rk_db *db = NULL;
    assert_int_equal(rk_db_open(target, 0, &db), RK_OK);
    assert_int_equal(rk_records_migrate_to(db, 8), RK_OK); /* the schema the renkei before made */
    assert_int_equal(rk_db_write(db, insert_old_rows, NULL), RK_OK);
    seen before = {0};
    assert_int_equal(rk_records_each(db, collect, &before), RK_OK);
    assert_int_equal(before.n, 5);
    const rk_record *rows = old_rows();
    for (int i = 0; i < 5; i++) { /* the leaves the old rows were logged with */
        uint8_t want[32];
        rk_record_leaf(&rows[i], want);
        assert_memory_equal(before.leaves[i], want, 32);
    }
    rk_db_close(db);

    assert_int_equal(rk_db_open(target, 0, &db), RK_OK);
    assert_int_equal(rk_records_migrate(db), RK_OK);
    assert_int_equal(rk_records_migrate(db), RK_OK); /* again: nothing to do */
    seen after = {0};
    assert_int_equal(rk_records_each(db, collect, &after), RK_OK);
    assert_int_equal(after.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(after.seqs[i], before.seqs[i]);
        assert_memory_equal(&after.recs[i], &before.recs[i], sizeof(rk_record));
        assert_memory_equal(after.leaves[i], before.leaves[i], 32);
    }
    counts c = {0};
    assert_int_equal(rk_db_read(db, count_rows, &c), RK_OK);
    assert_int_equal(c.blobs, 2); /* the canonical digests, now 32 bytes */
    assert_int_equal(c.texts, 1); /* "ABCDEF" stays text */
    int64_t names = c.names;

    /* appends go on after them, with the same names; a retry is a conflict */
    rk_record r = sample("city-a.m6", "provided");
    strcpy(r.payload_sha256, rows[0].payload_sha256);
    assert_int_equal(settle(db, &r, "city-a.m6", "h", 200, "{}", NULL, NULL), RK_OK);
    assert_int_equal(settle(db, &r, "city-a.m6", "h", 200, "{}", NULL, NULL), RK_ERR_CONFLICT);
    rk_record dup = rows[0];
    assert_int_equal(rk_db_write(db, append_one, &dup), RK_ERR_CONFLICT); /* recorded before the migration */
    rk_record found;
    assert_int_equal(rk_records_find(db, "city-a.m2", "core", NULL, &found), RK_OK);
    assert_memory_equal(&found, &before.recs[1], sizeof found);
    seen more = {0};
    assert_int_equal(rk_records_each(db, collect, &more), RK_OK);
    assert_int_equal(more.n, 6);
    assert_int_equal(more.seqs[5], 6);
    uint8_t want[32];
    rk_record_leaf(&r, want);
    char *got_text = rk_record_leaf_text(&more.recs[5]), *want_text = rk_record_leaf_text(&r);
    assert_string_equal(got_text, want_text);
    free(got_text);
    free(want_text);
    assert_memory_equal(more.leaves[5], want, 32);
    assert_int_equal(rk_db_read(db, count_rows, &c), RK_OK);
    assert_int_equal(c.names, names); /* no new name */
    assert_int_equal(c.max_id, names); /* and no id spent */
    assert_int_equal(c.blobs, 3);

    /* an operator's SQL through the view changes the record, and its leaf */
    assert_int_equal(rk_db_write(db, update_through_view, NULL), RK_OK);
    memset(&more, 0, sizeof more);
    assert_int_equal(rk_records_each(db, collect, &more), RK_OK);
    assert_string_equal(more.recs[0].reason, "rewritten");
    assert_string_equal(more.recs[0].outcome, "brand_new");
    assert_string_equal(more.recs[0].payload_sha256, rows[0].payload_sha256);
    assert_memory_not_equal(more.leaves[0], before.leaves[0], 32);
    assert_int_equal(rk_records_count(db), 6);
    rk_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(settle_keeps_the_first_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failing_extra_settles_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(entries_settle_alone_in_one_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(leaves_are_deterministic_and_field_sensitive, setup, teardown),
        cmocka_unit_test(leaf_is_the_canonical_json),
        cmocka_unit_test_setup_teardown(list_pages_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(steps_are_appended_once_and_found, setup, teardown),
        cmocka_unit_test_setup_teardown(records_are_iterated_in_log_order, setup, teardown),
        cmocka_unit_test_setup_teardown(a_read_only_tool_iterates_records_and_heads, setup, teardown),
        cmocka_unit_test_setup_teardown(a_database_made_before_migrations_opens, setup, teardown),
        cmocka_unit_test_setup_teardown(an_old_store_is_converted_in_place, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, test_store_group_end);
    if (loop)
        event_base_free(loop);
    return failed;
}
