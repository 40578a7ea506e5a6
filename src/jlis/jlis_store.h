/* jlis_store.h — J-LIS's resident registry: 個人番号 ↔ 住民票コード with the
 * resident-code history, imported from residents.csv, and a log of relayed
 * code acquisitions (metadata only). */
#ifndef RK_JLIS_STORE_H
#define RK_JLIS_STORE_H

#include <stddef.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/err.h"

#define JLIS_MAX_PREVIOUS 8

typedef struct jlis_store jlis_store;

typedef struct jlis_resident {
    char resident_code[12];
    char previous[JLIS_MAX_PREVIOUS][12];
    int n_previous;
} jlis_resident;

/* Opens J-LIS's database: target goes to rk_db_open as is ("sqlite:PATH" or
 * a PATH). flags 0: brings the tables to the newest version. flags
 * RK_DB_READONLY (store/db.h): a tool reading a running node's data; no
 * migration, and every write here (import included) answers RK_ERR_DENIED. */
rk_rc jlis_store_open(const char *target, int flags, jlis_store **out);
void jlis_store_close(jlis_store *s);

/* Imports the CSV (my_number,resident_code[,previous codes separated by ';'])
 * when it changed since the last import. A bad row refuses the whole file,
 * with file and line in err, and leaves the registry as it was. The file is
 * loaded in several commits and replaces the registry in the last: finds
 * meanwhile see the registry as it was. */
rk_rc jlis_store_import(jlis_store *s, const char *csv_path, size_t *imported, char *err, size_t errlen);

/* The next row of a residents file after its header, from f: 1 with its
 * fields (pointing into line; previous codes ';'-separated, "" when none),
 * 0 at the end, -1 with the reason in *bad. Blank lines are skipped;
 * *lineno counts the lines read. What jlis_store_import reads with. */
#define JLIS_LINE_MAX 512
int jlis_residents_row(FILE *f, char line[JLIS_LINE_MAX], size_t *lineno, char **number, char **code,
                       char **previous, const char **bad);

/* RK_ERR_NOT_FOUND when nobody has this number. */
rk_rc jlis_store_find(jlis_store *s, const char *my_number, jlis_resident *out);

/* Records that an acquisition was relayed on a line ("primary"/"backup"). */
rk_rc jlis_store_log_relay(jlis_store *s, const char *agency, const char *acquisition_no, const char *line,
                           long long at_ms);
/* The same for a batch of acquisitions relayed together, in one commit. */
rk_rc jlis_store_log_relays(jlis_store *s, const char *agency, const char *const *acquisition_nos, size_t n,
                            const char *line, long long at_ms);
/* The same without a thread waiting, for a flow on the event loop: committed
 * by the store's committer (rk_db_write_later on base), then done(arg, rc)
 * on the loop. *log and what it points to must live until then; on an error
 * return nothing is queued and done will not be called. */
typedef struct jlis_relay_log {
    const char *agency, *line;
    const char *const *acquisition_nos;
    size_t n;
    long long at_ms;
} jlis_relay_log;
struct event_base;
rk_rc jlis_store_log_relays_later(jlis_store *s, struct event_base *base, const jlis_relay_log *log,
                                  void (*done)(void *arg, rk_rc rc), void *arg);
size_t jlis_store_count(jlis_store *s);
/* The relay log newest first as JSON (metadata: agency, acquisition
 * number, line, time — never a My Number); *out for the caller to decref. */
rk_rc jlis_store_relays(jlis_store *s, int64_t before, int limit, json_t **out);
/* 0 when opened read-only. */
int jlis_store_writable(jlis_store *s);
struct rk_db *jlis_store_db(jlis_store *s);

#endif
