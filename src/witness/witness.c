/* witness.c — the `witness` role (DESIGN §1, §4.1): an independent witness
 * of the core's log, speaking C2SP tlog-witness byte for byte, so that any
 * C2SP witness can witness a renkei log and this one any C2SP log.
 *
 * POST /add-checkpoint (caller: the core): "old <size>\n", up to 63 base64
 * consistency-proof lines, an empty line, then a checkpoint (a signed note).
 * The witness knows the logs of network.json (origin and log_vkey); it
 * checks the log's signature, then — in one write, so that no two requests
 * can roll a log back — that `old` is the size it last cosigned and that
 * the proof takes that tree to the new one, records the new checkpoint and
 * answers its cosignature line. Its answers are text, not JSON: 404 an
 * unknown origin, 403 no valid signature of the log, 400 a malformed body
 * or old > size, 409 `text/x.tlog.size` with the size it last cosigned, 409
 * also for the same size with another root, 422 a proof that does not
 * verify. A checkpoint inconsistent with what it cosigned (a fork or a bad
 * proof) is an incident here; the core raises its own on the answer. The
 * witness never fetches anything on its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/cms.h"
#include "crypto/pki.h"
#include "lib/log.h"
#include "lib/util.h"
#include "node/node.h"
#include "records/checkpoint.h"
#include "roles.h"
#include "witness/witness.h"
#include "witness/witness_store.h"

#define MAX_LOGS 4096      /* logs of network.json a witness may know */

typedef struct witness {
    rk_node *node;
    witness_store *store;
    EVP_PKEY *key;            /* Ed25519: cosigns */
    char name[RK_ORIGIN_MAX]; /* its vkey's name */
} witness;

/* A plain-text answer of the protocol. */
static void reply_plain(rk_response *resp, int status, const char *type, const char *text)
{
    rk_reply_text(resp, status, strdup(text));
    resp->content_type = type;
}

#define TEXT "text/plain; charset=utf-8"

/* The log's vkey for origin: a node of network.json that names it. */
static int log_vkey(const witness *w, const char *origin, size_t origin_len, rk_vkey *out)
{
    const rk_registry *reg = w->node->registry;
    for (size_t i = 0; i < reg->n_nodes; i++) {
        const rk_peer_node *n = &reg->nodes[i];
        if (n->log_origin[0] && strlen(n->log_origin) == origin_len && memcmp(n->log_origin, origin, origin_len) == 0)
            return rk_vkey_parse(n->log_vkey, out) == RK_OK;
    }
    return 0;
}

int rk_witness_parse(const char *body, size_t len, rk_witness_add *out)
{
    const char *end = body + len, *eol = memchr(body, '\n', len);
    if (!eol || eol - body < 5 || memcmp(body, "old ", 4) != 0)
        return -1;
    const char *d = body + 4;
    if (d[0] < '0' || d[0] > '9' || (d[0] == '0' && d + 1 != eol))
        return -1;
    uint64_t v = 0;
    for (; d < eol; d++) {
        if (*d < '0' || *d > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*d - '0');
    }
    out->old_size = v;
    out->proof_len = 0;
    for (const char *line = eol + 1;;) {
        if (line >= end)
            return -1;
        eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            return -1;
        if (eol == line) { /* the empty line: the checkpoint follows */
            out->note = eol + 1;
            out->note_len = (size_t)(end - out->note);
            return out->note_len ? 0 : -1;
        }
        char b64[64];
        size_t n = (size_t)(eol - line);
        unsigned char *raw = NULL;
        size_t rawlen = 0;
        if (out->proof_len == RK_WITNESS_MAX_PROOF || n >= sizeof b64)
            return -1;
        memcpy(b64, line, n);
        b64[n] = '\0';
        if (rk_base64_decode(b64, &raw, &rawlen) != RK_OK || rawlen != sizeof(rk_hash)) {
            free(raw);
            return -1;
        }
        memcpy(out->proof[out->proof_len++], raw, sizeof(rk_hash));
        free(raw);
        line = eol + 1;
    }
}

/* POST /add-checkpoint, on a worker. */
static void add_checkpoint(void *app, const rk_request *req, rk_response *resp)
{
    witness *w = app;
    rk_witness_add in;
    witness_request r = {.now_ms = rk_now_ms()};
    if (rk_witness_parse(req->body, req->body_len, &in) != 0 || in.note_len > RK_CHECKPOINT_MAX) {
        reply_plain(resp, 400, TEXT, "malformed request: old size, proof lines, an empty line, a checkpoint\n");
        return;
    }
    const char *note = in.note;
    size_t note_len = in.note_len;
    r.old_size = in.old_size;
    r.proof_len = in.proof_len;
    const char *nl = memchr(note, '\n', note_len);
    rk_vkey vkey;
    if (!nl || !log_vkey(w, note, (size_t)(nl - note), &vkey)) {
        reply_plain(resp, 404, TEXT, "unknown log origin\n");
        return;
    }
    rk_rc rc = rk_checkpoint_open(note, note_len, &vkey, &r.size, r.root);
    if (rc != RK_OK) {
        reply_plain(resp, rc == RK_ERR_CRYPTO ? 403 : 400, TEXT,
                    rc == RK_ERR_CRYPTO ? "no valid signature of the log\n" : "malformed checkpoint\n");
        return;
    }
    if (r.old_size > r.size) {
        reply_plain(resp, 400, TEXT, "old size is above the checkpoint's size\n");
        return;
    }
    char *checkpoint = strndup(note, note_len);
    r.origin = vkey.name;
    r.checkpoint = checkpoint;
    r.proof = in.proof;
    rc = checkpoint ? witness_store_add(w->store, &r) : RK_ERR_NOMEM;
    free(checkpoint);
    if (rc != RK_OK) {
        reply_plain(resp, 500, TEXT, "the witness could not record the checkpoint\n");
        return;
    }
    char text[32];
    switch (r.verdict) {
    case WITNESS_SIZE_CONFLICT:
        snprintf(text, sizeof text, "%llu\n", (unsigned long long)r.latest);
        reply_plain(resp, 409, "text/x.tlog.size", text);
        return;
    case WITNESS_FORK:
    case WITNESS_INCONSISTENT:
        /* 第3-5(2): a log that shows another tree than the one cosigned */
        rk_node_raise(w->node, "unauthorized_access", "the log %s sent a checkpoint of size %llu %s the one cosigned",
                      vkey.name, (unsigned long long)r.size,
                      r.verdict == WITNESS_FORK ? "with another root than" : "not consistent with");
        reply_plain(resp, r.verdict == WITNESS_FORK ? 409 : 422, TEXT,
                    r.verdict == WITNESS_FORK ? "same size, another root\n" : "the consistency proof does not verify\n");
        return;
    case WITNESS_COSIGN:
        break;
    }
    char *line = NULL;
    if (rk_cosign(w->key, w->name, note, note_len, (uint64_t)(r.now_ms / 1000), &line) != RK_OK) {
        reply_plain(resp, 500, TEXT, "the witness could not cosign\n");
        return;
    }
    rk_reply_text(resp, 200, line);
    resp->content_type = TEXT;
}

static const rk_route routes[] = {
    {"POST", "/add-checkpoint", RK_ROLE_CORE, 0, add_checkpoint, 0, NULL, 1},
};

/* The witness key and its name: network.json's vkey for this node; a key
 * that is not the named one is refused. */
static rk_rc load_key(witness *w)
{
    rk_node *node = w->node;
    rk_vkey named;
    char vkey[RK_VKEY_MAX];
    if (rk_pki_load_key(node->cfg.witness_key, NULL, &w->key) != RK_OK || EVP_PKEY_get_id(w->key) != EVP_PKEY_ED25519) {
        rk_error("%s: cannot load the witness key (an Ed25519 key, mode 0600)", node->cfg.witness_key);
        return RK_ERR_CRYPTO;
    }
    if (rk_vkey_parse(node->self->vkey, &named) != RK_OK || named.type != RK_VKEY_COSIGNATURE) {
        rk_error("network.json: the vkey of %s is not a C2SP cosignature vkey", node->cfg.id);
        return RK_ERR_CONFIG;
    }
    if (rk_vkey_of_type(named.name, w->key, RK_VKEY_COSIGNATURE, vkey) != RK_OK || strcmp(vkey, node->self->vkey) != 0) {
        rk_error("%s: not the witness key network.json names for %s (vkey)", node->cfg.witness_key, node->cfg.id);
        return RK_ERR_DENIED;
    }
    snprintf(w->name, sizeof w->name, "%s", named.name);
    return RK_OK;
}

static rk_rc open_witness(rk_node *node, void *app)
{
    witness *w = app;
    w->node = node;
    rk_rc rc = load_key(w);
    if (rc == RK_OK)
        rc = witness_store_open(node->cfg.db, 0, &w->store);
    if (rc == RK_OK)
        rc = rk_node_incidents_start(node, witness_store_db(w->store));
    if (rc == RK_OK)
        rc = rk_node_clock_start(node);
    return rc;
}

static void close_witness(void *app)
{
    witness *w = app;
    witness_store_close(w->store);
    EVP_PKEY_free(w->key); /* OpenSSL cleanses private key material on free */
}

static rk_db *witness_db(void *app)
{
    return witness_store_db(((witness *)app)->store);
}

static int health(void *app, json_t *checks)
{
    witness *w = app;
    json_object_set_new(checks, "logs_witnessed", json_integer((json_int_t)witness_store_count(w->store)));
    return 0;
}

const rk_role_desc rk_witness_role = {
    .role = RK_ROLE_WITNESS,
    .help = "run a witness of the core's log, C2SP tlog-witness (--config FILE)",
    .app_size = sizeof(witness),
    .open = open_witness,
    .close = close_witness,
    .store = witness_db,
    .routes = routes,
    .n_routes = sizeof routes / sizeof routes[0],
    .health = health,
};
