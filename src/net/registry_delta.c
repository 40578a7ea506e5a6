#include "net/registry_delta.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUT "{\"id\":"
#define CUT_LEN 6

typedef struct chunk {
    size_t off, len;
    uint64_t hash;
} chunk;

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The document cut before each member; *n chunks, malloc'ed. */
static chunk *cut(const char *doc, size_t len, size_t *n)
{
    size_t cap = 64, count = 0, start = 0;
    chunk *c = malloc(cap * sizeof *c);
    for (size_t p = 1; c && p + CUT_LEN <= len; p++) {
        if (doc[p] != '{' || memcmp(doc + p, CUT, CUT_LEN) != 0)
            continue;
        if (count + 1 >= cap) {
            chunk *grown = realloc(c, (cap *= 2) * sizeof *c);
            if (!grown) {
                free(c);
                return NULL;
            }
            c = grown;
        }
        c[count++] = (chunk){start, p - start, fnv1a(doc + start, p - start)};
        start = p;
    }
    if (c)
        c[count++] = (chunk){start, len - start, fnv1a(doc + start, len - start)};
    *n = count;
    return c;
}

static int flush_copy(json_t *ops, size_t *off, size_t *len)
{
    if (!*len)
        return 0;
    int bad = json_array_append_new(ops, json_pack("[I,I]", (json_int_t)*off, (json_int_t)*len));
    *len = 0;
    return bad;
}

static int flush_literal(json_t *ops, const char *to, size_t *start, size_t *end)
{
    if (*end == *start)
        return 0;
    json_t *s = json_stringn(to + *start, *end - *start);
    *start = *end;
    return !s || json_array_append_new(ops, s);
}

rk_rc rk_registry_delta_make(const char *from, size_t from_len, const char *to, size_t to_len, json_t **out)
{
    *out = NULL;
    if (memchr(to, 0, to_len))
        return RK_ERR_INVALID; /* not JSON text: no string of a delta carries it */
    size_t nf = 0, nt = 0;
    chunk *f = cut(from, from_len, &nf), *t = f ? cut(to, to_len, &nt) : NULL;
    size_t slots = 16;
    while (slots < 2 * nf)
        slots *= 2;
    size_t *table = t ? malloc(slots * sizeof *table) : NULL; /* index + 1 into f; 0 empty */
    json_t *ops = table ? json_array() : NULL;
    rk_rc rc = ops ? RK_OK : RK_ERR_NOMEM;
    if (rc == RK_OK) {
        memset(table, 0, slots * sizeof *table);
        for (size_t i = 0; i < nf; i++) {
            size_t s = f[i].hash & (slots - 1);
            while (table[s])
                s = (s + 1) & (slots - 1);
            table[s] = i + 1;
        }
        size_t copy_off = 0, copy_len = 0, lit_start = 0, lit_end = 0;
        int bad = 0;
        for (size_t j = 0; j < nt && !bad; j++) {
            const chunk *found = NULL;
            for (size_t s = t[j].hash & (slots - 1); table[s] && !found; s = (s + 1) & (slots - 1)) {
                const chunk *c = &f[table[s] - 1];
                if (c->hash == t[j].hash && c->len == t[j].len && memcmp(from + c->off, to + t[j].off, c->len) == 0)
                    found = c;
            }
            if (!found) {
                bad |= flush_copy(ops, &copy_off, &copy_len);
                if (lit_end != t[j].off) /* a copy came between: the literal starts here */
                    lit_start = lit_end = t[j].off;
                lit_end = t[j].off + t[j].len;
                continue;
            }
            bad |= flush_literal(ops, to, &lit_start, &lit_end);
            if (copy_len && copy_off + copy_len == found->off) {
                copy_len += found->len;
            } else {
                bad |= flush_copy(ops, &copy_off, &copy_len);
                copy_off = found->off;
                copy_len = found->len;
            }
            lit_start = lit_end = t[j].off + t[j].len;
        }
        bad |= flush_copy(ops, &copy_off, &copy_len);
        bad |= flush_literal(ops, to, &lit_start, &lit_end);
        if (bad) { /* out of memory, or a document that is not UTF-8 */
            json_decref(ops);
            ops = NULL;
            rc = RK_ERR_INVALID;
        }
    }
    free(f);
    free(t);
    free(table);
    *out = ops;
    return rc;
}

rk_rc rk_registry_delta_apply(const char *from, size_t from_len, const json_t *ops, size_t cap, char **out,
                              size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!json_is_array(ops))
        return RK_ERR_INVALID;
    if (json_array_size(ops) > RK_REGISTRY_DELTA_OPS_MAX)
        return RK_ERR_TOO_LARGE;
    size_t need = 0;
    for (size_t i = 0; i < json_array_size(ops); i++) { /* sizes first: one allocation, nothing copied if bad */
        const json_t *op = json_array_get(ops, i);
        size_t n;
        if (json_is_string(op)) {
            n = json_string_length(op);
        } else {
            json_int_t off = json_integer_value(json_array_get(op, 0)), len = json_integer_value(json_array_get(op, 1));
            if (!json_is_array(op) || json_array_size(op) != 2 || !json_is_integer(json_array_get(op, 0)) ||
                !json_is_integer(json_array_get(op, 1)) || off < 0 || len <= 0 || (uint64_t)off > from_len ||
                (uint64_t)len > from_len - (uint64_t)off)
                return RK_ERR_INVALID;
            n = (size_t)len;
        }
        if (n > cap - need)
            return RK_ERR_TOO_LARGE;
        need += n;
    }
    char *buf = malloc(need + 1);
    if (!buf)
        return RK_ERR_NOMEM;
    size_t at = 0;
    for (size_t i = 0; i < json_array_size(ops); i++) {
        const json_t *op = json_array_get(ops, i);
        if (json_is_string(op)) {
            memcpy(buf + at, json_string_value(op), json_string_length(op));
            at += json_string_length(op);
        } else {
            size_t off = (size_t)json_integer_value(json_array_get(op, 0));
            size_t len = (size_t)json_integer_value(json_array_get(op, 1));
            memcpy(buf + at, from + off, len);
            at += len;
        }
    }
    buf[at] = '\0';
    *out = buf;
    *out_len = at;
    return RK_OK;
}

/* ---------- the core's kept deltas ---------- */

typedef struct kept_delta {
    char from[33], to[33];
    char *ops;
    size_t len;
    char key_id[65], sig64[160]; /* of `to`'s envelope (an ECDSA P-256 signature is at most 72 bytes) */
} kept_delta;

struct rk_registry_deltas {
    kept_delta kept[RK_REGISTRY_DELTAS_KEPT]; /* oldest first, each one's `to` the next one's `from` */
    size_t n;
};

rk_registry_deltas *rk_registry_deltas_new(void)
{
    return calloc(1, sizeof(rk_registry_deltas));
}

static void forget(rk_registry_deltas *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->kept[i].ops);
    d->n = 0;
}

void rk_registry_deltas_free(rk_registry_deltas *d)
{
    if (!d)
        return;
    forget(d);
    free(d);
}

void rk_registry_deltas_note(rk_registry_deltas *d, const char *from_tag, const char *to_tag, char *ops_json,
                             size_t to_doc_len, const char *key_id, const char *sig64)
{
    size_t len = ops_json ? strlen(ops_json) : 0;
    if (!d || !ops_json || len > to_doc_len / 2 || strlen(from_tag) > 32 || strlen(to_tag) > 32 || !key_id ||
        strlen(key_id) > 64 || !sig64 || strlen(sig64) >= sizeof d->kept[0].sig64) {
        if (d)
            forget(d); /* no delta to the new one: no chain reaches it */
        free(ops_json);
        return;
    }
    if (d->n && strcmp(d->kept[d->n - 1].to, from_tag) != 0)
        forget(d); /* a gap: the older ones no longer lead to the registry in force */
    if (d->n == RK_REGISTRY_DELTAS_KEPT) {
        free(d->kept[0].ops);
        memmove(&d->kept[0], &d->kept[1], (d->n - 1) * sizeof d->kept[0]);
        d->n--;
    }
    kept_delta *k = &d->kept[d->n++];
    snprintf(k->from, sizeof k->from, "%s", from_tag);
    snprintf(k->to, sizeof k->to, "%s", to_tag);
    k->ops = ops_json;
    k->len = len;
    snprintf(k->key_id, sizeof k->key_id, "%s", key_id);
    snprintf(k->sig64, sizeof k->sig64, "%s", sig64);
}

char *rk_registry_deltas_chain(const rk_registry_deltas *d, const char *from_tag, const char *to_tag, size_t max,
                               size_t *len, const char **key_id, const char **sig64)
{
    if (!d || !d->n || strcmp(d->kept[d->n - 1].to, to_tag) != 0)
        return NULL;
    size_t first = d->n;
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->kept[i].from, from_tag) == 0)
            first = i;
    if (first == d->n)
        return NULL;
    size_t total = 2;
    for (size_t i = first; i < d->n; i++)
        total += d->kept[i].len + 1;
    if (total > max)
        return NULL; /* the registry itself costs less */
    *key_id = d->kept[d->n - 1].key_id;
    *sig64 = d->kept[d->n - 1].sig64;
    char *out = malloc(total + 1), *p = out;
    if (!out)
        return NULL;
    *p++ = '[';
    for (size_t i = first; i < d->n; i++) {
        if (i > first)
            *p++ = ',';
        memcpy(p, d->kept[i].ops, d->kept[i].len);
        p += d->kept[i].len;
    }
    *p++ = ']';
    *p = '\0';
    *len = (size_t)(p - out);
    return out;
}
