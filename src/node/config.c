#include "node/config.h"

#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

typedef struct {
    rk_node_config *cfg;
    char bad[160];
} load_state;

static int set_path(const rk_node_config *cfg, char *out, const char *value)
{
    rk_path_join(out, RK_PATH_MAX, cfg->dir, value);
    return 1;
}

static int set_int(int *out, const char *value, long min, long max)
{
    char *end;
    long v = strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || v < min || v > max)
        return 0;
    *out = (int)v;
    return 1;
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    load_state *st = user;
    rk_node_config *c = st->cfg;
    int ok = 0, iv;
#define IS(s, n) (strcmp(section, s) == 0 && strcmp(name, n) == 0)
    if (IS("node", "id"))
        ok = strlen(value) < sizeof c->id && (strcpy(c->id, value), 1);
    else if (IS("node", "network")) ok = set_path(c, c->network, value);
    else if (IS("node", "cert")) ok = set_path(c, c->cert, value);
    else if (IS("node", "key")) ok = set_path(c, c->key, value);
    else if (IS("node", "key_passphrase_file")) ok = set_path(c, c->key_passphrase_file, value);
    else if (IS("node", "ca")) ok = set_path(c, c->ca, value);
    else if (IS("node", "db")) ok = set_path(c, c->db, value);
    else if (IS("node", "listen"))
        ok = strlen(value) < sizeof c->listen && (strcpy(c->listen, value), 1);
    else if (IS("node", "workers")) ok = set_int(&c->workers, value, 1, 64);
    else if (IS("node", "max_body")) ok = set_int(&iv, value, 256, 64 << 20) && (c->max_body = (size_t)iv, 1);
    else if (IS("node", "log_level")) ok = set_int(&c->log_level, value, 0, 3);
    else if (IS("node", "clock_offset_ms")) ok = set_int(&iv, value, -86400000, 86400000) && (c->clock_offset_ms = iv, 1);
    else if (IS("peer", "timeout_ms")) ok = set_int(&c->peer_timeout_ms, value, 10, 600000);
    else if (IS("core", "master_key_file")) ok = set_path(c, c->master_key_file, value);
    else if (IS("core", "permissions")) ok = set_path(c, c->permissions, value);
    else if (IS("core", "outbox_retry_min_ms")) ok = set_int(&c->outbox_retry_min_ms, value, 1, 3600000);
    else if (IS("core", "outbox_retry_max_ms")) ok = set_int(&c->outbox_retry_max_ms, value, 1, 86400000);
    else if (IS("jlis", "residents")) ok = set_path(c, c->residents, value);
    else if (IS("alerts", "refusal_threshold")) ok = set_int(&c->refusal_threshold, value, 1, 1000000);
    else if (IS("alerts", "refusal_window_ms")) ok = set_int(&c->refusal_window_ms, value, 100, 86400000);
    else if (IS("alerts", "not_permitted_threshold")) ok = set_int(&c->not_permitted_threshold, value, 1, 1000000);
    else if (IS("alerts", "not_permitted_window_ms")) ok = set_int(&c->not_permitted_window_ms, value, 100, 86400000);
    else if (IS("alerts", "rate_window_ms")) ok = set_int(&c->rate_window_ms, value, 100, 86400000);
    else if (IS("alerts", "rate_factor")) ok = set_int(&c->rate_factor, value, 2, 1000);
    else if (IS("alerts", "rate_min")) ok = set_int(&c->rate_min, value, 1, 100000000);
    else if (IS("alerts", "unreachable_ms")) ok = set_int(&c->unreachable_ms, value, 100, 86400000);
    else if (IS("clock", "check_ms")) ok = set_int(&c->clock_check_ms, value, 100, 86400000);
    else if (IS("clock", "max_offset_ms")) ok = set_int(&c->clock_max_offset_ms, value, 1, 86400000);
    else if (IS("gateway", "caller_rate_per_s")) ok = set_int(&c->caller_rate_per_s, value, 1, 10000000);
    else if (IS("records", "head_interval_ms")) ok = set_int(&c->head_interval_ms, value, 50, 10000);
    else if (IS("clock", "max_skew_ms")) ok = set_int(&c->clock_max_skew_ms, value, 1, 86400000);
    else {
        snprintf(st->bad, sizeof st->bad, "unknown key [%s] %s", section, name);
        return 0;
    }
#undef IS
    if (!ok)
        snprintf(st->bad, sizeof st->bad, "bad value for [%s] %s", section, name);
    return ok;
}

rk_rc rk_config_load(const char *path, rk_node_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    rk_dirname(path, cfg->dir, sizeof cfg->dir);
    cfg->workers = 16;
    cfg->max_body = 1 << 20;
    cfg->log_level = 1;
    cfg->peer_timeout_ms = 5000;
    cfg->outbox_retry_min_ms = 200;
    cfg->outbox_retry_max_ms = 30000;
    cfg->refusal_threshold = 10;
    cfg->refusal_window_ms = 60000;
    cfg->not_permitted_threshold = 20;
    cfg->not_permitted_window_ms = 60000;
    cfg->rate_window_ms = 10000;
    cfg->rate_factor = 10;
    cfg->rate_min = 200;
    cfg->unreachable_ms = 60000;
    cfg->clock_check_ms = 30000;
    cfg->clock_max_offset_ms = 1000;
    cfg->clock_max_skew_ms = 30000;
    cfg->head_interval_ms = 2000;
    cfg->caller_rate_per_s = 10000;
    set_path(cfg, cfg->cert, "cert.pem");
    set_path(cfg, cfg->key, "key.pem");
    set_path(cfg, cfg->db, "node.db");

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
