/* node.h — what every role needs before it can serve: its configuration,
 * the registry, its own entry in it, its certificate and key, and a client
 * for calling other nodes. Roles (src/core, src/jlis, …) own one rk_node
 * each, open it first and close it last. */
#ifndef RK_NODE_H
#define RK_NODE_H

#include <openssl/evp.h>
#include <pthread.h>
#include <openssl/x509.h>
#include "node/config.h"
#include "lib/err.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "net/registry.h"

/* This node's certificate, its key and its PEM, as one: a renewal taken
 * while the node runs replaces all three with one atomic store, so that no
 * reader pairs a new key with an old certificate (rk_node_identity). */
typedef struct rk_identity {
    X509 *cert;
    EVP_PKEY *key;              /* wiped and freed on close (第5-2(5)) */
    char *cert_pem;
    char fingerprint[65];       /* of cert: what the registry must name for this node */
    struct rk_identity *before; /* the one it replaced: kept until close (a thread may be using it) */
} rk_identity;

typedef struct rk_node {
    rk_node_config cfg;
    /* The registry in force and this node's entry in it: replaced while the
     * node runs (node/registry_refresh.c), each by one atomic store; a
     * replaced one stays valid for registry_grace_ms after it was replaced
     * (the first one, which roles keep entries of, until the node closes). */
    rk_registry *registry;
    const rk_peer_node *self;   /* this node's registry entry */
    EVP_PKEY *registry_anchor;  /* the operator's registry key ([registry] anchor); NULL: network.json as installed */
    struct rk_service *registry_service;
    struct rk_server *server;   /* while it serves: told of each new registry */
    rk_registry *registry_first; /* the one the node opened on: kept until close */
    struct rk_retired {
        rk_registry *reg;
        int64_t since_ms;       /* monotonic: when it was replaced, or when self last left it */
    } *retired;                 /* replaced snapshots, each freed registry_grace_ms after since_ms */
    size_t n_retired;
    int64_t registry_grace_ms;  /* 0: the default (registry_refresh.c) */
    pthread_mutex_t registry_lock; /* the fields below, the retired list */
    int registry_lock_made;
    int64_t registry_checked_ms, registry_applied_ms; /* last fetch that answered; last swap */
    char registry_error[400];   /* why the last refresh did not apply a document ("" when none) */
    char registry_refused[300]; /* the last refusal, raised once as an incident */
    char *registry_answer;      /* the core: GET /v1/registry's body for registry_answer_of, made once */
    size_t registry_answer_len;
    const rk_registry *registry_answer_of;
    struct rk_registry_deltas *registry_deltas; /* the core: what changed between its last registries (net/registry_delta.h) */
    char registry_stamp[200];   /* the core: the published file and CRL as last read (device, inode, size, time) */
    /* The certificate and key loaded at start (TLS's first context, the
     * core's code key); never replaced. */
    X509 *cert;
    EVP_PKEY *key;              /* wiped and freed on close (第5-2(5)) */
    /* The identity in force for TLS (server and relays), CMS and the records
     * log's heads: the one loaded at start (first_identity), replaced by a
     * renewed certificate (registry_refresh.c). Read it with
     * rk_node_identity, once per use; replaced under registry_lock, as
     * node->relay and the calls loop's relay are made or freed. */
    rk_identity *identity;
    rk_identity first_identity;
    char identity_tried[600];   /* the registry's fingerprint and the files' stamps last tried */
    int identity_recheck;       /* SIGHUP: try the files again */
    char *cert_pem;             /* this node's certificate as loaded at start, PEM */
    X509_STORE *trusted;        /* the network CA */
    struct rk_peer_certs *peer_certs; /* registered peers' certificates seen in messages */
    struct rk_relay *relay;     /* calls from the server's event loop (rk_node_post_later) */
    int relay_closed;           /* that loop ended: its calls fail, no relay is made again */
    struct node_calls *calls;   /* the calls loop, for threads that are not a loop (rk_node_post) */
    unsigned instance_turn;     /* calls to a core of several instances start at each in turn */
    /* incidents (set up by the role with rk_node_incidents_start) */
    struct rk_db *incident_db;
    struct rk_incident_reporter *reporter;  /* NULL at the core */
    /* clock (第6-8): offset of the core's clock from ours, last measured */
    pthread_t clock_thread;
    int clock_running, clock_stopping, clock_degraded;
    int64_t clock_offset_measured_ms;
    int64_t clock_measured_at_ms;
    pthread_mutex_t clock_lock;
    pthread_cond_t clock_wake;
} rk_node;

/* The certificate, key and PEM in force, together (load once per use). */
static inline const rk_identity *rk_node_identity(const rk_node *node)
{
    return __atomic_load_n(&node->identity, __ATOMIC_ACQUIRE);
}

/* Loads config, registry, certificate and key; checks that the certificate
 * is the one registered for this node id and that its role is `role`.
 * On error err holds one line for the operator. */
rk_rc rk_node_open(const char *config_path, rk_role role, rk_node *node, char *err, size_t errlen);
void rk_node_close(rk_node *node);

/* The signed registry (DESIGN §3, node/registry_refresh.c): opened at
 * rk_node_open (the last good one kept in the node's folder, else
 * network.json), refreshed every [registry] refresh seconds while the
 * server runs and at once on SIGHUP (rk_node_registry_wake). */
rk_rc rk_node_registry_open(rk_node *node, char *err, size_t errlen);
void rk_node_registry_close(rk_node *node);
rk_rc rk_node_registry_start(rk_node *node, rk_server *srv);
void rk_node_registry_stop(rk_node *node);
void rk_node_registry_wake(rk_node *node);
/* A registry answer (GET /v1/registry's body) fetched or read: 1 applied
 * (newer, or the same serial with a new CRL), 0 nothing new, -1 refused
 * (bad signature, older serial, malformed; an incident, the last good one
 * stays). Called by the refresh thread. */
int rk_node_registry_consider(rk_node *node, const char *text, size_t len);
/* GET /v1/registry at the core: the signed registry in force and the CRL. */
void rk_node_registry_reply(rk_node *node, const rk_request *req, rk_response *resp);
/* /healthz: registry_serial, registry_age_s, registry_checked_s_ago, registry_error, registry_stale. */
void rk_node_registry_health(rk_node *node, json_t *checks);

/* Runs the node's server until SIGINT/SIGTERM: the role gives its routes,
 * app and callbacks in `role`; identity, limits and incident hooks are the
 * node's. Listens where rk_node_listen says. */
rk_rc rk_node_serve(rk_node *node, const rk_server_config *role);
/* Stops the node's own threads (clock watcher, incident reporter); call
 * before closing the store they use. Safe to call more than once. */
void rk_node_stop_services(rk_node *node);

/* Listens where the config says, else on the registry's url and backup_url
 * (the core's two lines, 第7-1(7)); and, for a role with person routes, on
 * its person_url for persons' cards. */
rk_rc rk_node_listen(const rk_node *node, rk_server *srv);

/* Calls to other nodes. There is one client between nodes, the relay
 * (net/http_relay.h), and one failover rule: the backup_url after no
 * answer or a 5xx from the url, never after a timeout or an over-cap
 * answer (第7-1(7)). */

/* method ("GET" or "POST") path at peer without a thread waiting, for a
 * step on an event loop: done(arg, rc, res) is called exactly once on that
 * loop — possibly before this returns, when the call could not be made.
 * res->body is malloc'ed and done takes it; res->backup_line tells the
 * line. body must stay valid until done (a failover sends it again). */
typedef void (*rk_node_post_done_fn)(void *arg, rk_rc rc, rk_http_result *res);
void rk_node_call_later(rk_node *node, struct event_base *base, const char *method, const rk_peer_node *peer,
                        const char *path, const char *body, size_t len, rk_node_post_done_fn done, void *arg);
void rk_node_post_later(rk_node *node, struct event_base *base, const rk_peer_node *peer, const char *path,
                        const char *body, size_t len, rk_node_post_done_fn done, void *arg);
/* The same for a thread that is not an event loop (a background service):
 * the call is made on the node's calls loop, started at the first call,
 * and this thread waits for it. *used_backup (may be NULL) tells the line. */
rk_rc rk_node_call(rk_node *node, const char *method, const rk_peer_node *peer, const char *path, const char *body,
                   rk_http_result *out, int *used_backup);
rk_rc rk_node_post(rk_node *node, const rk_peer_node *peer, const char *path, const char *body,
                   rk_http_result *out, int *used_backup);
/* rk_node_call with the answer capped at max_response bytes (0: the
 * relay's default): the signed registry of a large network. */
rk_rc rk_node_call_capped(rk_node *node, const char *method, const rk_peer_node *peer, const char *path,
                          const char *body, size_t max_response, rk_http_result *out, int *used_backup);
/* A renewed certificate for the relays made so far (the server loop's and
 * the calls loop's); those made later take the identity in force. Under registry_lock. */
void rk_node_relays_set_identity(rk_node *node, X509 *cert, EVP_PKEY *key);
/* Frees the server loop's relay; from the server's on_stop, on the loop. */
void rk_node_calls_close(rk_node *node);

/* This node's time: the wall clock plus the configured offset (tests). */
int64_t rk_node_now_ms(const rk_node *node);

/* Incidents: keeps them in db (applying its schema) and, except at the core,
 * starts forwarding them to the core (an agency: through its gateway). */
rk_rc rk_node_incidents_start(rk_node *node, struct rk_db *db);
void rk_node_incidents_stop(rk_node *node);
/* Raises an incident at this node (kind as in incidents.h). */
void rk_node_raise(rk_node *node, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Measures the offset to the core's clock every [clock] check_ms (not at the
 * core itself); beyond max_offset_ms health turns degraded and a clock
 * incident is raised. */
rk_rc rk_node_clock_start(rk_node *node);
void rk_node_clock_stop(rk_node *node);
/* Adds the node-wide health checks (clock); returns non-zero if degraded. */
int rk_node_health(rk_node *node, json_t *checks);

/* ---------- a role, and the one run loop of every role ----------
 *
 * A role (src/core, src/jlis, src/gateway, src/agency) describes itself once
 * (src/roles.h names the four); rk_role_main runs any of them the same way:
 * the node opened, the role's state opened, the server run until SIGINT or
 * SIGTERM, then the role's services stopped, the node's services stopped,
 * the role's state closed, the node closed. /healthz gets the role's checks,
 * whether its store is writable and the node's own checks (the clock). */
typedef struct rk_role_desc {
    rk_role role;
    const char *help;             /* one line for `renkei --help` */
    size_t app_size;              /* the role's state, zeroed; it begins with its `rk_node *node` */
    rk_rc (*open)(rk_node *node, void *app); /* store, keys, the role's services; close runs after a failure too */
    void (*stop)(void *app);      /* stops the role's own threads (may be NULL) */
    void (*close)(void *app);     /* frees what open made */
    struct rk_db *(*store)(void *app); /* the role's store, for health and the loop's end */
    const rk_route *routes;
    size_t n_routes;
    int (*health)(void *app, json_t *checks); /* the role's own checks; non-zero when degraded (may be NULL) */
    void (*metrics)(void *app, struct evbuffer *out);
    void (*on_reload)(void *app); /* SIGHUP */
    /* The portal's person listener (DESIGN §3), on its registry entry's
     * person_url: its routes and the store its cards are checked against. */
    const rk_route *person_routes;
    size_t n_person_routes;
    X509_STORE *(*person_store)(void *app);
} rk_role_desc;

/* `renkei <role> --config FILE`: the process's exit code. */
int rk_role_main(const rk_role_desc *role, int argc, char **argv);

#endif
