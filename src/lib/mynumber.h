/* mynumber.h — 個人番号 (My Number) validation and the check code of
 * 符号取得処理 (standard 第7-2(1)). Pure functions; nothing is stored. */
#ifndef RK_MYNUMBER_H
#define RK_MYNUMBER_H

#include "lib/err.h"

/* RK_OK when s is 12 ASCII digits whose last digit is the check digit of
 * 省令 第5条; RK_ERR_INVALID otherwise. */
rk_rc rk_mynumber_validate(const char *s);

/* The check digit (0-9) of the first 11 digits of s (at least 11 digits). */
int rk_mynumber_check_digit(const char *first11);

/* 符号取得処理検査用符号: sum of the 11 non-check digits mod 10 (第7-2(1)).
 * Returns -1 when s is not a valid My Number. */
int rk_mynumber_check_code(const char *s);

/* 住民票コード: 11 digits. Only the format is validated: its check-digit rule
 * (平成14年総務省告示第436号) is not public here. */
rk_rc rk_resident_code_validate(const char *s);

#endif
