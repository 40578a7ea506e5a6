/* server.c — the listener and its lifecycle: rk_server_new/listen/run/stop/free, the signals, and request
 * intake (copy, size cap, authorisation, JSON body) and dispatch to the pool or a route's start. */
#include <event2/buffer.h>
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "net/server_internal.h"

#define MAX_STARTED 512 /* requests started on the event thread at once: each may hold a connection */

int64_t rk_server_now_ms(const rk_server *srv)
{
    return rk_now_ms() + srv->cfg.clock_offset_ms;
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    default: return "OTHER";
    }
}

/* ---------- request intake (event thread) ---------- */

rk_rc request_copy(job *j, const char *path, const char *query, struct evbuffer *in, const char *method)
{
    size_t len = evbuffer_get_length(in);
    j->path = evhttp_uridecode(path && *path ? path : "/", 0, NULL);
    j->query = strdup(query ? query : "");
    j->body = malloc(len + 1);
    if (!j->path || !j->query || !j->body)
        return RK_ERR_NOMEM;
    evbuffer_copyout(in, j->body, len);
    j->body[len] = '\0';
    j->in.method = method;
    j->in.path = j->path;
    j->in.query = j->query;
    j->in.body = j->body;
    j->in.body_len = len;
    j->in.received_ms = rk_server_now_ms(j->srv);
    return RK_OK;
}

static rk_rc copy_request(job *j, struct evhttp_request *req, const char *method)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    return request_copy(j, uri ? evhttp_uri_get_path(uri) : NULL, uri ? evhttp_uri_get_query(uri) : NULL,
                        evhttp_request_get_input_buffer(req), method);
}

int request_json(job *j, char *msg, size_t msglen)
{
    if (strcmp(j->in.method, "POST") != 0 && strcmp(j->in.method, "PUT") != 0)
        return 1;
    json_error_t err;
    j->in.json = json_loadb(j->body, j->in.body_len, JSON_REJECT_DUPLICATES, &err);
    if (j->in.json && json_is_object(j->in.json))
        return 1;
    if (j->in.json)
        snprintf(msg, msglen, "the body must be a JSON object");
    else
        snprintf(msg, msglen, "the body is not valid JSON: %s at line %d column %d", err.text, err.line,
                 err.column);
    return 0;
}

/* POST and PUT carry a JSON object; anything else is refused here, once. */
static int parse_body(job *j, struct evhttp_request *req)
{
    char msg[300];
    if (j->route->raw_body || request_json(j, msg, sizeof msg))
        return 1;
    refuse(req, j->srv, 400, "invalid_json", msg);
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    rk_server *srv = arg;
    if (srv->stopping) {
        refuse(req, srv, 503, "overloaded", "the node is stopping; retry with the same id");
        return;
    }
    conn *c = conn_of_request(req);
    if (c) { /* a handler's time is its own affair */
        c->phase = PH_BUSY;
        conn_deadline(c, 0);
    }
    const char *method = method_name(evhttp_request_get_command(req));
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0) {
        refuse(req, srv, 405, "method_not_allowed", "this method is not served");
        return;
    }
    job *j = calloc(1, sizeof *j);
    if (!j || (j->srv = srv, copy_request(j, req, method)) != RK_OK) {
        job_free(j);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    if (j->in.body_len > srv->cfg.max_body) {
        refuse(req, srv, 413, "too_large", "the body is over this node's size cap");
        job_free(j);
        return;
    }
    size_t stats_index = 0;
    j->started_us = mono_us();
    if (c && c->person) { /* a card's holder: the person routes, and nothing else */
        j->route = authorise_person(srv, req, method, j->path, &j->person, &stats_index);
        j->in.peer = &j->person;
    } else {
        j->route = authorise(srv, req, method, j->path, &j->in.peer, &stats_index);
    }
    if (!j->route || !check_skew(j, req) || !parse_body(j, req)) {
        job_free(j);
        return;
    }
    j->stats = &srv->stats[stats_index];
    j->req = req;
    if (j->route->start) {
        if (srv->started >= MAX_STARTED) {
            count(&srv->overloaded);
            refuse(req, srv, 503, "overloaded", "the node is busy; retry with the same id");
            job_free(j);
            return;
        }
        srv->started++;
        j->route->start(srv->cfg.app, (rk_pending *)j, &j->in, &j->out);
        return;
    }
    if (!enqueue(srv, j)) {
        count(&srv->overloaded);
        refuse(req, srv, 503, "overloaded", "the node is busy; retry with the same id");
        job_free(j);
    }
}

/* ---------- lifecycle ---------- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    rk_server *srv = arg;
    if (sig == SIGHUP) {
        if (srv->cfg.on_reload)
            srv->cfg.on_reload(srv->cfg.app);
        return;
    }
    rk_info("signal %d: stopping", (int)sig);
    event_base_loopexit(srv->base, NULL);
}

static void set_up_http(rk_server *srv, struct evhttp *http,
                        struct bufferevent *(*bevcb)(struct event_base *, void *));

rk_rc rk_server_new(const rk_server_config *cfg, rk_server **out)
{
    static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
    pthread_once(&evthread_once, (void (*)(void))evthread_use_pthreads);
    tls_init();
    if (cfg->n_routes > MAX_ROUTES || cfg->n_person_routes > MAX_ROUTES)
        return RK_ERR_INVALID;
    rk_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return RK_ERR_NOMEM;
    srv->cfg = *cfg;
    if (cfg->on_incident && cfg->refusal_threshold > 0)
        srv->refusals = rk_watch_new(cfg->refusal_window_ms, (unsigned)cfg->refusal_threshold, 0);
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->cond, NULL);
    pthread_mutex_init(&srv->ctx_lock, NULL);
    rk_rc rc = make_ssl_ctx(srv, cfg->cert, cfg->key, &srv->ssl_ctx);
    if (rc == RK_OK && (!(srv->base = event_base_new()) || !(srv->http = evhttp_new(srv->base))))
        rc = RK_ERR_NOMEM;
    if (rc != RK_OK) {
        rk_server_free(srv);
        return rc;
    }
    if (conns_init(srv) != RK_OK) {
        rk_server_free(srv);
        return RK_ERR_NOMEM;
    }
    set_up_http(srv, srv->http, make_tls_bufferevent);
    *out = srv;
    return RK_OK;
}

/* The settings of a listener's evhttp; bevcb makes its connections' TLS. */
static void set_up_http(rk_server *srv, struct evhttp *http,
                        struct bufferevent *(*bevcb)(struct event_base *, void *))
{
    /* libevent stops reading a body over max_body and answers 413 itself;
     * that answer, like its other ones, is rewritten as JSON (on_conn_output). */
    evhttp_set_max_body_size(http, (ev_ssize_t)srv->cfg.max_body);
    evhttp_set_flags(http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_max_headers_size(http, RK_SERVER_MAX_HEADERS);
    evhttp_set_timeout(http, 120); /* inactivity; the connection deadlines are shorter */
    /* Every method libevent knows reaches on_request, which refuses all but
     * GET, POST and PUT with a JSON 405. */
    evhttp_set_allowed_methods(http, 0xffff);
    evhttp_set_default_content_type(http, "application/json");
    evhttp_set_bevcb(http, bevcb, srv);
    evhttp_set_gencb(http, on_request, srv);
}

/* Binds http to the host:port of url. */
static rk_rc listen_on(rk_server *srv, struct evhttp *http, const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    char host[64];
    size_t n = strcspn(p, ":/");
    if (n == 0 || n >= sizeof host || p[n] != ':')
        return RK_ERR_INVALID;
    snprintf(host, sizeof host, "%.*s", (int)n, p);
    int port = atoi(p + n + 1);
    if (port <= 0 || port > 65535)
        return RK_ERR_INVALID;
    if (srv->n_listeners >= MAX_LISTENERS)
        return RK_ERR_INVALID;
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (!bound) {
        rk_error("cannot listen on %s:%d", host, port);
        return RK_ERR_IO;
    }
    struct evconnlistener *lev = evhttp_bound_socket_get_listener(bound);
    evconnlistener_set_error_cb(lev, on_accept_error);
    listening_set(srv, 1);
    srv->listeners[srv->n_listeners++] = lev;
    rk_info("listening on https://%s:%d%s", host, port, http == srv->person_http ? " for persons' cards" : "");
    return RK_OK;
}

rk_rc rk_server_listen(rk_server *srv, const char *url)
{
    return listen_on(srv, srv->http, url);
}

rk_rc rk_server_listen_persons(rk_server *srv, const char *url)
{
    if (!srv->cfg.person_store || !srv->cfg.n_person_routes)
        return RK_ERR_CONFIG;
    if (!srv->person_http) {
        rk_rc rc = make_person_ctx(srv, srv->cfg.cert, srv->cfg.key, &srv->person_ctx);
        if (rc != RK_OK)
            return rc;
        if (!(srv->person_http = evhttp_new(srv->base)))
            return RK_ERR_NOMEM;
        set_up_http(srv, srv->person_http, make_person_bufferevent);
    }
    return listen_on(srv, srv->person_http, url);
}

rk_rc rk_server_run(rk_server *srv)
{
    signal(SIGPIPE, SIG_IGN);
    srv->sig_int = evsignal_new(srv->base, SIGINT, on_signal, srv);
    srv->sig_term = evsignal_new(srv->base, SIGTERM, on_signal, srv);
    srv->sig_hup = evsignal_new(srv->base, SIGHUP, on_signal, srv);
    if (!srv->sig_int || !srv->sig_term || !srv->sig_hup)
        return RK_ERR_NOMEM;
    evsignal_add(srv->sig_int, NULL);
    evsignal_add(srv->sig_term, NULL);
    evsignal_add(srv->sig_hup, NULL);
    rk_rc rc = pool_start(srv);
    if (rc != RK_OK)
        return rc;
    event_base_dispatch(srv->base);

    pool_stop(srv);
    /* Requests started on the event thread finish there (each call they
     * wait on has a timeout); new ones are refused meanwhile. */
    while (srv->started > 0 && event_base_loop(srv->base, EVLOOP_ONCE) == 0)
        ;
    if (srv->cfg.on_stop)
        srv->cfg.on_stop(srv->cfg.app);
    event_base_loop(srv->base, EVLOOP_NONBLOCK); /* deliver answers of finished handlers */
    return RK_OK;
}

struct event_base *rk_server_base(const rk_server *srv)
{
    return srv->base;
}

void rk_server_stop(rk_server *srv)
{
    event_base_loopexit(srv->base, NULL);
}

void rk_server_set_registry(rk_server *srv, const rk_registry *reg)
{
    __atomic_store_n(&srv->cfg.registry, reg, __ATOMIC_RELEASE);
}

rk_rc rk_server_set_identity(rk_server *srv, X509 *cert, EVP_PKEY *key)
{
    /* made first (the CA file read here, not on the loop), then swapped */
    SSL_CTX *ctx = NULL, *person = NULL;
    rk_rc rc = make_ssl_ctx(srv, cert, key, &ctx);
    pthread_mutex_lock(&srv->ctx_lock);
    int has_person = srv->person_ctx != NULL;
    pthread_mutex_unlock(&srv->ctx_lock);
    if (rc == RK_OK && has_person)
        rc = make_person_ctx(srv, cert, key, &person);
    if (rc != RK_OK) {
        SSL_CTX_free(ctx);
        return rc;
    }
    pthread_mutex_lock(&srv->ctx_lock);
    SSL_CTX *old = srv->ssl_ctx, *old_person = srv->person_ctx;
    srv->ssl_ctx = ctx;
    if (person)
        srv->person_ctx = person;
    else
        old_person = NULL;
    pthread_mutex_unlock(&srv->ctx_lock);
    SSL_CTX_free(old); /* connections open on it keep their reference */
    SSL_CTX_free(old_person);
    return RK_OK;
}

void rk_server_free(rk_server *srv)
{
    if (!srv)
        return;
    if (srv->sig_int) event_free(srv->sig_int);
    if (srv->sig_term) event_free(srv->sig_term);
    if (srv->sig_hup) event_free(srv->sig_hup);
    listening_set(srv, 0);
    if (srv->http)
        evhttp_free(srv->http);
    if (srv->person_http)
        evhttp_free(srv->person_http);
    if (srv->admit)
        event_free(srv->admit);
    if (srv->resume)
        event_free(srv->resume);
    if (srv->finished) {
        event_free(srv->finished);
        pthread_mutex_destroy(&srv->fin_lock);
    }
    if (srv->base)
        event_base_free(srv->base);
    addrs_free(srv);
    SSL_CTX_free(srv->ssl_ctx);
    SSL_CTX_free(srv->person_ctx);
    rk_watch_free(srv->refusals);
    free(srv->threads);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->ctx_lock);
    free(srv);
}
