/* assets.h — the portal's static files (src/portal/web: the やりとり履歴
 * page, its script and style sheet), built into the binary by
 * cmake/embed_web.cmake: served by the node itself, no outside resource. */
#ifndef RK_PORTAL_ASSETS_H
#define RK_PORTAL_ASSETS_H

#include <stddef.h>

typedef struct rk_asset {
    const char *path;         /* the URL path it is served at */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} rk_asset;

extern const rk_asset rk_portal_assets[];
extern const size_t rk_portal_n_assets;

#endif
