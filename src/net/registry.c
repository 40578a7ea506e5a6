#include "net/registry.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "crypto/signed_doc.h"
#include "lib/util.h"

/* The document itself (the envelope's base64 is 4/3 of it) */
#define REGISTRY_MAX_BYTES (RK_REGISTRY_MAX_BYTES / 4 * 3)

static const struct { rk_role role; const char *name; } role_names[] = {
    {RK_ROLE_CORE, "core"},     {RK_ROLE_JLIS, "jlis"},     {RK_ROLE_GATEWAY, "gateway"},
    {RK_ROLE_AGENCY, "agency"}, {RK_ROLE_SYSTEM, "system"}, {RK_ROLE_OPERATOR, "operator"},
    {RK_ROLE_WITNESS, "witness"}, {RK_ROLE_PORTAL, "portal"},
    {RK_ROLE_PPC, "ppc"}, {RK_ROLE_PPC_OPERATOR, "ppc-operator"},
};

const char *rk_role_name(rk_role role)
{
    if (role == RK_ROLE_PERSON) /* named, never parsed: no registry entry is a person */
        return "person";
    for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++)
        if (role_names[i].role == role)
            return role_names[i].name;
    return "none";
}

rk_role rk_role_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof role_names / sizeof role_names[0]; i++)
        if (strcmp(role_names[i].name, name) == 0)
            return role_names[i].role;
    return RK_ROLE_NONE;
}

/* Copies an optional string field; RK_ERR_INVALID if present but not a
 * string or too long. */
static rk_rc copy_field(json_t *obj, const char *key, char *out, size_t outlen, int required)
{
    json_t *v = json_object_get(obj, key);
    out[0] = '\0';
    if (!v || json_is_null(v))
        return required ? RK_ERR_INVALID : RK_OK;
    if (!json_is_string(v) || json_string_length(v) >= outlen)
        return RK_ERR_INVALID;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return RK_OK;
}

/* The snapshot's strings: chunks that never move once written. */
struct rk_registry_strings {
    struct rk_registry_strings *next;
    size_t used, cap;
    char data[];
};

#define STRINGS_CHUNK (64u << 10)

static const char *keep_string(rk_registry *reg, const char *s, size_t len)
{
    if (!len)
        return "";
    struct rk_registry_strings *c = reg->strings;
    if (!c || c->cap - c->used < len + 1) {
        size_t cap = len + 1 > STRINGS_CHUNK ? len + 1 : STRINGS_CHUNK;
        if (!(c = malloc(sizeof *c + cap)))
            return NULL;
        c->next = reg->strings;
        c->used = 0;
        c->cap = cap;
        reg->strings = c;
    }
    char *out = c->data + c->used;
    memcpy(out, s, len);
    out[len] = '\0';
    c->used += len + 1;
    return out;
}

/* An optional string field kept in the snapshot's strings ("" when absent):
 * RK_ERR_INVALID if present but not a string or not under cap. */
static rk_rc keep_field(rk_registry *reg, json_t *obj, const char *key, const char **out, size_t cap)
{
    json_t *v = json_object_get(obj, key);
    *out = "";
    if (!v || json_is_null(v))
        return RK_OK;
    if (!json_is_string(v) || json_string_length(v) >= cap || memchr(json_string_value(v), '\0', json_string_length(v)))
        return RK_ERR_INVALID;
    return (*out = keep_string(reg, json_string_value(v), json_string_length(v))) ? RK_OK : RK_ERR_NOMEM;
}

/* The host part of https://HOST:PORT/… (IPv6 in brackets not needed here). */
static void url_host(const char *url, char *out, size_t outlen)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, ":/");
    snprintf(out, outlen, "%.*s", (int)n, p);
}

/* "previous_fingerprints": the certificates before a renewal, each with the
 * end of its overlap (`renkei pki renew`, DESIGN §3). */
static rk_rc parse_previous(json_t *obj, rk_peer_node *n)
{
    json_t *list = json_object_get(obj, "previous_fingerprints"), *e;
    size_t i;
    if (!list)
        return RK_OK;
    if (!json_is_array(list) || json_array_size(list) > RK_PREVIOUS_MAX)
        return RK_ERR_INVALID;
    json_array_foreach(list, i, e) {
        const char *fp = json_string_value(json_object_get(e, "fingerprint"));
        const char *until = json_string_value(json_object_get(e, "until"));
        struct tm tm = {0};
        const char *end = until ? strptime(until, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
        if (!fp || strlen(fp) != 64 || strspn(fp, "0123456789abcdef") != 64 || !end || *end)
            return RK_ERR_INVALID;
        memcpy(n->previous[i].fingerprint, fp, 65);
        n->previous[i].until = (int64_t)timegm(&tm);
    }
    n->n_previous = (int)json_array_size(list);
    return RK_OK;
}

static rk_rc parse_node(rk_registry *reg, json_t *obj, rk_peer_node *n, char *err, size_t errlen)
{
    n->url = n->backup_url = n->log_origin = n->log_vkey = n->vkey = n->person_url = "";
    char role[16];
    const char *bad = NULL;
    if (!json_is_object(obj))
        bad = "node is not an object";
    else if (copy_field(obj, "id", n->id, sizeof n->id, 1) != RK_OK || !n->id[0])
        bad = "id";
    else if (copy_field(obj, "role", role, sizeof role, 1) != RK_OK || !(n->role = rk_role_parse(role)))
        bad = "role";
    else if (copy_field(obj, "agency", n->agency, sizeof n->agency, 0) != RK_OK)
        bad = "agency";
    else if (copy_field(obj, "kind", n->kind, sizeof n->kind, 0) != RK_OK)
        bad = "kind";
    else if (keep_field(reg, obj, "url", &n->url, RK_URL_MAX) != RK_OK)
        bad = "url";
    else if (keep_field(reg, obj, "backup_url", &n->backup_url, RK_URL_MAX) != RK_OK)
        bad = "backup_url";
    else if (copy_field(obj, "fingerprint", n->fingerprint, sizeof n->fingerprint, 1) != RK_OK ||
             strlen(n->fingerprint) != 64)
        bad = "fingerprint";
    else if (copy_field(obj, "pin", n->pin, sizeof n->pin, 0) != RK_OK || (n->url[0] && strncmp(n->pin, "sha256//", 8) != 0))
        bad = "pin (required for a node with a url: calls to it are pinned to its key)";
    else if (keep_field(reg, obj, "log_origin", &n->log_origin, 128) != RK_OK ||
             keep_field(reg, obj, "log_vkey", &n->log_vkey, 256) != RK_OK ||
             !n->log_origin[0] != !n->log_vkey[0])
        bad = "log_origin and log_vkey (both or neither, within their caps)";
    else if (keep_field(reg, obj, "vkey", &n->vkey, 256) != RK_OK || (n->role == RK_ROLE_WITNESS) != !!n->vkey[0])
        bad = "vkey (a witness's, and only a witness's)";
    else if (keep_field(reg, obj, "person_url", &n->person_url, RK_URL_MAX) != RK_OK ||
             (n->role == RK_ROLE_PORTAL) != !!n->person_url[0])
        bad = "person_url (a portal's, and only a portal's)";
    else if ((n->role & (RK_ROLE_GATEWAY | RK_ROLE_AGENCY | RK_ROLE_SYSTEM)) && !n->agency[0])
        bad = "agency (required for this role)";
    else if ((n->role & RK_ROLES_SERVER) && !n->url[0])
        bad = "url (required for this role)";
    if (!bad && parse_previous(obj, n) != RK_OK)
        bad = "previous_fingerprints (at most 8 of {\"fingerprint\",\"until\":\"YYYY-MM-DDTHH:MM:SSZ\"})";
    if (!bad) {
        json_t *addrs = json_object_get(obj, "addresses");
        size_t i;
        json_t *a;
        if (addrs && !json_is_array(addrs))
            bad = "addresses";
        json_array_foreach(addrs, i, a) {
            if (bad || n->n_addresses >= RK_MAX_ADDRESSES || !json_is_string(a) ||
                json_string_length(a) >= sizeof n->addresses[0]) {
                bad = "addresses";
                break;
            }
            strcpy(n->addresses[n->n_addresses++], json_string_value(a));
        }
        if (!bad && n->n_addresses == 0 && n->url[0])
            url_host(n->url, n->addresses[n->n_addresses++], sizeof n->addresses[0]);
    }
    if (bad) {
        snprintf(err, errlen, "node %s: bad or missing %s", n->id[0] ? n->id : "?", bad);
        return RK_ERR_INVALID;
    }
    return RK_OK;
}

/* The core's instances, each to the next in a ring (a caller moves from one
 * to the next when one fails, DESIGN §6). */
static void link_instances(rk_registry *reg)
{
    rk_peer_node *first = NULL, *prev = NULL;
    for (size_t i = 0; i < reg->n_nodes; i++) {
        rk_peer_node *n = &reg->nodes[i];
        if (n->role != RK_ROLE_CORE)
            continue;
        if (prev)
            prev->next_instance = n;
        else
            first = n;
        prev = n;
    }
    if (prev && prev != first)
        prev->next_instance = first;
}

/* ---- hash tables (FNV-1a; open addressing, linear probing) ---- */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int make_tables(rk_registry *reg, size_t n)
{
    size_t slots = 16;
    while (slots < 2 * n + 2)
        slots <<= 1;
    reg->mask = slots - 1;
    if (!(reg->by_id = calloc(slots, sizeof *reg->by_id)) || !(reg->by_fp = calloc(slots, sizeof *reg->by_fp)) ||
        !(reg->by_agency = calloc(slots, sizeof *reg->by_agency)) ||
        !(reg->next_of_agency = calloc(n + 1, sizeof *reg->next_of_agency)))
        return 0;
    return 1;
}

/* Slot of key in table (where it is, or the empty slot it would take). */
static size_t slot_of(const rk_registry *reg, const uint32_t *table, const char *key, size_t field)
{
    size_t i = hash_str(key) & reg->mask;
    while (table[i] && strcmp((const char *)&reg->nodes[table[i] - 1] + field, key) != 0)
        i = (i + 1) & reg->mask;
    return i;
}

#define F_ID offsetof(rk_peer_node, id)
#define F_FP offsetof(rk_peer_node, fingerprint)
#define F_AGENCY offsetof(rk_peer_node, agency)

/* Enters node i; 0 when its id or fingerprint is already there. */
static int table_add(rk_registry *reg, size_t i)
{
    rk_peer_node *n = &reg->nodes[i];
    size_t a = slot_of(reg, reg->by_id, n->id, F_ID), b = slot_of(reg, reg->by_fp, n->fingerprint, F_FP);
    if (reg->by_id[a] || reg->by_fp[b])
        return 0;
    reg->by_id[a] = reg->by_fp[b] = (uint32_t)i + 1;
    if (n->agency[0]) { /* the agency's nodes in order: the first in the table, the others chained */
        size_t c = slot_of(reg, reg->by_agency, n->agency, F_AGENCY);
        if (!reg->by_agency[c])
            reg->by_agency[c] = (uint32_t)i + 1;
        else {
            uint32_t j = reg->by_agency[c];
            while (reg->next_of_agency[j - 1])
                j = reg->next_of_agency[j - 1];
            reg->next_of_agency[j - 1] = (uint32_t)i + 1;
        }
    }
    return 1;
}

/* "2026-12-07T12:00:00Z" or with fractional seconds: ms since the epoch; -1 when not such a time. */
static int64_t parse_time(const char *s)
{
    struct tm tm = {0};
    int ms = 0, used = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec, &used) != 6 || used != 19)
        return -1;
    const char *p = s + used;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        for (; digits > 0 && digits < 3; digits++)
            ms *= 10;
        if (!digits)
            return -1;
    }
    if (strcmp(p, "Z") != 0 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t < 0 ? -1 : (int64_t)t * 1000 + ms;
}

/* The document as a registry; `is_signed`: it must carry serial and issued_at. */
static rk_rc parse_doc(const char *text, size_t len, int is_signed, rk_registry **out, char *err, size_t errlen)
{
    json_t *root = NULL;
    rk_registry *reg = NULL;
    rk_rc rc = RK_OK;
    json_error_t jerr;
    if (len > REGISTRY_MAX_BYTES) {
        snprintf(err, errlen, "the registry is over %u bytes", REGISTRY_MAX_BYTES);
        return RK_ERR_TOO_LARGE;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *nodes = root ? json_object_get(root, "nodes") : NULL;
    if (!json_is_array(nodes)) {
        snprintf(err, errlen, "line %d: %s", root ? 0 : jerr.line, root ? "no \"nodes\" array" : jerr.text);
        rc = RK_ERR_INVALID;
        goto done;
    }
    if (json_array_size(nodes) >= UINT32_MAX / 4) {
        snprintf(err, errlen, "too many nodes");
        rc = RK_ERR_TOO_LARGE;
        goto done;
    }
    reg = calloc(1, sizeof *reg);
    if (!reg || !(reg->nodes = calloc(json_array_size(nodes) + 1, sizeof *reg->nodes))) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    if (copy_field(root, "network", reg->network, sizeof reg->network, 0) != RK_OK) {
        snprintf(err, errlen, "bad \"network\"");
        rc = RK_ERR_INVALID;
        goto done;
    }
    json_t *serial = json_object_get(root, "serial"), *issued = json_object_get(root, "issued_at");
    if (is_signed) {
        /* 2^53: exact in every JSON reader */
        if (!json_is_integer(serial) || json_integer_value(serial) < 1 ||
            json_integer_value(serial) > ((json_int_t)1 << 53)) {
            snprintf(err, errlen, "bad or missing \"serial\" (1..2^53)");
            rc = RK_ERR_INVALID;
            goto done;
        }
        if (!json_is_string(issued) || (reg->issued_at_ms = parse_time(json_string_value(issued))) < 0) {
            snprintf(err, errlen, "bad or missing \"issued_at\" (RFC 3339 UTC)");
            rc = RK_ERR_INVALID;
            goto done;
        }
        reg->serial = (uint64_t)json_integer_value(serial);
    }
    if (!make_tables(reg, json_array_size(nodes))) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    size_t i;
    json_t *obj;
    json_array_foreach(nodes, i, obj) {
        rk_peer_node *n = &reg->nodes[reg->n_nodes];
        if ((rc = parse_node(reg, obj, n, err, errlen)) != RK_OK)
            goto done;
        if (!table_add(reg, reg->n_nodes)) {
            snprintf(err, errlen, "node %s: duplicate id or fingerprint", n->id);
            rc = RK_ERR_INVALID;
            goto done;
        }
        reg->n_nodes++;
    }
    link_instances(reg);
done:
    json_decref(root);
    if (rc != RK_OK) {
        rk_registry_free(reg);
        return rc;
    }
    *out = reg;
    return RK_OK;
}

rk_rc rk_registry_parse(const char *text, size_t len, rk_registry **out, char *err, size_t errlen)
{
    return parse_doc(text, len, 0, out, err, errlen);
}

rk_rc rk_registry_load(const char *path, rk_registry **out, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    rk_rc rc = rk_read_file(path, REGISTRY_MAX_BYTES, &text, &len);
    if (rc != RK_OK) {
        snprintf(err, errlen, "%s: %s", path, rk_strerror(rc));
        return rc;
    }
    char why[400] = "";
    rc = parse_doc(text, len, 0, out, why, sizeof why);
    free(text);
    if (rc != RK_OK)
        snprintf(err, errlen, "%s: %s", path, why);
    return rc;
}

/* One PEM "X509 CRL" block or more, and nothing else but whitespace. */
static int crl_text_ok(const char *crl, size_t len)
{
    static const char begin[] = "-----BEGIN X509 CRL-----", end[] = "-----END X509 CRL-----";
    if (memchr(crl, '\0', len))
        return 0;
    size_t i = 0;
    int blocks = 0;
    for (;;) {
        while (i < len && (crl[i] == '\n' || crl[i] == '\r' || crl[i] == ' ' || crl[i] == '\t'))
            i++;
        if (i == len)
            return blocks > 0;
        if (len - i < sizeof begin - 1 || memcmp(crl + i, begin, sizeof begin - 1) != 0)
            return 0;
        const char *e = memmem(crl + i, len - i, end, sizeof end - 1);
        if (!e)
            return 0;
        i = (size_t)(e - crl) + sizeof end - 1;
        blocks++;
    }
}

rk_rc rk_registry_open_signed(EVP_PKEY *anchor, const char *env, size_t envlen, const char *crl, size_t crllen,
                              rk_registry **out, char *err, size_t errlen)
{
    char *doc = NULL;
    size_t doclen = 0;
    if (envlen > RK_REGISTRY_MAX_BYTES || (crl && crllen > RK_REGISTRY_CRL_MAX)) {
        snprintf(err, errlen, "the signed registry or its CRL is over its cap");
        return RK_ERR_TOO_LARGE;
    }
    if (crl && !crl_text_ok(crl, crllen)) {
        snprintf(err, errlen, "the CRL beside the registry is not PEM \"X509 CRL\" text");
        return RK_ERR_INVALID;
    }
    rk_rc rc = rk_signed_doc_open(anchor, "registry", env, envlen, REGISTRY_MAX_BYTES, &doc, &doclen, err, errlen);
    if (rc != RK_OK)
        return rc;
    rk_registry *reg = NULL;
    rc = parse_doc(doc, doclen, 1, &reg, err, errlen);
    if (rc == RK_OK)
        SHA256((const unsigned char *)doc, doclen, reg->digest);
    free(doc);
    if (rc != RK_OK)
        return rc;
    if (!(reg->envelope = malloc(envlen + 1)) || (crl && !(reg->crl_pem = malloc(crllen + 1)))) {
        rk_registry_free(reg);
        return RK_ERR_NOMEM;
    }
    memcpy(reg->envelope, env, envlen);
    reg->envelope[envlen] = '\0';
    reg->envelope_len = envlen;
    if (crl) {
        memcpy(reg->crl_pem, crl, crllen);
        reg->crl_pem[crllen] = '\0';
        reg->crl_len = crllen;
    }
    /* what a node sends to ask whether anything changed (GET /v1/registry?tag=) */
    unsigned char h[EVP_MAX_MD_SIZE];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(md, env, envlen) == 1 &&
             EVP_DigestUpdate(md, "", 1) == 1 && (!crl || EVP_DigestUpdate(md, crl, crllen) == 1) &&
             EVP_DigestFinal_ex(md, h, NULL) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) {
        rk_registry_free(reg);
        return RK_ERR_CRYPTO;
    }
    rk_hex(h, 16, reg->tag);
    *out = reg;
    return RK_OK;
}

rk_rc rk_registry_open_answer(EVP_PKEY *anchor, const char *text, size_t len, rk_registry **out, char *err,
                              size_t errlen)
{
    json_error_t jerr;
    if (len > RK_REGISTRY_MAX_BYTES + 2 * RK_REGISTRY_CRL_MAX + 4096) {
        snprintf(err, errlen, "the registry answer is over its cap");
        return RK_ERR_TOO_LARGE;
    }
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *env = json_object_get(o, "registry"), *crl = json_object_get(o, "crl");
    rk_rc rc = RK_ERR_INVALID;
    if (!json_is_object(o) || !json_is_string(env) || (crl && !json_is_null(crl) && !json_is_string(crl)))
        snprintf(err, errlen, "%s", o ? "not a registry answer (\"registry\", \"crl\")" : "truncated or not JSON");
    else
        rc = rk_registry_open_signed(anchor, json_string_value(env), json_string_length(env),
                                     json_is_string(crl) ? json_string_value(crl) : NULL,
                                     json_is_string(crl) ? json_string_length(crl) : 0, out, err, errlen);
    json_decref(o);
    return rc;
}

void rk_registry_free(rk_registry *reg)
{
    if (!reg)
        return;
    free(reg->nodes);
    free(reg->by_id);
    free(reg->by_fp);
    free(reg->by_agency);
    free(reg->next_of_agency);
    free(reg->envelope);
    free(reg->crl_pem);
    for (struct rk_registry_strings *c = reg->strings, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(reg);
}

const char *rk_registry_crl(const rk_registry *reg, size_t *len)
{
    if (len)
        *len = reg && reg->crl_pem ? reg->crl_len : 0;
    return reg ? reg->crl_pem : NULL;
}

const rk_peer_node *rk_registry_by_id(const rk_registry *reg, const char *id)
{
    if (!id || !reg->by_id)
        return NULL;
    uint32_t k = reg->by_id[slot_of(reg, reg->by_id, id, F_ID)];
    return k ? &reg->nodes[k - 1] : NULL;
}

const rk_peer_node *rk_registry_by_fingerprint(const rk_registry *reg, const char *fingerprint)
{
    if (!fingerprint || !reg->by_fp)
        return NULL;
    uint32_t k = reg->by_fp[slot_of(reg, reg->by_fp, fingerprint, F_FP)];
    if (k)
        return &reg->nodes[k - 1];
    /* a certificate before a renewal, in its overlap (rare: a scan) */
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < reg->n_nodes; i++)
        if (reg->nodes[i].n_previous && rk_peer_fingerprint_accepted(&reg->nodes[i], fingerprint, now))
            return &reg->nodes[i];
    return NULL;
}

int rk_peer_fingerprint_accepted(const rk_peer_node *node, const char *fingerprint, int64_t now)
{
    if (strcmp(node->fingerprint, fingerprint) == 0)
        return 1;
    for (int i = 0; i < node->n_previous; i++)
        if (strcmp(node->previous[i].fingerprint, fingerprint) == 0 && now < node->previous[i].until)
            return 1;
    return 0;
}

const rk_peer_node *rk_registry_find(const rk_registry *reg, rk_role role, const char *agency)
{
    if (agency && reg->by_agency) { /* an agency's few nodes, in order */
        for (uint32_t k = reg->by_agency[slot_of(reg, reg->by_agency, agency, F_AGENCY)]; k;
             k = reg->next_of_agency[k - 1])
            if (reg->nodes[k - 1].role == role)
                return &reg->nodes[k - 1];
        return NULL;
    }
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        if (n->role == role && (!agency || strcmp(n->agency, agency) == 0))
            return n;
    }
    return NULL;
}

int rk_peer_address_allowed(const rk_peer_node *node, const char *addr)
{
    for (int i = 0; i < node->n_addresses; i++)
        if (strcmp(node->addresses[i], addr) == 0 || strcmp(node->addresses[i], "*") == 0)
            return 1;
    return 0;
}
