/* jlis_store.h — J-LIS's resident registry: 個人番号 ↔ 住民票コード with the
 * resident-code history and each resident's four basic items (基本4情報),
 * imported from residents.csv; a log of relayed code acquisitions, and a log
 * of every lookup of the registry an agency caused (J-LIS's record of its
 * provisions of 本人確認情報): metadata only, never a My Number nor an
 * item's value. */
#ifndef RK_JLIS_STORE_H
#define RK_JLIS_STORE_H

#include <stddef.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/basic_info.h"
#include "lib/err.h"
#include "lib/ids.h"

#define JLIS_MAX_PREVIOUS 8

typedef struct jlis_store jlis_store;

typedef struct jlis_resident {
    char resident_code[12];
    char previous[JLIS_MAX_PREVIOUS][12];
    int n_previous;
    char name[RK_NAME_FIELD_MAX + 1];
    char birth_date[RK_DATE_LEN + 1];
    char sex[2];                  /* "" where not held */
    char address[RK_ADDRESS_FIELD_MAX + 1];
} jlis_resident;

/* The resident's items as rk_basic_compare takes them (pointing into r). */
rk_basic_info jlis_resident_items(const jlis_resident *r);

/* Opens J-LIS's database: target goes to rk_db_open as is ("sqlite:PATH" or
 * a PATH). flags 0: brings the tables to the newest version. flags
 * RK_DB_READONLY (store/db.h): a tool reading a running node's data; no
 * migration, and every write here (import included) answers RK_ERR_DENIED. */
rk_rc jlis_store_open(const char *target, int flags, jlis_store **out);
void jlis_store_close(jlis_store *s);

/* Imports the CSV when it changed since the last import. Its header starts
 * with my_number,resident_code and names the columns name, birth_date, sex
 * and address (and previous_resident_codes, earlier codes separated by
 * ';'), in any order after those two; fields may be quoted (RFC 4180); sex
 * is "1", "2" or empty where not held. A bad row refuses the whole file,
 * with file and line in err, and leaves the registry as it was. The file is
 * loaded in several commits and replaces the registry in the last: finds
 * meanwhile see the registry as it was. */
rk_rc jlis_store_import(jlis_store *s, const char *csv_path, size_t *imported, char *err, size_t errlen);

/* Where each column is in a residents file (-1: absent). */
typedef struct jlis_columns {
    int n, previous, name, birth_date, sex, address;
} jlis_columns;
/* Reads the header line (modified): 0, or -1 with the reason in *bad. */
int jlis_residents_header(char *line, jlis_columns *cols, const char **bad);

/* One row: fields pointing into the line read. */
typedef struct jlis_row {
    char *my_number, *resident_code, *previous; /* previous: ';'-separated, "" when none */
    rk_basic_info items;                        /* checked; sex NULL where not held */
} jlis_row;
/* The next row of a residents file after its header, from f: 1 with its
 * fields, 0 at the end, -1 with the reason in *bad. Blank lines are
 * skipped; *lineno counts the lines read. What jlis_store_import reads
 * with. */
#define JLIS_LINE_MAX 2048
int jlis_residents_row(FILE *f, const jlis_columns *cols, char line[JLIS_LINE_MAX], size_t *lineno, jlis_row *row,
                       const char **bad);

/* RK_ERR_NOT_FOUND when nobody has this number. */
rk_rc jlis_store_find(jlis_store *s, const char *my_number, jlis_resident *out);

/* Records that an acquisition was relayed on a line ("primary"/"backup"). */
rk_rc jlis_store_log_relay(jlis_store *s, const char *agency, const char *acquisition_no, const char *line,
                           long long at_ms);
/* The same for a batch of acquisitions relayed together, in one commit. */
rk_rc jlis_store_log_relays(jlis_store *s, const char *agency, const char *const *acquisition_nos, size_t n,
                            const char *line, long long at_ms);
/* One lookup of the registry for an agency: what J-LIS keeps of it. */
typedef struct jlis_lookup {
    const char *acquisition_no; /* the agency's number for it: 取得番号, or a recheck's check_no */
    const char *purpose;        /* "link" (a code request), "recheck", or "card" (the portal's, by card serial) */
    const char *outcome;        /* "match", "mismatch", "unknown_person"; a card's: "match", "unknown_card", "card_revoked" */
    unsigned mismatched;        /* RK_BASIC_* bits: which items differed (their names are kept) */
} jlis_lookup;
/* Records lookups of one agency at at_ms, in one commit. */
rk_rc jlis_store_log_lookups(jlis_store *s, const char *agency, const jlis_lookup *lookups, size_t n, long long at_ms);

/* The same without a thread waiting, for a flow on the event loop: the
 * relays and the request's lookups in one commit by the store's committer
 * (rk_db_write_later on base), then done(arg, rc) on the loop. *log and
 * what it points to must live until then; on an error return nothing is
 * queued and done will not be called. */
typedef struct jlis_relay_log {
    const char *agency, *line;
    const char *const *acquisition_nos; /* relayed */
    size_t n;
    const jlis_lookup *lookups;
    size_t n_lookups;
    long long at_ms;
} jlis_relay_log;
struct event_base;
rk_rc jlis_store_log_relays_later(jlis_store *s, struct event_base *base, const jlis_relay_log *log,
                                  void (*done)(void *arg, rk_rc rc), void *arg);
size_t jlis_store_count(jlis_store *s);
/* The relay log newest first as JSON (metadata: agency, acquisition
 * number, line, time — never a My Number); *out for the caller to decref. */
rk_rc jlis_store_relays(jlis_store *s, int64_t before, int limit, json_t **out);
/* The lookup log newest first as JSON ({seq, at, agency, acquisition_no,
 * purpose, outcome[, mismatched]}); *out for the caller to decref. */
rk_rc jlis_store_lookups(jlis_store *s, int64_t before, int limit, json_t **out);
/* Persons' cards (DESIGN §2.5): takes in the card file (header
 * card_serial,resident_code,issued_ms; `renkei card issue` appends to it)
 * when it changed since the last time; a card known already stays as it
 * is. A bad row refuses the whole file (file and line in err) and the
 * cards stay as they were. No file: no card yet, RK_OK. */
rk_rc jlis_store_import_cards(jlis_store *s, const char *path, size_t *imported, char *err, size_t errlen);
/* The resident code of a card serial; RK_ERR_NOT_FOUND when no card has it. */
rk_rc jlis_store_card(jlis_store *s, const char *serial, char resident_code[12]);
/* 0 when opened read-only. */
int jlis_store_writable(jlis_store *s);
struct rk_db *jlis_store_db(jlis_store *s);

#endif
