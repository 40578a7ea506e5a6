/* checkpoint.h — the signed tree head as outside tooling reads it: a C2SP
 * tlog-checkpoint ("<origin>\n<size>\n<base64 root>\n") in a C2SP signed
 * note, signed with the node's Ed25519 log key (DESIGN §4.1).
 *
 *   key ID    SHA-256(name || 0x0A || 0x01 || public key)[:4]
 *   vkey      <name>+<hex key ID>+<base64(0x01 || public key)>
 *   signature "— <name> <base64(key ID || Ed25519 signature of the body)>"
 *
 * network.json names each log's origin and vkey; the key name is the
 * origin. Later signature lines (witnesses' cosignatures) are kept as they
 * are and ignored by rk_checkpoint_open.
 *
 * Cosignatures (C2SP tlog-cosignature, Ed25519, type 0x04): a witness
 * signs "cosignature/v1\ntime <t>\n" followed by the checkpoint's body;
 *   key ID    SHA-256(name || 0x0A || 0x04 || public key)[:4]
 *   signature "— <name> <base64(key ID || u64 big-endian t || signature)>" */
#ifndef RK_RECORDS_CHECKPOINT_H
#define RK_RECORDS_CHECKPOINT_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"
#include "records/merkle.h"

#define RK_ORIGIN_MAX 128
#define RK_VKEY_MAX 256
#define RK_CHECKPOINT_MAX 8192 /* a note with its cosignatures, as read from the network */

#define RK_VKEY_NOTE 0x01        /* a log's key: signs its checkpoints */
#define RK_VKEY_COSIGNATURE 0x04 /* a witness's key: cosigns others' checkpoints */

typedef struct rk_vkey {
    char name[RK_ORIGIN_MAX];
    uint8_t type;                /* RK_VKEY_NOTE or RK_VKEY_COSIGNATURE */
    uint8_t id[4];
    uint8_t pub[32];
} rk_vkey;

/* The vkey of an Ed25519 key under name. RK_ERR_INVALID when the key is not
 * Ed25519 or the name is empty, too long or holds '+', space or newline. */
rk_rc rk_vkey_of(const char *name, EVP_PKEY *key, char out[RK_VKEY_MAX]);
/* The same for a key of either type. */
rk_rc rk_vkey_of_type(const char *name, EVP_PKEY *key, uint8_t type, char out[RK_VKEY_MAX]);
/* A vkey of either type (out->type says which). */
rk_rc rk_vkey_parse(const char *text, rk_vkey *out);

/* The note of (origin, size, root) signed with key; malloc'ed. */
rk_rc rk_checkpoint_sign(EVP_PKEY *key, const char *origin, uint64_t size, const rk_hash root, char **note);

/* Checks a note of len bytes against vkey: the origin is the vkey's name and
 * a signature line of that key verifies. Then *size and root are the
 * checkpoint's. RK_ERR_INVALID (malformed) or RK_ERR_CRYPTO (no valid
 * signature). */
rk_rc rk_checkpoint_open(const char *note, size_t len, const rk_vkey *vkey, uint64_t *size, rk_hash root);

/* A witness's cosignature line (with its newline) of the note's checkpoint
 * at timestamp (seconds), under name; malloc'ed. RK_ERR_INVALID when the
 * note has no body. */
rk_rc rk_cosign(EVP_PKEY *key, const char *name, const char *note, size_t len, uint64_t timestamp, char **line);
/* RK_OK when one of the note's signature lines is a cosignature of the
 * witness `vkey` (type RK_VKEY_COSIGNATURE) that verifies; *timestamp its
 * time. RK_ERR_CRYPTO when none does, RK_ERR_INVALID when malformed. */
rk_rc rk_cosignature_check(const rk_vkey *vkey, const char *note, size_t len, uint64_t *timestamp);

/* Makes a new Ed25519 log key at path (0600). */
rk_rc rk_log_key_create(const char *path);

/* A log's keys over time (DESIGN §4.1): network.json's log_vkey, in force
 * since the end of the newest earlier key, and log_vkey_history, the
 * earlier keys each with its validity:
 *   [{"vkey": "<vkey>", "from": "YYYY-MM-DDTHH:MM:SS[.mmm]Z", "until": "…"}, …]
 * oldest first; "from" may be absent on the first (since the log began).
 * A head is checked with the key valid at its time, and with no other. */
#define RK_LOG_KEYS_MAX 16

typedef struct rk_log_keys {
    rk_vkey current;
    int64_t current_from_ms; /* 0: since the log began */
    struct {
        rk_vkey vkey;
        int64_t from_ms, until_ms; /* [from, until); from 0: since the log began */
    } earlier[RK_LOG_KEYS_MAX];
    int n_earlier;
} rk_log_keys;

/* From the vkey text and the history's JSON text (NULL or "" when none).
 * RK_ERR_INVALID: a vkey that does not parse or is not of the log's name,
 * a time that is not one, periods out of order or overlapping, or more than
 * RK_LOG_KEYS_MAX earlier keys. */
rk_rc rk_log_keys_parse(const char *log_vkey, const char *history_json, rk_log_keys *out);
/* The key valid at time_ms (a head's time), or NULL when none was. */
const rk_vkey *rk_log_keys_at(const rk_log_keys *keys, int64_t time_ms);
/* The history after a rotation at now_ms: the current key appended with its
 * period, the new vkey current. history_json may be NULL; *out is the new
 * history's JSON text, malloc'ed. */
rk_rc rk_log_keys_rotate(const char *log_vkey, const char *history_json, int64_t now_ms, char **out);

#endif
