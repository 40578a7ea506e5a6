#include "node/watch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 512
#define KEY_MAX 64
#define BASELINE_WEIGHT 0.3

typedef struct slot {
    char key[KEY_MAX];
    int64_t window_start, last_seen;
    unsigned count;
    double baseline;      /* moving average of earlier windows' counts */
    int windows_seen;
    int fired;            /* already fired in this window */
    int started;
} slot;

struct rk_watch {
    pthread_mutex_t lock;
    int64_t window_ms;
    unsigned threshold;
    double factor;
    slot slots[SLOTS];
};

rk_watch *rk_watch_new(int64_t window_ms, unsigned threshold, double factor)
{
    rk_watch *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    pthread_mutex_init(&w->lock, NULL);
    w->window_ms = window_ms > 0 ? window_ms : 1000;
    w->threshold = threshold ? threshold : 1;
    w->factor = factor;
    return w;
}

void rk_watch_free(rk_watch *w)
{
    if (!w)
        return;
    pthread_mutex_destroy(&w->lock);
    free(w);
}

#define PROBES 16

static unsigned hash_key(const char *key)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

/* The slot of key among its PROBES candidates, or the least recently seen
 * of them, taken over: a few comparisons per event, whatever the traffic. */
static slot *find_slot(rk_watch *w, const char *key)
{
    unsigned start = hash_key(key);
    slot *oldest = &w->slots[start % SLOTS];
    for (unsigned i = 0; i < PROBES; i++) {
        slot *s = &w->slots[(start + i) % SLOTS];
        if (s->key[0] && strncmp(s->key, key, KEY_MAX - 1) == 0)
            return s;
        if (!s->key[0] || s->last_seen < oldest->last_seen)
            oldest = s;
        if (!s->key[0])
            break;
    }
    memset(oldest, 0, sizeof *oldest);
    snprintf(oldest->key, sizeof oldest->key, "%s", key);
    return oldest;
}

/* Moves the slot to the window holding now, folding finished windows into
 * the baseline (empty windows count as zero). */
static void roll(rk_watch *w, slot *s, int64_t now_ms)
{
    if (!s->started) {
        s->started = 1;
        s->window_start = now_ms;
        return;
    }
    while (now_ms - s->window_start >= w->window_ms) {
        double c = s->count;
        s->baseline = s->windows_seen ? (1 - BASELINE_WEIGHT) * s->baseline + BASELINE_WEIGHT * c : c;
        s->windows_seen++;
        s->count = 0;
        s->fired = 0;
        s->window_start += w->window_ms;
        if (now_ms - s->window_start > 64 * w->window_ms) { /* long silence: start afresh */
            s->baseline = 0;
            s->window_start = now_ms;
        }
    }
}

/* Counts one event for key at now_ms; the caller holds w->lock. */
static slot *count_event(rk_watch *w, const char *key, int64_t now_ms)
{
    slot *s = find_slot(w, key);
    roll(w, s, now_ms);
    s->last_seen = now_ms;
    s->count++;
    return s;
}

int rk_watch_hit(rk_watch *w, const char *key, int64_t now_ms)
{
    if (!w || !key)
        return 0;
    pthread_mutex_lock(&w->lock);
    slot *s = count_event(w, key, now_ms);
    double limit = w->threshold;
    if (w->factor > 0) {
        if (s->windows_seen == 0)
            limit = 1e18; /* no baseline yet */
        else if (w->factor * s->baseline > limit)
            limit = w->factor * s->baseline;
    }
    int fire = !s->fired && s->count >= limit;
    if (fire)
        s->fired = 1;
    pthread_mutex_unlock(&w->lock);
    return fire;
}

int rk_watch_over(rk_watch *w, const char *key, int64_t now_ms)
{
    if (!w || !key)
        return 0;
    pthread_mutex_lock(&w->lock);
    slot *s = count_event(w, key, now_ms);
    int over = s->count > w->threshold;
    pthread_mutex_unlock(&w->lock);
    return over;
}
