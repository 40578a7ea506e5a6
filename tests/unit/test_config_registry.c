/* Unit tests: node configuration (defaults, unknown keys, bad values, relative
 * paths) and the network registry (validation, lookups, addresses). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "node/config.h"
#include "net/registry.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/rk-test-cfg-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void config_defaults_and_relative_paths(void **state)
{
    rk_node_config c;
    char err[256];
    const char *p = write_file("a.conf", "[node]\nid = core\nnetwork = ../n.json\nca = ca.pem\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_OK);
    assert_string_equal(c.id, "core");
    char want[256];
    snprintf(want, sizeof want, "%s/../n.json", dir);
    assert_string_equal(c.network, want);
    assert_int_equal(c.workers, 16);
    assert_int_equal(c.max_body, 1 << 20);
    assert_int_equal(c.clock_max_skew_ms, 30000);
    assert_int_equal(c.head_interval_ms, 2000);
}

/* DESIGN §6: [node] store names the engine; db = PATH is sqlite:PATH. */
static void config_store_targets(void **state)
{
    rk_node_config c;
    char err[256], want[256];
    const char *p = write_file("s1.conf", "[node]\nid = x\nnetwork = n\nca = c\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_OK);
    snprintf(want, sizeof want, "%s/node.db", dir);
    assert_string_equal(c.db, want);
    p = write_file("s2.conf", "[node]\nid = x\nnetwork = n\nca = c\nstore = sqlite:data/a.db\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_OK);
    snprintf(want, sizeof want, "%s/data/a.db", dir);
    assert_string_equal(c.db, want);
    p = write_file("s3.conf", "[node]\nid = x\nnetwork = n\nca = c\ndb = b.db\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_OK);
    snprintf(want, sizeof want, "%s/b.db", dir);
    assert_string_equal(c.db, want);
    const char *uri = "postgresql://core@127.0.0.1:5432/core?target_session_attrs=read-write";
    char text[256];
    snprintf(text, sizeof text, "[node]\nid = x\nnetwork = n\nca = c\nstore = %s\n", uri);
    p = write_file("s4.conf", text);
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_OK);
    assert_string_equal(c.db, uri);
    p = write_file("s5.conf", "[node]\nid = x\nnetwork = n\nca = c\nstore = mysql://a\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_ERR_CONFIG);
    assert_non_null(strstr(err, "bad value for [node] store"));
    p = write_file("s6.conf", "[node]\nid = x\nnetwork = n\nca = c\nstore = sqlite:\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_ERR_CONFIG);
}

/* [node] log_format: text by default, json on request, nothing else. */
static void config_log_format(void **state)
{
    rk_node_config c;
    char err[256];
    const char *p = write_file("l1.conf", "[node]\nid = x\nnetwork = n\nca = c\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_OK);
    assert_int_equal(c.log_format, RK_LOG_TEXT);
    p = write_file("l2.conf", "[node]\nid = x\nnetwork = n\nca = c\nlog_format = json\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_OK);
    assert_int_equal(c.log_format, RK_LOG_JSON);
    p = write_file("l3.conf", "[node]\nid = x\nnetwork = n\nca = c\nlog_format = text\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_OK);
    assert_int_equal(c.log_format, RK_LOG_TEXT);
    p = write_file("l4.conf", "[node]\nid = x\nnetwork = n\nca = c\nlog_format = JSON\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_ERR_CONFIG);
    assert_non_null(strstr(err, "bad value for [node] log_format"));
    p = write_file("l5.conf", "[node]\nid = x\nnetwork = n\nca = c\nlog_format =\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_ERR_CONFIG);
}

static void config_refuses_typos_and_bad_values(void **state)
{
    rk_node_config c;
    char err[256];
    const char *p = write_file("b.conf", "[node]\nid = x\nnetwork = n\nca = c\nworkres = 4\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_ERR_CONFIG);
    assert_non_null(strstr(err, "unknown key [node] workres"));
    assert_non_null(strstr(err, ":5:"));
    p = write_file("c.conf", "[node]\nid = x\nnetwork = n\nca = c\nworkers = 0\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_ERR_CONFIG);
    assert_non_null(strstr(err, "bad value for [node] workers"));
    p = write_file("d.conf", "[node]\nnetwork = n\nca = c\n");
    assert_int_equal(rk_config_load(p, &c, err, sizeof err), RK_ERR_CONFIG);
    assert_non_null(strstr(err, "missing [node] id"));
    assert_int_equal(rk_config_load("/nonexistent/x.conf", &c, err, sizeof err), RK_ERR_CONFIG);
}

#define FP "0000000000000000000000000000000000000000000000000000000000000000"
#define PIN "\"pin\":\"sha256//AAAA\""

static void registry_loads_and_finds(void **state)
{
    const char *p = write_file("n1.json",
        "{\"network\":\"t\",\"nodes\":["
        "{\"id\":\"core\",\"role\":\"core\",\"url\":\"https://127.0.0.1:1\",\"backup_url\":\"https://127.0.0.1:2\","
        "\"fingerprint\":\"" FP "\"," PIN "},"
        "{\"id\":\"a-gateway\",\"role\":\"gateway\",\"agency\":\"a\",\"url\":\"https://127.0.0.1:3\","
        "\"fingerprint\":\"" "1" FP "\"," PIN "},"
        "{\"id\":\"a-system\",\"role\":\"system\",\"agency\":\"a\",\"fingerprint\":\"2" FP "\","
        "\"addresses\":[\"10.0.0.9\"]}]}");
    rk_registry *reg = NULL;
    char err[256] = "";
    /* fingerprints of 65 characters are refused: make them 64 */
    assert_int_equal(rk_registry_load(p, &reg, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "fingerprint"));
    p = write_file("n2.json",
        "{\"network\":\"t\",\"nodes\":["
        "{\"id\":\"core\",\"role\":\"core\",\"url\":\"https://127.0.0.1:1\",\"fingerprint\":\"" FP "\"," PIN "},"
        "{\"id\":\"a-system\",\"role\":\"system\",\"agency\":\"a\","
        "\"fingerprint\":\"1000000000000000000000000000000000000000000000000000000000000000\","
        "\"addresses\":[\"10.0.0.9\"]}]}");
    assert_int_equal(rk_registry_load(p, &reg, err, sizeof err), RK_OK);
    assert_int_equal(reg->n_nodes, 2);
    const rk_peer_node *core = rk_registry_find(reg, RK_ROLE_CORE, NULL);
    assert_non_null(core);
    assert_true(rk_peer_address_allowed(core, "127.0.0.1")); /* from its url */
    const rk_peer_node *sys = rk_registry_by_fingerprint(reg, "1000000000000000000000000000000000000000000000000000000000000000");
    assert_non_null(sys);
    assert_string_equal(sys->id, "a-system");
    assert_true(rk_peer_address_allowed(sys, "10.0.0.9"));
    assert_false(rk_peer_address_allowed(sys, "127.0.0.1"));
    assert_null(rk_registry_by_id(reg, "nobody"));
    rk_registry_free(reg);
}

static void registry_refusals(void **state)
{
    rk_registry *reg = NULL;
    char err[256];
    const char *cases[][2] = {
        {"{\"nodes\":[{\"id\":\"x\",\"role\":\"king\",\"fingerprint\":\"" FP "\"}]}", "role"},
        {"{\"nodes\":[{\"id\":\"g\",\"role\":\"gateway\",\"url\":\"https://h:1\",\"fingerprint\":\"" FP "\"," PIN "}]}",
         "agency"},
        {"{\"nodes\":[{\"id\":\"c\",\"role\":\"core\",\"url\":\"https://h:1\",\"fingerprint\":\"" FP "\"}]}", "pin"},
        {"{\"nodes\":[{\"id\":\"c\",\"role\":\"core\",\"url\":\"https://h:1\",\"fingerprint\":\"" FP "\"," PIN "},"
         "{\"id\":\"c\",\"role\":\"jlis\",\"url\":\"https://h:2\",\"fingerprint\":\"" FP "\"," PIN "}]}", "duplicate"},
        {"{\"nodes\":", "line"},
        {"{}", "nodes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = write_file("bad.json", cases[i][0]);
        err[0] = '\0';
        assert_int_equal(rk_registry_load(p, &reg, err, sizeof err), RK_ERR_INVALID);
        if (!strstr(err, cases[i][1]))
            fail_msg("case %zu: %s", i, err);
    }
    assert_int_equal(rk_role_parse("gateway"), RK_ROLE_GATEWAY);
    assert_int_equal(rk_role_parse("nope"), RK_ROLE_NONE);
    assert_string_equal(rk_role_name(RK_ROLE_OPERATOR), "operator");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(config_defaults_and_relative_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(config_refuses_typos_and_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(config_log_format, setup, teardown),
        cmocka_unit_test_setup_teardown(config_store_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(registry_loads_and_finds, setup, teardown),
        cmocka_unit_test_setup_teardown(registry_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
