/* http_client.h — calls from one node to another (libcurl).
 *
 * Every call is HTTPS with TLS 1.3, presents this node's certificate, trusts
 * only the network CA and, when the registry gives one, pins the peer's
 * public key, so a call meant for the core reaches only the core.
 * Keep-alive: each thread keeps its own curl handle and connection cache.
 * A response larger than the cap is refused (RK_ERR_TOO_LARGE). */
#ifndef RK_HTTP_CLIENT_H
#define RK_HTTP_CLIENT_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"

#define RK_CLIENT_MAX_RESPONSE (8u << 20)

typedef struct rk_client rk_client;

typedef struct rk_http_result {
    long status;           /* HTTP status; 0 when no answer */
    char *body;            /* malloc'ed, NUL-terminated; NULL when none */
    size_t body_len;
    int64_t peer_time_ms;  /* the peer's X-Renkei-Time, 0 if absent */
    int backup_line;       /* rk_node_post_later: the answer came on the peer's backup line (第7-1(7)) */
} rk_http_result;

/* cert and key are borrowed and must outlive the client. */
rk_rc rk_client_new(X509 *cert, EVP_PKEY *key, const char *ca_path, rk_client **out);
void rk_client_free(rk_client *c);
/* Every call states its creation time (X-Renkei-Created, 第6-8) on this
 * node's clock: the wall clock plus this offset (injected in tests). */
void rk_client_set_clock_offset(rk_client *c, int64_t offset_ms);

/* One request. method "GET"/"POST"/"PUT"; body may be NULL. pin: libcurl
 * pinned public key ("sha256//…") or NULL. The caller clears out. Returns
 * RK_OK when an HTTP answer arrived (any status); RK_ERR_UPSTREAM when the
 * peer could not be reached or the TLS handshake failed; RK_ERR_TIMEOUT. */
rk_rc rk_client_call(rk_client *c, const char *method, const char *url, const char *pin, const char *body,
                     size_t body_len, int timeout_ms, rk_http_result *out);
void rk_http_result_clear(rk_http_result *r);

#endif
