/* registry.h — the network registry (network.json, DESIGN §3).
 *
 * Every node and business-system client of the network with its id, role,
 * agency, agency kind, URL(s), certificate fingerprint and public-key pin.
 * A node accepts only peers found here, with the role an endpoint allows and
 * from an address listed for them (standard 第5-2(2), 第5-4(1)).
 *
 * A registry is a snapshot: once made it never changes, and threads share
 * it. The registry in force is the operator's signed document (DESIGN §3,
 * crypto/signed_doc.h, kind "registry"): network.json's content plus
 * "serial" and "issued_at". A node replaces its snapshot by a newer one
 * while it runs (node/node.c: the refresh service); lookups by id and by
 * certificate fingerprint are O(1) (hash tables made with the snapshot). */
#ifndef RK_REGISTRY_H
#define RK_REGISTRY_H

#include <openssl/evp.h>
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
    /* The longer, often empty, texts point into the snapshot's own strings
     * ("" when absent; never NULL in a registry's node): a network of 20,000
     * members keeps each snapshot small (docs/scale.md). Caps as before. */
    const char *url;        /* where it listens; "" for clients (< RK_URL_MAX) */
    const char *backup_url; /* (< RK_URL_MAX) */
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
    const char *log_origin; /* a node keeping records: its log's C2SP origin ("" when not named; < 128) */
    const char *log_vkey;   /* and the C2SP vkey of its log key (records/checkpoint.h; < 256) */
    const char *vkey;       /* a witness: the C2SP vkey (type 0x04) of its cosigning key (< 256) */
    const char *person_url; /* the portal: its listener for persons' cards (DESIGN §3; < RK_URL_MAX) */
    char addresses[RK_MAX_ADDRESSES][48]; /* source addresses it may call from */
    int n_addresses;
    /* The instances of a core (DESIGN §6: core-1 … core-N, one database):
     * the next one, in a ring in the order of network.json; NULL when the
     * node is alone in its role. */
    const struct rk_peer_node *next_instance;
} rk_peer_node;

/* Caps of what a node accepts from the network: the signed envelope (its
 * document is base64 inside, 4/3 larger) and the CRL beside it. */
#define RK_REGISTRY_MAX_BYTES (24u << 20)
#define RK_REGISTRY_CRL_MAX (4u << 20)

typedef struct rk_registry {
    rk_peer_node *nodes;
    size_t n_nodes;
    char network[RK_ID_MAX];
    uint64_t serial;        /* the signed document's; 0: an unsigned network.json as installed */
    int64_t issued_at_ms;   /* its "issued_at" (RFC 3339 UTC); 0 when unsigned */
    char *envelope;         /* the signed envelope it was opened from, as received (NULL: unsigned) */
    unsigned char digest[32]; /* SHA-256 of the signed document's bytes (the same document, whatever signature) */
    char tag[33];           /* names envelope and CRL together: hex of SHA-256(envelope ‖ 0 ‖ CRL)[:16]; "" unsigned */
    size_t envelope_len;
    char *crl_pem;          /* the CA's CRL published beside it (PEM), NULL when none */
    size_t crl_len;
    /* open-addressing tables: index + 1 of a node, 0 empty; mask + 1 slots */
    uint32_t *by_id, *by_fp, *by_agency;
    uint32_t *next_of_agency; /* index + 1 of the next node of the same agency, 0 last */
    size_t mask;
    struct rk_registry_strings *strings; /* what the nodes' text pointers point into */
} rk_registry;

/* Loads and validates network.json (unsigned, serial 0). On error, err
 * names the node and field. */
rk_rc rk_registry_load(const char *path, rk_registry **out, char *err, size_t errlen);
/* The same from bytes (len bytes; text need not be NUL-terminated). */
rk_rc rk_registry_parse(const char *text, size_t len, rk_registry **out, char *err, size_t errlen);
/* Opens a signed registry: the envelope must verify under anchor (kind
 * "registry"), its document carry a "serial" (1..2^53) and an "issued_at",
 * and be a valid registry. crl (may be NULL) is kept beside it, as text
 * (at most RK_REGISTRY_CRL_MAX bytes, a PEM "X509 CRL" block). The snapshot
 * keeps a copy of both. RK_ERR_CRYPTO: bad signature; RK_ERR_INVALID:
 * malformed or truncated; RK_ERR_TOO_LARGE: over the caps. */
rk_rc rk_registry_open_signed(EVP_PKEY *anchor, const char *env, size_t envlen, const char *crl, size_t crllen,
                              rk_registry **out, char *err, size_t errlen);
/* The answer of GET /v1/registry (and a node's last good one, kept in its
 * folder): {"serial","issued_at","registry":"<envelope>","crl":"<PEM>"|null};
 * only the envelope and the CRL count, opened as rk_registry_open_signed. */
rk_rc rk_registry_open_answer(EVP_PKEY *anchor, const char *text, size_t len, rk_registry **out, char *err,
                              size_t errlen);
void rk_registry_free(rk_registry *reg);

/* The CA's CRL in force (PEM), as published with the registry; NULL when
 * none. For the TLS and CMS checks (a revoked certificate is refused). */
const char *rk_registry_crl(const rk_registry *reg, size_t *len);

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
