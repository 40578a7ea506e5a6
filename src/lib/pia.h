/* lib/pia.h — the states of a 特定個人情報保護評価 (PIA, 法28条) as the
 * PIA register (src/ppc) keeps them and the core (src/core/pia.c) checks
 * them: the one vocabulary both speak on the wire. */
#ifndef RK_LIB_PIA_H
#define RK_LIB_PIA_H

/* published (公表: the files may be used), lapsed (not redone in time: 法28条
 * is not met), breach (the committee found a violation). */
typedef enum { RK_PIA_NONE = 0, RK_PIA_PUBLISHED, RK_PIA_LAPSED, RK_PIA_BREACH } rk_pia_state;

/* The state named by word, RK_PIA_NONE for any other word (or NULL). */
rk_pia_state rk_pia_state_parse(const char *word);
/* Its word; "none" for RK_PIA_NONE. */
const char *rk_pia_state_name(rk_pia_state s);

#endif
