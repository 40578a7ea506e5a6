/* node/service.h — a role's background service: threads that each do one
 * round of work at a time (a sweep, a group of batch queries) and sleep
 * between rounds until their next is due or something wakes them, until
 * the role stops them. Like the node's other background threads they may
 * block on the store and call other nodes through the calls loop
 * (rk_node_call); they never run on the server's event loop. */
#ifndef RK_NODE_SERVICE_H
#define RK_NODE_SERVICE_H

#include <stdint.h>

#include "lib/err.h"

typedef struct rk_service rk_service;

/* One round on a service thread: the milliseconds to sleep before the
 * next (0: at once), unless woken or stopped first. */
typedef int64_t (*rk_service_round_fn)(void *arg);

/* Starts `threads` threads, each running round(arg) until stopped. */
rk_rc rk_service_start(int threads, rk_service_round_fn round, void *arg, rk_service **out);
/* Wakes the sleeping threads for a round at once (any thread). */
void rk_service_wake(rk_service *s);
/* Stops the threads after their round, joins them and frees s (NULL: nothing). */
void rk_service_stop(rk_service *s);

#endif
