#include "net/registry.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/util.h"

#define REGISTRY_MAX_BYTES (16u << 20)

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

static rk_rc parse_node(json_t *obj, rk_peer_node *n, char *err, size_t errlen)
{
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
    else if (copy_field(obj, "url", n->url, sizeof n->url, 0) != RK_OK)
        bad = "url";
    else if (copy_field(obj, "backup_url", n->backup_url, sizeof n->backup_url, 0) != RK_OK)
        bad = "backup_url";
    else if (copy_field(obj, "fingerprint", n->fingerprint, sizeof n->fingerprint, 1) != RK_OK ||
             strlen(n->fingerprint) != 64)
        bad = "fingerprint";
    else if (copy_field(obj, "pin", n->pin, sizeof n->pin, 0) != RK_OK || (n->url[0] && strncmp(n->pin, "sha256//", 8) != 0))
        bad = "pin (required for a node with a url: calls to it are pinned to its key)";
    else if (copy_field(obj, "log_origin", n->log_origin, sizeof n->log_origin, 0) != RK_OK ||
             copy_field(obj, "log_vkey", n->log_vkey, sizeof n->log_vkey, 0) != RK_OK ||
             !n->log_origin[0] != !n->log_vkey[0])
        bad = "log_origin and log_vkey (both or neither, within their caps)";
    else if (copy_field(obj, "vkey", n->vkey, sizeof n->vkey, 0) != RK_OK || (n->role == RK_ROLE_WITNESS) != !!n->vkey[0])
        bad = "vkey (a witness's, and only a witness's)";
    else if (copy_field(obj, "person_url", n->person_url, sizeof n->person_url, 0) != RK_OK ||
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

rk_rc rk_registry_load(const char *path, rk_registry **out, char *err, size_t errlen)
{
    char *text = NULL;
    json_t *root = NULL;
    rk_registry *reg = NULL;
    rk_rc rc = rk_read_file(path, REGISTRY_MAX_BYTES, &text, NULL);
    if (rc != RK_OK) {
        snprintf(err, errlen, "%s: %s", path, rk_strerror(rc));
        goto done;
    }
    json_error_t jerr;
    root = json_loads(text, 0, &jerr);
    json_t *nodes = root ? json_object_get(root, "nodes") : NULL;
    if (!json_is_array(nodes)) {
        snprintf(err, errlen, "%s: line %d: %s", path, root ? 0 : jerr.line, root ? "no \"nodes\" array" : jerr.text);
        rc = RK_ERR_INVALID;
        goto done;
    }
    reg = calloc(1, sizeof *reg);
    if (!reg || !(reg->nodes = calloc(json_array_size(nodes) + 1, sizeof *reg->nodes))) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    copy_field(root, "network", reg->network, sizeof reg->network, 0);
    size_t i;
    json_t *obj;
    json_array_foreach(nodes, i, obj) {
        rk_peer_node *n = &reg->nodes[reg->n_nodes];
        if ((rc = parse_node(obj, n, err, errlen)) != RK_OK)
            goto done;
        if (rk_registry_by_id(reg, n->id) || rk_registry_by_fingerprint(reg, n->fingerprint)) {
            snprintf(err, errlen, "node %s: duplicate id or fingerprint", n->id);
            rc = RK_ERR_INVALID;
            goto done;
        }
        reg->n_nodes++;
    }
    link_instances(reg);
done:
    free(text);
    json_decref(root);
    if (rc != RK_OK) {
        rk_registry_free(reg);
        return rc;
    }
    *out = reg;
    return RK_OK;
}

void rk_registry_free(rk_registry *reg)
{
    if (!reg)
        return;
    free(reg->nodes);
    free(reg);
}

const rk_peer_node *rk_registry_by_id(const rk_registry *reg, const char *id)
{
    for (size_t i = 0; id && i < reg->n_nodes; i++)
        if (strcmp(reg->nodes[i].id, id) == 0)
            return &reg->nodes[i];
    return NULL;
}

const rk_peer_node *rk_registry_by_fingerprint(const rk_registry *reg, const char *fingerprint)
{
    for (size_t i = 0; fingerprint && i < reg->n_nodes; i++)
        if (strcmp(reg->nodes[i].fingerprint, fingerprint) == 0)
            return &reg->nodes[i];
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; fingerprint && i < reg->n_nodes; i++)
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
