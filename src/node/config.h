/* config.h — a node's configuration file (INI, read with inih).
 *
 *   [node]  id, network (network.json), cert, key, key_passphrase_file, ca, crl,
 *           store (sqlite:PATH or a postgresql:// URI; db = PATH is its synonym),
 *           workers, max_body, log_level, log_format (text|json), listen,
 *           clock_offset_ms (tests only)
 *   [core]  master_key_file, permissions, catalogue, outbox_retry_min_ms, outbox_retry_max_ms, notice_lease_ms,
 *           health_sweep_s
 *           catalog_dir, catalog_refresh_ms (the signed catalogue, core/catalog.h)
 *   [jlis]  residents, cards, card_ca, card_crl
 *   [portal] card_ca, crl_refresh_ms
 *   [alerts] refusal_threshold, refusal_window_ms, not_permitted_threshold,
 *           not_permitted_window_ms, rate_window_ms, rate_factor, rate_min,
 *           unreachable_ms
 *   [clock] check_ms, max_offset_ms, max_skew_ms
 *   [records] head_interval_ms, log_key (the Ed25519 key that signs the log's checkpoints),
 *             retain_days (records older are archived, then pruned: `renkei records archive`)
 *   [witness] key (the Ed25519 key a witness cosigns with)
 *   [pia] refresh (the core: seconds between polls of the PIA register)
 *   [ppc] permissions (the businesses it knows), initial (the register's first states)
 *   [gateway] caller_rate_per_s
 *   [agency] pending_new_after_ms, pending_deadline_ms, pending_grace_ms, held_timeout
 *   [peer]  timeout_ms
 *   [registry] anchor (the operator's registry public key), refresh (s),
 *           published, crl (the core: the signed registry and the CA's CRL it serves)
 * Every key, its bounds and its default are one table in config.c. Relative
 * paths are relative to the file's own folder. Unknown keys are an error, so
 * that a typo never silently leaves a default in force. */
#ifndef RK_CONFIG_H
#define RK_CONFIG_H

#include <stddef.h>
#include "lib/err.h"

#define RK_PATH_MAX 1024

/* Seven years (法23条 records; 令 of the Act), leap days included. */
#define RK_RETAIN_DAYS_DEFAULT 2557

typedef struct rk_node_config {
    char dir[RK_PATH_MAX];             /* folder of the config file */
    char id[64];
    char network[RK_PATH_MAX];
    char cert[RK_PATH_MAX];
    char key[RK_PATH_MAX];
    char key_passphrase_file[RK_PATH_MAX];
    char ca[RK_PATH_MAX];
    char crl[RK_PATH_MAX];              /* the network CA's CRL (net/revocation.h); "" when none */
    char db[RK_PATH_MAX];               /* the store: a SQLite path or a postgresql:// URI */
    int workers;                        /* handler threads */
    size_t max_body;                    /* request body cap, bytes */
    int log_level;                      /* 0 debug … 3 error */
    int log_format;                     /* rk_log_format: 0 text, 1 json (one object a line) */
    long clock_offset_ms;               /* injected clock error, tests */
    char listen[RK_PATH_MAX];           /* URLs to listen on, comma-separated;
                                           default: the registry's url (+ backup_url) */
    int peer_timeout_ms;                /* outbound call timeout */
    /* core */
    char master_key_file[RK_PATH_MAX];
    char permissions[RK_PATH_MAX];
    int outbox_retry_min_ms;
    int outbox_retry_max_ms;
    int health_sweep_s;  /* the operator console's view of every node's /healthz is this old at most; 0: off */
    int notice_lease_ms; /* a claimed notice is another instance's to deliver after this (DESIGN §6) */
    char catalogue[RK_PATH_MAX];        /* the catalogues' folder (kinds, businesses, items): names for persons */
    char catalog_dir[RK_PATH_MAX];      /* the signed catalogue's versions (catalog-<N>.signed); "" = unsigned CSV */
    int catalog_refresh_ms;             /* rescan of catalog_dir (and on SIGHUP) */
    /* registry */
    /* jlis */
    char residents[RK_PATH_MAX];
    char cards[RK_PATH_MAX];            /* card serial → resident code, appended by `renkei card issue` */
    char card_crl[RK_PATH_MAX];         /* the card CRL J-LIS publishes (`renkei card revoke`) */
    /* jlis and portal */
    char card_ca[RK_PATH_MAX];          /* the card CA (DESIGN §3: not the network CA) */
    /* portal */
    int crl_refresh_ms;                 /* the card CRL is fetched from J-LIS this often */
    /* [alerts]: when a node raises an incident by itself (第3-5, 第5-4(3)) */
    int refusal_threshold;              /* refusals from one source … */
    int refusal_window_ms;              /* … within this window */
    int not_permitted_threshold;        /* not_permitted answers to one requester … */
    int not_permitted_window_ms;
    int rate_window_ms;                 /* an agency's request rate per window … */
    int rate_factor;                    /* … beyond factor × its baseline … */
    int rate_min;                       /* … and at least this many requests */
    int unreachable_ms;                 /* a peer unreachable this long: outage */
    /* [clock] (第6-8) */
    int clock_check_ms;                 /* how often the offset to the core is measured */
    int clock_max_offset_ms;            /* beyond it: degraded and a clock incident */
    int clock_max_skew_ms;              /* requests created further off are refused */
    /* [registry] (DESIGN §3) */
    char registry_anchor[RK_PATH_MAX];  /* the operator's registry key (public): the trust anchor */
    int registry_refresh;               /* seconds between fetches of the registry */
    char registry_published[RK_PATH_MAX]; /* the core: the signed registry it serves */
    char registry_crl[RK_PATH_MAX];     /* the core: the CA's CRL served beside it */
    /* [gateway] */
    int caller_rate_per_s;              /* requests a second one caller may send to the core */
    /* [records] */
    int head_interval_ms;               /* a tree head is signed this often while records arrive */
    int retain_days;                    /* 法23条 records are kept this long, then archived (RK_RETAIN_DAYS_DEFAULT) */
    char log_key[RK_PATH_MAX];          /* Ed25519 key of the log's checkpoints (DESIGN §4.1) */
    char witness_key[RK_PATH_MAX];      /* a witness: the Ed25519 key of its cosignatures */
    /* [pia], [ppc] (法28条) */
    int pia_refresh_s;                  /* the core polls the PIA register this often */
    char pia_initial[RK_PATH_MAX];      /* the ppc: agency,business,state,evaluated_on loaded into an empty register */
    /* [agency] */
    int pending_new_after_ms;           /* an enrolment not handed to J-LIS this long: failed */
    int pending_deadline_ms;            /* a forwarded enrolment without a code notice this long: failed */
    int pending_grace_ms;               /* a failed enrolment's pending row kept this long for a late notice */
    int held_timeout_s;                 /* a held provision request not handled this long (s): declined */
} rk_node_config;

/* Loads path into cfg (defaults first). err gets "file:line: reason". */
rk_rc rk_config_load(const char *path, rk_node_config *cfg, char *err, size_t errlen);

#endif
