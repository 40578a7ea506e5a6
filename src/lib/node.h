/* node.h — what every role needs before it can serve: its configuration,
 * the registry, its own entry in it, its certificate and key, and a client
 * for calling other nodes. Roles (src/core, src/jlis, …) own one rk_node
 * each, open it first and close it last. */
#ifndef RK_NODE_H
#define RK_NODE_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include "config.h"
#include "err.h"
#include "http_client.h"
#include "http_server.h"
#include "registry.h"

typedef struct rk_node {
    rk_node_config cfg;
    rk_registry *registry;
    const rk_peer_node *self;   /* this node's registry entry */
    X509 *cert;
    EVP_PKEY *key;              /* wiped and freed on close (第5-2(5)) */
    char *cert_pem;             /* this node's certificate, PEM */
    X509_STORE *trusted;        /* the network CA, for CMS verification */
    rk_client *client;
} rk_node;

/* Loads config, registry, certificate and key; checks that the certificate
 * is the one registered for this node id and that its role is `role`.
 * On error err holds one line for the operator. */
rk_rc rk_node_open(const char *config_path, rk_role role, rk_node *node, char *err, size_t errlen);
void rk_node_close(rk_node *node);

/* Fills a server config with the node's identity and limits. */
void rk_node_server_config(const rk_node *node, rk_server_config *sc);

/* Listens where the config says, else on the registry's url and backup_url
 * (the core's two lines, 第7-1(7)). */
rk_rc rk_node_listen(const rk_node *node, rk_server *srv);

/* POSTs JSON to path at the peer's url, failing over to its backup_url
 * when the primary cannot be reached or answers 5xx (第7-1(7)). */
rk_rc rk_node_post(rk_node *node, const rk_peer_node *peer, const char *path, const char *body,
                   rk_http_result *out, int *used_backup);

/* Entry point shared by the roles: `renkei <role> --config FILE`. */
typedef rk_rc (*rk_role_main_fn)(rk_node *node);
int rk_role_command(int argc, char **argv, rk_role role, rk_role_main_fn run);

#endif
