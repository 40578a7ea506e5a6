/* config.h — a node's configuration file (INI, read with inih).
 *
 *   [node]  id, network (network.json), cert, key, key_passphrase_file, ca,
 *           db, workers, max_body, log_level, listen, clock_offset_ms (tests only)
 *   [core]  master_key_file, permissions, outbox_retry_min_ms, outbox_retry_max_ms
 *   [jlis]  residents
 *   [peer]  timeout_ms
 * Relative paths are relative to the file's own folder. Unknown keys are an
 * error, so that a typo never silently leaves a default in force. */
#ifndef RK_CONFIG_H
#define RK_CONFIG_H

#include <stddef.h>
#include "err.h"

#define RK_PATH_MAX 1024

typedef struct rk_node_config {
    char dir[RK_PATH_MAX];             /* folder of the config file */
    char id[64];
    char network[RK_PATH_MAX];
    char cert[RK_PATH_MAX];
    char key[RK_PATH_MAX];
    char key_passphrase_file[RK_PATH_MAX];
    char ca[RK_PATH_MAX];
    char db[RK_PATH_MAX];
    int workers;                        /* handler threads */
    size_t max_body;                    /* request body cap, bytes */
    int log_level;                      /* 0 debug … 3 error */
    long clock_offset_ms;               /* injected clock error, tests */
    char listen[RK_PATH_MAX];           /* URLs to listen on, comma-separated;
                                           default: the registry's url (+ backup_url) */
    int peer_timeout_ms;                /* outbound call timeout */
    /* core */
    char master_key_file[RK_PATH_MAX];
    char permissions[RK_PATH_MAX];
    int outbox_retry_min_ms;
    int outbox_retry_max_ms;
    /* jlis */
    char residents[RK_PATH_MAX];
} rk_node_config;

/* Loads path into cfg (defaults first). err gets "file:line: reason". */
rk_rc rk_config_load(const char *path, rk_node_config *cfg, char *err, size_t errlen);

#endif
