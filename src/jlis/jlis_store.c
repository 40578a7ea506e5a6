#include "jlis/jlis_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/db.h"
#include "lib/mynumber.h"
#include "lib/util.h"

struct jlis_store {
    rk_db *db;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS residents ("
    "  my_number TEXT PRIMARY KEY, resident_code TEXT NOT NULL UNIQUE, previous TEXT NOT NULL DEFAULT ''"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS relays ("
    "  id INTEGER PRIMARY KEY, agency TEXT NOT NULL, acquisition_no TEXT NOT NULL, line TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL);";

rk_rc jlis_store_open(const char *path, jlis_store **out)
{
    jlis_store *s = calloc(1, sizeof *s);
    if (!s)
        return RK_ERR_NOMEM;
    rk_rc rc = rk_db_open_schema(path, schema, &s->db);
    if (rc != RK_OK) {
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

/* Splits one CSV row of digits into its fields; previous codes are checked
 * one by one. Returns a reason, or NULL when the row is good. */
static const char *parse_row(char *line, char **number, char **code, char **previous)
{
    line[strcspn(line, "\r\n")] = '\0';
    *number = strtok_r(line, ",", &line);
    *code = *number ? strsep(&line, ",") : NULL;
    *previous = line ? strsep(&line, ",") : NULL;
    if (!*previous)
        *previous = "";
    if (!*number || rk_mynumber_validate(*number) != RK_OK)
        return "invalid my_number";
    if (!*code || rk_resident_code_validate(*code) != RK_OK)
        return "invalid resident_code (11 digits)";
    size_t n = 0;
    for (const char *p = *previous; *p; p += strcspn(p, ";"), p += (*p == ';')) {
        char one[16];
        size_t w = strcspn(p, ";");
        if (w >= sizeof one || ++n > JLIS_MAX_PREVIOUS)
            return "too many or too long previous_resident_codes";
        snprintf(one, sizeof one, "%.*s", (int)w, p);
        if (rk_resident_code_validate(one) != RK_OK)
            return "invalid previous resident code (11 digits)";
    }
    return NULL;
}

static rk_rc import_rows(jlis_store *s, FILE *f, const char *path, size_t *imported, char *err, size_t errlen)
{
    char line[512];
    size_t lineno = 1, n = 0;
    if (!fgets(line, sizeof line, f) || strncmp(line, "my_number,resident_code", 23) != 0) {
        snprintf(err, errlen, "%s:1: header must start with my_number,resident_code", path);
        return RK_ERR_INVALID;
    }
    rk_rc rc = rk_db_exec(s->db, "DELETE FROM residents");
    while (rc == RK_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '\n' || line[0] == '\0')
            continue;
        char *number, *code, *previous;
        const char *bad = parse_row(line, &number, &code, &previous);
        if (bad) {
            snprintf(err, errlen, "%s:%zu: %s", path, lineno, bad);
            return RK_ERR_INVALID;
        }
        sqlite3_stmt *st = rk_db_sqlite_stmt(s->db, "INSERT INTO residents(my_number, resident_code, previous) VALUES (?,?,?)");
        if (!st)
            return RK_ERR_STORE;
        sqlite3_bind_text(st, 1, number, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, code, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, previous, -1, SQLITE_STATIC);
        if ((rc = rk_db_step_rc(s->db, sqlite3_step(st))) != RK_OK)
            snprintf(err, errlen, "%s:%zu: duplicate my_number or resident_code", path, lineno);
        n++;
    }
    *imported = n;
    return rc;
}

rk_rc jlis_store_import(jlis_store *s, const char *csv_path, size_t *imported, char *err, size_t errlen)
{
    struct stat st;
    *imported = 0;
    if (stat(csv_path, &st) != 0) {
        snprintf(err, errlen, "%s: cannot read", csv_path);
        return RK_ERR_NOT_FOUND;
    }
    char stamp[64];
    snprintf(stamp, sizeof stamp, "%lld:%lld", (long long)st.st_size, (long long)st.st_mtime);
    rk_db_lock(s->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(s->db, "SELECT v FROM meta WHERE k = 'residents_stamp'");
    int same = q && sqlite3_step(q) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(q, 0), stamp) == 0;
    if (q)
        sqlite3_reset(q);
    rk_rc rc = RK_OK;
    FILE *f = NULL;
    if (same)
        goto done;
    if (!(f = fopen(csv_path, "r"))) {
        snprintf(err, errlen, "%s: cannot read", csv_path);
        rc = RK_ERR_IO;
        goto done;
    }
    if ((rc = rk_db_begin(s->db)) != RK_OK)
        goto done;
    rc = import_rows(s, f, csv_path, imported, err, errlen);
    sqlite3_stmt *m = rc == RK_OK ? rk_db_sqlite_stmt(s->db, "INSERT OR REPLACE INTO meta(k, v) VALUES ('residents_stamp', ?)") : NULL;
    if (m) {
        sqlite3_bind_text(m, 1, stamp, -1, SQLITE_TRANSIENT);
        rc = rk_db_step_rc(s->db, sqlite3_step(m));
    }
    if (rc == RK_OK)
        rc = rk_db_commit(s->db);
    if (rc != RK_OK)
        rk_db_rollback(s->db);
done:
    if (f)
        fclose(f);
    rk_db_unlock(s->db);
    return rc;
}

rk_rc jlis_store_find(jlis_store *s, const char *my_number, jlis_resident *out)
{
    memset(out, 0, sizeof *out);
    rk_db_lock(s->db);
    rk_rc rc = RK_ERR_STORE;
    sqlite3_stmt *q = rk_db_sqlite_stmt(s->db, "SELECT resident_code, previous FROM residents WHERE my_number = ?");
    if (!q)
        goto done;
    sqlite3_bind_text(q, 1, my_number, -1, SQLITE_STATIC);
    int r = sqlite3_step(q);
    if (r != SQLITE_ROW) {
        rc = r == SQLITE_DONE ? RK_ERR_NOT_FOUND : RK_ERR_STORE;
        goto done;
    }
    snprintf(out->resident_code, sizeof out->resident_code, "%s", (const char *)sqlite3_column_text(q, 0));
    const char *p = (const char *)sqlite3_column_text(q, 1);
    while (p && *p && out->n_previous < JLIS_MAX_PREVIOUS) {
        size_t w = strcspn(p, ";");
        snprintf(out->previous[out->n_previous++], sizeof out->previous[0], "%.*s", (int)w, p);
        p += w + (p[w] == ';');
    }
    rc = RK_OK;
done:
    if (q)
        sqlite3_reset(q);
    rk_db_unlock(s->db);
    return rc;
}

typedef struct relay_args {
    const char *agency, *acquisition_no, *line;
    long long at_ms;
} relay_args;

static rk_rc log_relay_in_tx(rk_db *db, void *arg)
{
    relay_args *r = arg;
    sqlite3_stmt *st = rk_db_sqlite_stmt(db, "INSERT INTO relays(agency, acquisition_no, line, at_ms) VALUES (?,?,?,?)");
    if (!st)
        return RK_ERR_STORE;
    sqlite3_bind_text(st, 1, r->agency, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->acquisition_no, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->line, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, r->at_ms);
    rk_rc rc = rk_db_step_rc(db, sqlite3_step(st));
    sqlite3_reset(st);
    return rc;
}

rk_rc jlis_store_log_relay(jlis_store *s, const char *agency, const char *acquisition_no, const char *line,
                           long long at_ms)
{
    relay_args r = {agency, acquisition_no, line, at_ms};
    return rk_db_write(s->db, log_relay_in_tx, &r);
}

typedef struct relays_args {
    const char *agency, *line;
    const char *const *acquisition_nos;
    size_t n;
    long long at_ms;
} relays_args;

static rk_rc log_relays_in_tx(rk_db *db, void *arg)
{
    relays_args *m = arg;
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < m->n && rc == RK_OK; i++) {
        relay_args one = {m->agency, m->acquisition_nos[i], m->line, m->at_ms};
        rc = log_relay_in_tx(db, &one);
    }
    return rc;
}

rk_rc jlis_store_log_relays(jlis_store *s, const char *agency, const char *const *acquisition_nos, size_t n,
                            const char *line, long long at_ms)
{
    relays_args m = {agency, line, acquisition_nos, n, at_ms};
    return rk_db_write(s->db, log_relays_in_tx, &m);
}

size_t jlis_store_count(jlis_store *s)
{
    rk_db_lock(s->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(s->db, "SELECT count(*) FROM residents");
    size_t n = q && sqlite3_step(q) == SQLITE_ROW ? (size_t)sqlite3_column_int64(q, 0) : 0;
    if (q)
        sqlite3_reset(q);
    rk_db_unlock(s->db);
    return n;
}

int jlis_store_writable(jlis_store *s)
{
    return rk_db_writable(s->db);
}

rk_db *jlis_store_db(jlis_store *s)
{
    return s->db;
}

rk_rc jlis_store_relays(jlis_store *s, int64_t before, int limit, json_t **out)
{
    json_t *arr = json_array();
    rk_db_lock(s->db);
    sqlite3_stmt *q = rk_db_sqlite_stmt(s->db, "SELECT id, agency, acquisition_no, line, at_ms FROM relays"
                                        " WHERE (?1 = 0 OR id < ?1) ORDER BY id DESC LIMIT ?2");
    if (q) {
        sqlite3_bind_int64(q, 1, before);
        sqlite3_bind_int(q, 2, limit);
        while (sqlite3_step(q) == SQLITE_ROW) {
            char at[32];
            rk_format_time(sqlite3_column_int64(q, 4), at, sizeof at);
            json_array_append_new(arr, json_pack("{s:I,s:s,s:s,s:s,s:s}", "seq", (json_int_t)sqlite3_column_int64(q, 0),
                                                 "agency", (const char *)sqlite3_column_text(q, 1), "acquisition_no",
                                                 (const char *)sqlite3_column_text(q, 2), "line",
                                                 (const char *)sqlite3_column_text(q, 3), "at", at));
        }
        sqlite3_reset(q);
    }
    rk_db_unlock(s->db);
    if (!q) {
        json_decref(arr);
        return RK_ERR_STORE;
    }
    *out = arr;
    return RK_OK;
}
