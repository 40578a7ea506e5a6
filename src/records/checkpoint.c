/* checkpoint.c — C2SP signed-note checkpoints and vkeys (checkpoint.h). */
#include "records/checkpoint.h"

#include <inttypes.h>
#include <jansson.h>
#include <time.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/cms.h"
#include "lib/util.h"

static const char EM_DASH[] = "\xe2\x80\x94"; /* U+2014, the signature line's mark */

static int name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n > 0 && n < RK_ORIGIN_MAX && strpbrk(name, "+ \n\t\r") == NULL;
}

static void key_id(const char *name, uint8_t type, const uint8_t pub[32], uint8_t id[4])
{
    uint8_t buf[RK_ORIGIN_MAX + 2 + 32], md[32];
    size_t n = strlen(name);
    unsigned int mdlen = 0;
    memcpy(buf, name, n);
    buf[n] = '\n';
    buf[n + 1] = type;
    memcpy(buf + n + 2, pub, 32);
    if (EVP_Digest(buf, n + 34, md, &mdlen, EVP_sha256(), NULL) != 1)
        abort(); /* only without memory; a wrong key ID must never be published */
    memcpy(id, md, 4);
}

rk_rc rk_vkey_of(const char *name, EVP_PKEY *key, char out[RK_VKEY_MAX])
{
    return rk_vkey_of_type(name, key, RK_VKEY_NOTE, out);
}

rk_rc rk_vkey_of_type(const char *name, EVP_PKEY *key, uint8_t type, char out[RK_VKEY_MAX])
{
    uint8_t raw[33] = {type}, id[4];
    size_t len = 32;
    if (!name_ok(name) || !key || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519 ||
        EVP_PKEY_get_raw_public_key(key, raw + 1, &len) != 1 || len != 32)
        return RK_ERR_INVALID;
    key_id(name, type, raw + 1, id);
    char *b64 = NULL, hex[9];
    rk_rc rc = rk_base64_encode(raw, sizeof raw, &b64);
    if (rc != RK_OK)
        return rc;
    rk_hex(id, 4, hex);
    int n = snprintf(out, RK_VKEY_MAX, "%s+%s+%s", name, hex, b64);
    free(b64);
    return n > 0 && n < RK_VKEY_MAX ? RK_OK : RK_ERR_INVALID;
}

rk_rc rk_vkey_parse(const char *text, rk_vkey *out)
{
    const char *p1 = text ? strchr(text, '+') : NULL, *p2 = p1 ? strchr(p1 + 1, '+') : NULL;
    if (!p2 || p1 == text || (size_t)(p1 - text) >= RK_ORIGIN_MAX || p2 - p1 != 9)
        return RK_ERR_INVALID;
    rk_vkey v;
    memset(&v, 0, sizeof v);
    memcpy(v.name, text, (size_t)(p1 - text));
    char hex[9];
    memcpy(hex, p1 + 1, 8);
    hex[8] = '\0';
    unsigned char *raw = NULL;
    size_t len = 0;
    if (!name_ok(v.name) || rk_unhex(hex, v.id, 4) != RK_OK || rk_base64_decode(p2 + 1, &raw, &len) != RK_OK)
        return RK_ERR_INVALID;
    rk_rc rc = len == 33 && (raw[0] == RK_VKEY_NOTE || raw[0] == RK_VKEY_COSIGNATURE) ? RK_OK : RK_ERR_INVALID;
    if (rc == RK_OK) {
        v.type = raw[0];
        memcpy(v.pub, raw + 1, 32);
        uint8_t id[4];
        key_id(v.name, v.type, v.pub, id);
        if (memcmp(id, v.id, 4) != 0)
            rc = RK_ERR_INVALID;
    }
    free(raw);
    if (rc == RK_OK)
        *out = v;
    return rc;
}

rk_rc rk_checkpoint_sign(EVP_PKEY *key, const char *origin, uint64_t size, const rk_hash root, char **note)
{
    char body[RK_ORIGIN_MAX + 96], *root_b64 = NULL, *sig_b64 = NULL;
    uint8_t raw[32], signed_[4 + 64], id[4];
    size_t len = sizeof raw, siglen = 64;
    if (!name_ok(origin) || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519 ||
        EVP_PKEY_get_raw_public_key(key, raw, &len) != 1)
        return RK_ERR_INVALID;
    rk_rc rc = rk_base64_encode(root, sizeof(rk_hash), &root_b64);
    if (rc != RK_OK)
        return rc;
    int n = snprintf(body, sizeof body, "%s\n%" PRIu64 "\n%s\n", origin, size, root_b64);
    free(root_b64);
    key_id(origin, RK_VKEY_NOTE, raw, id);
    memcpy(signed_, id, 4);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    rc = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
                 EVP_DigestSign(ctx, signed_ + 4, &siglen, (const unsigned char *)body, (size_t)n) == 1 && siglen == 64
             ? RK_OK : RK_ERR_CRYPTO;
    EVP_MD_CTX_free(ctx);
    if (rc == RK_OK)
        rc = rk_base64_encode(signed_, sizeof signed_, &sig_b64);
    if (rc == RK_OK && asprintf(note, "%s\n%s %s %s\n", body, EM_DASH, origin, sig_b64) < 0)
        rc = RK_ERR_NOMEM;
    free(sig_b64);
    return rc;
}

/* Verifies one signature line's base64 against the body: RK_OK when it is
 * the vkey's and verifies. */
static rk_rc check_line(const rk_vkey *vkey, const char *b64, const char *body, size_t body_len)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    if (rk_base64_decode(b64, &raw, &len) != RK_OK)
        return RK_ERR_INVALID;
    rk_rc rc = RK_ERR_CRYPTO;
    if (len == 4 + 64 && memcmp(raw, vkey->id, 4) == 0) {
        EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, vkey->pub, 32);
        EVP_MD_CTX *ctx = pk ? EVP_MD_CTX_new() : NULL;
        if (ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
            EVP_DigestVerify(ctx, raw + 4, 64, (const unsigned char *)body, body_len) == 1)
            rc = RK_OK;
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(pk);
    }
    free(raw);
    return rc;
}

rk_rc rk_checkpoint_open(const char *note, size_t len, const rk_vkey *vkey, uint64_t *size, rk_hash root)
{
    if (!note || !vkey || vkey->type != RK_VKEY_NOTE || len == 0 || len > RK_CHECKPOINT_MAX || memchr(note, '\0', len))
        return RK_ERR_INVALID;
    char *text = strndup(note, len);
    if (!text)
        return RK_ERR_NOMEM;
    rk_rc rc = RK_ERR_INVALID;
    /* the body ends at the first blank line; the signatures follow */
    char *sep = strstr(text, "\n\n");
    if (!sep || text[len - 1] != '\n')
        goto done;
    size_t body_len = (size_t)(sep - text) + 1;
    char *origin = text, *nl1 = strchr(origin, '\n');
    char *size_s = nl1 + 1, *nl2 = strchr(size_s, '\n');
    char *root_s = nl2 && nl2 < sep ? nl2 + 1 : NULL, *nl3 = root_s ? strchr(root_s, '\n') : NULL;
    if (!root_s || !nl3 || nl3 > sep)
        goto done;
    *nl1 = *nl2 = '\0';
    *nl3 = '\0';
    char *end;
    if (strcmp(origin, vkey->name) != 0 || size_s[0] < '0' || size_s[0] > '9' || (size_s[0] == '0' && size_s[1]))
        goto done;
    uint64_t sz = strtoull(size_s, &end, 10);
    unsigned char *r = NULL;
    size_t rlen = 0;
    if (*end != '\0' || rk_base64_decode(root_s, &r, &rlen) != RK_OK)
        goto done;
    if (rlen != sizeof(rk_hash)) {
        free(r);
        goto done;
    }
    /* the body again, as signed: its newlines were cut for parsing */
    char body[RK_CHECKPOINT_MAX];
    memcpy(body, note, body_len);
    rc = RK_ERR_CRYPTO;
    for (char *line = sep + 2; *line; ) {
        char *eol = strchr(line, '\n');
        if (!eol) {
            rc = RK_ERR_INVALID;
            break;
        }
        *eol = '\0';
        size_t dash = sizeof EM_DASH - 1, nlen = strlen(vkey->name);
        if (strncmp(line, EM_DASH, dash) == 0 && line[dash] == ' ' && strncmp(line + dash + 1, vkey->name, nlen) == 0 &&
            line[dash + 1 + nlen] == ' ' && check_line(vkey, line + dash + 2 + nlen, body, body_len) == RK_OK) {
            rc = RK_OK;
            break;
        }
        line = eol + 1;
    }
    if (rc == RK_OK) {
        *size = sz;
        memcpy(root, r, sizeof(rk_hash));
    }
    free(r);
done:
    free(text);
    return rc;
}

/* ---------- cosignatures ---------- */

/* The length of the note's body (up to and with the newline before the
 * blank line); 0 when it has none. */
static size_t body_length(const char *note, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++)
        if (note[i] == '\n' && note[i + 1] == '\n')
            return i + 1;
    return 0;
}

/* "cosignature/v1\ntime <t>\n" || body, malloc'ed. */
static unsigned char *cosigned_message(const char *body, size_t body_len, uint64_t t, size_t *len)
{
    char head[64];
    int n = snprintf(head, sizeof head, "cosignature/v1\ntime %" PRIu64 "\n", t);
    unsigned char *msg = malloc((size_t)n + body_len);
    if (!msg)
        return NULL;
    memcpy(msg, head, (size_t)n);
    memcpy(msg + n, body, body_len);
    *len = (size_t)n + body_len;
    return msg;
}

rk_rc rk_cosign(EVP_PKEY *key, const char *name, const char *note, size_t len, uint64_t timestamp, char **line)
{
    uint8_t raw[32], sig[4 + 8 + 64];
    size_t rawlen = sizeof raw, siglen = 64, msglen = 0, body_len = note ? body_length(note, len) : 0;
    if (!body_len || !name_ok(name) || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519 ||
        EVP_PKEY_get_raw_public_key(key, raw, &rawlen) != 1 || timestamp > INT64_MAX)
        return RK_ERR_INVALID;
    key_id(name, RK_VKEY_COSIGNATURE, raw, sig);
    for (int i = 0; i < 8; i++)
        sig[4 + i] = (uint8_t)(timestamp >> (56 - 8 * i));
    unsigned char *msg = cosigned_message(note, body_len, timestamp, &msglen);
    EVP_MD_CTX *ctx = msg ? EVP_MD_CTX_new() : NULL;
    rk_rc rc = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
                       EVP_DigestSign(ctx, sig + 12, &siglen, msg, msglen) == 1 && siglen == 64
                   ? RK_OK : RK_ERR_CRYPTO;
    EVP_MD_CTX_free(ctx);
    free(msg);
    char *b64 = NULL;
    if (rc == RK_OK)
        rc = rk_base64_encode(sig, sizeof sig, &b64);
    if (rc == RK_OK && asprintf(line, "%s %s %s\n", EM_DASH, name, b64) < 0)
        rc = RK_ERR_NOMEM;
    free(b64);
    return rc;
}

rk_rc rk_cosignature_check(const rk_vkey *vkey, const char *note, size_t len, uint64_t *timestamp)
{
    size_t body_len = note && len <= RK_CHECKPOINT_MAX && !memchr(note, '\0', len) ? body_length(note, len) : 0;
    if (!vkey || vkey->type != RK_VKEY_COSIGNATURE || !body_len)
        return RK_ERR_INVALID;
    size_t dash = sizeof EM_DASH - 1, nlen = strlen(vkey->name);
    rk_rc rc = RK_ERR_CRYPTO;
    for (size_t at = body_len + 1; at < len && rc != RK_OK;) {
        const char *line = note + at, *eol = memchr(line, '\n', len - at);
        if (!eol)
            return RK_ERR_INVALID;
        size_t n = (size_t)(eol - line);
        at += n + 1;
        if (n < dash + nlen + 2 || memcmp(line, EM_DASH, dash) != 0 || line[dash] != ' ' ||
            memcmp(line + dash + 1, vkey->name, nlen) != 0 || line[dash + 1 + nlen] != ' ')
            continue;
        char b64[200];
        size_t blen = n - dash - nlen - 2;
        if (blen >= sizeof b64)
            continue;
        memcpy(b64, line + dash + nlen + 2, blen);
        b64[blen] = '\0';
        unsigned char *raw = NULL;
        size_t rlen = 0;
        if (rk_base64_decode(b64, &raw, &rlen) != RK_OK)
            continue;
        if (rlen == 4 + 8 + 64 && memcmp(raw, vkey->id, 4) == 0) {
            uint64_t t = 0;
            for (int i = 0; i < 8; i++)
                t = t << 8 | raw[4 + i];
            size_t msglen = 0;
            unsigned char *msg = t <= INT64_MAX ? cosigned_message(note, body_len, t, &msglen) : NULL;
            EVP_PKEY *pk = msg ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, vkey->pub, 32) : NULL;
            EVP_MD_CTX *ctx = pk ? EVP_MD_CTX_new() : NULL;
            if (ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
                EVP_DigestVerify(ctx, raw + 12, 64, msg, msglen) == 1) {
                rc = RK_OK;
                if (timestamp)
                    *timestamp = t;
            }
            EVP_MD_CTX_free(ctx);
            EVP_PKEY_free(pk);
            free(msg);
        }
        free(raw);
    }
    return rc;
}

rk_rc rk_log_key_create(const char *path)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!key)
        return RK_ERR_CRYPTO;
    BIO *mem = BIO_new(BIO_s_secmem());
    rk_rc rc = RK_ERR_CRYPTO;
    char *data = NULL;
    long n;
    if (mem && PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL) == 1 &&
        (n = BIO_get_mem_data(mem, &data)) > 0)
        rc = rk_write_file(path, data, (size_t)n, 0600);
    BIO_free(mem); /* a secure-heap BIO cleanses its memory */
    EVP_PKEY_free(key);
    return rc;
}

/* ---- a log's keys over time (DESIGN §4.1: log_vkey_history) ---------- */

/* YYYY-MM-DDTHH:MM:SS[.mmm]Z (UTC; the milliseconds as the heads' times). */
static int parse_time_ms(const char *text, int64_t *ms)
{
    struct tm tm = {0};
    const char *end = text ? strptime(text, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    int frac = 0;
    if (end && end[0] == '.') {
        if (strspn(end + 1, "0123456789") != 3)
            return 0;
        frac = (end[1] - '0') * 100 + (end[2] - '0') * 10 + (end[3] - '0');
        end += 4;
    }
    if (!end || strcmp(end, "Z") != 0)
        return 0;
    *ms = (int64_t)timegm(&tm) * 1000 + frac;
    return 1;
}

static void format_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char s[24];
    gmtime_r(&t, &tm);
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", s, (int)(ms % 1000));
}

rk_rc rk_log_keys_parse(const char *log_vkey, const char *history_json, rk_log_keys *out)
{
    memset(out, 0, sizeof *out);
    if (!log_vkey || rk_vkey_parse(log_vkey, &out->current) != RK_OK || out->current.type != RK_VKEY_NOTE)
        return RK_ERR_INVALID;
    if (!history_json || !*history_json)
        return RK_OK;
    json_t *list = json_loads(history_json, 0, NULL), *e;
    size_t i;
    rk_rc rc = json_is_array(list) && json_array_size(list) <= RK_LOG_KEYS_MAX ? RK_OK : RK_ERR_INVALID;
    int64_t last_until = 0;
    json_array_foreach(list, i, e) {
        if (rc != RK_OK)
            break;
        const char *vk = json_string_value(json_object_get(e, "vkey"));
        json_t *from = json_object_get(e, "from");
        int64_t from_ms = 0, until_ms = 0;
        rk_vkey *k = &out->earlier[i].vkey;
        if (!vk || rk_vkey_parse(vk, k) != RK_OK || k->type != RK_VKEY_NOTE || strcmp(k->name, out->current.name) != 0 ||
            (from && !parse_time_ms(json_string_value(from), &from_ms)) || (!from && i > 0) ||
            !parse_time_ms(json_string_value(json_object_get(e, "until")), &until_ms) || until_ms <= from_ms ||
            from_ms < last_until) {
            rc = RK_ERR_INVALID;
            break;
        }
        out->earlier[i].from_ms = from_ms;
        out->earlier[i].until_ms = last_until = until_ms;
        out->n_earlier = (int)i + 1;
    }
    out->current_from_ms = last_until;
    json_decref(list);
    return rc;
}

const rk_vkey *rk_log_keys_at(const rk_log_keys *keys, int64_t time_ms)
{
    if (time_ms >= keys->current_from_ms)
        return &keys->current;
    for (int i = 0; i < keys->n_earlier; i++)
        if (time_ms >= keys->earlier[i].from_ms && time_ms < keys->earlier[i].until_ms)
            return &keys->earlier[i].vkey;
    return NULL;
}

rk_rc rk_log_keys_rotate(const char *log_vkey, const char *history_json, int64_t now_ms, char **out)
{
    rk_log_keys keys;
    rk_rc rc = rk_log_keys_parse(log_vkey, history_json, &keys);
    if (rc != RK_OK)
        return rc;
    if (keys.n_earlier >= RK_LOG_KEYS_MAX || now_ms <= keys.current_from_ms)
        return RK_ERR_CONFLICT;
    json_t *list = history_json && *history_json ? json_loads(history_json, 0, NULL) : json_array();
    json_t *e = json_object();
    char from[32], until[32];
    format_time(keys.current_from_ms, from);
    format_time(now_ms, until); /* the node is stopped: its heads before now are the old key's */
    json_object_set_new(e, "vkey", json_string(log_vkey));
    if (keys.current_from_ms)
        json_object_set_new(e, "from", json_string(from));
    json_object_set_new(e, "until", json_string(until));
    json_array_append_new(list, e);
    *out = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    return *out ? RK_OK : RK_ERR_NOMEM;
}
