/* keys.c — loads every private key: files and PKCS#11 tokens (keys.h).
 * 第5-2(5): a key file is 0600 and wiped after parsing; a token key never
 * leaves the token; PINs are wiped after the login. */
/* The PKCS#11 engine is OpenSSL's ENGINE API, deprecated in 3.0 but the
 * only one libp11 offers on Debian 12; this file alone uses it. */
#undef OPENSSL_NO_DEPRECATED
#include <openssl/engine.h>
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#include "crypto/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/util.h"

#define KEY_FILE_CAP (64 * 1024)
#define SECRET_FILE_CAP 4096
#define MODULE_PATH_MAX 1024

#define say(err, errlen, ...)                   \
    do {                                        \
        if ((err) && (errlen))                  \
            snprintf(err, errlen, __VA_ARGS__); \
    } while (0)

static void wipe_and_free(char *buf, size_t len)
{
    if (!buf)
        return;
    rk_wipe(buf, len);
    free(buf);
}

/* First line of the file, without its \r\n; *cap is the size to wipe. */
static rk_rc read_secret(const char *path, char **out, size_t *cap)
{
    char *buf = NULL;
    size_t len = 0;
    rk_rc rc = rk_read_file(path, SECRET_FILE_CAP, &buf, &len);
    if (rc != RK_OK)
        return rc;
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        wipe_and_free(buf, len);
        return RK_ERR_CONFIG;
    }
    *out = buf;
    *cap = len;
    return RK_OK;
}

int rk_pkey_is_uri(const char *ref)
{
    return ref && strncmp(ref, "pkcs11:", 7) == 0;
}

/* ---- files ------------------------------------------------------------ */

/* Never prompts: without a passphrase an encrypted key simply fails. */
static int passphrase_cb(char *buf, int size, int rwflag, void *userdata)
{
    const char *passphrase = userdata;
    (void)rwflag;
    if (!passphrase)
        return -1;
    size_t n = strlen(passphrase);
    if (n > (size_t)size)
        return -1;
    memcpy(buf, passphrase, n);
    return (int)n;
}

static rk_rc load_uri(const char *uri, const char *secret_file, EVP_PKEY **out, char *err, size_t errlen);

static rk_rc load_file(const char *path, const char *secret_file, EVP_PKEY **out, char *err, size_t errlen)
{
    char *pem = NULL, *passphrase = NULL;
    size_t pem_len = 0, passphrase_cap = 0;
    BIO *bio = NULL;
    struct stat st;
    rk_rc rc = RK_OK;
    if (stat(path, &st) != 0) {
        rc = errno == ENOENT ? RK_ERR_NOT_FOUND : RK_ERR_IO;
        say(err, errlen, "%s: %s", path, rc == RK_ERR_NOT_FOUND ? "no such key file" : "cannot read the key file");
        return rc;
    }
    if (st.st_mode & 077) {
        say(err, errlen, "%s: %s", path, "private key is readable by group or others (chmod 600)");
        return RK_ERR_DENIED;
    }
    if ((rc = rk_read_file(path, KEY_FILE_CAP, &pem, &pem_len)) != RK_OK) {
        say(err, errlen, "%s: %s", path, "cannot read the key file");
        goto done;
    }
    /* A key file may name a token key instead of holding one. */
    if (rk_pkey_is_uri(pem)) {
        pem[strcspn(pem, "\r\n")] = '\0';
        rc = load_uri(pem, secret_file, out, err, errlen);
        goto done;
    }
    if (secret_file && *secret_file && (rc = read_secret(secret_file, &passphrase, &passphrase_cap)) != RK_OK) {
        say(err, errlen, "%s: %s", secret_file, "cannot read the passphrase file");
        goto done;
    }
    bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (!bio) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    *out = PEM_read_bio_PrivateKey(bio, NULL, passphrase_cb, passphrase);
    if (!*out) {
        rc = RK_ERR_CRYPTO;
        say(err, errlen, "%s: %s", path, "cannot load private key (wrong passphrase?)");
    }
done:
    BIO_free(bio);
    wipe_and_free(pem, pem_len);
    wipe_and_free(passphrase, passphrase_cap);
    return rc;
}

/* ---- PKCS#11 ---------------------------------------------------------- */

/* One engine per process, initialised with the first token key's module;
 * ENGINE calls that set the PIN and load a key run under the lock. */
static pthread_mutex_t engine_lock = PTHREAD_MUTEX_INITIALIZER;
static ENGINE *engine;
static char engine_module[MODULE_PATH_MAX];

static int unhex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into out (cap bytes); -1 when malformed or long. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = unhex_digit(s[i + 1]), lo = unhex_digit(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

typedef struct {
    char path[RK_PKCS11_URI_MAX]; /* "pkcs11:" + path attributes: for the engine */
    char module[MODULE_PATH_MAX];
    char pin[256];
    char pin_source[MODULE_PATH_MAX];
} parsed_uri;

static rk_rc parse_uri(const char *uri, parsed_uri *u)
{
    memset(u, 0, sizeof *u);
    size_t len = strlen(uri);
    if (len >= sizeof u->path)
        return RK_ERR_INVALID;
    const char *q = strchr(uri, '?');
    size_t plen = q ? (size_t)(q - uri) : len;
    if (plen <= 7)
        return RK_ERR_INVALID;
    memcpy(u->path, uri, plen);
    u->path[plen] = '\0';
    /* RFC 7512 §2.3: pin-value may also be a path attribute; keep it out
     * of what is handed to the engine and of any message. */
    char *pv = strstr(u->path, "pin-value=");
    if (pv && (pv[-1] == ':' || pv[-1] == ';')) {
        char *end = strchr(pv, ';');
        size_t vlen = end ? (size_t)(end - pv - 10) : strlen(pv + 10);
        if (pct_decode(pv + 10, vlen, u->pin, sizeof u->pin) != 0)
            return RK_ERR_INVALID;
        if (end)
            memmove(pv, end + 1, strlen(end + 1) + 1);
        else
            *(pv[-1] == ';' ? pv - 1 : pv) = '\0';
        rk_wipe(u->path + strlen(u->path), sizeof u->path - strlen(u->path));
    }
    for (const char *a = q ? q + 1 : NULL; a && *a;) {
        const char *end = strchr(a, '&');
        size_t alen = end ? (size_t)(end - a) : strlen(a);
        const char *eq = memchr(a, '=', alen);
        if (!eq)
            return RK_ERR_INVALID;
        size_t klen = (size_t)(eq - a), vlen = alen - klen - 1;
        int bad = 0;
        if (klen == 11 && memcmp(a, "module-path", 11) == 0)
            bad = pct_decode(eq + 1, vlen, u->module, sizeof u->module);
        else if (klen == 9 && memcmp(a, "pin-value", 9) == 0)
            bad = pct_decode(eq + 1, vlen, u->pin, sizeof u->pin);
        else if (klen == 10 && memcmp(a, "pin-source", 10) == 0)
            bad = pct_decode(eq + 1, vlen, u->pin_source, sizeof u->pin_source);
        /* other query attributes (module-name...) are not used */
        if (bad)
            return RK_ERR_INVALID;
        a = end ? end + 1 : NULL;
    }
    if (strncmp(u->pin_source, "file:", 5) == 0)
        memmove(u->pin_source, u->pin_source + 5, strlen(u->pin_source + 5) + 1);
    return RK_OK;
}

static rk_rc engine_get(const char *module, char *err, size_t errlen)
{
    if (engine) {
        if (*module && strcmp(module, engine_module) != 0) {
            say(err, errlen, "pkcs11: one PKCS#11 module per process: %s", engine_module);
            return RK_ERR_CONFIG;
        }
        return RK_OK;
    }
    ENGINE_load_builtin_engines();
    ENGINE *e = ENGINE_by_id("pkcs11");
    if (!e) {
        say(err, errlen, "pkcs11: no PKCS#11 engine (install libengine-pkcs11-openssl)");
        return RK_ERR_CONFIG;
    }
    /* libp11 prints some failures itself unless told to be quiet. */
    ENGINE_ctrl_cmd_string(e, "QUIET", NULL, 1);
    if ((*module && ENGINE_ctrl_cmd_string(e, "MODULE_PATH", module, 0) != 1) || ENGINE_init(e) != 1) {
        ENGINE_free(e);
        say(err, errlen, "pkcs11: cannot start the PKCS#11 engine with module %s", *module ? module : "(default)");
        return RK_ERR_CONFIG;
    }
    ENGINE_free(e); /* ENGINE_init holds the functional reference */
    engine = e;
    snprintf(engine_module, sizeof engine_module, "%s", module);
    return RK_OK;
}

/* What the token said: the reason of the last queued error, if any. */
static const char *token_reason(rk_rc *rc)
{
    unsigned long e;
    int pin = 0;
    while ((e = ERR_get_error()) != 0) {
        const char *r = ERR_reason_error_string(e);
        pin |= r && strstr(r, "PIN") != NULL; /* CKR_PIN_INCORRECT, CKR_PIN_LOCKED... */
    }
    if (pin) {
        *rc = RK_ERR_DENIED;
        return "the token refused the PIN";
    }
    *rc = RK_ERR_NOT_FOUND;
    return "no such private key in the token (or the token is missing)";
}

static rk_rc load_uri(const char *uri, const char *secret_file, EVP_PKEY **out, char *err, size_t errlen)
{
    parsed_uri *u = calloc(1, sizeof *u);
    char *secret = NULL;
    size_t secret_cap = 0;
    rk_rc rc;
    if (!u)
        return RK_ERR_NOMEM;
    if ((rc = parse_uri(uri, u)) != RK_OK) {
        say(err, errlen, "a malformed pkcs11: URI (RFC 7512)");
        rc = RK_ERR_CONFIG;
        goto done;
    }
    const char *pin_file = u->pin_source[0] ? u->pin_source : secret_file;
    if (!u->pin[0]) {
        if (!pin_file || !*pin_file) {
            say(err, errlen, "%s: %s", u->path, "no PIN: set pin-source in the URI or key_passphrase_file");
            rc = RK_ERR_CONFIG;
            goto done;
        }
        if (read_secret(pin_file, &secret, &secret_cap) != RK_OK) {
            say(err, errlen, "%s: %s", pin_file, "cannot read the PIN file");
            rc = RK_ERR_CONFIG;
            goto done;
        }
    }
    pthread_mutex_lock(&engine_lock);
    /* A login writes the token's state (SoftHSM2's file store does): the
     * processes that start together log in one at a time, under a lock on
     * the module file they share. */
    int lockfd = u->module[0] ? open(u->module, O_RDONLY | O_CLOEXEC) : -1;
    if (lockfd >= 0)
        flock(lockfd, LOCK_EX);
    if ((rc = engine_get(u->module, err, errlen)) == RK_OK) {
        ERR_clear_error();
        int pin_ok = ENGINE_ctrl_cmd_string(engine, "PIN", secret ? secret : u->pin, 0) == 1;
        EVP_PKEY *key = pin_ok ? ENGINE_load_private_key(engine, u->path, NULL, NULL) : NULL;
        /* The session stays logged in; the engine's copy of the PIN goes. */
        ENGINE_ctrl_cmd_string(engine, "PIN", "", 0);
        if (key && EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) {
            EVP_PKEY_free(key);
            key = NULL;
            say(err, errlen, "%s: %s", u->path, "the token key is not an EC key");
            rc = RK_ERR_CRYPTO;
        } else if (!key) {
            const char *why = token_reason(&rc);
            say(err, errlen, "%s: %s", u->path, why);
        } else {
            *out = key;
        }
    }
    if (lockfd >= 0)
        close(lockfd); /* releases the lock */
    pthread_mutex_unlock(&engine_lock);
done:
    wipe_and_free(secret, secret_cap);
    rk_wipe(u, sizeof *u);
    free(u);
    ERR_clear_error();
    return rc;
}

rk_rc rk_pkey_load(const char *ref, const char *secret_file, EVP_PKEY **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!ref || !*ref || !out) {
        say(err, errlen, "no private key configured");
        return RK_ERR_INVALID;
    }
    *out = NULL;
    rk_rc rc = rk_pkey_is_uri(ref) ? load_uri(ref, secret_file, out, err, errlen)
                                   : load_file(ref, secret_file, out, err, errlen);
    if (rc != RK_OK)
        ERR_clear_error();
    return rc;
}
