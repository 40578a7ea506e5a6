/* permissions.c — loader and lookup of the permission table.
 *
 * The law: 番号法 第19条第8号 (provision through the network) and 第21条 (the
 * core refuses what the table does not allow). The table is the former 別表第二
 * of the Act, moved to a 主務省令 by the 令和5年 amendment; here it is data.
 *
 * Files are a strict CSV subset: plain comma-separated fields, no quoting, a
 * header whose first columns are fixed, every record as wide as its header.
 * Rows are kept in one array sorted on the 4-tuple, looked up by bsearch;
 * the catalogues are sorted arrays of (id, Japanese name). */
#include "core/permissions.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <time.h>

#include "lib/condition.h"
#include "lib/util.h"

#define ID_BUF (RK_PERM_ID_MAX + 1)
#define MAX_FIELDS 32
#define TEXT_MAX 1024 /* bytes in a name or other free-text field */

enum { COL_REQUESTER, COL_BUSINESS, COL_PROVIDER, COL_ITEM, NCOLS };

typedef struct {
    char f[NCOLS][ID_BUF];
    unsigned conditions; /* the query conditions the row admits (lib/condition.h) */
    int line;
} perm_row;

typedef struct {
    const char *f[NCOLS];
} row_key;

typedef struct {
    char id[ID_BUF];
    char *name;    /* name_ja; NULL when derived from the rows */
    char *name_en; /* name_en; NULL when derived from the rows or empty */
    char *extra;   /* businesses: law; items: layout_version (データ標準レイアウト); or NULL */
    int line;
} cat_entry;

typedef struct {
    cat_entry *v;
    size_t n, cap;
} catalogue;

struct rk_permissions {
    perm_row *rows;
    size_t n, cap;
    catalogue kinds, businesses, items;
    int64_t version;      /* catalog_version of a signed document; 0: from the CSV files */
    int64_t effective_ms; /* its effective time (施行日) */
    char effective_from[RK_CATALOG_EFFECTIVE_MAX + 1]; /* as the document writes it */
};

static const char *const PERM_COLS[] = {"requester_kind", "business", "provider_kind", "item"};
static const char *const KIND_COLS[] = {"kind", "name_ja", "name_en"};
static const char *const BUSINESS_COLS[] = {"business", "name_ja", "name_en", "law"};
static const char *const ITEM_COLS[] = {"item", "name_ja", "name_en"};

__attribute__((format(printf, 4, 5))) static rk_rc fail(char *err, size_t errlen, rk_rc rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- the CSV reader ---------------------------------------------------- */

typedef struct {
    const char *path; /* for messages */
    char *buf;        /* the whole file, split in place */
    char *next;       /* start of the next line, NULL at the end */
    int line;         /* number of the current line, 1-based */
    int ncols;        /* fields in the header; 0 until it is read */
    int conditions_col; /* permissions.csv: the column "conditions", or -1 */
    int extra_col;      /* catalogues: the column of cat_entry.extra (law, layout_version), or -1 */
    int extra_is_layout; /* that column is layout_version */
    int nf;
    char *f[MAX_FIELDS];
    char *err;
    size_t errlen;
} csv;

__attribute__((format(printf, 2, 3))) static rk_rc csv_fail(csv *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail(c->err, c->errlen, RK_ERR_INVALID, "%s:%d: %s", c->path, c->line > 0 ? c->line : 1, msg);
}

static rk_rc csv_open(csv *c, const char *path, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->path = path;
    c->err = err;
    c->errlen = errlen;
    size_t len = 0;
    rk_rc rc = rk_read_file(path, RK_PERM_FILE_MAX, &c->buf, &len);
    if (rc != RK_OK)
        return fail(err, errlen, rc, "%s: cannot read: %s", path, rk_strerror(rc));
    size_t nul = strlen(c->buf);
    if (nul != len) {
        for (size_t i = 0; i < nul; i++)
            c->line += c->buf[i] == '\n';
        c->line++;
        return csv_fail(c, "NUL byte in the file");
    }
    c->next = c->buf;
    if (strncmp(c->next, "\xEF\xBB\xBF", 3) == 0) /* a UTF-8 BOM, as some editors write */
        c->next += 3;
    return RK_OK;
}

static void csv_close(csv *c)
{
    free(c->buf);
    c->buf = NULL;
}

/* Splits one line into fields; refuses quotes and a width unlike the header's. */
static rk_rc csv_split(csv *c, char *s)
{
    c->nf = 0;
    for (;;) {
        if (c->nf == MAX_FIELDS)
            return csv_fail(c, "more than %d fields", MAX_FIELDS);
        c->f[c->nf++] = s;
        char *comma = strchr(s, ',');
        if (!comma)
            break;
        *comma = '\0';
        s = comma + 1;
    }
    for (int i = 0; i < c->nf; i++)
        if (strchr(c->f[i], '"'))
            return csv_fail(c, "field %d is quoted or holds a '\"': fields are plain, without quotes", i + 1);
    if (c->ncols && c->nf != c->ncols)
        return csv_fail(c, "%d fields, the header has %d", c->nf, c->ncols);
    return RK_OK;
}

/* Reads the next record into c->f; *got = 0 at the end of the file.
 * Blank lines and lines starting with '#' are skipped. */
static rk_rc csv_next(csv *c, int *got)
{
    *got = 0;
    while (c->next && *c->next) {
        char *s = c->next;
        char *nl = strchr(s, '\n');
        if (nl) {
            *nl = '\0';
            c->next = nl + 1;
        } else {
            c->next = NULL;
        }
        c->line++;
        size_t len = strlen(s);
        if (len && s[len - 1] == '\r')
            s[--len] = '\0';
        if (strspn(s, " \t") == len || s[0] == '#')
            continue;
        *got = 1;
        return csv_split(c, s);
    }
    return RK_OK;
}

/* Reads the header: its first columns must be want[0..nwant-1]. */
static rk_rc csv_header(csv *c, const char *const *want, int nwant)
{
    char expect[256] = "";
    for (int i = 0; i < nwant; i++)
        snprintf(expect + strlen(expect), sizeof expect - strlen(expect), "%s%s", i ? "," : "", want[i]);
    int got = 0;
    rk_rc rc = csv_next(c, &got);
    if (rc != RK_OK)
        return rc;
    if (!got)
        return csv_fail(c, "empty file: expected the header %s", expect);
    int ok = c->nf >= nwant;
    for (int i = 0; ok && i < nwant; i++)
        ok = strcmp(c->f[i], want[i]) == 0;
    if (!ok)
        return csv_fail(c, "wrong header: it must start with %s", expect);
    c->ncols = c->nf;
    c->conditions_col = -1;
    c->extra_col = -1;
    for (int i = nwant; i < c->nf; i++)
        if (strcmp(c->f[i], "conditions") == 0)
            c->conditions_col = i;
    for (int i = 0; i < c->nf; i++)
        if (strcmp(c->f[i], "law") == 0 || strcmp(c->f[i], "layout_version") == 0) {
            c->extra_col = i;
            c->extra_is_layout = strcmp(c->f[i], "layout_version") == 0;
        }
    return RK_OK;
}

/* ---- checks on fields -------------------------------------------------- */

/* Well-formed UTF-8 without control characters (names end up in JSON). */
static int valid_text(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        int extra = *u < 0x80 ? 0 : (*u & 0xE0) == 0xC0 ? 1 : (*u & 0xF0) == 0xE0 ? 2 : (*u & 0xF8) == 0xF0 ? 3 : -1;
        if (extra < 0 || (extra == 0 && (*u < 0x20 || *u == 0x7F)))
            return 0;
        uint32_t cp = extra ? (*u & (0x3F >> extra)) : *u;
        for (int i = 1; i <= extra; i++) {
            if ((u[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (u[i] & 0x3F);
        }
        static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        u += extra + 1;
    }
    return 1;
}

/* ---- catalogues -------------------------------------------------------- */

static rk_rc cat_push(catalogue *cat, const char *id, const char *name, const char *name_en, const char *extra,
                      int line)
{
    if (cat->n == cat->cap) {
        size_t cap = cat->cap ? cat->cap * 2 : 16;
        cat_entry *v = realloc(cat->v, cap * sizeof *v);
        if (!v)
            return RK_ERR_NOMEM;
        cat->v = v;
        cat->cap = cap;
    }
    cat_entry *e = &cat->v[cat->n];
    memset(e, 0, sizeof *e);
    memcpy(e->id, id, strlen(id) + 1); /* a valid id, so it fits */
    e->line = line;
    if ((name && !(e->name = strdup(name))) || (name_en && *name_en && !(e->name_en = strdup(name_en))) ||
        (extra && *extra && !(e->extra = strdup(extra)))) {
        free(e->name);
        free(e->name_en);
        return RK_ERR_NOMEM;
    }
    cat->n++;
    return RK_OK;
}

static int cat_cmp(const void *a, const void *b)
{
    const cat_entry *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int cat_key_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const cat_entry *)elem)->id);
}

static const cat_entry *cat_find(const catalogue *cat, const char *id)
{
    if (!id || !cat->n)
        return NULL;
    return bsearch(id, cat->v, cat->n, sizeof *cat->v, cat_key_cmp);
}

static void cat_free(catalogue *cat)
{
    for (size_t i = 0; i < cat->n; i++) {
        free(cat->v[i].name);
        free(cat->v[i].name_en);
        free(cat->v[i].extra);
    }
    free(cat->v);
    memset(cat, 0, sizeof *cat);
}

/* Sorts; a repeated id is an error naming path (or, with merge, dropped). */
static rk_rc cat_finish(catalogue *cat, const char *path, int merge, char *err, size_t errlen)
{
    if (cat->n > 1)
        qsort(cat->v, cat->n, sizeof *cat->v, cat_cmp);
    size_t kept = 0;
    for (size_t i = 0; i < cat->n; i++) {
        if (kept && strcmp(cat->v[kept - 1].id, cat->v[i].id) == 0) {
            if (!merge)
                return fail(err, errlen, RK_ERR_INVALID, "%s:%d: duplicate id '%s' (first at line %d)", path,
                            cat->v[i].line, cat->v[i].id, cat->v[kept - 1].line);
            free(cat->v[i].name);
            free(cat->v[i].name_en);
            free(cat->v[i].extra);
            continue;
        }
        cat->v[kept++] = cat->v[i];
    }
    cat->n = kept;
    return RK_OK;
}

static rk_rc catalogue_line(csv *c, catalogue *cat)
{
    if (!rk_catalogue_id_valid(c->f[0]))
        return csv_fail(c, "bad id '%.64s': ids are 1-%d characters of a-z, 0-9 and _", c->f[0], RK_PERM_ID_MAX);
    if (!c->f[1][0])
        return csv_fail(c, "empty name_ja for '%s'", c->f[0]);
    for (int i = 1; i < c->nf; i++)
        if (strlen(c->f[i]) > TEXT_MAX || !valid_text(c->f[i]))
            return csv_fail(c, "field %d is not UTF-8 text of at most %d bytes", i + 1, TEXT_MAX);
    const char *extra = c->extra_col > 0 ? c->f[c->extra_col] : NULL;
    if (extra && c->extra_is_layout && *extra && !rk_layout_version_valid(extra))
        return csv_fail(c, "bad layout_version '%.64s': 1-%d characters of 0-9, a-z, A-Z, '.', '-'", extra,
                        RK_LAYOUT_VERSION_MAX);
    rk_rc rc = cat_push(cat, c->f[0], c->f[1], c->nf > 2 ? c->f[2] : NULL, extra, c->line);
    return rc == RK_OK ? RK_OK : fail(c->err, c->errlen, rc, "%s:%d: out of memory", c->path, c->line);
}

static rk_rc load_catalogue(const char *dir, const char *file, const char *const *cols, int ncols, catalogue *cat,
                            char *err, size_t errlen)
{
    char path[4096];
    if (strlen(dir) + strlen(file) + 2 > sizeof path)
        return fail(err, errlen, RK_ERR_INVALID, "%s: catalogue directory name too long", dir);
    rk_path_join(path, sizeof path, dir, file);
    csv c;
    int got = 0;
    rk_rc rc = csv_open(&c, path, err, errlen);
    if (rc == RK_OK)
        rc = csv_header(&c, cols, ncols);
    while (rc == RK_OK && (rc = csv_next(&c, &got)) == RK_OK && got)
        rc = catalogue_line(&c, cat);
    if (rc == RK_OK)
        rc = cat_finish(cat, path, 0, err, errlen);
    csv_close(&c);
    return rc;
}

static rk_rc load_catalogues(const char *dir, rk_permissions *p, char *err, size_t errlen)
{
    rk_rc rc = load_catalogue(dir, "kinds.csv", KIND_COLS, 3, &p->kinds, err, errlen);
    if (rc == RK_OK)
        rc = load_catalogue(dir, "businesses.csv", BUSINESS_COLS, 4, &p->businesses, err, errlen);
    if (rc == RK_OK)
        rc = load_catalogue(dir, "items.csv", ITEM_COLS, 3, &p->items, err, errlen);
    return rc;
}

/* ---- rows -------------------------------------------------------------- */

static int key_cmp(const row_key *k, const perm_row *r)
{
    for (int i = 0; i < NCOLS; i++) {
        int c = strcmp(k->f[i], r->f[i]);
        if (c)
            return c;
    }
    return 0;
}

static int row_bsearch_cmp(const void *key, const void *elem)
{
    return key_cmp(key, elem);
}

static int row_sort_cmp(const void *a, const void *b)
{
    const perm_row *x = a, *y = b;
    row_key k = {{x->f[0], x->f[1], x->f[2], x->f[3]}};
    int c = key_cmp(&k, y);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static rk_rc row_push(rk_permissions *p, char *const *f, unsigned conditions, int line)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        perm_row *v = realloc(p->rows, cap * sizeof *v);
        if (!v)
            return RK_ERR_NOMEM;
        p->rows = v;
        p->cap = cap;
    }
    perm_row *r = &p->rows[p->n++];
    for (int i = 0; i < NCOLS; i++)
        memcpy(r->f[i], f[i], strlen(f[i]) + 1); /* valid ids, so they fit */
    r->conditions = conditions;
    r->line = line;
    return RK_OK;
}

static rk_rc perm_line(csv *c, rk_permissions *p, int check)
{
    static const char *const cat_file[NCOLS] = {"kinds.csv", "businesses.csv", "kinds.csv", "items.csv"};
    const catalogue *cats[NCOLS] = {&p->kinds, &p->businesses, &p->kinds, &p->items};
    for (int i = 0; i < NCOLS; i++)
        if (!rk_catalogue_id_valid(c->f[i]))
            return csv_fail(c, "bad %s '%.64s': ids are 1-%d characters of a-z, 0-9 and _", PERM_COLS[i],
                            c->f[i], RK_PERM_ID_MAX);
    for (int i = 0; check && i < NCOLS; i++)
        if (!cat_find(cats[i], c->f[i]))
            return csv_fail(c, "unknown %s '%s' (not in %s)", PERM_COLS[i], c->f[i], cat_file[i]);
    for (int i = NCOLS; i < c->nf; i++)
        if (!valid_text(c->f[i]))
            return csv_fail(c, "field %d is not UTF-8 text", i + 1);
    /* conditions: words separated by ';' (fiscal_year, as_of), or empty for none */
    unsigned conditions = 0;
    for (char *w = c->conditions_col >= 0 ? c->f[c->conditions_col] : NULL, *end; w && *w; w = end) {
        end = w + strcspn(w, ";");
        char saved = *end;
        *end = '\0';
        rk_condition_kind k = rk_condition_kind_of(w);
        *end = saved;
        if (k == RK_COND_NONE)
            return csv_fail(c, "bad conditions '%.64s': words among fiscal_year and as_of, separated by ';'",
                            c->f[c->conditions_col]);
        conditions |= (unsigned)k;
        if (*end)
            end++;
    }
    rk_rc rc = row_push(p, c->f, conditions, c->line);
    return rc == RK_OK ? RK_OK : fail(c->err, c->errlen, rc, "%s:%d: out of memory", c->path, c->line);
}

static rk_rc load_rows(const char *path, rk_permissions *p, int check, char *err, size_t errlen)
{
    csv c;
    int got = 0;
    rk_rc rc = csv_open(&c, path, err, errlen);
    if (rc == RK_OK)
        rc = csv_header(&c, PERM_COLS, NCOLS);
    while (rc == RK_OK && (rc = csv_next(&c, &got)) == RK_OK && got)
        rc = perm_line(&c, p, check);
    csv_close(&c);
    return rc;
}

static rk_rc sort_rows(rk_permissions *p, const char *path, char *err, size_t errlen)
{
    if (p->n > 1)
        qsort(p->rows, p->n, sizeof *p->rows, row_sort_cmp);
    for (size_t i = 1; i < p->n; i++) {
        const perm_row *a = &p->rows[i - 1], *b = &p->rows[i];
        row_key k = {{a->f[0], a->f[1], a->f[2], a->f[3]}};
        if (key_cmp(&k, b) == 0)
            return fail(err, errlen, RK_ERR_INVALID, "%s:%d: duplicate row (first at line %d)", path, b->line,
                        a->line);
    }
    return RK_OK;
}

/* Without catalogues, "known" means "used by a row". */
static rk_rc derive_catalogues(rk_permissions *p, char *err, size_t errlen)
{
    rk_rc rc = RK_OK;
    for (size_t i = 0; i < p->n && rc == RK_OK; i++) {
        const perm_row *r = &p->rows[i];
        rc = cat_push(&p->kinds, r->f[COL_REQUESTER], NULL, NULL, NULL, r->line);
        if (rc == RK_OK)
            rc = cat_push(&p->kinds, r->f[COL_PROVIDER], NULL, NULL, NULL, r->line);
        if (rc == RK_OK)
            rc = cat_push(&p->businesses, r->f[COL_BUSINESS], NULL, NULL, NULL, r->line);
        if (rc == RK_OK)
            rc = cat_push(&p->items, r->f[COL_ITEM], NULL, NULL, NULL, r->line);
    }
    if (rc != RK_OK)
        return fail(err, errlen, rc, "permissions: out of memory");
    cat_finish(&p->kinds, "", 1, NULL, 0);
    cat_finish(&p->businesses, "", 1, NULL, 0);
    cat_finish(&p->items, "", 1, NULL, 0);
    return RK_OK;
}

/* ---- the interface ----------------------------------------------------- */

rk_rc rk_permissions_load(const char *permissions_csv, const char *catalogue_dir, rk_permissions **out,
                          char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!permissions_csv || !out)
        return fail(err, errlen, RK_ERR_INVALID, "permissions: no file given");
    *out = NULL;
    rk_rc rc = RK_OK;
    rk_permissions *p = calloc(1, sizeof *p);
    if (!p) {
        rc = fail(err, errlen, RK_ERR_NOMEM, "permissions: out of memory");
        goto done;
    }
    if (catalogue_dir && (rc = load_catalogues(catalogue_dir, p, err, errlen)) != RK_OK)
        goto done;
    if ((rc = load_rows(permissions_csv, p, catalogue_dir != NULL, err, errlen)) != RK_OK)
        goto done;
    if ((rc = sort_rows(p, permissions_csv, err, errlen)) != RK_OK)
        goto done;
    if (!catalogue_dir)
        rc = derive_catalogues(p, err, errlen);
done:
    if (rc != RK_OK) {
        rk_permissions_free(p);
        return rc;
    }
    *out = p;
    return RK_OK;
}

rk_rc rk_catalogue_load(const char *catalogue_dir, rk_permissions **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    *out = NULL;
    rk_permissions *p = calloc(1, sizeof *p);
    if (!p)
        return fail(err, errlen, RK_ERR_NOMEM, "catalogue: out of memory");
    rk_rc rc = load_catalogues(catalogue_dir, p, err, errlen);
    if (rc != RK_OK) {
        rk_permissions_free(p);
        return rc;
    }
    *out = p;
    return RK_OK;
}

void rk_permissions_free(rk_permissions *p)
{
    if (!p)
        return;
    cat_free(&p->kinds);
    cat_free(&p->businesses);
    cat_free(&p->items);
    free(p->rows);
    free(p);
}

int rk_permissions_allows(const rk_permissions *p, const char *requester_kind, const char *business,
                          const char *provider_kind, const char *item)
{
    if (!p || !p->n || !requester_kind || !business || !provider_kind || !item)
        return 0;
    row_key k = {{requester_kind, business, provider_kind, item}};
    return bsearch(&k, p->rows, p->n, sizeof *p->rows, row_bsearch_cmp) != NULL;
}

unsigned rk_permissions_conditions(const rk_permissions *p, const char *requester_kind, const char *business,
                                   const char *provider_kind, const char *item)
{
    if (!p || !p->n || !requester_kind || !business || !provider_kind || !item)
        return 0;
    row_key k = {{requester_kind, business, provider_kind, item}};
    const perm_row *r = bsearch(&k, p->rows, p->n, sizeof *p->rows, row_bsearch_cmp);
    return r ? r->conditions : 0;
}

size_t rk_permissions_count(const rk_permissions *p)
{
    return p ? p->n : 0;
}

rk_rc rk_permissions_row(const rk_permissions *p, size_t i, const char **requester_kind, const char **business,
                         const char **provider_kind, const char **item)
{
    if (!p || i >= p->n)
        return RK_ERR_NOT_FOUND;
    const perm_row *r = &p->rows[i];
    if (requester_kind)
        *requester_kind = r->f[COL_REQUESTER];
    if (business)
        *business = r->f[COL_BUSINESS];
    if (provider_kind)
        *provider_kind = r->f[COL_PROVIDER];
    if (item)
        *item = r->f[COL_ITEM];
    return RK_OK;
}

static const char *name_in(const rk_permissions *p, const catalogue *cat, const char *id)
{
    const cat_entry *e = p ? cat_find(cat, id) : NULL;
    return e ? e->name : NULL;
}

static const char *name_en_in(const rk_permissions *p, const catalogue *cat, const char *id)
{
    const cat_entry *e = p ? cat_find(cat, id) : NULL;
    return e ? e->name_en : NULL;
}

const char *rk_permissions_business_name_en(const rk_permissions *p, const char *business)
{
    return p ? name_en_in(p, &p->businesses, business) : NULL;
}

const char *rk_permissions_item_name_en(const rk_permissions *p, const char *item)
{
    return p ? name_en_in(p, &p->items, item) : NULL;
}

const char *rk_permissions_kind_name_en(const rk_permissions *p, const char *kind)
{
    return p ? name_en_in(p, &p->kinds, kind) : NULL;
}

const char *rk_permissions_business_name(const rk_permissions *p, const char *business)
{
    return p ? name_in(p, &p->businesses, business) : NULL;
}

const char *rk_permissions_item_name(const rk_permissions *p, const char *item)
{
    return p ? name_in(p, &p->items, item) : NULL;
}

const char *rk_permissions_kind_name(const rk_permissions *p, const char *kind)
{
    return p ? name_in(p, &p->kinds, kind) : NULL;
}

int rk_permissions_known_business(const rk_permissions *p, const char *business)
{
    return p && cat_find(&p->businesses, business) != NULL;
}

int rk_permissions_known_item(const rk_permissions *p, const char *item)
{
    return p && cat_find(&p->items, item) != NULL;
}

int rk_permissions_known_kind(const rk_permissions *p, const char *kind)
{
    return p && cat_find(&p->kinds, kind) != NULL;
}

/* ---- the catalogue as a signed document (DESIGN §2.3) ----------------- */

int rk_layout_version_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > RK_LAYOUT_VERSION_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              s[i] == '.' || s[i] == '-'))
            return 0;
    return 1;
}

int64_t rk_permissions_version(const rk_permissions *p)
{
    return p ? p->version : 0;
}

int64_t rk_permissions_effective_ms(const rk_permissions *p)
{
    return p ? p->effective_ms : 0;
}

const char *rk_permissions_effective_from(const rk_permissions *p)
{
    return p ? p->effective_from : "";
}

const char *rk_permissions_item_layout(const rk_permissions *p, const char *item)
{
    const cat_entry *e = p ? cat_find(&p->items, item) : NULL;
    return e ? e->extra : NULL;
}

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* 施行日 is a date in Japan: "YYYY-MM-DD" is 00:00 Japan time (UTC+9).
 * A moment is RFC 3339 "YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)". */
rk_rc rk_catalog_effective_parse(const char *s, int64_t *ms)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 10 || n > RK_CATALOG_EFFECTIVE_MAX || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2))
        return RK_ERR_INVALID;
    struct tm tm = {0};
    tm.tm_year = num(s, 4) - 1900;
    tm.tm_mon = num(s + 5, 2) - 1;
    tm.tm_mday = num(s + 8, 2);
    int64_t offset_s = 9 * 3600, frac_ms = 0;
    if (n > 10) {
        const char *t = s + 10;
        if ((*t != 'T' && *t != 't') || strlen(t) < 10 || !digits(t + 1, 2) || t[3] != ':' || !digits(t + 4, 2) ||
            t[6] != ':' || !digits(t + 7, 2))
            return RK_ERR_INVALID;
        tm.tm_hour = num(t + 1, 2);
        tm.tm_min = num(t + 4, 2);
        tm.tm_sec = num(t + 7, 2);
        t += 9;
        if (*t == '.') {
            int k = 0;
            for (t++; *t >= '0' && *t <= '9'; t++, k++)
                if (k < 3)
                    frac_ms = frac_ms * 10 + (*t - '0');
            if (k == 0)
                return RK_ERR_INVALID;
            for (; k < 3; k++)
                frac_ms *= 10;
        }
        if ((*t == 'Z' || *t == 'z') && t[1] == '\0')
            offset_s = 0;
        else if ((*t == '+' || *t == '-') && strlen(t) == 6 && digits(t + 1, 2) && t[3] == ':' && digits(t + 4, 2) &&
                 num(t + 1, 2) < 24 && num(t + 4, 2) < 60)
            offset_s = (*t == '-' ? -1 : 1) * (num(t + 1, 2) * 3600 + num(t + 4, 2) * 60);
        else
            return RK_ERR_INVALID;
        if (tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
            return RK_ERR_INVALID;
    }
    struct tm check = tm;
    time_t t = timegm(&check);
    if (t == (time_t)-1 || check.tm_mday != tm.tm_mday || check.tm_mon != tm.tm_mon || tm.tm_year < 70 ||
        tm.tm_year > 8000)
        return RK_ERR_INVALID; /* 2025-02-30 and the like */
    *ms = ((int64_t)t - offset_s) * 1000 + frac_ms;
    return RK_OK;
}

static json_t *conditions_json(unsigned conditions)
{
    json_t *a = json_array();
    if (a && (conditions & RK_COND_FISCAL_YEAR))
        json_array_append_new(a, json_string("fiscal_year"));
    if (a && (conditions & RK_COND_AS_OF))
        json_array_append_new(a, json_string("as_of"));
    return a;
}

static json_t *cat_json(const catalogue *cat, const char *idkey, const char *extrakey)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < cat->n; i++) {
        const cat_entry *e = &cat->v[i];
        json_t *o = json_pack("{s:s,s:s,s:s}", idkey, e->id, "name_ja", e->name ? e->name : "", "name_en",
                              e->name_en ? e->name_en : "");
        if (o && extrakey)
            json_object_set_new(o, extrakey, json_string(e->extra ? e->extra : ""));
        if (!o || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *rk_permissions_json(const rk_permissions *p)
{
    json_t *rows = json_array();
    for (size_t i = 0; rows && i < p->n; i++) {
        const perm_row *r = &p->rows[i];
        const char *layout = rk_permissions_item_layout(p, r->f[COL_ITEM]);
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:o}", "requester_kind", r->f[COL_REQUESTER], "business",
                              r->f[COL_BUSINESS], "provider_kind", r->f[COL_PROVIDER], "item", r->f[COL_ITEM],
                              "conditions", conditions_json(r->conditions));
        if (o && p->version) { /* the row's key in the catalogue (issue 15 item 6): its item's layout, valid from 施行日 */
            json_object_set_new(o, "layout_version", json_string(layout ? layout : ""));
            json_object_set_new(o, "valid_from", json_string(p->effective_from));
        }
        if (!o || json_array_append_new(rows, o) != 0) {
            json_decref(rows);
            return NULL;
        }
    }
    json_t *doc = json_pack("{s:s,s:I,s:s,s:o*,s:o*,s:o*,s:o*}", "format", RK_CATALOG_FORMAT, "catalog_version",
                            (json_int_t)p->version, "effective_from", p->effective_from, "kinds",
                            cat_json(&p->kinds, "kind", NULL), "businesses", cat_json(&p->businesses, "business", "law"),
                            "items", cat_json(&p->items, "item", "layout_version"), "permissions", rows);
    return doc;
}

rk_rc rk_catalog_doc_build(const rk_permissions *tables, int64_t version, const char *effective_from, char **out,
                           size_t *outlen, char *err, size_t errlen)
{
    int64_t ms = 0;
    *out = NULL;
    if (version < 1 || version > RK_CATALOG_VERSION_MAX)
        return fail(err, errlen, RK_ERR_INVALID, "catalog_version must be 1-%lld", (long long)RK_CATALOG_VERSION_MAX);
    if (rk_catalog_effective_parse(effective_from, &ms) != RK_OK)
        return fail(err, errlen, RK_ERR_INVALID,
                    "effective date '%.40s': YYYY-MM-DD (00:00 Japan time) or YYYY-MM-DDTHH:MM:SSZ", effective_from);
    for (size_t i = 0; i < tables->items.n; i++)
        if (!tables->items.v[i].extra)
            return fail(err, errlen, RK_ERR_INVALID, "item '%s' has no layout_version (items.csv)",
                        tables->items.v[i].id);
    rk_permissions view = *tables; /* the same tables, as this version */
    view.version = version;
    view.effective_ms = ms;
    snprintf(view.effective_from, sizeof view.effective_from, "%s", effective_from);
    json_t *doc = rk_permissions_json(&view);
    if (doc) /* what is signed is the document as published: the rows' derived keys are the reader's */
        for (size_t i = 0; i < json_array_size(json_object_get(doc, "permissions")); i++) {
            json_t *row = json_array_get(json_object_get(doc, "permissions"), i);
            json_object_del(row, "layout_version");
            json_object_del(row, "valid_from");
        }
    char *text = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!text)
        return fail(err, errlen, RK_ERR_NOMEM, "catalogue: out of memory");
    *out = text;
    if (outlen)
        *outlen = strlen(text);
    return RK_OK;
}

/* The document's reader: every member known, every id valid and known,
 * nothing twice. `where` names the place of an error. */
typedef struct {
    char *err;
    size_t errlen;
} doc_reader;

__attribute__((format(printf, 2, 3))) static rk_rc doc_fail(doc_reader *d, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail(d->err, d->errlen, RK_ERR_INVALID, "catalog document: %s", msg);
}

/* 1 if o is an object whose members are all among keys. */
static int only_keys(json_t *o, const char *const *keys, size_t nkeys)
{
    const char *k;
    json_t *v;
    if (!json_is_object(o))
        return 0;
    json_object_foreach(o, k, v) {
        size_t i = 0;
        while (i < nkeys && strcmp(k, keys[i]) != 0)
            i++;
        if (i == nkeys)
            return 0;
    }
    return 1;
}

static rk_rc doc_catalogue(doc_reader *d, json_t *arr, const char *name, const char *idkey, const char *extrakey,
                           catalogue *cat)
{
    const char *keys[] = {idkey, "name_ja", "name_en", extrakey};
    if (!json_is_array(arr))
        return doc_fail(d, "\"%s\" must be an array", name);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        const char *id = json_string_value(json_object_get(o, idkey));
        const char *ja = json_string_value(json_object_get(o, "name_ja"));
        json_t *en_j = json_object_get(o, "name_en"), *ex_j = extrakey ? json_object_get(o, extrakey) : NULL;
        const char *en = json_string_value(en_j), *ex = json_string_value(ex_j);
        if (!only_keys(o, keys, extrakey ? 4 : 3) || !id || !ja || (en_j && !en) || (ex_j && !ex))
            return doc_fail(d, "%s[%zu]: an object of %s, name_ja[, name_en%s%s] (strings)", name, i, idkey,
                            extrakey ? ", " : "", extrakey ? extrakey : "");
        if (!rk_catalogue_id_valid(id))
            return doc_fail(d, "%s[%zu]: bad id '%.64s'", name, i, id);
        if (!*ja || strlen(ja) > TEXT_MAX || !valid_text(ja) || (en && (strlen(en) > TEXT_MAX || !valid_text(en))) ||
            (ex && (strlen(ex) > TEXT_MAX || !valid_text(ex))))
            return doc_fail(d, "%s[%zu]: names are non-empty UTF-8 text of at most %d bytes", name, i, TEXT_MAX);
        if (extrakey && strcmp(extrakey, "layout_version") == 0 && !rk_layout_version_valid(ex))
            return doc_fail(d, "%s[%zu]: item '%s' needs a layout_version of 1-%d characters of 0-9, a-z, A-Z, '.', '-'",
                            name, i, id, RK_LAYOUT_VERSION_MAX);
        if (cat_push(cat, id, ja, en, ex, (int)i + 1) != RK_OK)
            return fail(d->err, d->errlen, RK_ERR_NOMEM, "catalog document: out of memory");
    }
    char where[64];
    snprintf(where, sizeof where, "catalog document: %s", name);
    return cat_finish(cat, where, 0, d->err, d->errlen);
}

static rk_rc doc_rows(doc_reader *d, json_t *arr, rk_permissions *p)
{
    static const char *const keys[] = {"requester_kind", "business", "provider_kind", "item", "conditions"};
    const catalogue *cats[NCOLS] = {&p->kinds, &p->businesses, &p->kinds, &p->items};
    if (!json_is_array(arr))
        return doc_fail(d, "\"permissions\" must be an array");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i), *conds = json_object_get(o, "conditions");
        char *f[NCOLS];
        if (!only_keys(o, keys, 5) || (conds && !json_is_array(conds)))
            return doc_fail(d, "permissions[%zu]: an object of requester_kind, business, provider_kind, item"
                               "[, conditions (an array)]", i);
        for (int k = 0; k < NCOLS; k++) {
            f[k] = (char *)json_string_value(json_object_get(o, keys[k]));
            if (!f[k] || !rk_catalogue_id_valid(f[k]))
                return doc_fail(d, "permissions[%zu]: bad %s", i, keys[k]);
            if (!cat_find(cats[k], f[k]))
                return doc_fail(d, "permissions[%zu]: unknown %s '%s'", i, keys[k], f[k]);
        }
        unsigned conditions = 0;
        for (size_t k = 0; k < json_array_size(conds); k++) {
            const char *word = json_string_value(json_array_get(conds, k));
            rk_condition_kind c = word ? rk_condition_kind_of(word) : RK_COND_NONE;
            if (c == RK_COND_NONE)
                return doc_fail(d, "permissions[%zu]: conditions are among \"fiscal_year\" and \"as_of\"", i);
            conditions |= (unsigned)c;
        }
        if (row_push(p, f, conditions, (int)i + 1) != RK_OK)
            return fail(d->err, d->errlen, RK_ERR_NOMEM, "catalog document: out of memory");
    }
    return sort_rows(p, "catalog document: permissions", d->err, d->errlen);
}

rk_rc rk_catalog_doc_parse(const char *text, size_t len, rk_permissions **out, char *err, size_t errlen)
{
    static const char *const keys[] = {"format", "catalog_version", "effective_from", "kinds", "businesses", "items",
                                       "permissions"};
    doc_reader d = {err, errlen};
    if (err && errlen)
        err[0] = '\0';
    *out = NULL;
    if (len > RK_CATALOG_DOC_MAX)
        return fail(err, errlen, RK_ERR_TOO_LARGE, "catalog document: over %u bytes", RK_CATALOG_DOC_MAX);
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return doc_fail(&d, "not JSON: %s (line %d)", je.text, je.line);
    rk_rc rc = RK_OK;
    rk_permissions *p = calloc(1, sizeof *p);
    const char *format = json_string_value(json_object_get(doc, "format"));
    json_t *version = json_object_get(doc, "catalog_version");
    const char *effective = json_string_value(json_object_get(doc, "effective_from"));
    if (!p) {
        rc = fail(err, errlen, RK_ERR_NOMEM, "catalog document: out of memory");
    } else if (!only_keys(doc, keys, sizeof keys / sizeof keys[0])) {
        rc = doc_fail(&d, "an object of format, catalog_version, effective_from, kinds, businesses, items, permissions");
    } else if (!format || strcmp(format, RK_CATALOG_FORMAT) != 0) {
        rc = doc_fail(&d, "format must be \"%s\"", RK_CATALOG_FORMAT);
    } else if (!json_is_integer(version) || json_integer_value(version) < 1 ||
               json_integer_value(version) > RK_CATALOG_VERSION_MAX) {
        rc = doc_fail(&d, "catalog_version must be an integer 1-%lld", (long long)RK_CATALOG_VERSION_MAX);
    } else if (!effective || rk_catalog_effective_parse(effective, &p->effective_ms) != RK_OK) {
        rc = doc_fail(&d, "effective_from must be YYYY-MM-DD (00:00 Japan time) or an RFC 3339 time");
    } else {
        p->version = json_integer_value(version);
        snprintf(p->effective_from, sizeof p->effective_from, "%s", effective);
        if ((rc = doc_catalogue(&d, json_object_get(doc, "kinds"), "kinds", "kind", NULL, &p->kinds)) == RK_OK &&
            (rc = doc_catalogue(&d, json_object_get(doc, "businesses"), "businesses", "business", "law",
                                &p->businesses)) == RK_OK &&
            (rc = doc_catalogue(&d, json_object_get(doc, "items"), "items", "item", "layout_version", &p->items)) ==
                RK_OK)
            rc = doc_rows(&d, json_object_get(doc, "permissions"), p);
    }
    json_decref(doc);
    if (rc != RK_OK) {
        rk_permissions_free(p);
        return rc;
    }
    *out = p;
    return RK_OK;
}
