#include "node/node.h"
#include "crypto/keys.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>
#include <event2/thread.h>

#include <openssl/crypto.h>

#include "crypto/cms.h"
#include "net/http_relay.h"
#include "node/incidents.h"
#include "lib/log.h"
#include "lib/util.h"
#include "net/peer_certs.h"
#include "net/revocation.h"
#include "crypto/pki.h"

/* Connections are file descriptors: each started request may hold one
 * onward (the relay keeps up to 1024 idle), besides the ones it
 * serves. The soft limit (often 1024) is raised towards the hard one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    rlim_t want = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rk_debug("the file descriptor limit stays as it was");
}

/* The network CA's CRL in force (net/revocation.h): every CRL must be
 * signed by the CA this node trusts; the file [node] crl names, if any. */
static rk_rc node_crl_open(rk_node *node, char *err, size_t errlen)
{
    X509 *ca = NULL;
    rk_rc rc = rk_pki_load_cert(node->cfg.ca, &ca);
    if (rc == RK_OK)
        rc = rk_revocation_set_ca(ca);
    X509_free(ca);
    if (rc != RK_OK) {
        snprintf(err, errlen, "%s: cannot load the network CA", node->cfg.ca);
        return rc;
    }
    if (node->cfg.crl[0] && (rc = rk_revocation_load_file(node->cfg.crl)) != RK_OK) {
        snprintf(err, errlen, "%s: not a CRL of the network CA: %s", node->cfg.crl, rk_strerror(rc));
        return rc;
    }
    return RK_OK;
}

rk_rc rk_node_open(const char *config_path, rk_role role, rk_node *node, char *err, size_t errlen)
{
    /* A node's event bases are woken from other threads (the calls loop,
     * the store's committer): libevent's locking is on before any is made. */
    static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
    pthread_once(&evthread_once, (void (*)(void))evthread_use_pthreads);
    /* A peer that closes while we write is an error of that call, not the
     * end of the node: from the first call on, before the server runs. */
    signal(SIGPIPE, SIG_IGN);
    memset(node, 0, sizeof *node);
    pthread_mutex_init(&node->clock_lock, NULL);
    pthread_cond_init(&node->clock_wake, NULL);
    rk_rc rc = rk_config_load(config_path, &node->cfg, err, errlen);
    if (rc != RK_OK)
        return rc;
    rk_log_init(node->cfg.id, (rk_log_level)node->cfg.log_level, (rk_log_format)node->cfg.log_format);
    raise_fd_limit();
    /* 第5-2(5): private keys and CMS plaintext on a locked, cleansed heap
     * where the system allows it (OpenSSL falls back to the normal heap). */
    if (!CRYPTO_secure_malloc_initialized() && CRYPTO_secure_malloc_init(1 << 20, 32) != 1)
        rk_debug("no secure heap: keys stay on the normal heap, still cleansed on free");
    if ((rc = rk_node_registry_open(node, err, errlen)) != RK_OK)
        return rc;
    node->self = rk_registry_by_id(node->registry, node->cfg.id);
    if (!node->self || node->self->role != role) {
        snprintf(err, errlen, "node %s is not registered in %s as a %s node", node->cfg.id, node->cfg.network,
                 rk_role_name(role));
        return RK_ERR_CONFIG;
    }
    if ((rc = rk_pki_load_cert(node->cfg.cert, &node->cert)) != RK_OK) {
        snprintf(err, errlen, "%s: cannot load certificate: %s", node->cfg.cert, rk_strerror(rc));
        return rc;
    }
    /* A file or a pkcs11: URI (crypto/keys.h); err says why, in one line. */
    if ((rc = rk_pkey_load(node->cfg.key, node->cfg.key_passphrase_file, &node->key, err, errlen)) != RK_OK)
        return rc;
    char fp[RK_FINGERPRINT_LEN];
    if ((rc = rk_pki_fingerprint(node->cert, fp)) != RK_OK || strcmp(fp, node->self->fingerprint) != 0) {
        snprintf(err, errlen, "%s: certificate is not the one registered for %s", node->cfg.cert, node->cfg.id);
        return RK_ERR_CONFIG;
    }
    if (X509_check_private_key(node->cert, node->key) != 1) {
        snprintf(err, errlen, "%s: key does not match the certificate", node->cfg.key);
        return RK_ERR_CONFIG;
    }
    if ((rc = rk_pki_cert_to_pem(node->cert, &node->cert_pem)) != RK_OK ||
        (rc = rk_ca_store_load(node->cfg.ca, &node->trusted)) != RK_OK ||
        /* room for the nodes that join while it runs (DESIGN §3) */
        (rc = rk_peer_certs_new(node->trusted, 2 * node->registry->n_nodes + 256, &node->peer_certs)) != RK_OK) {
        snprintf(err, errlen, "%s: cannot load the network CA", node->cfg.ca);
        return rc;
    }
    node->first_identity = (rk_identity){.cert = node->cert, .key = node->key, .cert_pem = node->cert_pem};
    snprintf(node->first_identity.fingerprint, sizeof node->first_identity.fingerprint, "%s", fp);
    node->identity = &node->first_identity;
    return node_crl_open(node, err, errlen);
}

static void calls_stop(rk_node *node);
static void calls_give_up(rk_node *node);

void rk_node_close(rk_node *node)
{
    calls_stop(node);
    EVP_PKEY_free(node->key); /* OpenSSL cleanses private key material on free */
    X509_free(node->cert);
    for (rk_identity *id = node->identity, *before; id && id != &node->first_identity; id = before) {
        before = id->before; /* the renewed ones; the first is the fields above */
        EVP_PKEY_free(id->key);
        X509_free(id->cert);
        free(id->cert_pem);
        free(id);
    }
    free(node->cert_pem);
    rk_peer_certs_free(node->peer_certs);
    X509_STORE_free(node->trusted);
    rk_node_registry_close(node);
    rk_revocation_reset();
    pthread_mutex_destroy(&node->clock_lock);
    pthread_cond_destroy(&node->clock_wake);
    memset(node, 0, sizeof *node);
}

/* The event loop this thread runs — the server's from rk_node_serve, the
 * calls loop's from its first call — until rk_node_calls_close: there
 * rk_node_raise commits through rk_db_write_later instead of waiting. */
static __thread struct event_base *tl_loop;

static void on_server_incident(void *ctx, const char *kind, const char *summary);

static void node_server_config(const rk_node *node, rk_server_config *sc)
{
    sc->cert = rk_node_identity(node)->cert;
    sc->key = rk_node_identity(node)->key;
    sc->ca_path = node->cfg.ca;
    sc->registry = node->registry;
    sc->agency = node->self->agency;
    sc->workers = node->cfg.workers;
    sc->max_body = node->cfg.max_body;
    sc->clock_offset_ms = node->cfg.clock_offset_ms;
    sc->max_skew_ms = node->cfg.clock_max_skew_ms;
    sc->on_incident = on_server_incident;
    sc->incident_ctx = (void *)node;
    sc->refusal_threshold = node->cfg.refusal_threshold;
    sc->refusal_window_ms = node->cfg.refusal_window_ms;
}

rk_rc rk_node_serve(rk_node *node, const rk_server_config *role)
{
    rk_server_config sc = *role;
    node_server_config(node, &sc);
    rk_server *srv = NULL;
    rk_rc rc = rk_server_new(&sc, &srv);
    if (rc == RK_OK)
        rc = rk_node_listen(node, srv);
    if (rc == RK_OK)
        rc = rk_node_registry_start(node, srv);
    if (rc == RK_OK) {
        /* this thread runs the loop from now: an incident raised on it (a
         * refusal, a handler's) commits without waiting (rk_node_raise) */
        tl_loop = rk_server_base(srv);
        rc = rk_server_run(srv);
    }
    pthread_mutex_lock(&node->registry_lock); /* the refresh thread may swap no more into it */
    node->server = NULL;
    pthread_mutex_unlock(&node->registry_lock);
    rk_server_free(srv);
    return rc;
}

void rk_node_stop_services(rk_node *node)
{
    calls_give_up(node);
    rk_node_registry_stop(node);
    rk_node_clock_stop(node);
    rk_node_incidents_stop(node);
}

rk_rc rk_node_listen(const rk_node *node, rk_server *srv)
{
    rk_rc rc = RK_OK;
    if (node->self->person_url[0] && (rc = rk_server_listen_persons(srv, node->self->person_url)) != RK_OK)
        return rc;
    if (!node->cfg.listen[0]) {
        rc = rk_server_listen(srv, node->self->url);
        if (rc == RK_OK && node->self->backup_url[0])
            rc = rk_server_listen(srv, node->self->backup_url);
        return rc;
    }
    char list[RK_PATH_MAX];
    snprintf(list, sizeof list, "%s", node->cfg.listen);
    char *save = NULL;
    for (char *url = strtok_r(list, ", ", &save); url && rc == RK_OK; url = strtok_r(NULL, ", ", &save))
        rc = rk_server_listen(srv, url);
    return rc;
}

/* ---------- lines: where a call to a peer may go ---------- */

/* Line k of a call that starts at instance `first`: its url, its backup
 * url (第7-1(7)), then the next instance's, round the ring of a core's
 * instances (DESIGN §6); *on the node it reaches. 0 when there is no line k. */
static int line_of(const rk_peer_node *first, int k, const char **url, const rk_peer_node **on)
{
    const rk_peer_node *p = first;
    do {
        *on = p;
        if (k == 0) {
            *url = p->url;
            return 1;
        }
        k--;
        if (p->backup_url[0]) {
            if (k == 0) {
                *url = p->backup_url;
                return 1;
            }
            k--;
        }
        p = p->next_instance;
    } while (p && p != first);
    return 0;
}

/* The instance a call starts at: of several, each in turn, so that callers
 * spread over them — except at J-LIS, whose primary line is the first and
 * whose backup line the next (第7-1(7)). */
static const rk_peer_node *first_line_node(rk_node *node, const rk_peer_node *peer)
{
    /* a role may hold an entry of an earlier registry (its core, its gateway, from
     * its start): the call goes to that node as the registry in force names it
     * now — its url and the pin of its key after a renewal (DESIGN §3) */
    const rk_registry *reg = __atomic_load_n(&node->registry, __ATOMIC_ACQUIRE);
    const rk_peer_node *now = reg ? rk_registry_by_id(reg, peer->id) : NULL;
    if (now)
        peer = now;
    if (!peer->next_instance || node->self->role == RK_ROLE_JLIS)
        return peer;
    unsigned n = 1;
    for (const rk_peer_node *p = peer->next_instance; p && p != peer; p = p->next_instance)
        n++;
    unsigned turn = __atomic_fetch_add(&node->instance_turn, 1, __ATOMIC_RELAXED) % n;
    while (turn--)
        peer = peer->next_instance;
    return peer;
}

/* 第7-1(7): the next line after no answer or a 5xx — not after a timeout
 * (the peer may be working on it, and a second copy on the other line could
 * take effect twice), nor after an answer over the cap (the other line
 * would send it too). When it says yes, the failed line's answer is dropped. */
static int to_next_line(const rk_peer_node *first, int line, rk_rc rc, rk_http_result *res)
{
    const char *failed, *next;
    const rk_peer_node *from, *to;
    if (rc == RK_ERR_TIMEOUT || rc == RK_ERR_TOO_LARGE || (rc == RK_OK && res->status < 500) ||
        !line_of(first, line, &failed, &from) || !line_of(first, line + 1, &next, &to))
        return 0;
    const char *why = rc == RK_OK ? "5xx answer" : rk_strerror(rc);
    if (to == from)
        rk_warn("%s primary line failed (%s); trying the backup line", from->id, why);
    else
        rk_warn("%s failed (%s); trying the instance %s", from->id, why, to->id);
    if (res->body)
        rk_wipe(res->body, res->body_len);
    rk_http_result_clear(res);
    return 1;
}


/* One call of rk_node_post_later, until done is told. */
typedef struct later_call {
    rk_node *node;
    const char *method, *path, *body;
    size_t len;
    const rk_peer_node *first; /* the instance it started at (first_line_node) */
    int line;                  /* the line it is on: 0, then the next after a failure (line_of) */
    size_t max_response;       /* 0: the relay's default cap */
    rk_node_post_done_fn done;
    void *arg;
    struct event_base *base;    /* the loop, for the relay made at the first call */
} later_call;

static void send_later(later_call *c);

static void later_answered(void *arg, rk_rc rc, rk_http_result *res)
{
    later_call *c = arg;
    if (to_next_line(c->first, c->line, rc, res)) {
        c->line++;
        send_later(c);
        return;
    }
    rk_node_post_done_fn done = c->done;
    void *done_arg = c->arg;
    res->backup_line = c->line > 0;
    free(c);
    done(done_arg, rc, res);
}

static rk_relay **relay_of(rk_node *node, struct event_base *base, int **closed);

static void send_later(later_call *c)
{
    rk_node *node = c->node;
    int *closed;
    rk_relay **relay = relay_of(node, c->base, &closed);
    rk_rc rc = RK_OK;
    /* a call its relay's end failed (rk_relay_free tells every call in
     * flight) goes to no next line: a relay made now would outlive the loop */
    if (__atomic_load_n(closed, __ATOMIC_ACQUIRE))
        rc = RK_ERR_UPSTREAM;
    else if (!*relay) { /* with the certificate in force (a renewal replaces it, registry_refresh.c) */
        pthread_mutex_lock(&node->registry_lock);
        const rk_identity *me = node->identity;
        rc = rk_relay_new(c->base, me->cert, me->key, node->cfg.ca, node->cfg.clock_offset_ms, relay);
        pthread_mutex_unlock(&node->registry_lock);
    }
    const char *url = NULL;
    const rk_peer_node *on = NULL;
    if (rc == RK_OK && !line_of(c->first, c->line, &url, &on))
        rc = RK_ERR_CONFIG;
    if (rc == RK_OK)
        rc = rk_relay_call_capped(*relay, c->method, url, on->pin, c->path, c->body, c->len,
                                  node->cfg.peer_timeout_ms, c->max_response, later_answered, c);
    if (rc != RK_OK) { /* not sent: as an unreachable peer */
        rk_http_result none = {0};
        later_answered(c, RK_ERR_UPSTREAM, &none);
    }
}

static void call_later_capped(rk_node *node, struct event_base *base, const char *method, const rk_peer_node *peer,
                              const char *path, const char *body, size_t len, size_t max_response,
                              rk_node_post_done_fn done, void *arg);

void rk_node_call_later(rk_node *node, struct event_base *base, const char *method, const rk_peer_node *peer,
                        const char *path, const char *body, size_t len, rk_node_post_done_fn done, void *arg)
{
    call_later_capped(node, base, method, peer, path, body, len, 0, done, arg);
}

static void call_later_capped(rk_node *node, struct event_base *base, const char *method, const rk_peer_node *peer,
                              const char *path, const char *body, size_t len, size_t max_response,
                              rk_node_post_done_fn done, void *arg)
{
    tl_loop = base;
    later_call *c = calloc(1, sizeof *c);
    if (!c) {
        rk_http_result none = {0};
        done(arg, RK_ERR_NOMEM, &none);
        return;
    }
    *c = (later_call){.node = node, .method = method, .path = path, .body = body, .len = len,
                      .first = first_line_node(node, peer), .done = done, .arg = arg, .base = base,
                      .max_response = max_response};
    send_later(c);
}

void rk_node_post_later(rk_node *node, struct event_base *base, const rk_peer_node *peer, const char *path,
                        const char *body, size_t len, rk_node_post_done_fn done, void *arg)
{
    rk_node_call_later(node, base, "POST", peer, path, body, len, done, arg);
}

/* ---------- the calls loop: calls from threads that are not a loop ----------
 *
 * A background service (the notice deliverers, the incident reporter, the
 * clock watcher) waits for its call; the call itself is made on this
 * node's calls loop, a thread of its own with its own relay, by the same
 * code as a step of a flow. The loop starts at the first such call and
 * stops when the node closes, after the services that use it. */

typedef struct node_calls node_calls;

/* One call of a waiting thread. Owned by the calls loop once queued; the
 * waiter and the answer meet under nc->lock, and whichever comes second
 * frees it: the waiter normally, the answer when the waiter gave up (the
 * node is stopping). It keeps its own copy of path and body, since a
 * failover sends the body again after the waiter may have gone. */
typedef struct waiting_call {
    node_calls *nc;
    const char *method;
    const rk_peer_node *peer;
    char path[RK_URL_MAX];
    char *body;
    size_t max_response;
    rk_http_result res;
    rk_rc rc;
    int done, abandoned;
    struct waiting_call *next;
} waiting_call;

struct node_calls {
    rk_node *node;
    struct event_base *base;
    struct event *wake;           /* something was queued */
    rk_relay *relay;
    int relay_closed;             /* the loop ended (calls_stop): no relay is made again */
    pthread_t thread;
    pthread_mutex_t lock;         /* the queue, the calls' done and abandoned flags, stopping */
    pthread_cond_t answered;
    waiting_call *head, *tail;
    int stopping;                 /* waiters give up at once */
};

/* Guards starting the calls loop (node->calls is set once). */
static pthread_mutex_t calls_start_lock = PTHREAD_MUTEX_INITIALIZER;

static rk_relay **relay_of(rk_node *node, struct event_base *base, int **closed)
{
    node_calls *nc = node->calls && node->calls->base == base ? node->calls : NULL;
    *closed = nc ? &nc->relay_closed : &node->relay_closed;
    return nc ? &nc->relay : &node->relay;
}

static void waiting_call_free(waiting_call *w)
{
    if (w->body) {
        rk_wipe(w->body, strlen(w->body)); /* may carry a My Number (J-LIS's relay) */
        free(w->body);
    }
    if (w->res.body)
        rk_wipe(w->res.body, w->res.body_len);
    rk_http_result_clear(&w->res);
    free(w);
}

/* On the calls loop: the answer, to the thread that waits (or, when it gave
 * up, nowhere). */
static void call_answered(void *arg, rk_rc rc, rk_http_result *res)
{
    waiting_call *w = arg;
    node_calls *nc = w->nc;
    pthread_mutex_lock(&nc->lock);
    w->res = *res; /* the body moves to the call */
    w->rc = rc;
    w->done = 1;
    int abandoned = w->abandoned;
    pthread_cond_broadcast(&nc->answered);
    pthread_mutex_unlock(&nc->lock);
    if (abandoned)
        waiting_call_free(w);
}

/* On the calls loop: sends everything queued. */
static void calls_wake(evutil_socket_t fd, short what, void *arg)
{
    node_calls *nc = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&nc->lock);
    waiting_call *w = nc->head;
    nc->head = nc->tail = NULL;
    pthread_mutex_unlock(&nc->lock);
    while (w) {
        waiting_call *next = w->next; /* w may be answered, and gone, at once */
        call_later_capped(nc->node, nc->base, w->method, w->peer, w->path, w->body, w->body ? strlen(w->body) : 0,
                          w->max_response, call_answered, w);
        w = next;
    }
}

static void *calls_main(void *arg)
{
    node_calls *nc = arg;
    event_base_loop(nc->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void calls_break(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static node_calls *calls_start(rk_node *node)
{
    pthread_mutex_lock(&calls_start_lock);
    node_calls *nc = node->calls;
    if (!nc && (nc = calloc(1, sizeof *nc))) {
        nc->node = node;
        pthread_mutex_init(&nc->lock, NULL);
        pthread_cond_init(&nc->answered, NULL);
        if (!(nc->base = event_base_new()) || !(nc->wake = event_new(nc->base, -1, 0, calls_wake, nc)) ||
            pthread_create(&nc->thread, NULL, calls_main, nc) != 0) {
            if (nc->wake)
                event_free(nc->wake);
            if (nc->base)
                event_base_free(nc->base);
            pthread_mutex_destroy(&nc->lock);
            pthread_cond_destroy(&nc->answered);
            free(nc);
            nc = NULL;
        } else {
            node->calls = nc;
        }
    }
    pthread_mutex_unlock(&calls_start_lock);
    return nc;
}

/* From rk_node_stop_services: threads waiting for a call stop waiting (the
 * call goes on and its answer is dropped), so that no service's stop waits
 * for a peer's timeout; later calls fail at once. */
static void calls_give_up(rk_node *node)
{
    /* made now when no call was made yet, so that a service's first call
     * after this fails at once too (calls_stop ends it) */
    node_calls *nc = calls_start(node);
    if (!nc)
        return;
    pthread_mutex_lock(&nc->lock);
    nc->stopping = 1;
    pthread_cond_broadcast(&nc->answered);
    pthread_mutex_unlock(&nc->lock);
}

/* After every thread that calls has stopped (rk_node_close). Calls still
 * under way end with the loop: their relay is freed with it. */
static void calls_stop(rk_node *node)
{
    node_calls *nc = node->calls;
    if (!nc)
        return;
    event_base_once(nc->base, -1, EV_TIMEOUT, calls_break, nc->base, NULL);
    pthread_join(nc->thread, NULL);
    pthread_mutex_lock(&node->registry_lock);
    rk_relay *relay = nc->relay;
    nc->relay = NULL;
    __atomic_store_n(&nc->relay_closed, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&node->registry_lock);
    rk_relay_free(relay);
    /* queued but never sent: no one waits for them any more */
    for (waiting_call *w = nc->head, *next; w; w = next) {
        next = w->next;
        waiting_call_free(w);
    }
    event_free(nc->wake);
    event_base_free(nc->base);
    pthread_mutex_destroy(&nc->lock);
    pthread_cond_destroy(&nc->answered);
    free(nc);
    node->calls = NULL;
}

rk_rc rk_node_call(rk_node *node, const char *method, const rk_peer_node *peer, const char *path, const char *body,
                   rk_http_result *out, int *used_backup)
{
    return rk_node_call_capped(node, method, peer, path, body, 0, out, used_backup);
}

rk_rc rk_node_call_capped(rk_node *node, const char *method, const rk_peer_node *peer, const char *path,
                          const char *body, size_t max_response, rk_http_result *out, int *used_backup)
{
    memset(out, 0, sizeof *out);
    if (used_backup)
        *used_backup = 0;
    node_calls *nc = calls_start(node);
    waiting_call *w = nc && strlen(path) < RK_URL_MAX ? calloc(1, sizeof *w) : NULL;
    if (!w || (body && !(w->body = strdup(body)))) {
        free(w);
        return nc ? RK_ERR_NOMEM : RK_ERR_UPSTREAM;
    }
    *w = (waiting_call){.nc = nc, .method = method, .peer = peer, .body = w->body, .max_response = max_response};
    snprintf(w->path, sizeof w->path, "%s", path);
    pthread_mutex_lock(&nc->lock);
    if (nc->stopping) {
        pthread_mutex_unlock(&nc->lock);
        waiting_call_free(w);
        return RK_ERR_UPSTREAM;
    }
    if (nc->tail)
        nc->tail->next = w;
    else
        nc->head = w;
    nc->tail = w;
    event_active(nc->wake, EV_TIMEOUT, 0); /* thread-safe: the base wakes */
    while (!w->done && !nc->stopping)
        pthread_cond_wait(&nc->answered, &nc->lock);
    if (!w->done) { /* the node is stopping: the answer will free it */
        w->abandoned = 1;
        pthread_mutex_unlock(&nc->lock);
        return RK_ERR_UPSTREAM;
    }
    pthread_mutex_unlock(&nc->lock);
    *out = w->res;
    w->res = (rk_http_result){0};
    if (used_backup)
        *used_backup = out->backup_line;
    rk_rc rc = w->rc;
    waiting_call_free(w);
    return rc;
}

rk_rc rk_node_post(rk_node *node, const rk_peer_node *peer, const char *path, const char *body,
                   rk_http_result *out, int *used_backup)
{
    return rk_node_call(node, "POST", peer, path, body, out, used_backup);
}

void rk_node_relays_set_identity(rk_node *node, X509 *cert, EVP_PKEY *key)
{
    node_calls *nc = __atomic_load_n(&node->calls, __ATOMIC_ACQUIRE);
    rk_relay *relays[2] = {node->relay, nc ? nc->relay : NULL};
    for (int i = 0; i < 2; i++)
        if (relays[i] && rk_relay_set_identity(relays[i], cert, key) != RK_OK)
            rk_warn("a relay keeps the old certificate: its TLS context could not be made");
}

void rk_node_calls_close(rk_node *node)
{
    /* Incidents raised on this loop: committed, and their callbacks run,
     * before the loop goes. */
    tl_loop = NULL;
    if (node->incident_db)
        rk_db_loop_end(node->incident_db);
    pthread_mutex_lock(&node->registry_lock);
    rk_relay *relay = node->relay;
    node->relay = NULL;
    __atomic_store_n(&node->relay_closed, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&node->registry_lock);
    rk_relay_free(relay);
}

/* One node runs per process: the role the run loop serves. */
static const rk_role_desc *running;

static rk_node *node_of(void *app)
{
    return *(rk_node **)app; /* every role's state begins with its node */
}

static int role_health(void *app, json_t *checks)
{
    int degraded = 0;
    if (running->store) {
        int writable = rk_db_writable(running->store(app));
        json_object_set_new(checks, "store_writable", json_boolean(writable));
        degraded |= !writable;
    }
    if (running->health)
        degraded |= running->health(app, checks) != 0;
    return rk_node_health(node_of(app), checks) || degraded;
}

/* Any thread: the role's database is absent (server.c then answers its
 * store errors 503 store_unavailable). */
static int role_store_lost(void *app)
{
    return running->store && rk_db_lost(running->store(app));
}

/* On the loop as it ends: its calls, and its commits, are over. */
static void role_loop_end(void *app)
{
    rk_node_calls_close(node_of(app));
    if (running->store)
        rk_db_loop_end(running->store(app));
}

/* SIGHUP: the CRL file again (a bad or older one is refused, the one in
 * force kept), the registry fetched at once (DESIGN §3; a newer CRL beside
 * it applies too), then the role's own reload. */
static void role_reload(void *app)
{
    rk_node *node = node_of(app);
    __atomic_store_n(&node->identity_recheck, 1, __ATOMIC_RELAXED); /* a renewed certificate's files again */
    rk_node_registry_wake(node);
    if (node->cfg.crl[0]) {
        rk_rc rc = rk_revocation_load_file(node->cfg.crl);
        if (rc == RK_OK)
            rk_info("crl: number %llu in force", (unsigned long long)rk_revocation_number());
        else
            rk_warn("crl: %s refused (%s); number %llu stays in force", node->cfg.crl, rk_strerror(rc),
                    (unsigned long long)rk_revocation_number());
    }
    if (running->on_reload)
        running->on_reload(app);
}

static rk_rc role_run(const rk_role_desc *d, rk_node *node)
{
    void *app = calloc(1, d->app_size);
    if (!app)
        return RK_ERR_NOMEM;
    *(rk_node **)app = node;
    running = d;
    rk_rc rc = d->open(node, app);
    if (rc == RK_OK) {
        rk_server_config sc = {.routes = d->routes, .n_routes = d->n_routes, .app = app, .health = role_health,
                               .store_lost = role_store_lost,
                               .metrics = d->metrics, .on_reload = role_reload, .on_stop = role_loop_end,
                               .person_routes = d->person_routes, .n_person_routes = d->n_person_routes,
                               .person_store = d->person_store ? d->person_store(app) : NULL};
        rc = rk_node_serve(node, &sc);
    }
    calls_give_up(node); /* the role's threads stop without waiting for a peer */
    if (d->stop)
        d->stop(app);
    rk_node_stop_services(node);
    d->close(app);
    free(app);
    return rc;
}

int rk_role_main(const rk_role_desc *role, int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *name = rk_role_name(role->role), *config = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (opt == 'c')
            config = optarg;
        else if (opt == 'h') {
            printf("usage: renkei %s --config FILE\n  Runs the %s node described by FILE until SIGINT/SIGTERM.\n",
                   name, name);
            return 0;
        } else
            return 2;
    }
    if (!config) {
        fprintf(stderr, "renkei %s: --config FILE is required\n", name);
        return 2;
    }
    rk_node node;
    char err[512] = "";
    rk_rc rc = rk_node_open(config, role->role, &node, err, sizeof err);
    if (rc != RK_OK) {
        fprintf(stderr, "renkei %s: %s\n", name, err);
        rk_node_close(&node);
        return 1;
    }
    rc = role_run(role, &node);
    rk_node_close(&node);
    if (rc == RK_ERR_UNAVAILABLE) /* the database unreachable at start: the store's one line said where and why */
        return 1;
    if (rc != RK_OK) {
        fprintf(stderr, "renkei %s: stopped on error: %s\n", name, rk_strerror(rc));
        return 1;
    }
    return 0;
}

/* ---------- time (第6-8) ---------- */

int64_t rk_node_now_ms(const rk_node *node)
{
    return rk_now_ms() + node->cfg.clock_offset_ms;
}

static void measure_clock(rk_node *node, const rk_peer_node *core)
{
    rk_http_result res = {0};
    int64_t t0 = rk_node_now_ms(node);
    rk_rc rc = rk_node_call(node, "GET", core, "/healthz", NULL, &res, NULL);
    int64_t t1 = rk_node_now_ms(node);
    if (rc == RK_OK && res.peer_time_ms > 0) {
        int64_t offset = res.peer_time_ms - (t0 + t1) / 2;
        int64_t abs_offset = offset < 0 ? -offset : offset;
        int degraded = abs_offset > node->cfg.clock_max_offset_ms;
        pthread_mutex_lock(&node->clock_lock);
        int was = node->clock_degraded;
        node->clock_offset_measured_ms = offset;
        node->clock_measured_at_ms = t1;
        node->clock_degraded = degraded;
        pthread_mutex_unlock(&node->clock_lock);
        if (degraded && !was)
            rk_node_raise(node, "clock", "clock of %s is %lld ms off the core's (limit %d ms)", node->cfg.id,
                          (long long)offset, node->cfg.clock_max_offset_ms);
    }
    rk_http_result_clear(&res);
}

static void *clock_main(void *arg)
{
    rk_node *node = arg;
    const rk_peer_node *core = rk_registry_find(node->registry, RK_ROLE_CORE, NULL);
    pthread_mutex_lock(&node->clock_lock);
    while (!node->clock_stopping && core) {
        pthread_mutex_unlock(&node->clock_lock);
        measure_clock(node, core);
        pthread_mutex_lock(&node->clock_lock);
        rk_cond_wait_ms(&node->clock_wake, &node->clock_lock, node->cfg.clock_check_ms);
    }
    pthread_mutex_unlock(&node->clock_lock);
    return NULL;
}

rk_rc rk_node_clock_start(rk_node *node)
{
    if (node->self->role == RK_ROLE_CORE)
        return RK_OK;
    if (pthread_create(&node->clock_thread, NULL, clock_main, node) != 0)
        return RK_ERR_NOMEM;
    node->clock_running = 1;
    return RK_OK;
}

void rk_node_clock_stop(rk_node *node)
{
    if (node->clock_running) {
        pthread_mutex_lock(&node->clock_lock);
        node->clock_stopping = 1;
        pthread_cond_broadcast(&node->clock_wake);
        pthread_mutex_unlock(&node->clock_lock);
        pthread_join(node->clock_thread, NULL);
        node->clock_running = 0;
    }
}

int rk_node_health(rk_node *node, json_t *checks)
{
    json_object_set_new(checks, "keys_loaded", json_boolean(node->key != NULL));
    rk_node_registry_health(node, checks);
    if (node->self->role == RK_ROLE_CORE) {
        json_object_set_new(checks, "clock_offset_ms", json_integer(0)); /* the reference clock */
        return node->key == NULL;
    }
    pthread_mutex_lock(&node->clock_lock);
    int degraded = node->clock_degraded;
    json_t *offset = node->clock_measured_at_ms ? json_integer(node->clock_offset_measured_ms) : json_null();
    pthread_mutex_unlock(&node->clock_lock);
    json_object_set_new(checks, "clock_offset_ms", offset);
    json_object_set_new(checks, "clock_ok", json_boolean(!degraded));
    return degraded || node->key == NULL;
}

/* ---------- incidents ---------- */

rk_rc rk_node_incidents_start(rk_node *node, rk_db *db)
{
    rk_rc rc = rk_incidents_migrate(db);
    if (rc != RK_OK)
        return rc;
    node->incident_db = db;
    const rk_peer_node *to = NULL;
    if (node->self->role == RK_ROLE_AGENCY)
        to = rk_registry_find(node->registry, RK_ROLE_GATEWAY, node->self->agency);
    else if (node->self->role != RK_ROLE_CORE)
        to = rk_registry_find(node->registry, RK_ROLE_CORE, NULL);
    if (!to)
        return node->self->role == RK_ROLE_CORE ? RK_OK : RK_ERR_CONFIG;
    return rk_incident_reporter_start(node, db, to, &node->reporter);
}

void rk_node_incidents_stop(rk_node *node)
{
    rk_incident_reporter_stop(node->reporter);
    node->reporter = NULL;
}

/* On the event loop: the incident is on disk (or failed); the reporter may send it. */
static void raised(void *arg, rk_rc rc)
{
    rk_node *node = arg;
    if (rc != RK_OK)
        rk_error("an incident raised at %s could not be kept: %s", node->cfg.id, rk_strerror(rc));
    else
        rk_incident_reporter_wake(node->reporter);
}

void rk_node_raise(rk_node *node, const char *kind, const char *fmt, ...)
{
    char summary[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(summary, sizeof summary, fmt, ap);
    va_end(ap);
    if (!node->incident_db) {
        rk_warn("incident (%s) not kept, no store: %s", kind, summary);
        return;
    }
    rk_incident in = {.kind = kind, .node = node->cfg.id, .detected_ms = rk_node_now_ms(node), .summary = summary};
    int reported = node->self->role == RK_ROLE_CORE;
    /* On the event loop the commit's fsync is left to the store's committer
     * thread; elsewhere (workers, the clock thread) the write waits. */
    if (tl_loop && rk_incident_store_later(node->incident_db, tl_loop, &in, reported, raised, node) == RK_OK)
        return;
    raised(node, rk_incident_store(node->incident_db, &in, reported, 0));
}

static void on_server_incident(void *ctx, const char *kind, const char *summary)
{
    rk_node_raise(ctx, kind, "%s", summary);
}
