/* notices.c — delivers code notices (acquisition number, code, check code)
 * to each agency through its gateway (DESIGN §2.1 step 3). A notice stays
 * in the outbox until the agency answers it — linked, or refused for a
 * check-code mismatch — and is retried with exponential backoff across
 * restarts of either side. Each batch is claimed first ([core]
 * notice_lease_ms), so that of several core instances over one database one
 * delivers it, and another when that one dies. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "lib/log.h"
#include "lib/util.h"

#define BATCH 500

static int64_t backoff_ms(const core *c, int attempts)
{
    return rk_backoff_ms(attempts, c->node->cfg.outbox_retry_min_ms, c->node->cfg.outbox_retry_max_ms);
}

/* Outcome of one notice from its entry in a batch answer. */
static const char *batch_outcome(json_t *one)
{
    /* The agency's answers that a retry cannot change end the notice. */
    static const char *const final[] = {"linked", "check_code_mismatch", "code_already_linked",
                                        "unknown_acquisition", "invalid_field"};
    const char *status = json_string_value(json_object_get(one, "status"));
    for (size_t i = 0; status && i < sizeof final / sizeof final[0]; i++)
        if (strcmp(status, final[i]) == 0)
            return final[i];
    return NULL; /* try again */
}

/* Delivers `count` notices of one agency in one call through its gateway;
 * their outcomes go to `out` (the caller settles them in one commit). */
static void deliver_group(core *c, core_notice *n, size_t count, core_notice_result *out)
{
    const rk_peer_node *gw = rk_registry_find(c->node->registry, RK_ROLE_GATEWAY, n[0].agency);
    json_t *list = json_array();
    char code[RK_CODE_TEXT_MAX];
    int *pos = calloc(count ? count : 1, sizeof *pos); /* where each notice's answer is, -1 if not sent */
    for (size_t i = 0; pos && i < count; i++) {
        pos[i] = -1;
        if (rk_code_derive_version(c->codec, n[i].code_version, n[i].serial, rk_agency_number(n[i].agency), code) ==
                RK_OK &&
            json_array_append_new(list, json_pack("{s:s,s:s,s:i}", "acquisition_no", n[i].acquisition_no, "code",
                                                  code, "check_code", n[i].check_code)) == 0)
            pos[i] = (int)json_array_size(list) - 1;
    }
    json_t *msg = json_pack("{s:o}", "notices", list);
    char *body = gw ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    rk_http_result res = {0};
    rk_rc rc = body ? rk_node_post(c->node, gw, "/v1/code-notices/batch", body, &res, NULL) : RK_ERR_CONFIG;
    free(body);
    json_t *answer = rc == RK_OK && res.status == 200 && res.body ? json_loads(res.body, 0, NULL) : NULL;
    json_t *results = json_object_get(answer, "results");
    int64_t now = rk_now_ms();
    for (size_t i = 0; i < count; i++) {
        json_t *one = pos && pos[i] >= 0 ? json_array_get(results, (size_t)pos[i]) : NULL;
        const char *echoed = json_string_value(json_object_get(one, "acquisition_no"));
        if (echoed && strcmp(echoed, n[i].acquisition_no) != 0)
            one = NULL; /* an answer for another notice: retry this one */
        out[i] = (core_notice_result){.id = n[i].id, .outcome = gw ? batch_outcome(one) : "undeliverable"};
        if (out[i].outcome) {
            __atomic_add_fetch(&c->notices_delivered, 1, __ATOMIC_RELAXED);
            continue;
        }
        out[i].next_ms = now + backoff_ms(c, n[i].attempts + 1);
        __atomic_add_fetch(&c->notices_failed_attempts, 1, __ATOMIC_RELAXED);
        if (now - n[i].created_ms > c->node->cfg.unreachable_ms && rk_watch_hit(c->unreachable, n[i].agency, now))
            rk_node_raise(c->node, "outage", "code notices to %s undelivered for over %d ms", n[i].agency,
                          c->node->cfg.unreachable_ms);
    }
    if (!answer)
        rk_warn("%zu notices to %s not delivered (%s, HTTP %ld); retrying with backoff", count, n[0].agency,
                rk_strerror(rc), res.status);
    json_decref(answer);
    rk_http_result_clear(&res);
    free(pos);
}

static int by_agency(const void *a, const void *b)
{
    return strcmp(((const core_notice *)a)->agency, ((const core_notice *)b)->agency);
}

/* Delivers a lane's batch: one call and one commit per agency. */
static void deliver_batch(core *c, core_notice *batch, size_t n, core_notice_result *results)
{
    qsort(batch, n, sizeof *batch, by_agency);
    for (size_t from = 0; from < n;) {
        size_t to = from + 1;
        while (to < n && strcmp(batch[to].agency, batch[from].agency) == 0)
            to++;
        deliver_group(c, batch + from, to - from, results + from);
        from = to;
    }
    core_store_notices_settle(c->store, results, n, rk_now_ms());
}

/* Waits until the lane's next notice is due, it is woken for a new one, or
 * a second has passed (another core instance may have queued work in this
 * lane). A lane woken while it was busy looks again at once. */
static void wait_for_work(core *c, struct core_lane *l)
{
    pthread_mutex_lock(&c->wake_lock);
    int pending = l->pending;
    l->pending = 0;
    pthread_mutex_unlock(&c->wake_lock);
    if (pending)
        return;
    int64_t next = core_store_next_due(c->store, l->index, CORE_NOTICE_LANES);
    int64_t now = rk_now_ms();
    int64_t wait_ms = next < 0 ? 1000 : next - now;
    if (wait_ms <= 0)
        return;
    if (wait_ms > 1000)
        wait_ms = 1000;
    pthread_mutex_lock(&c->wake_lock);
    if (!c->stopping && !l->pending)
        rk_cond_wait_ms(&l->wake, &c->wake_lock, wait_ms);
    l->pending = 0;
    pthread_mutex_unlock(&c->wake_lock);
}

static void *deliverer_main(void *arg)
{
    struct core_lane *l = arg;
    core *c = l->c;
    core_notice *batch = calloc(BATCH, sizeof *batch);
    core_notice_result *results = calloc(BATCH, sizeof *results);
    if (!batch || !results) {
        free(batch);
        free(results);
        return NULL;
    }
    while (!__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE)) {
        size_t n = 0;
        core_store_claim_notices(c->store, rk_now_ms(), c->node->cfg.notice_lease_ms, l->index, CORE_NOTICE_LANES, batch,
                                 BATCH, &n);
        if (n)
            deliver_batch(c, batch, n, results);
        if (n < BATCH) /* the lane's due notices are all delivered */
            wait_for_work(c, l);
    }
    free(batch);
    free(results);
    return NULL;
}

rk_rc core_notices_start(core *c)
{
    pthread_mutex_init(&c->wake_lock, NULL);
    for (int i = 0; i < CORE_NOTICE_LANES; i++) {
        c->lanes[i].c = c;
        c->lanes[i].index = i;
        c->lanes[i].pending = 0;
        pthread_cond_init(&c->lanes[i].wake, NULL);
    }
    for (int i = 0; i < CORE_NOTICE_LANES; i++) {
        if (pthread_create(&c->deliverers[i], NULL, deliverer_main, &c->lanes[i]) != 0) {
            core_notices_stop(c);
            return RK_ERR_NOMEM;
        }
        c->deliverers_running = i + 1;
    }
    return RK_OK;
}

void core_notices_wake(core *c, int64_t notice_id)
{
    pthread_mutex_lock(&c->wake_lock);
    for (int i = 0; i < CORE_NOTICE_LANES; i++)
        if (notice_id < 0 || notice_id % CORE_NOTICE_LANES == i) {
            c->lanes[i].pending = 1;
            pthread_cond_signal(&c->lanes[i].wake);
        }
    pthread_mutex_unlock(&c->wake_lock);
}

void core_notices_stop(core *c)
{
    if (!c->deliverers_running)
        return;
    pthread_mutex_lock(&c->wake_lock);
    __atomic_store_n(&c->stopping, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < CORE_NOTICE_LANES; i++)
        pthread_cond_signal(&c->lanes[i].wake);
    pthread_mutex_unlock(&c->wake_lock);
    for (int i = 0; i < c->deliverers_running; i++)
        pthread_join(c->deliverers[i], NULL);
    c->deliverers_running = 0;
    pthread_mutex_destroy(&c->wake_lock);
    for (int i = 0; i < CORE_NOTICE_LANES; i++)
        pthread_cond_destroy(&c->lanes[i].wake);
}
