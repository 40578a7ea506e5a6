/* witnessing.c — see witnessing.h. */
#include "records/witnessing.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/cms.h"
#include "lib/log.h"
#include "lib/util.h"
#include "node/node.h"
#include "records/checkpoint.h"
#include "records/tiles.h"

#define MAX_WITNESSES 16

typedef struct witness_peer {
    const rk_peer_node *node;
    rk_vkey vkey;
    uint64_t cosigned; /* the size it last cosigned, as far as this instance knows (0: ask) */
    int refusing;      /* its last answer was a refusal: warn once */
} witness_peer;

struct rk_witnessing {
    rk_node *node;
    rk_db *db;
    rk_witnessing_done_fn done;
    void *arg;
    witness_peer peers[MAX_WITNESSES];
    int n_peers;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    char *offered;       /* the latest checkpoint not yet sent, or NULL */
    uint64_t offered_size;
    int stopping;
};

/* "old N\n", the proof lines, "\n", the checkpoint; malloc'ed. */
static char *request_body(rk_db *db, uint64_t old, uint64_t size, const char *checkpoint)
{
    rk_hash *proof = NULL;
    size_t n = 0;
    if (old > 0 && old < size) {
        rk_tile_reader r;
        rk_tile_reader_init(&r, db, size);
        rk_merkle_source src = rk_tile_reader_source(&r);
        if (rk_merkle_consistency_proof_from(&src, size, old, &proof, &n) != RK_OK)
            return NULL;
    }
    size_t cap = 32 + n * 46 + strlen(checkpoint) + 1, len = 0;
    char *body = malloc(cap);
    if (body)
        len += (size_t)snprintf(body, cap, "old %llu\n", (unsigned long long)old);
    for (size_t i = 0; body && i < n; i++) {
        char *b64 = NULL;
        if (rk_base64_encode(proof[i], sizeof(rk_hash), &b64) != RK_OK) {
            free(body);
            body = NULL;
            break;
        }
        len += (size_t)snprintf(body + len, cap - len, "%s\n", b64);
        free(b64);
    }
    if (body)
        snprintf(body + len, cap - len, "\n%s", checkpoint);
    free(proof);
    return body;
}

/* Sends the checkpoint to one witness; its verified cosignature line is
 * appended to *lines. One retry after a 409 that names the size it cosigned. */
static void submit(rk_witnessing *w, witness_peer *p, const char *checkpoint, uint64_t size, char **lines)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        uint64_t old = p->cosigned <= size ? p->cosigned : 0;
        char *body = request_body(w->db, old, size, checkpoint);
        rk_http_result res = {0};
        rk_rc rc = body ? rk_node_post(w->node, p->node, "/add-checkpoint", body, &res, NULL) : RK_ERR_STORE;
        free(body);
        const char *text = res.body ? res.body : "";
        if (rc == RK_OK && res.status == 409 && res.body && strchr(text, '\n') && text[0] >= '0' && text[0] <= '9') {
            uint64_t theirs = strtoull(text, NULL, 10);
            rk_http_result_clear(&res);
            if (theirs > size) { /* it cosigned more than this log ever signed: a rollback, or a split view */
                rk_node_raise(w->node, "unauthorized_access",
                              "witness %s has cosigned a tree of size %llu of this log, which signed only %llu",
                              p->node->id, (unsigned long long)theirs, (unsigned long long)size);
                return;
            }
            p->cosigned = theirs;
            continue;
        }
        if (rc == RK_OK && res.status == 200) {
            char *cosigned = NULL;
            uint64_t t = 0;
            if (asprintf(&cosigned, "%s%s", checkpoint, text) > 0 &&
                rk_cosignature_check(&p->vkey, cosigned, strlen(cosigned), &t) == RK_OK) {
                /* only the lines of this witness, which verified */
                char *grown = NULL;
                if (asprintf(&grown, "%s%s", *lines ? *lines : "", text) > 0) {
                    free(*lines);
                    *lines = grown;
                }
                p->cosigned = size;
                p->refusing = 0;
            } else {
                rk_warn("witness %s answered a cosignature that does not verify with its vkey", p->node->id);
            }
            free(cosigned);
        } else if (rc == RK_OK && (res.status == 409 || res.status == 422)) {
            rk_node_raise(w->node, "unauthorized_access", "witness %s found checkpoint %llu of this log inconsistent "
                          "with what it cosigned (HTTP %ld)", p->node->id, (unsigned long long)size, res.status);
        } else if (!p->refusing) {
            p->refusing = 1;
            rk_warn("witness %s did not cosign checkpoint %llu (%s, HTTP %ld); trying again with the next",
                    p->node->id, (unsigned long long)size, rk_strerror(rc), res.status);
        }
        rk_http_result_clear(&res);
        return;
    }
}

static rk_rc store_lines_fn(rk_db *db, void *arg)
{
    struct {
        uint64_t size;
        const char *lines;
    } *a = arg;
    rk_stmt *st = rk_db_stmt(db, "UPDATE tree_heads SET cosignatures = ? WHERE size = ?");
    rk_bind_text(st, 1, a->lines);
    rk_bind_int(st, 2, (int64_t)a->size);
    return rk_stmt_exec(st);
}

static void *witnessing_main(void *arg)
{
    rk_witnessing *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        if (!w->offered) {
            pthread_cond_wait(&w->wake, &w->lock);
            continue;
        }
        char *checkpoint = w->offered;
        uint64_t size = w->offered_size;
        w->offered = NULL;
        pthread_mutex_unlock(&w->lock);
        char *lines = NULL;
        for (int i = 0; i < w->n_peers; i++)
            submit(w, &w->peers[i], checkpoint, size, &lines);
        if (lines) {
            struct {
                uint64_t size;
                const char *lines;
            } a = {size, lines};
            if (rk_db_write(w->db, store_lines_fn, &a) != RK_OK)
                rk_warn("records log: the cosignatures of checkpoint %llu could not be stored",
                        (unsigned long long)size);
            w->done(w->arg, size, lines); /* the lines are its */
        }
        free(checkpoint);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

rk_rc rk_witnessing_start(rk_node *node, rk_db *db, rk_witnessing_done_fn done, void *arg, rk_witnessing **out)
{
    *out = NULL;
    const rk_registry *reg = node->registry;
    rk_witnessing *w = calloc(1, sizeof *w);
    if (!w)
        return RK_ERR_NOMEM;
    for (size_t i = 0; i < reg->n_nodes && w->n_peers < MAX_WITNESSES; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        witness_peer *p = &w->peers[w->n_peers];
        if (n->role != RK_ROLE_WITNESS)
            continue;
        if (rk_vkey_parse(n->vkey, &p->vkey) != RK_OK || p->vkey.type != RK_VKEY_COSIGNATURE) {
            rk_warn("network.json: witness %s has no cosignature vkey; it is not asked", n->id);
            continue;
        }
        p->node = n;
        w->n_peers++;
    }
    if (!w->n_peers) {
        free(w);
        return RK_OK;
    }
    w->node = node;
    w->db = db;
    w->done = done;
    w->arg = arg;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, witnessing_main, w) != 0) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
        free(w);
        return RK_ERR_NOMEM;
    }
    *out = w;
    return RK_OK;
}

void rk_witnessing_offer(rk_witnessing *w, const char *checkpoint, uint64_t size)
{
    if (!w || !checkpoint)
        return;
    char *copy = strdup(checkpoint);
    if (!copy)
        return;
    pthread_mutex_lock(&w->lock);
    free(w->offered); /* a newer one replaces one not yet sent */
    w->offered = copy;
    w->offered_size = size;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void rk_witnessing_stop(rk_witnessing *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    free(w->offered);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
}
