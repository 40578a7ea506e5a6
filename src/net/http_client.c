#include "net/http_client.h"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

struct rk_client {
    X509 *cert;
    EVP_PKEY *key;
    char *ca_path;
    pthread_key_t handle_key; /* this thread's CURL handle */
    int64_t clock_offset_ms;
};

void rk_client_set_clock_offset(rk_client *c, int64_t offset_ms)
{
    c->clock_offset_ms = offset_ms;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void free_handle(void *h)
{
    curl_easy_cleanup(h);
}

rk_rc rk_client_new(X509 *cert, EVP_PKEY *key, const char *ca_path, rk_client **out)
{
    pthread_once(&curl_once, curl_init_once);
    rk_client *c = calloc(1, sizeof *c);
    if (!c || !(c->ca_path = strdup(ca_path))) {
        free(c);
        return RK_ERR_NOMEM;
    }
    c->cert = cert;
    c->key = key;
    if (pthread_key_create(&c->handle_key, free_handle) != 0) {
        free(c->ca_path);
        free(c);
        return RK_ERR_NOMEM;
    }
    *out = c;
    return RK_OK;
}

void rk_client_free(rk_client *c)
{
    if (!c)
        return;
    /* The calling thread's handle; other threads' handles are freed when
     * those threads exit (pthread key destructor). */
    CURL *h = pthread_getspecific(c->handle_key);
    if (h) {
        pthread_setspecific(c->handle_key, NULL);
        curl_easy_cleanup(h);
    }
    pthread_key_delete(c->handle_key);
    free(c->ca_path);
    free(c);
}

/* curl builds an SSL_CTX per connection; give it our identity. */
static CURLcode set_identity(CURL *curl, void *sslctx, void *arg)
{
    rk_client *c = arg;
    SSL_CTX *ctx = sslctx;
    if (SSL_CTX_use_certificate(ctx, c->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, c->key) != 1)
        return CURLE_SSL_CERTPROBLEM;
    return CURLE_OK;
}

typedef struct sink {
    char *buf;
    size_t len, cap;
    int too_large;
} sink;

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    sink *s = arg;
    rk_rc rc = rk_buf_append(&s->buf, &s->len, &s->cap, data, size * n, RK_CLIENT_MAX_RESPONSE);
    if (rc == RK_ERR_TOO_LARGE)
        s->too_large = 1;
    return rc == RK_OK ? size * n : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    rk_http_result *r = arg;
    size_t len = size * n;
    static const char name[] = "x-renkei-time:";
    if (len > sizeof name && strncasecmp(data, name, sizeof name - 1) == 0)
        r->peer_time_ms = strtoll(data + sizeof name - 1, NULL, 10);
    return len;
}

static CURL *thread_handle(rk_client *c)
{
    CURL *h = pthread_getspecific(c->handle_key);
    if (h) {
        curl_easy_reset(h); /* keeps the connection and session caches */
        return h;
    }
    h = curl_easy_init();
    if (h && pthread_setspecific(c->handle_key, h) != 0) {
        curl_easy_cleanup(h);
        return NULL;
    }
    return h;
}

rk_rc rk_client_call(rk_client *c, const char *method, const char *url, const char *pin, const char *body,
                     size_t body_len, int timeout_ms, rk_http_result *out)
{
    memset(out, 0, sizeof *out);
    CURL *h = thread_handle(c);
    if (!h)
        return RK_ERR_NOMEM;
    sink s = {0};
    char created[48];
    snprintf(created, sizeof created, "X-Renkei-Created: %lld", (long long)(rk_now_ms() + c->clock_offset_ms));
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");
    headers = curl_slist_append(headers, created);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)(CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3));
    curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_path);
    curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, set_identity);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, c);
    if (pin && *pin)
        curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, pin);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 3000 ? timeout_ms : 3000));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(headers);
    rk_rc rc = RK_OK;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
        out->body = s.buf;
        out->body_len = s.len;
        return RK_OK;
    }
    free(s.buf);
    if (s.too_large)
        rc = RK_ERR_TOO_LARGE;
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        rc = RK_ERR_TIMEOUT;
    else
        rc = RK_ERR_UPSTREAM;
    rk_debug("call %s %s failed: %s", method, url, curl_easy_strerror(cc));
    return rc;
}

void rk_http_result_clear(rk_http_result *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}
