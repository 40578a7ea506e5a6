#include "jlis/jlis_store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/db.h"
#include "crypto/card.h"
#include "lib/csv.h"
#include "lib/mynumber.h"
#include "lib/util.h"

/* Rows of residents.csv loaded per commit: 5,000,000 residents make 100
 * commits, none of which holds the writer long. */
#define IMPORT_CHUNK 50000

struct jlis_store {
    rk_db *db;
    int readonly; /* RK_DB_READONLY: every write is refused here, before the driver */
};

/* J-LIS's tables, one migration a version (module "jlis"). Step 1 is the
 * schema from before versioned migrations: IF NOT EXISTS, so that a database
 * made then opens unchanged. Step 2: where an import loads the CSV before
 * it replaces the registry in one commit (same columns, same order). Step 3:
 * the four basic items of each resident (in both tables, in the same order;
 * the import stamp forgotten, so that the next start loads them), and the
 * log of lookups. */
static const char *const jlis_steps[] = {
    "CREATE TABLE IF NOT EXISTS residents ("
    "  my_number TEXT PRIMARY KEY, resident_code TEXT NOT NULL UNIQUE, previous TEXT NOT NULL DEFAULT ''"
    "){without_rowid};"
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS relays ("
    "  id {id}, agency TEXT NOT NULL, acquisition_no TEXT NOT NULL, line TEXT NOT NULL,"
    "  at_ms BIGINT NOT NULL);",
    "CREATE TABLE IF NOT EXISTS residents_load ("
    "  my_number TEXT PRIMARY KEY, resident_code TEXT NOT NULL UNIQUE, previous TEXT NOT NULL DEFAULT ''"
    "){without_rowid};",
    "ALTER TABLE residents ADD COLUMN name TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE residents ADD COLUMN birth_date TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE residents ADD COLUMN sex TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE residents ADD COLUMN address TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE residents_load ADD COLUMN name TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE residents_load ADD COLUMN birth_date TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE residents_load ADD COLUMN sex TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE residents_load ADD COLUMN address TEXT NOT NULL DEFAULT '';"
    "DELETE FROM meta WHERE k = 'residents_stamp';"
    "CREATE TABLE lookups ("
    "  id {id}, at_ms BIGINT NOT NULL, agency TEXT NOT NULL, acquisition_no TEXT NOT NULL,"
    "  purpose TEXT NOT NULL, outcome TEXT NOT NULL, mismatched TEXT NOT NULL DEFAULT '');",
    /* Step 4: persons' cards (DESIGN §2.5): which resident a card serial
     * belongs to, taken in from the card file `renkei card issue` appends to. */
    ("CREATE TABLE cards (card_serial TEXT PRIMARY KEY, resident_code TEXT NOT NULL, issued_ms BIGINT NOT NULL)"
     "{without_rowid};"),
};

rk_rc jlis_store_open(const char *target, int flags, jlis_store **out)
{
    jlis_store *s = calloc(1, sizeof *s);
    if (!s)
        return RK_ERR_NOMEM;
    s->readonly = (flags & RK_DB_READONLY) != 0;
    rk_rc rc = rk_db_open(target, flags, &s->db);
    if (rc == RK_OK && !s->readonly)
        rc = rk_db_migrate(s->db, "jlis", jlis_steps, (int)(sizeof jlis_steps / sizeof jlis_steps[0]));
    if (rc != RK_OK) {
        rk_db_close(s->db);
        free(s);
        return rc;
    }
    *out = s;
    return RK_OK;
}

void jlis_store_close(jlis_store *s)
{
    if (!s)
        return;
    rk_db_close(s->db);
    free(s);
}

int jlis_residents_header(char *line, jlis_columns *cols, const char **bad)
{
    char *fields[16];
    line[strcspn(line, "\r\n")] = '\0';
    if (strncmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3; /* a UTF-8 byte order mark */
    int n = rk_csv_split(line, fields, 16);
    *cols = (jlis_columns){.n = n, .previous = -1, .name = -1, .birth_date = -1, .sex = -1, .address = -1};
    if (n < 2 || n > 16 || strcmp(fields[0], "my_number") != 0 || strcmp(fields[1], "resident_code") != 0) {
        *bad = "header must start with my_number,resident_code";
        return -1;
    }
    for (int i = 2; i < n; i++) {
        int *at = strcmp(fields[i], "previous_resident_codes") == 0 ? &cols->previous
                  : strcmp(fields[i], "name") == 0                  ? &cols->name
                  : strcmp(fields[i], "birth_date") == 0            ? &cols->birth_date
                  : strcmp(fields[i], "sex") == 0                   ? &cols->sex
                  : strcmp(fields[i], "address") == 0               ? &cols->address
                                                                    : NULL;
        if (at && *at < 0)
            *at = i;
    }
    if (cols->name < 0 || cols->birth_date < 0 || cols->sex < 0 || cols->address < 0) {
        *bad = "header lacks the basic items name,birth_date,sex,address";
        return -1;
    }
    return 0;
}

/* Splits one CSV row into its fields and checks them. Returns a reason, or
 * NULL when the row is good. */
static const char *parse_row(char *line, const jlis_columns *cols, jlis_row *row)
{
    char *f[16];
    line[strcspn(line, "\r\n")] = '\0';
    int n = rk_csv_split(line, f, 16);
    if (n != cols->n)
        return n < 0 ? "unbalanced quotes" : "not as many fields as the header";
    row->my_number = f[0];
    row->resident_code = f[1];
    row->previous = cols->previous >= 0 ? f[cols->previous] : "";
    row->items = (rk_basic_info){.name = f[cols->name], .birth_date = f[cols->birth_date],
                                 .sex = *f[cols->sex] ? f[cols->sex] : NULL, .address = f[cols->address]};
    if (rk_mynumber_validate(row->my_number) != RK_OK)
        return "invalid my_number";
    if (rk_resident_code_validate(row->resident_code) != RK_OK)
        return "invalid resident_code (11 digits)";
    size_t k = 0;
    for (const char *p = row->previous; *p; p += strcspn(p, ";"), p += (*p == ';')) {
        char one[16];
        size_t w = strcspn(p, ";");
        if (w >= sizeof one || ++k > JLIS_MAX_PREVIOUS)
            return "too many or too long previous_resident_codes";
        snprintf(one, sizeof one, "%.*s", (int)w, p);
        if (rk_resident_code_validate(one) != RK_OK)
            return "invalid previous resident code (11 digits)";
    }
    const char *bad = rk_basic_check(&row->items);
    return bad ? rk_basic_error_message(bad) : NULL;
}

int jlis_residents_row(FILE *f, const jlis_columns *cols, char line[JLIS_LINE_MAX], size_t *lineno, jlis_row *row,
                       const char **bad)
{
    *bad = NULL;
    for (;;) {
        if (!fgets(line, JLIS_LINE_MAX, f))
            return 0;
        ++*lineno;
        size_t len = strlen(line);
        /* a line longer than the buffer is refused, not read as two rows */
        if (len == JLIS_LINE_MAX - 1 && line[len - 1] != '\n' && !feof(f)) {
            *bad = "line too long";
            return -1;
        }
        if (line[0] == '\n' || line[0] == '\0' || (line[0] == '\r' && line[1] == '\n'))
            continue;
        *bad = parse_row(line, cols, row);
        return *bad ? -1 : 1;
    }
}

rk_basic_info jlis_resident_items(const jlis_resident *r)
{
    return (rk_basic_info){.name = r->name, .birth_date = r->birth_date, .sex = r->sex[0] ? r->sex : NULL,
                           .address = r->address};
}

/* ---- import: the CSV goes to residents_load a chunk a commit, then one
 * commit replaces residents with it; a bad row or a crash on the way leaves
 * residents as it was (the next import clears residents_load). ---- */

typedef struct import_job {
    FILE *f;
    jlis_columns cols;
    const char *path, *stamp;
    char *err;
    size_t errlen, lineno, n;
    int started, eof;
} import_job;

static rk_rc load_chunk(rk_db *db, void *arg)
{
    import_job *j = arg;
    rk_rc rc = RK_OK;
    if (!j->started) {
        if ((rc = rk_stmt_exec(rk_db_stmt(db, "DELETE FROM residents_load"))) != RK_OK)
            return rc;
        j->started = 1;
    }
    char line[JLIS_LINE_MAX];
    for (size_t rows = 0; rows < IMPORT_CHUNK;) {
        jlis_row row;
        const char *bad;
        int got = jlis_residents_row(j->f, &j->cols, line, &j->lineno, &row, &bad);
        if (got == 0) {
            j->eof = 1;
            break;
        }
        if (got < 0) {
            snprintf(j->err, j->errlen, "%s:%zu: %s", j->path, j->lineno, bad);
            return RK_ERR_INVALID;
        }
        rk_stmt *st = rk_db_stmt(db, "INSERT INTO residents_load(my_number, resident_code, previous, name, birth_date,"
                                     " sex, address) VALUES (?, ?, ?, ?, ?, ?, ?)");
        rk_bind_text(st, 1, row.my_number);
        rk_bind_text(st, 2, row.resident_code);
        rk_bind_text(st, 3, row.previous);
        rk_bind_text(st, 4, row.items.name);
        rk_bind_text(st, 5, row.items.birth_date);
        rk_bind_text(st, 6, row.items.sex ? row.items.sex : "");
        rk_bind_text(st, 7, row.items.address);
        rc = rk_stmt_exec(st);
        rk_wipe(line, sizeof line);
        if (rc != RK_OK) {
            if (rc == RK_ERR_CONFLICT)
                snprintf(j->err, j->errlen, "%s:%zu: duplicate my_number or resident_code", j->path, j->lineno);
            return rc;
        }
        rows++;
        j->n++;
    }
    return RK_OK;
}

/* The one commit that makes the loaded CSV the registry. */
static rk_rc replace_residents(rk_db *db, void *arg)
{
    import_job *j = arg;
    rk_rc rc = rk_stmt_exec(rk_db_stmt(db, "DELETE FROM residents"));
    /* SELECT *: the two tables have the same columns in the same order, and
     * SQLite then copies the rows as they are stored. */
    if (rc == RK_OK)
        rc = rk_stmt_exec(rk_db_stmt(db, "INSERT INTO residents SELECT * FROM residents_load"));
    if (rc == RK_OK)
        rc = rk_stmt_exec(rk_db_stmt(db, "DELETE FROM residents_load"));
    rk_stmt *st = rc == RK_OK ? rk_db_stmt(db, "INSERT INTO meta(k, v) VALUES ('residents_stamp', ?)"
                                               " ON CONFLICT (k) DO UPDATE SET v = excluded.v")
                              : NULL;
    rk_bind_text(st, 1, j->stamp);
    return rc == RK_OK ? rk_stmt_exec(st) : rc;
}

static rk_rc clear_load(rk_db *db, void *arg)
{
    (void)arg;
    return rk_stmt_exec(rk_db_stmt(db, "DELETE FROM residents_load"));
}

typedef struct stamp_args {
    const char *stamp;
    int same;
} stamp_args;

static rk_rc stamp_in_tx(rk_db *db, void *arg)
{
    stamp_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT v FROM meta WHERE k = 'residents_stamp'");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        x->same = strcmp(rk_col_text(q, 0), x->stamp) == 0;
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc jlis_store_import(jlis_store *s, const char *csv_path, size_t *imported, char *err, size_t errlen)
{
    struct stat st;
    *imported = 0;
    if (errlen)
        err[0] = '\0';
    if (s->readonly)
        return RK_ERR_DENIED;
    if (stat(csv_path, &st) != 0) {
        snprintf(err, errlen, "%s: cannot read", csv_path);
        return RK_ERR_NOT_FOUND;
    }
    char stamp[64];
    snprintf(stamp, sizeof stamp, "%lld:%lld", (long long)st.st_size, (long long)st.st_mtime);
    stamp_args sa = {stamp, 0};
    rk_rc rc = rk_db_read(s->db, stamp_in_tx, &sa);
    if (rc != RK_OK || sa.same)
        return rc;
    import_job j = {.path = csv_path, .stamp = stamp, .err = err, .errlen = errlen, .lineno = 1};
    if (!(j.f = fopen(csv_path, "r"))) {
        snprintf(err, errlen, "%s: cannot read", csv_path);
        return RK_ERR_IO;
    }
    char header[JLIS_LINE_MAX];
    const char *bad = "no header";
    if (!fgets(header, sizeof header, j.f) || jlis_residents_header(header, &j.cols, &bad) != 0) {
        snprintf(err, errlen, "%s:1: %s", csv_path, bad);
        fclose(j.f);
        return RK_ERR_INVALID;
    }
    while (rc == RK_OK && !j.eof)
        rc = rk_db_write(s->db, load_chunk, &j);
    if (rc == RK_OK)
        rc = rk_db_write(s->db, replace_residents, &j);
    if (rc != RK_OK && j.started)
        rk_db_write(s->db, clear_load, NULL); /* no copy of a refused file is kept */
    fclose(j.f);
    if (rc == RK_OK)
        *imported = j.n;
    else if (!err[0])
        snprintf(err, errlen, "%s: the registry could not be written: %s", csv_path, rk_strerror(rc));
    return rc;
}

typedef struct find_args {
    const char *my_number;
    jlis_resident *out;
} find_args;

static rk_rc find_in_tx(rk_db *db, void *arg)
{
    find_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT resident_code, previous, name, birth_date, sex, address FROM residents"
                                " WHERE my_number = ?");
    rk_bind_text(q, 1, x->my_number);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc;
    jlis_resident *out = x->out;
    rk_col_copy(q, 0, out->resident_code, sizeof out->resident_code);
    rk_col_copy(q, 2, out->name, sizeof out->name);
    rk_col_copy(q, 3, out->birth_date, sizeof out->birth_date);
    rk_col_copy(q, 4, out->sex, sizeof out->sex);
    rk_col_copy(q, 5, out->address, sizeof out->address);
    const char *p = rk_col_text(q, 1);
    while (p && *p && out->n_previous < JLIS_MAX_PREVIOUS) {
        size_t w = strcspn(p, ";");
        snprintf(out->previous[out->n_previous++], sizeof out->previous[0], "%.*s", (int)w, p);
        p += w + (p[w] == ';');
    }
    return RK_OK;
}

rk_rc jlis_store_find(jlis_store *s, const char *my_number, jlis_resident *out)
{
    memset(out, 0, sizeof *out);
    find_args x = {my_number, out};
    return rk_db_read(s->db, find_in_tx, &x);
}

typedef struct relay_args {
    const char *agency, *acquisition_no, *line;
    long long at_ms;
} relay_args;

static rk_rc log_relay_in_tx(rk_db *db, void *arg)
{
    relay_args *r = arg;
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO relays(agency, acquisition_no, line, at_ms) VALUES (?, ?, ?, ?)");
    rk_bind_text(st, 1, r->agency);
    rk_bind_text(st, 2, r->acquisition_no);
    rk_bind_text(st, 3, r->line);
    rk_bind_int(st, 4, r->at_ms);
    return rk_stmt_exec(st);
}

rk_rc jlis_store_log_relay(jlis_store *s, const char *agency, const char *acquisition_no, const char *line,
                           long long at_ms)
{
    if (s->readonly)
        return RK_ERR_DENIED;
    relay_args r = {agency, acquisition_no, line, at_ms};
    return rk_db_write(s->db, log_relay_in_tx, &r);
}

static rk_rc log_lookup_in_tx(rk_db *db, const char *agency, const jlis_lookup *l, long long at_ms)
{
    char items[64];
    rk_basic_items_text(l->mismatched, items, sizeof items);
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO lookups(at_ms, agency, acquisition_no, purpose, outcome, mismatched)"
                                 " VALUES (?, ?, ?, ?, ?, ?)");
    rk_bind_int(st, 1, at_ms);
    rk_bind_text(st, 2, agency);
    rk_bind_text(st, 3, l->acquisition_no);
    rk_bind_text(st, 4, l->purpose);
    rk_bind_text(st, 5, l->outcome);
    rk_bind_text(st, 6, items);
    return rk_stmt_exec(st);
}

static rk_rc log_relays_in_tx(rk_db *db, void *arg)
{
    const jlis_relay_log *m = arg;
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < m->n && rc == RK_OK; i++) {
        relay_args one = {m->agency, m->acquisition_nos[i], m->line, m->at_ms};
        rc = log_relay_in_tx(db, &one);
    }
    for (size_t i = 0; i < m->n_lookups && rc == RK_OK; i++)
        rc = log_lookup_in_tx(db, m->agency, &m->lookups[i], m->at_ms);
    return rc;
}

rk_rc jlis_store_log_lookups(jlis_store *s, const char *agency, const jlis_lookup *lookups, size_t n, long long at_ms)
{
    if (s->readonly)
        return RK_ERR_DENIED;
    jlis_relay_log m = {.agency = agency, .lookups = lookups, .n_lookups = n, .at_ms = at_ms};
    return rk_db_write(s->db, log_relays_in_tx, &m);
}

rk_rc jlis_store_log_relays(jlis_store *s, const char *agency, const char *const *acquisition_nos, size_t n,
                            const char *line, long long at_ms)
{
    if (s->readonly)
        return RK_ERR_DENIED;
    jlis_relay_log m = {.agency = agency, .line = line, .acquisition_nos = acquisition_nos, .n = n, .at_ms = at_ms};
    return rk_db_write(s->db, log_relays_in_tx, &m);
}

rk_rc jlis_store_log_relays_later(jlis_store *s, struct event_base *base, const jlis_relay_log *log,
                                  void (*done)(void *arg, rk_rc rc), void *arg)
{
    if (s->readonly)
        return RK_ERR_DENIED;
    return rk_db_write_later(s->db, base, log_relays_in_tx, (void *)log, done, arg);
}

static rk_rc count_in_tx(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT count(*) FROM residents");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        *(int64_t *)arg = rk_col_int(q, 0);
    return rc;
}

size_t jlis_store_count(jlis_store *s)
{
    int64_t n = 0;
    rk_db_scan(s->db, count_in_tx, &n);
    return (size_t)n;
}

int jlis_store_writable(jlis_store *s)
{
    return !s->readonly && rk_db_writable(s->db);
}

rk_db *jlis_store_db(jlis_store *s)
{
    return s->db;
}

typedef struct list_args {
    int64_t before;
    int limit;
    json_t *arr;
} list_args;

static rk_rc relays_in_tx(rk_db *db, void *arg)
{
    list_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT id, agency, acquisition_no, line, at_ms FROM relays"
                                " WHERE id < ? ORDER BY id DESC LIMIT ?");
    rk_bind_int(q, 1, x->before == 0 ? INT64_MAX : x->before); /* 0: from the newest */
    rk_bind_int(q, 2, x->limit);
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        char at[32];
        rk_format_time(rk_col_int(q, 4), at, sizeof at);
        json_array_append_new(x->arr, json_pack("{s:I,s:s,s:s,s:s,s:s}", "seq", (json_int_t)rk_col_int(q, 0), "agency",
                                                rk_col_text(q, 1), "acquisition_no", rk_col_text(q, 2), "line",
                                                rk_col_text(q, 3), "at", at));
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc jlis_store_relays(jlis_store *s, int64_t before, int limit, json_t **out)
{
    list_args x = {before, limit, json_array()};
    if (!x.arr)
        return RK_ERR_NOMEM;
    rk_rc rc = rk_db_scan(s->db, relays_in_tx, &x);
    if (rc != RK_OK) {
        json_decref(x.arr);
        return rc;
    }
    *out = x.arr;
    return RK_OK;
}

static rk_rc lookups_in_tx(rk_db *db, void *arg)
{
    list_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT id, at_ms, agency, acquisition_no, purpose, outcome, mismatched FROM lookups"
                                " WHERE id < ? ORDER BY id DESC LIMIT ?");
    rk_bind_int(q, 1, x->before == 0 ? INT64_MAX : x->before);
    rk_bind_int(q, 2, x->limit);
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        char at[32];
        rk_format_time(rk_col_int(q, 1), at, sizeof at);
        json_t *one = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)rk_col_int(q, 0), "at", at, "agency",
                                rk_col_text(q, 2), "acquisition_no", rk_col_text(q, 3), "purpose", rk_col_text(q, 4),
                                "outcome", rk_col_text(q, 5));
        const char *items = rk_col_text(q, 6);
        if (one && items && *items)
            json_object_set_new(one, "mismatched", json_string(items));
        json_array_append_new(x->arr, one);
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc jlis_store_lookups(jlis_store *s, int64_t before, int limit, json_t **out)
{
    list_args x = {before, limit, json_array()};
    if (!x.arr)
        return RK_ERR_NOMEM;
    rk_rc rc = rk_db_scan(s->db, lookups_in_tx, &x);
    if (rc != RK_OK) {
        json_decref(x.arr);
        return rc;
    }
    *out = x.arr;
    return RK_OK;
}

/* ---------- persons' cards ---------- */

#define CARDS_CHUNK 50000 /* rows a commit */

typedef struct cards_job {
    FILE *f;
    const char *path, *stamp;
    char *err;
    size_t errlen, lineno, n;
    int eof, write; /* write 0: a pass that only checks the rows */
} cards_job;

/* The rows of the card file "card_serial,resident_code,issued_ms": up to a
 * chunk of them checked, and inserted when j->write (a card already known
 * stays as it is). */
static rk_rc cards_chunk(rk_db *db, void *arg)
{
    cards_job *j = arg;
    char line[256];
    for (size_t rows = 0; rows < CARDS_CHUNK;) {
        if (!fgets(line, sizeof line, j->f)) {
            j->eof = 1;
            break;
        }
        j->lineno++;
        if (line[0] == '\n' || line[0] == '\r')
            continue;
        char *f[4];
        line[strcspn(line, "\r\n")] = '\0';
        int n = rk_csv_split(line, f, 4);
        char *end = NULL;
        long long issued = n == 3 ? strtoll(f[2], &end, 10) : -1;
        if (n != 3 || !rk_card_serial_valid(f[0]) || rk_resident_code_validate(f[1]) != RK_OK || !end || *end ||
            issued < 0) {
            snprintf(j->err, j->errlen, "%s:%zu: not card_serial,resident_code,issued_ms", j->path, j->lineno);
            return RK_ERR_INVALID;
        }
        rows++;
        j->n++;
        if (!j->write) {
            rk_wipe(line, sizeof line);
            continue;
        }
        rk_stmt *st = rk_db_stmt(db, "INSERT INTO cards(card_serial, resident_code, issued_ms) VALUES (?, ?, ?)"
                                     " ON CONFLICT (card_serial) DO NOTHING");
        rk_bind_text(st, 1, f[0]);
        rk_bind_text(st, 2, f[1]);
        rk_bind_int(st, 3, issued);
        rk_rc rc = rk_stmt_exec(st);
        rk_wipe(line, sizeof line);
        if (rc != RK_OK)
            return rc;
    }
    return RK_OK;
}

static rk_rc cards_stamp_in_tx(rk_db *db, void *arg)
{
    stamp_args *x = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT v FROM meta WHERE k = 'cards_stamp'");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        x->same = strcmp(rk_col_text(q, 0), x->stamp) == 0;
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

static rk_rc cards_stamp_set(rk_db *db, void *arg)
{
    rk_stmt *st = rk_db_stmt(db, "INSERT INTO meta(k, v) VALUES ('cards_stamp', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v");
    rk_bind_text(st, 1, ((cards_job *)arg)->stamp);
    return rk_stmt_exec(st);
}

/* Reads the file through once: checking every row (write 0), or inserting them. */
static rk_rc cards_pass(jlis_store *s, cards_job *j, int write)
{
    if (!(j->f = fopen(j->path, "re"))) {
        snprintf(j->err, j->errlen, "%s: cannot read", j->path);
        return RK_ERR_IO;
    }
    char header[256];
    rk_rc rc = RK_OK;
    j->lineno = 1;
    j->n = 0;
    j->eof = 0;
    j->write = write;
    if (!fgets(header, sizeof header, j->f) || strncmp(header, "card_serial,resident_code,issued_ms", 35) != 0) {
        snprintf(j->err, j->errlen, "%s:1: header must be card_serial,resident_code,issued_ms", j->path);
        rc = RK_ERR_INVALID;
    }
    while (rc == RK_OK && !j->eof)
        rc = write ? rk_db_write(s->db, cards_chunk, j) : cards_chunk(NULL, j);
    fclose(j->f);
    j->f = NULL;
    return rc;
}

rk_rc jlis_store_import_cards(jlis_store *s, const char *path, size_t *imported, char *err, size_t errlen)
{
    struct stat st;
    *imported = 0;
    if (errlen)
        err[0] = '\0';
    if (s->readonly)
        return RK_ERR_DENIED;
    if (stat(path, &st) != 0)
        return RK_OK; /* no card issued yet */
    char stamp[64];
    snprintf(stamp, sizeof stamp, "%lld:%lld.%09ld", (long long)st.st_size, (long long)st.st_mtim.tv_sec,
             (long)st.st_mtim.tv_nsec);
    stamp_args sa = {stamp, 0};
    rk_rc rc = rk_db_read(s->db, cards_stamp_in_tx, &sa);
    if (rc != RK_OK || sa.same)
        return rc;
    /* a bad row refuses the whole file: nothing of it is taken in */
    cards_job j = {.path = path, .stamp = stamp, .err = err, .errlen = errlen};
    if ((rc = cards_pass(s, &j, 0)) == RK_OK && (rc = cards_pass(s, &j, 1)) == RK_OK)
        rc = rk_db_write(s->db, cards_stamp_set, &j);
    if (rc == RK_OK)
        *imported = j.n;
    else if (!err[0])
        snprintf(err, errlen, "%s: the cards could not be written: %s", path, rk_strerror(rc));
    return rc;
}

typedef struct card_args {
    const char *serial;
    char *code;
} card_args;

static rk_rc card_in_tx(rk_db *db, void *arg)
{
    card_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT resident_code FROM cards WHERE card_serial = ?");
    rk_bind_text(q, 1, a->serial);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        rk_col_copy(q, 0, a->code, 12);
    return rc;
}

rk_rc jlis_store_card(jlis_store *s, const char *serial, char resident_code[12])
{
    card_args a = {serial, resident_code};
    resident_code[0] = '\0';
    return rk_db_read(s->db, card_in_tx, &a);
}
