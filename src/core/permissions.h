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

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
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

/* ---- the catalogue as one signed document (DESIGN §2.3, issue 15 item 6) ----
 *
 * Businesses, items (each with its データ標準レイアウト version) and rows
 * together are the catalogue: one JSON document with one catalog_version
 * (an integer that only increases) and an effective date (施行日), signed by
 * the operator's registry key (crypto/signed_doc.h, kind "catalog"):
 *
 *   {"format":"renkei-catalog/v1","catalog_version":2,"effective_from":"2026-07-01",
 *    "kinds":[{"kind","name_ja","name_en"}],
 *    "businesses":[{"business","name_ja","name_en","law"}],
 *    "items":[{"item","name_ja","name_en","layout_version"}],
 *    "permissions":[{"requester_kind","business","provider_kind","item","conditions":["fiscal_year","as_of"]}]}
 *
 * A row is keyed by business, item, the item's layout version and the
 * version's effective date: a row's layout_version and valid_from are its
 * item's and its document's (rk_permissions_json writes them out). */
#define RK_CATALOG_KIND "catalog"
#define RK_CATALOG_FORMAT "renkei-catalog/v1"
#define RK_CATALOG_DOC_MAX (16u * 1024 * 1024)
#define RK_CATALOG_VERSION_MAX 999999999999LL
#define RK_CATALOG_EFFECTIVE_MAX 35
#define RK_LAYOUT_VERSION_MAX 16

/* Parses a catalogue document (strict: unknown members, unknown or repeated
 * ids, rows naming what the catalogues lack, are refused): RK_ERR_INVALID
 * with err = "catalog document: reason"; RK_ERR_TOO_LARGE over the cap. */
rk_rc rk_catalog_doc_parse(const char *doc, size_t len, rk_permissions **out, char *err, size_t errlen);
/* The document of tables (loaded with their catalogues, items.csv with
 * layout_version) as catalog_version `version`, effective from
 * `effective_from`; *out malloc'ed. */
rk_rc rk_catalog_doc_build(const rk_permissions *tables, int64_t version, const char *effective_from, char **out,
                           size_t *outlen, char *err, size_t errlen);
/* An effective date: "YYYY-MM-DD" is 00:00 Japan time (施行日 is a date in
 * Japan); or RFC 3339 "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM)". */
rk_rc rk_catalog_effective_parse(const char *s, int64_t *ms);
int rk_layout_version_valid(const char *s);

/* The catalogue's version (0: loaded from CSV files, not signed), its
 * effective time and date as written; an item's layout version or NULL. */
int64_t rk_permissions_version(const rk_permissions *p);
int64_t rk_permissions_effective_ms(const rk_permissions *p);
const char *rk_permissions_effective_from(const rk_permissions *p);
const char *rk_permissions_item_layout(const rk_permissions *p, const char *item);
/* The whole catalogue as JSON (the document's members; each row with its
 * layout_version and valid_from when signed); NULL without memory. */
json_t *rk_permissions_json(const rk_permissions *p);

#endif
