/* console.h — the network operator's console, served by the core (issue 14):
 * every node and its health, the incidents (list, filter, the report's
 * cause and prevention), the records (search by exchange id, agency,
 * outcome, time), the registry and the permission table in force.
 *
 * The page (src/core/web, built into the binary: net/assets.h) is served at
 * /console to the network operator's certificate only (role operator, no
 * agency) and acts only through the core's API with that same certificate:
 * GET /v1/network (below), GET and POST /v1/incidents, GET /v1/records,
 * GET /v1/catalog. Nothing comes from outside.
 *
 * GET /v1/network is the registry in force with each node's health as the
 * core last saw it: a service thread calls every server node's /healthz
 * each [core] health_sweep_s seconds (0: never) and keeps the answers in
 * memory, owned by the console and swapped whole under its lock. Each core
 * instance sweeps for itself. */
#ifndef RK_CORE_CONSOLE_H
#define RK_CORE_CONSOLE_H

#include "lib/err.h"
#include "net/assets.h"

extern const rk_asset rk_console_assets[];
extern const size_t rk_console_n_assets;

struct core;
struct rk_request;
struct rk_response;

/* Starts the health sweeper (when [core] health_sweep_s > 0). */
rk_rc core_console_start(struct core *c);
/* Stops it and frees what it saw. Safe when never started. */
void core_console_stop(struct core *c);

/* GET /console, /console/console.js, /console/console.css. */
void core_handle_console_page(void *app, const struct rk_request *req, struct rk_response *resp);
/* GET /v1/network. */
void core_handle_network(void *app, const struct rk_request *req, struct rk_response *resp);

#endif
