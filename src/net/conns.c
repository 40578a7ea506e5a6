/* conns.c — the connections: caps per address and in total, the handshake/header/body/idle deadlines,
 * a pause of accept when it fails, and libevent's own error pages turned into JSON errors. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "net/server_internal.h"

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
void on_conn_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
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

void on_conn_output(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
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
        char key[INET6_ADDRSTRLEN] = "unknown";
        if (!fd_peer_address((int)bufferevent_getfd(c->bev), key, sizeof key))
            snprintf(key, sizeof key, "unknown");
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

void listening_set(rk_server *srv, int on)
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
void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    rk_server *srv = NULL; /* arg is the evhttp the listener feeds (the node's or the persons') */
    pthread_mutex_lock(&listening_lock);
    for (int i = 0; i < MAX_LISTENERS && !srv; i++)
        if (listening[i] && (listening[i]->http == arg || listening[i]->person_http == arg))
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
static struct bufferevent *make_bufferevent(struct event_base *base, rk_server *srv, int person)
{
    pthread_mutex_lock(&srv->ctx_lock); /* the context in force (a renewed certificate replaces it) */
    SSL *ssl = SSL_new(person ? srv->person_ctx : srv->ssl_ctx);
    pthread_mutex_unlock(&srv->ctx_lock);
    if (!ssl)
        return NULL;
    conn *c = calloc(1, sizeof *c);
    if (!c || tls_set_conn(ssl, c) != 1) {
        free(c);
        SSL_free(ssl);
        return NULL;
    }
    c->srv = srv;
    c->person = person;
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

struct bufferevent *make_tls_bufferevent(struct event_base *base, void *arg)
{
    rk_server *srv = arg;
    return make_bufferevent(base, srv, 0);
}

struct bufferevent *make_person_bufferevent(struct event_base *base, void *arg)
{
    rk_server *srv = arg;
    return make_bufferevent(base, srv, 1);
}

/* The caps and the admitting and resuming events. */
rk_rc conns_init(rk_server *srv)
{
    set_conn_caps(srv);
    if (!(srv->admit = event_new(srv->base, -1, 0, on_admit, srv)) ||
        !(srv->resume = evtimer_new(srv->base, on_resume_accept, srv)))
        return RK_ERR_NOMEM;
    return RK_OK;
}

void addrs_free(rk_server *srv)
{
    for (size_t i = 0; i < ADDR_BUCKETS; i++)
        while (srv->addrs[i]) {
            addr_entry *a = srv->addrs[i];
            srv->addrs[i] = a->next;
            free(a);
        }
}
