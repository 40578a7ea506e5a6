/* jobs.c — bulk jobs through the load generator: enrolling persons (one
 * POST /v1/persons each, or --batch, with each person's four basic items
 * from residents.csv) and storing local_tax values. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/csv.h"
#include "lib/util.h"
#include "net/http_server.h"
#include "tools/bench/bench.h"
#include "tools/progress.h"
#include "tools/toolkit.h"

#define ENROL_TRIES 6          /* attempts per person on 503, 429 or no answer */
#define ROW_CAP 2048           /* a row of residents.csv (its reader's JLIS_LINE_MAX) */
#define ENTRY_CAP (ROW_CAP + 160) /* one person's JSON */

/* {"person","my_number","name","birth_date"[,"sex"],"address"} of person i
 * at out (the items read from its row); its length, or 0. The items were
 * checked to need no escaping when the file was read. */
static size_t person_json(const bench_enrol_job *j, long i, char *out, size_t cap)
{
    char row[ROW_CAP + 1], *f[16];
    ssize_t got = pread(j->residents_fd, row, j->line_len[i], (off_t)j->line_at[i]);
    if (got != (ssize_t)j->line_len[i])
        return 0;
    row[got] = '\0';
    int n = rk_csv_split(row, f, 16);
    if (n <= j->col_name || n <= j->col_birth_date || n <= j->col_sex || n <= j->col_address)
        return 0;
    int len = bench_fmt(out, cap, "{\"person\":\"P%07ld\",\"my_number\":\"%s\",\"name\":\"%s\",\"birth_date\":\"%s\",%s%s%s"
                                  "\"address\":\"%s\"}",
                        i, j->numbers[i], f[j->col_name], f[j->col_birth_date], *f[j->col_sex] ? "\"sex\":\"" : "",
                        f[j->col_sex], *f[j->col_sex] ? "\"," : "", f[j->col_address]);
    rk_wipe(row, sizeof row);
    return len > 0 && (size_t)len < cap ? (size_t)len : 0;
}

/* The index of the next person to send, or -1 when none is left. */
static long enrol_take(bench_enrol_job *j)
{
    if (j->n_retry)
        return (long)j->retry[--j->n_retry];
    if (j->next_i < j->n)
        return (long)j->next_i++;
    return -1;
}

int bench_enrol_next(void *arg, bench_request *req)
{
    bench_enrol_job *j = arg;
    long i = enrol_take(j);
    if (i < 0)
        return 0;
    j->attempts[i]++;
    req->tag = (uint64_t)i;
    req->body_len = person_json(j, i, req->body, BENCH_BODY_CAP);
    return 1;
}

/* One person's answer (a status of 2xx: accepted); sent again on 503, 429
 * or no answer, up to ENROL_TRIES times. Returns 1 when accepted. */
static int enrol_person_done(bench_enrol_job *j, size_t i, long status)
{
    if (status >= 200 && status < 300) {
        j->accepted++;
        rk_progress_add(j->bar, 1);
        return 1;
    }
    if ((status == 0 || status == 503 || status == 429) && j->attempts[i] < ENROL_TRIES) {
        j->retry[j->n_retry++] = (uint32_t)i;
        return 0;
    }
    j->last_status = status;
    j->given_up++;
    return 0;
}

int bench_enrol_check(void *arg, const bench_request *req, long status, const char *body, size_t len)
{
    (void)body;
    (void)len;
    return enrol_person_done(arg, (size_t)req->tag, status);
}

/* --batch: up to j->batch persons in one POST /v1/persons/batch; the tag
 * is the batch's slot of j->sent, which lists them. */
int bench_enrol_next_batch(void *arg, bench_request *req)
{
    bench_enrol_job *j = arg;
    if (!j->n_free)
        return 0;
    uint32_t *ids = j->sent[j->free_slots[j->n_free - 1]];
    size_t len = (size_t)bench_fmt(req->body, BENCH_BODY_CAP, "{\"persons\":["), k = 0;
    while ((int)k < j->batch && len + ENTRY_CAP + 8 < BENCH_BODY_CAP) {
        long i = enrol_take(j);
        if (i < 0)
            break;
        j->attempts[i]++;
        ids[k] = (uint32_t)i;
        if (k)
            req->body[len++] = ',';
        len += person_json(j, i, req->body + len, BENCH_BODY_CAP - len);
        k++;
    }
    if (!k)
        return 0;
    len += (size_t)bench_fmt(req->body + len, BENCH_BODY_CAP - len, "]}");
    ids[k] = UINT32_MAX;
    req->tag = j->free_slots[--j->n_free];
    req->body_len = len;
    return 1;
}

/* A batch's answer: 202 with one result per person, each with a status or
 * an error; anything else counts for every person of the batch. */
int bench_enrol_check_batch(void *arg, const bench_request *req, long status, const char *body, size_t len)
{
    bench_enrol_job *j = arg;
    uint32_t *ids = j->sent[req->tag];
    json_t *answer = status == 202 && body ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *results = json_object_get(answer, "results");
    int ok = 1;
    for (size_t k = 0; ids[k] != UINT32_MAX; k++) {
        json_t *one = json_array_get(results, k);
        long st = status;
        if (status == 202)
            st = one && !json_object_get(one, "error") ? 202 : 400;
        ok &= enrol_person_done(j, ids[k], st);
    }
    json_decref(answer);
    j->free_slots[j->n_free++] = (uint32_t)req->tag;
    return ok;
}

/* --batch N with up to `under_way` requests at once. */
rk_rc bench_enrol_job_batches(bench_enrol_job *j, int batch, int under_way)
{
    j->batch = batch;
    j->sent = calloc((size_t)under_way, sizeof *j->sent);
    j->free_slots = calloc((size_t)under_way, sizeof *j->free_slots);
    if (!j->sent || !j->free_slots)
        return RK_ERR_NOMEM;
    for (int k = 0; k < under_way; k++)
        j->free_slots[j->n_free++] = (uint32_t)k;
    return RK_OK;
}

rk_rc bench_enrol_job_init(bench_enrol_job *j, size_t n)
{
    memset(j, 0, sizeof *j);
    j->n = n;
    j->residents_fd = -1;
    j->numbers = calloc(n ? n : 1, sizeof *j->numbers);
    j->retry = calloc(n ? n : 1, sizeof *j->retry);
    j->attempts = calloc(n ? n : 1, 1);
    j->line_at = calloc(n ? n : 1, sizeof *j->line_at);
    j->line_len = calloc(n ? n : 1, sizeof *j->line_len);
    return j->numbers && j->retry && j->attempts && j->line_at && j->line_len ? RK_OK : RK_ERR_NOMEM;
}

void bench_enrol_job_reset(bench_enrol_job *j)
{
    j->next_i = j->n_retry = 0;
    j->accepted = j->given_up = 0;
    memset(j->attempts, 0, j->n);
}

void bench_enrol_job_free(bench_enrol_job *j)
{
    if (j->numbers)
        rk_wipe(j->numbers, j->n * sizeof *j->numbers);
    free(j->numbers);
    if (j->line_at && j->residents_fd >= 0) /* set by bench_enrol_job_init */
        close(j->residents_fd);
    free(j->line_at);
    free(j->line_len);
    free(j->retry);
    free(j->attempts);
    free(j->sent);
    free(j->free_slots);
    memset(j, 0, sizeof *j);
}

/* The items' columns from the header line; 0 when all four are there. */
static int item_columns(char *header, bench_enrol_job *j)
{
    char *f[16];
    header[strcspn(header, "\r\n")] = '\0';
    int n = rk_csv_split(header, f, 16);
    j->col_name = j->col_birth_date = j->col_sex = j->col_address = -1;
    for (int c = 2; c < n && c < 16; c++) {
        int *at = strcmp(f[c], "name") == 0 ? &j->col_name : strcmp(f[c], "birth_date") == 0 ? &j->col_birth_date
                  : strcmp(f[c], "sex") == 0 ? &j->col_sex : strcmp(f[c], "address") == 0 ? &j->col_address : NULL;
        if (at)
            *at = c;
    }
    return j->col_name > 1 && j->col_birth_date > 1 && j->col_sex > 1 && j->col_address > 1 ? 0 : -1;
}

/* A row the bench can send as it is: no quotes, backslashes or control
 * characters to escape in JSON. */
static int plain_row(const char *line, size_t len)
{
    for (size_t k = 0; k < len; k++)
        if (line[k] == '"' || line[k] == '\\' || (unsigned char)line[k] < 0x20)
            return 0;
    return 1;
}

/* The first n My Numbers of DIR/residents.csv and where their rows are. */
rk_rc bench_read_residents(const char *dir, bench_enrol_job *j, char *err, size_t errlen)
{
    char path[TK_PATH_CAP], line[ROW_CAP + 2];
    bench_fmt(path, sizeof path, "%s/residents.csv", dir);
    FILE *f = fopen(path, "re");
    if (!f || (j->residents_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        bench_fmt(err, errlen, "cannot open %s: %s", path, strerror(errno));
        if (f)
            fclose(f);
        return RK_ERR_IO;
    }
    size_t k = 0;
    uint64_t at = 0;
    rk_rc rc = RK_OK;
    if (!fgets(line, sizeof line, f) || item_columns(line, j) != 0) {
        bench_fmt(err, errlen, "%s: the header lacks name,birth_date,sex,address", path);
        rc = RK_ERR_INVALID;
    }
    at = ftell(f) > 0 ? (uint64_t)ftell(f) : 0;
    while (rc == RK_OK && k < j->n && fgets(line, sizeof line, f)) {
        size_t len = strlen(line), row = strcspn(line, "\r\n");
        if (row > ROW_CAP || !plain_row(line, row)) {
            bench_fmt(err, errlen, "%s: row %zu is too long or needs escaping", path, k + 1);
            rc = RK_ERR_INVALID;
        } else if (strcspn(line, ",\r\n") == 12) {
            memcpy(j->numbers[k], line, 12);
            j->numbers[k][12] = '\0';
            j->line_at[k] = at;
            j->line_len[k] = (uint16_t)row;
            k++;
        }
        at += len;
    }
    rk_wipe(line, sizeof line);
    fclose(f);
    if (rc == RK_OK && k < j->n) {
        bench_fmt(err, errlen, "%s holds %zu residents, %zu wanted", path, k, j->n);
        rc = RK_ERR_INVALID;
    }
    return rc;
}

/* Enrols every person of j at agency (credential who); RK_OK when all were
 * accepted. */
rk_rc bench_enrol_all(bench_net *n, const char *agency, const tk_client *who, bench_enrol_job *j, int concurrency,
                      int threads, bench_load_result *r, char *err, size_t errlen)
{
    bench_load_config cfg = bench_net_load_cfg(n, bench_net_node(n, RK_ROLE_AGENCY, agency), who, concurrency,
                                               threads);
    cfg.path = "/v1/persons";
    cfg.method = "POST";
    cfg.next = bench_enrol_next;
    cfg.check = bench_enrol_check;
    cfg.arg = j;
    bench_enrol_job_reset(j);
    rk_rc rc = bench_load_run(&cfg, r, err, errlen);
    if (rc != RK_OK)
        return rc;
    if (bench_stop) {
        bench_fmt(err, errlen, "interrupted");
        return RK_ERR_TIMEOUT;
    }
    if (j->accepted < j->n) {
        bench_fmt(err, errlen, "%s accepted %llu of %zu enrolments (last refusal: HTTP %ld; %llu errors)", agency,
                  (unsigned long long)j->accepted, j->n, j->last_status, (unsigned long long)r->errors);
        return RK_ERR_UPSTREAM;
    }
    return RK_OK;
}

int bench_data_next(void *arg, bench_request *req)
{
    bench_data_job *j = arg;
    if (j->next_i >= j->n)
        return 0;
    size_t i = j->next_i++;
    bench_fmt(req->path, sizeof req->path, "/v1/data/P%07zu/local_tax", i);
    req->method = "PUT";
    req->body_len = (size_t)bench_fmt(req->body, BENCH_BODY_CAP,
                                      "{\"value\":{\"income\":%zu,\"tax\":%zu,\"note\":\"bench\"},"
                                      "\"as_of\":\"2026-06-01\"}",
                                      3000000 + i * 1000, 120000 + i * 40);
    return 1;
}
