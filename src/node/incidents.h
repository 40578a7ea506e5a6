/* incidents.h — incidents: raised by any node, kept at the core (standard
 * 第3-5(1)-(4), 第5-4(3), 第8-5).
 *
 * Every node keeps its own incidents in its database (table `incidents`).
 * A node other than the core forwards each one to the core — an agency
 * through its gateway, J-LIS and gateways directly — with a reporter thread
 * that retries until the core has it (an outbox, like the code notices).
 * The core keeps what it raises and what it receives in the same table and
 * lists them at GET /v1/incidents. An incident carries the fields the
 * standard's reports ask for: what happened (summary, details), what was
 * done (actions), the root cause (cause) and the prevention (prevention);
 * a later POST with the same incident_id updates them. */
#ifndef RK_INCIDENTS_H
#define RK_INCIDENTS_H

#include <jansson.h>
#include <stdint.h>
#include "store/db.h"
#include "lib/err.h"

struct rk_node;
struct rk_peer_node;
struct event_base;

/* Brings this node's incident tables to the newest version (module
 * "incidents"); step 1 is the tables as they were before versions, so an
 * existing database opens as it is. */
rk_rc rk_incidents_migrate(rk_db *db);


typedef struct rk_incident {
    const char *incident_id;  /* NULL: a fresh random id */
    const char *kind;         /* outage, unauthorized_access, leak, unlawful_request,
                                 unlawful_provision, check_code_mismatch, clock */
    const char *node;         /* the node that detected it */
    int64_t detected_ms;
    const char *summary;      /* what happened, one line */
    const char *details;
    const char *actions;      /* what was done */
    const char *cause;        /* root cause */
    const char *prevention;   /* how it is prevented from now on */
} rk_incident;

#define RK_INCIDENT_TEXT_MAX 4000 /* details, actions, cause, prevention: bytes */

int rk_incident_kind_valid(const char *kind);

/* Stores an incident (insert, or update of the same incident_id). `reported`
 * non-zero marks it as already at the core, zero puts it in the outbox.
 * in_write != 0: the caller runs inside a write callback of db (or, while
 * the lock-style API lasts, holds db in a transaction) and the statement
 * runs there; else it is one rk_db_write. RK_ERR_CONFLICT: the id is
 * another node's incident, left as it was. */
rk_rc rk_incident_store(rk_db *db, const rk_incident *in, int reported, int in_write);

/* rk_incident_store for a caller on an event loop, which does not wait: the
 * incident is copied and committed by db's committer thread (rk_db_write_later
 * on base), then done(arg, rc) is called on the loop. On an error return
 * nothing is queued and done will not be called. */
typedef void (*rk_incident_stored_fn)(void *arg, rk_rc rc);
rk_rc rk_incident_store_later(rk_db *db, struct event_base *base, const rk_incident *in, int reported,
                              rk_incident_stored_fn done, void *arg);

/* The incident as JSON from a request body; fills resp on bad input.
 * Returns 0 when stored. */
struct rk_request;
struct rk_response;
struct rk_registry;
/* The reading alone (the caps, a known kind), before any store: 0 with
 * in's strings borrowed from req, else -1 with resp a 400. */
int rk_incident_read(const struct rk_request *req, struct rk_response *resp, rk_incident *in);
int rk_incident_accept(rk_db *db, const struct rk_registry *reg, const struct rk_request *req,
                       struct rk_response *resp);
void rk_incidents_serve(rk_db *db, const struct rk_request *req, struct rk_response *resp);
/* How many incidents of that kind (NULL: of any kind) this node keeps;
 * -1 on a store error. Works on a database opened RK_DB_READONLY. */
int64_t rk_incidents_count_kind(rk_db *db, const char *kind);
/* The same for /metrics: 0 on a store error. */
int64_t rk_incidents_count(rk_db *db, const char *kind);

/* Forwards unreported incidents to `to` (POST /v1/incidents) until stopped. */
typedef struct rk_incident_reporter rk_incident_reporter;
rk_rc rk_incident_reporter_start(struct rk_node *node, rk_db *db, const struct rk_peer_node *to,
                                 rk_incident_reporter **out);
void rk_incident_reporter_wake(rk_incident_reporter *r);
void rk_incident_reporter_stop(rk_incident_reporter *r);

#endif
