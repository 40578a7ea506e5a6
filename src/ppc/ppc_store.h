/* ppc_store.h — the PIA register's memory (法28条): for each (agency,
 * business) its 特定個人情報保護評価 state, the date it was evaluated on
 * and the serial of its last change; every change kept in a history. A
 * serial grows by one with each change, network-wide for the register, so
 * that a reader (the core) asks for what changed since the last it saw. */
#ifndef RK_PPC_STORE_H
#define RK_PPC_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"
#include "lib/ids.h"
#include "lib/pia.h"
#include "net/registry.h"
#include "store/db.h"

/* One (agency, business) of the register as it stands after a change. */
typedef struct pia_entry {
    char agency[RK_ID_MAX];
    char business[RK_CATALOGUE_ID_MAX + 1];
    rk_pia_state state;
    char evaluated_on[RK_DATE_LEN + 1];
    int64_t serial;
    int64_t changed_ms;
} pia_entry;

typedef struct ppc_store ppc_store;

rk_rc ppc_store_open(const char *target, int flags, ppc_store **out);
void ppc_store_close(ppc_store *s);
rk_db *ppc_store_db(ppc_store *s);

/* Sets e->agency/e->business to e->state and e->evaluated_on: a change gets
 * the next serial (e->serial, *changed 1) and a history row; the same state
 * and date again change nothing (e->serial the current one, *changed 0). */
rk_rc ppc_store_set(ppc_store *s, pia_entry *e, int *changed);
/* The first states of an empty register, in one write: RK_ERR_CONFLICT and
 * nothing written when the register holds any entry already. */
rk_rc ppc_store_seed(ppc_store *s, pia_entry *entries, size_t n, int64_t now_ms);
/* Up to cap entries whose last change is after serial `since`, in the order
 * of their serials; *n how many; *latest the register's last serial. */
rk_rc ppc_store_since(ppc_store *s, int64_t since, pia_entry *out, size_t cap, size_t *n, int64_t *latest);
/* One entry's history, newest first, up to cap. */
rk_rc ppc_store_history(ppc_store *s, const char *agency, const char *business, pia_entry *out, size_t cap,
                        size_t *n);
/* Entries of the register (health). */
int64_t ppc_store_count(ppc_store *s);

#endif
