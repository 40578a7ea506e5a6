/* persons.c — code acquisition at the agency (DESIGN §2.1, standard 第8-2(1)).
 *
 * POST /v1/persons links an internal person to a My Number: the number and
 * the person's four basic items (氏名, 生年月日, 性別 where held, 住所;
 * lib/basic_info.h) are validated, the check code computed, a random
 * acquisition number stored as pending, and (acquisition number, My Number,
 * items) sent to J-LIS, which compares the items with its registry. The My
 * Number and the items are never stored or logged here: once J-LIS has
 * them, the agency forgets them. A mismatch fails the person with reason
 * basic_info_mismatch (409 to the caller); else the code arrives later as a
 * notice through the gateway, and is linked only when its check code
 * matches (第8-2(1)イ). POST /v1/persons/recheck asks J-LIS to compare the
 * items of persons linked earlier, and links nothing. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agency/agency.h"
#include "lib/basic_info.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/mynumber.h"
#include "lib/util.h"
#include "node/flow.h"

#define ACQUISITION_BYTES 16

/* {"person","status"} and, for a failed person, "reason". */
static json_t *person_answer(const char *person, const char *status, const char *reason)
{
    json_t *j = json_pack("{s:s,s:s}", "person", person, "status", status);
    if (j && reason && *reason && strcmp(status, "failed") == 0)
        json_object_set_new(j, "reason", json_string(reason));
    return j;
}

static void reply_status(rk_response *resp, int http, const char *person, const char *status, const char *reason)
{
    rk_reply_json(resp, http, person_answer(person, status, reason));
}

/* ---------- the call to J-LIS ---------- */

/* A flow that calls J-LIS with My Numbers in the body. rk_flow_call would
 * free that body with free() before its continuation runs, unwiped
 * (flow.c, call_answered), so these flows keep it: it goes to
 * rk_node_post_later directly, which reads it until J-LIS answered (a
 * failover to the backup line sends it again); the relay copies it for each
 * send and wipes its copies (http_relay.c, call_free); this body is wiped
 * here as soon as the call is over, and by the cleanup on any other path. */
typedef struct jlis_flow {
    rk_flow f;                   /* first: the flow's own state */
    agency *a;
    char *body;                  /* holds My Numbers: wiped */
    rk_flow_called_fn then;
} jlis_flow;

static void jlis_body_wipe(jlis_flow *j)
{
    if (j->body) {
        rk_wipe(j->body, strlen(j->body));
        free(j->body);
        j->body = NULL;
    }
}

static void jlis_answered(void *arg, rk_rc rc, rk_http_result *res)
{
    jlis_flow *j = arg;
    jlis_body_wipe(j);
    rk_flow_called_fn then = j->then;
    j->then = NULL;
    then(&j->f, rc, res);
}

/* POSTs body (taken; NULL is out of memory) to path at J-LIS through the
 * loop's relay, then then(f, rc, res) on the event thread, res->body its to
 * free: rk_flow_call, with the body wiped. */
static void jlis_call(jlis_flow *j, const char *path, char *body, rk_flow_called_fn then)
{
    if (!body) {
        rk_http_result none = {0};
        then(&j->f, RK_ERR_NOMEM, &none);
        return;
    }
    j->body = body;
    j->then = then;
    rk_node_post_later(j->a->node, rk_pending_base(j->f.p), j->a->jlis, path, body, strlen(body), jlis_answered, j);
}

/* {"acquisition_no","my_number","name","birth_date"[,"sex"],"address"}: what
 * J-LIS takes for one person (number_field names the first). */
static json_t *jlis_entry(const char *number_field, const char *number, const char *my_number,
                          const rk_basic_info *items)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s}", number_field, number, "my_number", my_number, "name", items->name,
                          "birth_date", items->birth_date, "address", items->address);
    if (o && items->sex)
        json_object_set_new(o, "sex", json_string(items->sex));
    return o;
}

static json_t *jlis_request(const char *acquisition_no, const char *my_number, const rk_basic_info *items)
{
    return jlis_entry("acquisition_no", acquisition_no, my_number, items);
}

/* The 400 of a bad basic item. */
static void reply_bad_item(rk_response *resp, const char *code)
{
    rk_reply_error(resp, 400, code, "%s", rk_basic_error_message(code));
}

/* ---------- enrolment of one person ---------- */

/* POST /v1/persons, a flow: checked on the event thread; the pending row
 * stored (or, for a retry of a row J-LIS may not have, found) on the pool;
 * (acquisition number, My Number) sent to J-LIS through the relay; then
 * J-LIS's answer settled on the pool before the reply. A 202 means J-LIS
 * has the request (the row is 'forwarded'); a row whose hand-off is
 * uncertain stays 'new' — a retry sends it again, else the sweeper fails
 * it — and is never dropped. */
typedef struct enrol {
    jlis_flow j;                 /* first */
    const char *my_number;       /* borrowed from the request */
    rk_basic_info items;         /* borrowed from the request */
    agency_pending pend;
    agency_sent sent;
    rk_rc rc;
} enrol;

static void enrol_cleanup(rk_flow *f)
{
    jlis_body_wipe((jlis_flow *)f);
}

/* The J-LIS error codes that say it will never take this request. */
static int definite_refusal(const char *code)
{
    static const char *const codes[] = {"invalid_my_number", "unknown_person", "basic_info_mismatch", "conflict"};
    for (size_t i = 0; code && i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i]) == 0)
            return 1;
    return 0;
}

/* What a definite refusal makes of the row: a basic-item mismatch fails
 * the person; a conflict on a re-send says that the core holds the number
 * for another My Number — so the first send reached it: the row stays. */
static agency_sent_outcome refusal_outcome(const char *code, int resend)
{
    if (code && strcmp(code, "basic_info_mismatch") == 0)
        return SENT_MISMATCH;
    return resend && code && strcmp(code, "conflict") == 0 ? SENT_UNCERTAIN : SENT_REFUSED;
}

/* Maps J-LIS's answer to what became of the acquisition; a refusal's error
 * goes to resp. */
static agency_sent_outcome jlis_outcome(rk_rc rc, const rk_http_result *res, int resend, rk_response *resp)
{
    if (rc == RK_OK && res->status == 202)
        return SENT_FORWARDED;
    if (rc == RK_OK && (res->status == 400 || res->status == 404 || res->status == 409)) {
        json_t *err = res->body ? json_loads(res->body, 0, NULL) : NULL;
        const char *code = json_string_value(json_object_get(json_object_get(err, "error"), "code"));
        agency_sent_outcome outcome = refusal_outcome(code, resend && res->status == 409);
        if (outcome == SENT_MISMATCH)
            rk_reply_error(resp, 409, "basic_info_mismatch",
                           "J-LIS's resident registry holds other basic items (name, birth date, sex, address) for"
                           " this My Number: not linked");
        else
            rk_reply_error(resp, (int)res->status, code ? code : "jlis_refused", "J-LIS refused the request: %s",
                           code ? code : "no reason given");
        json_decref(err);
        return outcome;
    }
    rk_warn("J-LIS did not take an acquisition: %s, HTTP %ld", rk_strerror(rc), res->status);
    rk_reply_error(resp, 503, "jlis_unavailable", "J-LIS or the core could not take the request now; retry");
    return SENT_UNCERTAIN;
}

/* On a worker: J-LIS's answer settled, committed before the reply. */
static void enrol_after_work(rk_flow *f)
{
    enrol *e = (enrol *)f;
    rk_rc rc = agency_store_settle_sent(e->j.a->store, &e->sent, 1);
    if (rc == RK_OK)
        rc = e->sent.rc;
    if (rc != RK_OK) { /* the row stays 'new': a retry sends it again */
        rk_warn("an enrolment's answer from J-LIS could not be stored: %s", rk_strerror(rc));
        rk_reply_error(f->resp, 500, "store_error", "the person could not be stored; retry");
    } else if (e->sent.outcome == SENT_FORWARDED) {
        reply_status(f->resp, 202, e->pend.person, e->sent.status[0] ? e->sent.status : "pending", e->sent.reason);
    }
}

static void enrol_answered(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    enrol *e = (enrol *)f;
    e->sent = (agency_sent){.person = e->pend.person, .acquisition_no = e->pend.acquisition_no,
                            .outcome = jlis_outcome(rc, res, e->pend.resend, f->resp), .want_status = 1,
                            .at_ms = rk_now_ms()};
    rk_http_result_clear(res);
    if (e->sent.outcome == SENT_MISMATCH)
        rk_info("person %s not linked: J-LIS found other basic items (acquisition %s)", e->pend.person,
                e->pend.acquisition_no);
    if (e->sent.outcome == SENT_UNCERTAIN) { /* nothing to store */
        rk_flow_finish(f);
        return;
    }
    rk_flow_pool(f, enrol_after_work, rk_flow_finish);
}

/* On a worker: the pending acquisition. */
static void enrol_store_work(rk_flow *f)
{
    enrol *e = (enrol *)f;
    e->rc = agency_store_add_pending(e->j.a->store, &e->pend, rk_now_ms());
}

static void enrol_stored(rk_flow *f)
{
    enrol *e = (enrol *)f;
    if (e->rc == RK_ERR_EXISTS) { /* with J-LIS already, or settled: the first answer again */
        reply_status(f->resp, 202, e->pend.person, e->pend.status, e->pend.reason);
        rk_flow_finish(f);
        return;
    }
    if (e->rc == RK_ERR_CONFLICT) {
        rk_flow_fail(f, 409, "conflict", "this person is pending under another My Number");
        return;
    }
    if (e->rc != RK_OK) {
        rk_flow_fail(f, 500, "store_error", "the person could not be stored; retry");
        return;
    }
    json_t *msg = jlis_request(e->pend.acquisition_no, e->my_number, &e->items);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    jlis_call(&e->j, "/v1/code-requests", body, enrol_answered);
}

int agency_read_person(const rk_request *req, rk_response *resp, const char **person, const char **my_number,
                       int *check_code, rk_basic_info *items)
{
    *person = rk_req_string(req, resp, "person", RK_ID_FIELD_MAX);
    *my_number = *person ? rk_req_string(req, resp, "my_number", RK_MY_NUMBER_FIELD_MAX) : NULL;
    if (!*my_number)
        return -1;
    if (!rk_person_id_valid(*person)) {
        rk_reply_error(resp, 400, "invalid_field",
                       "field \"person\" must be 1 to 64 characters of [A-Za-z0-9._-], and not a My Number");
        return -1;
    }
    *check_code = rk_mynumber_check_code(*my_number); /* 第7-2(1) */
    if (*check_code < 0) {
        rk_reply_error(resp, 400, "invalid_my_number", "not a valid My Number (12 digits with a correct check digit)");
        return -1;
    }
    const char *bad = rk_basic_read_json(req->json, items);
    if (bad) {
        reply_bad_item(resp, bad);
        return -1;
    }
    return 0;
}

const char *agency_read_person_entry(json_t *e, const char **person, int *check_code, rk_basic_info *items)
{
    *person = json_string_value(json_object_get(e, "person"));
    const char *my_number = json_string_value(json_object_get(e, "my_number"));
    *check_code = my_number ? rk_mynumber_check_code(my_number) : -1;
    memset(items, 0, sizeof *items);
    if (!*person || !rk_person_id_valid(*person))
        return "invalid_field";
    if (*check_code < 0)
        return "invalid_my_number";
    return rk_basic_read_json(e, items);
}

void agency_start_person(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    enrol *e = rk_flow_new(p, resp, sizeof *e, enrol_cleanup);
    if (!e)
        return;
    e->j.a = app;
    if (agency_read_person(req, resp, &e->pend.person, &e->my_number, &e->pend.check_code, &e->items) != 0) {
        rk_flow_finish(&e->j.f);
        return;
    }
    uint8_t raw[ACQUISITION_BYTES];
    if (rk_random(raw, sizeof raw) != RK_OK) {
        rk_flow_fail(&e->j.f, 500, "internal", "no randomness");
        return;
    }
    rk_hex(raw, sizeof raw, e->pend.acquisition_no);
    rk_flow_pool(&e->j.f, enrol_store_work, enrol_stored);
}

void agency_get_person(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    const char *person = req->path + strlen("/v1/persons/");
    char status[AGENCY_STATUS_MAX], reason[AGENCY_REASON_MAX];
    if (!rk_person_id_valid(person)) {
        rk_reply_error(resp, 400, "invalid_field", "the person id must be 1 to 64 characters of [A-Za-z0-9._-]");
        return;
    }
    rk_rc rc = agency_store_person_state(a->store, person, status, reason);
    if (rc == RK_ERR_NOT_FOUND)
        rk_reply_error(resp, 404, "unknown_person", "no person \"%s\" at this agency", person);
    else if (rc != RK_OK)
        rk_reply_error(resp, 500, "store_error", "the person could not be read");
    else
        reply_status(resp, 200, person, status, reason);
}

/* The answer to one notice, the same in the single and the bulk form. */
static const char *notice_status(rk_rc rc, agency_notice_outcome outcome)
{
    if (rc == RK_ERR_INVALID)
        return "invalid_field";
    if (rc != RK_OK)
        return "store_error";
    switch (outcome) {
    case NOTICE_LINKED: return "linked";
    case NOTICE_MISMATCH: return "check_code_mismatch";
    case NOTICE_DUPLICATE: return "code_already_linked";
    default: return "unknown_acquisition";
    }
}

int agency_read_code_notice(const rk_request *req, rk_response *resp, agency_notice *n)
{
    long check = 0;
    memset(n, 0, sizeof *n);
    n->acquisition_no = rk_req_string(req, resp, "acquisition_no", RK_ACQUISITION_NO_MAX);
    n->code = n->acquisition_no ? rk_req_string(req, resp, "code", RK_CODE_FIELD_MAX) : NULL;
    if (!n->code || rk_req_int(req, resp, "check_code", 0, 9, &check) != 0)
        return -1;
    n->check_code = (int)check;
    return 0;
}

void agency_read_notice_entry(json_t *e, agency_notice *n)
{
    json_t *check = json_object_get(e, "check_code");
    memset(n, 0, sizeof *n);
    n->acquisition_no = json_string_value(json_object_get(e, "acquisition_no"));
    n->code = json_string_value(json_object_get(e, "code"));
    /* 0..9 or -1: a larger integer cast to int could wrap into 0..9 */
    n->check_code = json_is_integer(check) && json_integer_value(check) >= 0 && json_integer_value(check) <= 9
                        ? (int)json_integer_value(check) : -1;
    if (!n->acquisition_no || !n->code || strlen(n->code) > RK_CODE_FIELD_MAX)
        n->acquisition_no = NULL; /* answered invalid_field */
}

/* POST /v1/code-notices {"acquisition_no","code","check_code"} from the
 * agency's own gateway, on behalf of the core. */
void agency_post_code_notice(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    agency_notice n;
    if (agency_read_code_notice(req, resp, &n) != 0)
        return;
    const char *acquisition_no = n.acquisition_no, *code = n.code;
    long check = n.check_code;
    agency_notice_outcome outcome;
    rk_rc rc = agency_store_apply_notice(a->store, acquisition_no, code, (int)check, rk_now_ms(), &outcome);
    const char *status = notice_status(rc, outcome);
    if (strcmp(status, "linked") == 0)
        rk_reply_json(resp, 200, json_pack("{s:s}", "status", "linked"));
    else if (strcmp(status, "store_error") == 0)
        rk_reply_error(resp, 500, status, "the notice could not be stored; retry");
    else if (strcmp(status, "unknown_acquisition") == 0)
        rk_reply_error(resp, 404, status, "no pending acquisition has this number");
    else /* check_code_mismatch (an incident is recorded), code_already_linked */
        rk_reply_error(resp, 409, status, "the code was not linked");
}

/* ---------- bulk enrolment ---------- */

/* POST /v1/persons/batch {"persons":[{"person","my_number", the four
 * items},…]} — the same as POST /v1/persons for up to RK_BATCH_MAX
 * persons, in one commit here and one call to J-LIS. Each person gets its
 * own answer, in order. */
typedef struct batch_item {
    const char *person, *my_number;
    rk_basic_info items;     /* borrowed from the request */
    agency_pending *pending; /* its pending row, when the entry is valid */
    agency_sent *sent;       /* what J-LIS made of it, when it was sent */
    json_t *result;          /* the person's answer once known */
} batch_item;

static json_t *item_error(const char *person, const char *code, const char *message)
{
    return json_pack("{s:s?,s:{s:s,s:s}}", "person", person, "error", "code", code, "message", message);
}

/* The message of a bad entry's code. */
static const char *entry_message(const char *code)
{
    if (strcmp(code, "invalid_field") == 0)
        return "person must be 1 to 64 characters of [A-Za-z0-9._-]";
    if (strcmp(code, "invalid_my_number") == 0)
        return "not a valid My Number";
    return rk_basic_error_message(code);
}

/* Validates each entry; valid ones get an acquisition number. */
static size_t read_batch(json_t *list, batch_item *items, agency_pending *pending)
{
    size_t n = json_array_size(list), valid = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(list, i);
        batch_item *it = &items[i];
        it->my_number = json_string_value(json_object_get(e, "my_number"));
        int check = -1;
        const char *bad = agency_read_person_entry(e, &it->person, &check, &it->items);
        uint8_t raw[ACQUISITION_BYTES];
        if (bad)
            it->result = item_error(it->person, bad, entry_message(bad));
        else if (rk_random(raw, sizeof raw) != RK_OK)
            it->result = item_error(it->person, "internal", "no randomness");
        if (it->result)
            continue;
        it->pending = &pending[valid++];
        *it->pending = (agency_pending){.person = it->person, .check_code = check};
        rk_hex(raw, sizeof raw, it->pending->acquisition_no);
    }
    return valid;
}

/* The answer of an entry that is not sent to J-LIS. */
static json_t *settled_without_jlis(const batch_item *it)
{
    if (it->pending->rc == RK_ERR_EXISTS) /* with J-LIS already, or settled: the first answer again */
        return person_answer(it->person, it->pending->status, it->pending->reason);
    if (it->pending->rc == RK_ERR_CONFLICT)
        return item_error(it->person, "conflict", "this person is pending under another My Number");
    return item_error(it->person, "store_error", "the person could not be stored; retry");
}

/* POST /v1/persons/batch, a flow: the entries checked and their pending
 * rows stored in one commit on the pool; one call to J-LIS through the
 * relay; its answers settled in one commit on the pool (as for one
 * person: forwarded rows marked, definitely refused 'new' rows dropped,
 * the others kept 'new'), then the reply. */
typedef struct batch {
    jlis_flow j;                 /* first */
    json_t *list;                /* borrowed from the request */
    size_t n, np, ns;            /* entries, valid entries, entries sent */
    batch_item *items;
    agency_pending *pending;
    agency_sent *sent;
    rk_rc rc;
    rk_rc jlis_rc;
    rk_http_result jlis_res;
} batch;

static void batch_cleanup(rk_flow *f)
{
    batch *b = (batch *)f;
    jlis_body_wipe(&b->j);
    for (size_t i = 0; b->items && i < b->n; i++)
        json_decref(b->items[i].result);
    free(b->items);
    free(b->pending);
    free(b->sent);
    rk_http_result_clear(&b->jlis_res);
}

/* The answer: each person's, in order. On a worker. */
static void batch_reply(batch *b)
{
    json_t *results = json_array();
    for (size_t i = 0; i < b->n; i++)
        json_array_append_new(results, b->items[i].result ? json_incref(b->items[i].result)
                                                          : item_error(b->items[i].person, "internal", "no answer"));
    rk_reply_json(b->j.f.resp, 202, json_pack("{s:o}", "results", results));
}

/* The J-LIS call for the acquisitions to send (J-LIS answers in order). */
static char *batch_jlis_body(batch *b)
{
    json_t *reqs = json_array();
    for (size_t i = 0; i < b->n; i++) {
        batch_item *it = &b->items[i];
        if (!it->result && it->pending->rc != RK_OK)
            it->result = settled_without_jlis(it);
        if (it->result)
            continue;
        it->sent = &b->sent[b->ns++];
        *it->sent = (agency_sent){.person = it->person, .acquisition_no = it->pending->acquisition_no};
        json_array_append_new(reqs, jlis_request(it->pending->acquisition_no, it->my_number, &it->items));
    }
    json_t *msg = json_pack("{s:o}", "requests", reqs);
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    return body;
}

/* On a worker: the entries checked, the valid ones stored pending. */
static void batch_store_work(rk_flow *f)
{
    batch *b = (batch *)f;
    b->np = read_batch(b->list, b->items, b->pending);
    b->rc = b->np ? agency_store_add_pending_many(b->j.a->store, b->pending, b->np, rk_now_ms()) : RK_OK;
    if (b->rc == RK_OK && b->np)
        b->j.body = batch_jlis_body(b); /* kept by the flow: wiped */
    if (b->rc == RK_OK && !b->ns)
        batch_reply(b);
}

/* The outcome of one sent entry from its result in J-LIS's answer (NULL:
 * none, the call failed); a refusal's code in *code. */
static agency_sent_outcome item_outcome(json_t *one, int resend, const char **code)
{
    json_t *err = json_object_get(one, "error");
    *code = "jlis_unavailable";
    if (one && !err)
        return SENT_FORWARDED;
    const char *given = json_string_value(json_object_get(err, "code"));
    if (!definite_refusal(given))
        return SENT_UNCERTAIN;
    *code = given;
    return refusal_outcome(given, resend);
}

/* On a worker: J-LIS's answers settled in one commit, then the reply. */
static void batch_answer_work(rk_flow *f)
{
    batch *b = (batch *)f;
    json_t *answer = b->jlis_rc == RK_OK && b->jlis_res.status == 200 && b->jlis_res.body
                         ? json_loads(b->jlis_res.body, 0, NULL) : NULL;
    json_t *results = json_object_get(answer, "results");
    const char **codes = calloc(b->ns ? b->ns : 1, sizeof *codes);
    size_t r = 0;
    int64_t now = rk_now_ms();
    size_t mismatched = 0;
    for (size_t i = 0; codes && i < b->n; i++) {
        batch_item *it = &b->items[i];
        if (it->sent) {
            it->sent->outcome = item_outcome(json_array_get(results, r), it->pending->resend, &codes[r]);
            it->sent->at_ms = now;
            mismatched += it->sent->outcome == SENT_MISMATCH;
            r++;
        }
    }
    if (mismatched)
        rk_info("%zu of %zu persons not linked: J-LIS found other basic items", mismatched, b->ns);
    rk_rc rc = codes ? agency_store_settle_sent(b->j.a->store, b->sent, b->ns) : RK_ERR_NOMEM;
    if (rc != RK_OK)
        rk_warn("%zu enrolments' answers from J-LIS could not be stored: %s", b->ns, rk_strerror(rc));
    r = 0;
    for (size_t i = 0; i < b->n; i++) {
        batch_item *it = &b->items[i];
        if (!it->sent)
            continue;
        const char *code = codes ? codes[r++] : "internal";
        if (rc != RK_OK || it->sent->rc != RK_OK) /* the row stays 'new': a retry sends it again */
            it->result = item_error(it->person, "store_error", "the person could not be stored; retry");
        else if (it->sent->outcome == SENT_FORWARDED) /* accepted: pending, as ever in this form */
            it->result = person_answer(it->person, "pending", NULL);
        else if (it->sent->outcome == SENT_MISMATCH)
            it->result = item_error(it->person, code, "J-LIS's resident registry holds other basic items: not linked");
        else if (it->sent->outcome == SENT_REFUSED)
            it->result = item_error(it->person, code, "J-LIS refused this request");
        else
            it->result = item_error(it->person, strcmp(code, "conflict") == 0 ? code : "jlis_unavailable",
                                    "J-LIS did not take this request now; retry");
    }
    free(codes);
    json_decref(answer);
    rk_http_result_clear(&b->jlis_res);
    batch_reply(b);
}

static void batch_answered(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    batch *b = (batch *)f;
    b->jlis_rc = rc;
    b->jlis_res = *res; /* the body moves to b */
    if (rc != RK_OK || res->status != 200)
        rk_warn("J-LIS did not take %zu acquisitions: %s, HTTP %ld", b->ns, rk_strerror(rc), res->status);
    rk_flow_pool(f, batch_answer_work, rk_flow_finish);
}

static void batch_stored(rk_flow *f)
{
    batch *b = (batch *)f;
    if (b->rc != RK_OK) {
        rk_flow_fail(f, 500, "store_error", "the persons could not be stored; retry");
        return;
    }
    if (!b->ns) { /* answered on the worker */
        rk_flow_finish(f);
        return;
    }
    char *body = b->j.body;
    b->j.body = NULL;
    jlis_call(&b->j, "/v1/code-requests/batch", body, batch_answered);
}

void agency_start_persons_batch(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    batch *b = rk_flow_new(p, resp, sizeof *b, batch_cleanup);
    if (!b)
        return;
    b->j.a = app;
    if (!(b->list = rk_req_batch(req, resp, "persons"))) {
        rk_flow_finish(&b->j.f);
        return;
    }
    b->n = json_array_size(b->list);
    b->items = calloc(b->n, sizeof *b->items);
    b->pending = calloc(b->n, sizeof *b->pending);
    b->sent = calloc(b->n, sizeof *b->sent);
    if (!b->items || !b->pending || !b->sent) {
        rk_flow_fail(&b->j.f, 500, "internal", "out of memory");
        return;
    }
    rk_flow_pool(&b->j.f, batch_store_work, batch_stored);
}

/* ---------- recheck ---------- */

/* POST /v1/persons/recheck {"persons":[{"person","my_number", the four
 * items},…]} (1..RK_BATCH_MAX), a flow: the entries read and the linked
 * persons found in one read on the pool; one call to J-LIS
 * (POST /v1/basic-info-checks) with a fresh random check number per person,
 * which J-LIS logs and the agency never stores; J-LIS's answers mapped back
 * on the pool. 200 {"results":[{"person","status":"match"|"mismatch"} or
 * {"person","error"}]}, in order; person_not_linked for a person not
 * linked here. Nothing is linked, unlinked or stored; the log gets counts. */
typedef struct recheck_item {
    const char *person, *my_number;
    rk_basic_info items;
    char check_no[2 * ACQUISITION_BYTES + 1];
    int sent;
    json_t *result;
} recheck_item;

typedef struct recheck {
    jlis_flow j;                 /* first */
    json_t *list;                /* borrowed from the request */
    size_t n, ns;
    recheck_item *items;
    const char **persons;
    int *linked;
    rk_rc rc;
    rk_rc jlis_rc;
    rk_http_result jlis_res;
} recheck;

static void recheck_cleanup(rk_flow *f)
{
    recheck *r = (recheck *)f;
    jlis_body_wipe(&r->j);
    for (size_t i = 0; r->items && i < r->n; i++)
        json_decref(r->items[i].result);
    free(r->items);
    free(r->persons);
    free(r->linked);
    rk_http_result_clear(&r->jlis_res);
}

static void recheck_reply(recheck *r)
{
    json_t *results = json_array();
    for (size_t i = 0; i < r->n; i++)
        json_array_append_new(results, r->items[i].result ? json_incref(r->items[i].result)
                                                          : item_error(r->items[i].person, "internal", "no answer"));
    rk_reply_json(r->j.f.resp, 200, json_pack("{s:o}", "results", results));
}

/* On a worker: the entries read, the linked ones found, J-LIS's body made. */
static void recheck_work(rk_flow *f)
{
    recheck *r = (recheck *)f;
    for (size_t i = 0; i < r->n; i++) {
        recheck_item *it = &r->items[i];
        json_t *e = json_array_get(r->list, i);
        int check = -1;
        const char *bad = agency_read_person_entry(e, &it->person, &check, &it->items);
        it->my_number = json_string_value(json_object_get(e, "my_number"));
        if (bad)
            it->result = item_error(it->person, bad, entry_message(bad));
        r->persons[i] = bad ? NULL : it->person;
    }
    if ((r->rc = agency_store_linked_many(r->j.a->store, r->persons, r->n, r->linked)) != RK_OK)
        return;
    json_t *checks = json_array();
    for (size_t i = 0; checks && i < r->n; i++) {
        recheck_item *it = &r->items[i];
        uint8_t raw[ACQUISITION_BYTES];
        if (it->result)
            continue;
        if (!r->linked[i]) {
            it->result = item_error(it->person, "person_not_linked", "the person is not linked at this agency");
            continue;
        }
        if (rk_random(raw, sizeof raw) != RK_OK) {
            it->result = item_error(it->person, "internal", "no randomness");
            continue;
        }
        rk_hex(raw, sizeof raw, it->check_no);
        it->sent = 1;
        r->ns++;
        json_array_append_new(checks, jlis_entry("check_no", it->check_no, it->my_number, &it->items));
    }
    json_t *msg = checks ? json_pack("{s:o}", "checks", checks) : NULL;
    r->j.body = r->ns && msg ? json_dumps(msg, JSON_COMPACT) : NULL; /* kept by the flow: wiped */
    json_decref(msg);
    if (!r->ns)
        recheck_reply(r);
}

/* On a worker: J-LIS's results, in order, echoing each check number. */
static void recheck_answer_work(rk_flow *f)
{
    recheck *r = (recheck *)f;
    json_t *answer = r->jlis_rc == RK_OK && r->jlis_res.status == 200 && r->jlis_res.body
                         ? json_loads(r->jlis_res.body, 0, NULL) : NULL;
    json_t *results = json_object_get(answer, "results");
    size_t k = 0, match = 0, mismatch = 0;
    if (!answer)
        rk_warn("J-LIS did not answer a recheck of %zu persons: %s, HTTP %ld", r->ns, rk_strerror(r->jlis_rc),
                r->jlis_res.status);
    for (size_t i = 0; i < r->n; i++) {
        recheck_item *it = &r->items[i];
        if (!it->sent)
            continue;
        json_t *one = json_array_get(results, k++);
        const char *no = json_string_value(json_object_get(one, "check_no"));
        const char *status = json_string_value(json_object_get(one, "status"));
        const char *code = json_string_value(json_object_get(json_object_get(one, "error"), "code"));
        if (!no || strcmp(no, it->check_no) != 0 || (!status && !code)) {
            it->result = item_error(it->person, "jlis_unavailable", "J-LIS did not check this person now; retry");
        } else if (status && (strcmp(status, "match") == 0 || strcmp(status, "mismatch") == 0)) {
            it->result = json_pack("{s:s,s:s}", "person", it->person, "status", status);
            match += strcmp(status, "match") == 0;
            mismatch += strcmp(status, "mismatch") == 0;
        } else {
            it->result = item_error(it->person, code ? code : "jlis_refused", "J-LIS refused this check");
        }
    }
    if (answer)
        rk_info("recheck of %zu persons with J-LIS: %zu match, %zu mismatch", r->ns, match, mismatch);
    json_decref(answer);
    rk_http_result_clear(&r->jlis_res);
    recheck_reply(r);
}

static void recheck_answered(rk_flow *f, rk_rc rc, rk_http_result *res)
{
    recheck *r = (recheck *)f;
    r->jlis_rc = rc;
    r->jlis_res = *res; /* the body moves to r */
    rk_flow_pool(f, recheck_answer_work, rk_flow_finish);
}

static void recheck_ready(rk_flow *f)
{
    recheck *r = (recheck *)f;
    if (r->rc != RK_OK) {
        rk_flow_fail(f, 500, "store_error", "the persons could not be read; retry");
        return;
    }
    if (!r->ns) { /* answered on the worker */
        rk_flow_finish(f);
        return;
    }
    char *body = r->j.body;
    r->j.body = NULL;
    jlis_call(&r->j, "/v1/basic-info-checks", body, recheck_answered);
}

void agency_start_recheck(void *app, rk_pending *p, const rk_request *req, rk_response *resp)
{
    recheck *r = rk_flow_new(p, resp, sizeof *r, recheck_cleanup);
    if (!r)
        return;
    r->j.a = app;
    if (!(r->list = rk_req_batch(req, resp, "persons"))) {
        rk_flow_finish(&r->j.f);
        return;
    }
    r->n = json_array_size(r->list);
    r->items = calloc(r->n, sizeof *r->items);
    r->persons = calloc(r->n, sizeof *r->persons);
    r->linked = calloc(r->n, sizeof *r->linked);
    if (!r->items || !r->persons || !r->linked) {
        rk_flow_fail(&r->j.f, 500, "internal", "out of memory");
        return;
    }
    rk_flow_pool(&r->j.f, recheck_work, recheck_ready);
}

/* POST /v1/code-notices/batch {"notices":[{"acquisition_no","code","check_code"},…]}
 * from this agency's gateway: each notice as POST /v1/code-notices, in one commit. */
void agency_post_code_notices_batch(void *app, const rk_request *req, rk_response *resp)
{
    agency *a = app;
    json_t *list = rk_req_batch(req, resp, "notices");
    if (!list)
        return;
    size_t n = json_array_size(list);
    agency_notice *items = calloc(n, sizeof *items);
    if (!items) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        agency_read_notice_entry(json_array_get(list, i), &items[i]);
    rk_rc rc = agency_store_apply_notices(a->store, items, n, rk_now_ms());
    json_t *results = json_array();
    for (size_t i = 0; i < n && rc == RK_OK; i++) {
        const agency_notice *it = &items[i];
        const char *status = notice_status(it->rc, it->outcome);
        json_array_append_new(results, json_pack("{s:s?,s:s}", "acquisition_no", it->acquisition_no, "status", status));
    }
    if (rc != RK_OK)
        rk_reply_error(resp, 500, "store_error", "the notices could not be stored; retry");
    else
        rk_reply_json(resp, 200, json_pack("{s:O}", "results", results));
    json_decref(results);
    free(items);
}
