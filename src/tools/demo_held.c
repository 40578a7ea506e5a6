/* demo_held.c — two exchanges of an agency's every day in `renkei demo`
 * (issue 15): a query for a fiscal year, answered with the version in force
 * then, and a held answer (手動応答) for a protected person — flagged by the
 * provider's business system, held, answered by its operator, received
 * late by the requester. Runs after demo_exchanges (the values it stored). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/util.h"
#include "records/records.h"
#include "tools/demo.h"

enum { YOKOHAMA = 0, KANAGAWA = 1 };

#define CALL_MS 10000
#define LATE_WAIT_MS 20000

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* One call as agency's business system (client NULL), or with client to
 * the agency's node; *out the parsed answer (caller decrefs). */
static rk_rc call(demo *d, int agency, rk_client *client, const char *method, const char *path, json_t *body,
                  long *status, json_t **out)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    rk_http_result res = {0};
    rk_rc rc;
    if (client) {
        char url[RK_URL_MAX + 256];
        const rk_peer_node *n = d->agencies[agency].node;
        rc = tk_path(url, sizeof url, "%s%s", n->url, path);
        if (rc == RK_OK)
            rc = rk_client_call(client, method, url, n->pin, text, text ? strlen(text) : 0, CALL_MS, &res);
    } else {
        rc = demo_call(d, agency, method, path, text, &res);
    }
    free(text);
    *out = NULL;
    *status = 0;
    if (rc == RK_OK) {
        *status = res.status;
        *out = res.body ? json_loads(res.body, 0, NULL) : NULL;
    }
    rk_http_result_clear(&res);
    return rc;
}

static json_t *query_body(const char *query_id, json_t *condition)
{
    json_t *b = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "query_id", query_id, "person", "K-0001", "business",
                          "public_assistance", "provider", "city-yokohama", "item", "local_tax", "operator",
                          "operator-0042");
    if (b && condition)
        json_object_set_new(b, "condition", condition);
    return b;
}

static rk_rc fiscal_year(demo *d)
{
    long status;
    json_t *a = NULL, *body = query_body("demo-q4", json_pack("{s:i}", "fiscal_year", 2025));
    call(d, KANAGAWA, NULL, "POST", "/v1/queries", body, &status, &a);
    json_decref(body);
    char *value = a ? json_dumps(json_object_get(a, "value"), JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    printf("   pref-kanagawa asks for K-0001's local_tax of fiscal year 2025 (令和7年度; condition\n"
           "   {\"fiscal_year\":2025}, the version in force on 2026-03-31):\n");
    rk_rc rc = RK_OK;
    if (status != 200 || strcmp(str(a, "status"), "provided") != 0 || !value || !strstr(value, "3100000") ||
        strcmp(str(a, "as_of"), "2025-06-01") != 0)
        rc = demo_fail(d, RK_ERR_INVALID, "the fiscal-year query answered HTTP %ld %s (as of %s)", status,
                       str(a, "status"), str(a, "as_of"));
    else
        printf("     provided: %s (as of %s; the newest is of 2026-06-01)\n",
               value, str(a, "as_of"));
    free(value);
    json_decref(a);
    return rc;
}

/* Whether a node's records of the exchange hold both outcomes, held and
 * then `late` (the late result may still be on its way: polled). */
static int recorded_twice(demo *d, int agency, rk_client *client, const char *base_url, const char *pin,
                          const char *xid, const char *late)
{
    char path[RK_EXCHANGE_ID_MAX + 64], url[RK_URL_MAX + RK_EXCHANGE_ID_MAX + 64];
    snprintf(path, sizeof path, "/v1/records?exchange_id=%s", xid);
    int64_t until = rk_now_ms() + LATE_WAIT_MS;
    for (;;) {
        long status = 0;
        json_t *a = NULL;
        if (base_url) {
            rk_http_result res = {0};
            if (tk_path(url, sizeof url, "%s%s", base_url, path) == RK_OK &&
                rk_client_call(client, "GET", url, pin, NULL, 0, CALL_MS, &res) == RK_OK && res.body)
                a = json_loads(res.body, 0, NULL);
            rk_http_result_clear(&res);
        } else {
            call(d, agency, NULL, "GET", path, NULL, &status, &a);
        }
        int held = 0, done = 0;
        json_t *r;
        size_t i;
        json_array_foreach(json_object_get(a, "records"), i, r) {
            held |= strcmp(str(r, "outcome"), "held") == 0;
            done |= strcmp(str(r, "outcome"), late) == 0;
        }
        json_decref(a);
        if ((held && done) || rk_now_ms() > until)
            return held && done;
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
    }
}

/* Polls the query until it is no longer held. */
static json_t *wait_settled(demo *d, const char *query_id, long *status)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/queries/%s", query_id);
    int64_t until = rk_now_ms() + LATE_WAIT_MS;
    for (;;) {
        json_t *a = NULL;
        call(d, KANAGAWA, NULL, "GET", path, NULL, status, &a);
        if (strcmp(str(a, "status"), "held") != 0 || rk_now_ms() > until)
            return a;
        json_decref(a);
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
    }
}

static rk_rc held_answer(demo *d, rk_client *op)
{
    long status;
    json_t *a = NULL;
    json_t *flag = json_pack("{s:b,s:s}", "auto_answer", 0, "reason", "支援措置 (DV): 住所を開示しない");
    call(d, YOKOHAMA, NULL, "PUT", "/v1/persons/Y-0001/handling", flag, &status, &a);
    json_decref(flag);
    json_decref(a);
    if (status != 200)
        return demo_fail(d, RK_ERR_INVALID, "flagging Y-0001 at city-yokohama answered HTTP %ld", status);
    printf("   city-yokohama's business system stops automatic answers for Y-0001 (支援措置 for a victim of DV).\n");

    json_t *body = query_body("demo-q5", NULL);
    call(d, KANAGAWA, NULL, "POST", "/v1/queries", body, &status, &a);
    json_decref(body);
    char xid[RK_EXCHANGE_ID_MAX + 1];
    snprintf(xid, sizeof xid, "%s", str(a, "exchange_id"));
    int held = status == 202 && strcmp(str(a, "status"), "held") == 0;
    json_decref(a);
    if (!held)
        return demo_fail(d, RK_ERR_INVALID, "the query for a flagged person answered HTTP %ld, not 202 held", status);
    printf("   pref-kanagawa asks for the same person's local_tax: 202 held — nothing left city-yokohama.\n");

    call(d, YOKOHAMA, op, "GET", "/v1/held-provisions", NULL, &status, &a);
    json_t *first = json_array_get(json_object_get(a, "held"), 0);
    int listed = status == 200 && strcmp(str(first, "exchange_id"), xid) == 0;
    if (listed)
        printf("   city-yokohama's operator sees it waiting: %s from %s, %s / %s, person %s.\n", xid,
               str(first, "requester"), str(first, "business"), str(first, "item"), str(first, "person"));
    json_decref(a);
    if (!listed)
        return demo_fail(d, RK_ERR_INVALID, "the held request is not in city-yokohama's list (HTTP %ld)", status);

    char path[RK_EXCHANGE_ID_MAX + 64];
    snprintf(path, sizeof path, "/v1/held-provisions/%s/answer", xid);
    json_t *who = json_pack("{s:s}", "operator", "operator-0007");
    call(d, YOKOHAMA, op, "POST", path, who, &status, &a);
    json_decref(who);
    int answered = status == 200 && strcmp(str(a, "outcome"), "provided") == 0;
    json_decref(a);
    if (!answered)
        return demo_fail(d, RK_ERR_INVALID, "the operator's answer got HTTP %ld", status);
    printf("   Its operator operator-0007 checks the request and answers it.\n");

    a = wait_settled(d, "demo-q5", &status);
    char *value = a ? json_dumps(json_object_get(a, "value"), JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    rk_rc rc = RK_OK;
    if (status != 200 || strcmp(str(a, "status"), "provided") != 0 || !value || !strstr(value, "3350000"))
        rc = demo_fail(d, RK_ERR_INVALID, "the held query settled as HTTP %ld %s", status, str(a, "status"));
    else
        printf("     pref-kanagawa's query is now provided: %s — sealed by city-yokohama, relayed by the core.\n",
               value);
    free(value);
    json_decref(a);
    tk_client netop = {0};
    const rk_peer_node *core = rk_registry_find(d->reg, RK_ROLE_CORE, NULL);
    int at_core = core && tk_client_open(d->dir, "clients/operator", &netop, NULL, 0) == RK_OK &&
                  recorded_twice(d, 0, netop.client, core->url, core->pin, xid, "provided");
    tk_client_close(&netop);
    if (rc == RK_OK && (!at_core || !recorded_twice(d, KANAGAWA, NULL, NULL, NULL, xid, "provided") ||
                        !recorded_twice(d, YOKOHAMA, NULL, NULL, NULL, xid, "provided")))
        rc = demo_fail(d, RK_ERR_INVALID, "the three nodes do not all record %s as held, then provided", xid);
    else if (rc == RK_OK)
        printf("     The core and both agencies recorded the exchange twice (法23条): held, then provided.\n");

    flag = json_pack("{s:b}", "auto_answer", 1);
    call(d, YOKOHAMA, NULL, "PUT", "/v1/persons/Y-0001/handling", flag, &status, &a);
    json_decref(flag);
    json_decref(a);
    if (rc == RK_OK && status != 200)
        rc = demo_fail(d, RK_ERR_INVALID, "lifting the flag of Y-0001 answered HTTP %ld", status);
    return rc;
}

rk_rc demo_held(demo *d)
{
    demo_step_begin(d, "Every day: a query for a fiscal year, and a held answer for a protected person");
    rk_rc rc = fiscal_year(d);
    tk_client op = {0};
    rk_rc opened = tk_client_open(d->dir, "clients/city-yokohama-operator", &op, NULL, 0);
    rk_rc held = opened == RK_OK ? held_answer(d, op.client)
                                 : demo_fail(d, opened, "the credential of city-yokohama's operator did not load");
    tk_client_close(&op);
    return rc != RK_OK ? rc : held;
}
