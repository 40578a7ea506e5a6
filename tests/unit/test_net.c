/* test_net.c — `renkei net init`: the network it writes loads and is whole.
 * (`net up` and `net status` need running nodes: system tests cover them.) */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/config.h"
#include "lib/basic_info.h"
#include "lib/mynumber.h"
#include "net/registry.h"
#include "lib/util.h"
#include "tools/net/net.h"

#define PATH_CAP 4096

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup_tmp(void **state)
{
    char *dir = strdup("/tmp/renkei-test-net-XXXXXX");
    if (!dir || !mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int teardown_tmp(void **state)
{
    remove_tree(*state);
    free(*state);
    return 0;
}

static void join(char *out, const char *a, const char *b)
{
    assert_true(snprintf(out, PATH_CAP, "%s/%s", a, b) < PATH_CAP);
}

static void assert_mode_0600(const char *dir, const char *rel)
{
    char path[PATH_CAP];
    struct stat st;
    join(path, dir, rel);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static size_t count_role(const rk_registry *reg, rk_role role)
{
    size_t n = 0;
    for (size_t i = 0; i < reg->n_nodes; i++)
        n += reg->nodes[i].role == role;
    return n;
}

static void check_registry(const char *dir, rk_registry **out)
{
    char path[PATH_CAP], err[512] = "";
    rk_registry *reg = NULL;
    join(path, dir, "network.json");
    assert_int_equal(rk_registry_load(path, &reg, err, sizeof err), RK_OK);
    assert_string_equal(reg->network, "renkei");
    /* core, jlis, a witness, the portal, the ppc; 4 per agency; operator, the ppc's operator */
    assert_int_equal(reg->n_nodes, 5 + 4 + 4 + 4 + 4 + 2);
    const rk_peer_node *core = rk_registry_by_id(reg, "core");
    assert_non_null(core);
    assert_int_equal(core->role, RK_ROLE_CORE);
    assert_true(strncmp(core->url, "https://127.0.0.1:", 18) == 0);
    assert_true(strncmp(core->backup_url, "https://127.0.0.1:", 18) == 0);
    assert_string_not_equal(core->url, core->backup_url);
    assert_non_null(rk_registry_find(reg, RK_ROLE_JLIS, NULL));
    assert_non_null(rk_registry_find(reg, RK_ROLE_WITNESS, NULL));
    const rk_peer_node *portal = rk_registry_find(reg, RK_ROLE_PORTAL, NULL);
    assert_non_null(portal); /* with its listener for persons' cards (DESIGN §3) */
    assert_true(strncmp(portal->person_url, "https://127.0.0.1:", 18) == 0);
    assert_string_not_equal(portal->url, portal->person_url);
    assert_int_equal(count_role(reg, RK_ROLE_GATEWAY), 4);
    assert_int_equal(count_role(reg, RK_ROLE_AGENCY), 4);
    assert_int_equal(count_role(reg, RK_ROLE_SYSTEM), 4);
    assert_int_equal(count_role(reg, RK_ROLE_OPERATOR), 5); /* the network's, and each agency's */
    const rk_peer_node *ppc = rk_registry_find(reg, RK_ROLE_PPC, NULL); /* the PIA register (法28条) */
    assert_non_null(ppc);
    assert_true(strncmp(ppc->url, "https://127.0.0.1:", 18) == 0);
    const rk_peer_node *ppc_op = rk_registry_find(reg, RK_ROLE_PPC_OPERATOR, NULL);
    assert_non_null(ppc_op);
    assert_string_equal(ppc_op->url, "");
    const rk_peer_node *gw = rk_registry_find(reg, RK_ROLE_GATEWAY, "kyokai-kenpo");
    assert_non_null(gw);
    assert_string_equal(gw->id, "kyokai-kenpo-gateway");
    assert_string_equal(gw->kind, "insurer");
    const rk_peer_node *sys = rk_registry_by_id(reg, "city-yokohama-system");
    assert_non_null(sys);
    assert_string_equal(sys->url, "");
    assert_string_equal(sys->kind, "municipality");
    assert_true(rk_peer_address_allowed(sys, "127.0.0.1"));
    *out = reg;
}

/* Every server node has a loadable node.conf, and distinct ports. */
static void check_configs(const char *dir, const rk_registry *reg)
{
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        if (n->role & (RK_ROLE_SYSTEM | RK_ROLE_OPERATOR | RK_ROLE_PPC_OPERATOR))
            continue;
        char path[PATH_CAP], err[512] = "";
        rk_node_config cfg;
        assert_true(snprintf(path, sizeof path, "%s/nodes/%s/node.conf", dir, n->id) < (int)sizeof path);
        assert_int_equal(rk_config_load(path, &cfg, err, sizeof err), RK_OK);
        assert_string_equal(cfg.id, n->id);
        assert_int_equal(access(cfg.cert, R_OK), 0);
        assert_int_equal(access(cfg.network, R_OK), 0);
        assert_int_equal(access(cfg.ca, R_OK), 0);
        if (n->role == RK_ROLE_CORE) {
            assert_int_equal(access(cfg.permissions, R_OK), 0);
            assert_int_equal(access(cfg.master_key_file, R_OK), 0);
        }
        if (n->role == RK_ROLE_CORE)
            assert_int_equal(access(cfg.catalogue, R_OK), 0);
        if (n->role == RK_ROLE_JLIS) {
            assert_int_equal(access(cfg.residents, R_OK), 0);
            assert_int_equal(access(cfg.card_ca, R_OK), 0);
            assert_int_equal(access(cfg.card_crl, R_OK), 0);
        }
        if (n->role == RK_ROLE_PORTAL)
            assert_int_equal(access(cfg.card_ca, R_OK), 0);
        if (n->role == RK_ROLE_PPC) { /* the businesses it knows, and its first states: every one published */
            char *text = NULL;
            assert_int_equal(access(cfg.permissions, R_OK), 0);
            assert_int_equal(rk_read_file(cfg.pia_initial, 1 << 20, &text, NULL), RK_OK);
            assert_true(strncmp(text, "agency,business,state,evaluated_on\n", 35) == 0);
            /* the table's one row is municipality's b1: Yokohama's alone */
            const char *row = strstr(text, "\ncity-yokohama,b1,published,");
            assert_non_null(row);
            assert_int_equal(strlen(row), strlen("\ncity-yokohama,b1,published,YYYY-MM-DD\n"));
            free(text);
        }
        for (size_t j = i + 1; j < reg->n_nodes; j++)
            assert_string_not_equal(n->url, reg->nodes[j].url);
    }
}

static void check_key_modes(const char *dir, const rk_registry *reg)
{
    char rel[PATH_CAP];
    assert_mode_0600(dir, "pki/ca-key.pem");
    assert_mode_0600(dir, "pki/card-ca-key.pem"); /* the card CA's: persons' cards (DESIGN §2.5) */
    assert_mode_0600(dir, "nodes/core/master.key");
    assert_mode_0600(dir, "clients/operator/key.pem");
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        if (n->role == RK_ROLE_OPERATOR)
            snprintf(rel, sizeof rel, "clients/%s/key.pem", n->id);
        else if (n->role == RK_ROLE_SYSTEM)
            snprintf(rel, sizeof rel, "clients/%s/key.pem", n->agency);
        else if (n->role == RK_ROLE_PPC_OPERATOR)
            snprintf(rel, sizeof rel, "clients/ppc/key.pem");
        else
            snprintf(rel, sizeof rel, "nodes/%s/key.pem", n->id);
        assert_mode_0600(dir, rel);
    }
}

static void check_master_key(const char *dir)
{
    char path[PATH_CAP], *text = NULL;
    size_t len = 0;
    uint8_t key[32];
    join(path, dir, "nodes/core/master.key");
    assert_int_equal(rk_read_file(path, 4096, &text, &len), RK_OK);
    assert_int_equal(len, 65);
    assert_int_equal(text[64], '\n');
    text[64] = '\0';
    assert_int_equal(rk_unhex(text, key, sizeof key), RK_OK);
    for (int i = 0; i < 64; i++)
        assert_true((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f'));
    free(text);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1 header + 50 persons; valid, distinct My Numbers; every 20th with a
 * previous resident code. */
static void check_residents(const char *dir)
{
    char path[PATH_CAP], *text = NULL, *numbers[64];
    size_t len = 0, lines = 0, with_previous = 0, with_sex = 0;
    join(path, dir, "residents.csv");
    assert_int_equal(rk_read_file(path, 1 << 20, &text, &len), RK_OK);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), lines++) {
        if (lines == 0) {
            assert_string_equal(line, "my_number,resident_code,previous_resident_codes,name,birth_date,sex,address");
            continue;
        }
        assert_true(lines <= 50);
        char *number = strsep(&line, ","), *code = strsep(&line, ","), *previous = strsep(&line, ",");
        assert_non_null(code);
        assert_non_null(previous);
        /* the four basic items, valid (lib/basic_info.h); every 50th without sex */
        rk_basic_info items = {.name = strsep(&line, ","), .birth_date = strsep(&line, ",")};
        items.sex = strsep(&line, ",");
        items.address = line;
        assert_non_null(items.address);
        with_sex += *items.sex != '\0';
        if (!*items.sex)
            items.sex = NULL;
        assert_null(rk_basic_check(&items));
        assert_int_equal(rk_mynumber_validate(number), RK_OK);
        assert_int_equal(rk_resident_code_validate(code), RK_OK);
        if (*previous) {
            assert_int_equal(rk_resident_code_validate(previous), RK_OK);
            with_previous++;
        }
        numbers[lines - 1] = number;
    }
    assert_int_equal(lines, 51);
    assert_int_equal(with_previous, 2);
    assert_int_equal(with_sex, 49);
    qsort(numbers, 50, sizeof numbers[0], cmp_str);
    for (size_t i = 1; i < 50; i++)
        assert_string_not_equal(numbers[i - 1], numbers[i]);
    free(text);
}

static void test_init_writes_a_whole_network(void **state)
{
    const char *dir = *state;
    char err[1024] = "", data[PATH_CAP], perms[PATH_CAP], *text = NULL;
    rk_registry *reg = NULL;
    /* a data folder of its own, so the copied permission table is known */
    join(data, dir, "data");
    assert_int_equal(mkdir(data, 0755), 0);
    join(perms, data, "permissions.csv");
    const char table[] = "requester_kind,business,provider_kind,item\nmunicipality,b1,municipality,i1\n";
    assert_int_equal(rk_write_file(perms, table, strlen(table), 0644), RK_OK);
    setenv("RENKEI_DATA_DIR", data, 1);

    rk_net_options opt = {.agencies = 4, .persons = 50, .base_port = 0};
    rk_rc rc = rk_net_init(dir, &opt, err, sizeof err);
    if (rc != RK_OK)
        fail_msg("rk_net_init: %s", err);
    check_registry(dir, &reg);
    check_configs(dir, reg);
    check_key_modes(dir, reg);
    check_master_key(dir);
    check_residents(dir);
    join(perms, dir, "permissions.csv");
    assert_int_equal(rk_read_file(perms, 1 << 20, &text, NULL), RK_OK);
    assert_string_equal(text, table);
    free(text);
    rk_registry_free(reg);

    err[0] = '\0';
    assert_int_equal(rk_net_init(dir, &opt, err, sizeof err), RK_ERR_EXISTS);
    assert_non_null(strstr(err, "network.json"));
    unsetenv("RENKEI_DATA_DIR");
}

/* --base-port: sequential ports; no permission table: just the header. */
static void test_init_base_port_and_default_permissions(void **state)
{
    char dir[PATH_CAP], path[PATH_CAP], err[1024] = "", empty[PATH_CAP], *text = NULL;
    rk_registry *reg = NULL;
    join(dir, *state, "net");
    join(empty, *state, "no-data");
    setenv("RENKEI_DATA_DIR", empty, 1);
    rk_net_options opt = {.agencies = 2, .persons = 1, .base_port = 41000};
    rk_rc rc = rk_net_init(dir, &opt, err, sizeof err);
    if (rc != RK_OK)
        fail_msg("rk_net_init: %s", err);
    join(path, dir, "network.json");
    assert_int_equal(rk_registry_load(path, &reg, err, sizeof err), RK_OK);
    assert_int_equal(reg->n_nodes, 5 + 4 * 2 + 2);
    assert_string_equal(rk_registry_by_id(reg, "core")->url, "https://127.0.0.1:41000");
    assert_string_equal(rk_registry_by_id(reg, "core")->backup_url, "https://127.0.0.1:41001");
    assert_string_equal(rk_registry_by_id(reg, "jlis")->url, "https://127.0.0.1:41002");
    assert_string_equal(rk_registry_by_id(reg, "witness-1")->url, "https://127.0.0.1:41003");
    assert_string_equal(rk_registry_by_id(reg, "portal")->url, "https://127.0.0.1:41004");
    assert_string_equal(rk_registry_by_id(reg, "portal")->person_url, "https://127.0.0.1:41005");
    assert_string_equal(rk_registry_by_id(reg, "ppc")->url, "https://127.0.0.1:41006");
    assert_string_equal(rk_registry_by_id(reg, "city-yokohama-gateway")->url, "https://127.0.0.1:41007");
    assert_string_equal(rk_registry_by_id(reg, "pref-kanagawa")->url, "https://127.0.0.1:41010");
    assert_string_equal(rk_registry_by_id(reg, "jlis")->backup_url, "");
    rk_registry_free(reg);
    join(path, dir, "permissions.csv");
    assert_int_equal(rk_read_file(path, 4096, &text, NULL), RK_OK);
    assert_string_equal(text, "requester_kind,business,provider_kind,item\n");
    free(text);
    join(path, dir, "catalogue/items.csv"); /* no catalogue either: just its header */
    assert_int_equal(rk_read_file(path, 4096, &text, NULL), RK_OK);
    assert_string_equal(text, "item,name_ja,name_en\n");
    free(text);
    unsetenv("RENKEI_DATA_DIR");
}

static void test_init_refuses_bad_options(void **state)
{
    char dir[PATH_CAP], err[256];
    join(dir, *state, "bad");
    rk_net_options opt = {.agencies = 1};
    assert_int_equal(rk_net_init(dir, &opt, err, sizeof err), RK_ERR_INVALID);
    opt.agencies = 5001;
    assert_int_equal(rk_net_init(dir, &opt, err, sizeof err), RK_ERR_INVALID);
    opt = (rk_net_options){.persons = 5000001};
    assert_int_equal(rk_net_init(dir, &opt, err, sizeof err), RK_ERR_INVALID);
    opt = (rk_net_options){.base_port = 65530};
    assert_int_equal(rk_net_init(dir, &opt, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "ports"));
    opt = (rk_net_options){.ha = 1}; /* failover of a database: PostgreSQL's */
    assert_int_equal(rk_net_init(dir, &opt, err, sizeof err), RK_ERR_INVALID);
    assert_string_equal(err, "--ha needs --store postgres");
}

static void test_cli_usage(void **state)
{
    (void)state;
    char *no_cmd[] = {"net", NULL};
    char *bad_cmd[] = {"net", "frobnicate", NULL};
    char *no_dir[] = {"net", "status", NULL};
    char *bad_opt[] = {"net", "init", "x", "--agencies", "1", NULL};
    char *ha_sqlite[] = {"net", "init", "x", "--ha", NULL};
    assert_int_equal(rk_cmd_net(1, no_cmd), 2);
    assert_int_equal(rk_cmd_net(2, bad_cmd), 2);
    assert_int_equal(rk_cmd_net(2, no_dir), 2);
    assert_int_equal(rk_cmd_net(5, bad_opt), 2);
    assert_int_equal(rk_cmd_net(4, ha_sqlite), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_writes_a_whole_network, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_init_base_port_and_default_permissions, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_init_refuses_bad_options, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_cli_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
