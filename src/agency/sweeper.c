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
#include <stdlib.h>

#include "agency/agency.h"
#include "lib/log.h"
#include "lib/util.h"
#include "node/service.h"

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

/* One round of the service, then the wait until the next. */
static int64_t sweep_round(void *arg)
{
    agency *a = arg;
    sweep_once(a);
    return period_ms(&a->node->cfg);
}

rk_rc agency_sweeper_start(agency *a)
{
    return rk_service_start(1, sweep_round, a, &a->sweeper);
}

void agency_sweeper_stop(agency *a)
{
    rk_service_stop(a->sweeper);
    a->sweeper = NULL;
}
