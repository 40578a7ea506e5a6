/* catalog_cmd.h — publishing the signed catalogue (DESIGN §2.3), for
 * `renkei catalog` and `renkei net init`. */
#ifndef RK_CATALOG_CMD_H
#define RK_CATALOG_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* The operator's registry key of network DIR: DIR/pki/registry-key.pem
 * (P-256, 0600) and its public half DIR/pki/registry.pub, every node's
 * anchor; made only when absent (an existing key is kept). */
rk_rc rk_catalog_registry_key(const char *dir, char *err, size_t errlen);

/* Signs the catalogue of DIR (DIR/permissions.csv with DIR/catalogue/) as
 * catalog_version `version` (0: one above the newest in DIR/catalog),
 * effective from `effective`, with the key at key_path (NULL:
 * DIR/pki/registry-key.pem), into out_path (NULL: DIR/catalog/catalog-<N>.signed,
 * refused unless N is above every version there). *written (may be NULL)
 * gets the version written. */
rk_rc rk_catalog_publish(const char *dir, const char *effective, int64_t version, const char *key_path,
                         const char *out_path, int64_t *written, char *err, size_t errlen);

/* `renkei catalog` (argv[0] = "catalog"); the process exit code. */
int rk_cmd_catalog(int argc, char **argv);

#endif
