/* Unit tests: J-LIS's store through jlis_store.h on a temporary database —
 * the residents import (replace, unchanged file, a bad or duplicate row
 * leaving the registry as it was, also after a first chunk was committed,
 * the four basic items read by their column's name and checked), find,
 * the relay log, the lookup log, persons' cards (taken in from the card
 * file as it grows; a bad row refuses the whole file), and a read-only open
 * beside the writer. On SQLite,
 * and on PostgreSQL when RENKEI_TEST_STORE=postgres (unit/test_jlis_store_pg;
 * pg_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jlis/jlis_store.h"
#include "lib/mynumber.h"
#include "pg_fixture.h"
#include "store/db.h"

static char dir[64];
static char target[160]; /* sqlite:<dir>/node.db or a new PostgreSQL database */
static char csv[128];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/rk-test-jlis-store-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    if (test_store_target(dir, "node", target, sizeof target) != 0)
        return -1;
    snprintf(csv, sizeof csv, "%s/residents.csv", dir);
    jlis_store *s = NULL;
    if (jlis_store_open(target, 0, &s) != RK_OK)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    jlis_store_close(*state);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The i-th valid My Number of the tests. */
static void my_number(long i, char out[13])
{
    char first[24];
    snprintf(first, sizeof first, "%011ld", 12345000000L + i); /* 11 digits for every i of the tests */
    snprintf(out, 13, "%.11s%d", first, rk_mynumber_check_digit(first));
}

/* The basic items of a row of the tests. */
#define ITEMS ",山田　太郎,1985-04-12,1,横浜市中区本町１丁目１番"

/* Writes residents.csv: n residents (number i, code 20000000000 + i +
 * code_base), resident 0 with two earlier codes, every third without sex;
 * then `extra` as is. */
static void write_csv(long n, long code_base, const char *extra)
{
    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    fprintf(f, "my_number,resident_code,previous_resident_codes,name,birth_date,sex,address\n");
    for (long i = 0; i < n; i++) {
        char num[13];
        my_number(i, num);
        fprintf(f, "%s,%011ld,%s,山田　太郎%ld,1985-04-12,%s,横浜市中区本町%ld\n", num, 20000000000L + code_base + i,
                i == 0 ? "30000000001;30000000002" : "", i, i % 3 == 2 ? "" : "2", i);
    }
    if (extra)
        fputs(extra, f);
    fclose(f);
}

static void import_and_find(void **state)
{
    jlis_store *s = *state;
    char err[256], num[13];
    size_t imported = 0;
    write_csv(3, 0, "\n");
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_OK);
    assert_int_equal(imported, 3);
    assert_int_equal(jlis_store_count(s), 3);

    jlis_resident r;
    my_number(0, num);
    assert_int_equal(jlis_store_find(s, num, &r), RK_OK);
    assert_string_equal(r.resident_code, "20000000000");
    assert_int_equal(r.n_previous, 2);
    assert_string_equal(r.previous[0], "30000000001");
    assert_string_equal(r.previous[1], "30000000002");
    my_number(2, num);
    assert_int_equal(jlis_store_find(s, num, &r), RK_OK);
    assert_string_equal(r.resident_code, "20000000002");
    assert_int_equal(r.n_previous, 0);
    my_number(3, num);
    assert_int_equal(jlis_store_find(s, num, &r), RK_ERR_NOT_FOUND);

    /* The same file again: nothing to do. */
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_OK);
    assert_int_equal(imported, 0);
    assert_int_equal(jlis_store_count(s), 3);

    /* A new file replaces the registry. */
    write_csv(2, 500, NULL);
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_OK);
    assert_int_equal(imported, 2);
    assert_int_equal(jlis_store_count(s), 2);
    my_number(1, num);
    assert_int_equal(jlis_store_find(s, num, &r), RK_OK);
    assert_string_equal(r.resident_code, "20000000501");
    my_number(2, num);
    assert_int_equal(jlis_store_find(s, num, &r), RK_ERR_NOT_FOUND);
}

static void bad_rows_leave_the_registry_as_it_was(void **state)
{
    jlis_store *s = *state;
    char err[256], num[13];
    size_t imported = 0;
    jlis_resident r;
    write_csv(3, 0, NULL);
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_OK);

    write_csv(4, 100, "123,20000000999," ITEMS "\n");
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_ERR_INVALID);
    assert_int_equal(imported, 0);
    assert_non_null(strstr(err, "residents.csv:6: invalid my_number"));
    assert_int_equal(jlis_store_count(s), 3);

    char dup[160];
    my_number(1, num);
    snprintf(dup, sizeof dup, "%s,20000000777,30000000009" ITEMS "\n", num); /* a size no file had: a new stamp */
    write_csv(2, 100, dup);
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_ERR_CONFLICT);
    assert_non_null(strstr(err, "residents.csv:4: duplicate my_number or resident_code"));
    assert_int_equal(jlis_store_count(s), 3);
    my_number(1, num);
    assert_int_equal(jlis_store_find(s, num, &r), RK_OK);
    assert_string_equal(r.resident_code, "20000000001");

    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    fputs("number,code\n", f);
    fclose(f);
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, ":1: header"));
    assert_int_equal(jlis_store_count(s), 3);

    /* A row longer than a line was read as two rows, its tail a second
     * resident (tests/fuzz/corpus/residents/long_line_smuggles_a_row.csv). */
    char longrow[2400], n2[13];
    my_number(7, num);
    my_number(8, n2);
    snprintf(longrow, sizeof longrow, "%s,20000000701,,%02021d%s,20000000801,," ITEMS "\n", num, 0, n2);
    write_csv(1, 300, longrow);
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "residents.csv:3: line too long"));
    assert_int_equal(jlis_store_find(s, n2, &r), RK_ERR_NOT_FOUND);
    assert_int_equal(jlis_store_count(s), 3);

    char none[128];
    snprintf(none, sizeof none, "%s/none.csv", dir);
    assert_int_equal(jlis_store_import(s, none, &imported, err, sizeof err), RK_ERR_NOT_FOUND);
}

/* A file loaded in several commits: a bad row after the first chunks still
 * leaves the registry as it was; a good one replaces it whole. */
static void large_file_is_all_or_nothing(void **state)
{
    jlis_store *s = *state;
    char err[256], num[13];
    size_t imported = 0;
    jlis_resident r;
    write_csv(10, 0, NULL);
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_OK);

    const long n = 120000;
    write_csv(n, 1000000, "999999999999,20099999999," ITEMS "\n");
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, ":120002: invalid my_number"));
    assert_int_equal(jlis_store_count(s), 10);
    my_number(5, num);
    assert_int_equal(jlis_store_find(s, num, &r), RK_OK);
    assert_string_equal(r.resident_code, "20000000005");

    write_csv(n, 1000000, NULL);
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_OK);
    assert_int_equal(imported, (size_t)n);
    assert_int_equal(jlis_store_count(s), (size_t)n);
    my_number(n - 1, num);
    assert_int_equal(jlis_store_find(s, num, &r), RK_OK);
    assert_string_equal(r.resident_code, "20001119999");
    my_number(5, num);
    assert_int_equal(jlis_store_find(s, num, &r), RK_OK);
    assert_string_equal(r.resident_code, "20001000005");
}

/* The items are read by their columns' names, quoted or not, and checked;
 * a file without them is refused. */
static void basic_items_are_imported_and_checked(void **state)
{
    jlis_store *s = *state;
    char err[256], num[13], row[512];
    size_t imported = 0;
    jlis_resident r;
    my_number(1, num);
    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    fprintf(f, "my_number,resident_code,address,sex,birth_date,name,note\n"
               "%s,20000000001,\"横浜市中区山下町１番地の２, 山下ハイツ\",,2000-02-29,\"SMITH \"\"JJ\"\" JOHN\",x\n",
            num);
    fclose(f);
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_OK);
    assert_int_equal(jlis_store_find(s, num, &r), RK_OK);
    assert_string_equal(r.name, "SMITH \"JJ\" JOHN");
    assert_string_equal(r.birth_date, "2000-02-29");
    assert_string_equal(r.sex, "");
    assert_string_equal(r.address, "横浜市中区山下町１番地の２, 山下ハイツ");
    assert_int_equal(r.n_previous, 0);
    rk_basic_info items = jlis_resident_items(&r);
    assert_null(items.sex); /* not held */

    const char *bad[][2] = {/* the row after my_number,resident_code */
        {",,山田,1985-02-30,1,横浜市", ":2: field \"birth_date\""},
        {",,山田,1985-02-03,3,横浜市", ":2: field \"sex\""},
        {",,,1985-02-03,1,横浜市", ":2: field \"name\""},
        {",,山田,1985-02-03,1,　", ":2: field \"address\""},
        {",,山田,1985-02-03,1", ":2: not as many fields as the header"},
        {",,\"山田,1985-02-03,1,横浜市", ":2: unbalanced quotes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = fopen(csv, "w");
        assert_non_null(f);
        snprintf(row, sizeof row, "%s,20000000001%s\n", num, bad[i][0]);
        fprintf(f, "my_number,resident_code,previous_resident_codes,name,birth_date,sex,address\n%s%*s", row,
                (int)i, ""); /* each file its own size: a new stamp */
        fclose(f);
        assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_ERR_INVALID);
        assert_non_null(strstr(err, bad[i][1]));
        assert_int_equal(jlis_store_count(s), 1);
    }
    f = fopen(csv, "w");
    assert_non_null(f);
    fprintf(f, "my_number,resident_code,previous_resident_codes\n%s,20000000001,\n", num);
    fclose(f);
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, ":1: header lacks the basic items"));
}

/* Every lookup, with its outcome and the names of the items that differed;
 * nothing of the values. */
static void lookup_log_newest_first(void **state)
{
    jlis_store *s = *state;
    jlis_lookup first[] = {{"aa01", "link", "match", 0}, {"aa02", "link", "mismatch", RK_BASIC_NAME | RK_BASIC_SEX}};
    jlis_lookup second[] = {{"bb01", "recheck", "unknown_person", 0}};
    assert_int_equal(jlis_store_log_lookups(s, "city-a", first, 2, 1700000000000LL), RK_OK);
    assert_int_equal(jlis_store_log_lookups(s, "city-b", second, 1, 1700000001000LL), RK_OK);
    json_t *page = NULL;
    assert_int_equal(jlis_store_lookups(s, 0, 10, &page), RK_OK);
    assert_int_equal(json_array_size(page), 3);
    json_t *newest = json_array_get(page, 0), *mis = json_array_get(page, 1);
    assert_string_equal(json_string_value(json_object_get(newest, "agency")), "city-b");
    assert_string_equal(json_string_value(json_object_get(newest, "purpose")), "recheck");
    assert_string_equal(json_string_value(json_object_get(newest, "outcome")), "unknown_person");
    assert_null(json_object_get(newest, "mismatched"));
    assert_string_equal(json_string_value(json_object_get(mis, "acquisition_no")), "aa02");
    assert_string_equal(json_string_value(json_object_get(mis, "mismatched")), "name,sex");
    json_int_t seq = json_integer_value(json_object_get(mis, "seq"));
    json_decref(page);
    assert_int_equal(jlis_store_lookups(s, seq, 10, &page), RK_OK);
    assert_int_equal(json_array_size(page), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(page, 0), "outcome")), "match");
    json_decref(page);

}

static void relay_log_newest_first(void **state)
{
    jlis_store *s = *state;
    assert_int_equal(jlis_store_log_relay(s, "city-a", "a-1", "primary", 1700000000000LL), RK_OK);
    const char *nos[] = {"a-2", "a-3", "a-4"};
    assert_int_equal(jlis_store_log_relays(s, "city-a", nos, 3, "backup", 1700000001000LL), RK_OK);

    json_t *page = NULL;
    assert_int_equal(jlis_store_relays(s, 0, 10, &page), RK_OK);
    assert_int_equal(json_array_size(page), 4);
    json_t *newest = json_array_get(page, 0);
    assert_string_equal(json_string_value(json_object_get(newest, "acquisition_no")), "a-4");
    assert_string_equal(json_string_value(json_object_get(newest, "line")), "backup");
    assert_string_equal(json_string_value(json_object_get(newest, "agency")), "city-a");
    assert_non_null(json_string_value(json_object_get(newest, "at")));
    json_int_t seq = json_integer_value(json_object_get(json_array_get(page, 1), "seq"));
    json_decref(page);

    /* The page before the second newest: the two oldest, newest first. */
    assert_int_equal(jlis_store_relays(s, seq, 10, &page), RK_OK);
    assert_int_equal(json_array_size(page), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(page, 0), "acquisition_no")), "a-2");
    assert_string_equal(json_string_value(json_object_get(json_array_get(page, 1), "line")), "primary");
    json_decref(page);

    assert_int_equal(jlis_store_relays(s, 0, 1, &page), RK_OK);
    assert_int_equal(json_array_size(page), 1);
    json_decref(page);
}

static void write_cards(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void cards_are_taken_in_as_the_file_grows(void **state)
{
    jlis_store *s = *state;
    char path[160], err[256], code[12];
    size_t n = 0;
    const char *a = "4000000000000000000000000000000a", *b = "7fffffffffffffffffffffffffffffff";
    snprintf(path, sizeof path, "%s/cards.csv", dir);
    /* no file yet: no card, no error */
    assert_int_equal(jlis_store_import_cards(s, path, &n, err, sizeof err), RK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(jlis_store_card(s, a, code), RK_ERR_NOT_FOUND);
    write_cards(path, "card_serial,resident_code,issued_ms\n4000000000000000000000000000000a,12345678901,1\n");
    assert_int_equal(jlis_store_import_cards(s, path, &n, err, sizeof err), RK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(jlis_store_card(s, a, code), RK_OK);
    assert_string_equal(code, "12345678901");
    /* appended: the new card too, the first unchanged */
    write_cards(path, "card_serial,resident_code,issued_ms\n4000000000000000000000000000000a,12345678901,1\n"
                      "7fffffffffffffffffffffffffffffff,10987654321,2\n");
    assert_int_equal(jlis_store_import_cards(s, path, &n, err, sizeof err), RK_OK);
    assert_int_equal(jlis_store_card(s, b, code), RK_OK);
    assert_string_equal(code, "10987654321");
    /* unchanged file: nothing read again */
    assert_int_equal(jlis_store_import_cards(s, path, &n, err, sizeof err), RK_OK);
    assert_int_equal(n, 0);
    /* a bad row refuses the whole file, named with its line; the cards known stay */
    static const char *const bad[] = {"4000000000000000000000000000000B,12345678901,1\n", /* capital hex */
                                      "4000000000000000000000000000000c,1234567890,1\n",  /* 10 digits */
                                      "4000000000000000000000000000000c,12345678901,x\n",
                                      "4000000000000000000000000000000c,12345678901\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "card_serial,resident_code,issued_ms\n7fffffffffffffffffffffffffffffff,10987654321,2\n"
                                    "4000000000000000000000000000000d,11111111111,3\n%s", bad[i]);
        write_cards(path, text);
        assert_int_equal(jlis_store_import_cards(s, path, &n, err, sizeof err), RK_ERR_INVALID);
        assert_non_null(strstr(err, "cards.csv:4:"));
        assert_int_equal(jlis_store_card(s, "4000000000000000000000000000000d", code), RK_ERR_NOT_FOUND);
        assert_int_equal(jlis_store_card(s, a, code), RK_OK);
    }
    write_cards(path, "serial,code\n");
    assert_int_equal(jlis_store_import_cards(s, path, &n, err, sizeof err), RK_ERR_INVALID);
    assert_non_null(strstr(err, "header"));
}

static void read_only_open_reads_and_cannot_write(void **state)
{
    jlis_store *s = *state;
    char err[256], num[13];
    size_t imported = 0;
    jlis_resident r;
    write_csv(3, 0, NULL);
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_OK);
    assert_int_equal(jlis_store_log_relay(s, "city-a", "a-1", "primary", 1700000000000LL), RK_OK);

    jlis_store *ro = NULL;
    /* a bare path is the synonym of sqlite:PATH */
    const char *same = test_store_is_pg() ? target : target + strlen("sqlite:");
    assert_int_equal(jlis_store_open(same, RK_DB_READONLY, &ro), RK_OK);
    assert_int_equal(jlis_store_count(ro), 3);
    my_number(0, num);
    assert_int_equal(jlis_store_find(ro, num, &r), RK_OK);
    assert_int_equal(r.n_previous, 2);
    json_t *page = NULL;
    assert_int_equal(jlis_store_relays(ro, 0, 10, &page), RK_OK);
    assert_int_equal(json_array_size(page), 1);
    json_decref(page);

    assert_int_equal(jlis_store_writable(ro), 0);
    assert_int_equal(jlis_store_log_relay(ro, "city-a", "a-2", "primary", 1700000001000LL), RK_ERR_DENIED);
    const char *nos[] = {"a-3"};
    assert_int_equal(jlis_store_log_relays(ro, "city-a", nos, 1, "backup", 1700000001000LL), RK_ERR_DENIED);
    write_csv(5, 0, NULL);
    assert_int_equal(jlis_store_import(ro, csv, &imported, err, sizeof err), RK_ERR_DENIED);

    /* The writer's later commits are seen. */
    assert_int_equal(jlis_store_import(s, csv, &imported, err, sizeof err), RK_OK);
    assert_int_equal(jlis_store_count(ro), 5);
    assert_int_equal(jlis_store_writable(s), 1);
    jlis_store_close(ro);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(import_and_find, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_rows_leave_the_registry_as_it_was, setup, teardown),
        cmocka_unit_test_setup_teardown(large_file_is_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(basic_items_are_imported_and_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(lookup_log_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(relay_log_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(read_only_open_reads_and_cannot_write, setup, teardown),
        cmocka_unit_test_setup_teardown(cards_are_taken_in_as_the_file_grows, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, test_store_group_end);
}
