/* agency.h — an agency node's shared state (情報提供等事務に使用する他の情報
 * システム, in practice the 中間サーバー), owned by agency.c. */
#ifndef RK_AGENCY_H
#define RK_AGENCY_H

#include <jansson.h>

#include "lib/condition.h"
#include "agency/agency_store.h"
#include "lib/basic_info.h"
#include "node/node.h"
#include "records/records.h"
#include "records/records_log.h"

struct rk_service;

typedef struct agency {
    rk_node *node;
    agency_store *store;
    const rk_peer_node *jlis;
    const rk_peer_node *gateway;   /* this agency's own interface system */
    rk_records_log *log;           /* the records as a signed Merkle log */
    struct rk_service *sweeper;    /* settles enrolments left pending (sweeper.c) */
    struct rk_service *batches;    /* sends the queries of batches (batches.c) */
    struct rk_service *held;       /* declines held requests past held_timeout, sends late results (held.c) */
} agency;

/* persons.c: code acquisition (DESIGN §2.1). Enrolments are started
 * routes (they call J-LIS); the rest only touch the store. */
void agency_start_person(void *app, rk_pending *p, const rk_request *req, rk_response *resp);
void agency_get_person(void *app, const rk_request *req, rk_response *resp);
void agency_post_code_notice(void *app, const rk_request *req, rk_response *resp);
/* Bulk forms (at most RK_BATCH_MAX entries, one commit). */
void agency_start_persons_batch(void *app, rk_pending *p, const rk_request *req, rk_response *resp);
/* POST /v1/persons/recheck: J-LIS compares linked persons' basic items
 * again (1..RK_BATCH_MAX); nothing is linked, stored or logged but counts. */
void agency_start_recheck(void *app, rk_pending *p, const rk_request *req, rk_response *resp);
void agency_post_code_notices_batch(void *app, const rk_request *req, rk_response *resp);

/* The readers of the agency node's request bodies, before any store or
 * call: what its routes take from outside (tests/fuzz/fuzz_agency.c drives
 * them). Each returns 0 with its fields borrowed from req, or -1 with resp
 * the 400 (404 for a data path without an item); the entry readers of the
 * bulk forms return NULL or the entry's error code. */
int agency_read_person(const rk_request *req, rk_response *resp, const char **person, const char **my_number,
                       int *check_code, rk_basic_info *items);
const char *agency_read_person_entry(json_t *e, const char **person, int *check_code, rk_basic_info *items);
int agency_read_code_notice(const rk_request *req, rk_response *resp, agency_notice *n);
/* One entry of /v1/code-notices/batch: acquisition_no NULL when malformed,
 * check_code -1 unless 0..9 (the store answers invalid_field for both). */
void agency_read_notice_entry(json_t *e, agency_notice *n);
typedef struct agency_data_in {
    char person[80], item[80];   /* from the path /v1/data/{person}/{item} */
    const char *as_of, *request_id;
    json_t *value;
} agency_data_in;
int agency_read_data(const rk_request *req, rk_response *resp, agency_data_in *in);
typedef struct agency_provision_in {
    const char *exchange_id, *code, *business, *requester, *item, *requester_cert;
    rk_condition condition; /* the query's condition, as the core relays it */
} agency_provision_in;
int agency_read_provision(const rk_request *req, rk_response *resp, agency_provision_in *in);
typedef struct agency_query_in {
    const char *query_id, *person, *business, *provider, *item, *operator_id;
    rk_condition condition; /* {"fiscal_year"} or {"as_of"}: the version in force then; none: the newest */
} agency_query_in;
int agency_read_query(const rk_request *req, rk_response *resp, agency_query_in *in);
int agency_read_unlawful(const rk_request *req, rk_response *resp, const char **exchange_id, const char **kind,
                         const char **reason, int *is_request);
/* POST /v1/records/{exchange_id}/nondisclosure: the exchange id from the
 * path (a 404 when the path is not that), basis, operator, until (NULL
 * when not given). */
int agency_read_nondisclosure(const rk_request *req, rk_response *resp, char exchange_id[RK_EXCHANGE_ID_MAX + 1],
                              const char **basis, const char **operator_id, const char **until);
/* POST /v1/records/{exchange_id}/nondisclosure/lift: the exchange id, operator, reason. */
int agency_read_nondisclosure_lift(const rk_request *req, rk_response *resp,
                                   char exchange_id[RK_EXCHANGE_ID_MAX + 1], const char **operator_id,
                                   const char **reason);

/* held.c: held answers (手動応答) for protected persons. The readers of
 * its bodies (0, or -1 with resp the 4xx); the routes only touch the store
 * (an answer seals too); the service declines requests held past [agency]
 * held_timeout and sends late results to the core (stop before closing
 * the store). */
int agency_read_handling(const rk_request *req, rk_response *resp, char person[RK_ID_FIELD_MAX + 1], int *auto_answer,
                         const char **reason);
int agency_read_held_action(const rk_request *req, rk_response *resp, char exchange_id[RK_EXCHANGE_ID_MAX + 1],
                            int *answer, const char **operator_id);
void agency_put_handling(void *app, const rk_request *req, rk_response *resp);
void agency_get_held(void *app, const rk_request *req, rk_response *resp);
void agency_post_held_action(void *app, const rk_request *req, rk_response *resp);
void agency_post_query_result(void *app, const rk_request *req, rk_response *resp);
rk_rc agency_held_start(agency *a);
void agency_held_stop(agency *a);
/* provision.c: the late answer to a held request, sealed as an automatic
 * provision is (no_data when the person or the item has none): *late its
 * record, *result (malloc'ed) what the core gets. RK_ERR_INVALID when the
 * requester's certificate is no longer its registered one. */
struct held_row;
rk_rc agency_held_answer(agency *a, const struct held_row *h, const char *operator_id, rk_record *late,
                         char **result);

/* sweeper.c: fails enrolments left pending too long; stop before closing
 * the store. */
rk_rc agency_sweeper_start(agency *a);
void agency_sweeper_stop(agency *a);

/* batches.c: batch queries (一括照会). The routes only touch the store;
 * the runner's lanes send the pending queries (stop before closing the
 * store); a new batch wakes them. */
void agency_post_queries_batch(void *app, const rk_request *req, rk_response *resp);
void agency_get_queries_batch(void *app, const rk_request *req, rk_response *resp);
void agency_get_query(void *app, const rk_request *req, rk_response *resp);
rk_rc agency_batches_start(agency *a);
void agency_batches_wake(agency *a);
void agency_batches_stop(agency *a);

/* provision.c and queries.c: request and provision (DESIGN §2.2). */
void agency_put_data(void *app, const rk_request *req, rk_response *resp);
void agency_start_provision(void *app, rk_pending *p, const rk_request *req, rk_response *resp);
void agency_post_provisions_batch(void *app, const rk_request *req, rk_response *resp);
void agency_start_query(void *app, rk_pending *p, const rk_request *req, rk_response *resp);
void agency_get_records(void *app, const rk_request *req, rk_response *resp);
void agency_start_unlawful(void *app, rk_pending *p, const rk_request *req, rk_response *resp);
void agency_post_deletion(void *app, const rk_request *req, rk_response *resp);
/* nondisclosure.c: a record not to be disclosed to the person (法23条). */
void agency_start_nondisclosure(void *app, rk_pending *p, const rk_request *req, rk_response *resp);
void agency_get_proof(void *app, const rk_request *req, rk_response *resp);
void agency_get_consistency(void *app, const rk_request *req, rk_response *resp);
void agency_get_heads(void *app, const rk_request *req, rk_response *resp);
/* The checkpoint and tiles hold hashes only: any registered caller reads them (DESIGN §4.1). */
void agency_get_checkpoint(void *app, const rk_request *req, rk_response *resp);
void agency_get_tile(void *app, const rk_request *req, rk_response *resp);

#endif
