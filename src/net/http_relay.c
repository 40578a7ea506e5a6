#include "net/http_relay.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "crypto/pki.h"
#include "net/registry.h"
#include "net/revocation.h"
#include "lib/util.h"

#define IDLE_MAX 1024 /* idle connections kept, all targets: one per started request (MAX_STARTED 512) to each of two */
#define MAX_ANSWER_HEADERS (16 * 1024) /* as the server's cap on request headers */

typedef struct conn conn;

struct rk_relay {
    struct event_base *base;
    struct evdns_base *dns;  /* host names resolved without blocking the loop */
    SSL_CTX *ctx;            /* new connections' (under ctx_lock: rk_relay_set_identity swaps it) */
    pthread_mutex_t ctx_lock;
    char *ca_path;
    unsigned gen;            /* identity generation: an idle connection of an older one is not reused */
    int64_t clock_offset_ms;
    conn *idle;              /* idle connections, any target, newest first */
    size_t n_idle;
    conn *retired;           /* failed or closed, freed by `reap` outside their callbacks */
    struct event *reap;
    struct call *busy;       /* calls in flight: rk_relay_free ends them */
    int freeing;
};

struct conn {
    rk_relay *r;
    struct evhttp_connection *evcon;
    char target[RK_URL_MAX];   /* the base URL it is connected to */
    char pin[RK_PIN_LEN];      /* checked in the handshake */
    int closing;               /* failed or closed: freed, never reused */
    unsigned gen;              /* the relay's identity it was made with */
    conn *next;
};

/* One call in flight. */
typedef struct call {
    rk_relay *r;
    conn *c;
    int fresh;                 /* on a connection made for it */
    int retried;
    int answered;              /* the peer began an answer: never repeated */
    int64_t deadline_ms;       /* monotonic: the whole call, a retry included */
    rk_relay_done_fn done;
    void *arg;
    enum evhttp_request_error error;
    int failed, timed_out;
    int timeout_ms;
    struct evhttp_request *req;  /* owned by libevent */
    struct event *deadline;      /* the whole call's timeout, as libcurl's */
    char target[RK_URL_MAX], pin[RK_PIN_LEN], path[RK_URL_MAX];
    char *body;                /* kept for one retry on a fresh connection */
    size_t len;
    int get;                   /* GET (no body) rather than POST */
    size_t max_response;       /* the answer's cap (RK_CLIENT_MAX_RESPONSE unless the caller said) */
    struct call *busy_prev, *busy_next;
} call;

static int pin_index = -1;
static pthread_once_t pin_once = PTHREAD_ONCE_INIT;

static void make_pin_index(void)
{
    pin_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* The leaf's public key must be the registered one (as libcurl's
 * CURLOPT_PINNEDPUBLICKEY does for rk_client_call). */
static int verify_pin(int ok, X509_STORE_CTX *store)
{
    ok = rk_revocation_verify(ok, store); /* 第5-2(2): not a revoked server */
    if (!ok || X509_STORE_CTX_get_error_depth(store) != 0)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    const char *pin = ssl ? SSL_get_ex_data(ssl, pin_index) : NULL;
    if (!pin || !*pin)
        return ok;
    char got[RK_PIN_LEN];
    X509 *leaf = X509_STORE_CTX_get_current_cert(store);
    if (leaf && rk_pki_spki_pin(leaf, got) == RK_OK && strcmp(got, pin) == 0)
        return 1;
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION); /* not the registered key */
    return 0;
}

static void reap_cb(evutil_socket_t fd, short what, void *arg);

/* A client context: TLS 1.3, this node's certificate and key, the network CA, the pin checked. */
static SSL_CTX *client_ctx(X509 *cert, EVP_PKEY *key, const char *ca_path)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) || SSL_CTX_use_certificate(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1 ||
        SSL_CTX_load_verify_locations(ctx, ca_path, NULL) != 1) {
        const char *why = ERR_reason_error_string(ERR_get_error());
        rk_error("relay: cannot set up the client TLS context (CA %s): %s", ca_path, why ? why : "unknown error");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_pin);
    SSL_CTX_set_verify_depth(ctx, 2);
    return ctx;
}

rk_rc rk_relay_new(struct event_base *base, X509 *cert, EVP_PKEY *key, const char *ca_path,
                   int64_t clock_offset_ms, rk_relay **out)
{
    pthread_once(&pin_once, make_pin_index);
    rk_relay *r = calloc(1, sizeof *r);
    if (!r)
        return RK_ERR_NOMEM;
    pthread_mutex_init(&r->ctx_lock, NULL);
    r->base = base;
    r->clock_offset_ms = clock_offset_ms;
    /* IP literals need no resolver; without one, a name would be looked up
     * blocking (getaddrinfo) on the event thread. */
    r->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    r->ca_path = strdup(ca_path);
    if (!(r->reap = evtimer_new(base, reap_cb, r)) || !r->ca_path || !(r->ctx = client_ctx(cert, key, ca_path))) {
        rk_relay_free(r);
        return RK_ERR_CRYPTO;
    }
    *out = r;
    return RK_OK;
}

rk_rc rk_relay_set_identity(rk_relay *r, X509 *cert, EVP_PKEY *key)
{
    SSL_CTX *ctx = client_ctx(cert, key, r->ca_path); /* made before the lock: the loop waits for no file */
    if (!ctx)
        return RK_ERR_CRYPTO;
    pthread_mutex_lock(&r->ctx_lock);
    SSL_CTX *old = r->ctx;
    r->ctx = ctx;
    __atomic_add_fetch(&r->gen, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&r->ctx_lock);
    SSL_CTX_free(old); /* the connections made with it keep their reference */
    return RK_OK;
}

static void conn_free(conn *c)
{
    if (c->evcon) {
        evhttp_connection_set_closecb(c->evcon, NULL, NULL); /* freeing calls it otherwise */
        evhttp_connection_free(c->evcon);                    /* and its bufferevent and SSL */
    }
    free(c);
}

static void free_list(conn **list)
{
    while (*list) {
        conn *c = *list;
        *list = c->next;
        conn_free(c);
    }
}

/* Frees the retired connections, outside libevent's callbacks on them. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    free_list(&((rk_relay *)arg)->retired);
}

static void retire(conn *c)
{
    static const struct timeval now = {0, 0};
    rk_relay *r = c->r;
    c->closing = 1;
    c->next = r->retired;
    r->retired = c;
    if (!evtimer_pending(r->reap, NULL))
        evtimer_add(r->reap, &now);
}

static void finish(struct call *k, struct evhttp_request *req);

void rk_relay_free(rk_relay *r)
{
    if (!r)
        return;
    /* Calls still in flight end now, as an unreachable peer (their done is
     * told; nothing is sent again). */
    r->freeing = 1;
    while (r->busy) {
        call *k = r->busy;
        k->failed = 1;
        k->c->closing = 1;
        if (k->req)
            evhttp_cancel_request(k->req);
        finish(k, NULL);
    }
    free_list(&r->idle);
    free_list(&r->retired);
    if (r->reap)
        event_free(r->reap);
    if (r->dns)
        evdns_base_free(r->dns, 0);
    SSL_CTX_free(r->ctx);
    free(r->ca_path);
    pthread_mutex_destroy(&r->ctx_lock);
    free(r);
}

/* The peer closed an idle connection: drop it from the idle list. */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
    conn *c = arg;
    if (c->closing)
        return;
    c->closing = 1;
    for (conn **pp = &c->r->idle; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            c->r->n_idle--;
            retire(c);
            return;
        }
    /* in flight: the call's completion retires it */
}

static int split_url(const char *url, char *host, size_t hostlen, ev_uint16_t *port)
{
    const char *p = strncmp(url, "https://", 8) == 0 ? url + 8 : NULL;
    if (!p)
        return -1;
    size_t n = strcspn(p, ":/");
    if (n == 0 || n >= hostlen || p[n] != ':')
        return -1;
    int v = atoi(p + n + 1);
    if (v <= 0 || v > 65535)
        return -1;
    snprintf(host, hostlen, "%.*s", (int)n, p);
    *port = (ev_uint16_t)v;
    return 0;
}

static conn *conn_new(rk_relay *r, const char *target, const char *pin, int timeout_ms)
{
    char host[64];
    ev_uint16_t port = 0;
    if (split_url(target, host, sizeof host, &port) != 0)
        return NULL;
    conn *c = calloc(1, sizeof *c);
    SSL *ssl = NULL;
    if (c) {
        pthread_mutex_lock(&r->ctx_lock);
        ssl = SSL_new(r->ctx);
        c->gen = __atomic_load_n(&r->gen, __ATOMIC_ACQUIRE);
        pthread_mutex_unlock(&r->ctx_lock);
    }
    if (!ssl) {
        free(c);
        return NULL;
    }
    c->r = r;
    snprintf(c->target, sizeof c->target, "%s", target);
    snprintf(c->pin, sizeof c->pin, "%s", pin ? pin : "");
    SSL_set_ex_data(ssl, pin_index, c->pin);
    struct in6_addr any;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    int named = inet_pton(AF_INET, host, &any) == 1 || inet_pton(AF_INET6, host, &any) == 1
                    ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
                    : SSL_set1_host(ssl, host);
    if (named != 1) {
        SSL_free(ssl);
        free(c);
        return NULL;
    }
    /* On failure libevent (≥ 2.1.9) frees ssl itself: BEV_OPT_CLOSE_ON_FREE. */
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(r->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        free(c);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    c->evcon = evhttp_connection_base_bufferevent_new(r->base, r->dns, bev, host, port);
    if (!c->evcon) {
        bufferevent_free(bev);
        free(c);
        return NULL;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(c->evcon, &tv);
    evhttp_connection_set_retries(c->evcon, 0);
    evhttp_connection_set_max_body_size(c->evcon, (ev_ssize_t)RK_CLIENT_MAX_RESPONSE);
    evhttp_connection_set_max_headers_size(c->evcon, MAX_ANSWER_HEADERS);
    evhttp_connection_set_closecb(c->evcon, on_close, c);
    return c;
}

/* An idle connection to target with the same pin, taken off the list;
 * one made with an identity since replaced is closed instead. */
static conn *take_idle(rk_relay *r, const char *target, const char *pin)
{
    unsigned gen = __atomic_load_n(&r->gen, __ATOMIC_ACQUIRE);
    for (conn **pp = &r->idle; *pp;) {
        conn *c = *pp;
        if (c->gen != gen) {
            *pp = c->next;
            r->n_idle--;
            retire(c);
            continue;
        }
        if (strcmp(c->target, target) == 0 && strcmp(c->pin, pin ? pin : "") == 0) {
            *pp = c->next;
            c->next = NULL;
            r->n_idle--;
            return c;
        }
        pp = &c->next;
    }
    return NULL;
}

static void give_back(conn *c)
{
    if (c->closing || c->r->n_idle >= IDLE_MAX) {
        retire(c);
        return;
    }
    c->next = c->r->idle;
    c->r->idle = c;
    c->r->n_idle++;
}

static void on_error(enum evhttp_request_error error, void *arg)
{
    call *k = arg;
    k->failed = 1;
    k->error = error;
}

static rk_rc start_call(call *k);

static void call_free(call *k)
{
    if (k->busy_prev)
        k->busy_prev->busy_next = k->busy_next;
    else if (k->r->busy == k)
        k->r->busy = k->busy_next;
    if (k->busy_next)
        k->busy_next->busy_prev = k->busy_prev;
    rk_wipe(k->body, k->len); /* may carry a My Number (notices) */
    free(k->body);
    free(k);
}

/* Headers of an answer arrived: the peer has the request. */
static int on_header(struct evhttp_request *req, void *arg)
{
    ((call *)arg)->answered = 1;
    return 0;
}

/* The answer (req with a status), or a failure (req NULL or without one). */
static void finish(call *k, struct evhttp_request *req)
{
    if (k->deadline) {
        event_free(k->deadline);
        k->deadline = NULL;
    }
    rk_http_result res = {0};
    rk_rc rc = RK_OK;
    /* An answer cut short looks complete to libevent when it has no length. */
    int unbounded = req && !k->failed && evhttp_request_get_response_code(req) != 0 &&
                    !evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Length");
    if (!req || k->failed || evhttp_request_get_response_code(req) == 0 || unbounded) {
        rc = k->timed_out || (k->failed && k->error == EVREQ_HTTP_TIMEOUT) ? RK_ERR_TIMEOUT
             : k->failed && k->error == EVREQ_HTTP_DATA_TOO_LONG ? RK_ERR_TOO_LARGE
                                                                 : RK_ERR_UPSTREAM;
        k->c->closing = 1;
        give_back(k->c);
        /* A kept connection the peer had closed meanwhile, and nothing came
         * back: once more on a new one, as libcurl does with its connection
         * cache (every call carries an id, so even a repeat would have no
         * second effect). */
        if (rc == RK_ERR_UPSTREAM && !k->fresh && !k->retried && !k->answered && !k->r->freeing &&
            rk_mono_ms() < k->deadline_ms) {
            k->retried = 1;
            k->failed = 0;
            if (start_call(k) == RK_OK)
                return;
        }
    } else {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        const char *t = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Renkei-Time");
        res.status = evhttp_request_get_response_code(req);
        res.peer_time_ms = t ? strtoll(t, NULL, 10) : 0;
        res.body = malloc(len + 1);
        if (!res.body) {
            rc = RK_ERR_NOMEM;
            res.status = 0;
        } else {
            evbuffer_remove(in, res.body, len);
            res.body[len] = '\0';
            res.body_len = len;
        }
        give_back(k->c);
    }
    k->done(k->arg, rc, &res);
    call_free(k);
}

static void on_done(struct evhttp_request *req, void *arg)
{
    finish(arg, req);
}

/* The call took longer than its timeout in all (libevent's own timeout
 * only bounds each wait for the socket). */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    call *k = arg;
    k->failed = k->timed_out = 1;
    k->c->closing = 1;
    /* Only the error callback runs (EVREQ_HTTP_REQUEST_CANCEL), not
     * on_done; the connection is reset and retired in finish. */
    evhttp_cancel_request(k->req);
    finish(k, NULL);
}

/* Sends the call on an idle connection to its target, or a new one. */
static rk_rc start_call(call *k)
{
    rk_relay *r = k->r;
    k->c = k->retried ? NULL : take_idle(r, k->target, k->pin);
    k->fresh = !k->c;
    if (!k->c && !(k->c = conn_new(r, k->target, k->pin, k->timeout_ms)))
        return RK_ERR_INVALID;
    conn *c = k->c;
    evhttp_connection_set_max_body_size(c->evcon, (ev_ssize_t)k->max_response); /* this call's cap */
    struct evhttp_request *req = evhttp_request_new(on_done, k);
    int64_t left = k->deadline_ms - rk_mono_ms();
    if (left < 1)
        left = 1;
    struct timeval limit = {(time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000)};
    k->deadline = req ? evtimer_new(r->base, on_deadline, k) : NULL;
    if (!req || !k->deadline || evtimer_add(k->deadline, &limit) != 0) {
        if (k->deadline)
            event_free(k->deadline);
        k->deadline = NULL;
        if (req)
            evhttp_request_free(req);
        give_back(c);
        return RK_ERR_NOMEM;
    }
    k->req = req;
    evhttp_request_set_error_cb(req, on_error);
    evhttp_request_set_header_cb(req, on_header);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char created[24];
    snprintf(created, sizeof created, "%lld", (long long)(rk_now_ms() + r->clock_offset_ms));
    evhttp_add_header(h, "Host", k->target + strlen("https://"));
    evhttp_add_header(h, "X-Renkei-Created", created);
    if (!k->get) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), k->body, k->len);
    }
    /* A connect that fails at once calls on_done inside evhttp_make_request
     * (and k is gone): nothing below may touch k. c is only ever freed from
     * the event loop (retire), so it is still there. */
    int fresh = k->fresh;
    struct event *deadline = k->deadline;
    if (evhttp_make_request(c->evcon, req, k->get ? EVHTTP_REQ_GET : EVHTTP_REQ_POST, k->path) != 0) {
        event_free(deadline); /* no callback will come, and k is still ours */
        k->deadline = NULL;
        c->closing = 1;
        give_back(c);
        return RK_ERR_UPSTREAM;
    }
    if (!fresh) /* head and body in one TLS record and one write (see send_now in reply.c) */
        evbuffer_pullup(bufferevent_get_output(evhttp_connection_get_bufferevent(c->evcon)), -1);
    if (fresh && !c->closing) { /* the socket exists once the connect started: requests go out at once */
        int one = 1;
        evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(c->evcon));
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return RK_OK;
}

rk_rc rk_relay_call(rk_relay *r, const char *method, const char *base_url, const char *pin, const char *path,
                    const char *body, size_t len, int timeout_ms, rk_relay_done_fn done, void *arg)
{
    return rk_relay_call_capped(r, method, base_url, pin, path, body, len, timeout_ms, RK_CLIENT_MAX_RESPONSE, done,
                                arg);
}

rk_rc rk_relay_call_capped(rk_relay *r, const char *method, const char *base_url, const char *pin, const char *path,
                           const char *body, size_t len, int timeout_ms, size_t max_response, rk_relay_done_fn done,
                           void *arg)
{
    int get = strcmp(method, "GET") == 0;
    if (!get && strcmp(method, "POST") != 0)
        return RK_ERR_INVALID;
    if (get)
        len = 0;
    if (r->freeing)
        return RK_ERR_UPSTREAM;
    if (strlen(base_url) >= RK_URL_MAX || strlen(path) >= RK_URL_MAX || (pin && strlen(pin) >= RK_PIN_LEN))
        return RK_ERR_INVALID;
    call *k = calloc(1, sizeof *k);
    if (!k || !(k->body = malloc(len ? len : 1))) {
        free(k);
        return RK_ERR_NOMEM;
    }
    if (len)
        memcpy(k->body, body, len);
    k->len = len;
    k->get = get;
    k->r = r;
    k->done = done;
    k->arg = arg;
    k->timeout_ms = timeout_ms;
    k->max_response = max_response ? max_response : RK_CLIENT_MAX_RESPONSE;
    k->deadline_ms = rk_mono_ms() + timeout_ms;
    snprintf(k->target, sizeof k->target, "%s", base_url);
    snprintf(k->pin, sizeof k->pin, "%s", pin ? pin : "");
    snprintf(k->path, sizeof k->path, "%s", path);
    k->busy_next = r->busy;
    if (r->busy)
        r->busy->busy_prev = k;
    r->busy = k;
    rk_rc rc = start_call(k);
    if (rc != RK_OK)
        call_free(k);
    return rc;
}
