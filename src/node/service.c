/* node/service.c — a role's background service (service.h). */
#include "node/service.h"

#include <pthread.h>
#include <stdlib.h>

#include "lib/util.h"

#define SERVICE_MAX_THREADS 16

struct rk_service {
    rk_service_round_fn round;
    void *arg;
    pthread_t threads[SERVICE_MAX_THREADS];
    int running;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    unsigned woken; /* wake-ups so far: one that comes during a round is not lost */
};

static void *service_main(void *arg)
{
    rk_service *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        unsigned woken = s->woken;
        pthread_mutex_unlock(&s->lock);
        int64_t sleep_ms = s->round(s->arg);
        pthread_mutex_lock(&s->lock);
        if (!s->stopping && sleep_ms > 0 && woken == s->woken)
            rk_cond_wait_ms(&s->wake, &s->lock, sleep_ms);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

rk_rc rk_service_start(int threads, rk_service_round_fn round, void *arg, rk_service **out)
{
    rk_service *s = threads > 0 && threads <= SERVICE_MAX_THREADS ? calloc(1, sizeof *s) : NULL;
    *out = NULL;
    if (!s)
        return threads > 0 && threads <= SERVICE_MAX_THREADS ? RK_ERR_NOMEM : RK_ERR_INVALID;
    s->round = round;
    s->arg = arg;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    for (; s->running < threads; s->running++)
        if (pthread_create(&s->threads[s->running], NULL, service_main, s) != 0) {
            rk_service_stop(s);
            return RK_ERR_NOMEM;
        }
    *out = s;
    return RK_OK;
}

void rk_service_wake(rk_service *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->woken++;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

void rk_service_stop(rk_service *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->running; i++)
        pthread_join(s->threads[i], NULL);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    free(s);
}
