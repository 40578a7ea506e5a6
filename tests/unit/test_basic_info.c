/* Unit tests: the four basic items (lib/basic_info.h) — checking values,
 * reading them from JSON, the normalisation of names and addresses step by
 * step, and the comparison J-LIS makes before a link. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "lib/basic_info.h"
#include "lib/ids.h"

static int setup(void **state)
{
    (void)state;
    return rk_basic_init() == RK_OK ? 0 : -1; /* the JIS table: glibc's EUC-JISX0213 converter */
}

/* The folded form of text as UTF-8 (〓 for a 外字). */
static const char *fold(const char *text, int address)
{
    static char out[2048];
    if (rk_basic_fold(text, address, out, sizeof out) != RK_OK)
        return "(refused)";
    return out;
}

static rk_basic_info info(const char *name, const char *birth, const char *sex, const char *address)
{
    return (rk_basic_info){.name = name, .birth_date = birth, .sex = sex, .address = address};
}

static void values_are_checked(void **state)
{
    rk_basic_info ok = info("山田　太郎", "1985-04-12", "1", "東京都千代田区霞が関１丁目２番３号");
    assert_null(rk_basic_check(&ok));
    ok.sex = NULL; /* not held */
    assert_null(rk_basic_check(&ok));

    rk_basic_info b = ok;
    b.name = NULL;
    assert_string_equal(rk_basic_check(&b), "invalid_name");
    b.name = "";
    assert_string_equal(rk_basic_check(&b), "invalid_name");
    b.name = " \xE3\x80\x80 "; /* only spaces, of both widths */
    assert_string_equal(rk_basic_check(&b), "invalid_name");
    b.name = "山田\t太郎"; /* a control character */
    assert_string_equal(rk_basic_check(&b), "invalid_name");
    b.name = "\xC2\x85"; /* U+0085, a C1 control */
    assert_string_equal(rk_basic_check(&b), "invalid_name");
    b.name = "\xE3\x81"; /* cut UTF-8 */
    assert_string_equal(rk_basic_check(&b), "invalid_name");
    b.name = "\xC0\xAF"; /* overlong */
    assert_string_equal(rk_basic_check(&b), "invalid_name");
    b.name = "\xED\xA0\x80"; /* a surrogate */
    assert_string_equal(rk_basic_check(&b), "invalid_name");
    char long_name[RK_NAME_FIELD_MAX + 2];
    memset(long_name, 'A', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    b.name = long_name;
    assert_string_equal(rk_basic_check(&b), "invalid_name");
    long_name[RK_NAME_FIELD_MAX] = '\0';
    assert_null(rk_basic_check(&b));

    b = ok;
    const char *bad_dates[] = {"1985-4-12", "1985-02-30", "1900-02-29", "2023-13-01", "1799-12-31", "85-04-12",
                               "1985/04/12", "1985-04-12 ", "", "１９８５-04-12"};
    for (size_t i = 0; i < sizeof bad_dates / sizeof bad_dates[0]; i++) {
        b.birth_date = bad_dates[i];
        assert_string_equal(rk_basic_check(&b), "invalid_birth_date");
    }
    b.birth_date = "2000-02-29"; /* a leap day (400) */
    assert_null(rk_basic_check(&b));
    b.birth_date = "2024-02-29";
    assert_null(rk_basic_check(&b));

    b = ok;
    const char *bad_sex[] = {"3", "0", "", "12", "M"};
    for (size_t i = 0; i < sizeof bad_sex / sizeof bad_sex[0]; i++) {
        b.sex = bad_sex[i];
        assert_string_equal(rk_basic_check(&b), "invalid_sex");
    }
    b = ok;
    b.address = "";
    assert_string_equal(rk_basic_check(&b), "invalid_address");
    b.address = "東京都\n千代田区";
    assert_string_equal(rk_basic_check(&b), "invalid_address");
}

static void json_fields_are_read(void **state)
{
    rk_basic_info b;
    json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "name", "山田 太郎", "birth_date", "1985-04-12", "sex", "2",
                          "address", "横浜市中区");
    assert_null(rk_basic_read_json(o, &b));
    assert_string_equal(b.sex, "2");
    json_object_del(o, "sex"); /* absent: not held */
    assert_null(rk_basic_read_json(o, &b));
    assert_null(b.sex);
    json_object_set_new(o, "sex", json_null()); /* null: not held */
    assert_null(rk_basic_read_json(o, &b));
    assert_null(b.sex);
    json_object_set_new(o, "sex", json_integer(1)); /* a number is not "1" */
    assert_string_equal(rk_basic_read_json(o, &b), "invalid_sex");
    json_object_set_new(o, "sex", json_string("3"));
    assert_string_equal(rk_basic_read_json(o, &b), "invalid_sex");
    json_object_del(o, "sex");
    json_object_del(o, "name");
    assert_string_equal(rk_basic_read_json(o, &b), "invalid_name");
    json_object_set_new(o, "name", json_stringn("山田\0太郎", 10)); /* a NUL inside */
    assert_string_equal(rk_basic_read_json(o, &b), "invalid_name");
    json_object_set_new(o, "name", json_string("山田"));
    json_object_set_new(o, "birth_date", json_string("1985-04-31"));
    assert_string_equal(rk_basic_read_json(o, &b), "invalid_birth_date");
    json_object_set_new(o, "birth_date", json_string("1985-04-30"));
    json_object_set_new(o, "address", json_array());
    assert_string_equal(rk_basic_read_json(o, &b), "invalid_address");
    json_decref(o);
    assert_non_null(strstr(rk_basic_error_message("invalid_sex"), "\"1\" or \"2\""));
}

static void width_and_spaces_fold(void **state)
{
    /* step 1: fullwidth ASCII, halfwidth katakana; step 3: spaces; step 4: a-z */
    assert_string_equal(fold("ＳＭＩＴＨ　Ｊｏｈｎ", 0), "SMITHJOHN");
    assert_string_equal(fold("smith john", 0), "SMITHJOHN");
    assert_string_equal(fold("ﾔﾏﾀﾞ ﾀﾛｳ", 0), "ヤマダタロウ");
    assert_string_equal(fold("山田\xC2\xA0太郎", 0), "山田太郎"); /* no-break space */
    assert_string_equal(fold("｢ｱ｣､ｰ･", 0), "「ア」、ー・");
    assert_string_equal(fold("￥１００", 0), "￥100"); /* the fullwidth signs stay: they are JIS */
    /* step 2: voiced marks join their kana, whichever form they come in */
    assert_string_equal(fold("ﾊﾟﾋﾞｳﾞ", 0), "パビヴ");
    assert_string_equal(fold("カ\xE3\x82\x99ハ\xE3\x82\x9A", 0), "ガパ"); /* combining marks */
    assert_string_equal(fold("か゛は゜う゛ゝ゛", 0), "がぱゔゞ");  /* spacing marks */
    assert_string_equal(fold("ワ゛", 0), "ヷ");
    assert_string_equal(fold("わ゛", 0), "わ゛"); /* no precomposed form: kept */
    assert_string_equal(fold("ア゛", 0), "ア゛");
    /* not folded: hiragana/katakana, kanji variants that are both JIS */
    assert_string_equal(fold("やまだ", 0), "やまだ");
    assert_string_equal(fold("斉藤", 0), "斉藤");
    assert_string_equal(fold("\xE3\x81", 0), "(refused)");
}

static void gaiji_are_left_out(void **state)
{
    /* step 5: outside JIS X 0208/0213 (髙 U+9AD9, 𠮷 U+20BB7, a private-use
     * character, an emoji) and the geta mark stand for one character */
    assert_string_equal(fold("髙橋", 0), "〓橋");
    assert_string_equal(fold("𠮷田", 0), "〓田");
    assert_string_equal(fold("\xEE\x80\x80野", 0), "〓野");
    assert_string_equal(fold("〓野", 0), "〓野");
    assert_string_equal(fold("A\xF0\x9F\x98\x80", 0), "A〓");
    /* JIS X 0213 characters are compared: 俠 U+4FE0, 𠮟 U+20B9F */
    assert_string_equal(fold("俠𠮟", 0), "俠𠮟");
}

static void address_notation_folds(void **state)
{
    const char *same[] = {"霞が関２丁目１番地２号", "霞が関2-1-2", "霞が関２ー１－２", "霞が関 2‐1‐2",
                          "霞が関2丁目1番2号", "霞が関2丁目1-2", "霞が関2−1−2号"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        assert_string_equal(fold(same[i], 1), "霞が関2-1-2");
    assert_string_equal(fold("山下町1番地の2", 1), "山下町1-2");
    assert_string_equal(fold("本町3丁目 サンハイツ１０１号室", 1), "本町3サンハイツ101室");
    assert_string_equal(fold("本町3-サンハイツ101", 1), "本町3サンハイツ101");
    /* only after a digit; names are not address-folded */
    assert_string_equal(fold("一番町", 1), "一番町");
    assert_string_equal(fold("二丁目1番", 1), "二丁目1");
    assert_string_equal(fold("1丁目2番3号", 0), "1丁目2番3号");
}

static void comparison(void **state)
{
    rk_basic_info reg = info("山田　太郎", "1985-04-12", "1", "東京都千代田区霞が関１丁目２番３号");
    rk_basic_info given = info("山田太郎", "1985-04-12", "1", "東京都千代田区霞が関1-2-3");
    assert_int_equal(rk_basic_compare(&reg, &given), 0);
    given.sex = NULL; /* 3 items where the agency does not hold sex */
    assert_int_equal(rk_basic_compare(&reg, &given), 0);
    reg.sex = NULL; /* nor the registry */
    given.sex = "2";
    assert_int_equal(rk_basic_compare(&reg, &given), 0);
    reg.sex = "1";
    assert_int_equal(rk_basic_compare(&reg, &given), RK_BASIC_SEX);
    given.sex = "1";
    given.name = "山田次郎";
    assert_int_equal(rk_basic_compare(&reg, &given), RK_BASIC_NAME);
    given.name = "山田太郎";
    given.birth_date = "1985-04-13";
    assert_int_equal(rk_basic_compare(&reg, &given), RK_BASIC_BIRTH_DATE);
    given.birth_date = "1985-04-12";
    given.address = "東京都千代田区霞が関1-2-4";
    assert_int_equal(rk_basic_compare(&reg, &given), RK_BASIC_ADDRESS);
    given.name = "山田花子";
    given.sex = "2";
    assert_int_equal(rk_basic_compare(&reg, &given), RK_BASIC_NAME | RK_BASIC_SEX | RK_BASIC_ADDRESS);

    /* a 外字 in the registry matches the character a system wrote in its
     * place, or the geta mark; not a missing character */
    rk_basic_info g = info("髙橋　一郎", "1970-01-01", NULL, "大阪市北区梅田1-1");
    rk_basic_info h = info("高橋一郎", "1970-01-01", "1", "大阪市北区梅田１丁目１番");
    assert_int_equal(rk_basic_compare(&g, &h), 0);
    h.name = "〓橋一郎";
    assert_int_equal(rk_basic_compare(&g, &h), 0);
    h.name = "橋一郎";
    assert_int_equal(rk_basic_compare(&g, &h), RK_BASIC_NAME);
    h.name = "高橋一";
    assert_int_equal(rk_basic_compare(&g, &h), RK_BASIC_NAME);
    /* Latin names of foreign residents: case and width */
    rk_basic_info f = info("SMITH JOHN", "1990-07-01", "1", "横浜市中区山下町1");
    rk_basic_info e = info("Smith　Ｊｏｈｎ", "1990-07-01", "1", "横浜市中区山下町１");
    assert_int_equal(rk_basic_compare(&f, &e), 0);
}

static void items_text_names_items_only(void **state)
{
    char out[64];
    rk_basic_items_text(0, out, sizeof out);
    assert_string_equal(out, "");
    rk_basic_items_text(RK_BASIC_NAME | RK_BASIC_ADDRESS, out, sizeof out);
    assert_string_equal(out, "name,address");
    rk_basic_items_text(15, out, sizeof out);
    assert_string_equal(out, "name,birth_date,sex,address");
    rk_basic_items_text(15, out, 9); /* an item that does not fit is left out whole */
    assert_string_equal(out, "name,sex");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_are_checked),
        cmocka_unit_test(json_fields_are_read),
        cmocka_unit_test(width_and_spaces_fold),
        cmocka_unit_test(gaiji_are_left_out),
        cmocka_unit_test(address_notation_folds),
        cmocka_unit_test(comparison),
        cmocka_unit_test(items_text_names_items_only),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
