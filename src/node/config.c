#include "node/config.h"

#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/* One row per key: where it goes in rk_node_config, what it may hold and its
 * default. The only list of the keys there is. */
typedef enum { K_TEXT, K_PATH, K_STORE, K_INT, K_SIZE, K_LONG, K_CHOICE } key_kind;

typedef struct key_def {
    const char *section, *key;
    key_kind kind;
    size_t offset;
    long min, max;      /* numbers: bounds; K_TEXT: max is the field's size */
    long def;           /* numbers: the default */
    const char *def_text; /* K_PATH, K_STORE: the default, relative to the file's folder */
    const char *const *choices; /* K_CHOICE: the words it may hold, NULL-terminated; an int, the word's
                                   index (def: the default's), is stored */
} key_def;

#define AT(field) offsetof(rk_node_config, field)
#define TEXT_CAP(field) ((long)sizeof(((rk_node_config *)0)->field))
#define DAY_MS 86400000L

static const char *const log_formats[] = {"text", "json", NULL}; /* rk_log_format's order */

static const key_def keys[] = {
    {"node", "id", K_TEXT, AT(id), 0, TEXT_CAP(id), 0, NULL},
    {"node", "network", K_PATH, AT(network), 0, 0, 0, NULL},
    {"node", "cert", K_PATH, AT(cert), 0, 0, 0, "cert.pem"},
    {"node", "key", K_PATH, AT(key), 0, 0, 0, "key.pem"},
    {"node", "key_passphrase_file", K_PATH, AT(key_passphrase_file), 0, 0, 0, NULL},
    {"node", "ca", K_PATH, AT(ca), 0, 0, 0, NULL},
    {"node", "crl", K_PATH, AT(crl), 0, 0, 0, NULL},
    /* DESIGN §6: `store = sqlite:PATH` or a postgresql:// URI; `db = PATH` is a synonym of sqlite:PATH */
    {"node", "store", K_STORE, AT(db), 0, 0, 0, "node.db"},
    {"node", "db", K_PATH, AT(db), 0, 0, 0, NULL},
    {"node", "listen", K_TEXT, AT(listen), 0, TEXT_CAP(listen), 0, NULL},
    {"node", "workers", K_INT, AT(workers), 1, 64, 16, NULL},
    {"node", "max_body", K_SIZE, AT(max_body), 256, 64L << 20, 1L << 20, NULL},
    {"node", "log_level", K_INT, AT(log_level), 0, 3, 1, NULL},
    {"node", "log_format", K_CHOICE, AT(log_format), 0, 0, 0, NULL, log_formats},
    {"node", "clock_offset_ms", K_LONG, AT(clock_offset_ms), -DAY_MS, DAY_MS, 0, NULL},
    {"peer", "timeout_ms", K_INT, AT(peer_timeout_ms), 10, 600000, 5000, NULL},
    {"core", "master_key_file", K_PATH, AT(master_key_file), 0, 0, 0, NULL},
    {"core", "permissions", K_PATH, AT(permissions), 0, 0, 0, NULL},
    {"core", "outbox_retry_min_ms", K_INT, AT(outbox_retry_min_ms), 1, 3600000, 200, NULL},
    {"core", "outbox_retry_max_ms", K_INT, AT(outbox_retry_max_ms), 1, DAY_MS, 30000, NULL},
    {"core", "notice_lease_ms", K_INT, AT(notice_lease_ms), 1000, DAY_MS, 60000, NULL},
    {"core", "catalogue", K_PATH, AT(catalogue), 0, 0, 0, NULL},
    {"core", "health_sweep_s", K_INT, AT(health_sweep_s), 0, 86400, 30, NULL},
    {"core", "catalog_dir", K_PATH, AT(catalog_dir), 0, 0, 0, NULL},
    {"core", "catalog_refresh_ms", K_INT, AT(catalog_refresh_ms), 100, DAY_MS, 60000, NULL},
    {"jlis", "residents", K_PATH, AT(residents), 0, 0, 0, NULL},
    {"jlis", "cards", K_PATH, AT(cards), 0, 0, 0, "cards.csv"},
    {"jlis", "card_ca", K_PATH, AT(card_ca), 0, 0, 0, NULL},
    {"jlis", "card_crl", K_PATH, AT(card_crl), 0, 0, 0, NULL},
    {"portal", "card_ca", K_PATH, AT(card_ca), 0, 0, 0, NULL},
    {"portal", "crl_refresh_ms", K_INT, AT(crl_refresh_ms), 1000, DAY_MS, 60000, NULL},
    {"alerts", "refusal_threshold", K_INT, AT(refusal_threshold), 1, 1000000, 10, NULL},
    {"alerts", "refusal_window_ms", K_INT, AT(refusal_window_ms), 100, DAY_MS, 60000, NULL},
    {"alerts", "not_permitted_threshold", K_INT, AT(not_permitted_threshold), 1, 1000000, 20, NULL},
    {"alerts", "not_permitted_window_ms", K_INT, AT(not_permitted_window_ms), 100, DAY_MS, 60000, NULL},
    {"alerts", "rate_window_ms", K_INT, AT(rate_window_ms), 100, DAY_MS, 10000, NULL},
    {"alerts", "rate_factor", K_INT, AT(rate_factor), 2, 1000, 10, NULL},
    {"alerts", "rate_min", K_INT, AT(rate_min), 1, 100000000, 200, NULL},
    {"alerts", "unreachable_ms", K_INT, AT(unreachable_ms), 100, DAY_MS, 60000, NULL},
    {"clock", "check_ms", K_INT, AT(clock_check_ms), 100, DAY_MS, 30000, NULL},
    {"clock", "max_offset_ms", K_INT, AT(clock_max_offset_ms), 1, DAY_MS, 1000, NULL},
    {"clock", "max_skew_ms", K_INT, AT(clock_max_skew_ms), 1, DAY_MS, 30000, NULL},
    {"gateway", "caller_rate_per_s", K_INT, AT(caller_rate_per_s), 1, 10000000, 10000, NULL},
    {"records", "head_interval_ms", K_INT, AT(head_interval_ms), 50, 10000, 2000, NULL},
    {"records", "log_key", K_PATH, AT(log_key), 0, 0, 0, "log_key.pem"},
    {"witness", "key", K_PATH, AT(witness_key), 0, 0, 0, "witness_key.pem"},
    {"pia", "refresh", K_INT, AT(pia_refresh_s), 1, 86400, 30, NULL},
    {"ppc", "permissions", K_PATH, AT(permissions), 0, 0, 0, NULL},
    {"ppc", "initial", K_PATH, AT(pia_initial), 0, 0, 0, NULL},
    {"records", "retain_days", K_INT, AT(retain_days), 1, 36500, 2557, NULL}, /* RK_RETAIN_DAYS_DEFAULT */
    /* DESIGN §3: the signed registry; its trust anchor, how often it is fetched (s); the core: where it is published */
    {"registry", "anchor", K_PATH, AT(registry_anchor), 0, 0, 0, NULL},
    {"registry", "refresh", K_INT, AT(registry_refresh), 1, 86400, 60, NULL},
    {"registry", "published", K_PATH, AT(registry_published), 0, 0, 0, NULL},
    {"registry", "crl", K_PATH, AT(registry_crl), 0, 0, 0, NULL},
    {"agency", "pending_new_after_ms", K_INT, AT(pending_new_after_ms), 100, DAY_MS, 120000, NULL},
    {"agency", "pending_deadline_ms", K_INT, AT(pending_deadline_ms), 100, 7 * DAY_MS, DAY_MS, NULL},
    {"agency", "pending_grace_ms", K_INT, AT(pending_grace_ms), 0, 7 * DAY_MS, DAY_MS, NULL},
    {"agency", "held_timeout", K_INT, AT(held_timeout_s), 1, 366 * 86400, 1209600, NULL}, /* seconds: 14 days */
};

typedef struct {
    rk_node_config *cfg;
    char bad[160];
} load_state;

static int parse_long(const char *value, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || errno || v < min || v > max)
        return 0;
    *out = v;
    return 1;
}

/* Stores value for key k into cfg; 0 when it is not a value k may hold. */
static int set_key(rk_node_config *cfg, const key_def *k, const char *value)
{
    char *field = (char *)cfg + k->offset;
    long v;
    switch (k->kind) {
    case K_TEXT:
        return strlen(value) < (size_t)k->max && (memcpy(field, value, strlen(value) + 1), 1);
    case K_PATH:
        /* a key in a token: its pkcs11: URI is kept as written (crypto/keys.h) */
        if (strncmp(value, "pkcs11:", 7) == 0 && k->offset == AT(key))
            return strlen(value) < RK_PATH_MAX && (memcpy(field, value, strlen(value) + 1), 1);
        return *value && strlen(value) < RK_PATH_MAX && (rk_path_join(field, RK_PATH_MAX, cfg->dir, value), 1);
    case K_STORE:
        /* a libpq URI is kept as written; a SQLite path is resolved like every path */
        if (strncmp(value, "postgresql://", 13) == 0 || strncmp(value, "postgres://", 11) == 0)
            return strlen(value) < RK_PATH_MAX && (memcpy(field, value, strlen(value) + 1), 1);
        if (strncmp(value, "sqlite:", 7) == 0)
            value += 7;
        else if (strchr(value, ':'))
            return 0; /* an engine this renkei does not know */
        return *value && strlen(value) < RK_PATH_MAX && (rk_path_join(field, RK_PATH_MAX, cfg->dir, value), 1);
    case K_INT:
        return parse_long(value, k->min, k->max, &v) && (*(int *)field = (int)v, 1);
    case K_SIZE:
        return parse_long(value, k->min, k->max, &v) && (*(size_t *)field = (size_t)v, 1);
    case K_LONG:
        return parse_long(value, k->min, k->max, &v) && (*(long *)field = v, 1);
    case K_CHOICE:
        for (int i = 0; k->choices[i]; i++)
            if (strcmp(value, k->choices[i]) == 0)
                return *(int *)field = i, 1;
        return 0;
    }
    return 0;
}

static void set_default(rk_node_config *cfg, const key_def *k)
{
    char *field = (char *)cfg + k->offset;
    switch (k->kind) {
    case K_TEXT:
        break;
    case K_PATH:
    case K_STORE:
        if (k->def_text)
            set_key(cfg, k, k->def_text);
        break;
    case K_INT:
    case K_CHOICE:
        *(int *)field = (int)k->def;
        break;
    case K_SIZE:
        *(size_t *)field = (size_t)k->def;
        break;
    case K_LONG:
        *(long *)field = k->def;
        break;
    }
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    load_state *st = user;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(section, keys[i].section) != 0 || strcmp(name, keys[i].key) != 0)
            continue;
        if (set_key(st->cfg, &keys[i], value))
            return 1;
        snprintf(st->bad, sizeof st->bad, "bad value for [%s] %s", section, name);
        return 0;
    }
    snprintf(st->bad, sizeof st->bad, "unknown key [%s] %s", section, name);
    return 0;
}

rk_rc rk_config_load(const char *path, rk_node_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    rk_dirname(path, cfg->dir, sizeof cfg->dir);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        set_default(cfg, &keys[i]);

    load_state st = {.cfg = cfg};
    int line = ini_parse(path, on_entry, &st);
    if (line < 0) {
        snprintf(err, errlen, "%s: cannot read", path);
        return RK_ERR_CONFIG;
    }
    if (line > 0) {
        snprintf(err, errlen, "%s:%d: %s", path, line, st.bad[0] ? st.bad : "syntax error");
        return RK_ERR_CONFIG;
    }
    const char *missing = !cfg->id[0] ? "[node] id" : !cfg->network[0] ? "[node] network"
                        : !cfg->ca[0] ? "[node] ca" : NULL;
    if (missing) {
        snprintf(err, errlen, "%s: missing %s", path, missing);
        return RK_ERR_CONFIG;
    }
    return RK_OK;
}
