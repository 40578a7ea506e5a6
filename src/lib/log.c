#include "lib/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/mynumber.h"

static char log_node[64] = "renkei";
static rk_log_level log_min = RK_LOG_INFO;
static rk_log_format log_format = RK_LOG_TEXT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void rk_log_init(const char *node_id, rk_log_level min_level, rk_log_format format)
{
    snprintf(log_node, sizeof log_node, "%s", node_id ? node_id : "renkei");
    log_min = min_level;
    log_format = format == RK_LOG_JSON ? RK_LOG_JSON : RK_LOG_TEXT;
}

/* A My Number that reached a log line by mistake is masked: every run of
 * exactly 12 digits whose last is the check digit becomes 12 '#'. */
static void mask_my_numbers(char *msg)
{
    for (char *p = msg; *p;) {
        if (*p < '0' || *p > '9') {
            p++;
            continue;
        }
        size_t n = strspn(p, "0123456789");
        if (n == 12) {
            char one[13];
            memcpy(one, p, 12);
            one[12] = '\0';
            if (rk_mynumber_validate(one) == RK_OK)
                memset(p, '#', 12);
        }
        p += n;
    }
}

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    unsigned cp = n ? s[0] & (0x7F >> n) : 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (!n || cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* s as the inside of a JSON string: quotes and backslashes escaped, bytes
 * that are not UTF-8 as '?' (control characters are gone already). */
static void json_text(char *out, size_t outlen, const char *s)
{
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    while (*u && o + 8 < outlen) { /* room for the longest piece (an escaped byte) and the NUL */
        size_t n = utf8_len(u);
        if (n == 0) {
            out[o++] = '?';
            u++;
        } else if (*u == '"' || *u == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*u++;
        } else if (*u < 0x20 || *u == 0x7f) {
            o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", *u++);
        } else {
            memcpy(out + o, u, n);
            o += n;
            u += n;
        }
    }
    out[o] = '\0';
}

void rk_log(rk_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < log_min)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* text from peers cannot forge log lines */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    mask_my_numbers(msg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&log_lock);
    if (log_format == RK_LOG_JSON) {
        /* one object a line, for journald and log collectors */
        char node[2 * sizeof log_node], text[2 * sizeof msg];
        json_text(node, sizeof node, log_node);
        json_text(text, sizeof text, msg);
        fprintf(stderr, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"node\":\"%s\",\"msg\":\"%s\"}\n", when,
                ts.tv_nsec / 1000000, names[level], node, text);
    } else {
        fprintf(stderr, "%s.%03ldZ %s %s: %s\n", when, ts.tv_nsec / 1000000, log_node, names[level], msg);
    }
    pthread_mutex_unlock(&log_lock);
}
