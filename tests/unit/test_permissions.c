/* test_permissions.c — the permission table (src/core/permissions.c) and the
 * real data in data/ (the former 別表第二 rows, 番号法 第19条第8号).
 *
 * The real table is found through $RENKEI_SOURCE_DIR, else by walking up
 * from the working directory to a folder holding data/permissions.csv.
 * Malformed files are written to a mkdtemp directory next to a small
 * catalogue, and each must be refused with the right line number. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/permissions.h"
#include "lib/condition.h"
#include "lib/util.h"

#define PERM_HEADER "requester_kind,business,provider_kind,item,source\n"

static struct {
    char src[4096];  /* the source tree */
    char data[4200]; /* its data/ */
    char real[4300]; /* data/permissions.csv */
    char tmp[64];    /* scratch catalogue and tables */
} fx;

static int find_source_dir(char *out, size_t len)
{
    const char *env = getenv("RENKEI_SOURCE_DIR");
#ifdef RENKEI_SOURCE_DIR
    if (!env || !*env)
        env = RENKEI_SOURCE_DIR;
#endif
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return 1;
    }
    char dir[4096], probe[4200];
    if (!getcwd(dir, sizeof dir))
        return 0;
    for (;;) {
        snprintf(probe, sizeof probe, "%s/data/permissions.csv", dir);
        if (access(probe, R_OK) == 0) {
            snprintf(out, len, "%s", dir);
            return 1;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || (slash == dir && dir[1] == '\0'))
            return 0;
        slash[slash == dir ? 1 : 0] = '\0';
    }
}

static void tmp_path(char *out, size_t len, const char *file)
{
    snprintf(out, len, "%s/%s", fx.tmp, file);
}

static void write_tmp(const char *file, const char *text)
{
    char path[256];
    tmp_path(path, sizeof path, file);
    assert_int_equal(rk_write_file(path, text, strlen(text), 0600), RK_OK);
}

static void write_good_catalogue(void)
{
    write_tmp("kinds.csv", "kind,name_ja,name_en\n"
                           "municipality,市町村長,Mayor\n"
                           "prefecture,都道府県知事等,Governor\n"
                           "pension,日本年金機構,Japan Pension Service\n");
    write_tmp("businesses.csv", "business,name_ja,name_en,law\n"
                                "child_allowance,児童手当法による児童手当又は特例給付の支給に関する事務,"
                                "Child allowance,児童手当法\n"
                                "public_assistance,生活保護法による保護の決定及び実施に関する事務,"
                                "Public assistance,生活保護法\n");
    write_tmp("items.csv", "item,name_ja,name_en\n"
                           "local_tax,地方税関係情報,Local tax\n"
                           "pension_benefits,年金給付関係情報,Pension benefits\n");
}

static int group_setup(void **state)
{
    (void)state;
    if (!find_source_dir(fx.src, sizeof fx.src)) {
        fprintf(stderr, "cannot find data/permissions.csv: set RENKEI_SOURCE_DIR\n");
        return -1;
    }
    snprintf(fx.data, sizeof fx.data, "%s/data", fx.src);
    snprintf(fx.real, sizeof fx.real, "%s/permissions.csv", fx.data);
    snprintf(fx.tmp, sizeof fx.tmp, "/tmp/rk-test-perm-XXXXXX");
    if (!mkdtemp(fx.tmp))
        return -1;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(fx.tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Loads text as tmp/perm.csv against the scratch catalogue. */
static rk_rc load_text(const char *text, rk_permissions **out, char *err, size_t errlen)
{
    char path[256];
    write_good_catalogue();
    write_tmp("perm.csv", text);
    tmp_path(path, sizeof path, "perm.csv");
    return rk_permissions_load(path, fx.tmp, out, err, errlen);
}

/* ---- the real table ---------------------------------------------------- */

static void test_real_table_loads(void **state)
{
    (void)state;
    rk_permissions *p = NULL;
    char err[512];
    assert_int_equal(rk_permissions_load(fx.real, fx.data, &p, err, sizeof err), RK_OK);
    assert_true(rk_permissions_count(p) >= 12);

    assert_true(rk_permissions_allows(p, "municipality", "child_allowance", "municipality", "local_tax"));
    /* same row, another item; same row, kinds swapped */
    assert_false(rk_permissions_allows(p, "municipality", "child_allowance", "municipality", "pension_benefits"));
    assert_true(rk_permissions_allows(p, "prefecture", "public_assistance", "municipality", "local_tax"));
    assert_false(rk_permissions_allows(p, "municipality", "public_assistance", "prefecture", "local_tax"));
    assert_false(rk_permissions_allows(p, "municipality", "child_allowance", "municipality", "local_ta"));
    assert_false(rk_permissions_allows(p, NULL, "child_allowance", "municipality", "local_tax"));
    assert_false(rk_permissions_allows(NULL, "municipality", "child_allowance", "municipality", "local_tax"));

    assert_string_equal(rk_permissions_business_name(p, "child_allowance"),
                        "児童手当法による児童手当又は特例給付の支給に関する事務");
    assert_string_equal(rk_permissions_item_name(p, "local_tax"), "地方税関係情報");
    assert_string_equal(rk_permissions_kind_name(p, "municipality"), "市町村長");
    assert_string_equal(rk_permissions_item_name_en(p, "local_tax"), "Local tax information");
    assert_string_equal(rk_permissions_kind_name_en(p, "pension"), "Japan Pension Service");
    assert_null(rk_permissions_business_name(p, "no_such_business"));
    assert_null(rk_permissions_business_name_en(p, "no_such_business"));
    assert_null(rk_permissions_item_name(p, NULL));
    assert_true(rk_permissions_known_business(p, "local_tax_assessment"));
    assert_false(rk_permissions_known_business(p, "local_tax"));
    assert_true(rk_permissions_known_item(p, "medical_insurance_benefits"));
    assert_false(rk_permissions_known_item(p, "child_allowance_x"));
    assert_true(rk_permissions_known_kind(p, "pension"));
    rk_permissions_free(p);
}

/* The demo network (municipality, prefecture, pension, insurer) needs
 * permitted exchanges in both directions between its kinds. */
static void test_real_table_serves_the_demo(void **state)
{
    (void)state;
    static const char *const rows[][4] = {
        {"municipality", "child_allowance", "municipality", "local_tax"},
        {"municipality", "child_allowance", "pension", "pension_benefits"},
        {"municipality", "long_term_care_insurance", "pension", "pension_benefits"},
        {"prefecture", "public_assistance", "municipality", "local_tax"},
        {"pension", "national_pension", "municipality", "local_tax"},
        {"insurer", "health_insurance_benefits", "municipality", "local_tax"},
        {"municipality", "local_tax_assessment", "insurer", "medical_insurance_benefits"},
    };
    rk_permissions *p = NULL;
    char err[512];
    assert_int_equal(rk_permissions_load(fx.real, fx.data, &p, err, sizeof err), RK_OK);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_true(rk_permissions_allows(p, rows[i][0], rows[i][1], rows[i][2], rows[i][3]));
    /* every row can be listed and is allowed */
    for (size_t i = 0; i < rk_permissions_count(p); i++) {
        const char *rq, *bus, *pv, *item;
        assert_int_equal(rk_permissions_row(p, i, &rq, &bus, &pv, &item), RK_OK);
        assert_true(rk_permissions_allows(p, rq, bus, pv, item));
        assert_non_null(rk_permissions_business_name(p, bus));
        assert_non_null(rk_permissions_item_name(p, item));
    }
    assert_int_equal(rk_permissions_row(p, rk_permissions_count(p), NULL, NULL, NULL, NULL), RK_ERR_NOT_FOUND);
    rk_permissions_free(p);
}

static void test_without_catalogues(void **state)
{
    (void)state;
    rk_permissions *p = NULL;
    char err[512];
    assert_int_equal(rk_permissions_load(fx.real, NULL, &p, err, sizeof err), RK_OK);
    assert_true(rk_permissions_count(p) >= 12);
    assert_true(rk_permissions_allows(p, "municipality", "child_allowance", "municipality", "local_tax"));
    assert_null(rk_permissions_business_name(p, "child_allowance"));
    assert_null(rk_permissions_business_name_en(p, "child_allowance"));
    assert_true(rk_permissions_known_business(p, "child_allowance"));
    assert_true(rk_permissions_known_item(p, "local_tax"));
    assert_true(rk_permissions_known_kind(p, "prefecture"));
    assert_false(rk_permissions_known_item(p, "nothing"));
    rk_permissions_free(p);
}

/* Each row says which query conditions it admits (column "conditions");
 * a table without the column admits none. */
static void test_conditions_per_row(void **state)
{
    (void)state;
    rk_permissions *p = NULL;
    char err[512];
    assert_int_equal(rk_permissions_load(fx.real, NULL, &p, err, sizeof err), RK_OK);
    assert_int_equal(rk_permissions_conditions(p, "municipality", "child_allowance", "municipality", "local_tax"),
                     RK_COND_FISCAL_YEAR | RK_COND_AS_OF);
    assert_int_equal(rk_permissions_conditions(p, "municipality", "nothing", "municipality", "local_tax"), 0);
    rk_permissions_free(p);
    write_tmp("cond.csv", "requester_kind,business,provider_kind,item,conditions\n"
                          "municipality,b1,insurer,i1,as_of\nmunicipality,b2,insurer,i1,\n");
    char path[256];
    tmp_path(path, sizeof path, "cond.csv");
    assert_int_equal(rk_permissions_load(path, NULL, &p, err, sizeof err), RK_OK);
    assert_int_equal(rk_permissions_conditions(p, "municipality", "b1", "insurer", "i1"), RK_COND_AS_OF);
    assert_int_equal(rk_permissions_conditions(p, "municipality", "b2", "insurer", "i1"), 0);
    rk_permissions_free(p);
    write_tmp("cond.csv", "requester_kind,business,provider_kind,item,conditions\nmunicipality,b1,insurer,i1,month\n");
    assert_int_equal(rk_permissions_load(path, NULL, &p, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "cond.csv:2: bad conditions 'month'"));
}

/* ---- format details that are accepted ---------------------------------- */

static void test_lenient_details(void **state)
{
    (void)state;
    rk_permissions *p = NULL;
    char err[512];
    const char *text = "\xEF\xBB\xBF# a comment before the header\r\n"
                       "requester_kind,business,provider_kind,item,source,note\r\n"
                       "\r\n"
                       "municipality,child_allowance,municipality,local_tax,旧別表第二,x\r\n"
                       "# a comment\n"
                       "   \n"
                       "municipality,child_allowance,pension,pension_benefits,旧別表第二,"; /* no final newline */
    assert_int_equal(load_text(text, &p, err, sizeof err), RK_OK);
    assert_int_equal(rk_permissions_count(p), 2);
    assert_true(rk_permissions_allows(p, "municipality", "child_allowance", "pension", "pension_benefits"));
    assert_false(rk_permissions_allows(p, "pension", "child_allowance", "municipality", "pension_benefits"));
    rk_permissions_free(p);

    assert_int_equal(load_text("requester_kind,business,provider_kind,item\n", &p, err, sizeof err), RK_OK);
    assert_int_equal(rk_permissions_count(p), 0);
    assert_false(rk_permissions_allows(p, "municipality", "child_allowance", "municipality", "local_tax"));
    rk_permissions_free(p);
}

/* ---- malformed tables -------------------------------------------------- */

struct bad_case {
    const char *what;
    const char *text;
    int line;
    const char *reason; /* a word the message must hold */
};

static void test_bad_tables(void **state)
{
    (void)state;
    char long_id[80];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    char too_long[256];
    snprintf(too_long, sizeof too_long, PERM_HEADER "%s,child_allowance,municipality,local_tax,x\n", long_id);
    const struct bad_case cases[] = {
        {"wrong header", "requester,business,provider_kind,item\nmunicipality,child_allowance,municipality,"
                         "local_tax\n", 1, "header"},
        {"header after comments", "# c\n\nrequester_kind,business,item,provider_kind\n", 3, "header"},
        {"empty file", "", 1, "header"},
        {"unknown business", PERM_HEADER "municipality,child_allowance,municipality,local_tax,x\n"
                                         "municipality,local_tax_assessment,municipality,local_tax,x\n",
         3, "unknown business"},
        {"unknown item", PERM_HEADER "municipality,child_allowance,municipality,resident_record,x\n", 2,
         "unknown item"},
        {"unknown kind", PERM_HEADER "municipality,child_allowance,insurer,local_tax,x\n", 2, "unknown provider_kind"},
        {"duplicate row", PERM_HEADER "municipality,child_allowance,municipality,local_tax,a\n"
                                      "prefecture,public_assistance,municipality,local_tax,b\n"
                                      "municipality,child_allowance,municipality,local_tax,c\n",
         4, "duplicate"},
        {"bad id characters", PERM_HEADER "Municipality,child_allowance,municipality,local_tax,x\n", 2, "bad"},
        {"hyphen in id", PERM_HEADER "municipality,child-allowance,municipality,local_tax,x\n", 2, "bad business"},
        {"empty id", PERM_HEADER "municipality,,municipality,local_tax,x\n", 2, "bad business"},
        {"id too long", too_long, 2, "bad requester_kind"},
        {"too few fields", PERM_HEADER "municipality,child_allowance,municipality,local_tax,x\n"
                                       "municipality,child_allowance,municipality\n",
         3, "fields"},
        {"too many fields", PERM_HEADER "\n\nmunicipality,child_allowance,municipality,local_tax,x,y\n", 4,
         "fields"},
        {"quoted field", PERM_HEADER "\"municipality\",child_allowance,municipality,local_tax,x\n", 2, "quote"},
        {"quoted source", PERM_HEADER "municipality,child_allowance,municipality,local_tax,\"a, b\"\n", 2,
         "quote"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rk_permissions *p = (rk_permissions *)&fx; /* must be reset to NULL */
        char err[512] = "", want[300];
        rk_rc rc = load_text(cases[i].text, &p, err, sizeof err);
        snprintf(want, sizeof want, "%s/perm.csv:%d: ", fx.tmp, cases[i].line);
        if (rc != RK_ERR_INVALID || strncmp(err, want, strlen(want)) != 0 || !strstr(err, cases[i].reason))
            fail_msg("%s: rc %d, message \"%s\", wanted \"%s…%s\"", cases[i].what, rc, err, want, cases[i].reason);
        assert_null(p);
    }
}

static void test_bad_catalogues(void **state)
{
    (void)state;
    const char *row = PERM_HEADER "municipality,child_allowance,municipality,local_tax,x\n";
    rk_permissions *p = NULL;
    char err[512], path[256];

    write_good_catalogue();
    write_tmp("perm.csv", row);
    tmp_path(path, sizeof path, "perm.csv");
    write_tmp("items.csv", "item,name_ja,name_en\nlocal_tax,地方税関係情報,a\n# c\nlocal_tax,地方税,b\n");
    assert_int_equal(rk_permissions_load(path, fx.tmp, &p, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "items.csv:4: duplicate id 'local_tax' (first at line 2)"));

    write_tmp("items.csv", "item,name_ja,name_en\nlocal_tax,地方税関係情報,Local tax, residents\n");
    assert_int_equal(rk_permissions_load(path, fx.tmp, &p, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "items.csv:2: 4 fields"));

    write_tmp("items.csv", "item,name_en,name_ja\nlocal_tax,Local tax,地方税関係情報\n");
    assert_int_equal(rk_permissions_load(path, fx.tmp, &p, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "items.csv:1: wrong header"));

    write_tmp("items.csv", "item,name_ja,name_en\nlocal_tax,\xE5\x9C,Local tax\n");
    assert_int_equal(rk_permissions_load(path, fx.tmp, &p, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "items.csv:2: "));

    write_good_catalogue();
    write_tmp("businesses.csv", "business,name_ja,name_en,law\nchild_allowance,,Child allowance,x\n");
    assert_int_equal(rk_permissions_load(path, fx.tmp, &p, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "businesses.csv:2: empty name_ja"));
    assert_null(p);
}

static void test_missing_files(void **state)
{
    (void)state;
    rk_permissions *p = NULL;
    char err[512], path[256], dir[256];
    tmp_path(path, sizeof path, "no-such.csv");
    rk_rc rc = rk_permissions_load(path, NULL, &p, err, sizeof err);
    assert_true(rc == RK_ERR_NOT_FOUND || rc == RK_ERR_INVALID);
    assert_non_null(strstr(err, path));
    assert_null(p);

    tmp_path(dir, sizeof dir, "no-such-dir");
    rc = rk_permissions_load(fx.real, dir, &p, err, sizeof err);
    assert_true(rc == RK_ERR_NOT_FOUND || rc == RK_ERR_INVALID);
    assert_non_null(strstr(err, "kinds.csv"));
    assert_null(p);

    assert_int_equal(rk_permissions_load(NULL, NULL, &p, err, sizeof err), RK_ERR_INVALID);
    assert_int_equal(rk_permissions_load(fx.real, NULL, NULL, NULL, 0), RK_ERR_INVALID);
}

/* ---- a table of realistic size ----------------------------------------- */

static void test_large_table(void **state)
{
    (void)state;
    enum { N = 2500 };
    size_t cap = 64 + (size_t)N * 80, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    len += (size_t)snprintf(text, cap, "requester_kind,business,provider_kind,item\n");
    for (int i = N - 1; i >= 0; i--) /* written in reverse order */
        len += (size_t)snprintf(text + len, cap - len, "k%d,business_%d,k%d,item_%d\n", i % 7, i, (i + 3) % 5, i % 11);
    char path[256];
    tmp_path(path, sizeof path, "large.csv");
    assert_int_equal(rk_write_file(path, text, len, 0600), RK_OK);
    free(text);

    rk_permissions *p = NULL;
    char err[512];
    assert_int_equal(rk_permissions_load(path, NULL, &p, err, sizeof err), RK_OK);
    assert_int_equal(rk_permissions_count(p), N);
    for (int i = 0; i < N; i++) {
        char rq[16], bus[32], pv[16], item[16], other[16];
        snprintf(rq, sizeof rq, "k%d", i % 7);
        snprintf(bus, sizeof bus, "business_%d", i);
        snprintf(pv, sizeof pv, "k%d", (i + 3) % 5);
        snprintf(item, sizeof item, "item_%d", i % 11);
        snprintf(other, sizeof other, "item_%d", (i + 1) % 11);
        assert_true(rk_permissions_allows(p, rq, bus, pv, item));
        assert_false(rk_permissions_allows(p, rq, bus, pv, other));
    }
    rk_permissions_free(p);
}


/* ---- the catalogue as a signed document (DESIGN §2.3) ------------------ */

/* The real data, built as version 3 and read back: the same rows, names,
 * conditions and layout versions. */
static void test_document_round_trip(void **state)
{
    (void)state;
    rk_permissions *p = NULL, *q = NULL;
    char err[512], *doc = NULL;
    size_t len = 0;
    assert_int_equal(rk_permissions_load(fx.real, fx.data, &p, err, sizeof err), RK_OK);
    assert_int_equal(rk_permissions_version(p), 0); /* CSV: unsigned, no version */
    assert_string_equal(rk_permissions_item_layout(p, "local_tax"), "2025.07");
    assert_int_equal(rk_catalog_doc_build(p, 3, "2026-07-01", &doc, &len, err, sizeof err), RK_OK);
    assert_int_equal(strlen(doc), len);
    if (rk_catalog_doc_parse(doc, len, &q, err, sizeof err) != RK_OK)
        fail_msg("parse: %s", err);
    assert_int_equal(rk_permissions_version(q), 3);
    assert_string_equal(rk_permissions_effective_from(q), "2026-07-01");
    /* 2026-07-01 00:00 in Japan = 2026-06-30T15:00:00Z */
    assert_int_equal(rk_permissions_effective_ms(q), INT64_C(1782831600000));
    assert_int_equal(rk_permissions_count(q), rk_permissions_count(p));
    for (size_t i = 0; i < rk_permissions_count(p); i++) {
        const char *a[4], *b[4];
        assert_int_equal(rk_permissions_row(p, i, &a[0], &a[1], &a[2], &a[3]), RK_OK);
        assert_int_equal(rk_permissions_row(q, i, &b[0], &b[1], &b[2], &b[3]), RK_OK);
        for (int k = 0; k < 4; k++)
            assert_string_equal(a[k], b[k]);
        assert_int_equal(rk_permissions_conditions(p, a[0], a[1], a[2], a[3]),
                         rk_permissions_conditions(q, b[0], b[1], b[2], b[3]));
    }
    assert_string_equal(rk_permissions_item_layout(q, "local_tax"), "2025.07");
    assert_string_equal(rk_permissions_business_name(q, "child_allowance"),
                        rk_permissions_business_name(p, "child_allowance"));
    assert_string_equal(rk_permissions_kind_name_en(q, "municipality"), rk_permissions_kind_name_en(p, "municipality"));
    /* the JSON served: each row with its key's layout version and valid_from */
    json_t *j = rk_permissions_json(q);
    json_t *row = json_array_get(json_object_get(j, "permissions"), 0);
    assert_non_null(json_string_value(json_object_get(row, "layout_version")));
    assert_string_equal(json_string_value(json_object_get(row, "valid_from")), "2026-07-01");
    assert_int_equal(json_integer_value(json_object_get(j, "catalog_version")), 3);
    json_decref(j);
    /* a bad version or date is not built */
    char *none = NULL;
    assert_int_equal(rk_catalog_doc_build(p, 0, "2026-07-01", &none, NULL, err, sizeof err), RK_ERR_INVALID);
    assert_int_equal(rk_catalog_doc_build(p, 1, "2026-13-01", &none, NULL, err, sizeof err), RK_ERR_INVALID);
    assert_null(none);
    free(doc);
    rk_permissions_free(p);
    rk_permissions_free(q);
}

static void test_effective_dates(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(rk_catalog_effective_parse("2026-07-01", &ms), RK_OK);
    assert_int_equal(ms, INT64_C(1782831600000));
    assert_int_equal(rk_catalog_effective_parse("2026-06-30T15:00:00Z", &ms), RK_OK);
    assert_int_equal(ms, INT64_C(1782831600000));
    assert_int_equal(rk_catalog_effective_parse("2026-07-01T00:00:00+09:00", &ms), RK_OK);
    assert_int_equal(ms, INT64_C(1782831600000));
    assert_int_equal(rk_catalog_effective_parse("2026-06-30T15:00:00.250Z", &ms), RK_OK);
    assert_int_equal(ms, INT64_C(1782831600250));
    static const char *const bad[] = {"", "2026-7-01", "2026-02-30", "2026-07-01T25:00:00Z", "2026-07-01T00:00:00",
                                      "2026-07-01 00:00:00Z", "2026-07-01T00:00:00+9:00", "2026-07-01x", "1969-12-31",
                                      "2026-07-01T00:00:00.Z", "tomorrow"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (rk_catalog_effective_parse(bad[i], &ms) != RK_ERR_INVALID)
            fail_msg("'%s' was accepted", bad[i]);
}

#define DOC_HEAD "{\"format\":\"renkei-catalog/v1\",\"catalog_version\":2,\"effective_from\":\"2026-07-01\","
#define DOC_KINDS "\"kinds\":[{\"kind\":\"municipality\",\"name_ja\":\"市町村長\",\"name_en\":\"Mayor\"}],"
#define DOC_BUS "\"businesses\":[{\"business\":\"child_allowance\",\"name_ja\":\"児童手当\",\"law\":\"児童手当法\"}],"
#define DOC_ITEMS "\"items\":[{\"item\":\"local_tax\",\"name_ja\":\"地方税関係情報\",\"layout_version\":\"2025.07\"}],"
#define DOC_ROW "{\"requester_kind\":\"municipality\",\"business\":\"child_allowance\",\"provider_kind\":\"municipality\"," \
                "\"item\":\"local_tax\",\"conditions\":[\"fiscal_year\"]}"

static void test_document_parses(void **state)
{
    (void)state;
    const char doc[] = DOC_HEAD DOC_KINDS DOC_BUS DOC_ITEMS "\"permissions\":[" DOC_ROW "]}";
    rk_permissions *p = NULL;
    char err[512];
    if (rk_catalog_doc_parse(doc, strlen(doc), &p, err, sizeof err) != RK_OK)
        fail_msg("parse: %s", err);
    assert_int_equal(rk_permissions_version(p), 2);
    assert_true(rk_permissions_allows(p, "municipality", "child_allowance", "municipality", "local_tax"));
    assert_int_equal(rk_permissions_conditions(p, "municipality", "child_allowance", "municipality", "local_tax"),
                     RK_COND_FISCAL_YEAR);
    assert_string_equal(rk_permissions_item_name(p, "local_tax"), "地方税関係情報");
    assert_null(rk_permissions_business_name_en(p, "child_allowance")); /* name_en may be absent */
    rk_permissions_free(p);
}

/* Each malformed document is refused as a whole, with what is wrong. */
static void test_bad_documents(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *want;
    } cases[] = {
        {"", "not JSON"},
        {"[]", "an object of"},
        {"{\"format\":\"renkei-catalog/v1\",\"catalog_version\":1,\"catalog_version\":2}", "not JSON"}, /* repeated */
        {DOC_HEAD DOC_KINDS DOC_BUS DOC_ITEMS "\"permissions\":[" DOC_ROW "],\"extra\":1}", "an object of"},
        {"{\"format\":\"renkei-catalog/v2\",\"catalog_version\":2,\"effective_from\":\"2026-07-01\"," DOC_KINDS DOC_BUS
         DOC_ITEMS "\"permissions\":[]}", "format"},
        {"{\"format\":\"renkei-catalog/v1\",\"catalog_version\":0,\"effective_from\":\"2026-07-01\"," DOC_KINDS DOC_BUS
         DOC_ITEMS "\"permissions\":[]}", "catalog_version"},
        {"{\"format\":\"renkei-catalog/v1\",\"catalog_version\":\"2\",\"effective_from\":\"2026-07-01\"," DOC_KINDS
         DOC_BUS DOC_ITEMS "\"permissions\":[]}", "catalog_version"},
        {"{\"format\":\"renkei-catalog/v1\",\"catalog_version\":2,\"effective_from\":\"2026-02-30\"," DOC_KINDS DOC_BUS
         DOC_ITEMS "\"permissions\":[]}", "effective_from"},
        {DOC_HEAD DOC_KINDS DOC_BUS "\"items\":[{\"item\":\"local_tax\",\"name_ja\":\"地方税\"}],\"permissions\":[]}",
         "layout_version"},
        {DOC_HEAD DOC_KINDS DOC_BUS
         "\"items\":[{\"item\":\"local_tax\",\"name_ja\":\"地方税\",\"layout_version\":\"2025 07\"}],\"permissions\":[]}",
         "layout_version"},
        {DOC_HEAD DOC_KINDS DOC_BUS
         "\"items\":[{\"item\":\"Local-tax\",\"name_ja\":\"地方税\",\"layout_version\":\"2025.07\"}],\"permissions\":[]}",
         "bad id"},
        {DOC_HEAD DOC_KINDS DOC_BUS
         "\"items\":[{\"item\":\"local_tax\",\"name_ja\":\"\",\"layout_version\":\"2025.07\"}],\"permissions\":[]}",
         "names are"},
        {DOC_HEAD DOC_KINDS DOC_BUS
         "\"items\":[{\"item\":\"local_tax\",\"name_ja\":\"a\",\"layout_version\":\"1\"},"
         "{\"item\":\"local_tax\",\"name_ja\":\"b\",\"layout_version\":\"1\"}],\"permissions\":[]}",
         "duplicate id"},
        {DOC_HEAD DOC_KINDS DOC_BUS DOC_ITEMS "\"permissions\":[" DOC_ROW "," DOC_ROW "]}", "duplicate row"},
        {DOC_HEAD DOC_KINDS DOC_BUS DOC_ITEMS
         "\"permissions\":[{\"requester_kind\":\"municipality\",\"business\":\"public_assistance\","
         "\"provider_kind\":\"municipality\",\"item\":\"local_tax\"}]}",
         "unknown business"},
        {DOC_HEAD DOC_KINDS DOC_BUS DOC_ITEMS
         "\"permissions\":[{\"requester_kind\":\"municipality\",\"business\":\"child_allowance\","
         "\"provider_kind\":\"municipality\",\"item\":\"local_tax\",\"conditions\":[\"whenever\"]}]}",
         "conditions"},
        {DOC_HEAD DOC_KINDS DOC_BUS DOC_ITEMS
         "\"permissions\":[{\"requester_kind\":\"municipality\",\"business\":\"child_allowance\","
         "\"provider_kind\":\"municipality\",\"item\":\"local_tax\",\"conditions\":\"as_of\"}]}",
         "permissions[0]"},
        {DOC_HEAD DOC_KINDS DOC_BUS DOC_ITEMS
         "\"permissions\":[{\"requester_kind\":\"municipality\",\"business\":\"child_allowance\","
         "\"provider_kind\":\"municipality\",\"item\":\"local_tax\",\"layout\":\"x\"}]}",
         "permissions[0]"},
        {DOC_HEAD DOC_KINDS DOC_BUS DOC_ITEMS "\"permissions\":{}}", "must be an array"},
        {DOC_HEAD DOC_BUS DOC_ITEMS "\"permissions\":[]}", "\"kinds\" must be an array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rk_permissions *p = (rk_permissions *)&p; /* not NULL: the parser must clear it */
        char err[512] = "";
        rk_rc rc = rk_catalog_doc_parse(cases[i].doc, strlen(cases[i].doc), &p, err, sizeof err);
        if (rc != RK_ERR_INVALID || p != NULL || !strstr(err, cases[i].want))
            fail_msg("case %zu: rc %d, err '%s', want '%s'", i, rc, err, cases[i].want);
        assert_non_null(strstr(err, "catalog document"));
    }
    /* over the cap: refused before it is read */
    rk_permissions *p = NULL;
    char err[128];
    assert_int_equal(rk_catalog_doc_parse("{}", (size_t)RK_CATALOG_DOC_MAX + 1, &p, err, sizeof err), RK_ERR_TOO_LARGE);
}

/* items.csv's layout_version column: checked when present. */
static void test_layout_column(void **state)
{
    (void)state;
    rk_permissions *p = NULL;
    char err[512], path[256];
    write_good_catalogue();
    write_tmp("items.csv", "item,name_ja,name_en,layout_version\nlocal_tax,地方税関係情報,Local tax,2025 07\n");
    write_tmp("perm.csv", PERM_HEADER);
    tmp_path(path, sizeof path, "perm.csv");
    assert_int_equal(rk_permissions_load(path, fx.tmp, &p, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "items.csv:2: bad layout_version"));
    /* without the column, a document cannot be built: every item needs its layout */
    write_good_catalogue();
    assert_int_equal(rk_permissions_load(path, fx.tmp, &p, err, sizeof err), RK_OK);
    char *doc = NULL;
    assert_int_equal(rk_catalog_doc_build(p, 1, "2026-07-01", &doc, NULL, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "layout_version"));
    rk_permissions_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_table_loads),
        cmocka_unit_test(test_real_table_serves_the_demo),
        cmocka_unit_test(test_without_catalogues),
        cmocka_unit_test(test_conditions_per_row),
        cmocka_unit_test(test_lenient_details),
        cmocka_unit_test(test_bad_tables),
        cmocka_unit_test(test_bad_catalogues),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_large_table),
        cmocka_unit_test(test_document_round_trip),
        cmocka_unit_test(test_effective_dates),
        cmocka_unit_test(test_document_parses),
        cmocka_unit_test(test_bad_documents),
        cmocka_unit_test(test_layout_column),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
