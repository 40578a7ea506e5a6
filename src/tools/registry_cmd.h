/* registry_cmd.h — the operator's signed registry from the command line
 * (DESIGN §3, §5): its key, its publication. `renkei net init`, `renkei
 * agency add|remove` and `renkei registry publish` share these. */
#ifndef RK_TOOLS_REGISTRY_CMD_H
#define RK_TOOLS_REGISTRY_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* Where a network keeps them, relative to its folder DIR. */
#define RK_REGISTRY_KEY_FILE "pki/registry-key.pem" /* the operator's registry key, 0600 */
#define RK_REGISTRY_PUB_FILE "pki/registry.pub"     /* its public key: every node's trust anchor */
#define RK_REGISTRY_SIGNED_FILE "registry/registry.signed" /* what the core serves */
#define RK_REGISTRY_CRL_FILE "pki/crl.pem"          /* the CA's CRL, served beside it when present */

/* Makes DIR's registry key (ECDSA P-256, not the CA's): DIR/pki/registry-key.pem
 * (0600) and DIR/pki/registry.pub. Refuses to overwrite one. */
rk_rc rk_registry_key_create(const char *dir, char *err, size_t errlen);

/* Signs DIR/network.json as it is now, with the next serial (one more than
 * the published one's, 1 for the first) and the time, into
 * DIR/registry/registry.signed (written atomically). *serial (may be NULL)
 * gets the serial published. */
rk_rc rk_registry_publish(const char *dir, uint64_t *serial, char *err, size_t errlen);

/* After a command changed nodes' own entries in DIR/network.json (a renewed
 * certificate, a rotated log key): publishes the registry once when the
 * network has a signed one, and drops the registry each of those nodes kept
 * from its last run (DIR/nodes/<id>/registry-last-good.json, which names its
 * old certificate or key), so that it starts on DIR/network.json and then
 * follows the core. *serial (may be NULL) gets the serial published, 0 when
 * none. */
rk_rc rk_registry_changed_nodes(const char *dir, const char *const *node_ids, size_t n, uint64_t *serial, char *err,
                                size_t errlen);

#endif
