/* code_key_cmd.c — `renkei core rotate-code-key --config F [--config F…]`:
 * starts a new version of the core's code key (core/codes.h). The new
 * version's master key is fresh randomness appended to the master key file;
 * every earlier version stays, so every earlier code still converts, and new
 * codes use the new version once the core restarts. With several core
 * instances, every instance's node.conf is named: the first one's file is
 * read (unwrapped with its key, which may be in a token) and each file is
 * written back in its own form (plain, or wrapped to its own certificate). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/codes.h"
#include "crypto/keys.h"
#include "crypto/pki.h"
#include "lib/util.h"
#include "node/config.h"
#include "tools/tools.h"

#define MAX_CONFIGS 16

static const char usage_text[] =
    "usage: renkei core rotate-code-key --config FILE [--config FILE…]\n"
    "  Starts a new code key version; earlier codes still convert.\n"
    "  Name every core instance's node.conf; restart the instances after.\n";

/* Is the file the wrapped form? (Its first bytes, without opening it.) */
static int is_wrapped(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int w = rk_read_file(path, 64 * 1024, &text, &len) == RK_OK && strncmp(text, "-----BEGIN CMS-----", 19) == 0;
    if (text) {
        rk_wipe(text, len);
        free(text);
    }
    return w;
}

static int rotate(char **configs, int n)
{
    rk_node_config *cfg = calloc((size_t)n, sizeof *cfg);
    uint8_t masters[RK_CODE_MAX_KEYS][32];
    int versions = 0, wrapped = 0, status = 1;
    char err[1024];
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    if (!cfg) {
        fprintf(stderr, "renkei core rotate-code-key: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n; i++)
        if (rk_config_load(configs[i], &cfg[i], err, sizeof err) != RK_OK || !cfg[i].master_key_file[0]) {
            fprintf(stderr, "renkei core rotate-code-key: %s\n",
                    cfg[i].master_key_file[0] || err[0] ? err : "[core] master_key_file is required");
            goto done;
        }
    /* the first instance's keys, opened with its own key when wrapped */
    if (is_wrapped(cfg[0].master_key_file)) {
        if (rk_pki_load_cert(cfg[0].cert, &cert) != RK_OK) {
            fprintf(stderr, "renkei core rotate-code-key: %s: cannot load certificate\n", cfg[0].cert);
            goto done;
        }
        if (rk_pkey_load(cfg[0].key, cfg[0].key_passphrase_file, &key, err, sizeof err) != RK_OK) {
            fprintf(stderr, "renkei core rotate-code-key: %s\n", err);
            goto done;
        }
    }
    if (rk_code_keys_read(cfg[0].master_key_file, cert, key, masters, &versions, &wrapped, err, sizeof err) !=
        RK_OK) {
        fprintf(stderr, "renkei core rotate-code-key: %s\n", err);
        goto done;
    }
    if (versions == RK_CODE_MAX_KEYS) {
        fprintf(stderr, "renkei core rotate-code-key: all %d code key versions are in use\n", RK_CODE_MAX_KEYS);
        goto done;
    }
    if (rk_random(masters[versions], 32) != RK_OK) {
        fprintf(stderr, "renkei core rotate-code-key: no randomness\n");
        goto done;
    }
    versions++;
    for (int i = 0; i < n; i++) {
        X509 *to = NULL;
        if (is_wrapped(cfg[i].master_key_file) && rk_pki_load_cert(cfg[i].cert, &to) != RK_OK) {
            fprintf(stderr, "renkei core rotate-code-key: %s: cannot load certificate\n", cfg[i].cert);
            goto done;
        }
        rk_rc rc = rk_code_keys_write(cfg[i].master_key_file, (const uint8_t(*)[32])masters, versions, to);
        X509_free(to);
        if (rc != RK_OK) {
            fprintf(stderr, "renkei core rotate-code-key: %s: cannot write: %s\n", cfg[i].master_key_file,
                    rk_strerror(rc));
            goto done;
        }
    }
    printf("code key version %d started in %d file(s); restart the core instance(s) to use it\n", versions, n);
    status = 0;
done:
    rk_wipe(masters, sizeof masters); /* 第5-2(5) */
    X509_free(cert);
    EVP_PKEY_free(key);
    free(cfg);
    return status;
}

int rk_cmd_core_rotate(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    char *configs[MAX_CONFIGS];
    int n = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return 0;
        }
        if (c != 'c' || n == MAX_CONFIGS) {
            fputs(usage_text, stderr);
            return 2;
        }
        configs[n++] = optarg;
    }
    if (n == 0 || optind != argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    return rotate(configs, n);
}
