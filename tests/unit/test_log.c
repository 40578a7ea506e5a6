/* Unit tests: the log's two formats (`[node] log_format = text|json`): a
 * JSON line is one object with time, level, node and msg that any JSON
 * reader takes, whatever bytes the message held; a My Number never appears
 * in either format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/mynumber.h"

/* What the logger wrote to stderr while fn ran, malloc'ed. */
static char *captured(void (*fn)(void))
{
    char path[] = "/tmp/rk-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    fn();
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    assert_non_null(text);
    assert_int_equal(pread(fd, text, (size_t)len, 0), len);
    close(fd);
    return text;
}

/* A valid My Number made from 11 digits and their check digit. */
static void my_number(char out[13])
{
    memcpy(out, "12345678901", 11);
    out[11] = (char)('0' + rk_mynumber_check_digit(out));
    out[12] = '\0';
    assert_int_equal(rk_mynumber_validate(out), RK_OK);
}

static void log_some(void)
{
    char mn[13];
    my_number(mn);
    rk_debug("not shown at info");
    rk_info("plain message");
    rk_warn("quote \" backslash \\ tab\there newline\nthere bell\a del\x7f");
    rk_error("bad utf-8 \xff\xfe and \xe3\x81 cut, good 連携 and \xf0\x9f\x98\x80");
    rk_info("person with %s enrolled", mn);
    rk_info("not a my number: %.11s%c, 13 digits %s1, 11 digits %.11s", mn, mn[11] == '9' ? '0' : mn[11] + 1, mn,
            mn);
}

static void json_lines_are_objects(void **state)
{
    rk_log_init("city-yokohama", RK_LOG_INFO, RK_LOG_JSON);
    char *text = captured(log_some);
    char mn[13], shown[64];
    my_number(mn);
    snprintf(shown, sizeof shown, "with %s enrolled", mn);
    assert_null(strstr(text, shown));
    assert_null(strstr(text, "not shown"));
    const char *want[] = {"plain message", "quote \" backslash \\ tab?here newline?there bell? del?",
                          "bad utf-8 ?? and ?? cut, good 連携 and \xf0\x9f\x98\x80", "person with ############ enrolled",
                          NULL};
    const char *levels[] = {"info", "warn", "error", "info", "info"};
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        json_error_t err;
        json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &err);
        assert_non_null(o);
        assert_true(json_is_object(o));
        assert_int_equal(json_object_size(o), 4);
        const char *t = json_string_value(json_object_get(o, "time"));
        assert_non_null(t);
        assert_int_equal(strlen(t), 24); /* 2024-01-02T03:04:05.678Z */
        assert_int_equal(t[23], 'Z');
        assert_string_equal(json_string_value(json_object_get(o, "node")), "city-yokohama");
        assert_true(lines < 5);
        assert_string_equal(json_string_value(json_object_get(o, "level")), levels[lines]);
        if (want[lines])
            assert_string_equal(json_string_value(json_object_get(o, "msg")), want[lines]);
        json_decref(o);
    }
    assert_int_equal(lines, 5);
    free(text);
}

static void text_lines_keep_their_form(void **state)
{
    rk_log_init("core", RK_LOG_INFO, RK_LOG_TEXT);
    char *text = captured(log_some);
    char mn[13], shown[64];
    my_number(mn);
    snprintf(shown, sizeof shown, "with %s enrolled", mn);
    assert_null(strstr(text, shown));
    assert_non_null(strstr(text, "Z core info: plain message\n"));
    assert_non_null(strstr(text, "Z core warn: quote \" backslash \\ tab?here newline?there bell? del?\n"));
    assert_non_null(strstr(text, "person with ############ enrolled"));
    /* digits that are no My Number stay as they are */
    char other[64];
    snprintf(other, sizeof other, "13 digits %s1, 11 digits %.11s", mn, mn);
    assert_non_null(strstr(text, other));
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 5);
    free(text);
}

static void log_long(void)
{
    char big[1500];
    memset(big, '"', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rk_info("%s", big);
    memset(big, 'a', sizeof big - 1);
    memcpy(big + 1021, "\xe3\x81\x82", 3); /* cut in the middle by the 1024-byte cap */
    rk_info("%s", big);
}

/* A message over the cap is cut, and still one valid object. */
static void json_long_messages_stay_valid(void **state)
{
    rk_log_init("core", RK_LOG_DEBUG, RK_LOG_JSON);
    char *text = captured(log_long);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        const char *msg = json_string_value(json_object_get(o, "msg"));
        assert_non_null(msg);
        assert_true(strlen(msg) >= 1000 && strlen(msg) <= 1023);
        json_decref(o);
    }
    assert_int_equal(lines, 2);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_lines_are_objects),
        cmocka_unit_test(text_lines_keep_their_form),
        cmocka_unit_test(json_long_messages_stay_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
