/* registry.h — the network registry (network.json, DESIGN §3).
 *
 * Every node and business-system client of the network with its id, role,
 * agency, agency kind, URL(s), certificate fingerprint and public-key pin.
 * A node accepts only peers found here, with the role an endpoint allows and
 * from an address listed for them (standard 第5-2(2), 第5-4(1)). The
 * registry is loaded once and read-only afterwards: threads share it. */
#ifndef RK_REGISTRY_H
#define RK_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"

typedef enum {
    RK_ROLE_NONE = 0,
    RK_ROLE_CORE = 1 << 0,
    RK_ROLE_JLIS = 1 << 1,
    RK_ROLE_GATEWAY = 1 << 2,
    RK_ROLE_AGENCY = 1 << 3,
    RK_ROLE_SYSTEM = 1 << 4,   /* an agency's business system (client only) */
    RK_ROLE_OPERATOR = 1 << 5, /* a privileged operator console (client only) */
    RK_ROLE_WITNESS = 1 << 6,  /* cosigns the core's log (C2SP tlog-witness) */
    RK_ROLE_PORTAL = 1 << 7,   /* shows each person their exchanges (DESIGN §2.5) */
    /* A person signed in with a card (DESIGN §3): never in the registry, only
     * on the portal's person listener (net/http_server.h). */
    RK_ROLE_PERSON = 1 << 8,
    RK_ROLE_PPC = 1 << 9,          /* the PIA register (個人情報保護委員会, 法28条) */
    RK_ROLE_PPC_OPERATOR = 1 << 10, /* its operator (client only): PUT /v1/pia and no other route */
} rk_role;

/* Every role of the registry (a person is none of them), but the PIA
 * register's operator, whose credential opens one route only (net/authz.c). */
#define RK_ROLES_ANY (RK_ROLE_CORE | RK_ROLE_JLIS | RK_ROLE_GATEWAY | RK_ROLE_AGENCY | RK_ROLE_SYSTEM | RK_ROLE_OPERATOR | \
                      RK_ROLE_WITNESS | RK_ROLE_PORTAL | RK_ROLE_PPC)
/* The roles that run as a server node. */
#define RK_ROLES_SERVER (RK_ROLE_CORE | RK_ROLE_JLIS | RK_ROLE_GATEWAY | RK_ROLE_AGENCY | RK_ROLE_WITNESS | RK_ROLE_PORTAL | \
                         RK_ROLE_PPC)

#define RK_ID_MAX 64
#define RK_URL_MAX 256
#define RK_MAX_ADDRESSES 4
#define RK_PREVIOUS_MAX 8

typedef struct rk_peer_node {
    char id[RK_ID_MAX];
    rk_role role;
    char agency[RK_ID_MAX]; /* "" for core and jlis */
    char kind[RK_ID_MAX];   /* agency kind: municipality, prefecture, pension, insurer, … */
    char url[RK_URL_MAX];   /* where it listens; "" for clients */
    char backup_url[RK_URL_MAX];
    char fingerprint[65];   /* SHA-256 of the certificate DER, hex */
    /* Certificates it had before a renewal (`renkei pki renew`), newest last:
     * each still accepted until its time (unix seconds), and kept after it
     * so that what it signed still verifies (network.json's
     * "previous_fingerprints": [{"fingerprint","until"}], until as
     * YYYY-MM-DDTHH:MM:SSZ). */
    struct {
        char fingerprint[65];
        int64_t until;
    } previous[RK_PREVIOUS_MAX];
    int n_previous;
    char pin[64];           /* sha256//base64 of the SPKI, for libcurl */
    char log_origin[128];   /* a node keeping records: its log's C2SP origin ("" when not named) */
    char log_vkey[256];     /* and the C2SP vkey of its log key (records/checkpoint.h) */
    char vkey[256];         /* a witness: the C2SP vkey (type 0x04) of its cosigning key */
    char person_url[RK_URL_MAX]; /* the portal: its listener for persons' cards (DESIGN §3) */
    char addresses[RK_MAX_ADDRESSES][48]; /* source addresses it may call from */
    int n_addresses;
    /* The instances of a core (DESIGN §6: core-1 … core-N, one database):
     * the next one, in a ring in the order of network.json; NULL when the
     * node is alone in its role. */
    const struct rk_peer_node *next_instance;
} rk_peer_node;

typedef struct rk_registry {
    rk_peer_node *nodes;
    size_t n_nodes;
    char network[RK_ID_MAX];
} rk_registry;

/* Loads and validates network.json. On error, err names the node and field. */
rk_rc rk_registry_load(const char *path, rk_registry **out, char *err, size_t errlen);
void rk_registry_free(rk_registry *reg);

const rk_peer_node *rk_registry_by_id(const rk_registry *reg, const char *id);
/* The node whose certificate has this fingerprint: its current one, or a
 * previous one whose overlap has not ended (rk_peer_fingerprint_accepted). */
const rk_peer_node *rk_registry_by_fingerprint(const rk_registry *reg, const char *fingerprint);
/* True when fingerprint is the node's current certificate's, or a previous
 * one's still accepted at now (unix seconds). */
int rk_peer_fingerprint_accepted(const rk_peer_node *node, const char *fingerprint, int64_t now);
/* The node of a role serving an agency (e.g. the gateway of "city-yokohama");
 * agency NULL for core and jlis. Of several instances, the first: the
 * others follow it through next_instance. */
const rk_peer_node *rk_registry_find(const rk_registry *reg, rk_role role, const char *agency);
/* True when addr is one of the node's registered source addresses. */
int rk_peer_address_allowed(const rk_peer_node *node, const char *addr);

const char *rk_role_name(rk_role role);
rk_role rk_role_parse(const char *name);

#endif
