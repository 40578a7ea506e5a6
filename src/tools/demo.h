/* demo.h — `renkei demo` (DESIGN §5): the state its steps share.
 *
 * The demo builds a network in a temporary folder, starts it, and runs its
 * steps one after the other. A step begins with demo_step_begin() (which
 * numbers and titles it) and reports each thing that did not do what it
 * should with demo_fail(); the first failure is what the last line names.
 * The network is always stopped at the end, whatever failed. */
#ifndef RK_TOOLS_DEMO_H
#define RK_TOOLS_DEMO_H

#include <stddef.h>

#include "lib/err.h"
#include "net/http_client.h"
#include "net/registry.h"
#include "tools/net/net.h"
#include "tools/toolkit.h"

#define DEMO_AGENCIES 3
#define DEMO_RESIDENTS 4   /* residents #1..#4 of residents.csv take part */
#define DEMO_ENROLMENTS 6  /* resident #1 at every agency, #2..#4 at one each */
#define DEMO_PATH_CAP 4096

typedef struct demo_agency {
    const char *id;           /* "city-yokohama" */
    const char *prefix;       /* of its person ids: "Y" → "Y-0001" */
    const rk_peer_node *node; /* its agency node, in the registry */
    tk_client cred;           /* its business system's credential and client,
                                 which talks to the agency node as that system */
} demo_agency;

typedef struct demo_resident {
    char resident_code[16]; /* 住民票コード: only to find the person at the core */
    int check_code;         /* what the agency computes from the My Number (第7-2(1)) */
    /* the four basic items as the business systems hold them (residents.csv);
       sent with each enrolment, never printed */
    char name[320], birth_date[16], sex[4], address[640];
} demo_resident;

typedef struct demo_enrolment {
    int agency;      /* index into demo.agencies */
    int resident;    /* 1-based: "resident #1" */
    char person[16]; /* the agency's internal person id */
    char status[16]; /* pending | linked | failed, as the agency node answers */
    char code[64];   /* the code the agency holds once linked, "" before */
    int check_ok;    /* the core sent the check code the agency computed */
    int64_t mismatches; /* check_code_mismatch incidents the agency recorded (-1: unknown) */
} demo_enrolment;

typedef struct demo {
    char dir[DEMO_PATH_CAP];
    int keep;
    int persons;
    rk_registry *reg;
    rk_net_procs *procs;
    demo_agency agencies[DEMO_AGENCIES];
    demo_resident residents[DEMO_RESIDENTS]; /* [0] is resident #1; no My Number kept */
    demo_enrolment enrolments[DEMO_ENROLMENTS];
    size_t n_enrolments;
    int step;             /* steps begun so far */
    int failed_step;      /* the first step that failed, 0 while none has */
    int n_failed_steps;
    int last_failed_step; /* so that a step with several failures counts once */
    char failure[512];    /* what went wrong first */
} demo;

/* Starts the next step: prints "N. title" and counts it. */
void demo_step_begin(demo *d, const char *title);

/* Prints one failure of the current step and records it; returns rc
 * (RK_ERR_INVALID when rc is RK_OK) so that a step can `return demo_fail(…)`. */
rk_rc demo_fail(demo *d, rk_rc rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* One call to agency `agency`'s node as its business system: path like
 * "/v1/persons", body NULL or JSON. RK_OK when an HTTP answer arrived. */
rk_rc demo_call(demo *d, int agency, const char *method, const char *path, const char *body, rk_http_result *out);

/* Request and provision (DESIGN §2.2): added with the exchange flow. */
rk_rc demo_exchanges(demo *d);

/* A fiscal-year query and a held answer (手動応答), after demo_exchanges. */
rk_rc demo_held(demo *d);

#endif
