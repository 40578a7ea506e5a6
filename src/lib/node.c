#include "node.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cms.h"
#include "log.h"
#include "pki.h"

rk_rc rk_node_open(const char *config_path, rk_role role, rk_node *node, char *err, size_t errlen)
{
    memset(node, 0, sizeof *node);
    rk_rc rc = rk_config_load(config_path, &node->cfg, err, errlen);
    if (rc != RK_OK)
        return rc;
    rk_log_init(node->cfg.id, (rk_log_level)node->cfg.log_level);
    if ((rc = rk_registry_load(node->cfg.network, &node->registry, err, errlen)) != RK_OK)
        return rc;
    node->self = rk_registry_by_id(node->registry, node->cfg.id);
    if (!node->self || node->self->role != role) {
        snprintf(err, errlen, "node %s is not registered in %s as a %s node", node->cfg.id, node->cfg.network,
                 rk_role_name(role));
        return RK_ERR_CONFIG;
    }
    if ((rc = rk_pki_load_cert(node->cfg.cert, &node->cert)) != RK_OK) {
        snprintf(err, errlen, "%s: cannot load certificate: %s", node->cfg.cert, rk_strerror(rc));
        return rc;
    }
    rc = rk_pki_load_key(node->cfg.key, node->cfg.key_passphrase_file, &node->key);
    if (rc != RK_OK) {
        snprintf(err, errlen, "%s: %s", node->cfg.key,
                 rc == RK_ERR_DENIED ? "private key is readable by group or others (chmod 600)"
                                     : "cannot load private key (wrong passphrase?)");
        return rc;
    }
    char fp[RK_FINGERPRINT_LEN];
    if ((rc = rk_pki_fingerprint(node->cert, fp)) != RK_OK || strcmp(fp, node->self->fingerprint) != 0) {
        snprintf(err, errlen, "%s: certificate is not the one registered for %s", node->cfg.cert, node->cfg.id);
        return RK_ERR_CONFIG;
    }
    if (X509_check_private_key(node->cert, node->key) != 1) {
        snprintf(err, errlen, "%s: key does not match the certificate", node->cfg.key);
        return RK_ERR_CONFIG;
    }
    if ((rc = rk_pki_cert_to_pem(node->cert, &node->cert_pem)) != RK_OK ||
        (rc = rk_ca_store_load(node->cfg.ca, &node->trusted)) != RK_OK) {
        snprintf(err, errlen, "%s: cannot load the network CA", node->cfg.ca);
        return rc;
    }
    if ((rc = rk_client_new(node->cert, node->key, node->cfg.ca, &node->client)) != RK_OK)
        snprintf(err, errlen, "cannot create the peer client: %s", rk_strerror(rc));
    return rc;
}

void rk_node_close(rk_node *node)
{
    rk_client_free(node->client);
    EVP_PKEY_free(node->key); /* OpenSSL cleanses private key material on free */
    X509_free(node->cert);
    free(node->cert_pem);
    X509_STORE_free(node->trusted);
    rk_registry_free(node->registry);
    memset(node, 0, sizeof *node);
}

void rk_node_server_config(const rk_node *node, rk_server_config *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->cert = node->cert;
    sc->key = node->key;
    sc->ca_path = node->cfg.ca;
    sc->registry = node->registry;
    sc->agency = node->self->agency;
    sc->workers = node->cfg.workers;
    sc->max_body = node->cfg.max_body;
    sc->clock_offset_ms = node->cfg.clock_offset_ms;
}

rk_rc rk_node_listen(const rk_node *node, rk_server *srv)
{
    rk_rc rc = RK_OK;
    if (!node->cfg.listen[0]) {
        rc = rk_server_listen(srv, node->self->url);
        if (rc == RK_OK && node->self->backup_url[0])
            rc = rk_server_listen(srv, node->self->backup_url);
        return rc;
    }
    char list[RK_PATH_MAX];
    snprintf(list, sizeof list, "%s", node->cfg.listen);
    char *save = NULL;
    for (char *url = strtok_r(list, ", ", &save); url && rc == RK_OK; url = strtok_r(NULL, ", ", &save))
        rc = rk_server_listen(srv, url);
    return rc;
}

static rk_rc post_once(rk_node *node, const rk_peer_node *peer, const char *base, const char *path,
                       const char *body, rk_http_result *out)
{
    char url[RK_URL_MAX + 128];
    snprintf(url, sizeof url, "%s%s", base, path);
    return rk_client_call(node->client, "POST", url, peer->pin, body, strlen(body), node->cfg.peer_timeout_ms, out);
}

rk_rc rk_node_post(rk_node *node, const rk_peer_node *peer, const char *path, const char *body,
                   rk_http_result *out, int *used_backup)
{
    if (used_backup)
        *used_backup = 0;
    rk_rc rc = post_once(node, peer, peer->url, path, body, out);
    if ((rc == RK_OK && out->status < 500) || !peer->backup_url[0])
        return rc;
    rk_warn("%s primary line failed (%s); trying the backup line", peer->id,
            rc == RK_OK ? "5xx answer" : rk_strerror(rc));
    rk_http_result_clear(out);
    if (used_backup)
        *used_backup = 1;
    return post_once(node, peer, peer->backup_url, path, body, out);
}

int rk_role_command(int argc, char **argv, rk_role role, rk_role_main_fn run)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (opt == 'c')
            config = optarg;
        else if (opt == 'h') {
            printf("usage: renkei %s --config FILE\n  Runs the %s node described by FILE until SIGINT/SIGTERM.\n",
                   rk_role_name(role), rk_role_name(role));
            return 0;
        } else
            return 2;
    }
    if (!config) {
        fprintf(stderr, "renkei %s: --config FILE is required\n", rk_role_name(role));
        return 2;
    }
    rk_node node;
    char err[512] = "";
    rk_rc rc = rk_node_open(config, role, &node, err, sizeof err);
    if (rc != RK_OK) {
        fprintf(stderr, "renkei %s: %s\n", rk_role_name(role), err);
        rk_node_close(&node);
        return 1;
    }
    rc = run(&node);
    rk_node_close(&node);
    if (rc != RK_OK) {
        fprintf(stderr, "renkei %s: stopped on error: %s\n", rk_role_name(role), rk_strerror(rc));
        return 1;
    }
    return 0;
}
