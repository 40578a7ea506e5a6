/* pia.h — the core's PIA gate (法28条, 法21条): the last known state of
 * each agency's 特定個人情報保護評価 per business, polled from the PIA
 * register (the `ppc` node, GET /v1/pia?since=SERIAL) every [pia] refresh
 * seconds by a background service, kept in memory for the check and in the
 * core's store across restarts, and kept as they are while the register is
 * unreachable. An exchange goes on only when both the requester's and the
 * provider's state for its business is `published`; a pair the register
 * never named is not (deny by default: no evaluation known, none valid). */
#ifndef RK_CORE_PIA_H
#define RK_CORE_PIA_H

#include <event2/buffer.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"
#include "lib/ids.h"
#include "lib/pia.h"
#include "net/registry.h"

struct core;
typedef struct core_pia core_pia;

/* Opens the gate on the core's store (its tables, the states kept there)
 * and starts polling the registry's ppc node; c->pia is set. A network
 * without a ppc node is refused: the core could check nothing. */
rk_rc core_pia_start(struct core *c);
/* Stops the polling (before the store closes); then frees. NULL: nothing. */
void core_pia_stop(core_pia *p);
void core_pia_free(core_pia *p);

/* 0 when requester's and provider's PIA for business are both published;
 * else 1 with *agency the first that is not and *state its state ("none"
 * when the register never named it). O(1), in memory: any thread. */
int core_pia_refuses(core_pia *p, const char *requester, const char *provider, const char *business,
                     const char **agency, const char **state);

/* Health: the states known and their age; non-zero while none was ever
 * known (neither kept nor polled). */
int core_pia_health(core_pia *p, json_t *checks);
void core_pia_metrics(core_pia *p, struct evbuffer *out);

/* What the core reads of the register (tests/fuzz/fuzz_core_pia.c drives
 * it): one answer of GET /v1/pia?since=`since`, at most CORE_PIA_PAGE
 * entries into out, each with a serial above the one before (the first
 * above since). NULL when usable, else what is wrong with it: the whole
 * answer is then refused and nothing of it applied. */
#define CORE_PIA_PAGE 1000
typedef struct core_pia_change {
    char agency[RK_ID_MAX];
    char business[RK_CATALOGUE_ID_MAX + 1];
    rk_pia_state state;
    char evaluated_on[RK_DATE_LEN + 1];
    int64_t serial;
} core_pia_change;
const char *core_pia_read_answer(const char *text, size_t len, int64_t since, core_pia_change *out, size_t *n,
                                 int64_t *next, int64_t *latest, int *more);

#endif
