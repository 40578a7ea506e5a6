/* condition.h — a query's condition (DESIGN §4; issue of fiscal-year
 * queries): which version of an item answers, by date, instead of the
 * newest. A version of an item is in force from its `as_of` until the next
 * version's `as_of`.
 *
 *   {"as_of": "YYYY-MM-DD"}  the version in force on that date
 *   {"fiscal_year": Y}       the version in force at the end of fiscal year
 *                            Y (年度: 1 April Y to 31 March Y+1), that is on
 *                            Y+1-03-31: a year's determination (地方税 is
 *                            fixed in June) answers for that year
 *
 * The condition travels with the exchange (agency → core → provider) and is
 * part of the record at each node, as its text ("as_of=2025-01-01",
 * "fiscal_year=2025"; "" for none). Each permission row says which kinds it
 * admits (core/permissions.h). */
#ifndef RK_CONDITION_H
#define RK_CONDITION_H

#include <jansson.h>
#include "lib/ids.h"

typedef enum {
    RK_COND_NONE = 0,
    RK_COND_FISCAL_YEAR = 1 << 0,
    RK_COND_AS_OF = 1 << 1,
} rk_condition_kind;

typedef struct rk_condition {
    rk_condition_kind kind;
    int fiscal_year;              /* 1900..9998 */
    char as_of[RK_DATE_LEN + 1];
} rk_condition;

#define RK_CONDITION_TEXT_MAX 24  /* "fiscal_year=2025", "as_of=2025-01-01" */

/* Reads the "condition" member of a request (j NULL: none). 0, or -1 when
 * it is not an object of exactly one of fiscal_year (an integer 1900..9998)
 * and as_of (a date). */
int rk_condition_read(const json_t *j, rk_condition *c);
/* The condition as the member to send on; NULL for none. */
json_t *rk_condition_json(const rk_condition *c);
/* Its text in a record; "" for none. */
void rk_condition_text(const rk_condition *c, char out[RK_CONDITION_TEXT_MAX]);
/* The date whose version answers; "" for none (the newest). */
void rk_condition_date(const rk_condition *c, char out[RK_DATE_LEN + 1]);
/* The kind named by a word of the permission table ("fiscal_year",
 * "as_of"); RK_COND_NONE for another. */
rk_condition_kind rk_condition_kind_of(const char *word);

#endif
