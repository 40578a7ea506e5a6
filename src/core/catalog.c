/* catalog.c — the signed catalogue at the core: its versions, the switch at
 * each one's effective time (施行日), and GET /v1/catalog (DESIGN §2.3, §4).
 *
 * Versions are appended, never changed nor dropped while the core runs:
 * the one in force is a pointer (c->perms, under c->perms_lock) swapped at
 * its effective time by the rescanning service, and a reader that found a
 * version may use it without the lock. Refusals (a bad signature, a version
 * not above the newest held, one effective before it, a malformed
 * document) leave the versions held as they were and raise an incident;
 * a refused file is not refused again until it changes. */
#include "core/catalog.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "crypto/signed_doc.h"
#include "lib/log.h"
#include "lib/util.h"
#include "node/service.h"

#define FILE_PREFIX "catalog-"
#define FILE_SUFFIX ".signed"
#define NAME_MAX_LEN 64
/* An envelope is its document in base64 and a little more. */
#define ENVELOPE_MAX ((size_t)RK_CATALOG_DOC_MAX / 3 * 4 + 4096)
#define REFUSED_MAX 64

typedef struct cat_version {
    rk_permissions *perms;
    char *envelope; /* the file's bytes, as signed */
    size_t envlen;
    char name[NAME_MAX_LEN];
    int64_t size, mtime_ns;
} cat_version;

typedef struct refused_file {
    char name[NAME_MAX_LEN];
    int64_t size, mtime_ns;
} refused_file;

struct core_catalog {
    core *c;
    EVP_PKEY *anchor;
    cat_version **v; /* ascending catalog_version; the array under c->perms_lock */
    size_t n, cap;
    const cat_version *in_force; /* under c->perms_lock */
    refused_file refused[REFUSED_MAX];
    size_t nrefused;
    pthread_mutex_t scan_lock; /* one scan at a time (the service, SIGHUP's wake) */
    rk_service *svc;
};

static void version_free(cat_version *v)
{
    if (!v)
        return;
    rk_permissions_free(v->perms);
    free(v->envelope);
    free(v);
}

/* "catalog-<N>.signed": N, else 0. */
static int64_t file_version(const char *name)
{
    size_t n = strlen(name), pre = strlen(FILE_PREFIX), suf = strlen(FILE_SUFFIX);
    if (n >= NAME_MAX_LEN || n <= pre + suf || strncmp(name, FILE_PREFIX, pre) != 0 ||
        strcmp(name + n - suf, FILE_SUFFIX) != 0 || n - pre - suf > 12 || name[pre] == '0')
        return 0;
    int64_t v = 0;
    for (size_t i = pre; i < n - suf; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static const cat_version *newest(const core_catalog *k)
{
    return k->n ? k->v[k->n - 1] : NULL;
}

__attribute__((format(printf, 3, 4))) static void refuse(core_catalog *k, const cat_version *f, const char *fmt, ...)
{
    char why[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    rk_error("catalogue %s refused: %s; the versions held stay", f->name, why);
    rk_node_raise(k->c->node, "unauthorized_access", "catalogue %s refused: %s", f->name, why);
    refused_file *r = &k->refused[k->nrefused < REFUSED_MAX ? k->nrefused++ : (size_t)(f->size % REFUSED_MAX)];
    snprintf(r->name, sizeof r->name, "%s", f->name);
    r->size = f->size;
    r->mtime_ns = f->mtime_ns;
}

/* 1 when the file (name, size, time) is held or was refused as it is. */
static int seen(const core_catalog *k, const char *name, int64_t size, int64_t mtime_ns)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->v[i]->name, name) == 0 && k->v[i]->size == size && k->v[i]->mtime_ns == mtime_ns)
            return 1;
    for (size_t i = 0; i < k->nrefused; i++)
        if (strcmp(k->refused[i].name, name) == 0 && k->refused[i].size == size && k->refused[i].mtime_ns == mtime_ns)
            return 1;
    return 0;
}

/* Reads, opens under the anchor and parses one file; NULL when refused. */
static cat_version *read_version(core_catalog *k, const char *dir, cat_version *f)
{
    char path[RK_PATH_MAX + NAME_MAX_LEN + 2], err[512] = "";
    char *doc = NULL;
    size_t doclen = 0;
    snprintf(path, sizeof path, "%s/%s", dir, f->name);
    rk_rc rc = rk_read_file(path, ENVELOPE_MAX, &f->envelope, &f->envlen);
    if (rc != RK_OK) {
        refuse(k, f, "cannot read: %s", rk_strerror(rc));
        return NULL;
    }
    rc = rk_signed_doc_open(k->anchor, RK_CATALOG_KIND, f->envelope, f->envlen, RK_CATALOG_DOC_MAX, &doc, &doclen, err,
                            sizeof err);
    if (rc != RK_OK) {
        refuse(k, f, "%s", rc == RK_ERR_CRYPTO ? "the signature does not verify under the registry anchor" : err);
        return NULL;
    }
    rc = rk_catalog_doc_parse(doc, doclen, &f->perms, err, sizeof err);
    free(doc);
    if (rc != RK_OK) {
        refuse(k, f, "%s", err);
        return NULL;
    }
    if (rk_permissions_version(f->perms) != file_version(f->name)) {
        refuse(k, f, "the file name says version %lld, the document %lld", (long long)file_version(f->name),
               (long long)rk_permissions_version(f->perms));
        return NULL;
    }
    cat_version *v = malloc(sizeof *v);
    if (v) {
        *v = *f;
        memset(f, 0, sizeof *f);
    }
    return v;
}

static int by_version(const void *a, const void *b)
{
    int64_t x = rk_permissions_version((*(cat_version *const *)a)->perms);
    int64_t y = rk_permissions_version((*(cat_version *const *)b)->perms);
    return (x > y) - (x < y);
}

/* Appends a version (its number above the newest's, its date not before). */
static void hold(core_catalog *k, cat_version *v)
{
    const cat_version *last = newest(k);
    int64_t ver = rk_permissions_version(v->perms);
    if (last && ver <= rk_permissions_version(last->perms)) {
        refuse(k, v, "catalog_version %lld is not above %lld, the newest held (an older or repeated version)",
               (long long)ver, (long long)rk_permissions_version(last->perms));
        version_free(v);
        return;
    }
    if (last && rk_permissions_effective_ms(v->perms) < rk_permissions_effective_ms(last->perms)) {
        refuse(k, v, "effective_from %s is before %s, the effective date of version %lld",
               rk_permissions_effective_from(v->perms), rk_permissions_effective_from(last->perms),
               (long long)rk_permissions_version(last->perms));
        version_free(v);
        return;
    }
    pthread_rwlock_wrlock(&k->c->perms_lock);
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 8;
        cat_version **a = realloc(k->v, cap * sizeof *a);
        if (!a) {
            pthread_rwlock_unlock(&k->c->perms_lock);
            rk_error("catalogue %s: out of memory", v->name);
            version_free(v);
            return;
        }
        k->v = a;
        k->cap = cap;
    }
    k->v[k->n++] = v;
    pthread_rwlock_unlock(&k->c->perms_lock);
    rk_info("catalogue version %lld held: %zu rows, effective from %s", (long long)ver,
            rk_permissions_count(v->perms), rk_permissions_effective_from(v->perms));
}

/* Takes in the folder's new files, in the order of their versions. */
static void scan(core_catalog *k)
{
    const char *dir = k->c->node->cfg.catalog_dir;
    DIR *d = opendir(dir);
    if (!d) {
        rk_error("%s: cannot read the catalogue folder: %s", dir, strerror(errno));
        return;
    }
    cat_version **cand = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!file_version(e->d_name) || strlen(e->d_name) >= NAME_MAX_LEN)
            continue;
        char path[RK_PATH_MAX + NAME_MAX_LEN + 2];
        struct stat st;
        if (strlen(dir) >= RK_PATH_MAX)
            break;
        cat_version f = {0};
        memcpy(f.name, e->d_name, strlen(e->d_name) + 1); /* it fits: checked above */
        snprintf(path, sizeof path, "%s/%s", dir, f.name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        f.size = (int64_t)st.st_size;
        f.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        if (seen(k, f.name, f.size, f.mtime_ns))
            continue;
        cat_version *v = read_version(k, dir, &f);
        free(f.envelope);
        rk_permissions_free(f.perms);
        if (!v)
            continue;
        if (n == cap) {
            size_t c2 = cap ? cap * 2 : 8;
            cat_version **a = realloc(cand, c2 * sizeof *a);
            if (!a) {
                version_free(v);
                break;
            }
            cand = a;
            cap = c2;
        }
        cand[n++] = v;
    }
    closedir(d);
    if (n > 1)
        qsort(cand, n, sizeof *cand, by_version);
    for (size_t i = 0; i < n; i++)
        hold(k, cand[i]);
    free(cand);
}

/* Puts in force the newest version already effective; the time of the
 * next one to come (0: none). */
static int64_t apply(core_catalog *k, int64_t now)
{
    const cat_version *due = NULL;
    int64_t next = 0;
    pthread_rwlock_rdlock(&k->c->perms_lock);
    for (size_t i = 0; i < k->n; i++) {
        int64_t at = rk_permissions_effective_ms(k->v[i]->perms);
        if (at <= now)
            due = k->v[i];
        else if (!next || at < next)
            next = at;
    }
    const cat_version *was = k->in_force;
    pthread_rwlock_unlock(&k->c->perms_lock);
    if (due != was) {
        pthread_rwlock_wrlock(&k->c->perms_lock);
        k->in_force = due;
        k->c->perms = due ? due->perms : NULL;
        k->c->catalogue = k->c->perms; /* the names persons read come with it */
        pthread_rwlock_unlock(&k->c->perms_lock);
        if (due)
            rk_info("catalogue version %lld in force (effective from %s): %zu rows",
                    (long long)rk_permissions_version(due->perms), rk_permissions_effective_from(due->perms),
                    rk_permissions_count(due->perms));
        else
            rk_warn("no catalogue version in force yet: every request is refused");
    }
    return next;
}

static int64_t round_fn(void *arg)
{
    core *c = arg;
    core_catalog *k = c->cat;
    pthread_mutex_lock(&k->scan_lock);
    scan(k);
    int64_t now = rk_node_now_ms(c->node);
    int64_t next = apply(k, now);
    pthread_mutex_unlock(&k->scan_lock);
    int64_t sleep = c->node->cfg.catalog_refresh_ms;
    if (next && next - now < sleep)
        sleep = next - now > 0 ? next - now : 1;
    return sleep;
}

rk_rc core_catalog_open(core *c)
{
    const rk_node_config *cfg = &c->node->cfg;
    if (!cfg->registry_anchor[0]) {
        rk_error("[core] catalog_dir needs [registry] anchor, the registry key's public PEM");
        return RK_ERR_CONFIG;
    }
    core_catalog *k = calloc(1, sizeof *k);
    if (!k)
        return RK_ERR_NOMEM;
    k->c = c;
    pthread_mutex_init(&k->scan_lock, NULL);
    c->cat = k;
    rk_rc rc = rk_signed_doc_load_anchor(cfg->registry_anchor, &k->anchor);
    if (rc != RK_OK) {
        rk_error("%s: cannot read the registry anchor (a PEM public key): %s", cfg->registry_anchor, rk_strerror(rc));
        return RK_ERR_CONFIG;
    }
    pthread_mutex_lock(&k->scan_lock);
    scan(k);
    apply(k, rk_node_now_ms(c->node));
    pthread_mutex_unlock(&k->scan_lock);
    if (!k->n) {
        rk_error("%s: no valid signed catalogue (catalog-<N>.signed; `renkei catalog publish`)", cfg->catalog_dir);
        return RK_ERR_CONFIG;
    }
    return rk_service_start(1, round_fn, c, &k->svc);
}

void core_catalog_wake(core *c)
{
    if (c->cat && c->cat->svc)
        rk_service_wake(c->cat->svc);
}

void core_catalog_stop(core *c)
{
    if (!c->cat)
        return;
    rk_service_stop(c->cat->svc);
    c->cat->svc = NULL;
}

void core_catalog_free(core *c)
{
    core_catalog *k = c->cat;
    if (!k)
        return;
    core_catalog_stop(c);
    c->perms = NULL;
    c->catalogue = NULL;
    for (size_t i = 0; i < k->n; i++)
        version_free(k->v[i]);
    free(k->v);
    EVP_PKEY_free(k->anchor);
    pthread_mutex_destroy(&k->scan_lock);
    free(k);
    c->cat = NULL;
}

int core_catalog_decide(core *c, const char *requester_kind, const char *business, const char *provider_kind,
                        const char *item, unsigned *admits, int64_t *version)
{
    pthread_rwlock_rdlock(&c->perms_lock);
    int ok = c->perms && rk_permissions_allows(c->perms, requester_kind, business, provider_kind, item);
    *admits = ok ? rk_permissions_conditions(c->perms, requester_kind, business, provider_kind, item) : 0;
    *version = rk_permissions_version(c->perms);
    pthread_rwlock_unlock(&c->perms_lock);
    return ok;
}

int64_t core_catalog_in_force(core *c)
{
    pthread_rwlock_rdlock(&c->perms_lock);
    int64_t v = rk_permissions_version(c->perms);
    pthread_rwlock_unlock(&c->perms_lock);
    return v;
}

/* GET /v1/catalog[?version=N]: the version asked for (else the one in
 * force) as {"catalog_version","effective_from","in_force","catalog":{…},
 * "signed":{envelope}}. `catalog` is the document read (each row with its
 * item's layout_version and its valid_from); `signed` is the operator's
 * envelope as published, whose exact bytes a caller checks against the
 * registry key itself: the core's word is not needed. */
void core_handle_catalog(void *app, const rk_request *req, rk_response *resp)
{
    core *c = app;
    core_catalog *k = c->cat;
    char text[24];
    int64_t want = 0;
    int has = rk_query_param(req, "version", text, sizeof text);
    if (has != 0) {
        size_t len = has > 0 ? strlen(text) : 0;
        int ok = len >= 1 && len <= 12 && text[0] != '0';
        for (size_t i = 0; ok && i < len; i++)
            ok = text[i] >= '0' && text[i] <= '9';
        if (!ok) {
            rk_reply_error(resp, 400, "invalid_field", "version must be a catalog_version: an integer from 1");
            return;
        }
        want = strtoll(text, NULL, 10);
    }
    const cat_version *found = NULL;
    int in_force = 0;
    pthread_rwlock_rdlock(&c->perms_lock);
    for (size_t i = 0; k && i < k->n && !found; i++)
        if (want ? rk_permissions_version(k->v[i]->perms) == want : k->v[i] == k->in_force)
            found = k->v[i];
    in_force = found && found == k->in_force;
    pthread_rwlock_unlock(&c->perms_lock);
    if (!found) {
        if (!k)
            rk_reply_error(resp, 404, "unknown_catalog_version",
                           "this core runs an unsigned permission table ([core] permissions): no catalogue version");
        else if (want)
            rk_reply_error(resp, 404, "unknown_catalog_version", "no catalogue version %lld at this core",
                           (long long)want);
        else
            rk_reply_error(resp, 404, "unknown_catalog_version", "no catalogue version is in force yet");
        return;
    }
    /* a held version is immutable and lives as long as the core */
    json_t *signed_env = json_loadb(found->envelope, found->envlen, 0, NULL);
    json_t *doc = rk_permissions_json(found->perms);
    json_t *body = signed_env && doc ? json_pack("{s:I,s:s,s:b,s:o,s:o}", "catalog_version",
                                                 (json_int_t)rk_permissions_version(found->perms), "effective_from",
                                                 rk_permissions_effective_from(found->perms), "in_force", in_force,
                                                 "catalog", doc, "signed", signed_env)
                                     : NULL;
    if (!body) {
        if (!signed_env || !doc) {
            json_decref(signed_env);
            json_decref(doc);
        }
        rk_reply_error(resp, 500, "internal", "the catalogue could not be written out");
        return;
    }
    rk_reply_json(resp, 200, body);
}
