/* notices.c — delivers code notices (acquisition number, code, check code)
 * to each agency through its gateway (DESIGN §2.1 step 3). A notice stays
 * in the outbox until the agency answers it — linked, or refused for a
 * check-code mismatch — and is retried with exponential backoff across
 * restarts of either side. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "lib/log.h"
#include "lib/util.h"

#define BATCH 64

static int64_t backoff_ms(const core *c, int attempts)
{
    int64_t d = c->node->cfg.outbox_retry_min_ms;
    for (int i = 1; i < attempts && d < c->node->cfg.outbox_retry_max_ms; i++)
        d *= 2;
    if (d > c->node->cfg.outbox_retry_max_ms)
        d = c->node->cfg.outbox_retry_max_ms;
    uint16_t jitter = 0;
    rk_random(&jitter, sizeof jitter);
    return d + (int64_t)(jitter % (d / 4 + 1)); /* spread retries after an outage */
}

/* The agency's answer decides: linked, or a refusal that a retry cannot
 * change (a check-code mismatch, a code already linked, an acquisition it
 * does not know, a malformed notice); NULL means try again later. */
static const char *final_outcome(const rk_http_result *res, char *buf, size_t buflen)
{
    if (res->status == 200)
        return "linked";
    if (res->status != 400 && res->status != 403 && res->status != 404 && res->status != 409)
        return NULL;
    json_t *body = res->body ? json_loads(res->body, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(json_object_get(body, "error"), "code"));
    /* A 404 from a gateway without the route is a misconfiguration, not an answer. */
    int final = code && (res->status != 404 || strcmp(code, "unknown_acquisition") == 0);
    if (final)
        snprintf(buf, buflen, "%s", code);
    json_decref(body);
    return final ? buf : NULL;
}

static void deliver(core *c, const core_notice *n)
{
    const rk_peer_node *gw = rk_registry_find(c->node->registry, RK_ROLE_GATEWAY, n->agency);
    char code[RK_CODE_TEXT_MAX];
    int64_t now = rk_now_ms();
    if (!gw || rk_code_derive(c->codec, n->serial, rk_agency_number(n->agency), code) != RK_OK) {
        rk_error("notice %lld: agency %s has no gateway or no code; dropped", (long long)n->id, n->agency);
        core_store_notice_done(c->store, n->id, "undeliverable", now);
        return;
    }
    json_t *msg = json_pack("{s:s,s:s,s:i}", "acquisition_no", n->acquisition_no, "code", code, "check_code",
                            n->check_code);
    char *body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    rk_http_result res = {0};
    rk_rc rc = body ? rk_node_post(c->node, gw, "/v1/code-notices", body, &res, NULL) : RK_ERR_NOMEM;
    free(body);
    char answer[64];
    const char *outcome = rc == RK_OK ? final_outcome(&res, answer, sizeof answer) : NULL;
    if (outcome) {
        if (strcmp(outcome, "linked") != 0)
            rk_warn("notice %lld to %s closed: %s", (long long)n->id, n->agency, outcome);
        core_store_notice_done(c->store, n->id, outcome, rk_now_ms());
        __atomic_add_fetch(&c->notices_delivered, 1, __ATOMIC_RELAXED);
    } else {
        int attempts = n->attempts + 1;
        int64_t wait = backoff_ms(c, attempts);
        core_store_notice_retry(c->store, n->id, attempts, rk_now_ms() + wait);
        __atomic_add_fetch(&c->notices_failed_attempts, 1, __ATOMIC_RELAXED);
        rk_warn("notice %lld to %s not delivered (%s, HTTP %ld); retry in %lld ms", (long long)n->id, n->agency,
                rk_strerror(rc), res.status, (long long)wait);
        if (rk_now_ms() - n->created_ms > c->node->cfg.unreachable_ms && rk_watch_hit(c->unreachable, n->agency, rk_now_ms()))
            rk_node_raise(c->node, "outage", "code notices to %s undelivered for over %d ms", n->agency,
                          c->node->cfg.unreachable_ms);
    }
    rk_http_result_clear(&res);
}

static void wait_for_work(core *c, int lane)
{
    int64_t next = core_store_next_due(c->store, lane, CORE_NOTICE_LANES);
    int64_t now = rk_now_ms();
    int64_t wait_ms = next < 0 ? 1000 : next - now;
    if (wait_ms <= 0)
        return;
    if (wait_ms > 1000)
        wait_ms = 1000;
    pthread_mutex_lock(&c->wake_lock);
    if (!c->stopping)
        rk_cond_wait_ms(&c->wake, &c->wake_lock, wait_ms);
    pthread_mutex_unlock(&c->wake_lock);
}

static void *deliverer_main(void *arg)
{
    struct core_lane *l = arg;
    core *c = l->c;
    core_notice *batch = calloc(BATCH, sizeof *batch);
    if (!batch)
        return NULL;
    while (!__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE)) {
        size_t n = 0;
        core_store_due_notices(c->store, rk_now_ms(), l->index, CORE_NOTICE_LANES, batch, BATCH, &n);
        for (size_t i = 0; i < n && !__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE); i++)
            deliver(c, &batch[i]);
        if (n == 0)
            wait_for_work(c, l->index);
    }
    free(batch);
    return NULL;
}

rk_rc core_notices_start(core *c)
{
    pthread_mutex_init(&c->wake_lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    for (int i = 0; i < CORE_NOTICE_LANES; i++) {
        c->lanes[i].c = c;
        c->lanes[i].index = i;
        if (pthread_create(&c->deliverers[i], NULL, deliverer_main, &c->lanes[i]) != 0) {
            core_notices_stop(c);
            return RK_ERR_NOMEM;
        }
        c->deliverers_running = i + 1;
    }
    return RK_OK;
}

void core_notices_wake(core *c)
{
    pthread_mutex_lock(&c->wake_lock);
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->wake_lock);
}

void core_notices_stop(core *c)
{
    if (!c->deliverers_running)
        return;
    pthread_mutex_lock(&c->wake_lock);
    __atomic_store_n(&c->stopping, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->wake_lock);
    for (int i = 0; i < c->deliverers_running; i++)
        pthread_join(c->deliverers[i], NULL);
    c->deliverers_running = 0;
    pthread_mutex_destroy(&c->wake_lock);
    pthread_cond_destroy(&c->wake);
}
