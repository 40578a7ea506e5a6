/* http_relay.h — the one client between nodes: calls made on an event
 * loop with libevent's HTTP client over OpenSSL, that no thread waits for.
 * A node calls through it from its server's loop (rk_node_post_later) and,
 * for threads that are not a loop, from its calls loop (rk_node_post).
 *
 * The rules of http_client.h hold: TLS 1.3 only, this node's certificate,
 * the network CA only, the peer's name and its public-key pin checked in
 * the handshake, X-Renkei-Created on every call (第6-8), the answer capped
 * at RK_CLIENT_MAX_RESPONSE, a timeout on every call.
 *
 * Ownership: one event thread owns a relay and everything in it; every
 * function here (but rk_relay_set_identity) and every callback runs on
 * that thread. Idle connections
 * are kept per URL and reused; a connection that failed or closed is freed,
 * never reused. */
#ifndef RK_HTTP_RELAY_H
#define RK_HTTP_RELAY_H

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"
#include "net/http_client.h"

typedef struct rk_relay rk_relay;

/* Called exactly once per rk_relay_call, on the event thread. rc as for
 * rk_client_call: RK_OK when an HTTP answer arrived (any status; res->body
 * is malloc'ed and the callee takes it), RK_ERR_TIMEOUT, RK_ERR_TOO_LARGE,
 * RK_ERR_UPSTREAM (not reachable, TLS refused, pin mismatch). */
typedef void (*rk_relay_done_fn)(void *arg, rk_rc rc, rk_http_result *res);

/* cert and key are borrowed and must outlive the relay. */
rk_rc rk_relay_new(struct event_base *base, X509 *cert, EVP_PKEY *key, const char *ca_path,
                   int64_t clock_offset_ms, rk_relay **out);
/* A renewed certificate and key (DESIGN §3): new connections present them,
 * those open finish on the old ones and idle ones are not reused. The one
 * function here that any thread may call; cert and key are borrowed. */
rk_rc rk_relay_set_identity(rk_relay *r, X509 *cert, EVP_PKEY *key);
/* Ends the calls still in flight (each done told RK_ERR_UPSTREAM) and frees
 * every connection. */
void rk_relay_free(rk_relay *r);

/* method ("GET" or "POST") base_url ("https://host:port") + path, with
 * body (copied; ignored for GET). pin: "sha256//…" or NULL. On RK_OK done
 * will be called; otherwise it will not. */
rk_rc rk_relay_call(rk_relay *r, const char *method, const char *base_url, const char *pin, const char *path,
                    const char *body, size_t len, int timeout_ms, rk_relay_done_fn done, void *arg);
/* The same with the answer capped at max_response bytes instead (0: the
 * default): the one answer larger than a message, the signed registry of a
 * network of thousands of agencies (DESIGN §3, net/registry.h). */
rk_rc rk_relay_call_capped(rk_relay *r, const char *method, const char *base_url, const char *pin, const char *path,
                           const char *body, size_t len, int timeout_ms, size_t max_response, rk_relay_done_fn done,
                           void *arg);

#endif
