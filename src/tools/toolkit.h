/* toolkit.h — small helpers the `renkei` subcommands share: one-line
 * messages on stderr ("renkei CMD: …"), getopt_long error reports, number
 * parsing, bounded formatting, sleeping, and a client credential (cert, key,
 * rk_client) loaded from a network directory written by `renkei net init`. */
#ifndef RK_TOOLS_TOOLKIT_H
#define RK_TOOLS_TOOLKIT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "net/http_client.h"
#include "crypto/pki.h"
#include "net/registry.h"

#define TK_EXIT_USAGE 2
#define TK_PATH_CAP 4096

/* "renkei CMD: <message> (see --help)" on stderr; returns TK_EXIT_USAGE. */
int tk_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "renkei CMD: <message>" on stderr; returns EXIT_FAILURE. */
int tk_failure(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reports what getopt_long rejected (c is ':' for a missing value, else
 * '?') as a usage error; returns TK_EXIT_USAGE. */
int tk_option_error(const char *cmd, int c, char **argv);

/* Makes the next getopt_long call start afresh and stay silent. */
void tk_getopt_reset(void);

/* A whole decimal number in min..max: 1 and *out set, else 0. */
int tk_parse_long(const char *s, long min, long max, long *out);

/* tk_parse_long into an int (min and max within int's range). */
int tk_parse_int(const char *s, long min, long max, int *out);

/* snprintf into out; RK_ERR_INVALID when the text was cut (or on an
 * encoding error), else RK_OK. */
rk_rc tk_path(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A network made with `net init --hsm`: its token (DIR/hsm/softhsm2.conf)
 * for the keys named by pkcs11: URIs, unless SOFTHSM2_CONF names one. */
void tk_use_network_token(const char *dir);

/* Makes a fresh folder "$TMPDIR/<name>-XXXXXX" (/tmp when TMPDIR is unset
 * or empty) and writes its path to out. On failure out is "" and err holds
 * one line: RK_ERR_INVALID when the path would not fit, else RK_ERR_IO. */
rk_rc tk_temp_dir(const char *name, char *out, size_t outlen, char *err, size_t errlen);

/* Sleeps ms milliseconds (nothing when ms <= 0); a caught signal cuts the
 * sleep short. */
void tk_sleep_ms(int64_t ms);

/* NET/network.json; on error err holds one line. */
rk_rc tk_registry_load(const char *net_dir, rk_registry **reg, char *err, size_t errlen);

/* What tk_client_open failed at. */
typedef enum tk_step { TK_STEP_NONE, TK_STEP_PATH, TK_STEP_CERT, TK_STEP_KEY, TK_STEP_CLIENT } tk_step;

typedef struct tk_client {
    X509 *cert;
    EVP_PKEY *key;
    rk_client *client;               /* trusts NET/pki/ca.pem */
    tk_step failed;                  /* after a failed tk_client_open */
    char failed_path[TK_PATH_CAP];   /* the file it could not load */
} tk_client;

/* Loads NET/<client_dir>/{cert,key}.pem (client_dir like "clients/operator")
 * and makes an rk_client with them. On error *out is closed (with failed and
 * failed_path set) and err holds one line: "NET: path too long",
 * "cannot load PATH: why" or "cannot set up the client: why". */
rk_rc tk_client_open(const char *net_dir, const char *client_dir, tk_client *out, char *err, size_t errlen);

/* Frees what tk_client_open made; c is zeroed (safe on a zeroed c). */
void tk_client_close(tk_client *c);

#endif
