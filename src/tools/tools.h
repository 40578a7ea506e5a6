/* tools.h — the subcommands of `renkei` that are not node roles. Each takes
 * argv with argv[0] = its own name and returns the process exit code. */
#ifndef RK_TOOLS_H
#define RK_TOOLS_H

int rk_cmd_pki(int argc, char **argv);
int rk_cmd_net(int argc, char **argv);
int rk_cmd_demo(int argc, char **argv);
int rk_cmd_mynumber(int argc, char **argv);
int rk_cmd_agency_ctl(int argc, char **argv);
int rk_cmd_bench(int argc, char **argv);
int rk_cmd_records(int argc, char **argv);
int rk_cmd_card(int argc, char **argv);
int rk_cmd_core_rotate(int argc, char **argv); /* renkei core rotate-code-key */
int rk_cmd_registry(int argc, char **argv);
int rk_cmd_agency(int argc, char **argv); /* `renkei agency add|remove` (the agency role otherwise) */

#endif
