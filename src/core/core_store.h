/* core_store.h — the core's persistent state: persons (an internal serial
 * and the resident codes that name them), acquisitions, the codes issued to
 * each agency, and the outbox of code notices. No My Number and no personal
 * data content is ever stored here. */
#ifndef RK_CORE_STORE_H
#define RK_CORE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"

struct rk_db;

typedef struct core_store core_store;

typedef struct core_acquisition {
    const char *agency;
    const char *acquisition_no;
    const char *resident_code;
    const char *const *previous;   /* earlier resident codes of the person */
    int n_previous;
    int check_code;
} core_acquisition;

typedef struct core_notice {
    int64_t id;
    char agency[64];
    char acquisition_no[65];
    uint64_t serial;
    int check_code;
    int attempts;
    int64_t created_ms;
    int code_version; /* the code key version of this agency's code for the person */
} core_notice;

/* Opens the core's database: target goes to rk_db_open as is ("sqlite:PATH"
 * or a PATH). flags 0: brings the tables to the newest version. flags
 * RK_DB_READONLY (store/db.h): a tool reading a running node's data; no
 * migration, and every write here answers RK_ERR_DENIED. */
rk_rc core_store_open(const char *target, int flags, core_store **out);
void core_store_close(core_store *s);

/* Acquisitions, in one commit. For each: finds or creates the person named
 * by the resident codes (a person keeps one serial across 住民票コード
 * changes), records the acquisition and the issue of a code to the agency,
 * and queues the notice. A repeat of the same (agency, acquisition_no) for
 * the same person sets duplicate and records nothing new, but re-arms its
 * notice (due now; rearmed set) unless the agency settled it for good
 * (linked, check_code_mismatch, code_already_linked, invalid_field); for
 * another person the item's rc is RK_ERR_CONFLICT. */
typedef struct core_acquisition_item {
    core_acquisition a;
    uint64_t serial;
    int duplicate;
    int rearmed;                   /* the deliverers have work: wake them */
    int64_t notice_id;             /* the notice queued or re-armed (-1: not known), whose lane to wake */
    rk_rc rc;
} core_acquisition_item;
rk_rc core_store_acquire_many(core_store *s, core_acquisition_item *items, size_t n, int64_t now_ms);

/* Several notices settled in one commit: done (outcome set) or retried. */
typedef struct core_notice_result {
    int64_t id;
    const char *outcome;   /* NULL: retry at next_ms */
    int attempts;
    int64_t next_ms;
} core_notice_result;
rk_rc core_store_notices_settle(core_store *s, const core_notice_result *r, size_t n, int64_t now_ms);

/* RK_OK when a code for this person was issued to this agency,
 * RK_ERR_NOT_FOUND when not, RK_ERR_STORE when the store could not say. */
rk_rc core_store_issued(core_store *s, const char *agency, uint64_t serial);
/* The same, with the code key version the code was first issued in. */
rk_rc core_store_issued_version(core_store *s, const char *agency, uint64_t serial, int *version);
/* The version new issues get: the codec's newest (core.c, at start). */
void core_store_set_code_version(core_store *s, int version);

/* Outbox of notices (durable until the agency answers). */
/* Claims the due notices of one deliverer (those with id % lanes == lane)
 * for lease_ms: no other deliverer of any instance over the database takes
 * them meanwhile; one whose instance died is due again when the lease ends. */
rk_rc core_store_claim_notices(core_store *s, int64_t now_ms, int64_t lease_ms, int lane, int lanes, core_notice *out,
                               size_t max, size_t *n);
/* Earliest next attempt of a pending notice, or -1 when none is pending. */
int64_t core_store_next_due(core_store *s, int lane, int lanes);
size_t core_store_outbox_depth(core_store *s);
/* 0 when opened read-only. */
int core_store_writable(core_store *s);
/* For tools (each is a scan of the agency's or of all acquisitions).
 *
 * The acquisitions by this agency of the person now or once named by
 * resident_code: how many, and the least and greatest check code recorded
 * for them (the check code J-LIS computed); both -1 when there is none. */
rk_rc core_store_acquisitions_of(core_store *s, const char *agency, const char *resident_code, int64_t *count,
                                 int *min_check_code, int *max_check_code);
/* Over every acquisition of the person named by resident_code (current or
 * earlier code): how many persons (serials) they belong to — 1 when the
 * core knows the resident as one person, 0 when it has none — and how many
 * agencies made them. */
rk_rc core_store_person_spread(core_store *s, const char *resident_code, int64_t *persons, int64_t *agencies);

/* The agencies the core issued a code for the person `serial` to, with the
 * key version of each (わたしの情報, core/self_data.c); at most max. */
typedef struct core_store_holder {
    char agency[64];
    int version;
} core_store_holder;
rk_rc core_store_holders(core_store *s, uint64_t serial, core_store_holder *out, size_t max, size_t *n);

/* Disclosure to the person (DESIGN §2.5). The person named by a resident
 * code, current or earlier: RK_ERR_NOT_FOUND when the core knows none. */
rk_rc core_store_person(core_store *s, const char *resident_code, uint64_t *serial);
/* An agency's marking of an exchange not to be disclosed (法23条, 個人情報
 *保護法78条): the step `step` appended to the records (a step recorded
 * before stays the first) and the marking (basis, until: YYYY-MM-DD or NULL
 * for until lifted) kept, the latest of that agency, in one commit. */
#define CORE_BASIS_MAX 150
struct rk_record;
rk_rc core_store_withhold(core_store *s, const struct rk_record *step, const char *agency, const char *basis,
                          const char *until, const char *operator_id, int64_t now_ms);
/* The agency's marking lifted: the step `step` (outcome disclosed) appended
 * (a lifting recorded before stays the first) and the agency's marking
 * dropped, in one commit. RK_ERR_NOT_FOUND when the agency holds none. */
rk_rc core_store_lift(core_store *s, const struct rk_record *step, const char *agency);
/* RK_OK with its basis and until ("" for until lifted) when a marking of
 * the exchange is in force on `today` (YYYY-MM-DD), RK_ERR_NOT_FOUND when none. */
rk_rc core_store_withheld(core_store *s, const char *exchange_id, const char *today, char basis[CORE_BASIS_MAX + 1],
                          char until[11]);

/* The database, for the shared records module (records/records.h). */
struct rk_db *core_store_db(core_store *s);

#endif
