/* main.c — the `renkei` dispatcher: one binary, a role or a tool per word. */
#include <stdio.h>
#include <string.h>

#include "lib/util.h"
#include "roles.h"
#include "tools/catalog_cmd.h"
#include "tools/tools.h"

static const rk_role_desc *const roles[] = {&rk_core_role, &rk_jlis_role, &rk_gateway_role, &rk_agency_role,
                                            &rk_witness_role, &rk_portal_role, &rk_ppc_role};

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"demo", rk_cmd_demo, "build a whole network in a temporary folder and run the flows"},
    {"net", rk_cmd_net, "init | up | status: write, run and check a network"},
    {"pki", rk_cmd_pki, "init | issue | fingerprint | show: the network CA and certificates"},
    {"mynumber", rk_cmd_mynumber, "check N… | checkcode N: My Number check digit and check code"},
    {"agency-ctl", rk_cmd_agency_ctl, "client for an agency node's business API (enrol, status, …)"},
    {"card", rk_cmd_card, "issue | revoke: persons' cards of a network (the card CA)"},
    {"catalog", rk_cmd_catalog, "publish | show: the catalogue as signed versions"},
    {"registry", rk_cmd_registry, "publish | show DIR: the network's signed registry"},
    {"records", rk_cmd_records, "verify DIR: check every node's records against its signed tree heads"},
    {"bench", rk_cmd_bench, "benchmarks: codes | http | exchanges | enrol (figures, never pass/fail)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: renkei COMMAND [ARGS…]  (renkei COMMAND --help for more)\n\n");
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        fprintf(out, "  %-11s %s\n", rk_role_name(roles[i]->role), roles[i]->help);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    rk_json_wipe_on_free(); /* before any JSON is made */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "core") == 0 && strcmp(argv[2], "rotate-code-key") == 0)
        return rk_cmd_core_rotate(argc - 2, argv + 2);
    /* `renkei agency add|remove DIR …` change the membership; `renkei agency --config` runs the node */
    if (strcmp(argv[1], "agency") == 0 && argc >= 3 &&
        (strcmp(argv[2], "add") == 0 || strcmp(argv[2], "remove") == 0 || strcmp(argv[2], "--help") == 0 ||
         strcmp(argv[2], "-h") == 0))
        return rk_cmd_agency(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(argv[1], rk_role_name(roles[i]->role)) == 0)
            return rk_role_main(roles[i], argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "renkei: unknown command '%s' (try renkei --help)\n", argv[1]);
    return 2;
}
