#include "lib/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static char log_node[64] = "renkei";
static rk_log_level log_min = RK_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void rk_log_init(const char *node_id, rk_log_level min_level)
{
    snprintf(log_node, sizeof log_node, "%s", node_id ? node_id : "renkei");
    log_min = min_level;
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
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s.%03ldZ %s %s: %s\n", when, ts.tv_nsec / 1000000, log_node, names[level], msg);
    pthread_mutex_unlock(&log_lock);
}
