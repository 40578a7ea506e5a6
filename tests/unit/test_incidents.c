/* Unit tests: incidents through node/incidents.h on a temporary database —
 * migrations (also over the tables of before versions), record and update
 * by the same id, another node's id refused, the outbox (reported or not),
 * the list's page and its kind filter, counts, and a write from an event
 * loop (rk_incident_store_later). The reporter's thread needs a peer to
 * post to: the system tests cover it. On SQLite, and on PostgreSQL when
 * RENKEI_TEST_STORE=postgres (unit/test_incidents_pg; pg_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "lib/log.h"
#include "net/http_server.h"
#include "node/incidents.h"
#include "pg_fixture.h"
#include "store/db.h"

static char dir[64];
static char path[160]; /* the store: sqlite:<dir>/node.db or a new PostgreSQL database */

static int setup(void **state)
{
    evthread_use_pthreads(); /* the committer wakes the test's event loop */
    snprintf(dir, sizeof dir, "/tmp/rk-test-incidents-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    if (test_store_target(dir, "node", path, sizeof path) != 0)
        return -1;
    rk_db *db = NULL;
    if (rk_db_open(path, 0, &db) != RK_OK || rk_incidents_migrate(db) != RK_OK)
        return -1;
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    rk_db_close(*state);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---------- helpers: the list as a client sees it ---------- */

static json_t *serve(rk_db *db, const char *query)
{
    rk_request req = {.method = "GET", .path = "/v1/incidents", .query = query, .body = ""};
    rk_response resp = {0};
    rk_incidents_serve(db, &req, &resp);
    assert_int_equal(resp.status, 200);
    json_t *body = json_loadb(resp.body, resp.body_len, 0, NULL);
    free(resp.body);
    assert_non_null(body);
    json_t *list = json_incref(json_object_get(body, "incidents"));
    json_decref(body);
    assert_true(json_is_array(list));
    return list;
}

static json_t *find(json_t *list, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
        if (strcmp(json_string_value(json_object_get(v, "incident_id")), id) == 0)
            return v;
    return NULL;
}

static const char *str(json_t *incident, const char *field)
{
    return json_string_value(json_object_get(incident, field));
}

typedef struct outbox_state {
    const char *id;
    int found, unreported;
} outbox_state;

static rk_rc read_outbox(rk_db *db, void *arg)
{
    outbox_state *o = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT reported_ms FROM incidents WHERE incident_id = ?");
    if (!q)
        return RK_ERR_STORE;
    rk_bind_text(q, 1, o->id);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK) {
        o->found = 1;
        o->unreported = rk_col_is_null(q, 0);
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

/* 1: in the outbox, 0: reported, -1: no such incident. */
static int in_outbox(rk_db *db, const char *id)
{
    outbox_state o = {id, 0, 0};
    assert_int_equal(rk_db_read(db, read_outbox, &o), RK_OK);
    return o.found ? o.unreported : -1;
}

/* ---------- tests ---------- */

static void test_record_and_update_by_same_id(void **state)
{
    rk_db *db = *state;
    rk_incident first = {.incident_id = "leak-1", .kind = "leak", .node = "node-a", .detected_ms = 1700000000000,
                         .summary = "a printout left on a desk", .details = "found by the guard",
                         .actions = "collected"};
    assert_int_equal(rk_incident_store(db, &first, 0, 0), RK_OK);
    rk_incident update = {.incident_id = "leak-1", .kind = "leak", .node = "node-a", .summary = "ignored on update",
                          .cause = "no clean-desk check", .prevention = "a checklist"};
    assert_int_equal(rk_incident_store(db, &update, 0, 0), RK_OK);

    json_t *list = serve(db, "");
    assert_int_equal(json_array_size(list), 1);
    json_t *i = find(list, "leak-1");
    assert_non_null(i);
    assert_string_equal(str(i, "kind"), "leak");
    assert_string_equal(str(i, "node"), "node-a");
    assert_string_equal(str(i, "summary"), "a printout left on a desk");
    assert_string_equal(str(i, "details"), "found by the guard"); /* kept: the update names none */
    assert_string_equal(str(i, "actions"), "collected");
    assert_string_equal(str(i, "cause"), "no clean-desk check");
    assert_string_equal(str(i, "prevention"), "a checklist");
    assert_true(json_integer_value(json_object_get(i, "seq")) > 0);
    json_decref(list);
    assert_int_equal(rk_incidents_count_kind(db, "leak"), 1);
}

static void test_another_nodes_id_is_a_conflict(void **state)
{
    rk_db *db = *state;
    rk_incident mine = {.incident_id = "x-1", .kind = "outage", .node = "node-a", .summary = "down",
                        .actions = "restarted"};
    assert_int_equal(rk_incident_store(db, &mine, 1, 0), RK_OK);
    rk_incident theirs = {.incident_id = "x-1", .kind = "outage", .node = "node-b", .summary = "down",
                          .actions = "nothing"};
    assert_int_equal(rk_incident_store(db, &theirs, 1, 0), RK_ERR_CONFLICT);
    json_t *list = serve(db, "");
    json_t *i = find(list, "x-1");
    assert_non_null(i);
    assert_string_equal(str(i, "node"), "node-a");
    assert_string_equal(str(i, "actions"), "restarted");
    json_decref(list);
}

static void test_fresh_id_and_detected_time(void **state)
{
    rk_db *db = *state;
    rk_incident a = {.kind = "clock", .node = "node-a", .summary = "off by 9 s"};
    rk_incident b = {.kind = "clock", .node = "node-a", .summary = "off by 9 s"};
    assert_int_equal(rk_incident_store(db, &a, 0, 0), RK_OK);
    assert_int_equal(rk_incident_store(db, &b, 0, 0), RK_OK);
    json_t *list = serve(db, "kind=clock");
    assert_int_equal(json_array_size(list), 2); /* two fresh ids */
    const char *id0 = str(json_array_get(list, 0), "incident_id"), *id1 = str(json_array_get(list, 1), "incident_id");
    assert_int_equal(strlen(id0), 32);
    assert_string_not_equal(id0, id1);
    assert_non_null(str(json_array_get(list, 0), "detected_at"));
    json_decref(list);
}

static void test_outbox(void **state)
{
    rk_db *db = *state;
    rk_incident raised = {.incident_id = "o-1", .kind = "outage", .node = "node-a", .summary = "gateway gone"};
    assert_int_equal(rk_incident_store(db, &raised, 0, 0), RK_OK);
    assert_int_equal(in_outbox(db, "o-1"), 1);
    rk_incident received = {.incident_id = "o-2", .kind = "outage", .node = "node-b", .summary = "at the core"};
    assert_int_equal(rk_incident_store(db, &received, 1, 0), RK_OK);
    assert_int_equal(in_outbox(db, "o-2"), 0);
    /* An update raised here again goes out again: the core takes it by its id. */
    rk_incident again = {.incident_id = "o-2", .kind = "outage", .node = "node-b", .summary = "at the core",
                         .cause = "a cut cable"};
    assert_int_equal(rk_incident_store(db, &again, 0, 0), RK_OK);
    assert_int_equal(in_outbox(db, "o-2"), 1);
    assert_int_equal(in_outbox(db, "o-3"), -1);
}

static void test_list_page_newest_first_and_kind(void **state)
{
    rk_db *db = *state;
    char id[32];
    for (int n = 0; n < 510; n++) {
        snprintf(id, sizeof id, "p-%03d", n);
        rk_incident in = {.incident_id = id, .kind = n % 2 ? "leak" : "outage", .node = "node-a",
                          .summary = "one of many"};
        assert_int_equal(rk_incident_store(db, &in, 1, 0), RK_OK);
    }
    json_t *list = serve(db, "");
    assert_int_equal(json_array_size(list), 500); /* one page: the newest 500 */
    assert_string_equal(str(json_array_get(list, 0), "incident_id"), "p-509");
    assert_string_equal(str(json_array_get(list, 499), "incident_id"), "p-010");
    json_int_t prev = json_integer_value(json_object_get(json_array_get(list, 0), "seq"));
    for (size_t i = 1; i < json_array_size(list); i++) {
        json_int_t seq = json_integer_value(json_object_get(json_array_get(list, i), "seq"));
        assert_true(seq < prev);
        prev = seq;
    }
    json_decref(list);

    list = serve(db, "kind=leak");
    assert_int_equal(json_array_size(list), 255);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
        assert_string_equal(str(v, "kind"), "leak");
    json_decref(list);

    list = serve(db, "kind=gossip"); /* not validated: an empty list */
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);

    rk_request req = {.method = "GET", .path = "/v1/incidents", .body = "",
                      .query = "kind=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    rk_response resp = {0};
    rk_incidents_serve(db, &req, &resp);
    assert_int_equal(resp.status, 400);
    free(resp.body);
}

static void test_count_kind(void **state)
{
    rk_db *db = *state;
    assert_int_equal(rk_incidents_count_kind(db, "leak"), 0);
    assert_int_equal(rk_incidents_count_kind(db, NULL), 0);
    const char *kinds[] = {"leak", "leak", "outage", "check_code_mismatch"};
    for (int n = 0; n < 4; n++) {
        rk_incident in = {.kind = kinds[n], .node = "node-a", .summary = "s"};
        assert_int_equal(rk_incident_store(db, &in, 0, 0), RK_OK);
    }
    assert_int_equal(rk_incidents_count_kind(db, "leak"), 2);
    assert_int_equal(rk_incidents_count_kind(db, "check_code_mismatch"), 1);
    assert_int_equal(rk_incidents_count_kind(db, "clock"), 0);
    assert_int_equal(rk_incidents_count_kind(db, NULL), 4);
    assert_int_equal(rk_incidents_count(db, NULL), 4);

    /* A tool's view: read-only, while the node keeps it open. */
    rk_db *ro = NULL;
    assert_int_equal(rk_db_open(path, RK_DB_READONLY, &ro), RK_OK);
    assert_int_equal(rk_incidents_count_kind(ro, "leak"), 2);
    rk_db_close(ro);
}

static void test_count_without_table_is_an_error(void **state)
{
    (void)state;
    char other[160];
    assert_int_equal(test_store_target(dir, "empty", other, sizeof other), 0);
    rk_db *db = NULL;
    assert_int_equal(rk_db_open(other, 0, &db), RK_OK);
    assert_int_equal(rk_incidents_count_kind(db, "leak"), -1);
    assert_int_equal(rk_incidents_count(db, "leak"), 0);
    rk_db_close(db);
}

/* A database made before versions: the tables exist, schema_versions does
 * not. Those were SQLite's; on PostgreSQL the same tables in its spelling. */
static rk_rc old_tables(rk_db *db, void *arg)
{
    (void)arg;
    rk_stmt *st = test_store_is_pg() ? rk_db_stmt(db,
        "CREATE TABLE incidents ("
        "  seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, incident_id TEXT NOT NULL UNIQUE,"
        "  kind TEXT NOT NULL, node TEXT NOT NULL, detected_ms BIGINT NOT NULL, summary TEXT NOT NULL,"
        "  details TEXT NOT NULL DEFAULT '', actions TEXT NOT NULL DEFAULT '', cause TEXT NOT NULL DEFAULT '',"
        "  prevention TEXT NOT NULL DEFAULT '', updated_ms BIGINT NOT NULL, reported_ms BIGINT)") : rk_db_stmt(db,
        "CREATE TABLE incidents ("
        "  seq INTEGER PRIMARY KEY AUTOINCREMENT, incident_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,"
        "  node TEXT NOT NULL, detected_ms INTEGER NOT NULL, summary TEXT NOT NULL, details TEXT NOT NULL DEFAULT '',"
        "  actions TEXT NOT NULL DEFAULT '', cause TEXT NOT NULL DEFAULT '', prevention TEXT NOT NULL DEFAULT '',"
        "  updated_ms INTEGER NOT NULL, reported_ms INTEGER)");
    if (!st || rk_stmt_exec(st) != RK_OK)
        return RK_ERR_STORE;
    st = rk_db_stmt(db, "INSERT INTO incidents(incident_id, kind, node, detected_ms, summary, updated_ms)"
                        " VALUES ('old-1', 'leak', 'node-a', 1, 'kept from before', 1)");
    return st ? rk_stmt_exec(st) : RK_ERR_STORE;
}

static void test_migrate_over_old_tables_and_again(void **state)
{
    (void)state;
    char other[160];
    assert_int_equal(test_store_target(dir, "old", other, sizeof other), 0);
    rk_db *db = NULL;
    assert_int_equal(rk_db_open(other, 0, &db), RK_OK);
    assert_int_equal(rk_db_write(db, old_tables, NULL), RK_OK);
    assert_int_equal(rk_incidents_migrate(db), RK_OK);
    assert_int_equal(rk_incidents_migrate(db), RK_OK);
    assert_int_equal(rk_incidents_count_kind(db, "leak"), 1);
    assert_int_equal(in_outbox(db, "old-1"), 1);
    rk_incident in = {.incident_id = "old-1", .kind = "leak", .node = "node-a", .summary = "s", .cause = "c"};
    assert_int_equal(rk_incident_store(db, &in, 1, 0), RK_OK);
    assert_int_equal(in_outbox(db, "old-1"), 0);
    rk_db_close(db);
}

/* rk_incident_store inside the caller's own write. */
typedef struct two {
    rk_incident a, b;
} two;

static rk_rc store_two(rk_db *db, void *arg)
{
    two *t = arg;
    rk_rc rc = rk_incident_store(db, &t->a, 0, 1);
    return rc == RK_OK ? rk_incident_store(db, &t->b, 0, 1) : rc;
}

static void test_store_inside_a_write(void **state)
{
    rk_db *db = *state;
    two t = {{.incident_id = "w-1", .kind = "leak", .node = "node-a", .summary = "s"},
             {.incident_id = "w-2", .kind = "leak", .node = "node-a", .summary = "s"}};
    assert_int_equal(rk_db_write(db, store_two, &t), RK_OK);
    assert_int_equal(rk_incidents_count_kind(db, "leak"), 2);
    /* the second is another node's: the whole write is rolled back */
    two bad = {{.incident_id = "w-3", .kind = "leak", .node = "node-a", .summary = "s"},
               {.incident_id = "w-1", .kind = "leak", .node = "node-b", .summary = "s"}};
    assert_int_equal(rk_db_write(db, store_two, &bad), RK_ERR_CONFLICT);
    assert_int_equal(rk_incidents_count_kind(db, "leak"), 2);
    assert_int_equal(in_outbox(db, "w-3"), -1);
}

/* ---------- from an event loop ---------- */

typedef struct loop_state {
    struct event_base *base;
    rk_rc rc;
    int calls;
} loop_state;

static void stored(void *arg, rk_rc rc)
{
    loop_state *s = arg;
    s->rc = rc;
    if (++s->calls == 2)
        event_base_loopbreak(s->base);
}

static void start_on_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    void **args = arg;
    rk_db *db = args[0];
    loop_state *s = args[1];
    char summary[32];
    snprintf(summary, sizeof summary, "%s", "raised on the loop");
    rk_incident in = {.incident_id = "l-1", .kind = "outage", .node = "node-a", .summary = summary,
                      .details = "d"};
    assert_int_equal(rk_incident_store_later(db, s->base, &in, 0, stored, s), RK_OK);
    memset(summary, 'x', sizeof summary - 1); /* the store kept its own copy */
    rk_incident other = {.incident_id = "l-1", .kind = "outage", .node = "node-b", .summary = "not mine"};
    assert_int_equal(rk_incident_store_later(db, s->base, &other, 0, stored, s), RK_OK);
}

static void test_store_later_on_a_loop(void **state)
{
    rk_db *db = *state;
    loop_state s = {.base = event_base_new(), .rc = RK_OK};
    assert_non_null(s.base);
    void *args[] = {db, &s};
    event_base_once(s.base, -1, EV_TIMEOUT, start_on_loop, args, NULL);
    event_base_dispatch(s.base);
    rk_db_loop_end(db);
    event_base_free(s.base);
    assert_int_equal(s.calls, 2);
    assert_int_equal(s.rc, RK_ERR_CONFLICT); /* the second one */
    json_t *list = serve(db, "kind=outage");
    json_t *i = find(list, "l-1");
    assert_non_null(i);
    assert_string_equal(str(i, "summary"), "raised on the loop");
    assert_string_equal(str(i, "details"), "d");
    assert_string_equal(str(i, "node"), "node-a");
    json_decref(list);
    assert_int_equal(in_outbox(db, "l-1"), 1);
}

int main(void)
{
    rk_log_init("test", RK_LOG_ERROR, RK_LOG_TEXT); /* each stored incident is a warning line */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_record_and_update_by_same_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_another_nodes_id_is_a_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_id_and_detected_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_page_newest_first_and_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_without_table_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_over_old_tables_and_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_inside_a_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_later_on_a_loop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, test_store_group_end);
}
