/* progress.c — see progress.h. */
#include "tools/progress.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lib/util.h"

#define TTY_INTERVAL_MS 100   /* at most 10 redraws a second */
#define PLAIN_INTERVAL_MS 2000 /* a plain line at most every 2 s */
#define TTY_FIXED_COLS 50     /* what the line needs besides label and bar */

struct rk_progress {
    char label[RK_PROGRESS_LABEL_MAX + 1];
    uint64_t total;
    FILE *out;
    int tty;
    int width;
    int64_t start_ms;
    int64_t interval_ms;
    _Atomic uint64_t done;
    _Atomic int64_t next_draw_ms;
    pthread_mutex_t lock; /* serialises writes to out */
};

/* ---- formatting (pure) ------------------------------------------------ */

/* Seconds still to go at the current rate; -1 when unknown. */
static int64_t eta_seconds(uint64_t done, uint64_t total, double elapsed_s)
{
    if (done >= total)
        return 0;
    if (done == 0 || elapsed_s <= 0)
        return -1;
    double rate = (double)done / elapsed_s;
    double left = (double)(total - done) / rate;
    if (left > 9.0e15)
        return -1;
    int64_t whole = (int64_t)left;
    return (double)whole < left ? whole + 1 : whole; /* rounded up */
}

static void format_bar(char *bar, int width, uint64_t done, uint64_t total)
{
    int filled = total == 0 ? width : (int)((long double)width * (long double)done / (long double)total);
    if (filled > width)
        filled = width;
    memset(bar, '#', (size_t)filled);
    memset(bar + filled, '.', (size_t)(width - filled));
    bar[width] = '\0';
}

void rk_progress_format(char *buf, size_t len, const char *label, uint64_t done, uint64_t total, double elapsed_s,
                        int tty, int width)
{
    if (!buf || len == 0)
        return;
    uint64_t shown = total != 0 && done > total ? total : done;
    int pct = total == 0 ? 100 : (int)((long double)shown * 100 / (long double)total);
    double rate = elapsed_s > 0 ? (double)done / elapsed_s : 0.0;
    int64_t eta = eta_seconds(shown, total, elapsed_s);
    label = label ? label : "";
    if (!tty) {
        char eta_text[32] = "?";
        if (eta >= 0)
            snprintf(eta_text, sizeof eta_text, "%" PRId64 "s", eta);
        snprintf(buf, len, "%s: %" PRIu64 "/%" PRIu64 " (%d%%) %.1f/s ETA %s", label, done, total, pct, rate,
                 eta_text);
        return;
    }
    char bar[RK_PROGRESS_WIDTH_MAX + 1], eta_text[32] = "--:--";
    width = width < 1 ? 1 : width > RK_PROGRESS_WIDTH_MAX ? RK_PROGRESS_WIDTH_MAX : width;
    format_bar(bar, width, shown, total);
    if (eta >= 0)
        snprintf(eta_text, sizeof eta_text, "%02" PRId64 ":%02" PRId64, eta / 60, eta % 60);
    snprintf(buf, len, "%s [%s] %" PRIu64 "/%" PRIu64 "  %3d%%  %.1f/s  ETA %s", label, bar, done, total, pct, rate,
             eta_text);
}

/* ---- drawing ---------------------------------------------------------- */

/* Bar cells that fit the terminal: RK_PROGRESS_WIDTH, fewer when narrow. */
static int terminal_width(FILE *out, size_t label_len)
{
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0)
        return RK_PROGRESS_WIDTH;
    int room = (int)ws.ws_col - TTY_FIXED_COLS - (int)label_len;
    return room < 10 ? 10 : room > RK_PROGRESS_WIDTH ? RK_PROGRESS_WIDTH : room;
}

/* Writes the current line; the caller holds p->lock. */
static void draw_locked(rk_progress *p, int final)
{
    char line[RK_PROGRESS_LABEL_MAX + RK_PROGRESS_WIDTH_MAX + 160];
    double elapsed = (double)(rk_mono_ms() - p->start_ms) / 1000.0;
    rk_progress_format(line, sizeof line, p->label, atomic_load(&p->done), p->total, elapsed, p->tty, p->width);
    if (p->tty)
        fprintf(p->out, "\r%s\033[K%s", line, final ? "\n" : "");
    else
        fprintf(p->out, "%s\n", line);
    fflush(p->out);
}

rk_progress *rk_progress_new(const char *label, uint64_t total, FILE *out)
{
    rk_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return NULL;
    }
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->out = out ? out : stderr;
    p->tty = isatty(fileno(p->out));
    p->width = p->tty ? terminal_width(p->out, strlen(p->label)) : RK_PROGRESS_WIDTH;
    p->start_ms = rk_mono_ms();
    p->interval_ms = p->tty ? TTY_INTERVAL_MS : PLAIN_INTERVAL_MS;
    atomic_init(&p->done, 0);
    atomic_init(&p->next_draw_ms, p->start_ms + p->interval_ms);
    if (p->tty) {
        pthread_mutex_lock(&p->lock);
        draw_locked(p, 0);
        pthread_mutex_unlock(&p->lock);
    }
    return p;
}

void rk_progress_add(rk_progress *p, uint64_t n)
{
    if (!p)
        return;
    atomic_fetch_add(&p->done, n);
    int64_t now = rk_mono_ms();
    int64_t due = atomic_load(&p->next_draw_ms);
    /* Only the thread that moves the deadline draws: the rate limit holds
     * however many threads add. */
    if (now < due || !atomic_compare_exchange_strong(&p->next_draw_ms, &due, now + p->interval_ms))
        return;
    pthread_mutex_lock(&p->lock);
    draw_locked(p, 0);
    pthread_mutex_unlock(&p->lock);
}

void rk_progress_message(rk_progress *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!p) {
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        return;
    }
    pthread_mutex_lock(&p->lock);
    if (p->tty)
        fputs("\r\033[K", p->out);
    vfprintf(p->out, fmt, ap);
    fputc('\n', p->out);
    if (p->tty)
        draw_locked(p, 0);
    else
        fflush(p->out);
    pthread_mutex_unlock(&p->lock);
    va_end(ap);
}

void rk_progress_finish(rk_progress *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    draw_locked(p, 1);
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
