/* demo_exchanges.c — the request-and-provision part of `renkei demo`
 * (DESIGN §2.2): a permitted exchange with the value the requester
 * received, a refused one with its reason, one for which the provider has
 * no data, and the three nodes' records of one exchange side by side. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "crypto/pki.h"
#include "records/records.h"
#include "tools/demo.h"

enum { YOKOHAMA = 0, KANAGAWA = 1, NENKIN = 2 };

#define CALL_MS 10000

/* One JSON call to an agency node as its business system; *out is the
 * parsed answer (caller decrefs), *status the HTTP status. */
static rk_rc call_json(demo *d, int agency, const char *method, const char *path, json_t *body, long *status,
                       json_t **out)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    rk_http_result res;
    rk_rc rc = demo_call(d, agency, method, path, text, &res);
    free(text);
    *out = NULL;
    *status = 0;
    if (rc == RK_OK) {
        *status = res.status;
        *out = res.body ? json_loads(res.body, 0, NULL) : NULL;
        rk_http_result_clear(&res);
    }
    return rc;
}

static rk_rc store_values(demo *d)
{
    static const struct { const char *value, *as_of; } versions[] = {
        {"{\"taxable_income\":3100000,\"municipal_tax\":120000}", "2025-06-01"},
        {"{\"taxable_income\":3350000,\"municipal_tax\":131000}", "2026-06-01"},
    };
    for (size_t i = 0; i < 2; i++) {
        long status;
        json_t *answer;
        json_t *body = json_pack("{s:o,s:s}", "value", json_loads(versions[i].value, 0, NULL), "as_of",
                                 versions[i].as_of);
        rk_rc rc = call_json(d, YOKOHAMA, "PUT", "/v1/data/Y-0001/local_tax", body, &status, &answer);
        json_decref(body);
        json_decref(answer);
        if (rc != RK_OK || status != 200)
            return demo_fail(d, rc, "storing local_tax version %zu at city-yokohama: HTTP %ld", i + 1, status);
    }
    printf("   city-yokohama keeps two versions of person Y-0001's local_tax (as of 2025-06-01 and 2026-06-01).\n");
    return RK_OK;
}

/* Runs one query; prints a line; returns the answer (caller decrefs). */
static json_t *query(demo *d, int agency, const char *query_id, const char *person, const char *business,
                     const char *provider, const char *item, long *status)
{
    json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "query_id", query_id, "person", person, "business",
                             business, "provider", provider, "item", item, "operator", "operator-0042");
    json_t *answer = NULL;
    if (call_json(d, agency, "POST", "/v1/queries", body, status, &answer) != RK_OK)
        *status = 0;
    json_decref(body);
    return answer;
}

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static rk_rc permitted(demo *d, char exchange_id[RK_EXCHANGE_ID_MAX + 1])
{
    long status;
    json_t *a = query(d, KANAGAWA, "demo-q1", "K-0001", "public_assistance", "city-yokohama", "local_tax", &status);
    rk_rc rc = RK_OK;
    char *value = a ? json_dumps(json_object_get(a, "value"), JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    printf("   pref-kanagawa asks city-yokohama for local_tax of its person K-0001,\n"
           "   under public_assistance (生活保護法による保護の決定及び実施…), operator operator-0042:\n");
    if (status != 200 || strcmp(str(a, "status"), "provided") != 0 || !value ||
        !strstr(value, "3350000"))
        rc = demo_fail(d, RK_ERR_INVALID, "the permitted exchange answered HTTP %ld %s", status, str(a, "status"));
    else
        printf("     provided: %s (as of %s: the newest version)\n"
               "     signed by city-yokohama, encrypted to pref-kanagawa; the core and gateways saw only ciphertext\n",
               value, str(a, "as_of"));
    snprintf(exchange_id, RK_EXCHANGE_ID_MAX + 1, "%s", str(a, "exchange_id"));
    free(value);
    json_decref(a);
    return rc;
}

static rk_rc refused(demo *d)
{
    long status;
    json_t *a = query(d, NENKIN, "demo-q2", "N-0001", "national_pension", "city-yokohama", "child_allowance", &status);
    json_t *err = json_object_get(a, "error");
    rk_rc rc = RK_OK;
    printf("   nenkin-kikou asks city-yokohama for child_allowance under national_pension:\n");
    if (status != 403 || strcmp(str(err, "code"), "not_permitted") != 0)
        rc = demo_fail(d, RK_ERR_INVALID, "the unlawful request answered HTTP %ld", status);
    else
        printf("     refused: %ld %s — %s (法21条2項); city-yokohama never saw the request\n", status,
               str(err, "code"), str(err, "message"));
    json_decref(a);
    return rc;
}

static rk_rc no_data(demo *d)
{
    long status;
    json_t *a = query(d, KANAGAWA, "demo-q3", "K-0001", "public_assistance", "city-yokohama", "child_allowance",
                      &status);
    rk_rc rc = RK_OK;
    printf("   pref-kanagawa asks city-yokohama for child_allowance of K-0001 (permitted; none is held):\n");
    if (status != 200 || strcmp(str(a, "status"), "no_data") != 0)
        rc = demo_fail(d, RK_ERR_INVALID, "the exchange without data answered HTTP %ld %s", status, str(a, "status"));
    else
        printf("     answered: no_data\n");
    json_decref(a);
    return rc;
}

/* GET /v1/records?exchange_id= at the core, as the network operator. */
static json_t *core_record(demo *d, const char *exchange_id)
{
    char url[RK_URL_MAX + 128];
    tk_client op = {0};
    json_t *rec = NULL;
    const rk_peer_node *core = rk_registry_find(d->reg, RK_ROLE_CORE, NULL);
    snprintf(url, sizeof url, "%s/v1/records?exchange_id=%s", core ? core->url : "", exchange_id);
    rk_http_result res = {0};
    if (core && tk_client_open(d->dir, "clients/operator", &op, NULL, 0) == RK_OK &&
        rk_client_call(op.client, "GET", url, core->pin, NULL, 0, CALL_MS, &res) == RK_OK && res.body) {
        json_t *all = json_loads(res.body, 0, NULL);
        rec = json_incref(json_array_get(json_object_get(all, "records"), 0));
        json_decref(all);
    }
    rk_http_result_clear(&res);
    tk_client_close(&op);
    return rec;
}

static json_t *agency_record(demo *d, int agency, const char *exchange_id)
{
    char path[300];
    long status;
    json_t *all = NULL;
    snprintf(path, sizeof path, "/v1/records?exchange_id=%s", exchange_id);
    call_json(d, agency, "GET", path, NULL, &status, &all);
    json_t *rec = json_incref(json_array_get(json_object_get(all, "records"), 0));
    json_decref(all);
    return rec;
}

static rk_rc records_side_by_side(demo *d, const char *exchange_id)
{
    json_t *rows[3] = {core_record(d, exchange_id), agency_record(d, KANAGAWA, exchange_id),
                       agency_record(d, YOKOHAMA, exchange_id)};
    static const char *const fields[] = {"exchange_id", "requester", "provider", "business", "item", "operator",
                                         "subject", "requested_at", "provided_at", "outcome", "payload_sha256"};
    rk_rc rc = RK_OK;
    printf("   The records of that exchange (法23条) at the three nodes:\n");
    printf("     %-15s %-30s %-30s %-30s\n", "", "core", "pref-kanagawa (requester)", "city-yokohama (provider)");
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        printf("     %-15s", fields[f]);
        for (int i = 0; i < 3; i++) {
            const char *v = str(rows[i], fields[f]);
            printf(" %-30.*s", 30, v[0] ? v : "-");
        }
        printf("\n");
    }
    for (int i = 0; i < 3; i++)
        if (!rows[i] || strcmp(str(rows[i], "payload_sha256"), str(rows[0], "payload_sha256")) != 0 ||
            strcmp(str(rows[i], "outcome"), "provided") != 0)
            rc = demo_fail(d, RK_ERR_INVALID, "the three records of exchange %s do not agree", exchange_id);
    if (rc == RK_OK)
        printf("   They agree on the exchange, the parties, the outcome and the payload digest; the core's\n"
               "   record holds its internal person serial and no content.\n");
    for (int i = 0; i < 3; i++)
        json_decref(rows[i]);
    return rc;
}

rk_rc demo_exchanges(demo *d)
{
    char exchange_id[RK_EXCHANGE_ID_MAX + 1] = "";
    demo_step_begin(d, "Request and provision: an operator at one agency asks another, through the core");
    rk_rc rc = store_values(d);
    if (rc == RK_OK)
        rc = permitted(d, exchange_id);
    rk_rc refusal = refused(d);
    rk_rc empty = no_data(d);
    if (rc == RK_OK)
        rc = records_side_by_side(d, exchange_id);
    return rc != RK_OK ? rc : refusal != RK_OK ? refusal : empty;
}
