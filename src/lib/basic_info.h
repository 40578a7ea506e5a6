/* lib/basic_info.h — a resident's four basic items (基本4情報: 氏名 name,
 * 生年月日 birth date, 性別 sex, 住所 address): how the agency and J-LIS
 * read them, and how J-LIS compares them with its registry when a person is
 * linked to a My Number, so that a number entered for the wrong person is
 * refused (the response to 2023's mislinked records: マイナンバー情報総点検本部
 * 第5回, 2023-12-12, 「住基ネット照会方法の改修について」: 4 items, or the 3
 * other than sex where sex is not held; notation variants and 外字 tolerated).
 *
 * Values (rk_basic_check, rk_basic_read_json): name and address are UTF-8
 * text of 1..RK_NAME_FIELD_MAX / RK_ADDRESS_FIELD_MAX bytes, without
 * control characters (U+0000–U+001F, U+007F–U+009F, U+2028, U+2029) and not
 * only spaces; birth_date is a real calendar date YYYY-MM-DD, years
 * 1800..9999; sex is "1" (male) or "2" (female) as in the 住民基本台帳, or
 * NULL (absent, or JSON null) where it is not held. Each bad value has its
 * stable error code: invalid_name, invalid_birth_date, invalid_sex,
 * invalid_address.
 *
 * Comparison (rk_basic_compare): birth dates must be equal; sex is compared
 * only when both sides hold it; name and address are compared after this
 * normalisation of each side, exactly:
 *  1. Width. Fullwidth ASCII U+FF01–U+FF5E becomes ASCII U+0021–U+007E;
 *     halfwidth katakana and
 *     punctuation U+FF61–U+FF9D become their fullwidth forms (as NFKC), and
 *     the halfwidth voiced marks ﾞ ﾟ (U+FF9E, U+FF9F) become ゛ ゜ (U+309B,
 *     U+309C).
 *  2. Voiced marks. A voiced or semi-voiced mark, combining (U+3099,
 *     U+309A) or spacing (U+309B, U+309C), after a kana that has a
 *     precomposed voiced form joins it (カ+゛ → ガ, ﾊﾟ → パ, う+゛ → ゔ).
 *  3. Spaces of both widths (U+0020, U+00A0, U+3000) are removed.
 *  4. Latin letters a–z become A–Z.
 *  5. 外字: a character outside the JIS sets — JIS X 0201, JIS X 0208 and
 *     JIS X 0213 planes 1 and 2, as the C library's EUC-JISX0213 converter
 *     encodes them (so 髙 U+9AD9 and 𠮷 U+20BB7 are 外字) — and the geta
 *     mark 〓 (U+3013) that systems write in the place of one, each stand
 *     for one character whose position is left out of the comparison: it
 *     matches any one character of the other side.
 *  6. Addresses only: after a digit, the markers 丁目, 番地, 番, 号, の, ノ
 *     and the hyphen-likes - ‐ ‑ ‒ – — ― − ー (one or more in a row) are one
 *     separator, kept as "-" only where a digit follows; so 2丁目1番地2号,
 *     ２ー１－２ and 2-1-2 are the same.
 * The two sequences then match when they have the same length and every
 * position holds the same character or a 外字 on either side. Nothing else
 * is folded: kanji variants (髙/高 where both are JIS), kanji numerals
 * (二丁目), ヶ/ケ/が, hiragana/katakana and case outside a–z stay different.
 */
#ifndef RK_LIB_BASIC_INFO_H
#define RK_LIB_BASIC_INFO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

typedef struct rk_basic_info {
    const char *name;
    const char *birth_date; /* YYYY-MM-DD */
    const char *sex;        /* "1" or "2"; NULL where not held */
    const char *address;
} rk_basic_info;

/* Bits of rk_basic_compare's answer: the items that differ. */
enum { RK_BASIC_NAME = 1, RK_BASIC_BIRTH_DATE = 2, RK_BASIC_SEX = 4, RK_BASIC_ADDRESS = 8 };

/* NULL when the four values are usable, else the error code of the first
 * bad one (invalid_name, invalid_birth_date, invalid_sex, invalid_address). */
const char *rk_basic_check(const rk_basic_info *b);
/* The fields "name", "birth_date", "sex", "address" of a JSON object
 * (borrowed into out), checked: NULL or an error code as rk_basic_check; a
 * field of the wrong type or with a NUL inside is that field's code. */
const char *rk_basic_read_json(json_t *obj, rk_basic_info *out);
/* A sentence for an error code of the two above. */
const char *rk_basic_error_message(const char *code);

/* A real calendar date YYYY-MM-DD, years 1800..9999. */
int rk_basic_date_valid(const char *s);

/* Loads the table of the JIS sets (once per process, from the C library's
 * EUC-JISX0213 converter). RK_ERR_CONFIG when the converter is missing:
 * J-LIS refuses to start then, rather than compare without it. */
rk_rc rk_basic_init(void);

/* The normalised form of text (checked UTF-8) as code points, a 外字 as
 * RK_BASIC_GAIJI; address selects step 6. The count, or -1 when text is
 * not valid UTF-8 or longer than cap code points. */
#define RK_BASIC_GAIJI 0xFFFFFFFFu
int rk_basic_normalise(const char *text, int address, uint32_t *out, size_t cap);
/* The same as UTF-8 text with 〓 for each 外字 (for tests and tools);
 * RK_ERR_INVALID or RK_ERR_TOO_LARGE. */
rk_rc rk_basic_fold(const char *text, int address, char *out, size_t outlen);

/* The items of given that differ from registry (0: a match). Both are
 * checked values. Fails closed: every bit when the JIS table is missing. */
unsigned rk_basic_compare(const rk_basic_info *registry, const rk_basic_info *given);
/* "name,sex" for bits (item names only, never values); "" for 0. */
void rk_basic_items_text(unsigned bits, char *out, size_t outlen);

#endif
