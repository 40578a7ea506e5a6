/* catalog.h — the core's catalogue in force (DESIGN §2.3, §4; issue 15
 * item 6, issue 13 "Permission table").
 *
 * With [core] catalog_dir, the permission table is the signed catalogue:
 * every file catalog-<N>.signed in that folder is an envelope
 * (crypto/signed_doc.h, kind "catalog") checked against the operator's
 * registry key ([registry] anchor), holding one document
 * (core/permissions.h) of catalog_version N. The core loads every valid
 * version at start and on each rescan ([core] catalog_refresh_ms, and
 * SIGHUP); it refuses a bad signature, a version not above the newest it
 * holds, or one effective before it (an incident each, the versions held
 * stay); and at each version's effective time it switches to it without a
 * restart (a pointer swap: versions are immutable and kept for the life of
 * the process, so GET /v1/catalog serves any of them).
 *
 * Without catalog_dir the core loads [core] permissions (CSV, unsigned) as
 * before: version 0, which records do not name. */
#ifndef RK_CORE_CATALOG_H
#define RK_CORE_CATALOG_H

#include <stdint.h>

#include "lib/err.h"

struct core;
struct rk_request;
struct rk_response;

typedef struct core_catalog core_catalog;

/* At start (incidents started): loads the versions of catalog_dir, puts the
 * one in force in c->perms and starts the rescans. RK_ERR_CONFIG when the
 * anchor is missing or no version is valid. */
rk_rc core_catalog_open(struct core *c);
/* SIGHUP: a rescan at once. */
void core_catalog_wake(struct core *c);
/* Stops the rescans (the versions stay until core_catalog_free). */
void core_catalog_stop(struct core *c);
void core_catalog_free(struct core *c);

/* Under one read of the table in force: 1 if a row allows the exchange (its
 * conditions in *admits), else 0; *version the version that decided (0: the
 * unsigned table, or none in force). */
int core_catalog_decide(struct core *c, const char *requester_kind, const char *business, const char *provider_kind,
                        const char *item, unsigned *admits, int64_t *version);

/* The version in force (0: the unsigned table, or none). */
int64_t core_catalog_in_force(struct core *c);

/* GET /v1/catalog[?version=N], any registered caller. */
void core_handle_catalog(void *app, const struct rk_request *req, struct rk_response *resp);

#endif
