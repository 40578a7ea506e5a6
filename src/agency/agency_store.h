/* agency_store.h — an agency node's state: its internal persons (宛名番号)
 * and their codes, pending acquisitions, and incidents. A My Number is never
 * passed to, or stored by, this module. */
#ifndef RK_AGENCY_STORE_H
#define RK_AGENCY_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"
#include "lib/ids.h"

struct rk_db;

typedef struct agency_store agency_store;

#define AGENCY_STATUS_MAX 16

typedef enum {
    NOTICE_LINKED,          /* person linked to the code */
    NOTICE_MISMATCH,        /* check codes differ: not linked, incident recorded */
    NOTICE_UNKNOWN,         /* no pending acquisition with this number */
    NOTICE_DUPLICATE,       /* the code is linked to another person here: not linked */
} agency_notice_outcome;

/* Opens the agency's database named by target ("sqlite:PATH" or a path, as
 * rk_db_open takes it) and brings its tables to the newest version. flags:
 * 0, or RK_DB_READONLY (store/db.h) for a tool reading a running node's
 * data: no migration, and every write here answers RK_ERR_INVALID. */
rk_rc agency_store_open(const char *target, int flags, const char *node_id, agency_store **out);
void agency_store_close(agency_store *s);

#define AGENCY_REASON_MAX 32

/* Records a pending acquisition (state 'new': not yet known to be with
 * J-LIS) for a new or failed person, a failed person's earlier acquisitions
 * forgotten. For a person already pending in state 'new' the retry sends
 * again: RK_OK with resend set and the stored acquisition number in
 * acquisition_no — or RK_ERR_CONFLICT when the stored check code differs
 * (another My Number). For a person pending in state 'forwarded', linked:
 * RK_ERR_EXISTS with its status. */
typedef struct agency_pending {
    const char *person;
    char acquisition_no[RK_ACQUISITION_NO_MAX + 1]; /* in: a fresh number; out: the one to send */
    int check_code;
    int resend;                 /* out: the stored acquisition is sent again */
    char status[AGENCY_STATUS_MAX];
    char reason[AGENCY_REASON_MAX]; /* "" unless failed */
    rk_rc rc;
} agency_pending;
rk_rc agency_store_add_pending(agency_store *s, agency_pending *p, int64_t now_ms);
/* The same for a batch, in one commit; each item gets its own rc. */
rk_rc agency_store_add_pending_many(agency_store *s, agency_pending *items, size_t n, int64_t now_ms);

/* What became of an acquisition sent to J-LIS. */
typedef enum {
    SENT_FORWARDED,             /* J-LIS has it: state 'forwarded' */
    SENT_REFUSED,               /* a definite refusal: the row dropped, if still 'new' */
    SENT_UNCERTAIN,             /* no answer, a timeout, a 5xx: the row kept 'new' */
    SENT_MISMATCH,              /* the basic items differ from J-LIS's registry: the row
                                   dropped, if still 'new', and the person failed with reason
                                   basic_info_mismatch (the attempt, without its values) */
} agency_sent_outcome;
typedef struct agency_sent {
    const char *person, *acquisition_no;
    agency_sent_outcome outcome;
    int64_t at_ms;                   /* SENT_MISMATCH: when */
    int want_status;                 /* SENT_FORWARDED: read the person's status too */
    char status[AGENCY_STATUS_MAX];  /* out, with want_status: the person's status now ("" if none) */
    char reason[AGENCY_REASON_MAX];
    rk_rc rc;
} agency_sent;
/* Settles what J-LIS answered, in one commit, each item in its own
 * savepoint. A forwarded row is never dropped (第8-2: its notice may come). */
rk_rc agency_store_settle_sent(agency_store *s, agency_sent *items, size_t n);

/* A refused acquisition: agency_store_settle_sent with SENT_REFUSED. */
rk_rc agency_store_drop_pending(agency_store *s, const char *person, const char *acquisition_no);
/* RK_ERR_NOT_FOUND for an unknown person. reason (may be NULL) is "" unless
 * the person failed. */
rk_rc agency_store_person_state(agency_store *s, const char *person, char status[AGENCY_STATUS_MAX],
                                char reason[AGENCY_REASON_MAX]);
rk_rc agency_store_person_status(agency_store *s, const char *person, char status[AGENCY_STATUS_MAX]);

/* The sweeper: pending persons whose acquisition stayed 'new' since before
 * new_before_ms fail with reason not_forwarded; those 'forwarded' since
 * before forwarded_before_ms fail with no_code_notice. Their pending rows
 * stay, so that a late notice still links them; rows of persons no longer
 * pending created before purge_before_ms are deleted. */
typedef struct agency_sweep {
    int64_t not_forwarded, no_code_notice, purged;
} agency_sweep;
rk_rc agency_store_sweep(agency_store *s, int64_t now_ms, int64_t new_before_ms, int64_t forwarded_before_ms,
                         int64_t purge_before_ms, agency_sweep *out);

/* Applies a code notice (第8-2(1)イ): links on equal check codes and forgets
 * the acquisition number; on a mismatch marks the person failed (reason
 * check_code_mismatch) and records an incident. A person the sweeper failed
 * (not_forwarded, no_code_notice) is still linked by its notice. */
rk_rc agency_store_apply_notice(agency_store *s, const char *acquisition_no, const char *code, int check_code,
                                int64_t now_ms, agency_notice_outcome *outcome);

/* The same for a batch of notices, in one commit. */
typedef struct agency_notice {
    const char *acquisition_no, *code;
    int check_code;
    agency_notice_outcome outcome;
    rk_rc rc;
} agency_notice;
rk_rc agency_store_apply_notices(agency_store *s, agency_notice *items, size_t n, int64_t now_ms);

/* For each of n persons whether it is linked here (1) or not (0: unknown,
 * pending or failed), in one read. */
rk_rc agency_store_linked_many(agency_store *s, const char *const *persons, size_t n, int *linked);

/* The code of a linked person: RK_ERR_NOT_FOUND when unknown or not linked. */
rk_rc agency_store_code_of(agency_store *s, const char *person, char *code, size_t codelen);
size_t agency_store_count(agency_store *s, const char *status);

/* Provision copies (副本): every PUT is a new version; the newest answers
 * (第8-2(2)). RK_ERR_NOT_FOUND when the person is unknown here. */
rk_rc agency_store_put_data(agency_store *s, const char *person, const char *item, const char *value_json,
                            const char *as_of, int64_t now_ms, int64_t *version);
/* The same, answered once per request_id: the store and the answer (built
 * by answer(version, arg)) are committed together; a repeat of the id with
 * the same request gets *kept (malloc'ed) instead, another request
 * RK_ERR_CONFLICT. */
rk_rc agency_store_put_data_once(agency_store *s, const char *request_id, const char *request_hash,
                                 const char *person, const char *item, const char *value_json, const char *as_of,
                                 int64_t now_ms, char *(*answer)(int64_t version, void *arg), void *arg,
                                 int64_t *version, char **kept);
/* The version of an item in force on on_date (YYYY-MM-DD: of the versions
 * whose as_of is on or before it, the latest as_of, and of those the last
 * stored), or the newest stored when on_date is NULL or "";
 * *value_json is malloc'ed. RK_ERR_NOT_FOUND: none. */
rk_rc agency_store_data_at(agency_store *s, const char *person, const char *item, const char *on_date,
                           char **value_json, char as_of[RK_DATE_LEN + 1], int64_t *version);
/* The linked person holding this code. */
rk_rc agency_store_person_by_code(agency_store *s, const char *code, char *person, size_t personlen);

/* A value received from a provider, kept with its exchange (runs inside the
 * commit of rk_settle_later; see records/answers.h). */
typedef struct agency_received {
    const char *exchange_id, *person, *provider, *item, *value_json, *as_of;
    int64_t received_ms;
} agency_received;
rk_rc agency_store_keep_received(struct rk_db *db, void *received);

struct rk_db *agency_store_db(agency_store *s);

/* 第8-5: deletes a value received in an exchange — the received row and the
 * value kept in the query's answer — then truncates the write-ahead log, so
 * that it cannot be read from the database files (secure_delete also
 * zeroes freed pages). *deleted is how many rows held the value. */
rk_rc agency_store_delete_received(agency_store *s, const char *exchange_id, int *deleted);
int agency_store_writable(agency_store *s);

#endif
