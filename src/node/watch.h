/* watch.h — counts events per key (a peer, an address, an agency) in time
 * windows, to raise incidents early (standard 第3-5, 第5-4(3)): a burst of
 * refusals from one source, a burst of not_permitted from one requester,
 * an agency whose request rate jumps far beyond its own recent baseline.
 * Thread-safe; a fixed table, so memory is bounded whatever the traffic
 * (the least recently seen key is forgotten first). */
#ifndef RK_WATCH_H
#define RK_WATCH_H

#include <stdint.h>

typedef struct rk_watch rk_watch;

/* Burst: fires once per window when a key's count reaches `threshold`.
 * Rate: fires once per window when a key's count in the window reaches
 * max(min_count, factor × its baseline), the baseline being the moving
 * average of its earlier windows (factor 0: burst mode only). */
rk_watch *rk_watch_new(int64_t window_ms, unsigned threshold, double factor);
void rk_watch_free(rk_watch *w);

/* Counts one event; returns 1 when this event made the key fire. */
int rk_watch_hit(rk_watch *w, const char *key, int64_t now_ms);
/* Counts one event; returns 1 while the key's count in this window is over
 * the threshold (a rate limit). */
int rk_watch_over(rk_watch *w, const char *key, int64_t now_ms);

#endif
