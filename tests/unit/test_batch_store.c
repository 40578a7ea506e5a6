/* Unit tests: an agency's batch queries (agency/batch_store.h) on a fresh
 * agency store per test — a batch stored once per id (the same request
 * again, another request refused), queries claimed for one provider at a
 * time with a lease, released, resumed, settled with their record and kept
 * answer (or with the answer kept before), numbered in the order they
 * settled, read back page by page, and one query's state. On SQLite, and
 * on PostgreSQL when RENKEI_TEST_STORE=postgres (unit/test_batch_store_pg). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agency/agency_store.h"
#include "agency/batch_store.h"
#include "pg_fixture.h"
#include "records/records.h"
#include "store/db.h"

static char dir[64];

static int setup(void **state)
{
    char target[160];
    snprintf(dir, sizeof dir, "/tmp/rk-test-batch-XXXXXX");
    if (!mkdtemp(dir) || test_store_target(dir, "node", target, sizeof target) != 0)
        return -1;
    agency_store *s = NULL;
    if (agency_store_open(target, 0, "agency-test", &s) != RK_OK)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    agency_store_close(*state);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static rk_db *db_of(void **state)
{
    return agency_store_db(*state);
}

/* n queries q-<tag>-i, provider "prov-a" for even i and "prov-b" for odd i
 * when mixed, else all "prov-a". */
typedef struct queries {
    batch_query_in q[8];
    char ids[8][32], hashes[8][65];
} queries;

static void make_queries(queries *s, const char *tag, size_t n, int mixed)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(s->ids[i], sizeof s->ids[i], "q-%s-%zu", tag, i);
        snprintf(s->hashes[i], sizeof s->hashes[i], "%064zx", i + 1);
        s->q[i] = (batch_query_in){s->ids[i], mixed && i % 2 ? "prov-b" : "prov-a", s->hashes[i], "{\"x\":1}"};
    }
}

static void add_ok(rk_db *db, const char *owner, const char *batch, queries *q, size_t n)
{
    assert_int_equal(batch_store_add(db, owner, batch, "hash-1", q->q, n, 1000), RK_OK);
}

static void test_a_batch_is_stored_once(void **state)
{
    rk_db *db = db_of(state);
    queries q;
    make_queries(&q, "a", 3, 0);
    add_ok(db, "sys", "b1", &q, 3);
    assert_int_equal(batch_store_add(db, "sys", "b1", "hash-1", q.q, 3, 2000), RK_ERR_EXISTS);
    assert_int_equal(batch_store_add(db, "sys", "b1", "hash-2", q.q, 2, 2000), RK_ERR_CONFLICT);
    add_ok(db, "other-sys", "b1", &q, 3); /* another system's batch of the same name */
    json_t *p = NULL;
    assert_int_equal(batch_store_progress(db, "sys", "b1", 0, 50, &p), RK_OK);
    assert_int_equal(json_integer_value(json_object_get(p, "total")), 3);
    assert_int_equal(json_integer_value(json_object_get(p, "pending")), 3);
    assert_int_equal(json_array_size(json_object_get(p, "results")), 0);
    json_decref(p);
    assert_int_equal(batch_store_progress(db, "sys", "nope", 0, 50, &p), RK_ERR_NOT_FOUND);
    assert_null(p);
    assert_int_equal(batch_store_progress(db, "third", "b1", 0, 50, &p), RK_ERR_NOT_FOUND);
}

static void test_claims_are_per_provider_and_leased(void **state)
{
    rk_db *db = db_of(state);
    queries q;
    make_queries(&q, "c", 5, 1);
    add_ok(db, "sys", "b2", &q, 5);
    batch_query got[8];
    size_t n = 0;
    /* the one due first is prov-a's: its three, oldest first */
    assert_int_equal(batch_store_claim(db, 1500, 10000, got, 8, &n), RK_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(got[i].provider, "prov-a");
        assert_string_equal(got[i].query_id, q.ids[2 * i]);
        assert_string_equal(got[i].batch_id, "b2");
        assert_string_equal(got[i].owner, "sys");
        assert_string_equal(got[i].request_hash, q.hashes[2 * i]);
        assert_string_equal(got[i].body, "{\"x\":1}");
        assert_int_equal(got[i].requested_ms, 1000);
        assert_int_equal(got[i].attempts, 1);
    }
    int64_t first = got[0].id, ids[3] = {got[0].id, got[1].id, got[2].id};
    batch_store_free(got, n);
    /* then prov-b's two; prov-a's are leased */
    assert_int_equal(batch_store_claim(db, 1500, 10000, got, 8, &n), RK_OK);
    assert_int_equal(n, 2);
    assert_string_equal(got[0].provider, "prov-b");
    batch_store_free(got, n);
    assert_int_equal(batch_store_claim(db, 1500, 10000, got, 8, &n), RK_OK);
    assert_int_equal(n, 0);
    int64_t due = 0;
    assert_int_equal(batch_store_next_due(db, &due), RK_OK);
    assert_int_equal(due, 11500);
    /* released: due again when said, with max a limit */
    int64_t next[3] = {3000, 3000, 3000};
    assert_int_equal(batch_store_release(db, ids, next, 3), RK_OK);
    assert_int_equal(batch_store_claim(db, 2999, 10000, got, 8, &n), RK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(batch_store_claim(db, 3000, 10000, got, 2, &n), RK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(got[0].id, first);
    assert_int_equal(got[0].attempts, 2);
    batch_store_free(got, n);
    /* a node's start: every pending query due at once */
    assert_int_equal(batch_store_resume(db), RK_OK);
    assert_int_equal(batch_store_next_due(db, &due), RK_OK);
    assert_int_equal(due, 0);
    assert_int_equal(batch_store_claim(db, 1, 10000, got, 8, &n), RK_OK);
    assert_int_equal(n, 3);
    batch_store_free(got, n);
}

/* A settlement for query_id with a record of its own exchange. */
typedef struct settled {
    rk_record rec;
    rk_settlement s;
    char xid[64];
} settled;

static void make_settlement(settled *t, const char *query_id, const char *hash, int status, const char *outcome,
                            const char *body)
{
    memset(t, 0, sizeof *t);
    snprintf(t->xid, sizeof t->xid, "agency-test.%s", query_id);
    snprintf(t->rec.exchange_id, sizeof t->rec.exchange_id, "%s", t->xid);
    strcpy(t->rec.side, "requester");
    strcpy(t->rec.requester, "agency-test");
    strcpy(t->rec.provider, "prov-a");
    strcpy(t->rec.business, "b");
    strcpy(t->rec.item, "i");
    strcpy(t->rec.operator_id, "op");
    strcpy(t->rec.subject, "P1");
    t->rec.requested_ms = 1000;
    snprintf(t->rec.outcome, sizeof t->rec.outcome, "%s", outcome);
    t->s = (rk_settlement){.record = &t->rec, .key = query_id, .request_hash = hash, .status = status, .body = body};
}

static long records_of(rk_db *db);

static void test_settled_in_order_and_read_page_by_page(void **state)
{
    rk_db *db = db_of(state);
    queries q;
    make_queries(&q, "s", 4, 0);
    add_ok(db, "sys", "b3", &q, 4);
    batch_query got[8];
    size_t n = 0;
    assert_int_equal(batch_store_claim(db, 1500, 10000, got, 8, &n), RK_OK);
    assert_int_equal(n, 4);
    /* query 2 and 0 settle first (that order); 3 was answered before: its kept answer stands */
    settled t2, t0;
    make_settlement(&t2, q.ids[2], q.hashes[2], 200, "provided", "{\"query_id\":\"q-s-2\",\"status\":\"provided\"}");
    make_settlement(&t0, q.ids[0], q.hashes[0], 403, "not_permitted",
                    "{\"query_id\":\"q-s-0\",\"error\":{\"code\":\"not_permitted\",\"message\":\"no\"}}");
    batch_done d[3] = {
        {got[2].id, "sys", "b3", q.ids[2], &t2.s, 200, "provided", RK_OK},
        {got[0].id, "sys", "b3", q.ids[0], &t0.s, 403, "not_permitted", RK_OK},
        {got[3].id, "sys", "b3", q.ids[3], NULL, 200, "no_data", RK_OK},
    };
    assert_int_equal(batch_store_settle(db, d, 3), RK_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(d[i].rc, RK_OK);
    assert_int_equal(records_of(db), 2); /* the two settled here; 3's record was its first answer's */
    /* settled twice: refused, nothing changes */
    batch_done again = {got[2].id, "sys", "b3", q.ids[2], NULL, 200, "provided", RK_OK};
    assert_int_equal(batch_store_settle(db, &again, 1), RK_OK);
    assert_int_equal(again.rc, RK_ERR_CONFLICT);
    json_t *p = NULL;
    assert_int_equal(batch_store_progress(db, "sys", "b3", 0, 2, &p), RK_OK);
    assert_int_equal(json_integer_value(json_object_get(p, "settled")), 3);
    assert_int_equal(json_integer_value(json_object_get(p, "pending")), 1);
    json_t *by = json_object_get(p, "by_status");
    assert_int_equal(json_integer_value(json_object_get(by, "provided")), 1);
    assert_int_equal(json_integer_value(json_object_get(by, "not_permitted")), 1);
    assert_int_equal(json_integer_value(json_object_get(by, "no_data")), 1);
    json_t *r = json_object_get(p, "results");
    assert_int_equal(json_array_size(r), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "query_id")), q.ids[2]);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 0), "index")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 0), "http_status")), 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(r, 0), "answer"), "status")),
                        "provided");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 1), "http_status")), 403);
    int64_t after = json_integer_value(json_object_get(p, "next_after"));
    assert_int_equal(after, 2);
    json_decref(p);
    /* the next page: query 3, whose answer is not kept here — an error result, not a crash */
    assert_int_equal(batch_store_progress(db, "sys", "b3", after, 2, &p), RK_OK);
    r = json_object_get(p, "results");
    assert_int_equal(json_array_size(r), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "query_id")), q.ids[3]);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 0), "http_status")), 500);
    assert_int_equal(json_integer_value(json_object_get(p, "next_after")), 3);
    json_decref(p);
    assert_int_equal(batch_store_progress(db, "sys", "b3", 3, 2, &p), RK_OK);
    assert_int_equal(json_array_size(json_object_get(p, "results")), 0);
    assert_int_equal(json_integer_value(json_object_get(p, "next_after")), 3);
    json_decref(p);
    batch_store_free(got, n);
}

typedef struct keep_args {
    const char *key, *hash, *body;
    int status;
} keep_args;

static rk_rc keep_fn(rk_db *db, void *arg)
{
    keep_args *k = arg;
    return rk_answer_keep(db, k->key, "requester", k->hash, k->status, k->body);
}

static rk_rc count_records(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT count(*) FROM records");
    rk_rc rc = rk_stmt_next(q);
    *(long *)arg = rc == RK_OK ? (long)rk_col_int(q, 0) : -1;
    return rc;
}

static long records_of(rk_db *db)
{
    long n = -1;
    assert_int_equal(rk_db_read(db, count_records, &n), RK_OK);
    return n;
}

static void test_settled_meanwhile_and_conflicts(void **state)
{
    rk_db *db = db_of(state);
    queries q;
    make_queries(&q, "m", 2, 0);
    add_ok(db, "sys", "b4", &q, 2);
    batch_query got[8];
    size_t n = 0;
    assert_int_equal(batch_store_claim(db, 1500, 10000, got, 8, &n), RK_OK);
    /* query 0 was settled meanwhile by a single query with the same request; query 1's id was
     * taken by another request */
    keep_args k0 = {q.ids[0], q.hashes[0], "{\"query_id\":\"q-m-0\",\"status\":\"no_data\"}", 200};
    keep_args k1 = {q.ids[1], "another-request", "{\"query_id\":\"q-m-1\",\"status\":\"provided\"}", 200};
    assert_int_equal(rk_db_write(db, keep_fn, &k0), RK_OK);
    assert_int_equal(rk_db_write(db, keep_fn, &k1), RK_OK);
    settled t0;
    make_settlement(&t0, q.ids[0], q.hashes[0], 200, "provided", "{\"query_id\":\"q-m-0\",\"status\":\"provided\"}");
    batch_done d[2] = {
        {got[0].id, "sys", "b4", q.ids[0], &t0.s, 200, "provided", RK_OK},
        {got[1].id, "sys", "b4", q.ids[1], NULL, 409, "conflict", RK_OK},
    };
    assert_int_equal(batch_store_settle(db, d, 2), RK_OK);
    assert_int_equal(d[0].rc, RK_OK);
    assert_int_equal(d[1].rc, RK_OK);
    assert_int_equal(records_of(db), 0); /* the first answer's settlement stands alone */
    json_t *p = NULL;
    assert_int_equal(batch_store_progress(db, "sys", "b4", 0, 50, &p), RK_OK);
    json_t *by = json_object_get(p, "by_status");
    assert_int_equal(json_integer_value(json_object_get(by, "no_data")), 1); /* the kept answer's word */
    assert_int_equal(json_integer_value(json_object_get(by, "conflict")), 1);
    json_t *r = json_object_get(p, "results");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(r, 0), "answer"), "status")),
                        "no_data");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 1), "http_status")), 409);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(json_array_get(r, 1),
                                                                                          "answer"), "error"), "code")),
                        "conflict");
    json_decref(p);
    batch_store_free(got, n);
}

static void test_a_querys_state(void **state)
{
    rk_db *db = db_of(state);
    queries q;
    make_queries(&q, "st", 1, 0);
    add_ok(db, "sys", "b5", &q, 1);
    int status = 0;
    char *body = NULL, batch[RK_ID_FIELD_MAX + 1] = "";
    assert_int_equal(batch_store_query_state(db, q.ids[0], &status, &body, batch), RK_ERR_BUSY);
    assert_string_equal(batch, "b5");
    assert_int_equal(batch_store_query_state(db, "q-unknown", &status, &body, batch), RK_ERR_NOT_FOUND);
    keep_args k = {q.ids[0], q.hashes[0], "{\"status\":\"provided\"}", 200};
    assert_int_equal(rk_db_write(db, keep_fn, &k), RK_OK);
    assert_int_equal(batch_store_query_state(db, q.ids[0], &status, &body, batch), RK_OK);
    assert_int_equal(status, 200);
    assert_string_equal(body, "{\"status\":\"provided\"}");
    free(body);
}

static void test_answer_outcome(void **state)
{
    (void)state;
    char out[32];
    batch_answer_outcome("{\"status\":\"provided\",\"value\":1}", out, sizeof out);
    assert_string_equal(out, "provided");
    batch_answer_outcome("{\"error\":{\"code\":\"not_permitted\",\"message\":\"x\"}}", out, sizeof out);
    assert_string_equal(out, "not_permitted");
    batch_answer_outcome("not json", out, sizeof out);
    assert_string_equal(out, "");
    batch_answer_outcome(NULL, out, sizeof out);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_batch_is_stored_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claims_are_per_provider_and_leased, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settled_in_order_and_read_page_by_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settled_meanwhile_and_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_querys_state, setup, teardown),
        cmocka_unit_test(test_answer_outcome),
    };
    return cmocka_run_group_tests(tests, NULL, test_store_group_end);
}
