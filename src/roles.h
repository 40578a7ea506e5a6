/* roles.h — the node roles' entry points (`renkei <role> --config FILE`). */
#ifndef RK_ROLES_H
#define RK_ROLES_H

int rk_core_main(int argc, char **argv);
int rk_jlis_main(int argc, char **argv);
int rk_gateway_main(int argc, char **argv);
int rk_agency_main(int argc, char **argv);

#endif
