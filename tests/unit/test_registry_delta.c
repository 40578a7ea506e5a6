/* Unit tests: registry deltas (net/registry_delta.h) — a delta rebuilds the
 * new document exactly, costs what changed, and a bad one is refused; the
 * core's kept deltas chain from any kept tag to the one in force. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/registry_delta.h"

/* A registry-like document of n members, serial s, member `changed` with
 * another fingerprint (-1: none), member `skip` left out (-1: none). */
static char *doc(int n, int serial, int changed, int skip)
{
    size_t cap = 256 + (size_t)n * 200, at = 0;
    char *d = malloc(cap);
    at += (size_t)snprintf(d + at, cap - at, "{\"network\":\"renkei\",\"nodes\":[");
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (i == skip)
            continue;
        at += (size_t)snprintf(d + at, cap - at, "%s{\"id\":\"agency-%04d\",\"role\":\"gateway\",\"fingerprint\":\"%s%04d\"}",
                               first ? "" : ",", i, i == changed ? "ff" : "aa", i);
        first = 0;
    }
    snprintf(d + at, cap - at, "],\"serial\":%d,\"issued_at\":\"2026-12-07T00:00:%02dZ\"}", serial, serial % 60);
    return d;
}

static void round_trip(const char *from, const char *to, size_t *delta_bytes)
{
    json_t *ops = NULL;
    assert_int_equal(rk_registry_delta_make(from, strlen(from), to, strlen(to), &ops), RK_OK);
    char *text = json_dumps(ops, JSON_COMPACT);
    *delta_bytes = strlen(text);
    json_t *back = json_loads(text, 0, NULL); /* as a node receives it */
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(rk_registry_delta_apply(from, strlen(from), back, 1u << 24, &out, &len), RK_OK);
    assert_int_equal(len, strlen(to));
    assert_memory_equal(out, to, len);
    free(out);
    free(text);
    json_decref(back);
    json_decref(ops);
}

static void test_rebuilds_exactly_and_costs_what_changed(void **state)
{
    (void)state;
    char *a = doc(1000, 1, -1, -1);
    size_t bytes = 0;
    char *added = doc(1001, 2, -1, -1), *removed = doc(1000, 2, -1, 500), *changed = doc(1000, 2, 700, -1);
    round_trip(a, added, &bytes);
    assert_true(bytes < 400); /* the new member, the new serial and time, and copies */
    round_trip(a, removed, &bytes);
    assert_true(bytes < 200);
    round_trip(a, changed, &bytes);
    assert_true(bytes < 400);
    round_trip(a, a, &bytes); /* nothing changed: one copy */
    assert_true(bytes > 0 && bytes < 40);
    round_trip("", a, &bytes);   /* from nothing: all literal */
    round_trip(a, "", &bytes);   /* to nothing: no operation */
    assert_int_equal(bytes, 2); /* [] */
    round_trip("no members here", "{\"id\":1}{\"id\":2}", &bytes);
    free(a);
    free(added);
    free(removed);
    free(changed);
}

static rk_rc apply_text(const char *from, const char *ops_text, size_t cap)
{
    json_t *ops = json_loads(ops_text, 0, NULL);
    char *out = NULL;
    size_t len = 0;
    rk_rc rc = rk_registry_delta_apply(from, strlen(from), ops, cap, &out, &len);
    if (rc == RK_OK)
        assert_non_null(out);
    else
        assert_null(out);
    free(out);
    json_decref(ops);
    return rc;
}

static void test_refuses_bad_deltas(void **state)
{
    (void)state;
    const char *from = "0123456789";
    assert_int_equal(apply_text(from, "[[0,10],\"x\"]", 100), RK_OK);
    assert_int_equal(apply_text(from, "{\"a\":1}", 100), RK_ERR_INVALID);  /* not an array */
    assert_int_equal(apply_text(from, "[[0,11]]", 100), RK_ERR_INVALID);   /* past the end */
    assert_int_equal(apply_text(from, "[[10,1]]", 100), RK_ERR_INVALID);
    assert_int_equal(apply_text(from, "[[-1,2]]", 100), RK_ERR_INVALID);
    assert_int_equal(apply_text(from, "[[2,0]]", 100), RK_ERR_INVALID);    /* an empty copy */
    assert_int_equal(apply_text(from, "[[2]]", 100), RK_ERR_INVALID);
    assert_int_equal(apply_text(from, "[[2,3,4]]", 100), RK_ERR_INVALID);
    assert_int_equal(apply_text(from, "[[\"2\",3]]", 100), RK_ERR_INVALID);
    assert_int_equal(apply_text(from, "[1]", 100), RK_ERR_INVALID);
    assert_int_equal(apply_text(from, "[null]", 100), RK_ERR_INVALID);
    assert_int_equal(apply_text(from, "[[9223372036854775807,9223372036854775807]]", 100), RK_ERR_INVALID);
    assert_int_equal(apply_text(from, "[[0,10],[0,10]]", 15), RK_ERR_TOO_LARGE); /* over the cap */
    assert_int_equal(apply_text(from, "[\"0123456789abcdef\"]", 15), RK_ERR_TOO_LARGE);
}

static char *ops_for(const char *from, const char *to)
{
    json_t *ops = NULL;
    assert_int_equal(rk_registry_delta_make(from, strlen(from), to, strlen(to), &ops), RK_OK);
    char *text = json_dumps(ops, JSON_COMPACT);
    json_decref(ops);
    return text;
}

static void test_kept_deltas_chain(void **state)
{
    (void)state;
    char *d1 = doc(100, 1, -1, -1), *d2 = doc(101, 2, -1, -1), *d3 = doc(101, 3, 5, -1);
    rk_registry_deltas *k = rk_registry_deltas_new();
    const char *key_id = NULL, *sig = NULL;
    size_t len = 0;
    assert_null(rk_registry_deltas_chain(k, "t1", "t3", 1u << 20, &len, &key_id, &sig));
    rk_registry_deltas_note(k, "t1", "t2", ops_for(d1, d2), strlen(d2), "k2", "s2");
    rk_registry_deltas_note(k, "t2", "t3", ops_for(d2, d3), strlen(d3), "k3", "s3");
    char *chain = rk_registry_deltas_chain(k, "t1", "t3", 1u << 20, &len, &key_id, &sig);
    assert_non_null(chain);
    assert_string_equal(key_id, "k3");
    assert_string_equal(sig, "s3");
    json_t *steps = json_loads(chain, 0, NULL);
    assert_int_equal(json_array_size(steps), 2);
    char *mid = NULL, *end = NULL;
    size_t midlen = 0, endlen = 0;
    assert_int_equal(rk_registry_delta_apply(d1, strlen(d1), json_array_get(steps, 0), 1u << 20, &mid, &midlen), RK_OK);
    assert_int_equal(rk_registry_delta_apply(mid, midlen, json_array_get(steps, 1), 1u << 20, &end, &endlen), RK_OK);
    assert_string_equal(end, d3);
    free(mid);
    free(end);
    json_decref(steps);
    free(chain);
    /* from the one before: one step; from one not kept, or to one not in force: none */
    chain = rk_registry_deltas_chain(k, "t2", "t3", 1u << 20, &len, &key_id, &sig);
    assert_non_null(chain);
    free(chain);
    assert_null(rk_registry_deltas_chain(k, "t0", "t3", 1u << 20, &len, &key_id, &sig));
    assert_null(rk_registry_deltas_chain(k, "t1", "t2", 1u << 20, &len, &key_id, &sig));
    assert_null(rk_registry_deltas_chain(k, "t1", "t3", 10, &len, &key_id, &sig)); /* the registry costs less */
    /* a gap (a registry applied without its delta) breaks the chain */
    rk_registry_deltas_note(k, "t9", "t10", ops_for(d2, d3), strlen(d3), "k", "s");
    assert_null(rk_registry_deltas_chain(k, "t1", "t10", 1u << 20, &len, &key_id, &sig));
    chain = rk_registry_deltas_chain(k, "t9", "t10", 1u << 20, &len, &key_id, &sig);
    assert_non_null(chain);
    free(chain);
    /* a delta as large as half the document is not kept */
    rk_registry_deltas_note(k, "t10", "t11", ops_for("", d3), strlen(d3), "k", "s");
    assert_null(rk_registry_deltas_chain(k, "t10", "t11", 1u << 20, &len, &key_id, &sig));
    /* only the last RK_REGISTRY_DELTAS_KEPT are kept */
    char from[16], to[16];
    for (int i = 0; i < RK_REGISTRY_DELTAS_KEPT + 3; i++) {
        snprintf(from, sizeof from, "u%d", i);
        snprintf(to, sizeof to, "u%d", i + 1);
        rk_registry_deltas_note(k, from, to, ops_for(d2, d3), strlen(d3), "k", "s");
    }
    assert_null(rk_registry_deltas_chain(k, "u0", to, 1u << 20, &len, &key_id, &sig));
    snprintf(from, sizeof from, "u%d", 3);
    chain = rk_registry_deltas_chain(k, from, to, 1u << 20, &len, &key_id, &sig);
    assert_non_null(chain);
    free(chain);
    rk_registry_deltas_free(k);
    free(d1);
    free(d2);
    free(d3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rebuilds_exactly_and_costs_what_changed),
        cmocka_unit_test(test_refuses_bad_deltas),
        cmocka_unit_test(test_kept_deltas_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
