/* lib/pia.c — see pia.h. */
#include "lib/pia.h"

#include <string.h>

static const char *const names[] = {"none", "published", "lapsed", "breach"};

rk_pia_state rk_pia_state_parse(const char *word)
{
    for (int i = RK_PIA_PUBLISHED; word && i <= RK_PIA_BREACH; i++)
        if (strcmp(word, names[i]) == 0)
            return (rk_pia_state)i;
    return RK_PIA_NONE;
}

const char *rk_pia_state_name(rk_pia_state s)
{
    return s >= RK_PIA_PUBLISHED && s <= RK_PIA_BREACH ? names[s] : names[0];
}
