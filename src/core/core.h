/* core.h — the core system's shared state, owned by core.c. Handlers and
 * the notice deliverer borrow it for the life of the server. */
#ifndef RK_CORE_H
#define RK_CORE_H

#include <jansson.h>
#include <pthread.h>
#include "lib/condition.h"
#include "core/core_store.h"
#include "core/codes.h"
#include "node/node.h"
#include "core/permissions.h"
#include "records/checkpoint.h"
#include "records/records_log.h"
#include "node/watch.h"

#define CORE_NOTICE_LANES 8

typedef struct core {
    rk_node *node;
    core_store *store;
    rk_codec *codec;
    rk_permissions *perms;          /* swapped on SIGHUP, or at a catalogue version's effective time, under perms_lock */
    struct core_catalog *cat;       /* the signed catalogue's versions ([core] catalog_dir; core/catalog.h), or NULL */
    rk_permissions *catalogue;      /* names of kinds, businesses, items ([core] catalogue); with perms */
    pthread_rwlock_t perms_lock;
    /* notice deliverers: lanes of the outbox (a notice's lane is its id %
     * CORE_NOTICE_LANES), each its own thread, woken alone by its own new work */
    pthread_t deliverers[CORE_NOTICE_LANES];
    struct core_lane {
        struct core *c;
        int index;
        int pending;          /* new work since the lane last looked: under wake_lock */
        pthread_cond_t wake;
    } lanes[CORE_NOTICE_LANES];
    int deliverers_running;
    pthread_mutex_t wake_lock;
    int stopping;
    uint64_t notices_delivered, notices_failed_attempts;
    /* early detection (第3-5) */
    rk_watch *not_permitted;    /* bursts of refused requests, per requester */
    rk_watch *misused_codes;    /* one code_not_yours incident per requester and window */
    rk_watch *rates;            /* request rate jumps, per requester */
    rk_watch *unreachable;      /* agencies whose notices cannot be delivered */
    rk_records_log *log;        /* the records as a signed Merkle log */
    struct rk_service *results; /* delivers held requests' late results to requesters (provision_results.c) */
    rk_vkey witnesses[8];       /* the witnesses' vkeys: a person's proofs are against a head they all cosigned */
    size_t n_witnesses;
    struct core_console *console; /* console.c: the operator's view of every node's health */
    struct core_pia *pia;       /* the PIA gate (core/pia.h, 法28条) */
} core;

/* notices.c: the durable delivery of code notices to agencies. */
rk_rc core_notices_start(core *c);
/* Wakes the lane of a notice just queued or re-armed (committed); a
 * notice_id < 0 wakes every lane. */
void core_notices_wake(core *c, int64_t notice_id);
void core_notices_stop(core *c);

/* provision_results.c: the late results of held requests (手動応答),
 * recorded and delivered to the requester's agency, durable and retried. */
void core_handle_provision_result(void *app, const rk_request *req, rk_response *resp);
rk_rc core_results_start(core *c);
void core_results_stop(core *c);
size_t core_results_pending(core *c);

/* The readers of the core's request bodies, before any store or call:
 * what its routes take from outside (tests/fuzz/fuzz_core.c drives them). */
#define CORE_MAX_PREVIOUS 8
/* One acquisition of POST /v1/codes (or an entry of /v1/codes/batch):
 * NULL when usable (a's strings stay owned by obj, previous holds the
 * earlier codes), else the name of the field at fault. */
const char *core_read_acquisition(json_t *obj, core_acquisition *a, const char *previous[CORE_MAX_PREVIOUS]);
/* POST /v1/exchanges: 0 with the fields, else -1 with resp a 400. */
typedef struct core_exchange_in {
    const char *exchange_id, *code, *business, *provider, *item, *operator_id, *requester_cert;
    rk_condition condition; /* the query's condition, RK_COND_NONE when none */
} core_exchange_in;
int core_read_exchange(const rk_request *req, rk_response *resp, core_exchange_in *in);

/* codes handler (code acquisition from J-LIS). */
void core_handle_codes(void *app, const rk_request *req, rk_response *resp);
void core_handle_codes_batch(void *app, const rk_request *req, rk_response *resp);

/* exchanges.c: request → permission check → provision (DESIGN §2.2). */
void core_start_exchange(void *app, rk_pending *p, const rk_request *req, rk_response *resp);
/* exchanges_batch.c: the same for many exchanges of one requester, one call per provider (一括照会). */
void core_start_exchange_batch(void *app, rk_pending *p, const rk_request *req, rk_response *resp);
void core_handle_records(void *app, const rk_request *req, rk_response *resp);
void core_handle_proof(void *app, const rk_request *req, rk_response *resp);
void core_handle_consistency(void *app, const rk_request *req, rk_response *resp);
void core_handle_heads(void *app, const rk_request *req, rk_response *resp);
void core_handle_checkpoint(void *app, const rk_request *req, rk_response *resp);
void core_handle_tile(void *app, const rk_request *req, rk_response *resp);
/* disclosure.c: a person's exchanges for the portal, and agencies' markings
 * of records not to be disclosed (法23条, DESIGN §2.5). */
void core_handle_person_exchanges(void *app, const rk_request *req, rk_response *resp);
void core_handle_nondisclosure(void *app, const rk_request *req, rk_response *resp);
void core_handle_nondisclosure_lift(void *app, const rk_request *req, rk_response *resp);
/* self_data.c: わたしの情報, a person's own data asked of the agencies for the portal. */
void core_start_person_data(void *app, rk_pending *p, const rk_request *req, rk_response *resp);
/* deletions.c */
void core_start_deletion_request(void *app, rk_pending *p, const rk_request *req, rk_response *resp);
void core_handle_incident(void *app, const rk_request *req, rk_response *resp);
void core_handle_incidents(void *app, const rk_request *req, rk_response *resp);
int core_permitted(core *c, const char *requester_kind, const char *business, const char *provider_kind,
                   const char *item);

#endif
