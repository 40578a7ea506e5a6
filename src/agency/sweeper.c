/* sweeper.c — settles the enrolments that nothing else will (DESIGN §2.1).
 *
 * A pending acquisition still 'new' after [agency] pending_new_after_ms was
 * never confirmed by J-LIS and no retry came to send it again: the person
 * fails with reason not_forwarded (the business system enrols again). One
 * 'forwarded' without a code notice after [agency] pending_deadline_ms fails
 * with reason no_code_notice, and that is an outage. Their pending rows are
 * kept [agency] pending_grace_ms longer, so that a late notice still links
 * them (check codes compared, 第8-2(1)イ). A thread of its own, like the
 * node's other background services: it only writes the store. */
#include <pthread.h>
#include <stdlib.h>

#include "agency/agency.h"
#include "lib/log.h"
#include "lib/util.h"

struct agency_sweeper {
    agency *a;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
};

/* How often to look: a quarter of the shorter limit, within [50 ms, 60 s]. */
static int64_t period_ms(const rk_node_config *cfg)
{
    int64_t p = cfg->pending_new_after_ms < cfg->pending_deadline_ms ? cfg->pending_new_after_ms
                                                                      : cfg->pending_deadline_ms;
    p /= 4;
    return p < 50 ? 50 : p > 60000 ? 60000 : p;
}

static void sweep_once(agency *a)
{
    const rk_node_config *cfg = &a->node->cfg;
    int64_t now = rk_now_ms();
    int64_t longest = cfg->pending_new_after_ms > cfg->pending_deadline_ms ? cfg->pending_new_after_ms
                                                                            : cfg->pending_deadline_ms;
    agency_sweep done;
    rk_rc rc = agency_store_sweep(a->store, now, now - cfg->pending_new_after_ms, now - cfg->pending_deadline_ms,
                                  now - longest - cfg->pending_grace_ms, &done);
    if (rc != RK_OK) {
        rk_warn("pending enrolments could not be swept: %s", rk_strerror(rc));
        return;
    }
    if (done.not_forwarded)
        rk_info("%lld enrolments never reached J-LIS within %d ms: failed (not_forwarded)",
                (long long)done.not_forwarded, cfg->pending_new_after_ms);
    if (done.no_code_notice)
        rk_node_raise(a->node, "outage", "%lld enrolments got no code notice within %d ms: failed (no_code_notice)",
                      (long long)done.no_code_notice, cfg->pending_deadline_ms);
}

static void *sweeper_main(void *arg)
{
    agency_sweeper *w = arg;
    int64_t period = period_ms(&w->a->node->cfg);
    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        pthread_mutex_unlock(&w->lock);
        sweep_once(w->a);
        pthread_mutex_lock(&w->lock);
        if (!w->stopping)
            rk_cond_wait_ms(&w->wake, &w->lock, period);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

rk_rc agency_sweeper_start(agency *a)
{
    agency_sweeper *w = calloc(1, sizeof *w);
    if (!w)
        return RK_ERR_NOMEM;
    w->a = a;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, sweeper_main, w) != 0) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
        free(w);
        return RK_ERR_NOMEM;
    }
    a->sweeper = w;
    return RK_OK;
}

void agency_sweeper_stop(agency *a)
{
    agency_sweeper *w = a->sweeper;
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
    a->sweeper = NULL;
}
