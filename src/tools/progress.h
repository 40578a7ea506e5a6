/* progress.h — a progress bar for long client-side jobs (bulk enrolment).
 *
 * On a terminal one line is redrawn with '\r' at most 10 times a second:
 *
 *   enrol [############..................] 400/1000   40%  80.0/s  ETA 00:08
 *
 * Elsewhere (a log file, a pipe) a plain line is printed at most every
 * 2 seconds and once at the end:
 *
 *   enrol: 400/1000 (40%) 80.0/s ETA 8s
 *
 * rk_progress_add may be called from any number of threads (atomics; the
 * drawing itself is serialised). Every function accepts NULL as a no-op, so
 * a caller whose rk_progress_new failed (out of memory) can carry on. */
#ifndef RK_TOOLS_PROGRESS_H
#define RK_TOOLS_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RK_PROGRESS_LABEL_MAX 32  /* longer labels are cut */
#define RK_PROGRESS_WIDTH_MAX 100 /* bar cells at most */
#define RK_PROGRESS_WIDTH 30      /* bar cells by default, fewer on a narrow terminal */

typedef struct rk_progress rk_progress;

/* A bar for total units drawn on out (not closed). NULL when out of memory. */
rk_progress *rk_progress_new(const char *label, uint64_t total, FILE *out);

/* n more units done (thread-safe). Redraws when the rate limit allows. */
void rk_progress_add(rk_progress *p, uint64_t n);

/* Prints one line of text on the bar's stream without garbling the bar (on
 * a terminal the bar is cleared, the line printed and the bar redrawn).
 * With p NULL the line goes to stderr. A newline is added. */
void rk_progress_message(rk_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints the final line (ending the terminal line) and frees p. */
void rk_progress_finish(rk_progress *p);

/* The text of one progress line, without '\r' or newline, into buf (always
 * NUL-terminated, cut to len). tty selects the bar form; width is the
 * number of bar cells (1..RK_PROGRESS_WIDTH_MAX; ignored when !tty).
 * total 0 counts as complete. The ETA is unknown ("--:--" / "?") until
 * something is done. */
void rk_progress_format(char *buf, size_t len, const char *label, uint64_t done, uint64_t total, double elapsed_s,
                        int tty, int width);

#endif
