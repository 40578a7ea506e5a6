/* condition.c — see condition.h. */
#include "lib/condition.h"

#include <stdio.h>
#include <string.h>

int rk_condition_read(const json_t *j, rk_condition *c)
{
    memset(c, 0, sizeof *c);
    if (!j)
        return 0;
    if (!json_is_object(j) || json_object_size(j) != 1)
        return -1;
    const json_t *fy = json_object_get(j, "fiscal_year"), *as_of = json_object_get(j, "as_of");
    if (fy) {
        if (!json_is_integer(fy) || json_integer_value(fy) < 1900 || json_integer_value(fy) > 9998)
            return -1;
        c->kind = RK_COND_FISCAL_YEAR;
        c->fiscal_year = (int)json_integer_value(fy);
        return 0;
    }
    const char *d = json_string_value(as_of);
    if (!d || !rk_date_valid(d))
        return -1;
    c->kind = RK_COND_AS_OF;
    memcpy(c->as_of, d, RK_DATE_LEN + 1);
    return 0;
}

json_t *rk_condition_json(const rk_condition *c)
{
    if (c->kind == RK_COND_FISCAL_YEAR)
        return json_pack("{s:i}", "fiscal_year", c->fiscal_year);
    if (c->kind == RK_COND_AS_OF)
        return json_pack("{s:s}", "as_of", c->as_of);
    return NULL;
}

void rk_condition_text(const rk_condition *c, char out[RK_CONDITION_TEXT_MAX])
{
    if (c->kind == RK_COND_FISCAL_YEAR)
        snprintf(out, RK_CONDITION_TEXT_MAX, "fiscal_year=%d", c->fiscal_year);
    else if (c->kind == RK_COND_AS_OF)
        snprintf(out, RK_CONDITION_TEXT_MAX, "as_of=%s", c->as_of);
    else
        out[0] = '\0';
}

void rk_condition_date(const rk_condition *c, char out[RK_DATE_LEN + 1])
{
    if (c->kind == RK_COND_FISCAL_YEAR) { /* 年度 Y ends on 31 March of Y+1 */
        char d[24]; /* the year is 1901..9999: ten characters */
        snprintf(d, sizeof d, "%04d-03-31", c->fiscal_year + 1);
        memcpy(out, d, RK_DATE_LEN + 1);
    } else if (c->kind == RK_COND_AS_OF)
        memcpy(out, c->as_of, RK_DATE_LEN + 1);
    else
        out[0] = '\0';
}

rk_condition_kind rk_condition_kind_of(const char *word)
{
    return strcmp(word, "fiscal_year") == 0 ? RK_COND_FISCAL_YEAR
           : strcmp(word, "as_of") == 0     ? RK_COND_AS_OF
                                            : RK_COND_NONE;
}
