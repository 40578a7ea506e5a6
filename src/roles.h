/* roles.h — the node roles, each described once (node/node.h,
 * rk_role_desc) and run by the one run loop, rk_role_main:
 * `renkei <role> --config FILE`. */
#ifndef RK_ROLES_H
#define RK_ROLES_H

#include "node/node.h"

extern const rk_role_desc rk_core_role;    /* src/core: コアシステム */
extern const rk_role_desc rk_jlis_role;    /* src/jlis: J-LIS's code relay */
extern const rk_role_desc rk_gateway_role; /* src/gateway: インターフェイスシステム */
extern const rk_role_desc rk_agency_role;  /* src/agency: 中間サーバー */
extern const rk_role_desc rk_witness_role; /* src/witness: a witness of the core's log (C2SP tlog-witness) */
extern const rk_role_desc rk_portal_role;  /* src/portal: persons see their exchanges with proofs (DESIGN §2.5) */
extern const rk_role_desc rk_ppc_role;     /* src/ppc: the PIA register (個人情報保護委員会, 法28条) */

#endif
