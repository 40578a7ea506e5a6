/* agency_ctl.h — what the commands of `renkei agency-ctl` share: the
 * connection to the agency node (the business system's credential, the
 * node's key pinned), calls with retries, the answer's error code, and the
 * CSV reader. agency_ctl.c owns them; agency_ctl_query.c (query --csv)
 * uses them. */
#ifndef RK_TOOLS_AGENCY_CTL_H
#define RK_TOOLS_AGENCY_CTL_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "net/http_client.h"
#include "net/registry.h"
#include "tools/toolkit.h"

#define CTL_CODE_CAP 48 /* an answer's error code, or "http_<status>" */

typedef struct ctl_conn {
    rk_registry *reg;
    const rk_peer_node *node;
    tk_client cred;        /* the agency's client credential and rk_client */
    char base[RK_URL_MAX]; /* the node's url without a trailing '/' */
} ctl_conn;

/* Registry, the agency's node, credentials and client. On error err holds
 * one line and c is closed. */
rk_rc ctl_conn_open(ctl_conn *c, const char *net, const char *agency_id, char *err, size_t errlen);
void ctl_conn_close(ctl_conn *c);
/* One call to path on the agency node (thread-safe), retrying a 503 answer
 * or no answer a few times with backoff: for idempotent requests only. */
rk_rc ctl_conn_call_retry(ctl_conn *c, const char *method, const char *path, const char *body, rk_http_result *res);
/* The "code" of an error answer, kept to [a-z0-9_]; else "http_<status>". */
void ctl_answer_code(const rk_http_result *res, char code[CTL_CODE_CAP]);
/* The next line without its line end; -1 at the end of the file. */
ssize_t ctl_read_line(FILE *f, char **buf, size_t *cap);
/* Counts the non-blank lines from f's position to its end, then goes back
 * there: 0, or -1 with err "<name>: cannot read: …". */
int ctl_count_rows(FILE *f, const char *name, uint64_t *rows, char *err, size_t errlen);

/* `renkei agency-ctl query` (agency_ctl_query.c); argv[0] is "query". */
int ctl_cmd_query(int argc, char **argv);

#endif
