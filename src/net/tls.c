/* tls.c — the TLS side of the listener: the SSL_CTX (TLS 1.3 only, a client certificate of the network CA
 * required), refused handshakes counted, a connection kept on its SSL object, and its peer's certificate. */
#include <netinet/tcp.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "crypto/card.h"
#include "crypto/pki.h"
#include "lib/log.h"
#include "net/revocation.h"
#include "net/server_internal.h"

/* Slots on every SSL object: its peer's certificate fingerprint (once
 * computed; a copy, freed with it) and the connection. */
static int ssl_peer_index = -1, ssl_conn_index = -1;
static pthread_once_t ssl_index_once = PTHREAD_ONCE_INIT;

static void free_conn_ex(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (ptr)
        conn_release(ptr);
}

static void free_fingerprint_ex(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    free(ptr);
}

static void make_ssl_index(void)
{
    ssl_peer_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_fingerprint_ex);
    ssl_conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_conn_ex);
}

/* Once per process: the SSL objects' slots for their connection and peer. */
void tls_init(void)
{
    pthread_once(&ssl_index_once, make_ssl_index);
}

int tls_set_conn(SSL *ssl, conn *c)
{
    return SSL_set_ex_data(ssl, ssl_conn_index, c);
}

conn *conn_of_ssl(const SSL *ssl)
{
    return ssl_conn_index >= 0 ? SSL_get_ex_data(ssl, ssl_conn_index) : NULL;
}

int fd_peer_address(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&sa, &len) != 0)
        return 0;
    if (sa.ss_family == AF_INET)
        return inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, out, (socklen_t)outlen) != NULL;
    if (sa.ss_family == AF_INET6)
        return inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, out, (socklen_t)outlen) != NULL;
    return 0;
}

static void peer_address(const SSL *ssl, char *out, size_t outlen)
{
    if (!fd_peer_address(SSL_get_fd(ssl), out, outlen))
        snprintf(out, outlen, "unknown address");
}

static void on_tls_info(const SSL *ssl, int where, int ret)
{
    if (where & SSL_CB_HANDSHAKE_DONE) {
        conn *c = conn_of_ssl(ssl);
        if (c)
            conn_handshake_done(c);
    }
    /* A fatal alert we send during the handshake is a refused peer: no
     * certificate, a certificate from another CA, an expired one. */
    if ((where & SSL_CB_WRITE_ALERT) && (ret >> 8) == SSL3_AL_FATAL && !SSL_is_init_finished(ssl)) {
        rk_server *srv = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
        if (srv) {
            char addr[64];
            count(&srv->tls_refusals);
            peer_address(ssl, addr, sizeof addr);
            note_refusal(srv, addr, "TLS handshake");
        }
    }
}

rk_rc make_ssl_ctx(rk_server *srv, X509 *cert, EVP_PKEY *key, SSL_CTX **out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return RK_ERR_CRYPTO;
    SSL_CTX_set_app_data(ctx, srv);
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        SSL_CTX_use_certificate(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1 ||
        SSL_CTX_load_verify_locations(ctx, srv->cfg.ca_path, NULL) != 1) {
        rk_error("tls: cannot set up server context: %s", ERR_reason_error_string(ERR_get_error()));
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return RK_ERR_CRYPTO;
    }
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    /* 第5-2(2): a certificate the network CA revoked is refused in the handshake */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, rk_revocation_verify);
    SSL_CTX_set_verify_depth(ctx, 2);
    SSL_CTX_set_info_callback(ctx, on_tls_info);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"renkei", 6);
    *out = ctx;
    return RK_OK;
}

/* DESIGN §3: persons reach the portal with a card of the card CA, checked
 * against the card CRL in force (the store's lookup, crypto/card.h) at every
 * handshake: no session is resumed, so a revoked card is refused at its
 * next connection. */
rk_rc make_person_ctx(rk_server *srv, X509 *cert, EVP_PKEY *key, SSL_CTX **out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return RK_ERR_CRYPTO;
    SSL_CTX_set_app_data(ctx, srv);
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        SSL_CTX_use_certificate(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        rk_error("tls: cannot set up the person listener: %s", ERR_reason_error_string(ERR_get_error()));
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return RK_ERR_CRYPTO;
    }
    SSL_CTX_set1_cert_store(ctx, srv->cfg.person_store);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth(ctx, 1);
    SSL_CTX_set_info_callback(ctx, on_tls_info);
    *out = ctx;
    return RK_OK;
}

int connection_person(struct evhttp_request *req, rk_peer_node *out)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    memset(out, 0, sizeof *out);
    if (!cert || SSL_get_verify_result(ssl) != X509_V_OK || rk_card_serial_of(cert, out->id) != RK_OK)
        return 0;
    out->role = RK_ROLE_PERSON;
    return 1;
}

/* The registered node behind this connection's client certificate, as the
 * registry in force has it at this request: the certificate's fingerprint
 * is computed once per connection and kept on the SSL object; no pointer
 * into a registry snapshot is kept, so a connection may outlive the snapshot
 * it was first looked up in (node/registry_refresh.c frees replaced ones). */
const rk_peer_node *connection_peer(rk_server *srv, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (!ssl)
        return NULL;
    const char *fp = SSL_get_ex_data(ssl, ssl_peer_index);
    X509 *cert = SSL_get0_peer_certificate(ssl);
    /* a connection (or a resumed session) older than the CRL in force */
    if (cert && rk_revocation_is_revoked(cert))
        return NULL;
    const rk_registry *reg = __atomic_load_n(&srv->cfg.registry, __ATOMIC_ACQUIRE);
    if (fp)
        return rk_registry_by_fingerprint(reg, fp);
    /* First request on this connection: answers go out at once (no Nagle
     * delay waiting for the peer's delayed ACK). */
    int one = 1, fd = (int)bufferevent_getfd(bev);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char mine[RK_FINGERPRINT_LEN];
    if (!cert || SSL_get_verify_result(ssl) != X509_V_OK || rk_pki_fingerprint(cert, mine) != RK_OK)
        return NULL;
    char *kept = strdup(mine);
    if (kept && SSL_set_ex_data(ssl, ssl_peer_index, kept) != 1)
        free(kept);
    return rk_registry_by_fingerprint(reg, mine);
}
