/* agency_ctl_query.c — `renkei agency-ctl query --csv FILE`: a business
 * system's night run of queries (一括照会, DESIGN §4, §5).
 *
 * The rows of FILE go to the agency node as batches (POST
 * /v1/queries/batch, up to 1000 queries each); the batches' progress is
 * read as their queries settle (GET /v1/queries/batch/{batch_id}, paged)
 * and shown as a progress bar on stderr; the results are written as CSV in
 * the file's order. A batch's id is derived from its queries (a digest), so
 * that running the same file again, after a failure or to read the results
 * once more, asks nothing twice: the node answers the batch it holds, and a
 * query_id gets its first answer.
 *
 * Output columns: query_id,status,as_of,value,error — status is the
 * answer's (provided, no_data), "error" with the error's code in error, or
 * "pending" when --timeout ran out first; value is the provided value as
 * JSON text. A provided value is content: it goes only to the output. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/condition.h"
#include "lib/csv.h"
#include "lib/ids.h"
#include "lib/util.h"
#include "tools/agency_ctl.h"
#include "tools/progress.h"

#define DEFAULT_TIMEOUT_S 3600
#define POLL_IDLE_MS 200      /* a pass that brought nothing new waits this long */
#define PAGE 500              /* results per GET */
#define MAX_BAD_LINES 100     /* bad rows named on stderr; then counted */

#define usage_error(...) tk_usage_error("agency-ctl", __VA_ARGS__)
#define failure(...) tk_failure("agency-ctl", __VA_ARGS__)

static const char usage_query[] =
    "usage: renkei agency-ctl query --net DIR --agency ID --csv FILE [--out FILE] [--batch N]\n"
    "                               [--timeout S]\n"
    "\n"
    "Runs the queries of FILE, whose header is\n"
    "query_id,person,business,provider,item,operator, optionally followed by one\n"
    "column fiscal_year or as_of (the query's condition; an empty cell for none),\n"
    "as batches of up to N queries (POST /v1/queries/batch), shows a progress bar\n"
    "on stderr while they settle, and writes one line per query in the file's\n"
    "order as CSV: query_id,status,as_of,value,error (status provided, no_data, or\n"
    "error with the error's code; value the provided value as JSON text). A\n"
    "batch's id is a digest of its queries: running the same file again asks\n"
    "nothing twice and writes the same results. A bad row is reported as\n"
    "'line N: reason' on stderr and not sent.\n"
    "\n"
    "  --net DIR      the network directory\n"
    "  --agency ID    the agency whose node to call\n"
    "  --csv FILE     the queries\n"
    "  --out FILE     write the results there (default: stdout)\n"
    "  --batch N      queries per batch, 1..1000 (default 1000)\n"
    "  --timeout S    stop waiting after S seconds (default 3600); the queries not\n"
    "                 settled by then are written with status pending\n"
    "  --help         show this help\n"
    "\n"
    "Exit 0 when every row was sent and every query settled, whatever its answer;\n"
    "1 otherwise.\n";

/* One query's result, as written out. */
typedef struct row_result {
    char *query_id;
    char *status, *as_of, *value, *error; /* NULL until settled */
} row_result;

typedef struct batch_run {
    char batch_id[RK_ID_FIELD_MAX + 1];
    size_t n, settled;
    int64_t after;           /* the last result read */
    int failed;              /* refused as a whole: its rows are errors */
    row_result *rows;
} batch_run;

typedef struct query_job {
    ctl_conn conn;
    FILE *csv, *out;
    const char *csv_name;
    int batch_size;
    int64_t deadline_ms;
    char condition[16];      /* the 7th column: "", "fiscal_year" or "as_of" */
    batch_run *batches;
    size_t n_batches, cap_batches;
    uint64_t lines, rows, bad_rows, errors; /* lines: the non-blank ones after the header */
    rk_progress *bar;
} query_job;

enum { OPT_NET = 1000, OPT_AGENCY, OPT_CSV, OPT_OUT, OPT_BATCH, OPT_TIMEOUT };

/* ---- reading the file ------------------------------------------------- */

static int bad_row(query_job *j, long lineno, const char *reason)
{
    if (j->bad_rows++ < MAX_BAD_LINES)
        rk_progress_message(j->bar, "line %ld: %s", lineno, reason);
    rk_progress_add(j->bar, 1); /* done with: it will not be sent */
    return -1;
}

/* The header: the six columns, then at most one condition column. */
static int read_header(query_job *j, char *err, size_t errlen)
{
    static const char *const want[] = {"query_id", "person", "business", "provider", "item", "operator"};
    char *buf = NULL, *fields[8];
    size_t cap = 0;
    ssize_t len = ctl_read_line(j->csv, &buf, &cap);
    char *line = len >= 0 ? buf : NULL;
    if (line && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3; /* a UTF-8 byte order mark */
    int n = line ? rk_csv_split(line, fields, 8) : -1, ok = n == 6 || n == 7;
    for (int i = 0; ok && i < 6; i++)
        ok = strcmp(fields[i], want[i]) == 0;
    if (ok && n == 7) {
        ok = strcmp(fields[6], "fiscal_year") == 0 || strcmp(fields[6], "as_of") == 0;
        snprintf(j->condition, sizeof j->condition, "%s", ok ? fields[6] : "");
    }
    if (!ok) {
        free(buf);
        snprintf(err, errlen, "%s: line 1 must be the header query_id,person,business,provider,item,operator"
                              "[,fiscal_year|as_of]", j->csv_name);
        return -1;
    }
    free(buf);
    return ctl_count_rows(j->csv, j->csv_name, &j->lines, err, errlen); /* for the bar */
}

/* The query of a row as POST /v1/queries takes it; NULL (said on stderr)
 * when the row is bad. */
static json_t *row_query(query_job *j, char *line, long lineno)
{
    char *f[8];
    int want = j->condition[0] ? 7 : 6, n = rk_csv_split(line, f, 8);
    if (n < 0)
        return bad_row(j, lineno, "unbalanced quotes"), NULL;
    if (n != want)
        return bad_row(j, lineno, n < want ? "fewer fields than the header" : "more fields than the header"), NULL;
    if (!rk_id_valid(f[0], RK_ID_FIELD_MAX) || !rk_id_valid(f[5], RK_ID_FIELD_MAX))
        return bad_row(j, lineno, "query_id and operator are 1 to 64 characters of [A-Za-z0-9._-]"), NULL;
    if (!rk_person_id_valid(f[1]) || !rk_id_valid(f[3], RK_AGENCY_FIELD_MAX))
        return bad_row(j, lineno, "invalid person or provider id"), NULL;
    if (!rk_catalogue_id_valid(f[2]) || !rk_catalogue_id_valid(f[4]))
        return bad_row(j, lineno, "business and item are 1 to 64 characters of [a-z0-9_]"), NULL;
    json_t *q = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "query_id", f[0], "person", f[1], "business", f[2],
                          "provider", f[3], "item", f[4], "operator", f[5]);
    if (q && n == 7 && f[6][0]) {
        long year = 0;
        json_t *c = strcmp(j->condition, "fiscal_year") == 0
                        ? (tk_parse_long(f[6], 1900, 9998, &year) ? json_pack("{s:I}", "fiscal_year", (json_int_t)year)
                                                                  : NULL)
                        : json_pack("{s:s}", "as_of", f[6]);
        rk_condition cond;
        if (!c || rk_condition_read(c, &cond) != 0) {
            json_decref(c);
            json_decref(q);
            return bad_row(j, lineno, "the condition is not a fiscal year (1900..9998) or a date (YYYY-MM-DD)"), NULL;
        }
        json_object_set_new(q, "condition", c);
    }
    return q;
}

/* ---- sending a batch -------------------------------------------------- */

/* "csv-" and 32 hex digits of the SHA-256 of the queries' JSON. */
static void batch_id_of(json_t *queries, char out[RK_ID_FIELD_MAX + 1])
{
    char *text = json_dumps(queries, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char md[EVP_MAX_MD_SIZE];
    EVP_Digest(text ? text : "", text ? strlen(text) : 0, md, NULL, EVP_sha256(), NULL);
    memcpy(out, "csv-", 4);
    rk_hex(md, 16, out + 4); /* 32 digits and the end */
    free(text);
}

static void set_text(char **field, const char *s)
{
    free(*field);
    *field = strdup(s ? s : "");
}

/* Sends the collected queries as one batch; its rows are kept in order. */
static int send_batch(query_job *j, json_t *queries)
{
    size_t n = json_array_size(queries);
    if (j->n_batches == j->cap_batches) {
        size_t cap = j->cap_batches ? j->cap_batches * 2 : 16;
        batch_run *bigger = realloc(j->batches, cap * sizeof *bigger);
        if (!bigger)
            return -1;
        j->batches = bigger;
        j->cap_batches = cap;
    }
    batch_run *b = &j->batches[j->n_batches];
    *b = (batch_run){.n = n, .rows = calloc(n, sizeof *b->rows)};
    if (!b->rows)
        return -1;
    j->n_batches++;
    for (size_t i = 0; i < n; i++)
        set_text(&b->rows[i].query_id, json_string_value(json_object_get(json_array_get(queries, i), "query_id")));
    batch_id_of(queries, b->batch_id);
    json_t *msg = json_pack("{s:s,s:O}", "batch_id", b->batch_id, "queries", queries);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    rk_http_result res = {0};
    rk_rc rc = body ? ctl_conn_call_retry(&j->conn, "POST", "/v1/queries/batch", body, &res) : RK_ERR_NOMEM;
    free(body);
    if (rc != RK_OK || res.status != 202) {
        char code[CTL_CODE_CAP];
        if (rc == RK_OK)
            ctl_answer_code(&res, code);
        else
            snprintf(code, sizeof code, "%s", rc == RK_ERR_TIMEOUT ? "timeout" : "unreachable");
        rk_progress_message(j->bar, "batch %s (%zu queries): %s", b->batch_id, n, code);
        for (size_t i = 0; i < n; i++) {
            set_text(&b->rows[i].status, "error");
            set_text(&b->rows[i].error, code);
        }
        b->failed = 1;
        b->settled = n;
        j->errors += n;
        rk_progress_add(j->bar, n);
    }
    rk_http_result_clear(&res);
    return 0;
}

/* Reads every row, sending a batch each batch_size good rows. */
static int send_all(query_job *j)
{
    char *buf = NULL;
    size_t cap = 0;
    long lineno = 1;
    ssize_t len;
    json_t *queries = json_array();
    int rc = queries ? 0 : -1;
    while (rc == 0 && (len = ctl_read_line(j->csv, &buf, &cap)) >= 0) {
        lineno++;
        if (len == 0)
            continue;
        json_t *q = row_query(j, buf, lineno);
        if (!q)
            continue;
        json_array_append_new(queries, q);
        j->rows++;
        if (json_array_size(queries) == (size_t)j->batch_size) {
            rc = send_batch(j, queries);
            json_array_clear(queries);
        }
    }
    if (rc == 0 && json_array_size(queries))
        rc = send_batch(j, queries);
    json_decref(queries);
    free(buf);
    return rc;
}

/* ---- reading the results ---------------------------------------------- */

/* One settled result into its row. */
static void take_result(query_job *j, batch_run *b, json_t *one)
{
    json_t *index = json_object_get(one, "index"), *answer = json_object_get(one, "answer");
    if (!json_is_integer(index) || json_integer_value(index) < 0 || (size_t)json_integer_value(index) >= b->n)
        return;
    row_result *r = &b->rows[json_integer_value(index)];
    if (r->status)
        return; /* read before */
    const char *status = json_string_value(json_object_get(answer, "status"));
    const char *code = json_string_value(json_object_get(json_object_get(answer, "error"), "code"));
    json_t *value = json_object_get(answer, "value");
    char *value_text = value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    set_text(&r->status, code || !status ? "error" : status);
    set_text(&r->as_of, json_string_value(json_object_get(answer, "as_of")));
    set_text(&r->value, value_text);
    set_text(&r->error, code ? code : status ? "" : "no_answer");
    if (value_text) {
        rk_wipe(value_text, strlen(value_text)); /* content */
        free(value_text);
    }
    j->errors += code || !status;
    b->settled++;
    rk_progress_add(j->bar, 1);
}

/* Reads the results of b settled since the last read; the number read. */
static size_t poll_batch(query_job *j, batch_run *b)
{
    char path[RK_ID_FIELD_MAX + 96];
    size_t got = 0;
    for (;;) {
        snprintf(path, sizeof path, "/v1/queries/batch/%s?after=%" PRId64 "&limit=%d", b->batch_id, b->after, PAGE);
        rk_http_result res = {0};
        rk_rc rc = ctl_conn_call_retry(&j->conn, "GET", path, NULL, &res);
        json_t *doc = rc == RK_OK && res.status == 200 && res.body ? json_loads(res.body, 0, NULL) : NULL;
        if (res.body)
            rk_wipe(res.body, res.body_len); /* it held provided values */
        rk_http_result_clear(&res);
        json_t *results = json_object_get(doc, "results");
        json_t *next = json_object_get(doc, "next_after");
        for (size_t i = 0; i < json_array_size(results); i++)
            take_result(j, b, json_array_get(results, i));
        size_t n = json_array_size(results);
        if (json_is_integer(next))
            b->after = json_integer_value(next);
        json_decref(doc);
        got += n;
        if (n < PAGE || b->settled == b->n)
            return got;
    }
}

/* Polls every unfinished batch until all are settled or the time is up. */
static void wait_all(query_job *j)
{
    for (;;) {
        size_t got = 0, open = 0;
        for (size_t k = 0; k < j->n_batches; k++) {
            batch_run *b = &j->batches[k];
            if (b->settled < b->n)
                got += poll_batch(j, b);
            open += b->settled < b->n;
        }
        if (!open || rk_mono_ms() >= j->deadline_ms)
            return;
        if (!got)
            tk_sleep_ms(POLL_IDLE_MS);
    }
}

/* ---- writing ---------------------------------------------------------- */

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void put_field(FILE *out, const char *s, int last)
{
    s = s ? s : "";
    if (strpbrk(s, ",\"\r\n")) {
        fputc('"', out);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', out);
            fputc(*s, out);
        }
        fputc('"', out);
    } else {
        fputs(s, out);
    }
    fputc(last ? '\n' : ',', out);
}

static uint64_t write_results(query_job *j)
{
    uint64_t pending = 0;
    fputs("query_id,status,as_of,value,error\n", j->out);
    for (size_t k = 0; k < j->n_batches; k++)
        for (size_t i = 0; i < j->batches[k].n; i++) {
            row_result *r = &j->batches[k].rows[i];
            pending += !r->status;
            put_field(j->out, r->query_id, 0);
            put_field(j->out, r->status ? r->status : "pending", 0);
            put_field(j->out, r->as_of, 0);
            put_field(j->out, r->value, 0);
            put_field(j->out, r->error, 1);
        }
    return pending;
}

static void job_free(query_job *j)
{
    for (size_t k = 0; k < j->n_batches; k++) {
        for (size_t i = 0; i < j->batches[k].n; i++) {
            row_result *r = &j->batches[k].rows[i];
            if (r->value)
                rk_wipe(r->value, strlen(r->value));
            free(r->query_id);
            free(r->status);
            free(r->as_of);
            free(r->value);
            free(r->error);
        }
        free(j->batches[k].rows);
    }
    free(j->batches);
}

/* ---- the command ------------------------------------------------------ */

static int parse(int argc, char **argv, const char **net, const char **agency, const char **csv, const char **out,
                 int *batch, int *timeout_s)
{
    static const struct option table[] = {
        {"net", required_argument, NULL, OPT_NET},     {"agency", required_argument, NULL, OPT_AGENCY},
        {"csv", required_argument, NULL, OPT_CSV},     {"out", required_argument, NULL, OPT_OUT},
        {"batch", required_argument, NULL, OPT_BATCH}, {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0},
    };
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", table, NULL)) != -1) {
        switch (c) {
        case 'h':
            return fputs(usage_query, stdout), 0;
        case OPT_NET:
            *net = optarg;
            break;
        case OPT_AGENCY:
            *agency = optarg;
            break;
        case OPT_CSV:
            *csv = optarg;
            break;
        case OPT_OUT:
            *out = optarg;
            break;
        case OPT_BATCH:
            if (!tk_parse_int(optarg, 1, RK_BATCH_MAX, batch))
                return usage_error("--batch must be a whole number from 1 to %d", RK_BATCH_MAX);
            break;
        case OPT_TIMEOUT:
            if (!tk_parse_int(optarg, 1, 7 * 86400, timeout_s))
                return usage_error("--timeout must be a whole number of seconds from 1 to %d", 7 * 86400);
            break;
        default:
            return tk_option_error("agency-ctl", c, argv);
        }
    }
    if (!*net || !*agency || !*csv)
        return usage_error("query needs --net DIR, --agency ID and --csv FILE");
    if (optind != argc)
        return usage_error("query takes no arguments besides options");
    return -1; /* go on */
}

static int run(query_job *j)
{
    int64_t start = rk_mono_ms();
    if (send_all(j) != 0)
        return failure("out of memory");
    wait_all(j);
    rk_progress_finish(j->bar);
    j->bar = NULL;
    uint64_t pending = write_results(j);
    if (fflush(j->out) != 0 || ferror(j->out))
        return failure("cannot write the results: %s", strerror(errno));
    fprintf(stderr, "queries: %" PRIu64 " sent in %zu batch%s, %" PRIu64 " settled (%" PRIu64 " answered with an "
                    "error), %" PRIu64 " pending, %" PRIu64 " bad row%s; %.1f s\n",
            j->rows, j->n_batches, j->n_batches == 1 ? "" : "es", j->rows - pending, j->errors, pending, j->bad_rows,
            j->bad_rows == 1 ? "" : "s", (double)(rk_mono_ms() - start) / 1000.0);
    if (pending)
        failure("%" PRIu64 " quer%s not settled within the timeout; run the same file again to go on", pending,
                pending == 1 ? "y" : "ies");
    return pending || j->bad_rows ? EXIT_FAILURE : EXIT_SUCCESS;
}

int ctl_cmd_query(int argc, char **argv)
{
    const char *net = NULL, *agency = NULL, *csv = NULL, *out = NULL;
    int batch = RK_BATCH_MAX, timeout_s = DEFAULT_TIMEOUT_S;
    int parsed = parse(argc, argv, &net, &agency, &csv, &out, &batch, &timeout_s);
    if (parsed >= 0)
        return parsed;
    query_job j = {.csv_name = csv, .batch_size = batch, .out = stdout};
    char err[TK_PATH_CAP + 256];
    if (!(j.csv = fopen(csv, "r")))
        return failure("cannot open %s: %s", csv, strerror(errno));
    if (read_header(&j, err, sizeof err) != 0 || ctl_conn_open(&j.conn, net, agency, err, sizeof err) != RK_OK) {
        fclose(j.csv);
        return failure("%s", err);
    }
    if (out && !(j.out = fopen(out, "w"))) {
        int e = errno;
        ctl_conn_close(&j.conn);
        fclose(j.csv);
        return failure("cannot write %s: %s", out, strerror(e));
    }
    j.deadline_ms = rk_mono_ms() + (int64_t)timeout_s * 1000;
    j.bar = rk_progress_new("query", j.lines, stderr);
    int code = run(&j);
    rk_progress_finish(j.bar);
    if (out)
        fclose(j.out);
    fclose(j.csv);
    ctl_conn_close(&j.conn);
    job_free(&j);
    return code;
}
