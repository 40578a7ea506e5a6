/* codes.c — `renkei bench codes`: code derivation, conversion and opening
 * per second on one thread. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "core/codes.h"
#include "lib/util.h"
#include "tools/bench/bench.h"
#include "tools/toolkit.h"

static const char usage_codes[] =
    "usage: renkei bench codes [--seconds S]\n"
    "\n"
    "Derives codes (rk_code_derive) and converts them between two agencies\n"
    "(rk_code_convert), then opens them (rk_code_open), each for S seconds\n"
    "(default 3) on one thread with a fixed test master key. Prints ops/s and\n"
    "ns/op for each.\n";

#define CODES_BATCH 4096

typedef struct codes_result {
    uint64_t ops;
    double seconds;
} codes_result;

static void codes_print(const char *what, codes_result r)
{
    double rate = r.seconds > 0 ? (double)r.ops / r.seconds : 0;
    printf("  %-8s %12.0f ops/s  %8.1f ns/op  (%llu ops in %.2f s)\n", what, rate, rate > 0 ? 1e9 / rate : 0,
           (unsigned long long)r.ops, r.seconds);
    fflush(stdout);
}

/* Derives codes for `seconds`, CODES_BATCH at a time; sets *failed when one fails. */
static codes_result codes_derive_run(const rk_codec *c, uint32_t from, double seconds, int *failed)
{
    char out[RK_CODE_TEXT_MAX];
    volatile unsigned sink = 0;
    codes_result r = {0};
    double start = rk_mono_s(), end = start + seconds, now = start;
    for (uint64_t serial = 1; now < end && !bench_stop;) {
        for (int i = 0; i < CODES_BATCH; i++, serial++) {
            *failed |= rk_code_derive(c, serial & RK_CODE_MAX_SERIAL, from, out) != RK_OK;
            sink += (unsigned char)out[5];
        }
        r.ops += CODES_BATCH;
        now = rk_mono_s();
    }
    r.seconds = now - start;
    (void)sink;
    return r;
}

/* Converts the given codes from one agency to another for `seconds`. */
static codes_result codes_convert_run(const rk_codec *c, char codes[][RK_CODE_TEXT_MAX], uint32_t from, uint32_t to,
                                      double seconds, int *failed)
{
    char out[RK_CODE_TEXT_MAX];
    volatile unsigned sink = 0;
    codes_result r = {0};
    double start = rk_mono_s(), end = start + seconds, now = start;
    while (now < end && !bench_stop) {
        for (int i = 0; i < CODES_BATCH; i++) {
            *failed |= rk_code_convert(c, codes[i], from, to, out) != RK_OK;
            sink += (unsigned char)out[5];
        }
        r.ops += CODES_BATCH;
        now = rk_mono_s();
    }
    r.seconds = now - start;
    (void)sink;
    return r;
}

/* Opens the given codes (serial and agency back) for `seconds`. */
static codes_result codes_open_run(const rk_codec *c, char codes[][RK_CODE_TEXT_MAX], double seconds, int *failed)
{
    volatile unsigned sink = 0;
    codes_result r = {0};
    double start = rk_mono_s(), end = start + seconds, now = start;
    while (now < end && !bench_stop) {
        for (int i = 0; i < CODES_BATCH; i++) {
            uint64_t serial;
            uint32_t agency;
            *failed |= rk_code_open(c, codes[i], &serial, &agency) != RK_OK;
            sink += (unsigned)serial;
        }
        r.ops += CODES_BATCH;
        now = rk_mono_s();
    }
    r.seconds = now - start;
    (void)sink;
    return r;
}

int bench_cmd_codes(int argc, char **argv)
{
    static const struct option table[] = {
        {"seconds", required_argument, NULL, BENCH_OPT_SECONDS},
        BENCH_O_HELP,
        BENCH_O_END,
    };
    bench_opts o = {.seconds = 3};
    enum bench_parse_result pr = bench_parse_opts(argc, argv, table, &o);
    if (pr != BENCH_PARSE_OK)
        return pr == BENCH_PARSE_HELP ? (fputs(usage_codes, stdout), 0) : TK_EXIT_USAGE;
    uint8_t master[32];
    for (size_t i = 0; i < sizeof master; i++)
        master[i] = (uint8_t)(0xA0 + i); /* a fixed test key, never a real one */
    rk_codec *c = NULL;
    rk_rc rc = rk_codec_new(master, sizeof master, 1, &c);
    if (rc != RK_OK)
        return bench_failure("cannot make a codec: %s", rk_strerror(rc));
    uint32_t from = rk_agency_number("city-yokohama"), to = rk_agency_number("pref-kanagawa");
    static char codes[CODES_BATCH][RK_CODE_TEXT_MAX];
    printf("renkei bench codes: one thread, %.1f s per operation, fixed test master key\n", o.seconds);
    int failed = 0;
    codes_print("derive", codes_derive_run(c, from, o.seconds, &failed));
    for (int i = 0; i < CODES_BATCH; i++)
        failed |= rk_code_derive(c, (uint64_t)i * 7919 + 1, from, codes[i]) != RK_OK;
    codes_print("convert", codes_convert_run(c, codes, from, to, o.seconds, &failed));
    codes_print("open", codes_open_run(c, codes, o.seconds, &failed));
    rk_codec_free(c);
    rk_wipe(master, sizeof master);
    if (failed)
        return bench_failure("an operation failed during the run: the figures above are not valid");
    return 0;
}
