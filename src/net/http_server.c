#include "net/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lib/log.h"
#include "crypto/pki.h"
#include "lib/util.h"
#include "node/watch.h"
#include "net/server_internal.h"

#define MAX_STARTED 512 /* requests started on the event thread at once: each may hold a connection */

int64_t rk_server_now_ms(const rk_server *srv)
{
    return rk_now_ms() + srv->cfg.clock_offset_ms;
}

/* ---------- connections: caps, deadlines, libevent's own answers ---------- */

static void clist_push(clist *l, conn *c, int k)
{
    c->link[k].prev = l->tail;
    c->link[k].next = NULL;
    if (l->tail)
        l->tail->link[k].next = c;
    else
        l->head = c;
    l->tail = c;
}

static void clist_remove(clist *l, conn *c, int k)
{
    if (c->link[k].prev)
        c->link[k].prev->link[k].next = c->link[k].next;
    else
        l->head = c->link[k].next;
    if (c->link[k].next)
        c->link[k].next->link[k].prev = c->link[k].prev;
    else
        l->tail = c->link[k].prev;
    c->link[k].prev = c->link[k].next = NULL;
}

static void conn_unlist(conn *c)
{
    if (c->listed == 1)
        clist_remove(&c->srv->fresh, c, LINK_ALL);
    if (c->listed == 2) {
        clist_remove(&c->srv->handshaking, c, LINK_ALL);
        clist_remove(&c->addr->handshaking, c, LINK_ADDR);
    }
    c->listed = 0;
}

static size_t addr_hash(const char *key)
{
    size_t h = 5381;
    for (; *key; key++)
        h = h * 33 + (unsigned char)*key;
    return h % ADDR_BUCKETS;
}

static addr_entry *addr_get(rk_server *srv, const char *key)
{
    addr_entry **slot = &srv->addrs[addr_hash(key)];
    for (addr_entry *a = *slot; a; a = a->next)
        if (strcmp(a->key, key) == 0)
            return a;
    addr_entry *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    snprintf(a->key, sizeof a->key, "%s", key);
    a->next = *slot;
    *slot = a;
    return a;
}

/* Takes the connection off the counts, once; the address goes with its last. */
static void conn_uncount(conn *c)
{
    rk_server *srv = c->srv;
    conn_unlist(c);
    if (!c->counted)
        return;
    c->counted = 0;
    __atomic_sub_fetch(&srv->n_conns, 1, __ATOMIC_RELAXED);
    addr_entry *a = c->addr;
    c->addr = NULL;
    if (!a || --a->count > 0)
        return;
    for (addr_entry **p = &srv->addrs[addr_hash(a->key)]; *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    free(a);
}

/* The SSL object goes: so does its connection. */
void conn_release(conn *c)
{
    conn_uncount(c);
    if (c->bev) {
        if (c->in_cb)
            evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
        if (c->out_cb)
            evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
    }
    if (c->timer)
        event_free(c->timer);
    free(c);
}

/* Closes at once, without an answer: libevent sees the end of the stream
 * and frees the connection. Never called from the connection's own
 * bufferevent callbacks. */
static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    conn_uncount(c);
    if (c->timer)
        event_del(c->timer);
    bufferevent_trigger_event(c->bev, BEV_EVENT_EOF | BEV_EVENT_READING, 0);
}

void conn_deadline(conn *c, int ms)
{
    if (!c->timer || c->closing)
        return;
    if (ms <= 0) {
        event_del(c->timer);
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->timer, &tv);
}

static void on_conn_deadline(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    (void)fd;
    (void)what;
    if (c->closing || c->phase == PH_BUSY)
        return;
    count(&c->srv->conn_timeouts);
    conn_close(c);
}

conn *conn_of_request(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    return ssl ? conn_of_ssl(ssl) : NULL;
}

void conn_handshake_done(conn *c)
{
    if (c->closing || c->phase > PH_HANDSHAKE)
        return;
    conn_unlist(c);
    c->phase = PH_IDLE;
    conn_deadline(c, RK_SERVER_IDLE_MS);
}

/* A request's headers end at an empty line; libevent takes each complete
 * line out of the buffer as it reads, so the line before may be gone.
 * Returns the offset just past the empty line, or -1. */
static ev_ssize_t head_end(struct evbuffer *in)
{
    unsigned char first[2] = {0, 0};
    evbuffer_copyout(in, first, 2);
    if (first[0] == '\n')
        return 1;
    if (first[0] == '\r' && first[1] == '\n')
        return 2;
    ev_ssize_t crlf = evbuffer_search(in, "\n\r\n", 3, NULL).pos, lf = evbuffer_search(in, "\n\n", 2, NULL).pos;
    if (crlf >= 0 && (lf < 0 || crlf < lf))
        return crlf + 3;
    return lf >= 0 ? lf + 2 : -1;
}

/* Decrypted bytes arrived: a request starts (headers deadline) or its
 * headers end (body deadline). Runs before libevent reads them. */
static void on_conn_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
    conn *c = arg;
    if (c->closing || info->n_added == 0)
        return;
    if (c->phase == PH_IDLE) {
        c->phase = PH_HEADERS;
        c->req_bytes = 0;
        conn_deadline(c, RK_SERVER_HEADERS_MS);
    }
    if (c->phase != PH_HEADERS)
        return;
    c->req_bytes += info->n_added;
    ev_ssize_t end = head_end(in);
    if (end >= 0) {
        c->head_bytes = c->req_bytes - (evbuffer_get_length(in) - (size_t)end);
        c->phase = PH_BODY;
        conn_deadline(c, RK_SERVER_BODY_MS);
    }
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    default: return "Error";
    }
}

/* libevent answers some requests by itself (a malformed request line or
 * header, headers over its cap, a body over its cap, a method it does not
 * know), always with its HTML error page and then closing. That page is
 * replaced here, before it is sent, by the project's JSON error. */
static void rewrite_libevent_error(conn *c, struct evbuffer *out)
{
    char head[13] = {0};
    struct evbuffer_ptr at;
    if (evbuffer_ptr_set(out, &at, c->head_off, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(out, &at, head, 12) != 12 || strncmp(head, "HTTP/1.", 7) != 0)
        return;
    int status = atoi(head + 9);
    const char *code = "bad_request", *msg = "the request is malformed";
    if (status == 413) {
        code = "too_large";
        msg = "the body is over this node's size cap";
    } else if (status == 501) {
        status = 405;
        code = "method_not_allowed";
        msg = "this method is not served";
    } else if (status == 417) {
        code = "expectation_failed";
        msg = "only \"Expect: 100-continue\" is understood";
    } else if ((c->phase == PH_HEADERS ? c->req_bytes : c->head_bytes) > RK_SERVER_MAX_HEADERS) {
        status = 431;
        code = "headers_too_large";
        msg = "the request line and headers are over this node's size cap";
    } else {
        status = 400;
    }
    rk_response r = {0};
    rk_reply_error(&r, status, code, "%s", msg);
    if (!r.body)
        return;
    c->rewriting = 1;
    struct evbuffer *before = evbuffer_new();
    if (before) {
        evbuffer_remove_buffer(out, before, c->head_off);
        evbuffer_drain(out, evbuffer_get_length(out));
        evbuffer_add_buffer(out, before);
        evbuffer_free(before);
        evbuffer_add_printf(out,
                            "%.8s %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                            "X-Renkei-Time: %lld\r\nConnection: close\r\n\r\n",
                            head, status, reason_phrase(status), r.body_len,
                            (long long)rk_server_now_ms(c->srv));
        evbuffer_add(out, r.body, r.body_len);
    }
    c->rewriting = 0;
    free(r.body);
}

static void on_conn_output(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
    static const char page_end[] = "</BODY></HTML>\n"; /* libevent 2.1's error page */
    conn *c = arg;
    if (c->rewriting || c->closing || info->n_added == 0)
        return;
    char buf[sizeof page_end - 1];
    struct evbuffer_ptr at;
    if (evbuffer_ptr_set(out, &at, info->orig_size, EVBUFFER_PTR_SET) == 0 &&
        evbuffer_copyout_from(out, &at, buf, 7) == 7 && memcmp(buf, "HTTP/1.", 7) == 0)
        c->head_off = info->orig_size;
    size_t len = evbuffer_get_length(out);
    if (info->n_added < sizeof buf || len < sizeof buf || c->head_off >= len ||
        evbuffer_ptr_set(out, &at, len - sizeof buf, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(out, &at, buf, sizeof buf) != (ev_ssize_t)sizeof buf ||
        memcmp(buf, page_end, sizeof buf) != 0)
        return;
    rewrite_libevent_error(c, out);
}

/* Event thread, after accept: each new connection is counted against its
 * address and the total; over a cap, room is made or it is closed. */
static void on_admit(evutil_socket_t fd, short what, void *arg)
{
    rk_server *srv = arg;
    (void)fd;
    (void)what;
    conn *c;
    while ((c = srv->fresh.head)) {
        conn_unlist(c);
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        char key[INET6_ADDRSTRLEN] = "unknown";
        evutil_socket_t s = bufferevent_getfd(c->bev);
        if (s >= 0 && getpeername(s, (struct sockaddr *)&sa, &len) == 0) {
            if (sa.ss_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, key, sizeof key);
            else if (sa.ss_family == AF_INET6)
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, key, sizeof key);
        }
        c->addr = addr_get(srv, key);
        if (!c->addr) {
            count(&srv->conn_refusals);
            conn_close(c);
            continue;
        }
        c->addr->count++;
        if (c->phase == PH_FRESH) {
            c->phase = PH_HANDSHAKE;
            clist_push(&srv->handshaking, c, LINK_ALL);
            clist_push(&c->addr->handshaking, c, LINK_ADDR);
            c->listed = 2;
            conn_deadline(c, srv->handshake_ms);
        }
        conn *victim = NULL;
        if (c->addr->count > srv->max_per_addr)
            victim = c->addr->handshaking.head;
        else if (srv->n_conns > srv->max_conns)
            victim = srv->handshaking.head;
        else
            continue;
        count(&srv->conn_refusals);
        conn_close(victim && victim != c ? victim : c);
    }
}

/* Servers that listen, for the listener's error callback (which gets only
 * the evhttp). */
static rk_server *listening[MAX_LISTENERS];
static pthread_mutex_t listening_lock = PTHREAD_MUTEX_INITIALIZER;

static void listening_set(rk_server *srv, int on)
{
    pthread_mutex_lock(&listening_lock);
    for (int i = 0; i < MAX_LISTENERS; i++)
        if (on ? listening[i] == srv || !listening[i] : listening[i] == srv) {
            listening[i] = on ? srv : NULL;
            break;
        }
    pthread_mutex_unlock(&listening_lock);
}

/* accept() failed for want of descriptors (or memory): libevent would try
 * again at once, and forever. Pause accepting a moment, and make room by
 * closing the oldest connections still in their handshake. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    rk_server *srv = NULL; /* arg is the evhttp the listener feeds */
    pthread_mutex_lock(&listening_lock);
    for (int i = 0; i < MAX_LISTENERS && !srv; i++)
        if (listening[i] && listening[i]->http == arg)
            srv = listening[i];
    pthread_mutex_unlock(&listening_lock);
    if (!srv) {
        evconnlistener_disable(lev);
        return;
    }
    if (__atomic_add_fetch(&srv->accept_errors, 1, __ATOMIC_RELAXED) % 100 == 1)
        rk_warn("accept failed (%s): pausing %d ms", strerror(err), RK_SERVER_ACCEPT_PAUSE_MS);
    evconnlistener_disable(lev);
    for (int i = 0; i < 32 && srv->handshaking.head; i++)
        conn_close(srv->handshaking.head);
    struct timeval tv = {0, RK_SERVER_ACCEPT_PAUSE_MS * 1000};
    evtimer_add(srv->resume, &tv);
}

static void on_resume_accept(evutil_socket_t fd, short what, void *arg)
{
    rk_server *srv = arg;
    (void)fd;
    (void)what;
    for (int i = 0; i < srv->n_listeners; i++)
        evconnlistener_enable(srv->listeners[i]);
}

/* The total cap stays below the open-file limit, with room for the
 * descriptors the node needs besides the connections it serves. */
static void set_conn_caps(rk_server *srv)
{
    struct rlimit rl;
    size_t cap = RK_SERVER_MAX_CONNS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        size_t files = (size_t)rl.rlim_cur;
        size_t room = files > 2 * RK_SERVER_FD_RESERVE ? files - RK_SERVER_FD_RESERVE : files / 2;
        if (room < cap)
            cap = room;
    }
    srv->max_conns = cap;
    srv->max_per_addr = RK_SERVER_MAX_CONNS_PER_ADDR < cap ? RK_SERVER_MAX_CONNS_PER_ADDR : cap;
    srv->handshake_ms = RK_SERVER_HANDSHAKE_MS;
    const char *t = getenv("RENKEI_TEST_HANDSHAKE_MS");
    if (t && atoi(t) >= 100 && atoi(t) <= 60000)
        srv->handshake_ms = atoi(t);
}

/* libevent calls this for each accepted connection, then sets the socket;
 * the connection is admitted (counted against the caps) right after. */
static struct bufferevent *make_tls_bufferevent(struct event_base *base, void *arg)
{
    rk_server *srv = arg;
    SSL *ssl = SSL_new(srv->ssl_ctx);
    if (!ssl)
        return NULL;
    conn *c = calloc(1, sizeof *c);
    if (!c || tls_set_conn(ssl, c) != 1) {
        free(c);
        SSL_free(ssl);
        return NULL;
    }
    c->srv = srv;
    c->counted = 1;
    __atomic_add_fetch(&srv->n_conns, 1, __ATOMIC_RELAXED);
    clist_push(&srv->fresh, c, LINK_ALL);
    c->listed = 1;
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) /* the SSL object, and with it c, is freed */
        return NULL;
    c->bev = bev;
    c->timer = evtimer_new(base, on_conn_deadline, c);
    c->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), on_conn_input, c);
    c->out_cb = evbuffer_add_cb(bufferevent_get_output(bev), on_conn_output, c);
    event_active(srv->admit, EV_READ, 0);
    return bev;
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

static rk_rc copy_request(job *j, struct evhttp_request *req, const char *method)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
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

/* POST and PUT carry a JSON object; anything else is refused here, once. */
static int parse_body(job *j, struct evhttp_request *req)
{
    if (strcmp(j->in.method, "POST") != 0 && strcmp(j->in.method, "PUT") != 0)
        return 1;
    json_error_t err;
    j->in.json = json_loadb(j->body, j->in.body_len, JSON_REJECT_DUPLICATES, &err);
    if (j->in.json && json_is_object(j->in.json))
        return 1;
    char msg[300];
    if (j->in.json)
        snprintf(msg, sizeof msg, "the body must be a JSON object");
    else
        snprintf(msg, sizeof msg, "the body is not valid JSON: %s at line %d column %d", err.text, err.line,
                 err.column);
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
    j->route = authorise(srv, req, method, j->path, &j->in.peer, &stats_index);
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
    j->done = event_new(srv->base, -1, 0, on_job_done, j);
    if (!j->done || !enqueue(srv, j)) {
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

rk_rc rk_server_new(const rk_server_config *cfg, rk_server **out)
{
    static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
    pthread_once(&evthread_once, (void (*)(void))evthread_use_pthreads);
    tls_init();
    if (cfg->n_routes > MAX_ROUTES)
        return RK_ERR_INVALID;
    rk_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return RK_ERR_NOMEM;
    srv->cfg = *cfg;
    if (cfg->on_incident && cfg->refusal_threshold > 0)
        srv->refusals = rk_watch_new(cfg->refusal_window_ms, (unsigned)cfg->refusal_threshold, 0);
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->cond, NULL);
    rk_rc rc = make_ssl_ctx(srv);
    if (rc == RK_OK && (!(srv->base = event_base_new()) || !(srv->http = evhttp_new(srv->base))))
        rc = RK_ERR_NOMEM;
    if (rc != RK_OK) {
        rk_server_free(srv);
        return rc;
    }
    set_conn_caps(srv);
    if (!(srv->admit = event_new(srv->base, -1, 0, on_admit, srv)) ||
        !(srv->resume = evtimer_new(srv->base, on_resume_accept, srv))) {
        rk_server_free(srv);
        return RK_ERR_NOMEM;
    }
    /* libevent stops reading a body over max_body and answers 413 itself;
     * that answer, like its other ones, is rewritten as JSON (on_conn_output). */
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)cfg->max_body);
    evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_max_headers_size(srv->http, RK_SERVER_MAX_HEADERS);
    evhttp_set_timeout(srv->http, 120); /* inactivity; the connection deadlines are shorter */
    /* Every method libevent knows reaches on_request, which refuses all but
     * GET, POST and PUT with a JSON 405. */
    evhttp_set_allowed_methods(srv->http, 0xffff);
    evhttp_set_default_content_type(srv->http, "application/json");
    evhttp_set_bevcb(srv->http, make_tls_bufferevent, srv);
    evhttp_set_gencb(srv->http, on_request, srv);
    *out = srv;
    return RK_OK;
}

rk_rc rk_server_listen(rk_server *srv, const char *url)
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
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(srv->http, host, (ev_uint16_t)port);
    if (!bound) {
        rk_error("cannot listen on %s:%d", host, port);
        return RK_ERR_IO;
    }
    struct evconnlistener *lev = evhttp_bound_socket_get_listener(bound);
    evconnlistener_set_error_cb(lev, on_accept_error);
    listening_set(srv, 1);
    srv->listeners[srv->n_listeners++] = lev;
    rk_info("listening on https://%s:%d", host, port);
    return RK_OK;
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

void rk_server_stop(rk_server *srv)
{
    event_base_loopexit(srv->base, NULL);
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
    if (srv->admit)
        event_free(srv->admit);
    if (srv->resume)
        event_free(srv->resume);
    if (srv->base)
        event_base_free(srv->base);
    for (size_t i = 0; i < ADDR_BUCKETS; i++)
        while (srv->addrs[i]) {
            addr_entry *a = srv->addrs[i];
            srv->addrs[i] = a->next;
            free(a);
        }
    SSL_CTX_free(srv->ssl_ctx);
    rk_watch_free(srv->refusals);
    free(srv->threads);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->cond);
    free(srv);
}
