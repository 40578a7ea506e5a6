/* query.h — one query at the requester, whatever carried it: POST
 * /v1/queries (queries.c, a flow each) and the queries of a batch
 * (batches.c, sent in groups by the batch runner) share these steps, so
 * that a query of a batch is sent, opened, recorded and kept exactly as a
 * single one: the same exchange id, record and kept answer (DESIGN §2.2,
 * §3). Private to src/agency. */
#ifndef RK_AGENCY_QUERY_H
#define RK_AGENCY_QUERY_H

#include <jansson.h>

#include "agency/agency.h"
#include "agency/held_store.h"
#include "records/records.h"

typedef struct agency_q {
    agency *a;
    const char *query_id, *person, *business, *provider, *item, *operator_id; /* the request's */
    rk_condition condition;
    char exchange_id[RK_EXCHANGE_ID_MAX + 1];
    char request_hash[65];
    rk_record rec;
    int status;
    json_t *answer;
    agency_received received;
    awaiting_in awaiting;     /* held: the query waits for the provider's operator (held_store.h) */
    char transient[32];       /* the error code of an answer whose outcome is unknown */
    char *value_json;         /* the provided value: wiped */
    char as_of[RK_DATE_LEN + 1];
} agency_q;

/* Reads the query in req's body (borrowed while q is used); its exchange
 * id, request hash and record made, the record dated req->received_ms.
 * 0, or -1 with resp the 400. */
int agency_q_open(agency *a, agency_q *q, const rk_request *req, rk_response *resp);

/* The person has no code here: the outcome (to settle). */
void agency_q_not_linked(agency_q *q);

/* The exchange to send for it, with the person's code (POST /v1/exchanges,
 * or an entry of its batch form); NULL without memory. */
json_t *agency_q_exchange(const agency_q *q, const char *code);

/* The core's answer to the exchange (rc, HTTP status and the parsed body,
 * which may be NULL): a provided payload is opened and its signature
 * checked (CPU: a worker's or a background thread's). 0 when the outcome is
 * known (to settle), -1 when it is not (q->transient names why: send again
 * with the same id). */
int agency_q_take(agency_q *q, rk_rc rc, long status, json_t *body);

/* The answer to settle (the caller's), with s filled to settle it but for
 * its body: record, kept answer and, when provided, the received value
 * (q->received, s's extra). */
json_t *agency_q_settlement(agency_q *q, rk_settlement *s);

/* Frees and wipes what the query holds. */
void agency_q_clear(agency_q *q);

#endif
