/* http.c — `renkei bench http`: the load generator against any URL, with
 * a client certificate. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/pki.h"
#include "lib/util.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_load.h"
#include "tools/toolkit.h"

static const char usage_http[] =
    "usage: renkei bench http --url URL --cert C --key K --ca CA [options]\n"
    "\n"
    "A closed-loop load generator: N keep-alive connections with mutual TLS 1.3,\n"
    "each sending its next request as soon as the previous answer came. Only 2xx\n"
    "answers count as successes. Prints requests/s, latency percentiles of the\n"
    "successes, the other answers and errors, and the connections opened.\n"
    "\n"
    "  --url URL            https://HOST:PORT (a path in it is used as --path)\n"
    "  --cert C --key K     the client certificate and key (the key 0600)\n"
    "  --passphrase-file F  the key's passphrase, when it is encrypted\n"
    "  --ca CA              the CA that signed the server certificate\n"
    "  --path P             request path (default /)\n"
    "  --body FILE          request body (default none)\n"
    "  --method M           GET, POST, PUT… (default GET, or POST with --body)\n"
    "  --concurrency N      connections, 1..1024 (default 64)\n"
    "  --threads T          client threads sharing them (default 1)\n"
    "  --seconds S          measured window (default 10)\n"
    "  --warmup S           unmeasured warm-up first (default 2)\n";

/* The usage errors of `bench http` that bench_parse_opts cannot see: 0 when the
 * options are usable, else what usage_error returned. */
static int http_check_opts(const bench_opts *o)
{
    if (!o->url || !o->cert || !o->key || !o->ca)
        return bench_usage_error("http needs --url, --cert, --key and --ca");
    if (strncmp(o->url, "https://", 8) != 0)
        return bench_usage_error("--url must start with https://");
    if (o->method && (!*o->method || strspn(o->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(o->method)))
        return bench_usage_error("--method must be an upper-case HTTP method");
    if (o->path && o->path[0] != '/')
        return bench_usage_error("--path must start with '/'");
    return 0;
}

/* What `bench http` loads before it runs: the client credential and the body. */
typedef struct http_inputs {
    X509 *cert;
    EVP_PKEY *key;
    char *body;
    size_t body_len;
} http_inputs;

/* 0 when the certificate, the key and the body (if any) are loaded, else
 * what failure returned. */
static int http_load_inputs(const bench_opts *o, http_inputs *in)
{
    rk_rc rc;
    if ((rc = rk_pki_load_cert(o->cert, &in->cert)) != RK_OK)
        return bench_failure("cannot load the certificate %s: %s", o->cert, rk_strerror(rc));
    if ((rc = rk_pki_load_key(o->key, o->passphrase_file, &in->key)) != RK_OK)
        return bench_failure("cannot load the key %s: %s%s", o->key, rk_strerror(rc),
                             rc == RK_ERR_DENIED ? " (it must be mode 0600)" : "");
    if (o->body_file && (rc = rk_read_file(o->body_file, 64u << 20, &in->body, &in->body_len)) != RK_OK)
        return bench_failure("cannot read the body %s: %s", o->body_file, rk_strerror(rc));
    return 0;
}

static void http_inputs_free(http_inputs *in)
{
    free(in->body);
    EVP_PKEY_free(in->key);
    X509_free(in->cert);
}

/* Runs the load generator against base + path and prints the figures. */
static int http_run(const bench_opts *o, const char *base, const char *path, const http_inputs *in)
{
    bench_install_signals();
    const char *method = o->method ? o->method : in->body ? "POST" : "GET";
    printf("renkei bench http: %s %s%s, %d connections, %d thread(s), %.1f s warm-up + %.1f s\n", method, base, path,
           o->concurrency, o->threads, o->warmup, o->seconds);
    fflush(stdout);
    bench_load_config cfg = {
        .base_url = base,
        .path = path,
        .method = method,
        .body = in->body,
        .body_len = in->body_len,
        .cert = in->cert,
        .key = in->key,
        .ca_path = o->ca,
        .concurrency = o->concurrency,
        .threads = o->threads,
        .seconds = o->seconds,
        .warmup = o->warmup,
        .stop = &bench_stop,
    };
    bench_load_result r;
    char err[512];
    if (bench_load_run(&cfg, &r, err, sizeof err) != RK_OK)
        return bench_failure("%s", err);
    bench_load_print(stdout, "result", "requests", &r, o->concurrency);
    return 0;
}

int bench_cmd_http(int argc, char **argv)
{
    static const struct option table[] = {
        {"url", required_argument, NULL, BENCH_OPT_URL},
        {"cert", required_argument, NULL, BENCH_OPT_CERT},
        {"key", required_argument, NULL, BENCH_OPT_KEY},
        {"passphrase-file", required_argument, NULL, BENCH_OPT_PASSPHRASE},
        {"ca", required_argument, NULL, BENCH_OPT_CA},
        {"path", required_argument, NULL, BENCH_OPT_PATH},
        {"body", required_argument, NULL, BENCH_OPT_BODY},
        {"method", required_argument, NULL, BENCH_OPT_METHOD},
        BENCH_O_LOAD,
        BENCH_O_HELP,
        BENCH_O_END,
    };
    bench_opts o = {.seconds = 10, .warmup = 2, .concurrency = 64, .threads = 1};
    enum bench_parse_result pr = bench_parse_opts(argc, argv, table, &o);
    if (pr != BENCH_PARSE_OK)
        return pr == BENCH_PARSE_HELP ? (fputs(usage_http, stdout), 0) : TK_EXIT_USAGE;
    int code = http_check_opts(&o);
    if (code != 0)
        return code;

    /* Split a path out of the URL: the generator wants scheme://host:port. */
    char base[1024], path[BENCH_PATH_CAP];
    const char *slash = strchr(o.url + 8, '/');
    if (strlen(o.url) >= sizeof base)
        return bench_usage_error("--url is too long");
    bench_fmt(base, sizeof base, "%.*s", (int)(slash ? slash - o.url : (long)strlen(o.url)), o.url);
    bench_fmt(path, sizeof path, "%s", o.path ? o.path : slash ? slash : "/");

    http_inputs in = {0};
    code = http_load_inputs(&o, &in);
    if (code == 0)
        code = http_run(&o, base, path, &in);
    http_inputs_free(&in);
    return code;
}
