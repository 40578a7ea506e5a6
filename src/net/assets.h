/* net/assets.h — a node's static files (a page, its script and style sheet)
 * built into the binary by cmake/embed_web.cmake: served by the node
 * itself, nothing read at run time, no outside resource. The portal's
 * やりとり履歴 (portal/assets.h) and the core's operator console
 * (core/console.c) each have a table of them. */
#ifndef RK_NET_ASSETS_H
#define RK_NET_ASSETS_H

#include <stddef.h>

typedef struct rk_asset {
    const char *path;         /* the URL path it is served at */
    const char *content_type;
    const unsigned char *data; /* NUL-terminated; len excludes the NUL */
    size_t len;
} rk_asset;

struct rk_request;
struct rk_response;

/* Answers the asset of the table whose path is the request's (200,
 * not cached without revalidation), or 404 not_found. */
void rk_asset_serve(const rk_asset *table, size_t n, const struct rk_request *req, struct rk_response *resp);

#endif
