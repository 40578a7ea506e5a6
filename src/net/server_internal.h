/* server_internal.h — what the files of the HTTPS listener share (server.c, conns.c, tls.c, authz.c,
 * pool.c, metrics.c, reply.c): the server, its jobs and connections, and the calls between the files. */
#ifndef RK_NET_SERVER_INTERNAL_H
#define RK_NET_SERVER_INTERNAL_H

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"
#include "net/http_server.h"
#include "node/watch.h"

#define MAX_LISTENERS 8   /* listening sockets of one server */
#define ADDR_BUCKETS 1024 /* buckets of the table of peer addresses */
#define MAX_ROUTES 48     /* routes of one server, besides /healthz and /metrics; as many for persons */
#define PERSON_STATS (MAX_ROUTES + 2) /* where the person routes' stats begin in rk_server.stats */
#define N_BUCKETS 12      /* buckets of the request duration histogram */

/* Answers of one route by status class, and their durations (a histogram, bucket bounds in metrics.c). */
typedef struct route_stats {
    uint64_t by_class[6]; /* 1xx…5xx by status/100 */
    uint64_t buckets[N_BUCKETS];
    uint64_t sum_us;
} route_stats;

/* One request on its way from the event thread to a worker and back. */
typedef struct job {
    rk_server *srv;
    struct evhttp_request *req;  /* owned by libevent; touched only on the event thread */
    const rk_route *route;
    route_stats *stats;
    rk_request in;
    rk_response out;
    rk_peer_node person;         /* on the person listener: the card's holder (in.peer points here) */
    int64_t started_us;
    char *path, *query, *body;
    /* rk_pending_offload: work on a worker, then done on the event thread */
    void (*work)(void *arg);
    void (*work_done)(void *arg);
    void *work_arg;
    struct job *next;
} job;

/* Where a connection is: accepted, in its handshake, between requests, reading headers or a body, in a handler. */
enum conn_phase { PH_FRESH, PH_HANDSHAKE, PH_IDLE, PH_HEADERS, PH_BODY, PH_BUSY };

typedef struct conn conn;
/* A list of connections, oldest first, threaded through conn.link. */
typedef struct clist {
    conn *head, *tail;
} clist;
enum { LINK_ALL, LINK_ADDR }; /* fresh or handshaking (server-wide); handshaking (its address) */

/* A peer address with connections open: how many, and those still in their handshake. */
typedef struct addr_entry {
    char key[INET6_ADDRSTRLEN];
    size_t count;
    clist handshaking;
    struct addr_entry *next;
} addr_entry;

/* One accepted connection, kept on its SSL object (freed with it). */
struct conn {
    rk_server *srv;
    struct bufferevent *bev;
    struct event *timer;
    struct evbuffer_cb_entry *in_cb, *out_cb;
    addr_entry *addr;
    enum conn_phase phase;
    int listed;              /* 0, or on srv->fresh (1) or on the handshaking lists (2) */
    int counted, closing, rewriting;
    int person;              /* accepted on the person listener (cards, DESIGN §3) */
    size_t req_bytes;        /* of the request being read, so far */
    size_t head_bytes;       /* its request line and headers, once read */
    size_t head_off;         /* where the last response written began in the output */
    struct {
        conn *prev, *next;
    } link[2];
};

/* The server: its configuration, event loop, TLS context, worker queue, counters and connections. */
struct rk_server {
    rk_server_config cfg;
    struct event_base *base;
    struct evhttp *http;
    /* new connections' contexts: replaced by rk_server_set_identity (a
     * renewed certificate) under ctx_lock; an SSL object keeps its own */
    SSL_CTX *ssl_ctx;
    struct evhttp *person_http;  /* the person listener (cards), when there is one */
    SSL_CTX *person_ctx;
    pthread_mutex_t ctx_lock;
    struct event *sig_int, *sig_term, *sig_hup;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *head, *tail;
    size_t queued;
    /* jobs a worker finished, handed back to the event thread together by one
     * event (the `finished` event, active while the list is not empty) */
    pthread_mutex_t fin_lock;
    job *fin_head, *fin_tail;
    int fin_scheduled;
    struct event *finished;
    int stopping;
    size_t started;              /* requests started on the event thread, not yet finished */
    route_stats stats[PERSON_STATS + MAX_ROUTES]; /* routes, /healthz, /metrics, then the person routes */
    uint64_t tls_refusals, unknown_peer, address_refusals, role_refusals, not_found, overloaded, skew_refusals;
    rk_watch *refusals;          /* per source, for early detection (第3-5) */
    /* connections (event thread only, but counters read by /metrics) */
    clist fresh, handshaking;
    addr_entry *addrs[ADDR_BUCKETS];
    struct event *admit, *resume;
    struct evconnlistener *listeners[MAX_LISTENERS];
    int n_listeners;
    size_t n_conns, max_conns, max_per_addr;
    int handshake_ms;
    uint64_t conn_refusals, conn_timeouts, accept_errors;
};

/* Adds one to a counter that /metrics reads from another thread. */
static inline void count(uint64_t *counter)
{
    __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

/* The monotonic clock in microseconds, for request durations. */
static inline int64_t mono_us(void)
{
    return rk_mono_ms() * 1000; /* ms resolution is enough for the histogram */
}

/* ---- connections (conns.c) ---- */

/* The SSL object goes: so does its connection (off the counts, its callbacks and timer freed). */
void conn_release(conn *c);
/* The TLS handshake ended: the connection is between requests. */
void conn_handshake_done(conn *c);
/* The connection a request came on, or NULL. */
conn *conn_of_request(struct evhttp_request *req);
/* Closes the connection when ms pass in its phase; ms <= 0 clears the deadline. */
void conn_deadline(conn *c, int ms);
/* The caps (below the open-file limit), the handshake deadline, the events that admit and resume accepting. */
rk_rc conns_init(rk_server *srv);
/* For each accepted connection: its SSL object and bufferevent, the connection counted and kept on the SSL. */
struct bufferevent *make_tls_bufferevent(struct event_base *base, void *arg);
/* Notes (on 1) or forgets (on 0) a listening server, for on_accept_error. */
void listening_set(rk_server *srv, int on);
/* A listener's accept failed (EMFILE): accepting pauses and the oldest handshakes are closed. */
void on_accept_error(struct evconnlistener *lev, void *arg);
/* Frees the table of peer addresses. */
void addrs_free(rk_server *srv);
/* The callbacks on a connection's decrypted bytes (evbuffer_add_cb): input
 * moves it through the header and body deadlines as a request arrives;
 * output replaces libevent's own HTML error pages by the JSON error.
 * Exposed for tests/fuzz (fuzz_http_head), which drives them without a socket. */
void on_conn_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg);
void on_conn_output(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg);

/* The same for a connection on the person listener (its SSL_CTX, marked a person's). */
struct bufferevent *make_person_bufferevent(struct event_base *base, void *arg);

/* ---- TLS (tls.c) ---- */

/* Once per process, before the first server: the slots kept on every SSL object. */
void tls_init(void);
/* A server SSL_CTX: TLS 1.3 only, cert and key, a client certificate of the network CA required. */
rk_rc make_ssl_ctx(rk_server *srv, X509 *cert, EVP_PKEY *key, SSL_CTX **out);
/* The person listener's SSL_CTX: the node's certificate, a card of the card
 * CA that no CRL in force lists required (cfg.person_store), no resumption. */
rk_rc make_person_ctx(rk_server *srv, X509 *cert, EVP_PKEY *key, SSL_CTX **out);
/* The card's holder behind a person connection's request: 1 with out filled
 * (id the card serial, role RK_ROLE_PERSON), else 0. */
int connection_person(struct evhttp_request *req, rk_peer_node *out);
/* Keeps c on ssl (released with it, conn_release): 1 when done. */
int tls_set_conn(SSL *ssl, conn *c);
/* The connection kept on ssl, or NULL. */
conn *conn_of_ssl(const SSL *ssl);
/* tls.c: the text of a socket's peer address into out; 0 when it has none. */
int fd_peer_address(int fd, char *out, size_t outlen);
/* The registered node behind the request's client certificate, or NULL; looked up once per connection. */
const rk_peer_node *connection_peer(rk_server *srv, struct evhttp_request *req);

/* ---- request intake (server.c), its pure parts: tests/fuzz drives them ---- */

/* Copies what libevent parsed into the job: the path URL-decoded, the raw
 * query, the body NUL-terminated. */
rk_rc request_copy(job *j, const char *path, const char *query, struct evbuffer *in, const char *method);
/* The body of a POST or PUT parsed into j->in.json (a JSON object,
 * duplicate keys refused): 1; else 0 with the reason in msg. */
int request_json(job *j, char *msg, size_t msglen);

/* ---- authorisation (authz.c) ---- */

/* The route of method and path (the server's table, then /healthz and
 * /metrics) and its index, or NULL; *path_known when another method has the path. */
const rk_route *route_find(const rk_server *srv, const char *method, const char *path, int *path_known,
                           size_t *index);
/* Counts a refusal against its source; a burst raises one unauthorized_access incident. */
void note_refusal(rk_server *srv, const char *source, const char *what);
/* Finds the route and checks the caller; on refusal replies and returns NULL. */
const rk_route *authorise(rk_server *srv, struct evhttp_request *req, const char *method, const char *path,
                          const rk_peer_node **peer_out, size_t *stats_index);
/* The same on the person listener: a card's holder, the person routes only
 * (no /healthz nor /metrics); the holder goes into *person. */
const rk_route *authorise_person(rk_server *srv, struct evhttp_request *req, const char *method, const char *path,
                                 rk_peer_node *person, size_t *stats_index);
/* 1 when the request's creation time is close enough to the node's clock; else replies 400 clock_skew, 0. */
int check_skew(job *j, struct evhttp_request *req);

/* ---- answers (reply.c) ---- */

/* Sends resp on the request's connection, stamped with the node's time; the connection is between requests again. */
void send_now(struct evhttp_request *req, const rk_server *srv, rk_response *resp);
/* Sends the JSON error {code, msg} with status at once (before any handler ran). */
void refuse(struct evhttp_request *req, const rk_server *srv, int status, const char *code, const char *msg);

/* ---- /healthz and /metrics (metrics.c) ---- */

/* Counts an answer of a route (s may be NULL) with its status and duration. */
void record_stats(route_stats *s, int status, int64_t elapsed_us);
/* GET /healthz: 200 ok, or 503 degraded when the role's checks fail. */
void serve_health(rk_server *srv, rk_response *resp);
/* GET /metrics: the Prometheus text. */
void serve_metrics(rk_server *srv, rk_response *resp);

/* ---- the worker pool (pool.c) ---- */

/* Frees a job, wiping the request and response bodies. */
void job_free(job *j);
/* Event thread: a handler finished; records and sends its answer, frees the job. */
void on_job_done(evutil_socket_t fd, short what, void *arg);
/* Queues a job for a worker: 0 when the queue is full or the server stopping. */
int enqueue(rk_server *srv, job *j);
/* Starts the worker threads (cfg.workers, default 4). */
rk_rc pool_start(rk_server *srv);
/* After the loop ended: drops the queued requests, finishes the queued steps of started ones, joins the workers. */
void pool_stop(rk_server *srv);

#endif
