/* records.h — the 法23条 records of exchanges and their leaves in the
 * records log (DESIGN §2.2, §3). The answers kept for retries and the
 * settlement that writes a record with its answer are in records/answers.h.
 *
 * A record is written once, when its exchange is settled — provided, no
 * data, refused or failed — together with the answer, in one transaction:
 * both are on disk before anyone is told. The core and every agency node
 * keep their own records in their own database; `subject` is the agency's
 * person id there, and the core's internal person serial at the core
 * (kept for disclosure, never content). */
#ifndef RK_RECORDS_H
#define RK_RECORDS_H

#include <jansson.h>
#include <stdint.h>
#include "store/db.h"
#include "lib/err.h"
#include "records/answers.h"

/* An exchange id is "<requester agency>.<the requester's own id>", so that
 * no agency can take another's ids (the core checks the prefix). */
#define RK_EXCHANGE_ID_MAX 100

typedef struct rk_record {
    char exchange_id[RK_EXCHANGE_ID_MAX + 1];
    char side[12];          /* "core", "requester", "provider" */
    char requester[64];
    char provider[64];
    char business[65];
    char item[65];
    char operator_id[65];
    char subject[65];
    int64_t requested_ms;
    int64_t provided_ms;    /* 0: nothing was provided */
    char outcome[32];
    char reason[200];
    char payload_sha256[65];
    char condition[24];     /* the query's condition (lib/condition.h), "" for none */
    int64_t catalog_version; /* the core: the catalogue version that allowed or refused it (DESIGN §2.3); 0: none */
} rk_record;

typedef struct rk_records_query {
    const char *exchange_id; /* NULL: any */
    const char *subject;     /* NULL: any */
    const char *agency;      /* NULL: any; else the requester or the provider */
    const char *outcome;     /* NULL: any */
    int64_t since_ms, until_ms; /* requested in [since, until); 0: unbounded */
    int64_t before_seq;      /* 0: from the newest */
    int limit;               /* 1..500 */
} rk_records_query;

/* A search by agency, outcome or time reads at most this many records per
 * page, newest first: a page may come back short (even empty) with a
 * next_before to go on from, so that no request scans seven years. */
#define RK_RECORDS_SEARCH_WINDOW 100000

/* The columns rk_record_from_row reads, in order, from its first column. */
#define RK_RECORD_COLUMNS "exchange_id, side, requester, provider, business, item, operator, subject," \
                          " requested_ms, provided_ms, outcome, reason, payload_sha256, condition, catalog_version"

/* The stored row of a record (records are kept compact: names as ids into
 * record_names, the digest as 32 bytes; the view `records` shows them with
 * the columns of RK_RECORD_COLUMNS). A long scan reads these columns from
 * record_rows and maps the ids with the names loaded at its start, which
 * is cheaper than the view's lookups. */
#define RK_RECORD_ROW_COLUMNS "exchange_id, side_id, requester_id, provider_id, business_id, item_id, operator_id," \
                              " subject, requested_ms, provided_ms, outcome_id, reason, payload, payload_text," \
                              " condition, catalog_version"
typedef struct rk_record_names rk_record_names;
/* Inside a callback: RK_OK when the store keeps compact rows (schema
 * version 9 on); RK_ERR_NOT_FOUND for a store an older renkei left and
 * that was not migrated (a read-only tool reads its `records` as it is). */
rk_rc rk_records_compact(rk_db *db);
/* Inside a callback, before the scan's statement: every name by id. */
rk_rc rk_record_names_load(rk_db *db, rk_record_names **out);
void rk_record_names_free(rk_record_names *n);
/* Reads a record from a row selected with RK_RECORD_ROW_COLUMNS at column
 * col; RK_ERR_NOT_FOUND when it names an id loaded after n (the caller
 * loads the names again and goes on from that record). */
rk_rc rk_record_from_stored(rk_stmt *q, int col, const rk_record_names *n, rk_record *r);

/* Brings the module's tables (records, kept answers, tree heads) to the
 * newest version (rk_db_migrate, module "records"). */
rk_rc rk_records_migrate(rk_db *db);
/* The same up to schema version `version` only: a store as an older renkei
 * left it (for the tests of the conversions). */
rk_rc rk_records_migrate_to(rk_db *db, int version);

/* Store-wide locks (store/db.h) of the records log, among the instances
 * over one database: the sequence of records, and the log's leader, which
 * stores tiles and signs heads. */
#define RK_RECORDS_SEQUENCE_LOCK 0x726b736571LL
#define RK_RECORDS_LEADER_LOCK 0x726b6c6f67LL

/* PostgreSQL: the records a partition of record_rows holds (schema step 11;
 * about a month at 2×10⁷ records a day). */
#define RK_RECORDS_PARTITION_SPAN 600000000LL
/* PostgreSQL: makes the partition after the current one when it is
 * missing (the signer, each round; RK_OK also when another instance's
 * lock made it wait and it gave up until the next). SQLite: nothing. */
rk_rc rk_records_partitions_ahead(rk_db *db);

/* Inside a write callback (rk_db_write, a settlement's extra): appends one
 * record. RK_ERR_CONFLICT when (exchange_id, side, outcome) is recorded. */
rk_rc rk_record_append(rk_db *db, const rk_record *r);
/* The record's leaf hash in the records log (lib/records_log.h). */
void rk_record_leaf(const rk_record *r, uint8_t out[32]);
/* The leaf's bytes (its canonical JSON), malloc'ed; NULL: out of memory. */
char *rk_record_leaf_text(const rk_record *r);
/* Inside a callback: reads a record from a row selected with
 * RK_RECORD_COLUMNS at column col. */
void rk_record_from_row(rk_stmt *q, int col, rk_record *r);

/* Calls fn for every record in seq order (a scan, for a tool such as
 * `renkei records verify`), with its seq; r is valid during the call only.
 * Stops at the first result of fn other than RK_OK and returns it. fn must
 * not use db. */
typedef rk_rc (*rk_record_fn)(void *arg, int64_t seq, const rk_record *r);
rk_rc rk_records_each(rk_db *db, rk_record_fn fn, void *arg);

/* The first record of an exchange on a side (and with an outcome, if not
 * NULL). RK_ERR_NOT_FOUND when there is none. */
rk_rc rk_records_find(rk_db *db, const char *exchange_id, const char *side, const char *outcome, rk_record *out);
/* Appends a later step of an exchange's handling (an unlawful marking, a
 * deletion): the record `base` with a new outcome and reason, at now_ms.
 * A step already recorded is no error. Its own write (rk_db_write): not
 * inside a callback. */
rk_rc rk_records_append_step(rk_db *db, const rk_record *base, const char *outcome, const char *reason, int64_t now_ms);

/* ---------- retention (DESIGN §4.1: written out, then pruned) ---------- */

/* The records up to seq *upto were archived and pruned (0: none). */
rk_rc rk_records_archived_upto(rk_db *db, int64_t *upto);
/* The end of the prefix of the log that may be archived now: every record
 * up to *upto was requested before before_ms; at most limit (the size of a
 * signed, tiled head). 0: none. */
rk_rc rk_records_archive_due(rk_db *db, int64_t before_ms, int64_t limit, int64_t *upto);
/* Calls fn for the records from..upto in seq order (a scan). */
rk_rc rk_records_range(rk_db *db, int64_t from, int64_t upto, rk_record_fn fn, void *arg);
/* Prunes the records from..upto, written out in a file whose SHA-256 is
 * file_sha256, in one write; RK_ERR_CONFLICT when from is not the next
 * record after the last pruning, or the records are not all there. The
 * tiles stay: every proof of a later record stays valid. */
rk_rc rk_records_prune(rk_db *db, int64_t from, int64_t upto, const char *file_sha256, int64_t now_ms);

/* Records newest first as a JSON array (caller decrefs); *next_before is the
 * seq to pass as before_seq for the next page, 0 when there is none. */
rk_rc rk_records_list(rk_db *db, const rk_records_query *q, json_t **out, int64_t *next_before);
int64_t rk_records_count(rk_db *db);

/* GET /v1/records?exchange_id=&person=&agency=&outcome=&since=&until=&before=&limit=
 * for any node
 * (records_serve.c). */
struct rk_request;
struct rk_response;
void rk_records_serve(rk_db *db, const struct rk_request *req, struct rk_response *resp);

#endif
