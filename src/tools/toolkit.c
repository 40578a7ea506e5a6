/* toolkit.c — helpers the `renkei` subcommands share (see toolkit.h). */
#include "tools/toolkit.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

__attribute__((format(printf, 3, 0))) static void vmessage(const char *cmd, const char *tail, const char *fmt,
                                                          va_list ap)
{
    fprintf(stderr, "renkei %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputs(tail, stderr);
}

int tk_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(cmd, " (see --help)\n", fmt, ap);
    va_end(ap);
    return TK_EXIT_USAGE;
}

int tk_failure(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(cmd, "\n", fmt, ap);
    va_end(ap);
    return EXIT_FAILURE;
}

int tk_option_error(const char *cmd, int c, char **argv)
{
    const char *what = argv[optind - 1];
    if (c == ':')
        return tk_usage_error(cmd, "option '%s' needs a value", what);
    if (optopt && optopt != '?' && optopt < 256)
        return tk_usage_error(cmd, "unknown option '-%c'", optopt);
    return tk_usage_error(cmd, "unknown option '%s'", what);
}

void tk_getopt_reset(void)
{
    optind = 0; /* glibc: full reinitialisation */
    opterr = 0;
}

int tk_parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max)
        return 0;
    *out = v;
    return 1;
}

int tk_parse_int(const char *s, long min, long max, int *out)
{
    long v;
    if (!tk_parse_long(s, min, max, &v))
        return 0;
    *out = (int)v;
    return 1;
}

rk_rc tk_path(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= len ? RK_ERR_INVALID : RK_OK;
}

rk_rc tk_temp_dir(const char *name, char *out, size_t outlen, char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    rk_rc rc = RK_OK;
    if (tk_path(out, outlen, "%s/%s-XXXXXX", tmp, name) != RK_OK) {
        snprintf(err, errlen, "the temporary folder name is too long ($TMPDIR)");
        rc = RK_ERR_INVALID;
    } else if (!mkdtemp(out)) {
        snprintf(err, errlen, "cannot make a folder under %s: %s", tmp, strerror(errno));
        rc = RK_ERR_IO;
    }
    if (rc != RK_OK && outlen > 0)
        out[0] = '\0';
    return rc;
}

void tk_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

rk_rc tk_registry_load(const char *net_dir, rk_registry **reg, char *err, size_t errlen)
{
    char path[TK_PATH_CAP];
    if (err && errlen)
        err[0] = '\0';
    if (tk_path(path, sizeof path, "%s/network.json", net_dir) != RK_OK) {
        snprintf(err, errlen, "%s: path too long", net_dir);
        return RK_ERR_INVALID;
    }
    rk_rc rc = rk_registry_load(path, reg, err, errlen);
    if (rc != RK_OK && err && errlen && !err[0])
        snprintf(err, errlen, "cannot load %s: %s", path, rk_strerror(rc));
    return rc;
}

static rk_rc client_fail(tk_client *c, tk_step step, const char *path, rk_rc rc)
{
    tk_client_close(c);
    c->failed = step;
    snprintf(c->failed_path, sizeof c->failed_path, "%s", path);
    return rc;
}

rk_rc tk_client_open(const char *net_dir, const char *client_dir, tk_client *out, char *err, size_t errlen)
{
    char cert[TK_PATH_CAP], key[TK_PATH_CAP], ca[TK_PATH_CAP];
    memset(out, 0, sizeof *out);
    if (tk_path(cert, sizeof cert, "%s/%s/cert.pem", net_dir, client_dir) ||
        tk_path(key, sizeof key, "%s/%s/key.pem", net_dir, client_dir) ||
        tk_path(ca, sizeof ca, "%s/pki/ca.pem", net_dir)) {
        snprintf(err, errlen, "%s: path too long", net_dir);
        return client_fail(out, TK_STEP_PATH, net_dir, RK_ERR_INVALID);
    }
    rk_rc rc = rk_pki_load_cert(cert, &out->cert);
    if (rc != RK_OK) {
        snprintf(err, errlen, "cannot load %s: %s", cert, rk_strerror(rc));
        return client_fail(out, TK_STEP_CERT, cert, rc);
    }
    if ((rc = rk_pki_load_key(key, NULL, &out->key)) != RK_OK) {
        snprintf(err, errlen, "cannot load %s: %s", key, rk_strerror(rc));
        return client_fail(out, TK_STEP_KEY, key, rc);
    }
    if ((rc = rk_client_new(out->cert, out->key, ca, &out->client)) != RK_OK) {
        snprintf(err, errlen, "cannot set up the client: %s", rk_strerror(rc));
        return client_fail(out, TK_STEP_CLIENT, ca, rc);
    }
    return RK_OK;
}

void tk_client_close(tk_client *c)
{
    rk_client_free(c->client);
    EVP_PKEY_free(c->key);
    X509_free(c->cert);
    memset(c, 0, sizeof *c);
}

void tk_use_network_token(const char *dir)
{
    char conf[TK_PATH_CAP];
    if (!getenv("SOFTHSM2_CONF") && tk_path(conf, sizeof conf, "%s/hsm/softhsm2.conf", dir) == RK_OK &&
        access(conf, R_OK) == 0)
        setenv("SOFTHSM2_CONF", conf, 1);
}
