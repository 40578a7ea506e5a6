/* basic_info.c — the four basic items: reading, normalising, comparing
 * (the rules are in basic_info.h). No I/O but the one-time load of the JIS
 * table from the C library's converter. */
#include "lib/basic_info.h"

#include <iconv.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ids.h"

/* ---------- UTF-8 ---------- */

/* The code point at *p, *p moved past it; -1 for bytes that are not UTF-8
 * (overlong forms, surrogates and values above U+10FFFF included). */
static int32_t utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int n;
    if (c < 0x80) {
        *p = s + 1;
        return (int32_t)c;
    }
    if (c >= 0xC2 && c <= 0xDF)
        n = 1, c &= 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 2, c &= 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 3, c &= 0x07;
    else
        return -1;
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return -1;
        c = (c << 6) | (s[i] & 0x3F);
    }
    static const uint32_t least[4] = {0, 0x80, 0x800, 0x10000};
    if (c < least[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return -1;
    *p = s + n + 1;
    return (int32_t)c;
}

static size_t utf8_put(uint32_t c, char *out)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---------- checking values ---------- */

static int is_space(uint32_t c)
{
    return c == 0x20 || c == 0xA0 || c == 0x3000;
}

/* 1..max bytes of UTF-8 without control characters, not only spaces. */
static int text_ok(const char *s, size_t max)
{
    size_t len = s ? strlen(s) : 0;
    int seen = 0;
    if (len == 0 || len > max)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int32_t c = utf8_next(&p);
        if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029)
            return 0; /* -1 (not UTF-8) too */
        seen |= !is_space((uint32_t)c);
    }
    return seen;
}

int rk_basic_date_valid(const char *s)
{
    static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!s || strlen(s) != RK_DATE_LEN || s[4] != '-' || s[7] != '-' || strspn(s, "0123456789") != 4 ||
        strspn(s + 5, "0123456789") != 2 || strspn(s + 8, "0123456789") != 2)
        return 0;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (y < 1800 || m < 1 || m > 12 || d < 1 || d > days[m - 1])
        return 0;
    return !(m == 2 && d == 29 && (y % 4 != 0 || (y % 100 == 0 && y % 400 != 0)));
}

const char *rk_basic_check(const rk_basic_info *b)
{
    if (!text_ok(b->name, RK_NAME_FIELD_MAX))
        return "invalid_name";
    if (!rk_basic_date_valid(b->birth_date))
        return "invalid_birth_date";
    if (b->sex && strcmp(b->sex, "1") != 0 && strcmp(b->sex, "2") != 0)
        return "invalid_sex";
    if (!text_ok(b->address, RK_ADDRESS_FIELD_MAX))
        return "invalid_address";
    return NULL;
}

/* A string field of at most max bytes without a NUL inside, else NULL. */
static const char *json_text(json_t *obj, const char *field, size_t max)
{
    json_t *v = json_object_get(obj, field);
    if (!json_is_string(v) || json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
        return NULL;
    return json_string_value(v);
}

const char *rk_basic_read_json(json_t *obj, rk_basic_info *out)
{
    json_t *sex = json_object_get(obj, "sex");
    memset(out, 0, sizeof *out);
    if (!(out->name = json_text(obj, "name", RK_NAME_FIELD_MAX)))
        return "invalid_name";
    if (!(out->birth_date = json_text(obj, "birth_date", RK_DATE_LEN)))
        return "invalid_birth_date";
    if (sex && !json_is_null(sex) && !(out->sex = json_text(obj, "sex", 1)))
        return "invalid_sex";
    if (!(out->address = json_text(obj, "address", RK_ADDRESS_FIELD_MAX)))
        return "invalid_address";
    return rk_basic_check(out);
}

const char *rk_basic_error_message(const char *code)
{
    if (code && strcmp(code, "invalid_name") == 0)
        return "field \"name\" (氏名) must be 1 to 300 bytes of text without control characters";
    if (code && strcmp(code, "invalid_birth_date") == 0)
        return "field \"birth_date\" (生年月日) must be a real date YYYY-MM-DD";
    if (code && strcmp(code, "invalid_sex") == 0)
        return "field \"sex\" (性別) must be \"1\" or \"2\", or absent where not held";
    if (code && strcmp(code, "invalid_address") == 0)
        return "field \"address\" (住所) must be 1 to 600 bytes of text without control characters";
    return "bad basic items";
}

/* ---------- the JIS sets ---------- */

#define JIS_LIMIT 0x30000 /* JIS X 0213 reaches into plane 2, no further */

static uint8_t jis_bits[JIS_LIMIT / 8];
static pthread_once_t jis_once = PTHREAD_ONCE_INIT;
static rk_rc jis_rc = RK_ERR_CONFIG;

/* Every code point the converter encodes alone, without loss. */
static void jis_load(void)
{
    iconv_t cd = iconv_open("EUC-JISX0213", "UTF-32LE");
    if (cd == (iconv_t)-1)
        return;
    for (uint32_t c = 1; c < JIS_LIMIT; c++) {
        if (c >= 0xD800 && c <= 0xDFFF)
            continue;
        char in[4] = {(char)(c & 0xFF), (char)((c >> 8) & 0xFF), (char)((c >> 16) & 0xFF), 0}, out[16];
        char *ip = in, *op = out;
        size_t il = sizeof in, ol = sizeof out;
        size_t r = iconv(cd, &ip, &il, &op, &ol);
        /* a base that may combine is held back until the flush */
        if (r == 0 && il == 0 && iconv(cd, NULL, NULL, &op, &ol) == 0 && op > out)
            jis_bits[c >> 3] |= (uint8_t)(1u << (c & 7));
        iconv(cd, NULL, NULL, NULL, NULL);
    }
    iconv_close(cd);
    /* the converter encodes ASCII; check a kanji of JIS X 0208 and one of 0213 */
    if ((jis_bits[0x4E9C >> 3] >> (0x4E9C & 7)) & 1 && (jis_bits[0x4FE0 >> 3] >> (0x4FE0 & 7)) & 1)
        jis_rc = RK_OK;
}

rk_rc rk_basic_init(void)
{
    pthread_once(&jis_once, jis_load);
    return jis_rc;
}

static int in_jis(uint32_t c)
{
    return c < JIS_LIMIT && ((jis_bits[c >> 3] >> (c & 7)) & 1);
}

/* ---------- normalising ---------- */

/* Halfwidth katakana and punctuation U+FF61..U+FF9F, fullwidth (NFKC, but
 * the voiced marks as spacing marks, joined in step 2). */
static const uint16_t halfwidth[0x3F] = {
    0x3002, 0x300C, 0x300D, 0x3001, 0x30FB, 0x30F2, 0x30A1, 0x30A3, 0x30A5, 0x30A7, 0x30A9, 0x30E3, 0x30E5,
    0x30E7, 0x30C3, 0x30FC, 0x30A2, 0x30A4, 0x30A6, 0x30A8, 0x30AA, 0x30AB, 0x30AD, 0x30AF, 0x30B1, 0x30B3,
    0x30B5, 0x30B7, 0x30B9, 0x30BB, 0x30BD, 0x30BF, 0x30C1, 0x30C4, 0x30C6, 0x30C8, 0x30CA, 0x30CB, 0x30CC,
    0x30CD, 0x30CE, 0x30CF, 0x30D2, 0x30D5, 0x30D8, 0x30DB, 0x30DE, 0x30DF, 0x30E0, 0x30E1, 0x30E2, 0x30E4,
    0x30E6, 0x30E8, 0x30E9, 0x30EA, 0x30EB, 0x30EC, 0x30ED, 0x30EF, 0x30F3, 0x309B, 0x309C,
};

/* Step 1. */
static uint32_t width_fold(uint32_t c)
{
    if (c >= 0xFF01 && c <= 0xFF5E)
        return c - 0xFEE0;
    if (c >= 0xFF61 && c <= 0xFF9F)
        return halfwidth[c - 0xFF61];
    return c;
}

/* Step 2: the precomposed form of katakana k with a voiced (semi = 0) or
 * semi-voiced (semi = 1) mark, or 0 when there is none. */
static uint32_t voiced_katakana(uint32_t k, int semi)
{
    if (k >= 0x30CF && k <= 0x30DB && (k - 0x30CF) % 3 == 0) /* ハ ヒ フ ヘ ホ */
        return k + 1 + (uint32_t)semi;
    if (semi)
        return 0;
    if ((k >= 0x30AB && k <= 0x30C1 && (k - 0x30AB) % 2 == 0) || k == 0x30C4 || k == 0x30C6 || k == 0x30C8)
        return k + 1; /* カ..チ, ツ テ ト */
    switch (k) {
    case 0x30A6: return 0x30F4; /* ウ → ヴ */
    case 0x30EF: case 0x30F0: case 0x30F1: case 0x30F2: return k + 8; /* ワ ヰ ヱ ヲ → ヷ ヸ ヹ ヺ */
    case 0x30FD: return 0x30FE; /* ヽ → ヾ */
    default: return 0;
    }
}

static uint32_t voiced(uint32_t c, int semi)
{
    if (c >= 0x30A1 && c <= 0x30FE)
        return voiced_katakana(c, semi);
    /* hiragana and ゝ: the katakana layout 0x60 lower, without ワ行's forms */
    if (((c >= 0x3041 && c <= 0x3096) || c == 0x309D) && !(c >= 0x308F && c <= 0x3092)) {
        uint32_t k = voiced_katakana(c + 0x60, semi);
        return k ? k - 0x60 : 0;
    }
    return 0;
}

static int is_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

static int is_hyphen(uint32_t c)
{
    return c == '-' || (c >= 0x2010 && c <= 0x2015) || c == 0x2212 || c == 0x30FC;
}

/* Step 6: the length of the marker at s (0: none). */
static size_t marker_len(const uint32_t *s, size_t left)
{
    if (left >= 2 && ((s[0] == 0x4E01 && s[1] == 0x76EE) || (s[0] == 0x756A && s[1] == 0x5730)))
        return 2; /* 丁目, 番地 */
    return s[0] == 0x756A || s[0] == 0x53F7 || s[0] == 0x306E || s[0] == 0x30CE || is_hyphen(s[0]); /* 番 号 の ノ */
}

static size_t address_fold(uint32_t *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t m = 0, k;
        if (w && is_digit(s[w - 1]))
            while (i + m < n && (k = marker_len(s + i + m, n - i - m)))
                m += k;
        if (!m) {
            s[w++] = s[i++];
            continue;
        }
        i += m;
        if (i < n && is_digit(s[i]))
            s[w++] = '-';
    }
    return w;
}

int rk_basic_normalise(const char *text, int address, uint32_t *out, size_t cap)
{
    size_t n = 0;
    rk_basic_init();
    for (const unsigned char *p = (const unsigned char *)text; *p;) {
        int32_t got = utf8_next(&p);
        if (got < 0)
            return -1;
        uint32_t c = width_fold((uint32_t)got);
        if (is_space(c))
            continue;
        if (c >= 0x3099 && c <= 0x309C && n) {
            uint32_t joined = voiced(out[n - 1], c == 0x309A || c == 0x309C);
            if (joined) {
                out[n - 1] = joined;
                continue;
            }
        }
        if (c >= 'a' && c <= 'z')
            c -= 'a' - 'A';
        if (c == 0x3013 || !in_jis(c))
            c = RK_BASIC_GAIJI;
        if (n == cap)
            return -1;
        out[n++] = c;
    }
    return (int)(address ? address_fold(out, n) : n);
}

rk_rc rk_basic_fold(const char *text, int address, char *out, size_t outlen)
{
    uint32_t cps[RK_ADDRESS_FIELD_MAX];
    int n = rk_basic_normalise(text, address, cps, sizeof cps / sizeof cps[0]);
    size_t w = 0;
    if (n < 0)
        return RK_ERR_INVALID;
    for (int i = 0; i < n; i++) {
        char one[4];
        size_t k = utf8_put(cps[i] == RK_BASIC_GAIJI ? 0x3013 : cps[i], one);
        if (w + k >= outlen)
            return RK_ERR_TOO_LARGE;
        memcpy(out + w, one, k);
        w += k;
    }
    if (outlen)
        out[w] = '\0';
    return outlen ? RK_OK : RK_ERR_TOO_LARGE;
}

/* ---------- comparing ---------- */

static int text_matches(const char *a, const char *b, int address)
{
    uint32_t x[RK_ADDRESS_FIELD_MAX], y[RK_ADDRESS_FIELD_MAX];
    int nx = rk_basic_normalise(a, address, x, RK_ADDRESS_FIELD_MAX);
    int ny = rk_basic_normalise(b, address, y, RK_ADDRESS_FIELD_MAX);
    if (nx < 0 || ny < 0 || nx != ny)
        return 0;
    for (int i = 0; i < nx; i++)
        if (x[i] != y[i] && x[i] != RK_BASIC_GAIJI && y[i] != RK_BASIC_GAIJI)
            return 0;
    return 1;
}

unsigned rk_basic_compare(const rk_basic_info *registry, const rk_basic_info *given)
{
    unsigned bits = 0;
    if (rk_basic_init() != RK_OK)
        return RK_BASIC_NAME | RK_BASIC_BIRTH_DATE | RK_BASIC_SEX | RK_BASIC_ADDRESS;
    if (!text_matches(registry->name, given->name, 0))
        bits |= RK_BASIC_NAME;
    if (strcmp(registry->birth_date, given->birth_date) != 0)
        bits |= RK_BASIC_BIRTH_DATE;
    if (registry->sex && given->sex && strcmp(registry->sex, given->sex) != 0)
        bits |= RK_BASIC_SEX; /* compared only where both hold it */
    if (!text_matches(registry->address, given->address, 1))
        bits |= RK_BASIC_ADDRESS;
    return bits;
}

void rk_basic_items_text(unsigned bits, char *out, size_t outlen)
{
    static const char *const names[4] = {"name", "birth_date", "sex", "address"};
    size_t w = 0;
    if (!outlen)
        return;
    out[0] = '\0';
    for (int i = 0; i < 4; i++) {
        size_t k = strlen(names[i]) + (w ? 1 : 0);
        if (!(bits & (1u << i)) || w + k >= outlen)
            continue; /* an item that does not fit is left out whole */
        snprintf(out + w, outlen - w, "%s%s", w ? "," : "", names[i]);
        w += k;
    }
}
