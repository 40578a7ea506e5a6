/* registry_delta.h — what changed between two registry documents, so that a
 * refresh after a publication carries the change, not the whole registry
 * (DESIGN §3; a network of 5,000 agencies has a document of about 6 MB).
 *
 * A delta rebuilds the new document's exact bytes from the previous one's:
 * a JSON array of operations, each either [offset, length] (copy those bytes
 * of the previous document) or a string (these bytes, new). The documents
 * are cut before each member (`{"id":`), so a member added, removed or
 * changed costs its own bytes only. Nothing in a delta is trusted: the node
 * rebuilds the document, wraps it with the answer's signature
 * (crypto/signed_doc.h) and opens it under its anchor like a full answer;
 * a delta that rebuilds anything else fails that check.
 *
 * rk_registry_deltas keeps, at the core, the deltas between the last
 * publications it applied, so that a node some serials behind gets their
 * chain (GET /v1/registry?tag=T&delta=1; node/registry_refresh.c). */
#ifndef RK_REGISTRY_DELTA_H
#define RK_REGISTRY_DELTA_H

#include <jansson.h>
#include <stddef.h>
#include "lib/err.h"

#define RK_REGISTRY_DELTAS_KEPT 16   /* publications a node may be behind and still get a delta */
#define RK_REGISTRY_DELTA_OPS_MAX (1u << 20)

/* The operations that make `to` from `from`; *out a new JSON array.
 * RK_ERR_INVALID when `to` is not text a JSON string can carry (a NUL, or
 * not UTF-8). */
rk_rc rk_registry_delta_make(const char *from, size_t from_len, const char *to, size_t to_len, json_t **out);

/* Applies one delta (a JSON array as above) to `from`: *out malloc'ed, NUL-
 * terminated, at most cap bytes. RK_ERR_INVALID: not a delta, or a copy
 * outside `from`; RK_ERR_TOO_LARGE: over cap or RK_REGISTRY_DELTA_OPS_MAX. */
rk_rc rk_registry_delta_apply(const char *from, size_t from_len, const json_t *ops, size_t cap, char **out,
                              size_t *out_len);

/* The core's deltas between consecutive registries it applied, by tag
 * (net/registry.h: a registry's tag names its envelope and CRL). Not
 * thread-safe: the caller holds its own lock. */
typedef struct rk_registry_deltas rk_registry_deltas;
rk_registry_deltas *rk_registry_deltas_new(void);
void rk_registry_deltas_free(rk_registry_deltas *d);
/* Notes the delta from the document of tag `from_tag` to that of `to_tag`
 * (the serialised operations, owned from here on), with the new envelope's
 * key id and signature (base64), which a delta answer carries. A delta as
 * large as half the new document is not worth keeping: the chain breaks. */
void rk_registry_deltas_note(rk_registry_deltas *d, const char *from_tag, const char *to_tag, char *ops_json,
                             size_t to_doc_len, const char *key_id, const char *sig64);
/* The chain from `from_tag` to `to_tag` as the text of a JSON array of
 * deltas (malloc'ed, at most max bytes), and the last one's key id and
 * signature; NULL when the kept deltas do not join them within max. */
char *rk_registry_deltas_chain(const rk_registry_deltas *d, const char *from_tag, const char *to_tag, size_t max,
                               size_t *len, const char **key_id, const char **sig64);

#endif
