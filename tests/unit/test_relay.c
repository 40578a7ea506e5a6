/* Unit tests: rk_relay, calls on an event loop with no thread waiting.
 * A small TLS 1.3 server thread (plain OpenSSL) plays the peer: it answers,
 * stays silent, closes after one answer, or shows the wrong key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/http_relay.h"
#include "crypto/pki.h"

enum mode { ANSWER, SILENT, ONE_THEN_CLOSE };

typedef struct peer {
    int listen_fd, port;
    enum mode mode;
    const char *cert, *key;   /* the server's identity */
    int requests;             /* requests read */
    int connections;          /* connections accepted */
    char last_created[32];    /* X-Renkei-Created of the last request */
    pthread_t thread;
} peer;

static char dir[64], ca[128], ca_key[128], node_cert[128], node_key[128], other_cert[128], other_key[128],
    client_cert[128], client_key[128], node_pin[RK_PIN_LEN];
static X509 *client_x509;
static EVP_PKEY *client_pkey;

static void path_in(char *out, const char *name)
{
    snprintf(out, 128, "%s/%s", dir, name);
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/rk-test-relay-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    path_in(ca, "ca.pem");
    path_in(ca_key, "ca.key");
    path_in(node_cert, "node.pem");
    path_in(node_key, "node.key");
    path_in(other_cert, "other.pem");
    path_in(other_key, "other.key");
    path_in(client_cert, "client.pem");
    path_in(client_key, "client.key");
    rk_cert_spec node = {.common_name = "core", .role = "core", .name = "core", .ip = "127.0.0.1"};
    rk_cert_spec other = {.common_name = "jlis", .role = "jlis", .name = "jlis", .ip = "127.0.0.1"};
    rk_cert_spec client = {.common_name = "gw", .role = "gateway", .name = "gw"};
    X509 *n = NULL;
    if (rk_pki_create_ca(ca, ca_key, "test CA", 30) != RK_OK ||
        rk_pki_issue(ca, ca_key, &node, node_cert, node_key, NULL) != RK_OK ||
        rk_pki_issue(ca, ca_key, &other, other_cert, other_key, NULL) != RK_OK ||
        rk_pki_issue(ca, ca_key, &client, client_cert, client_key, NULL) != RK_OK ||
        rk_pki_load_cert(node_cert, &n) != RK_OK || rk_pki_spki_pin(n, node_pin) != RK_OK ||
        rk_pki_load_cert(client_cert, &client_x509) != RK_OK ||
        rk_pki_load_key(client_key, NULL, &client_pkey) != RK_OK)
        return -1;
    X509_free(n);
    return 0;
}

static int teardown(void **state)
{
    X509_free(client_x509);
    EVP_PKEY_free(client_pkey);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Reads one request (headers and a Content-Length body); 0 at EOF. */
static int read_request(SSL *ssl, peer *p)
{
    char buf[8192];
    size_t n = 0;
    for (;;) {
        int got = SSL_read(ssl, buf + n, (int)(sizeof buf - 1 - n));
        if (got <= 0)
            return 0;
        n += (size_t)got;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strstr(buf, "Content-Length: ");
        if (end && cl && n >= (size_t)(end + 4 - buf) + (size_t)atoi(cl + 16)) {
            const char *created = strstr(buf, "X-Renkei-Created: ");
            if (created)
                snprintf(p->last_created, sizeof p->last_created, "%.*s", (int)strcspn(created + 18, "\r"),
                         created + 18);
            return 1;
        }
        if (n >= sizeof buf - 1)
            return 0;
    }
}

static void serve_connection(peer *p, SSL *ssl)
{
    static const char answer[] = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                                 "X-Renkei-Time: 1234\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
    while (read_request(ssl, p)) {
        __atomic_add_fetch(&p->requests, 1, __ATOMIC_SEQ_CST);
        if (p->mode == SILENT) {
            char sink[64];
            while (SSL_read(ssl, sink, sizeof sink) > 0)
                ;
            return;
        }
        SSL_write(ssl, answer, (int)strlen(answer));
        if (p->mode == ONE_THEN_CLOSE)
            return;
    }
}

static void *peer_main(void *arg)
{
    peer *p = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_use_certificate_chain_file(ctx, p->cert);
    SSL_CTX_use_PrivateKey_file(ctx, p->key, SSL_FILETYPE_PEM);
    SSL_CTX_load_verify_locations(ctx, ca, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    for (;;) {
        int fd = accept(p->listen_fd, NULL, NULL);
        if (fd < 0)
            break;
        __atomic_add_fetch(&p->connections, 1, __ATOMIC_SEQ_CST);
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1)
            serve_connection(p, ssl);
        SSL_shutdown(ssl);
        SSL_free(ssl);
        close(fd);
    }
    SSL_CTX_free(ctx);
    return NULL;
}

static void peer_start(peer *p, enum mode mode, const char *cert, const char *key)
{
    memset(p, 0, sizeof *p);
    p->mode = mode;
    p->cert = cert;
    p->key = key;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->listen_fd >= 0);
    assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(p->listen_fd, 8), 0);
    assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&sa, &len), 0);
    p->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static void peer_stop(peer *p)
{
    shutdown(p->listen_fd, SHUT_RDWR);
    close(p->listen_fd);
    pthread_join(p->thread, NULL);
}

/* ---- one call, run to completion on a fresh event loop ---- */

typedef struct outcome {
    struct event_base *base;
    int calls;
    rk_rc rc;
    long status;
    int64_t peer_time;
    char body[64];
} outcome;

static void done(void *arg, rk_rc rc, rk_http_result *res)
{
    outcome *o = arg;
    o->calls++;
    o->rc = rc;
    o->status = res->status;
    o->peer_time = res->peer_time_ms;
    snprintf(o->body, sizeof o->body, "%s", res->body ? res->body : "");
    free(res->body);
    event_base_loopbreak(o->base);
}

static void call(rk_relay *r, outcome *o, int port, const char *pin, int timeout_ms)
{
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d", port);
    int before = o->calls;
    assert_int_equal(rk_relay_call(r, "POST", url, pin, "/v1/exchanges", "{\"a\":1}", 7, timeout_ms, done, o), RK_OK);
    while (o->calls == before)
        event_base_loop(o->base, EVLOOP_ONCE);
    assert_int_equal(o->calls, before + 1); /* exactly once */
}

static void answers_arrive_and_connections_are_kept(void **state)
{
    peer p;
    peer_start(&p, ANSWER, node_cert, node_key);
    outcome o = {.base = event_base_new()};
    rk_relay *r = NULL;
    assert_int_equal(rk_relay_new(o.base, client_x509, client_pkey, ca, 5000, &r), RK_OK);
    for (int i = 0; i < 3; i++) {
        call(r, &o, p.port, node_pin, 5000);
        assert_int_equal(o.rc, RK_OK);
        assert_int_equal(o.status, 201);
        assert_string_equal(o.body, "{\"ok\":true}");
        assert_int_equal(o.peer_time, 1234);
    }
    assert_int_equal(p.requests, 3);
    assert_int_equal(p.connections, 1); /* kept alive */
    long long created = atoll(p.last_created), now = (long long)time(NULL) * 1000;
    assert_true(created >= now + 5000 - 60000 && created <= now + 5000 + 60000); /* clock offset applied */
    rk_relay_free(r);
    event_base_free(o.base);
    peer_stop(&p);
}

static void wrong_key_is_refused_before_any_request(void **state)
{
    peer p; /* the network CA's certificate, but not the pinned key */
    peer_start(&p, ANSWER, other_cert, other_key);
    outcome o = {.base = event_base_new()};
    rk_relay *r = NULL;
    assert_int_equal(rk_relay_new(o.base, client_x509, client_pkey, ca, 0, &r), RK_OK);
    call(r, &o, p.port, node_pin, 5000);
    assert_int_equal(o.rc, RK_ERR_UPSTREAM);
    assert_int_equal(p.requests, 0);
    rk_relay_free(r);
    event_base_loop(o.base, EVLOOP_NONBLOCK); /* retired connections */
    event_base_free(o.base);
    peer_stop(&p);
}

static void silent_peer_times_out_and_closed_port_is_unreachable(void **state)
{
    peer p;
    peer_start(&p, SILENT, node_cert, node_key);
    outcome o = {.base = event_base_new()};
    rk_relay *r = NULL;
    assert_int_equal(rk_relay_new(o.base, client_x509, client_pkey, ca, 0, &r), RK_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    call(r, &o, p.port, node_pin, 300);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(o.rc, RK_ERR_TIMEOUT);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(s >= 0.25 && s < 5.0);
    peer_stop(&p);
    call(r, &o, p.port, node_pin, 2000); /* nobody listens there now */
    assert_int_equal(o.rc, RK_ERR_UPSTREAM);
    rk_relay_free(r);
    event_base_loop(o.base, EVLOOP_NONBLOCK);
    event_base_free(o.base);
}

static void a_kept_connection_the_peer_closed_is_replaced(void **state)
{
    peer p;
    peer_start(&p, ONE_THEN_CLOSE, node_cert, node_key);
    outcome o = {.base = event_base_new()};
    rk_relay *r = NULL;
    assert_int_equal(rk_relay_new(o.base, client_x509, client_pkey, ca, 0, &r), RK_OK);
    for (int i = 0; i < 3; i++) {
        call(r, &o, p.port, node_pin, 5000);
        assert_int_equal(o.rc, RK_OK);
        assert_int_equal(o.status, 201);
    }
    assert_int_equal(p.requests, 3);
    assert_int_equal(p.connections, 3);
    rk_relay_free(r);
    event_base_loop(o.base, EVLOOP_NONBLOCK);
    event_base_free(o.base);
    peer_stop(&p);
}

static void bad_arguments_are_refused(void **state)
{
    struct event_base *base = event_base_new();
    rk_relay *r = NULL;
    outcome o = {.base = base};
    assert_int_equal(rk_relay_new(base, client_x509, client_pkey, "/nonexistent/ca.pem", 0, &r), RK_ERR_CRYPTO);
    assert_int_equal(rk_relay_new(base, client_x509, client_pkey, ca, 0, &r), RK_OK);
    assert_int_equal(rk_relay_call(r, "POST", "http://127.0.0.1:1", NULL, "/", "{}", 2, 1000, done, &o), RK_ERR_INVALID);
    assert_int_equal(rk_relay_call(r, "POST", "https://127.0.0.1", NULL, "/", "{}", 2, 1000, done, &o), RK_ERR_INVALID);
    assert_int_equal(o.calls, 0);
    rk_relay_free(r);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(answers_arrive_and_connections_are_kept),
        cmocka_unit_test(wrong_key_is_refused_before_any_request),
        cmocka_unit_test(silent_peer_times_out_and_closed_port_is_unreachable),
        cmocka_unit_test(a_kept_connection_the_peer_closed_is_replaced),
        cmocka_unit_test(bad_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
