/* registry_refresh.c — the registry in force at a node (DESIGN §3;
 * standard 第5-2(2), 第5-4(1)).
 *
 * Every node fetches the operator's signed registry from the core
 * (`GET /v1/registry`, the one client between nodes with the core's
 * failover) every [registry] refresh seconds and on SIGHUP; the core reads
 * the file `renkei registry publish` wrote ([registry] published, with the
 * CA's CRL from [registry] crl). A document is applied only when its
 * signature verifies under the node's anchor and its serial is newer than
 * the one in force; a bad signature, an older serial, a malformed or
 * truncated document is refused, the last good one stays and an incident is
 * raised (once per refused document). The last good one is kept in the
 * node's folder, so that a restart during an outage of the core starts on
 * it: nothing expires, and /healthz says how old it is and why it is not
 * newer.
 *
 * The swap: a snapshot never changes once made (net/registry.h). The
 * refresh thread makes the new one, then publishes its pointer (node->registry
 * and the server's) with one atomic store. Readers load the pointer once per
 * use. A snapshot is made only when a newer serial (or a new CRL) is published.
 *
 * Reclaiming a replaced snapshot: a grace period. Who may point into one:
 *   - a request or a step of a flow, or a round of a background service,
 *     that loaded node->registry (or the server's) before the swap: for as
 *     long as it runs, which is bounded by the connection deadlines and the
 *     peer timeouts of its calls;
 *   - a connection: it does not — it keeps its peer's certificate
 *     fingerprint (net/tls.c) and each request finds the peer in the
 *     snapshot in force (O(1)), so a removed node is refused at once;
 *   - the entries roles took at start (their core, J-LIS, their gateway,
 *     the witnesses; the server's agency): all in the snapshot the node
 *     opened on, which is kept until the node closes (registry_first);
 *   - node->self: the snapshot it is in is kept while it is; when self moves
 *     on (a swap, a renewed certificate taken), the grace starts again.
 * A replaced snapshot is freed once the grace (an hour, and at least 20
 * [peer] timeouts) has passed since it was replaced — far beyond the longest
 * request — by the refresh thread, outside the lock. Memory: the snapshot
 * in force, the first, self's when it is neither, and those replaced in the
 * last grace period (each without its envelope), whatever the uptime. */
#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto/keys.h"
#include "crypto/pki.h"
#include "crypto/signed_doc.h"
#include "lib/log.h"
#include "lib/util.h"
#include "net/registry_delta.h"
#include "net/revocation.h"
#include "node/node.h"
#include "node/service.h"

#define LAST_GOOD_FILE "registry-last-good.json"
/* how a delta answer begins (the core writes "delta" first) */
#define DELTA_PREFIX "{\"delta\":"
/* The answer of GET /v1/registry: the envelope and the CRL as JSON strings. */
#define BODY_MAX (RK_REGISTRY_MAX_BYTES + RK_REGISTRY_CRL_MAX + (1u << 16))

/* The body the core serves and every node keeps as its last good one:
 * {"serial","issued_at","registry":"<envelope>","crl":"<PEM>"|null}. */
static char *registry_body(const rk_registry *reg, size_t *len)
{
    char issued[40];
    rk_format_time(reg->issued_at_ms, issued, sizeof issued);
    json_t *o = json_pack("{s:I,s:s,s:s,s:s#,s:o}", "serial", (json_int_t)reg->serial, "issued_at", issued, "tag",
                          reg->tag, "registry", reg->envelope, reg->envelope_len, "crl",
                          reg->crl_pem ? json_stringn(reg->crl_pem, reg->crl_len) : json_null());
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text && len)
        *len = strlen(text);
    return text;
}

static void last_good_path(const rk_node *node, char *out, size_t outlen)
{
    rk_path_join(out, outlen, node->cfg.dir, LAST_GOOD_FILE);
}

/* What a file was when last read: unchanged files are not read again. */
static void file_stamp(const char *path, char *out, size_t outlen)
{
    struct stat st;
    if (!path[0] || stat(path, &st) != 0)
        snprintf(out, outlen, "-");
    else
        snprintf(out, outlen, "%llu:%llu:%lld:%lld.%09ld", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                 (long)st.st_mtim.tv_nsec);
}

/* The published file's and the CRL's stamps together. */
static void published_stamp(const rk_node *node, char *out, size_t outlen)
{
    char crl_stamp[96];
    file_stamp(node->cfg.registry_published, out, outlen);
    file_stamp(node->cfg.registry_crl, crl_stamp, sizeof crl_stamp);
    snprintf(out + strlen(out), outlen - strlen(out), "|%s", crl_stamp);
}

rk_rc rk_node_registry_open(rk_node *node, char *err, size_t errlen)
{
    pthread_mutex_init(&node->registry_lock, NULL);
    node->registry_lock_made = 1;
    if (!node->cfg.registry_anchor[0])
        return rk_registry_load(node->cfg.network, &node->registry, err, errlen);
    rk_rc rc = rk_signed_doc_load_anchor(node->cfg.registry_anchor, &node->registry_anchor);
    if (rc != RK_OK) {
        snprintf(err, errlen, "%s: cannot load the registry's trust anchor (a PEM public key): %s",
                 node->cfg.registry_anchor, rk_strerror(rc));
        return rc;
    }
    /* the last good signed registry, if this node kept one: a restart while
     * the core is away starts on it (DESIGN §3); the core starts on the
     * published one when it is newer (one snapshot, not two) */
    char path[RK_PATH_MAX], why[300] = "";
    char *text = NULL;
    size_t len = 0;
    rk_registry *kept = NULL, *published = NULL;
    last_good_path(node, path, sizeof path);
    if (rk_read_file(path, BODY_MAX, &text, &len) == RK_OK) {
        if (rk_registry_open_answer(node->registry_anchor, text, len, &kept, why, sizeof why) != RK_OK)
            rk_warn("%s refused (%s)", path, why);
        free(text);
    }
    char stamp[sizeof node->registry_stamp];
    if (node->cfg.registry_published[0])
        published_stamp(node, stamp, sizeof stamp);
    if (node->cfg.registry_published[0] &&
        rk_read_file(node->cfg.registry_published, RK_REGISTRY_MAX_BYTES, &text, &len) == RK_OK) {
        char *crl = NULL;
        size_t crllen = 0;
        if (node->cfg.registry_crl[0] && rk_read_file(node->cfg.registry_crl, RK_REGISTRY_CRL_MAX, &crl, &crllen) != RK_OK)
            crl = NULL;
        if (rk_registry_open_signed(node->registry_anchor, text, len, crl, crllen, &published, why, sizeof why) != RK_OK)
            rk_warn("%s refused (%s)", node->cfg.registry_published, why);
        free(text);
        free(crl);
    }
    if (published && kept && published->serial < kept->serial) { /* a rollback on disk: the kept one stays */
        rk_warn("%s: serial %llu is older than the kept %llu", node->cfg.registry_published,
                (unsigned long long)published->serial, (unsigned long long)kept->serial);
        rk_registry_free(published);
        published = NULL;
    }
    if (published) {
        rk_registry_free(kept);
        kept = published;
        /* the files as read: the first refresh reads them again only if they changed */
        snprintf(node->registry_stamp, sizeof node->registry_stamp, "%s", stamp);
    }
    malloc_trim(0); /* what reading a large registry took goes back to the system */
    if (kept) {
        rk_debug("registry serial %llu (kept from the last run, or published)", (unsigned long long)kept->serial);
        node->registry = kept;
        return RK_OK;
    }
    return rk_registry_load(node->cfg.network, &node->registry, err, errlen);
}

void rk_node_registry_close(rk_node *node)
{
    free(node->registry_answer);
    node->registry_answer = NULL;
    node->registry_answer_of = NULL;
    if (node->registry_first != node->registry)
        rk_registry_free(node->registry_first);
    node->registry_first = NULL;
    rk_registry_deltas_free(node->registry_deltas);
    node->registry_deltas = NULL;
    rk_registry_free(node->registry);
    node->registry = NULL;
    for (size_t i = 0; i < node->n_retired; i++)
        rk_registry_free(node->retired[i].reg);
    free(node->retired);
    node->retired = NULL;
    node->n_retired = 0;
    EVP_PKEY_free(node->registry_anchor);
    node->registry_anchor = NULL;
    if (node->registry_lock_made)
        pthread_mutex_destroy(&node->registry_lock);
    node->registry_lock_made = 0;
}

/* The last refresh's error: prefix and what ("" and "": none). */
static void set_error(rk_node *node, const char *prefix, const char *what)
{
    pthread_mutex_lock(&node->registry_lock);
    snprintf(node->registry_error, sizeof node->registry_error, "%s%.300s", prefix, what);
    pthread_mutex_unlock(&node->registry_lock);
}

/* A refused document: the last good one stays; an incident the first time
 * this refusal is seen (not at every refresh). */
static void refuse(rk_node *node, const char *why)
{
    pthread_mutex_lock(&node->registry_lock);
    int again = strcmp(node->registry_refused, why) == 0;
    snprintf(node->registry_refused, sizeof node->registry_refused, "%s", why);
    snprintf(node->registry_error, sizeof node->registry_error, "refused: %s", why);
    pthread_mutex_unlock(&node->registry_lock);
    rk_warn("registry refused, the one in force (serial %llu) stays: %s",
            (unsigned long long)node->registry->serial, why);
    if (!again)
        rk_node_raise(node, "unauthorized_access", "registry refused at %s, serial %llu kept: %s", node->cfg.id,
                      (unsigned long long)node->registry->serial, why);
}

#define GRACE_MIN_MS (3600 * 1000)
#define REAP_MAX 64 /* freed per round at most; the rest at the next */

/* How long a replaced snapshot is kept: an hour, and at least 20 [peer]
 * timeouts (a flow makes a few calls, each on at most a few lines). */
static int64_t grace_ms(const rk_node *node)
{
    if (node->registry_grace_ms > 0)
        return node->registry_grace_ms;
    /* Tests only: the system tests free snapshots within seconds */
    const char *test = getenv("RENKEI_TEST_REGISTRY_GRACE_MS");
    if (test && atoi(test) >= 100 && atoi(test) <= 3600000)
        return atoi(test);
    int64_t t = 20 * (int64_t)node->cfg.peer_timeout_ms;
    return t > GRACE_MIN_MS ? t : GRACE_MIN_MS;
}

/* True when p is an entry of reg. */
static int holds(const rk_registry *reg, const rk_peer_node *p)
{
    uintptr_t a = (uintptr_t)reg->nodes, x = (uintptr_t)p;
    return p && x >= a && x < a + reg->n_nodes * sizeof *reg->nodes;
}

/* self leaves the snapshot it was in: readers that loaded it just before
 * have the grace from now. Under registry_lock. */
static void self_leaves(rk_node *node, const rk_peer_node *was, int64_t now)
{
    for (size_t i = 0; i < node->n_retired; i++)
        if (holds(node->retired[i].reg, was))
            node->retired[i].since_ms = now;
}

/* The retired snapshots whose grace is over (but self's), taken off the
 * list into out (at most REAP_MAX). Under registry_lock. */
static size_t reap_take(rk_node *node, int64_t now, rk_registry **out)
{
    size_t kept = 0, n = 0;
    int64_t grace = grace_ms(node);
    for (size_t i = 0; i < node->n_retired; i++) {
        struct rk_retired e = node->retired[i];
        if (n < REAP_MAX && now - e.since_ms >= grace && !holds(e.reg, node->self))
            out[n++] = e.reg;
        else
            node->retired[kept++] = e;
    }
    node->n_retired = kept;
    return n;
}

/* Frees the retired snapshots whose grace is over; the refresh thread. */
static void reap(rk_node *node)
{
    rk_registry *gone[REAP_MAX];
    pthread_mutex_lock(&node->registry_lock);
    size_t n = reap_take(node, rk_mono_ms(), gone);
    pthread_mutex_unlock(&node->registry_lock);
    for (size_t i = 0; i < n; i++)
        rk_registry_free(gone[i]);
    if (n)
        rk_info("registry: %zu replaced snapshot(s) freed, %zu kept within the grace", n, node->n_retired);
}

/* Makes fresh the registry in force: one atomic store each for the node's
 * pointer and the server's; the old snapshot is retired (the first one is
 * kept apart, until close). */
static rk_rc swap_in(rk_node *node, rk_registry *fresh)
{
    pthread_mutex_lock(&node->registry_lock);
    rk_registry *old = node->registry;
    if (!node->registry_first)
        node->registry_first = old;
    int64_t now = rk_mono_ms();
    if (old != node->registry_first) {
        struct rk_retired *r = realloc(node->retired, (node->n_retired + 1) * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&node->registry_lock);
            return RK_ERR_NOMEM;
        }
        node->retired = r;
        node->retired[node->n_retired++] = (struct rk_retired){.reg = old, .since_ms = now};
    }
    /* a replaced snapshot keeps what requests in flight and roles point into
     * (its nodes and their strings), not its envelope: read only under this lock */
    free(old->envelope);
    old->envelope = NULL;
    old->envelope_len = 0;
    free(node->registry_answer); /* the answer of the one before: made again at the next GET */
    node->registry_answer = NULL;
    node->registry_answer_of = NULL;
    const rk_peer_node *self = rk_registry_by_id(fresh, node->cfg.id);
    /* the certificate this node presents (its entry's before any TLS identity was loaded: tests) */
    const char *mine = node->identity ? node->identity->fingerprint : node->self->fingerprint;
    if (self && self->role == node->self->role && strcmp(self->fingerprint, mine) == 0) {
        const rk_peer_node *was = node->self;
        __atomic_store_n(&node->self, self, __ATOMIC_RELEASE);
        self_leaves(node, was, now);
    }
    __atomic_store_n(&node->registry, fresh, __ATOMIC_RELEASE);
    if (node->server)
        rk_server_set_registry(node->server, fresh);
    node->registry_applied_ms = rk_now_ms();
    pthread_mutex_unlock(&node->registry_lock);
    if (!self)
        rk_node_raise(node, "unauthorized_access", "%s is no longer in the registry (serial %llu)", node->cfg.id,
                      (unsigned long long)fresh->serial);
    rk_info("registry serial %llu applied (%zu members; was %llu)", (unsigned long long)fresh->serial,
            fresh->n_nodes, (unsigned long long)old->serial);
    reap(node);
    return RK_OK;
}

static int same_text(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (!alen || memcmp(a, b, alen) == 0);
}

static int apply(rk_node *node, rk_registry *fresh);

/* An envelope's document, opened under the anchor (malloc'ed). */
static char *open_doc(const rk_node *node, const char *env, size_t envlen, size_t *len)
{
    char *doc = NULL;
    if (rk_signed_doc_open(node->registry_anchor, "registry", env, envlen, RK_REGISTRY_MAX_BYTES, &doc, len, NULL,
                           0) != RK_OK)
        return NULL;
    return doc;
}

/* The core, before fresh goes in force: the delta from the registry in
 * force to it is kept for the nodes that ask with the tag they hold
 * (net/registry_delta.h). Kept only when the envelope that a node will
 * wrap around the rebuilt document is the published one byte for byte. */
static void note_delta(rk_node *node, const rk_registry *old, const rk_registry *fresh)
{
    size_t alen = 0, blen = 0;
    char key_id[RK_SIGNED_DOC_KEY_ID_LEN] = "", sig64[RK_SIGNED_DOC_SIG64_MAX] = "", *text = NULL;
    char *b = old->envelope ? open_doc(node, fresh->envelope, fresh->envelope_len, &blen) : NULL;
    char *a = b && rk_signed_doc_wrapped_as("registry", b, blen, fresh->envelope, fresh->envelope_len, key_id,
                                            sig64) == RK_OK
                  ? open_doc(node, old->envelope, old->envelope_len, &alen)
                  : NULL;
    json_t *ops = NULL;
    if (a && rk_registry_delta_make(a, alen, b, blen, &ops) == RK_OK)
        text = json_dumps(ops, JSON_COMPACT);
    json_decref(ops);
    free(a);
    free(b);
    pthread_mutex_lock(&node->registry_lock);
    if (!node->registry_deltas)
        node->registry_deltas = rk_registry_deltas_new();
    rk_registry_deltas_note(node->registry_deltas, old->tag, fresh->tag, text, blen, key_id, sig64);
    pthread_mutex_unlock(&node->registry_lock);
}

/* A delta answer ({"delta":{"from":T,"steps":[…]},…}) made whole and opened
 * under the anchor like a full answer (the rebuilt document wrapped with the
 * answer's signature). NULL when it does not start from the registry in
 * force or does not rebuild a document the anchor signed: the caller then
 * asks for the whole registry. */
static rk_registry *open_delta(rk_node *node, const char *body, size_t len)
{
    const rk_registry *cur = node->registry;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *delta = json_object_get(o, "delta"), *steps = json_object_get(delta, "steps");
    const char *from = json_string_value(json_object_get(delta, "from"));
    const char *key_id = json_string_value(json_object_get(o, "key_id"));
    const char *sig64 = json_string_value(json_object_get(o, "signature"));
    json_t *crl = json_object_get(o, "crl");
    size_t doclen = 0;
    char *doc = NULL;
    if (from && strcmp(from, cur->tag) == 0 && json_is_array(steps) && key_id && sig64 && cur->envelope &&
        json_array_size(steps) <= RK_REGISTRY_DELTAS_KEPT && (!crl || json_is_string(crl) || json_is_null(crl)))
        doc = open_doc(node, cur->envelope, cur->envelope_len, &doclen);
    for (size_t i = 0; doc && i < json_array_size(steps); i++) {
        char *next = NULL;
        size_t nextlen = 0;
        rk_rc rc = rk_registry_delta_apply(doc, doclen, json_array_get(steps, i), RK_REGISTRY_MAX_BYTES, &next,
                                           &nextlen);
        free(doc);
        doc = rc == RK_OK ? next : NULL;
        doclen = nextlen;
    }
    char *env = NULL, why[300];
    size_t envlen = 0;
    rk_registry *fresh = NULL;
    if (doc && rk_signed_doc_wrap("registry", key_id, doc, doclen, sig64, &env, &envlen) == RK_OK &&
        rk_registry_open_signed(node->registry_anchor, env, envlen, json_string_value(crl), json_string_length(crl),
                                &fresh, why, sizeof why) != RK_OK)
        fresh = NULL;
    free(env);
    free(doc);
    json_decref(o);
    return fresh;
}

int rk_node_registry_consider(rk_node *node, const char *text, size_t len)
{
    rk_registry *fresh = NULL;
    char why[300] = "";
    if (rk_registry_open_answer(node->registry_anchor, text, len, &fresh, why, sizeof why) != RK_OK) {
        refuse(node, why);
        return -1;
    }
    return apply(node, fresh);
}

/* An opened registry: in force when newer; else refused or dropped. Takes fresh. */
static int apply(rk_node *node, rk_registry *fresh)
{
    char why[300] = "";
    const rk_registry *cur = node->registry;
    if (fresh->serial < cur->serial) {
        snprintf(why, sizeof why, "serial %llu is older than %llu in force (rollback)",
                 (unsigned long long)fresh->serial, (unsigned long long)cur->serial);
        rk_registry_free(fresh);
        refuse(node, why);
        return -1;
    }
    if (fresh->serial == cur->serial) {
        int same = cur->envelope && memcmp(fresh->digest, cur->digest, sizeof cur->digest) == 0;
        int same_crl = same_text(fresh->crl_pem ? fresh->crl_pem : "", fresh->crl_len, cur->crl_pem ? cur->crl_pem : "",
                                 cur->crl_len);
        if (!same) {
            snprintf(why, sizeof why, "serial %llu names another document than the one in force",
                     (unsigned long long)fresh->serial);
            rk_registry_free(fresh);
            refuse(node, why);
            return -1;
        }
        if (same_crl) { /* nothing new */
            rk_registry_free(fresh);
            set_error(node, "", "");
            return 0;
        }
    }
    if (!rk_registry_by_id(fresh, node->cfg.id) && node->self->role == RK_ROLE_CORE) {
        snprintf(why, sizeof why, "serial %llu does not name this core (%s)", (unsigned long long)fresh->serial,
                 node->cfg.id);
        rk_registry_free(fresh);
        refuse(node, why);
        return -1;
    }
    if (node->self->role == RK_ROLE_CORE)
        note_delta(node, cur, fresh);
    if (swap_in(node, fresh) != RK_OK) {
        rk_registry_free(fresh);
        set_error(node, "out of memory applying the registry", "");
        return -1;
    }
    set_error(node, "", "");
    /* the CA's CRL served beside the registry is the one in force here too
     * (net/revocation.h): a newer number only, signed by the network CA */
    if (fresh->crl_pem && fresh->crl_len) {
        uint64_t before = rk_revocation_number();
        rk_rc crc = rk_revocation_set_pem(fresh->crl_pem, fresh->crl_len);
        if (crc == RK_OK && rk_revocation_number() != before)
            rk_info("crl: number %llu in force (beside registry serial %llu)",
                    (unsigned long long)rk_revocation_number(), (unsigned long long)fresh->serial);
        else if (crc != RK_OK && crc != RK_ERR_CONFLICT)
            rk_warn("the CA's CRL beside registry serial %llu was refused (%s); the CRL in force stays",
                    (unsigned long long)fresh->serial, rk_strerror(crc));
    }
    /* kept for a restart during an outage of the core (DESIGN §3) */
    char path[RK_PATH_MAX];
    size_t blen = 0;
    char *body = registry_body(fresh, &blen);
    last_good_path(node, path, sizeof path);
    if (!body || rk_write_file(path, body, blen, 0644) != RK_OK)
        rk_warn("%s: the registry in force could not be kept", path);
    free(body);
    return 1;
}

/* The core: the published file and the CRL beside it, opened (no answer
 * made around them: a large registry is copied as few times as it can be).
 * 0 when unchanged since the last round (same files, same times) or not
 * readable; -1 refused; 1 applied. */
static int read_published(rk_node *node)
{
    char stamp[sizeof node->registry_stamp];
    published_stamp(node, stamp, sizeof stamp);
    pthread_mutex_lock(&node->registry_lock);
    node->registry_checked_ms = rk_now_ms();
    pthread_mutex_unlock(&node->registry_lock);
    if (strcmp(stamp, node->registry_stamp) == 0)
        return 0;
    snprintf(node->registry_stamp, sizeof node->registry_stamp, "%s", stamp);
    char *env = NULL, *crl = NULL, why[300] = "";
    size_t envlen = 0, crllen = 0;
    rk_rc rc = rk_read_file(node->cfg.registry_published, RK_REGISTRY_MAX_BYTES, &env, &envlen);
    if (rc != RK_OK) {
        char msg[RK_PATH_MAX + 64];
        snprintf(msg, sizeof msg, "%s: %s", node->cfg.registry_published, rk_strerror(rc));
        set_error(node, "published registry unreadable: ", msg);
        node->registry_stamp[0] = '\0'; /* read again next round */
        return 0;
    }
    if (node->cfg.registry_crl[0]) {
        rc = rk_read_file(node->cfg.registry_crl, RK_REGISTRY_CRL_MAX, &crl, &crllen);
        if (rc != RK_OK && rc != RK_ERR_NOT_FOUND) { /* no CRL yet: none is served */
            free(env);
            set_error(node, "CRL unreadable: ", rk_strerror(rc));
            node->registry_stamp[0] = '\0';
            return 0;
        }
    }
    rk_registry *fresh = NULL;
    rc = rk_registry_open_signed(node->registry_anchor, env, envlen, crl, crllen, &fresh, why, sizeof why);
    free(env);
    free(crl);
    if (rc != RK_OK) {
        refuse(node, why);
        return -1;
    }
    return apply(node, fresh);
}

/* {"unchanged":true,"tag":T} for the tag in force: nothing to do. */
static int unchanged(rk_node *node, const char *body, size_t len)
{
    if (len > 4096)
        return 0;
    json_t *o = json_loadb(body, len, 0, NULL);
    int same = json_is_true(json_object_get(o, "unchanged")) &&
               json_is_string(json_object_get(o, "tag")) &&
               strcmp(json_string_value(json_object_get(o, "tag")), node->registry->tag) == 0;
    json_decref(o);
    return same;
}

/* ---- a renewed certificate (DESIGN §3) ----
 * When the registry in force names another certificate for this node than
 * the one its TLS presents (`renkei pki renew` wrote a new key and
 * certificate into its folder and published), the configured files (or the
 * key's pkcs11: URI) are read again here, on the refresh thread: when the
 * certificate is the one the registry names and the key is its own, new
 * connections — the listeners' and the relays' — present them, and CMS and
 * the records log's heads sign with the new key; connections open go on
 * with the old ones. Otherwise the old ones stay, with one line
 * in the log and one incident per refused set of files; they are tried
 * again when the files change, the registry names another one, or on SIGHUP. */

/* Loads the configured certificate and key: RK_OK when they are the registry's (want) and a pair. */
static rk_rc load_identity(rk_node *node, const char *want, X509 **cert, EVP_PKEY **key, char *why, size_t whylen)
{
    char fp[RK_FINGERPRINT_LEN], err[300] = "";
    *cert = NULL;
    *key = NULL;
    rk_rc rc = rk_pki_load_cert(node->cfg.cert, cert);
    if (rc != RK_OK) {
        snprintf(why, whylen, "%.300s: cannot load the certificate: %s", node->cfg.cert, rk_strerror(rc));
        return rc;
    }
    if (rk_pki_fingerprint(*cert, fp) != RK_OK || strcmp(fp, want) != 0) {
        snprintf(why, whylen, "%.300s is not the certificate the registry names (fingerprint %.16s…, registry %.16s…)",
                 node->cfg.cert, fp, want);
        rc = RK_ERR_CONFIG;
    } else if ((rc = rk_pkey_load(node->cfg.key, node->cfg.key_passphrase_file, key, err, sizeof err)) != RK_OK) {
        snprintf(why, whylen, "%s", err[0] ? err : rk_strerror(rc));
    } else if (X509_check_private_key(*cert, *key) != 1) {
        snprintf(why, whylen, "%.300s: the key does not match the certificate", node->cfg.key);
        rc = RK_ERR_CONFIG;
    }
    if (rc != RK_OK) {
        X509_free(*cert);
        EVP_PKEY_free(*key);
        *cert = NULL;
        *key = NULL;
    }
    return rc;
}

/* Presents cert and key on new connections (takes them). Under registry_lock. */
static rk_rc use_identity(rk_node *node, X509 *cert, EVP_PKEY *key, const char *fp)
{
    rk_identity *id = calloc(1, sizeof *id);
    char *pem = NULL;
    rk_rc rc = id ? rk_pki_cert_to_pem(cert, &pem) : RK_ERR_NOMEM;
    if (rc == RK_OK && node->server)
        rc = rk_server_set_identity(node->server, cert, key);
    if (rc != RK_OK) {
        free(pem);
        free(id);
        X509_free(cert);
        EVP_PKEY_free(key);
        return rc;
    }
    rk_node_relays_set_identity(node, cert, key);
    /* CMS signing and decryption and the records log's heads go on with it
     * too (after the overlap the old one is refused, and heads it signed
     * would not verify); the old one stays allocated until close */
    *id = (rk_identity){.cert = cert, .key = key, .cert_pem = pem, .before = node->identity};
    snprintf(id->fingerprint, sizeof id->fingerprint, "%s", fp);
    __atomic_store_n(&node->identity, id, __ATOMIC_RELEASE); /* all of it at once */
    return RK_OK;
}

static void check_identity(rk_node *node)
{
    const rk_registry *reg = node->registry; /* the refresh thread is its one writer */
    const rk_peer_node *want = rk_registry_by_id(reg, node->cfg.id);
    if (!want || want->role != node->self->role || strcmp(want->fingerprint, node->identity->fingerprint) == 0)
        return;
    char tried[sizeof node->identity_tried], cs[96], ks[96] = "";
    file_stamp(node->cfg.cert, cs, sizeof cs);
    if (!rk_pkey_is_uri(node->cfg.key))
        file_stamp(node->cfg.key, ks, sizeof ks);
    snprintf(tried, sizeof tried, "%s|%s|%s", want->fingerprint, cs, ks);
    int again = __atomic_exchange_n(&node->identity_recheck, 0, __ATOMIC_RELAXED);
    if (!again && strcmp(tried, node->identity_tried) == 0)
        return;
    snprintf(node->identity_tried, sizeof node->identity_tried, "%s", tried);
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    char why[600] = "";
    rk_rc rc = load_identity(node, want->fingerprint, &cert, &key, why, sizeof why);
    if (rc == RK_OK) {
        pthread_mutex_lock(&node->registry_lock);
        rc = use_identity(node, cert, key, want->fingerprint);
        if (rc == RK_OK) {
            const rk_peer_node *was = node->self;
            __atomic_store_n(&node->self, want, __ATOMIC_RELEASE);
            self_leaves(node, was, rk_mono_ms());
        }
        pthread_mutex_unlock(&node->registry_lock);
        if (rc != RK_OK)
            snprintf(why, sizeof why, "the TLS contexts could not be made: %s", rk_strerror(rc));
    }
    if (rc == RK_OK) {
        rk_info("certificate renewed: new connections present %.16s… (registry serial %llu), no restart",
                want->fingerprint, (unsigned long long)reg->serial);
        return;
    }
    rk_warn("renewed certificate refused, the old one (%.16s…) stays: %s", node->identity->fingerprint, why);
    rk_node_raise(node, "unauthorized_access", "renewed certificate of %s refused, the old one stays: %s", node->cfg.id,
                  why);
}

static int64_t refresh_round(void *arg)
{
    rk_node *node = arg;
    int64_t next = (int64_t)node->cfg.registry_refresh * 1000;
    char *body = NULL;
    size_t len = 0;
    if (node->self->role == RK_ROLE_CORE) {
        if (node->cfg.registry_published[0] && read_published(node) != 0)
            malloc_trim(0); /* what parsing a large registry took goes back to the system */
        check_identity(node);
        reap(node);
        return next;
    } else {
        const rk_peer_node *core = rk_registry_find(node->registry, RK_ROLE_CORE, NULL);
        rk_http_result res = {0};
        char path[64] = "/v1/registry";
        const rk_registry *cur = node->registry;
        if (cur->envelope) /* only what changed comes back: as a delta when the core has it */
            snprintf(path, sizeof path, "/v1/registry?tag=%s&delta=1", cur->tag);
        rk_rc rc = core ? rk_node_call_capped(node, "GET", core, path, NULL, BODY_MAX, &res, NULL) : RK_ERR_CONFIG;
        if (rc == RK_OK && res.status == 200 && res.body && strncmp(res.body, DELTA_PREFIX, strlen(DELTA_PREFIX)) == 0) {
            rk_registry *fresh = open_delta(node, res.body, res.body_len);
            if (fresh) {
                rk_info("registry: serial %llu from a delta of %zu bytes instead of the registry (%zu)",
                        (unsigned long long)fresh->serial, res.body_len, fresh->envelope_len);
                rk_http_result_clear(&res);
                pthread_mutex_lock(&node->registry_lock);
                node->registry_checked_ms = rk_now_ms();
                pthread_mutex_unlock(&node->registry_lock);
                apply(node, fresh);
                malloc_trim(0);
                return next;
            }
            rk_warn("registry: a delta of %zu bytes could not be applied; asking for the whole registry",
                    res.body_len);
            rk_http_result_clear(&res);
            rc = rk_node_call_capped(node, "GET", core, "/v1/registry", NULL, BODY_MAX, &res, NULL);
        }
        if (rc != RK_OK || res.status != 200) {
            char msg[120];
            if (rc != RK_OK)
                snprintf(msg, sizeof msg, "%s", rk_strerror(rc));
            else
                snprintf(msg, sizeof msg, "HTTP %ld", res.status);
            set_error(node, "the core could not be asked: ", msg);
            rk_http_result_clear(&res);
            check_identity(node); /* SIGHUP with the core away: the files all the same */
            reap(node);
            return next;
        }
        body = res.body;
        len = res.body_len;
        res.body = NULL;
        rk_http_result_clear(&res);
    }
    pthread_mutex_lock(&node->registry_lock);
    node->registry_checked_ms = rk_now_ms();
    pthread_mutex_unlock(&node->registry_lock);
    if (unchanged(node, body, len))
        set_error(node, "", "");
    else {
        rk_node_registry_consider(node, body, len);
        malloc_trim(0); /* what parsing a large registry took goes back to the system */
    }
    free(body);
    check_identity(node);
    reap(node);
    return next;
}

rk_rc rk_node_registry_start(rk_node *node, rk_server *srv)
{
    pthread_mutex_lock(&node->registry_lock);
    node->server = srv;
    pthread_mutex_unlock(&node->registry_lock);
    if (!node->registry_anchor) /* no anchor: network.json as installed, as before signed registries */
        return RK_OK;
    return rk_service_start(1, refresh_round, node, &node->registry_service);
}

void rk_node_registry_stop(rk_node *node)
{
    rk_service_stop(node->registry_service);
    node->registry_service = NULL;
}

void rk_node_registry_wake(rk_node *node)
{
    rk_service_wake(node->registry_service);
}

/* ?tag=<32 hex>[&delta=1] of the query, or NULL; *delta when a delta is
 * welcome. */
static const char *query_tag(const char *query, char out[33], int *delta)
{
    const char *p = query && strncmp(query, "tag=", 4) == 0 ? query + 4 : NULL;
    *delta = 0;
    if (!p || strlen(p) < 32 || (p[32] && strcmp(p + 32, "&delta=1") != 0))
        return NULL;
    for (int i = 0; i < 32; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return NULL;
    memcpy(out, p, 32);
    out[32] = '\0';
    *delta = p[32] != '\0';
    return out;
}

/* The core: the answer to a node that holds the registry of `tag`, as the
 * deltas from it, or NULL when they are not kept (or cost more than the
 * registry). Under registry_lock. */
static char *delta_answer(rk_node *node, const rk_registry *reg, const char *tag, size_t *len)
{
    const char *key_id = NULL, *sig64 = NULL;
    size_t steps_len = 0;
    char *steps = rk_registry_deltas_chain(node->registry_deltas, tag, reg->tag, reg->envelope_len / 2, &steps_len,
                                           &key_id, &sig64);
    json_t *parsed = steps ? json_loadb(steps, steps_len, 0, NULL) : NULL;
    free(steps);
    if (!parsed)
        return NULL;
    char issued[40];
    rk_format_time(reg->issued_at_ms, issued, sizeof issued);
    json_t *o = json_pack("{s:{s:s,s:o},s:I,s:s,s:s,s:s,s:s,s:o}", "delta", "from", tag, "steps", parsed, "serial",
                          (json_int_t)reg->serial, "issued_at", issued, "tag", reg->tag, "key_id", key_id,
                          "signature", sig64, "crl",
                          reg->crl_pem ? json_stringn(reg->crl_pem, reg->crl_len) : json_null());
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (text)
        *len = strlen(text);
    return text;
}

void rk_node_registry_reply(rk_node *node, const rk_request *req, rk_response *resp)
{
    const rk_registry *reg = __atomic_load_n(&node->registry, __ATOMIC_ACQUIRE);
    if (!reg->tag[0]) {
        rk_reply_error(resp, 503, "registry_unavailable", "no signed registry is published yet");
        return;
    }
    char tag[33] = "";
    int delta = 0;
    if (req->query[0] && !query_tag(req->query, tag, &delta)) {
        rk_reply_error(resp, 400, "invalid_field",
                       "the query must be tag=<the 32 hex digits a registry answer gave>, with &delta=1 or not");
        return;
    }
    resp->cache_control = "no-store";
    if (req->query[0] && strcmp(tag, reg->tag) == 0) { /* the caller has it: a few bytes, not the registry */
        rk_reply_json(resp, 200, json_pack("{s:I,s:s,s:b}", "serial", (json_int_t)reg->serial, "tag", reg->tag,
                                           "unchanged", 1));
        return;
    }
    /* the answer is made once per snapshot and copied to each caller */
    pthread_mutex_lock(&node->registry_lock);
    reg = node->registry; /* under the lock: its envelope stays until this unlocks */
    size_t dlen = 0;
    char *d = delta && strcmp(tag, reg->tag) != 0 ? delta_answer(node, reg, tag, &dlen) : NULL;
    if (d) { /* a node some publications behind: what changed since */
        pthread_mutex_unlock(&node->registry_lock);
        resp->status = 200;
        resp->body = d;
        resp->body_len = dlen;
        return;
    }
    if (node->registry_answer_of != reg) {
        free(node->registry_answer);
        node->registry_answer = registry_body(reg, &node->registry_answer_len);
        node->registry_answer_of = node->registry_answer ? reg : NULL;
    }
    char *body = node->registry_answer ? malloc(node->registry_answer_len + 1) : NULL;
    if (body)
        memcpy(body, node->registry_answer, node->registry_answer_len + 1);
    size_t len = node->registry_answer_len;
    pthread_mutex_unlock(&node->registry_lock);
    if (!body) {
        rk_reply_error(resp, 500, "internal", "out of memory");
        return;
    }
    resp->status = 200;
    resp->body = body;
    resp->body_len = len;
}

void rk_node_registry_health(rk_node *node, json_t *checks)
{
    const rk_registry *reg = __atomic_load_n(&node->registry, __ATOMIC_ACQUIRE);
    int64_t now = rk_now_ms();
    pthread_mutex_lock(&node->registry_lock);
    int64_t checked = node->registry_checked_ms;
    json_t *err = node->registry_error[0] ? json_string(node->registry_error) : json_null();
    pthread_mutex_unlock(&node->registry_lock);
    json_object_set_new(checks, "registry_serial", json_integer((json_int_t)reg->serial));
    json_object_set_new(checks, "registry_age_s",
                        reg->issued_at_ms ? json_integer((json_int_t)((now - reg->issued_at_ms) / 1000)) : json_null());
    json_object_set_new(checks, "registry_checked_s_ago",
                        checked ? json_integer((json_int_t)((now - checked) / 1000)) : json_null());
    json_object_set_new(checks, "registry_error", err);
    /* stale: the last refresh could not reach the core (or its published
     * file), or none has yet: the last good one stays in force */
    int stale = node->registry_anchor &&
                (!checked || now - checked > (int64_t)node->cfg.registry_refresh * 1000 + node->cfg.peer_timeout_ms + 1000);
    json_object_set_new(checks, "registry_stale", json_boolean(stale));
}
