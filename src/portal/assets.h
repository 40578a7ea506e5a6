/* assets.h — the portal's static files (src/portal/web: the やりとり履歴
 * page, its script and style sheet), built into the binary by
 * cmake/embed_web.cmake (net/assets.h). */
#ifndef RK_PORTAL_ASSETS_H
#define RK_PORTAL_ASSETS_H

#include "net/assets.h"

extern const rk_asset rk_portal_assets[];
extern const size_t rk_portal_n_assets;

#endif
