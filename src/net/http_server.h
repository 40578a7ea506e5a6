/* http_server.h — the HTTPS listener every node uses.
 *
 * TLS 1.3 only, a client certificate from the network CA required on every
 * connection (standard 第5-2(3)(4), 第6-2, 第6-3, 第7-1, 第8-1). Each request
 * is then authorised before any handler runs: the peer's certificate must be
 * registered (fingerprint in network.json), its source address must be one
 * registered for it, and its role must be one the route allows (deny by
 * default, 第5-4(1)). Refusals are counted for /metrics.
 *
 * Threads and ownership: one event thread does all network I/O (libevent);
 * handlers run on a pool of worker threads and may block (database, calls to
 * other nodes), except the routes with a `start` function, which run on the
 * event thread and answer later (rk_pending_finish). A handler gets a read-only rk_request and fills rk_response;
 * the server owns both and frees them after the reply is sent. */
#ifndef RK_HTTP_SERVER_H
#define RK_HTTP_SERVER_H

#include <event2/buffer.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"
#include "net/registry.h"

/* Entries in one bulk request (persons, code requests, codes, notices). */
#define RK_BATCH_MAX 1000

/* Connection limits. A connection over a deadline is closed without an
 * answer; the deadlines are totals, not inactivity, so a peer trickling
 * bytes is cut too. A connection over a cap is closed at once, except that
 * one still in its TLS handshake (the cheap kind to hold open) makes room
 * for the newcomer: the oldest such one of the same address (or, at the
 * total cap, of any address) is closed instead. */
#define RK_SERVER_HANDSHAKE_MS 10000        /* from accept to the end of the TLS handshake */
#define RK_SERVER_HEADERS_MS 10000          /* from the first byte of a request to the end of its headers */
#define RK_SERVER_BODY_MS 30000             /* from the end of the headers to the end of the body */
#define RK_SERVER_IDLE_MS 60000             /* a kept-alive connection between requests */
#define RK_SERVER_MAX_CONNS 16384           /* at once in total (lowered to fit the open-file limit) */
#define RK_SERVER_MAX_CONNS_PER_ADDR 1024   /* at once from one peer address */
#define RK_SERVER_FD_RESERVE 4096           /* descriptors kept for onward calls, the database, logs */
#define RK_SERVER_ACCEPT_PAUSE_MS 250       /* accepting pauses this long when accept fails (EMFILE) */
#define RK_SERVER_MAX_HEADERS (16 * 1024)   /* request line and headers, bytes */
/* Tests only: the environment variable RENKEI_TEST_HANDSHAKE_MS, when set,
 * replaces RK_SERVER_HANDSHAKE_MS (100..60000). */

typedef struct rk_request {
    const char *method;          /* "GET", "POST", "PUT" */
    const char *path;            /* without the query */
    const char *query;           /* raw query string, "" if none */
    const char *body;            /* NUL-terminated copy; "" if none */
    size_t body_len;
    json_t *json;                /* parsed object body of POST/PUT, else NULL */
    const rk_peer_node *peer;    /* authenticated caller, never NULL */
    int64_t received_ms;         /* wall clock at arrival */
} rk_request;

typedef struct rk_response {
    int status;
    char *body;                  /* malloc'ed JSON text (or text/plain) */
    size_t body_len;
    const char *content_type;    /* static string; default application/json */
    const char *cache_control;   /* static string; no header when NULL */
    int store_error;             /* set by rk_reply_error for 500 store_error (see store_lost) */
    int page;                    /* a page for a browser (net/assets.h): sent with the headers that keep
                                    it to itself (Content-Security-Policy, …), as on a person's listener */
} rk_response;

typedef void (*rk_handler_fn)(void *app, const rk_request *req, rk_response *resp);

/* A request whose handler waits on nothing itself: it runs on the event
 * thread, starts its work (a call through rk_relay) and must not block; the
 * answer goes out when it calls rk_pending_finish, on that same thread.
 * No worker thread waits meanwhile. */
typedef struct rk_pending rk_pending;
typedef void (*rk_start_fn)(void *app, rk_pending *p, const rk_request *req, rk_response *resp);
void rk_pending_finish(rk_pending *p);
/* The zeroed state of a started request; without memory it answers 500
 * internal, finishes p and returns NULL. */
void *rk_pending_calloc(rk_pending *p, rk_response *resp, size_t size);
/* A step of a started request that takes CPU or the store (node/flow.h
 * wraps it): work(arg) runs on a worker thread, then done(arg) on the event
 * thread, where the request goes on; the loop serves other connections
 * meanwhile. RK_ERR_BUSY when no worker can take it (a full queue): nothing
 * runs, and the caller answers 503 `overloaded`. One step at a time per
 * request; done may start the next. */
rk_rc rk_pending_offload(rk_pending *p, void (*work)(void *arg), void (*done)(void *arg), void *arg);
struct event_base *rk_pending_base(const rk_pending *p);

typedef struct rk_route {
    const char *method;
    const char *path;            /* exact; a trailing '*' matches any suffix */
    unsigned roles;              /* rk_role bits allowed to call it */
    int same_agency;             /* the caller must be of this node's agency (core and
                                    J-LIS excepted); the network operator is not */
    rk_handler_fn fn;
    int any_clock;               /* skip the clock-skew check: incident reports
                                    must pass even from a node whose clock is off */
    rk_start_fn start;           /* instead of fn: runs on the event thread */
    int raw_body;                /* the body is the handler's to read (not JSON): a C2SP route */
} rk_route;

typedef struct rk_server_config {
    X509 *cert;                  /* borrowed: the node's certificate */
    EVP_PKEY *key;               /* borrowed: its private key */
    const char *ca_path;         /* network CA bundle (PEM) */
    const rk_registry *registry; /* borrowed, read-only; replaced by rk_server_set_registry */
    const char *agency;          /* this node's agency, "" for core/jlis */
    const rk_route *routes;      /* borrowed; static tables in practice */
    size_t n_routes;
    int workers;
    size_t max_body;
    void *app;                   /* passed to handlers */
    /* Adds role-specific checks to /healthz: returns 0 when healthy. */
    int (*health)(void *app, json_t *checks);
    /* 1 while the node's database is absent (store/db.h rk_db_lost): an
     * answer 500 store_error is then sent as 503 store_unavailable (DESIGN
     * §6: a request that meets a failover; retry with the same id). */
    int (*store_lost)(void *app);
    /* Appends role-specific Prometheus lines to /metrics: each family
     * opened by rk_metric_head, counters named …_total, units in the name
     * and base units (seconds, bytes). */
    void (*metrics)(void *app, struct evbuffer *out);
    void (*on_reload)(void *app); /* SIGHUP */
    /* After the last started request finished, on the event thread, before
     * the event loop goes: frees what the role keeps on the loop. */
    void (*on_stop)(void *app);
    int64_t clock_offset_ms;     /* injected clock error (tests) */
    int64_t max_skew_ms;         /* refuse requests created further off (0: no check) */
    /* Raises an incident (kind, one-line summary); ctx is passed back. */
    void (*on_incident)(void *ctx, const char *kind, const char *summary);
    void *incident_ctx;
    int refusal_threshold;       /* refusals from one source within the window … */
    int refusal_window_ms;       /* … that raise an unauthorized_access incident */
    /* The person listener (the portal's, DESIGN §3): its routes, whose roles
     * must include RK_ROLE_PERSON, and the store its cards are checked
     * against (crypto/card.h, rk_card_trust_store; borrowed). A request
     * there is a person's: req->peer->id is the card serial. */
    const rk_route *person_routes;
    size_t n_person_routes;
    X509_STORE *person_store;
} rk_server_config;

typedef struct rk_server rk_server;

rk_rc rk_server_new(const rk_server_config *cfg, rk_server **out);
/* Listens on the host:port of an https:// URL. May be called more than once. */
rk_rc rk_server_listen(rk_server *srv, const char *url);
/* Listens for persons (cfg.person_store and person_routes set) on the
 * host:port of an https:// URL: TLS 1.3, the node's certificate, a card
 * required; nothing but the person routes is served there. */
rk_rc rk_server_listen_persons(rk_server *srv, const char *url);
/* Serves until SIGINT/SIGTERM or rk_server_stop(); then finishes the
 * handlers in progress and returns. */
rk_rc rk_server_run(rk_server *srv);
void rk_server_stop(rk_server *srv); /* any thread */
/* The event loop rk_server_run runs, on the thread that calls it. */
struct event_base *rk_server_base(const rk_server *srv);
/* The registry in force from now on (any thread; DESIGN §3: a newer signed
 * registry applied without a restart). A connection keeps its peer's
 * certificate fingerprint, not an entry, and each request finds the peer in
 * the registry in force, so a removed peer is refused; the caller keeps the
 * earlier registry alive while a request that began on it may run
 * (node/registry_refresh.c: a grace period). */
void rk_server_set_registry(rk_server *srv, const rk_registry *reg);
/* A renewed certificate and key (any thread; DESIGN §3): new connections,
 * on every listener, present them; open ones go on with the old. cert and
 * key are borrowed (the contexts keep references). */
rk_rc rk_server_set_identity(rk_server *srv, X509 *cert, EVP_PKEY *key);
void rk_server_free(rk_server *srv);

/* Node time as this server states it (wall clock plus injected offset). */
int64_t rk_server_now_ms(const rk_server *srv);

/* The # HELP and # TYPE lines of a metric family (type: counter, gauge,
 * histogram), before its samples. */
void rk_metric_head(struct evbuffer *out, const char *name, const char *type, const char *help);

/* Response helpers for handlers. */
void rk_reply_json(rk_response *resp, int status, json_t *body);  /* steals body */
/* JSON text already made (a kept answer, a settled one): steals text. */
void rk_reply_text(rk_response *resp, int status, char *text);
void rk_reply_error(rk_response *resp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same error object as text (malloc'ed; NULL without memory), e.g.
 * for one entry of a batch's answer. */
char *rk_error_text(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Field helpers: a required string field of at most maxlen bytes; on failure
 * they fill resp with 400 invalid_field naming the field and return NULL/-1. */
const char *rk_req_string(const rk_request *req, rk_response *resp, const char *field, size_t maxlen);
int rk_req_int(const rk_request *req, rk_response *resp, const char *field, long min, long max, long *out);
/* The array of a bulk request: field present, 1..RK_BATCH_MAX entries; on
 * failure fills resp with 400 invalid_field and returns NULL. Borrowed. */
json_t *rk_req_batch(const rk_request *req, rk_response *resp, const char *field);
/* The entries of a bulk request, each read as a request of its own: for
 * entry i of list, read(e, resp, i, arg) with e the request whose body is
 * that entry (peer and time kept); 0 when every entry was read, else -1 with
 * the first refusal in resp, its message led by "<field>[i]: " and nothing
 * read after it. */
typedef int (*rk_entry_read_fn)(const rk_request *e, rk_response *resp, size_t i, void *arg);
int rk_req_entries(const rk_request *req, rk_response *resp, const char *field, json_t *list, rk_entry_read_fn read,
                   void *arg);
/* The ids of a bulk request's entries (ids[0..n)), each to be used once: 0,
 * or -1 with resp a 400 `code` ("<what> X is given twice") — or a 500
 * without memory. */
int rk_req_distinct(rk_response *resp, const char *const *ids, size_t n, const char *code, const char *what);
/* The optional "condition" of a query (lib/condition.h); 0, or -1 with a
 * 400 invalid_field in resp. */
struct rk_condition;
int rk_req_condition(const rk_request *req, rk_response *resp, struct rk_condition *out);

/* Paging of a list endpoint: ?before=SEQ&limit=N (limit 1..500, default
 * 50). Returns 0, or -1 with a 400 invalid_field in resp. */
int rk_page_params(const rk_request *req, rk_response *resp, int64_t *before, int *limit);
/* The same with another cursor: ?<cursor>=SEQ&limit=N (e.g. "after", for a
 * list read oldest first as it grows). */
int rk_page_cursor(const rk_request *req, rk_response *resp, const char *cursor, int64_t *at, int *limit);

/* The value of name=… in the query string into out (URL-decoded): 1 when
 * found, 0 when absent, -1 when longer than outlen allows. */
int rk_query_param(const rk_request *req, const char *name, char *out, size_t outlen);

#endif
