/* agency_ctl.c — `renkei agency-ctl`: an agency's business system talking to
 * its agency node's API (DESIGN §4 "system" rows, §5).
 *
 *   renkei agency-ctl enrol --net DIR --agency ID --csv FILE [--concurrency N] [--wait]
 *   renkei agency-ctl status --net DIR --agency ID PERSON
 *   renkei agency-ctl enrol-one --net DIR --agency ID PERSON MY_NUMBER --name N --birth-date D [--sex S] --address A
 *   renkei agency-ctl recheck --net DIR --agency ID --csv FILE [--batch N] [--out FILE]
 *   renkei agency-ctl query --net DIR --agency ID --csv FILE [--out FILE] (agency_ctl_query.c)
 *
 * The client presents DIR/clients/<agency>/{cert,key}.pem, trusts only
 * DIR/pki/ca.pem and pins the agency node's key from DIR/network.json.
 * The CSV files are the business system's: person, My Number and the four
 * basic items (lib/basic_info.h) of each person. My Numbers and the items
 * are never printed nor written: a bad CSV row is named by its line number,
 * a result by its person, and buffers that held a number are wiped.
 *
 * Exit status: 0 success, 1 failure, 2 usage error; errors are one line on
 * stderr starting with "renkei agency-ctl: ". */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "lib/basic_info.h"
#include "lib/csv.h"
#include "lib/ids.h"
#include "net/http_client.h"
#include "lib/mynumber.h"
#include "crypto/pki.h"
#include "net/registry.h"
#include "lib/util.h"
#include "tools/agency_ctl.h"
#include "tools/progress.h"
#include "tools/toolkit.h"
#include "tools/tools.h"

#define EXIT_USAGE TK_EXIT_USAGE
#define PATH_CAP TK_PATH_CAP
#define CALL_TIMEOUT_MS 10000
#define MAX_RETRIES 5           /* after the first attempt, for 503 and no answer */
#define RETRY_FIRST_MS 100      /* doubling */
#define DEFAULT_CONCURRENCY 16
#define MAX_CONCURRENCY 256
#define WAIT_LIMIT_MS 120000    /* --wait gives up after this */
#define POLL_ROUND_MS 500       /* a person is asked at most this often */
#define LINE_CAP 4096           /* longer CSV lines are refused */
#define MAX_CODES 32            /* distinct error codes tallied; then "other" */
#define CODE_CAP CTL_CODE_CAP
#define MAX_FAILURE_LINES 100   /* per-row answer failures named on stderr */
#define MAX_FIELDS 16           /* CSV columns read */
#define CSV_HEADER "person,my_number,name,birth_date,sex,address"

enum parse_result { PARSE_OK, PARSE_HELP, PARSE_USAGE };

static const char usage_main[] =
    "usage: renkei agency-ctl COMMAND --net DIR --agency ID [ARGS]\n"
    "\n"
    "A business system's client for its agency node's API (persons, code acquisition,\n"
    "batch queries).\n"
    "\n"
    "commands:\n"
    "  enrol --csv FILE [--concurrency N] [--batch N] [--wait]   enrol many persons from a CSV file\n"
    "  status PERSON                                 print a person's link status\n"
    "  enrol-one PERSON MY_NUMBER --name N --birth-date D [--sex S] --address A   enrol one person\n"
    "  recheck --csv FILE [--batch N] [--out FILE]   compare linked persons' basic items with J-LIS\n"
    "  query --csv FILE [--out FILE] [--batch N]     run a CSV of queries as batches, results as CSV\n"
    "\n"
    "common options:\n"
    "  --net DIR     a network written by 'renkei net init' (network.json, pki/ca.pem,\n"
    "                clients/<agency>/{cert,key}.pem)\n"
    "  --agency ID   the agency whose node to call, with that agency's client credential\n"
    "\n"
    "Run 'renkei agency-ctl COMMAND --help' for the details of a command.\n";

static const char usage_enrol[] =
    "usage: renkei agency-ctl enrol --net DIR --agency ID --csv FILE [--concurrency N] [--batch N] [--wait]\n"
    "\n"
    "Sends POST /v1/persons for every row of FILE, whose header starts with\n"
    "person,my_number and names the columns name,birth_date,sex,address (the four\n"
    "basic items; sex empty where not held; more columns are ignored). A bad\n"
    "item is refused here with the node's code (invalid_name, invalid_birth_date,\n"
    "invalid_sex, invalid_address); a person whose items J-LIS finds different\n"
    "from its registry fails with basic_info_mismatch. A 202 answer is success; a 503\n"
    "answer or no answer is retried up to 5 times (100 ms backoff, doubling). A bad\n"
    "row is reported as 'line N: reason' on stderr and not sent. My Numbers are\n"
    "never printed. A progress bar goes to stderr, a summary to stdout (rate is\n"
    "enrolments per second of the sending phase).\n"
    "\n"
    "  --net DIR          the network directory\n"
    "  --agency ID        the agency whose node to call\n"
    "  --csv FILE         the persons to enrol\n"
    "  --concurrency N    parallel requests, 1..256 (default 16)\n"
    "  --batch N          send N persons per request (POST /v1/persons/batch,\n"
    "                     1..1000; default 1: one POST /v1/persons each)\n"
    "  --wait             then poll GET /v1/persons/PERSON until every person is\n"
    "                     linked or failed, for at most 120 s\n"
    "  --help             show this help\n"
    "\n"
    "Exit 0 only when every row was accepted (and, with --wait, every person linked).\n";

static const char usage_status[] =
    "usage: renkei agency-ctl status --net DIR --agency ID PERSON\n"
    "\n"
    "Prints the agency node's answer to GET /v1/persons/PERSON\n"
    "({\"person\",\"status\":\"pending|linked|failed\"}). Exit 0 on HTTP 200.\n";

static const char usage_enrol_one[] =
    "usage: renkei agency-ctl enrol-one --net DIR --agency ID PERSON MY_NUMBER --name N --birth-date D\n"
    "                                   [--sex S] --address A\n"
    "\n"
    "Sends one POST /v1/persons {\"person\",\"my_number\",\"name\",\"birth_date\",\"sex\",\n"
    "\"address\"} and prints the answer. Exit 0 on HTTP 202.\n"
    "\n"
    "  --name N           氏名, as the business system holds it\n"
    "  --birth-date D     生年月日, YYYY-MM-DD\n"
    "  --sex S            性別, 1 or 2; leave it out where it is not held\n"
    "  --address A        住所\n";

static const char usage_recheck[] =
    "usage: renkei agency-ctl recheck --net DIR --agency ID --csv FILE [--batch N] [--out FILE]\n"
    "\n"
    "Compares the basic items of persons linked at the agency with J-LIS's resident\n"
    "registry again, as a link does, and links nothing: POST /v1/persons/recheck\n"
    "with N rows per request (default 1000). FILE is as for enrol (person,my_number\n"
    "and the columns name,birth_date,sex,address): the items as the business system\n"
    "holds them now. Neither the agency node nor this command keeps a My Number or\n"
    "an item; J-LIS logs each lookup. Prints 'mismatch PERSON' for every person whose\n"
    "items differ from the registry's (a link to look into), then a summary; rows\n"
    "refused (a bad row, person_not_linked, unknown_person, …) go to stderr by line.\n"
    "A progress bar goes to stderr.\n"
    "\n"
    "  --net DIR          the network directory\n"
    "  --agency ID        the agency whose node to call\n"
    "  --csv FILE         the persons to recheck\n"
    "  --batch N          rows per request, 1..1000 (default 1000)\n"
    "  --out FILE         also write every row's result as CSV person,result (match,\n"
    "                     mismatch or the error code), mode 0600\n"
    "  --help             show this help\n"
    "\n"
    "Exit 0 when every row matched, 1 when a row did not match or was refused.\n";

/* ---- messages and options -------------------------------------------- */

#define usage_error(...) tk_usage_error("agency-ctl", __VA_ARGS__)
#define failure(...) tk_failure("agency-ctl", __VA_ARGS__)

typedef struct ctl_opts {
    const char *net;
    const char *agency;
    const char *csv;
    const char *out;
    int concurrency;
    int wait;
    int batch;       /* persons per request: 1 uses POST /v1/persons */
    rk_basic_info items; /* enrol-one */
} ctl_opts;

enum { OPT_NET = 1000, OPT_AGENCY, OPT_CSV, OPT_CONCURRENCY, OPT_WAIT, OPT_BATCH, OPT_OUT, OPT_NAME, OPT_BIRTH_DATE,
       OPT_SEX, OPT_ADDRESS };

static const struct option enrol_options[] = {
    {"net", required_argument, NULL, OPT_NET},
    {"agency", required_argument, NULL, OPT_AGENCY},
    {"csv", required_argument, NULL, OPT_CSV},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"wait", no_argument, NULL, OPT_WAIT},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const struct option person_options[] = {
    {"net", required_argument, NULL, OPT_NET},
    {"agency", required_argument, NULL, OPT_AGENCY},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const struct option enrol_one_options[] = {
    {"net", required_argument, NULL, OPT_NET},
    {"agency", required_argument, NULL, OPT_AGENCY},
    {"name", required_argument, NULL, OPT_NAME},
    {"birth-date", required_argument, NULL, OPT_BIRTH_DATE},
    {"sex", required_argument, NULL, OPT_SEX},
    {"address", required_argument, NULL, OPT_ADDRESS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const struct option recheck_options[] = {
    {"net", required_argument, NULL, OPT_NET},
    {"agency", required_argument, NULL, OPT_AGENCY},
    {"csv", required_argument, NULL, OPT_CSV},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"out", required_argument, NULL, OPT_OUT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Options of a subcommand; then exactly npos positional arguments from
 * argv + optind. */
static enum parse_result parse_options(int argc, char **argv, const struct option *table, int npos, ctl_opts *o)
{
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", table, NULL)) != -1) {
        switch (c) {
        case 'h':
            return PARSE_HELP;
        case OPT_NET:
            o->net = optarg;
            break;
        case OPT_AGENCY:
            o->agency = optarg;
            break;
        case OPT_CSV:
            o->csv = optarg;
            break;
        case OPT_OUT:
            o->out = optarg;
            break;
        case OPT_NAME:
            o->items.name = optarg;
            break;
        case OPT_BIRTH_DATE:
            o->items.birth_date = optarg;
            break;
        case OPT_SEX:
            o->items.sex = optarg;
            break;
        case OPT_ADDRESS:
            o->items.address = optarg;
            break;
        case OPT_WAIT:
            o->wait = 1;
            break;
        case OPT_BATCH:
            if (tk_parse_int(optarg, 1, RK_BATCH_MAX, &o->batch))
                break;
            usage_error("--batch must be a whole number from 1 to %d", RK_BATCH_MAX);
            return PARSE_USAGE;
        case OPT_CONCURRENCY:
            if (tk_parse_int(optarg, 1, MAX_CONCURRENCY, &o->concurrency))
                break;
            usage_error("--concurrency must be a whole number from 1 to %d", MAX_CONCURRENCY);
            return PARSE_USAGE;
        default:
            tk_option_error("agency-ctl", c, argv);
            return PARSE_USAGE;
        }
    }
    if (!o->net || !o->agency) {
        usage_error("%s needs --net DIR and --agency ID", argv[0]);
        return PARSE_USAGE;
    }
    if (argc - optind != npos) {
        usage_error("%s takes %d argument%s besides options", argv[0], npos, npos == 1 ? "" : "s");
        return PARSE_USAGE;
    }
    return PARSE_OK;
}

/* ---- connection to the agency node ------------------------------------ */

static void conn_close(ctl_conn *c)
{
    tk_client_close(&c->cred);
    rk_registry_free(c->reg);
    memset(c, 0, sizeof *c);
}

/* Registry, the agency's node, credentials and client. On error err holds
 * one line and c is closed. */
static rk_rc conn_open(ctl_conn *c, const char *net, const char *agency_id, char *err, size_t errlen)
{
    char client_dir[PATH_CAP];
    memset(c, 0, sizeof *c);
    rk_rc rc = tk_registry_load(net, &c->reg, err, errlen);
    if (rc != RK_OK)
        return rc;
    c->node = rk_registry_find(c->reg, RK_ROLE_AGENCY, agency_id);
    if (!c->node || !c->node->url[0]) {
        snprintf(err, errlen, "no agency node for agency \"%s\" in %s/network.json", agency_id, net);
        conn_close(c);
        return RK_ERR_NOT_FOUND;
    }
    snprintf(c->base, sizeof c->base, "%s", c->node->url);
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    snprintf(client_dir, sizeof client_dir, "clients/%s", agency_id);
    rc = tk_client_open(net, client_dir, &c->cred, err, errlen);
    if (rc != RK_OK)
        conn_close(c);
    return rc;
}

/* One call to path on the agency node (thread-safe). */
static rk_rc conn_call(ctl_conn *c, const char *method, const char *path, const char *body, rk_http_result *res)
{
    char url[RK_URL_MAX + 128];
    if ((size_t)snprintf(url, sizeof url, "%s%s", c->base, path) >= sizeof url) {
        memset(res, 0, sizeof *res);
        return RK_ERR_TOO_LARGE;
    }
    return rk_client_call(c->cred.client, method, url, c->node->pin[0] ? c->node->pin : NULL, body,
                          body ? strlen(body) : 0, CALL_TIMEOUT_MS, res);
}

static int help(const char *text)
{
    fputs(text, stdout);
    return EXIT_SUCCESS;
}

/* conn_call, retrying a 503 answer or no answer (up to MAX_RETRIES). */
static rk_rc conn_call_retry(ctl_conn *c, const char *method, const char *path, const char *body, rk_http_result *res)
{
    rk_rc rc = RK_OK;
    for (int attempt = 0;; attempt++) {
        rc = conn_call(c, method, path, body, res);
        int again = (rc == RK_OK && res->status == 503) || rc == RK_ERR_UPSTREAM || rc == RK_ERR_TIMEOUT;
        if (!again || attempt == MAX_RETRIES)
            return rc;
        rk_http_result_clear(res);
        tk_sleep_ms((int64_t)RETRY_FIRST_MS << attempt);
    }
}

/* The "code" of an error answer, kept to [a-z0-9_]; else "http_<status>". */
static void answer_code(const rk_http_result *res, char code[CODE_CAP])
{
    json_t *doc = res->body ? json_loads(res->body, 0, NULL) : NULL;
    const char *s = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= CODE_CAP || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != n)
        snprintf(code, CODE_CAP, "http_%ld", res->status);
    else
        memcpy(code, s, n + 1);
    json_decref(doc);
}

/* The "status" of a person answer into out ("" when absent). */
static void answer_status(const rk_http_result *res, char *out, size_t outlen)
{
    json_t *doc = res->body ? json_loads(res->body, 0, NULL) : NULL;
    const char *s = json_string_value(json_object_get(doc, "status"));
    snprintf(out, outlen, "%s", s ? s : "");
    json_decref(doc);
}

/* {"person","my_number","name","birth_date"[,"sex"],"address"}. */
static json_t *person_json(const char *person, const char *my_number, const rk_basic_info *items)
{
    json_t *msg = json_pack("{s:s,s:s,s:s,s:s,s:s}", "person", person, "my_number", my_number, "name", items->name,
                            "birth_date", items->birth_date, "address", items->address);
    if (msg && items->sex)
        json_object_set_new(msg, "sex", json_string(items->sex));
    return msg;
}

/* The same as JSON text; the caller wipes and frees it. */
static char *person_body(const char *person, const char *my_number, const rk_basic_info *items)
{
    json_t *msg = person_json(person, my_number, items);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    return body;
}

static void free_body(char *body)
{
    if (body) {
        rk_wipe(body, strlen(body));
        free(body);
    }
}

/* ---- status and enrol-one --------------------------------------------- */

/* Prints the answer to stdout; 0 when it had the expected status. */
static int report_answer(ctl_conn *c, rk_rc rc, const rk_http_result *res, long want)
{
    if (rc != RK_OK)
        return failure("no answer from agency node %s at %s: %s", c->node->id, c->base, rk_strerror(rc));
    if (res->body && res->body_len > 0)
        printf("%s%s", res->body, res->body[res->body_len - 1] == '\n' ? "" : "\n");
    if (res->status == want)
        return EXIT_SUCCESS;
    char code[CODE_CAP];
    answer_code(res, code);
    return failure("agency node %s answered HTTP %ld %s", c->node->id, res->status, code);
}

static int cmd_status(int argc, char **argv)
{
    ctl_opts o = {0};
    enum parse_result parsed = parse_options(argc, argv, person_options, 1, &o);
    if (parsed != PARSE_OK)
        return parsed == PARSE_HELP ? help(usage_status) : EXIT_USAGE;
    const char *person = argv[optind];
    if (!rk_person_id_valid(person))
        return usage_error("a person id is 1 to 64 characters of [A-Za-z0-9._-]");
    ctl_conn c;
    char err[PATH_CAP + 256], path[128];
    if (conn_open(&c, o.net, o.agency, err, sizeof err) != RK_OK)
        return failure("%s", err);
    snprintf(path, sizeof path, "/v1/persons/%s", person);
    rk_http_result res = {0};
    rk_rc rc = conn_call(&c, "GET", path, NULL, &res);
    int code = report_answer(&c, rc, &res, 200);
    rk_http_result_clear(&res);
    conn_close(&c);
    return code;
}

static int cmd_enrol_one(int argc, char **argv)
{
    ctl_opts o = {0};
    enum parse_result parsed = parse_options(argc, argv, enrol_one_options, 2, &o);
    if (parsed != PARSE_OK)
        return parsed == PARSE_HELP ? help(usage_enrol_one) : EXIT_USAGE;
    const char *person = argv[optind], *my_number = argv[optind + 1];
    if (!rk_person_id_valid(person))
        return usage_error("a person id is 1 to 64 characters of [A-Za-z0-9._-]");
    if (rk_mynumber_validate(my_number) != RK_OK)
        return usage_error("MY_NUMBER is not a valid My Number (12 digits with a correct check digit)");
    if (!o.items.name || !o.items.birth_date || !o.items.address)
        return usage_error("enrol-one needs --name, --birth-date and --address (and --sex where it is held)");
    const char *bad = rk_basic_check(&o.items);
    if (bad)
        return usage_error("%s: %s", bad, rk_basic_error_message(bad));
    ctl_conn c;
    char err[PATH_CAP + 256];
    if (conn_open(&c, o.net, o.agency, err, sizeof err) != RK_OK)
        return failure("%s", err);
    char *body = person_body(person, my_number, &o.items);
    rk_http_result res = {0};
    rk_rc rc = body ? conn_call(&c, "POST", "/v1/persons", body, &res) : RK_ERR_NOMEM;
    free_body(body);
    int code = report_answer(&c, rc, &res, 202);
    rk_http_result_clear(&res);
    conn_close(&c);
    return code;
}

/* ---- CSV -------------------------------------------------------------- */

/* Next line without its line end; -1 at the end of the file. */
static ssize_t read_line(FILE *f, char **buf, size_t *cap)
{
    ssize_t n = getline(buf, cap, f);
    if (n < 0)
        return -1;
    while (n > 0 && ((*buf)[n - 1] == '\n' || (*buf)[n - 1] == '\r'))
        (*buf)[--n] = '\0';
    return n;
}

/* Where the basic items are in the CSV (from its header). */
typedef struct csv_cols {
    int n, name, birth_date, sex, address;
} csv_cols;

int ctl_count_rows(FILE *f, const char *name, uint64_t *rows, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    long start = ftell(f);
    *rows = 0;
    while ((n = read_line(f, &buf, &cap)) >= 0)
        *rows += n > 0;
    if (cap)
        rk_wipe(buf, cap); /* rows may hold My Numbers */
    free(buf);
    if (ferror(f) || start < 0 || fseek(f, start, SEEK_SET) != 0) {
        snprintf(err, errlen, "%s: cannot read: %s", name, strerror(errno));
        return -1;
    }
    return 0;
}

/* Checks the header on line 1 and counts the non-blank rows after it.
 * Leaves f at the first row. Returns the header's field count (and the
 * items' columns in cols), or 0 with err filled. */
static int csv_prepare(FILE *f, const char *name, uint64_t *rows, csv_cols *cols, char *err, size_t errlen)
{
    char *buf = NULL, *fields[MAX_FIELDS];
    size_t cap = 0;
    ssize_t n = read_line(f, &buf, &cap);
    char *line = n >= 0 ? buf : NULL;
    if (line && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3; /* a UTF-8 byte order mark */
    int nfields = line ? rk_csv_split(line, fields, MAX_FIELDS) : -1;
    *cols = (csv_cols){.n = nfields, .name = -1, .birth_date = -1, .sex = -1, .address = -1};
    for (int i = 2; i < nfields && i < MAX_FIELDS; i++) {
        int *at = strcmp(fields[i], "name") == 0 ? &cols->name : strcmp(fields[i], "birth_date") == 0 ? &cols->birth_date
                  : strcmp(fields[i], "sex") == 0 ? &cols->sex : strcmp(fields[i], "address") == 0 ? &cols->address : NULL;
        if (at && *at < 0)
            *at = i;
    }
    if (nfields < 2 || nfields > MAX_FIELDS || strcmp(fields[0], "person") != 0 || strcmp(fields[1], "my_number") != 0 ||
        cols->name < 0 || cols->birth_date < 0 || cols->sex < 0 || cols->address < 0) {
        snprintf(err, errlen, "%s: line 1 must be a header with the columns " CSV_HEADER " (person,my_number first)",
                 name);
        free(buf);
        return 0;
    }
    if (cap)
        rk_wipe(buf, cap);
    free(buf);
    return ctl_count_rows(f, name, rows, err, errlen) == 0 ? nfields : 0;
}

/* ---- enrol: shared state ---------------------------------------------- */

typedef struct code_tally {
    char code[CODE_CAP];
    uint64_t n;
} code_tally;

typedef struct watched {
    char *person;
    int state; /* 0 pending, 1 linked, 2 failed */
} watched;

typedef struct enrol_job {
    ctl_conn *conn;
    const ctl_opts *opt;
    pthread_mutex_t lock; /* reader, tallies, watch list, failure lines */
    FILE *csv;
    char *linebuf;
    size_t linecap;
    long lineno;
    int nfields;
    csv_cols cols;
    code_tally codes[MAX_CODES + 1]; /* the last one is "other" */
    size_t n_codes;
    unsigned failure_lines;
    watched *watch; /* persons answered "pending", for --wait */
    size_t n_watch, cap_watch;
    _Atomic size_t next_watch;
    int wait;         /* --wait, unless polling could not be set up */
    int stop_polling;
    int64_t deadline_ms;
    pthread_barrier_t barrier;
    rk_progress *bar;
    _Atomic uint64_t accepted, failed, linked, failed_link, pending;
} enrol_job;

/* Counts a failed row under code (lock held). */
static void tally_locked(enrol_job *j, const char *code)
{
    atomic_fetch_add(&j->failed, 1);
    for (size_t i = 0; i < j->n_codes; i++)
        if (strcmp(j->codes[i].code, code) == 0) {
            j->codes[i].n++;
            return;
        }
    size_t i = j->n_codes < MAX_CODES ? j->n_codes++ : MAX_CODES;
    if (i == MAX_CODES && j->codes[i].n == 0)
        snprintf(j->codes[i].code, CODE_CAP, "other");
    else if (i < MAX_CODES)
        snprintf(j->codes[i].code, CODE_CAP, "%s", code);
    j->codes[i].n++;
}

/* A row that failed; its line number and reason go to stderr (reasons
 * never include the row's content). */
static void row_failed(enrol_job *j, long lineno, const char *code, int always_report, const char *reason)
{
    int report = always_report, last = 0;
    pthread_mutex_lock(&j->lock);
    tally_locked(j, code);
    if (!always_report && j->failure_lines < MAX_FAILURE_LINES) {
        report = 1;
        last = ++j->failure_lines == MAX_FAILURE_LINES;
    }
    pthread_mutex_unlock(&j->lock);
    if (report)
        rk_progress_message(j->bar, "line %ld: %s", lineno, reason);
    if (last)
        rk_progress_message(j->bar, "(further rows refused by the node are counted, not listed)");
}

/* Keeps a person answered "pending" for --wait. */
static void watch_person(enrol_job *j, const char *person, long lineno)
{
    char *copy = strdup(person);
    pthread_mutex_lock(&j->lock);
    if (copy && j->n_watch == j->cap_watch) {
        size_t cap = j->cap_watch ? j->cap_watch * 2 : 1024;
        watched *bigger = realloc(j->watch, cap * sizeof *bigger);
        if (bigger) {
            j->watch = bigger;
            j->cap_watch = cap;
        }
    }
    int kept = copy && j->n_watch < j->cap_watch;
    if (kept)
        j->watch[j->n_watch++] = (watched){.person = copy, .state = 0};
    pthread_mutex_unlock(&j->lock);
    if (!kept) {
        free(copy);
        rk_progress_message(j->bar, "line %ld: out of memory; its link status will not be watched", lineno);
    }
}

/* ---- enrol: sending --------------------------------------------------- */

/* The next non-blank row into line (up to cap); 0 at the end. */
static int next_row(enrol_job *j, char *line, size_t cap, long *lineno)
{
    for (;;) {
        pthread_mutex_lock(&j->lock);
        ssize_t n = read_line(j->csv, &j->linebuf, &j->linecap);
        long no = ++j->lineno;
        int fits = n >= 0 && (size_t)n < cap;
        if (fits)
            memcpy(line, j->linebuf, (size_t)n + 1);
        if (n > 0)
            rk_wipe(j->linebuf, (size_t)n);
        pthread_mutex_unlock(&j->lock);
        if (n < 0)
            return 0;
        if (n == 0)
            continue;
        if (fits) {
            *lineno = no;
            return 1;
        }
        row_failed(j, no, "bad_row", 1, "line too long");
        rk_progress_add(j->bar, 1);
    }
}

static void person_accepted(enrol_job *j, const char *status, const char *person, long lineno);

/* What a 202 answer said about the person. */
static void row_accepted(enrol_job *j, const rk_http_result *res, const char *person, long lineno)
{
    char status[16];
    answer_status(res, status, sizeof status);
    person_accepted(j, status, person, lineno);
}

static void person_accepted(enrol_job *j, const char *status, const char *person, long lineno)
{
    atomic_fetch_add(&j->accepted, 1);
    if (strcmp(status, "linked") == 0) {
        atomic_fetch_add(&j->linked, 1);
    } else if (strcmp(status, "failed") == 0) {
        atomic_fetch_add(&j->failed_link, 1);
    } else {
        atomic_fetch_add(&j->pending, 1);
        if (j->wait)
            watch_person(j, person, lineno);
    }
}

static void send_row(enrol_job *j, const char *person, const char *my_number, const rk_basic_info *items,
                     long lineno)
{
    char *body = person_body(person, my_number, items);
    rk_http_result res = {0};
    rk_rc rc = body ? conn_call_retry(j->conn, "POST", "/v1/persons", body, &res) : RK_ERR_NOMEM;
    free_body(body);
    char code[CODE_CAP], reason[CODE_CAP + 64];
    if (rc == RK_OK && res.status == 202) {
        row_accepted(j, &res, person, lineno);
    } else if (rc == RK_OK) {
        answer_code(&res, code);
        snprintf(reason, sizeof reason, "HTTP %ld %s", res.status, code);
        row_failed(j, lineno, code, 0, reason);
    } else {
        const char *what = rc == RK_ERR_TIMEOUT ? "timeout" : rc == RK_ERR_UPSTREAM ? "unreachable" : "client_error";
        snprintf(code, sizeof code, "%s", what);
        snprintf(reason, sizeof reason, "no answer (%s)", rk_strerror(rc));
        row_failed(j, lineno, code, 0, reason);
    }
    rk_http_result_clear(&res);
}

/* One row of the business system's CSV, split and checked. */
typedef struct csv_row {
    char *fields[MAX_FIELDS];
    const char *person, *my_number;
    rk_basic_info items;
} csv_row;

/* Splits and checks a line against the header's columns: NULL when good,
 * else a code and the reason (never the row's content) in reason. */
static const char *check_row(const csv_cols *cols, char *line, csv_row *r, char *reason, size_t reasonlen)
{
    int n = rk_csv_split(line, r->fields, MAX_FIELDS);
    if (n < 0) {
        snprintf(reason, reasonlen, "unbalanced quotes");
        return "bad_row";
    }
    if (n != cols->n) {
        snprintf(reason, reasonlen, "%d fields where the header has %d", n, cols->n);
        return "bad_row";
    }
    r->person = r->fields[0];
    r->my_number = r->fields[1];
    r->items = (rk_basic_info){.name = r->fields[cols->name], .birth_date = r->fields[cols->birth_date],
                               .sex = *r->fields[cols->sex] ? r->fields[cols->sex] : NULL,
                               .address = r->fields[cols->address]};
    if (!rk_person_id_valid(r->person)) {
        snprintf(reason, reasonlen, "invalid person id (1 to 64 characters of [A-Za-z0-9._-])");
        return "invalid_person";
    }
    if (rk_mynumber_validate(r->my_number) != RK_OK) {
        snprintf(reason, reasonlen, "invalid My Number (12 digits with a correct check digit)");
        return "invalid_my_number";
    }
    const char *bad = rk_basic_check(&r->items);
    if (bad)
        snprintf(reason, reasonlen, "%s", rk_basic_error_message(bad));
    return bad;
}

/* Splits and checks a row; 0 when it is a person, a My Number and the items. */
static int valid_row(enrol_job *j, char *line, long lineno, csv_row *r)
{
    char reason[128];
    const char *bad = check_row(&j->cols, line, r, reason, sizeof reason);
    if (bad)
        row_failed(j, lineno, bad, 1, reason);
    return bad ? -1 : 0;
}

static void enrol_row(enrol_job *j, char *line, long lineno)
{
    csv_row r;
    if (valid_row(j, line, lineno, &r) == 0)
        send_row(j, r.person, r.my_number, &r.items, lineno);
    rk_progress_add(j->bar, 1);
}

/* ---- enrol: bulk (--batch N) --------------------------------------------- */

typedef struct batch_rows {
    json_t *persons;      /* the request's entries */
    long linenos[RK_BATCH_MAX];
    size_t n;
} batch_rows;

/* Sends the collected rows as one POST /v1/persons/batch and takes each
 * person's answer. The body (My Numbers) is wiped after sending. */
static void send_batch(enrol_job *j, batch_rows *b)
{
    json_t *msg = json_pack("{s:O}", "persons", b->persons);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    rk_http_result res = {0};
    rk_rc rc = body ? conn_call_retry(j->conn, "POST", "/v1/persons/batch", body, &res) : RK_ERR_NOMEM;
    free_body(body);
    json_t *answer = rc == RK_OK && res.status == 202 && res.body ? json_loads(res.body, 0, NULL) : NULL;
    json_t *results = json_object_get(answer, "results");
    char code[CODE_CAP];
    for (size_t i = 0; i < b->n; i++) {
        json_t *one = json_array_get(results, i);
        const char *person = json_string_value(json_object_get(json_array_get(b->persons, i), "person"));
        const char *err = json_string_value(json_object_get(json_object_get(one, "error"), "code"));
        if (one && !err) {
            person_accepted(j, json_string_value(json_object_get(one, "status")), person, b->linenos[i]);
            continue;
        }
        if (!answer && rc == RK_OK)
            answer_code(&res, code);
        snprintf(code, sizeof code, "%s", err ? err : rc != RK_OK ? "unreachable" : "batch_refused");
        row_failed(j, b->linenos[i], code, 0, code);
    }
    rk_progress_add(j->bar, b->n);
    json_decref(answer);
    rk_http_result_clear(&res);
    json_array_clear(b->persons);
    b->n = 0;
}

static void worker_batch(enrol_job *j)
{
    char line[LINE_CAP];
    long lineno = 0;
    batch_rows b = {.persons = json_array()};
    while (b.persons && next_row(j, line, sizeof line, &lineno)) {
        csv_row r;
        if (valid_row(j, line, lineno, &r) != 0) {
            rk_progress_add(j->bar, 1);
        } else {
            json_array_append_new(b.persons, person_json(r.person, r.my_number, &r.items));
            b.linenos[b.n++] = lineno;
            if (b.n == (size_t)j->opt->batch)
                send_batch(j, &b);
        }
        rk_wipe(line, sizeof line);
    }
    if (b.n)
        send_batch(j, &b);
    json_decref(b.persons);
}

/* ---- enrol: polling (--wait) ------------------------------------------ */

static void poll_one(enrol_job *j, watched *w)
{
    char path[128], status[16];
    snprintf(path, sizeof path, "/v1/persons/%s", w->person);
    rk_http_result res = {0};
    rk_rc rc = conn_call(j->conn, "GET", path, NULL, &res);
    if (rc == RK_OK && res.status == 200) {
        answer_status(&res, status, sizeof status);
        w->state = strcmp(status, "linked") == 0 ? 1 : strcmp(status, "failed") == 0 ? 2 : 0;
    } else if (rc == RK_OK && res.status == 404) {
        w->state = 2; /* final: the agency holds no enrolment for the person */
    }
    rk_http_result_clear(&res);
    if (w->state != 0) {
        atomic_fetch_sub(&j->pending, 1);
        atomic_fetch_add(w->state == 1 ? &j->linked : &j->failed_link, 1);
        rk_progress_add(j->bar, 1);
    }
}

/* One pass over the watched persons, shared by the workers. */
static void poll_round(enrol_job *j)
{
    for (;;) {
        size_t i = atomic_fetch_add(&j->next_watch, 1);
        if (i >= j->n_watch || rk_mono_ms() >= j->deadline_ms)
            return;
        poll_one(j, &j->watch[i]);
    }
}

/* Drops the persons that reached a final state; says whether to go on. */
static int watch_compact(enrol_job *j)
{
    size_t kept = 0;
    for (size_t i = 0; i < j->n_watch; i++) {
        if (j->watch[i].state == 0)
            j->watch[kept++] = j->watch[i];
        else
            free(j->watch[i].person);
    }
    j->n_watch = kept;
    atomic_store(&j->next_watch, 0);
    return kept > 0 && rk_mono_ms() < j->deadline_ms;
}

static void *worker(void *arg)
{
    enrol_job *j = arg;
    char line[LINE_CAP];
    long lineno = 0;
    if (j->opt->batch > 1)
        worker_batch(j);
    while (j->opt->batch <= 1 && next_row(j, line, sizeof line, &lineno)) {
        enrol_row(j, line, lineno);
        rk_wipe(line, sizeof line);
    }
    if (!j->wait)
        return NULL;
    for (;;) {
        pthread_barrier_wait(&j->barrier); /* the previous work is done */
        pthread_barrier_wait(&j->barrier); /* the coordinator set up the next */
        if (j->stop_polling)
            return NULL;
        poll_round(j);
    }
}

/* ---- enrol: running --------------------------------------------------- */

/* The main thread's part with --wait: between the workers' rounds it
 * switches bars, drops finished persons and paces the rounds. */
static void coordinate(enrol_job *j, int64_t *sent_ms)
{
    pthread_barrier_wait(&j->barrier);
    rk_progress_finish(j->bar);
    *sent_ms = rk_mono_ms();
    uint64_t accepted = atomic_load(&j->accepted);
    j->bar = accepted ? rk_progress_new("link", accepted, stderr) : NULL;
    rk_progress_add(j->bar, accepted - atomic_load(&j->pending));
    j->deadline_ms = *sent_ms + WAIT_LIMIT_MS;
    for (;;) {
        int64_t round_start = rk_mono_ms();
        j->stop_polling = !watch_compact(j);
        pthread_barrier_wait(&j->barrier);
        if (j->stop_polling)
            return;
        pthread_barrier_wait(&j->barrier);
        int64_t left = j->deadline_ms - rk_mono_ms();
        int64_t pause = POLL_ROUND_MS - (rk_mono_ms() - round_start);
        tk_sleep_ms(pause < left ? pause : left);
    }
}

/* Starts the workers (blocked on j->lock until the barrier is ready), runs
 * them to the end and joins them. Returns the number that ran. */
static int run_workers(enrol_job *j, uint64_t rows, int64_t *sent_ms)
{
    int want = j->opt->concurrency;
    if ((uint64_t)want > rows)
        want = rows ? (int)rows : 1;
    pthread_t *threads = calloc((size_t)want, sizeof *threads);
    int started = 0;
    pthread_mutex_lock(&j->lock);
    while (threads && started < want && pthread_create(&threads[started], NULL, worker, j) == 0)
        started++;
    /* The workers wait on j->lock for their first row: the barrier is sized
     * by the threads that really started before any worker can reach it. */
    if (j->wait && (!started || pthread_barrier_init(&j->barrier, NULL, (unsigned)started + 1) != 0)) {
        j->wait = 0;
        if (started)
            rk_progress_message(j->bar, "renkei agency-ctl: cannot poll link status (no barrier); sending only");
    }
    pthread_mutex_unlock(&j->lock);
    if (j->wait)
        coordinate(j, sent_ms);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (j->wait)
        pthread_barrier_destroy(&j->barrier);
    else
        *sent_ms = rk_mono_ms();
    free(threads);
    return started;
}

static void print_summary(const enrol_job *j, double elapsed_s, double send_s)
{
    uint64_t accepted = atomic_load(&j->accepted);
    printf("enrolled:    %" PRIu64 "\n", accepted);
    printf("failed:      %" PRIu64 "\n", atomic_load(&j->failed));
    for (size_t i = 0; i <= MAX_CODES; i++)
        if (j->codes[i].n)
            printf("  %-30s %" PRIu64 "\n", j->codes[i].code, j->codes[i].n);
    printf("linked:      %" PRIu64 "\n", atomic_load(&j->linked));
    printf("pending:     %" PRIu64 "\n", atomic_load(&j->pending));
    printf("failed-link: %" PRIu64 "\n", atomic_load(&j->failed_link));
    printf("elapsed:     %.1f s\n", elapsed_s);
    printf("rate:        %.1f/s\n", send_s > 0 ? (double)accepted / send_s : 0.0);
    fflush(stdout);
}

static void job_free(enrol_job *j)
{
    for (size_t i = 0; i < j->n_watch; i++)
        free(j->watch[i].person);
    free(j->watch);
    if (j->linecap)
        rk_wipe(j->linebuf, j->linecap);
    free(j->linebuf);
    pthread_mutex_destroy(&j->lock);
}

/* Sends every row of the open CSV; prints the summary. Exit code. */
static int enrol_run(ctl_conn *c, const ctl_opts *o, FILE *csv, const csv_cols *cols, uint64_t rows)
{
    enrol_job j = {.conn = c, .opt = o, .csv = csv, .nfields = cols->n, .cols = *cols, .lineno = 1, .wait = o->wait};
    if (pthread_mutex_init(&j.lock, NULL) != 0)
        return failure("cannot set up the workers");
    int64_t start = rk_mono_ms(), sent = start;
    j.bar = rk_progress_new("enrol", rows, stderr);
    int ran = run_workers(&j, rows, &sent);
    rk_progress_finish(j.bar);
    j.bar = NULL;
    if (!ran) {
        job_free(&j);
        return failure("cannot start worker threads");
    }
    int64_t end = rk_mono_ms();
    print_summary(&j, (double)(end - start) / 1000.0, (double)(sent - start) / 1000.0);
    uint64_t accepted = atomic_load(&j.accepted), linked = atomic_load(&j.linked);
    uint64_t pending = atomic_load(&j.pending);
    int ok = atomic_load(&j.failed) == 0 && (!o->wait || linked == accepted);
    if (o->wait && pending)
        failure("%" PRIu64 " person%s still pending after %d s", pending, pending == 1 ? "" : "s",
                WAIT_LIMIT_MS / 1000);
    job_free(&j);
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int cmd_enrol(int argc, char **argv)
{
    ctl_opts o = {.concurrency = DEFAULT_CONCURRENCY};
    enum parse_result parsed = parse_options(argc, argv, enrol_options, 0, &o);
    if (parsed != PARSE_OK)
        return parsed == PARSE_HELP ? help(usage_enrol) : EXIT_USAGE;
    if (!o.csv)
        return usage_error("enrol needs --csv FILE");
    FILE *csv = fopen(o.csv, "r");
    if (!csv)
        return failure("cannot open %s: %s", o.csv, strerror(errno));
    char err[PATH_CAP + 256];
    uint64_t rows = 0;
    csv_cols cols;
    int nfields = csv_prepare(csv, o.csv, &rows, &cols, err, sizeof err);
    ctl_conn c;
    if (nfields == 0 || conn_open(&c, o.net, o.agency, err, sizeof err) != RK_OK) {
        fclose(csv);
        return failure("%s", err);
    }
    int code = enrol_run(&c, &o, csv, &cols, rows);
    conn_close(&c);
    fclose(csv);
    return code;
}

/* ---- recheck -------------------------------------------------------------- */

typedef struct recheck_job {
    ctl_conn *conn;
    const ctl_opts *opt;
    FILE *out;               /* --out: person,result for every row */
    rk_progress *bar;
    json_t *persons;         /* the request being collected */
    long linenos[RK_BATCH_MAX];
    size_t n;
    uint64_t match, mismatch, refused;
    code_tally codes[MAX_CODES + 1];
    size_t n_codes;
} recheck_job;

static void recheck_tally(recheck_job *r, const char *code)
{
    r->refused++;
    for (size_t i = 0; i < r->n_codes; i++)
        if (strcmp(r->codes[i].code, code) == 0) {
            r->codes[i].n++;
            return;
        }
    size_t i = r->n_codes < MAX_CODES ? r->n_codes++ : MAX_CODES;
    snprintf(r->codes[i].code, CODE_CAP, "%s", i == MAX_CODES ? "other" : code);
    r->codes[i].n++;
}

/* One row's result: counted, printed when it is a mismatch, written with --out. */
static void recheck_result(recheck_job *r, long lineno, const char *person, const char *result)
{
    if (strcmp(result, "match") == 0) {
        r->match++;
    } else if (strcmp(result, "mismatch") == 0) {
        r->mismatch++;
        printf("mismatch %s\n", person); /* stdout: the report; the bar is on stderr */
        fflush(stdout);
    } else {
        recheck_tally(r, result);
        rk_progress_message(r->bar, "line %ld: %s", lineno, result);
    }
    if (r->out && person && rk_person_id_valid(person))
        fprintf(r->out, "%s,%s\n", person, result);
}

/* Sends the collected rows as one POST /v1/persons/recheck. The body (My
 * Numbers, items) is wiped after sending. */
static void recheck_send(recheck_job *r)
{
    json_t *msg = json_pack("{s:O}", "persons", r->persons);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    rk_http_result res = {0};
    rk_rc rc = body ? conn_call_retry(r->conn, "POST", "/v1/persons/recheck", body, &res) : RK_ERR_NOMEM;
    free_body(body);
    json_t *answer = rc == RK_OK && res.status == 200 && res.body ? json_loads(res.body, 0, NULL) : NULL;
    json_t *results = json_object_get(answer, "results");
    char whole[CODE_CAP];
    if (rc != RK_OK)
        snprintf(whole, sizeof whole, "unreachable");
    else
        answer_code(&res, whole);
    for (size_t i = 0; i < r->n; i++) {
        json_t *one = json_array_get(results, i);
        const char *person = json_string_value(json_object_get(json_array_get(r->persons, i), "person"));
        const char *status = json_string_value(json_object_get(one, "status"));
        const char *code = json_string_value(json_object_get(json_object_get(one, "error"), "code"));
        const char *echoed = json_string_value(json_object_get(one, "person"));
        if (!echoed || strcmp(echoed, person) != 0)
            status = NULL, code = NULL;
        char safe[CODE_CAP];
        snprintf(safe, sizeof safe, "%s", status ? status : code ? code : whole);
        if (strspn(safe, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(safe))
            snprintf(safe, sizeof safe, "bad_answer");
        recheck_result(r, r->linenos[i], person, safe);
    }
    rk_progress_add(r->bar, r->n);
    json_decref(answer);
    rk_http_result_clear(&res);
    json_array_clear(r->persons);
    r->n = 0;
}

static int cmd_recheck(int argc, char **argv)
{
    ctl_opts o = {.batch = RK_BATCH_MAX};
    enum parse_result parsed = parse_options(argc, argv, recheck_options, 0, &o);
    if (parsed != PARSE_OK)
        return parsed == PARSE_HELP ? help(usage_recheck) : EXIT_USAGE;
    if (!o.csv)
        return usage_error("recheck needs --csv FILE");
    FILE *csv = fopen(o.csv, "r");
    if (!csv)
        return failure("cannot open %s: %s", o.csv, strerror(errno));
    char err[PATH_CAP + 256];
    uint64_t rows = 0;
    csv_cols cols;
    ctl_conn c;
    if (csv_prepare(csv, o.csv, &rows, &cols, err, sizeof err) == 0 ||
        conn_open(&c, o.net, o.agency, err, sizeof err) != RK_OK) {
        fclose(csv);
        return failure("%s", err);
    }
    recheck_job r = {.conn = &c, .opt = &o, .persons = json_array()};
    if (o.out) {
        int fd = open(o.out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || !(r.out = fdopen(fd, "w"))) {
            if (fd >= 0)
                close(fd);
            conn_close(&c);
            fclose(csv);
            json_decref(r.persons);
            return failure("cannot write %s: %s", o.out, strerror(errno));
        }
        fputs("person,result\n", r.out);
    }
    r.bar = rk_progress_new("recheck", rows, stderr);
    char *buf = NULL, reason[128];
    size_t cap = 0;
    long lineno = 1;
    ssize_t n;
    int64_t start = rk_mono_ms();
    while (r.persons && (n = read_line(csv, &buf, &cap)) >= 0) {
        lineno++;
        if (n == 0)
            continue;
        csv_row row;
        const char *bad = check_row(&cols, buf, &row, reason, sizeof reason);
        if (bad) {
            recheck_tally(&r, bad);
            rk_progress_message(r.bar, "line %ld: %s", lineno, reason);
            rk_progress_add(r.bar, 1);
        } else {
            json_array_append_new(r.persons, person_json(row.person, row.my_number, &row.items));
            r.linenos[r.n++] = lineno;
            if (r.n == (size_t)o.batch)
                recheck_send(&r);
        }
        rk_wipe(buf, (size_t)n);
    }
    if (r.n)
        recheck_send(&r);
    rk_progress_finish(r.bar);
    if (cap)
        rk_wipe(buf, cap);
    free(buf);
    fclose(csv);
    int out_failed = r.out && fclose(r.out) != 0;
    printf("checked:     %" PRIu64 "\n", r.match + r.mismatch);
    printf("match:       %" PRIu64 "\n", r.match);
    printf("mismatch:    %" PRIu64 "\n", r.mismatch);
    printf("refused:     %" PRIu64 "\n", r.refused);
    for (size_t i = 0; i <= MAX_CODES; i++)
        if (r.codes[i].n)
            printf("  %-30s %" PRIu64 "\n", r.codes[i].code, r.codes[i].n);
    printf("elapsed:     %.1f s\n", (double)(rk_mono_ms() - start) / 1000.0);
    fflush(stdout);
    json_decref(r.persons);
    conn_close(&c);
    if (out_failed)
        return failure("cannot write %s", o.out);
    return r.mismatch || r.refused ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ---- shared with the other commands (agency_ctl.h) ----------------------- */

rk_rc ctl_conn_open(ctl_conn *c, const char *net, const char *agency_id, char *err, size_t errlen)
{
    return conn_open(c, net, agency_id, err, errlen);
}

void ctl_conn_close(ctl_conn *c)
{
    conn_close(c);
}

rk_rc ctl_conn_call_retry(ctl_conn *c, const char *method, const char *path, const char *body, rk_http_result *res)
{
    return conn_call_retry(c, method, path, body, res);
}

void ctl_answer_code(const rk_http_result *res, char code[CTL_CODE_CAP])
{
    answer_code(res, code);
}

ssize_t ctl_read_line(FILE *f, char **buf, size_t *cap)
{
    return read_line(f, buf, cap);
}

/* ---- dispatch ---------------------------------------------------------- */

int rk_cmd_agency_ctl(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("which command? enrol, status, enrol-one, recheck or query");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(cmd, "enrol") == 0)
        return cmd_enrol(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(cmd, "enrol-one") == 0)
        return cmd_enrol_one(argc - 1, argv + 1);
    if (strcmp(cmd, "recheck") == 0)
        return cmd_recheck(argc - 1, argv + 1);
    if (strcmp(cmd, "query") == 0)
        return ctl_cmd_query(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", cmd);
}
