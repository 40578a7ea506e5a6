/* permissions.h — the permission table the core checks every request against.
 *
 * 番号法 第19条第8号 allows a 情報照会者 to obtain 特定個人情報 from a 情報提供者
 * through the network only for the combinations the law lists: (requester,
 * business (事務), provider, item). Those combinations were the former 別表第二
 * of the Act; the 令和5年 amendment moved them to a ministerial ordinance
 * (主務省令). renkei keeps them as data: data/permissions.csv, with the
 * catalogues data/kinds.csv, data/businesses.csv and data/items.csv (see
 * data/README.md for the format).
 *
 * A loaded table is immutable: share it between threads freely; to reload,
 * load a new one and swap the pointer. */
#ifndef RK_PERMISSIONS_H
#define RK_PERMISSIONS_H

#include <stddef.h>
#include "lib/err.h"
#include "lib/ids.h"

#define RK_PERM_ID_MAX RK_CATALOGUE_ID_MAX /* ids: catalogue ids (lib/ids.h) */
#define RK_PERM_FILE_MAX (16u * 1024 * 1024) /* cap on each CSV file */

typedef struct rk_permissions rk_permissions;

/* Loads permissions.csv. When catalogue_dir is non-NULL, also loads
 * kinds.csv, businesses.csv and items.csv from it and checks that every row
 * names a known kind, business and item. On a malformed file: RK_ERR_INVALID
 * and err = "FILE:LINE: reason". A file that cannot be read: RK_ERR_NOT_FOUND,
 * RK_ERR_IO or RK_ERR_TOO_LARGE, and err = "FILE: reason". err may be NULL. */
rk_rc rk_permissions_load(const char *permissions_csv, const char *catalogue_dir, rk_permissions **out,
                          char *err, size_t errlen);
void rk_permissions_free(rk_permissions *p);
/* The catalogues alone (kinds.csv, businesses.csv, items.csv of the
 * folder), with no row: what the names are read from. */
rk_rc rk_catalogue_load(const char *catalogue_dir, rk_permissions **out, char *err, size_t errlen);

/* 1 if a row allows (requester_kind, business, provider_kind, item), else 0
 * (also 0 for NULL or malformed arguments). O(log n). */
int rk_permissions_allows(const rk_permissions *p, const char *requester_kind, const char *business,
                          const char *provider_kind, const char *item);

/* The query conditions (lib/condition.h: RK_COND_* bits) the row of
 * (requester_kind, business, provider_kind, item) admits: its column
 * `conditions` ("fiscal_year;as_of", empty for none); 0 when no row. */
unsigned rk_permissions_conditions(const rk_permissions *p, const char *requester_kind, const char *business,
                                   const char *provider_kind, const char *item);

/* Number of rows. */
size_t rk_permissions_count(const rk_permissions *p);

/* Row i (0 <= i < count) in sorted order; any out pointer may be NULL.
 * RK_ERR_NOT_FOUND when i is out of range. */
rk_rc rk_permissions_row(const rk_permissions *p, size_t i, const char **requester_kind, const char **business,
                         const char **provider_kind, const char **item);

/* Japanese names from the catalogues, or NULL (unknown id, or loaded
 * without catalogues). */
const char *rk_permissions_business_name(const rk_permissions *p, const char *business);
const char *rk_permissions_item_name(const rk_permissions *p, const char *item);
const char *rk_permissions_kind_name(const rk_permissions *p, const char *kind);
/* The same in English (the catalogues' name_en), or NULL. */
const char *rk_permissions_business_name_en(const rk_permissions *p, const char *business);
const char *rk_permissions_item_name_en(const rk_permissions *p, const char *item);
const char *rk_permissions_kind_name_en(const rk_permissions *p, const char *kind);

/* 1 if the id is in the catalogue (without catalogues: if a row uses it). */
int rk_permissions_known_business(const rk_permissions *p, const char *business);
int rk_permissions_known_item(const rk_permissions *p, const char *item);
int rk_permissions_known_kind(const rk_permissions *p, const char *kind);

#endif
