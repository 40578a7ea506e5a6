/* exchange.h — one exchange at the core, whatever carried it: POST
 * /v1/exchanges (exchanges.c, a flow each) and POST /v1/exchanges/batch
 * (exchanges_batch.c, many in one flow) share these steps, so that an
 * exchange in a batch is checked, sent, recorded and kept exactly as a
 * single one (DESIGN §2.2; 法21条, 法23条). Private to src/core. */
#ifndef RK_CORE_EXCHANGE_H
#define RK_CORE_EXCHANGE_H

#include <jansson.h>

#include "core/core.h"
#include "records/records.h"

typedef struct core_xchg {
    core *c;
    const char *exchange_id, *code, *business, *provider, *item, *operator_id, *requester_cert; /* the request's */
    rk_condition condition;
    const rk_peer_node *requester_node, *provider_node, *gateway;
    char request_hash[65];
    rk_record rec;
    int status;                           /* HTTP status of the answer */
    json_t *answer;                       /* the answer body, until settled */
    char provider_code[RK_CODE_TEXT_MAX]; /* the person's code for the provider: wiped */
} core_xchg;

/* On the event thread: reads the exchange in req's body (borrowed until
 * the exchange is cleared), the requester from the calling gateway and the
 * id's prefix; fills the record. 0, or -1 with resp the refusal. */
int core_xchg_open(core *c, core_xchg *x, const rk_request *req, rk_response *resp);

/* On a worker: the answer kept for this exchange, if any (1, as below). */
int core_xchg_kept(core_xchg *x, int *kept_status, char **kept_body);

/* On a worker: the answer kept for this exchange (1: *kept_status and
 * *kept_body, malloc'ed — 409 conflict when the id came with another
 * request), else the rate watch, code, permission, ownership and issue
 * checks and the provider's code: 0 on to the provider, -1 refused (the
 * outcome set: settle it), -2 the store could not say (nothing settled). */
int core_xchg_check(core_xchg *x, int *kept_status, char **kept_body);

/* The provision request for the provider (POST /v1/provisions, or an entry
 * of its batch form); NULL without memory. */
json_t *core_xchg_provision(const core_xchg *x);

/* The provider's answer (rc, HTTP status and parsed body, which may be
 * NULL) made the exchange's outcome. */
void core_xchg_take_provision(core_xchg *x, rk_rc rc, long status, json_t *body);

/* The answer completed (times) and given to the caller (x->answer is
 * gone), with s filled to settle it but for its body. */
json_t *core_xchg_settlement(core_xchg *x, rk_settlement *s);

/* Today's log line once the commit is over. */
void core_xchg_logged(const core_xchg *x, rk_rc rc);

/* Frees and wipes what the exchange holds. */
void core_xchg_clear(core_xchg *x);

#endif
