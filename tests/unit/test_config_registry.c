/* Unit tests: node configuration (defaults, unknown keys, bad values, relative
 * paths) and the network registry (validation, lookups, addresses); the
 * signed registry (DESIGN §3): opening, refusals, and the swap of the
 * registry in force at a node while readers look peers up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>

#include "crypto/signed_doc.h"
#include "lib/log.h"
#include "lib/util.h"
#include "node/config.h"
#include "node/node.h"
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

/* ---- the signed registry ---- */

#define FP_OF(c) c "000000000000000000000000000000000000000000000000000000000000000"

/* A registry document of `agencies` agencies (a gateway each) and a core, with serial and time. */
static char *make_doc(long serial, const char *issued, int agencies, const char *extra_agency)
{
    json_t *nodes = json_array();
    json_array_append_new(nodes, json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", "core", "role", "core", "url",
                                           "https://127.0.0.1:1", "fingerprint", FP_OF("c"), "pin", "sha256//AAAA"));
    for (int i = 0; i < agencies; i++) {
        char id[48], ag[24], fp[80];
        snprintf(ag, sizeof ag, "city-%05d", i);
        snprintf(id, sizeof id, "%s-gateway", ag);
        snprintf(fp, sizeof fp, "%064x", i + 1);
        json_array_append_new(nodes, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "id", id, "role", "gateway", "agency",
                                               ag, "kind", "municipality", "url", "https://127.0.0.1:2", "fingerprint",
                                               fp, "pin", "sha256//AAAA"));
    }
    if (extra_agency)
        json_array_append_new(nodes, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "id", extra_agency, "role", "gateway",
                                               "agency", extra_agency, "kind", "insurer", "url", "https://127.0.0.1:3",
                                               "fingerprint", FP_OF("e"), "pin", "sha256//AAAA"));
    json_t *root = json_pack("{s:s,s:o}", "network", "t", "nodes", nodes);
    if (serial)
        json_object_set_new(root, "serial", json_integer(serial));
    if (issued)
        json_object_set_new(root, "issued_at", json_string(issued));
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

static char *sign(EVP_PKEY *key, const char *kind, const char *doc, size_t *len)
{
    char *env = NULL;
    assert_int_equal(rk_signed_doc_sign(key, kind, doc, strlen(doc), &env, len), RK_OK);
    return env;
}

static void signed_registry_opens_and_finds(void **state)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    char *doc = make_doc(7, "2026-12-07T12:00:00.250Z", 50, NULL);
    size_t len = 0;
    char *env = sign(key, "registry", doc, &len);
    static const char crl[] = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
    rk_registry *reg = NULL;
    char err[256] = "";
    assert_int_equal(rk_registry_open_signed(key, env, len, crl, strlen(crl), &reg, err, sizeof err), RK_OK);
    assert_int_equal(reg->serial, 7);
    assert_int_equal(reg->issued_at_ms, INT64_C(1796644800250));
    assert_int_equal(reg->n_nodes, 51);
    size_t crl_len = 0;
    assert_string_equal(rk_registry_crl(reg, &crl_len), crl);
    assert_int_equal(crl_len, strlen(crl));
    /* O(1) lookups by id, fingerprint and agency find every node */
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        assert_ptr_equal(rk_registry_by_id(reg, n->id), n);
        assert_ptr_equal(rk_registry_by_fingerprint(reg, n->fingerprint), n);
        if (n->agency[0])
            assert_ptr_equal(rk_registry_find(reg, RK_ROLE_GATEWAY, n->agency), n);
    }
    assert_null(rk_registry_find(reg, RK_ROLE_AGENCY, "city-00001"));
    assert_null(rk_registry_find(reg, RK_ROLE_GATEWAY, "nowhere"));
    /* a later snapshot: a peer of the earlier one is found again by fingerprint, a removed one not */
    char *doc2 = make_doc(8, "2026-12-07T12:01:00Z", 49, "kenpo-x");
    size_t len2 = 0;
    char *env2 = sign(key, "registry", doc2, &len2);
    rk_registry *reg2 = NULL;
    assert_int_equal(rk_registry_open_signed(key, env2, len2, NULL, 0, &reg2, err, sizeof err), RK_OK);
    assert_null(rk_registry_crl(reg2, NULL));
    const rk_peer_node *kept = rk_registry_by_id(reg, "city-00003-gateway");
    const rk_peer_node *gone = rk_registry_by_id(reg, "city-00049-gateway");
    assert_ptr_equal(rk_registry_by_fingerprint(reg2, kept->fingerprint), rk_registry_by_id(reg2, "city-00003-gateway"));
    assert_ptr_equal(rk_registry_by_fingerprint(reg, kept->fingerprint), kept);
    assert_null(rk_registry_by_fingerprint(reg2, gone->fingerprint));
    assert_non_null(rk_registry_find(reg2, RK_ROLE_GATEWAY, "kenpo-x"));
    rk_registry_free(reg);
    rk_registry_free(reg2);
    free(doc);
    free(doc2);
    free(env);
    free(env2);
    EVP_PKEY_free(key);
}

static void signed_registry_refusals(void **state)
{
    EVP_PKEY *key = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
    rk_registry *reg = NULL;
    char err[256];
    size_t len;
    struct {
        EVP_PKEY *signer;
        const char *kind;
        long serial;
        const char *issued;
        rk_rc rc;
        const char *why;
    } cases[] = {
        {other, "registry", 2, "2026-12-07T12:00:00Z", RK_ERR_CRYPTO, "signature"},
        {key, "catalogue", 2, "2026-12-07T12:00:00Z", RK_ERR_INVALID, "kind"},
        {key, "registry", 0, "2026-12-07T12:00:00Z", RK_ERR_INVALID, "serial"},
        {key, "registry", -3, "2026-12-07T12:00:00Z", RK_ERR_INVALID, "serial"},
        {key, "registry", 2, NULL, RK_ERR_INVALID, "issued_at"},
        {key, "registry", 2, "yesterday", RK_ERR_INVALID, "issued_at"},
        {key, "registry", 2, "2026-13-07T12:00:00Z", RK_ERR_INVALID, "issued_at"},
        {key, "registry", 2, "2026-12-07T12:00:00+09:00", RK_ERR_INVALID, "issued_at"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *doc = make_doc(cases[i].serial, cases[i].issued, 2, NULL);
        char *env = sign(cases[i].signer, cases[i].kind, doc, &len);
        err[0] = '\0';
        rk_rc rc = rk_registry_open_signed(key, env, len, NULL, 0, &reg, err, sizeof err);
        if (rc != cases[i].rc || !strstr(err, cases[i].why))
            fail_msg("case %zu: %d %s", i, rc, err);
        free(doc);
        free(env);
    }
    /* a truncated envelope, at every length */
    char *doc = make_doc(3, "2026-12-07T12:00:00Z", 3, NULL);
    char *env = sign(key, "registry", doc, &len);
    for (size_t cut = 0; cut < len - 1; cut += 7)
        assert_int_not_equal(rk_registry_open_signed(key, env, cut, NULL, 0, &reg, err, sizeof err), RK_OK);
    /* an unsigned network.json with a serial in it is still no signed registry */
    assert_int_not_equal(rk_registry_open_signed(key, doc, strlen(doc), NULL, 0, &reg, err, sizeof err), RK_OK);
    /* the CRL beside it must be PEM CRL text */
    static const char *bad_crls[] = {"", "junk", "-----BEGIN X509 CRL-----\nAAAA\n",
                                     "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"};
    for (size_t i = 0; i < sizeof bad_crls / sizeof bad_crls[0]; i++)
        assert_int_equal(rk_registry_open_signed(key, env, len, bad_crls[i], strlen(bad_crls[i]), &reg, err, sizeof err),
                         RK_ERR_INVALID);
    /* the answer's wrapper */
    const char *answers[] = {"", "{", "[]", "{\"registry\":1}", "{\"crl\":null}", "{\"registry\":\"x\",\"crl\":5}"};
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
        assert_int_not_equal(rk_registry_open_answer(key, answers[i], strlen(answers[i]), &reg, err, sizeof err), RK_OK);
    json_t *ans = json_pack("{s:s#,s:n}", "registry", env, len, "crl");
    char *text = json_dumps(ans, JSON_COMPACT);
    assert_int_equal(rk_registry_open_answer(key, text, strlen(text), &reg, err, sizeof err), RK_OK);
    assert_int_equal(reg->serial, 3);
    assert_int_equal(reg->envelope_len, len);
    rk_registry_free(reg);
    free(text);
    json_decref(ans);
    free(doc);
    free(env);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}

/* ---- the swap at a node ---- */

typedef struct {
    rk_node *node;
    volatile int stop;
    long lookups;
} reader;

/* A request's lookups: the registry in force, loaded once per use. */
static void *read_loop(void *arg)
{
    reader *r = arg;
    while (!r->stop) {
        const rk_registry *reg = __atomic_load_n(&r->node->registry, __ATOMIC_ACQUIRE);
        const rk_peer_node *core = rk_registry_by_id(reg, "core");
        assert_non_null(core);
        assert_ptr_equal(rk_registry_by_fingerprint(reg, core->fingerprint), core);
        const rk_peer_node *g = rk_registry_find(reg, RK_ROLE_GATEWAY, "city-00002");
        if (g)
            assert_string_equal(g->id, "city-00002-gateway");
        r->lookups++;
    }
    return NULL;
}

static char *answer(EVP_PKEY *key, const char *doc, const char *crl)
{
    size_t len = 0;
    char *env = sign(key, "registry", doc, &len);
    json_t *o = json_pack("{s:s#,s:o}", "registry", env, len, "crl", crl ? json_string(crl) : json_null());
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    free(env);
    return text;
}

static void node_swaps_newer_refuses_older_and_keeps_the_last_good(void **state)
{
    EVP_PKEY *key = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
    /* the anchor file, and network.json as installed */
    BIO *b = BIO_new(BIO_s_mem());
    char *pem = NULL;
    PEM_write_bio_PUBKEY(b, key);
    long n = BIO_get_mem_data(b, &pem);
    char anchor[200];
    snprintf(anchor, sizeof anchor, "%s", write_file("registry.pub", ""));
    FILE *f = fopen(anchor, "w");
    fwrite(pem, 1, (size_t)n, f);
    fclose(f);
    BIO_free(b);
    char *plain = make_doc(0, NULL, 3, NULL);
    char network[200];
    snprintf(network, sizeof network, "%s", write_file("network.json", plain));
    rk_node *node = calloc(1, sizeof *node);
    snprintf(node->cfg.dir, sizeof node->cfg.dir, "%s", dir);
    snprintf(node->cfg.id, sizeof node->cfg.id, "core");
    snprintf(node->cfg.network, sizeof node->cfg.network, "%s", network);
    snprintf(node->cfg.registry_anchor, sizeof node->cfg.registry_anchor, "%s", anchor);
    node->cfg.registry_refresh = 60;
    char err[256] = "";
    assert_int_equal(rk_node_registry_open(node, err, sizeof err), RK_OK);
    assert_int_equal(node->registry->serial, 0); /* network.json: nothing kept yet */
    node->self = rk_registry_by_id(node->registry, "core");

    reader r = {.node = node};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_loop, &r), 0);
    char *a2 = NULL;
    for (long serial = 1; serial <= 40; serial++) { /* swaps while the reader looks up */
        char *doc = make_doc(serial, "2026-12-07T12:00:00Z", 3 + (int)(serial % 5), serial % 2 ? "kenpo-x" : NULL);
        char *text = answer(key, doc, NULL);
        assert_int_equal(rk_node_registry_consider(node, text, strlen(text)), 1);
        assert_int_equal(node->registry->serial, serial);
        assert_int_equal(rk_node_registry_consider(node, text, strlen(text)), 0); /* the same again: nothing new */
        if (serial == 2)
            a2 = strdup(text);
        free(doc);
        free(text);
    }
    r.stop = 1;
    pthread_join(t, NULL);
    assert_true(r.lookups > 0);
    /* within the grace (an hour): every replaced one kept, the first apart */
    assert_int_equal(node->n_retired, 39);
    assert_int_equal(node->registry_first->serial, 0);
    const rk_registry *good = node->registry;
    /* an older serial, a bad signature, a truncated body, another document under the same serial: refused */
    assert_int_equal(rk_node_registry_consider(node, a2, strlen(a2)), -1);
    assert_non_null(strstr(node->registry_error, "rollback"));
    char *doc = make_doc(41, "2026-12-07T12:00:00Z", 3, NULL);
    char *forged = answer(other, doc, NULL);
    assert_int_equal(rk_node_registry_consider(node, forged, strlen(forged)), -1);
    assert_non_null(strstr(node->registry_error, "signature"));
    char *fine = answer(key, doc, NULL);
    assert_int_equal(rk_node_registry_consider(node, fine, strlen(fine) / 2), -1);
    char *same40 = make_doc(40, "2026-12-07T12:30:00Z", 1, NULL);
    char *twin = answer(key, same40, NULL);
    assert_int_equal(rk_node_registry_consider(node, twin, strlen(twin)), -1);
    assert_non_null(strstr(node->registry_error, "another document"));
    assert_ptr_equal(node->registry, good);
    /* a new CRL under the same serial is applied */
    char *doc40 = make_doc(40, "2026-12-07T12:00:00Z", 3, NULL); /* serial 40's: 3 + 0 agencies, no kenpo */
    char *with_crl = answer(key, doc40, "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n");
    assert_int_equal(rk_node_registry_consider(node, with_crl, strlen(with_crl)), 1);
    assert_non_null(rk_registry_crl(node->registry, NULL));
    /* the last good one was kept in the node's folder: a restart starts on it */
    assert_int_equal(rk_node_registry_consider(node, fine, strlen(fine)), 1);
    rk_node_registry_close(node);
    memset(node, 0, sizeof *node);
    snprintf(node->cfg.dir, sizeof node->cfg.dir, "%s", dir);
    snprintf(node->cfg.id, sizeof node->cfg.id, "core");
    snprintf(node->cfg.network, sizeof node->cfg.network, "%s", network);
    snprintf(node->cfg.registry_anchor, sizeof node->cfg.registry_anchor, "%s", anchor);
    assert_int_equal(rk_node_registry_open(node, err, sizeof err), RK_OK);
    assert_int_equal(node->registry->serial, 41);
    rk_node_registry_close(node);
    /* a kept file that does not verify is not started on */
    char kept[300];
    snprintf(kept, sizeof kept, "%s/registry-last-good.json", dir);
    f = fopen(kept, "w");
    fputs(forged, f);
    fclose(f);
    memset(node, 0, sizeof *node);
    snprintf(node->cfg.dir, sizeof node->cfg.dir, "%s", dir);
    snprintf(node->cfg.id, sizeof node->cfg.id, "core");
    snprintf(node->cfg.network, sizeof node->cfg.network, "%s", network);
    snprintf(node->cfg.registry_anchor, sizeof node->cfg.registry_anchor, "%s", anchor);
    assert_int_equal(rk_node_registry_open(node, err, sizeof err), RK_OK);
    assert_int_equal(node->registry->serial, 0);
    rk_node_registry_close(node);
    free(node);
    free(a2);
    free(doc);
    free(forged);
    free(fine);
    free(same40);
    free(twin);
    free(doc40);
    free(with_crl);
    free(plain);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}

/* A replaced snapshot is freed once its grace has passed since it was
 * replaced; the first is kept until close, and so is the one this node's
 * own entry is in, until the grace has passed since it left it. */
static void node_frees_replaced_snapshots_after_the_grace(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    BIO *b = BIO_new(BIO_s_mem());
    char *pem = NULL;
    PEM_write_bio_PUBKEY(b, key);
    long n = BIO_get_mem_data(b, &pem);
    char anchor[200];
    snprintf(anchor, sizeof anchor, "%s", write_file("registry.pub", ""));
    FILE *f = fopen(anchor, "w");
    fwrite(pem, 1, (size_t)n, f);
    fclose(f);
    BIO_free(b);
    char *plain = make_doc(0, NULL, 3, NULL);
    char network[200];
    snprintf(network, sizeof network, "%s", write_file("network.json", plain));
    rk_node *node = calloc(1, sizeof *node);
    snprintf(node->cfg.dir, sizeof node->cfg.dir, "%s", dir);
    snprintf(node->cfg.id, sizeof node->cfg.id, "core");
    snprintf(node->cfg.network, sizeof node->cfg.network, "%s", network);
    snprintf(node->cfg.registry_anchor, sizeof node->cfg.registry_anchor, "%s", anchor);
    node->cfg.registry_refresh = 60;
    char err[256] = "";
    assert_int_equal(rk_node_registry_open(node, err, sizeof err), RK_OK);
    node->self = rk_registry_by_id(node->registry, "core");
    const rk_peer_node *role_kept = rk_registry_by_id(node->registry, "city-00000-gateway"); /* a role's entry from its start */
    assert_non_null(role_kept);
    node->registry_grace_ms = 200;
    long serial = 1;
#define SWAP()                                                                                                   \
    do {                                                                                                         \
        char *doc_ = make_doc(serial, "2026-12-07T12:00:00Z", 3 + (int)(serial % 3), NULL);                       \
        char *text_ = answer(key, doc_, NULL);                                                                   \
        assert_int_equal(rk_node_registry_consider(node, text_, strlen(text_)), 1);                               \
        assert_int_equal(node->registry->serial, serial);                                                        \
        serial++;                                                                                                \
        free(doc_);                                                                                              \
        free(text_);                                                                                             \
    } while (0)
    for (int i = 0; i < 5; i++)
        SWAP(); /* within the grace: 4 replaced kept, the first apart */
    assert_int_equal(node->n_retired, 4);
    assert_ptr_equal(node->self, rk_registry_by_id(node->registry, "core")); /* self moved with each */
    usleep(250 * 1000);
    SWAP(); /* the 4 are past their grace: freed; the one just replaced is kept */
    assert_int_equal(node->n_retired, 1);
    assert_string_equal(role_kept->id, "city-00000-gateway"); /* the first is never freed while the node is open */
    /* this node's entry no longer matches the certificate it presents (a renewal
     * not taken): self stays where it is, and that snapshot with it */
    node->identity = &node->first_identity;
    snprintf(node->first_identity.fingerprint, sizeof node->first_identity.fingerprint, "%064d", 7);
    const rk_peer_node *stuck = node->self;
    SWAP();
    assert_ptr_equal(node->self, stuck);
    usleep(250 * 1000);
    for (int i = 0; i < 3; i++)
        SWAP();
    assert_ptr_equal(node->self, stuck);
    assert_int_equal(node->n_retired, 4); /* self's, past its grace, and the three within */
    assert_string_equal(stuck->id, "core"); /* still there (ASan says so) */
    /* the certificate taken: self moves on, its old snapshot gets the grace from then */
    snprintf(node->first_identity.fingerprint, sizeof node->first_identity.fingerprint, "%s", stuck->fingerprint);
    SWAP();
    assert_ptr_not_equal(node->self, stuck);
    assert_int_equal(node->n_retired, 5);
    assert_string_equal(stuck->id, "core");
    usleep(250 * 1000);
    SWAP();
    assert_int_equal(node->n_retired, 1);
    /* a bound: many swaps, each past the grace of the ones before, keep one */
    node->registry_grace_ms = 1;
    for (int i = 0; i < 50; i++) {
        usleep(2000);
        SWAP();
    }
    assert_true(node->n_retired <= 1);
    assert_string_equal(role_kept->id, "city-00000-gateway");
#undef SWAP
    rk_node_registry_close(node);
    free(node);
    free(plain);
    EVP_PKEY_free(key);
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
        cmocka_unit_test_setup_teardown(signed_registry_opens_and_finds, setup, teardown),
        cmocka_unit_test_setup_teardown(signed_registry_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(node_swaps_newer_refuses_older_and_keeps_the_last_good, setup, teardown),
        cmocka_unit_test_setup_teardown(node_frees_replaced_snapshots_after_the_grace, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
