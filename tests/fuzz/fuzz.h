/* fuzz.h — what the harnesses of tests/fuzz share: a NUL-terminated copy of
 * an input, inputs split into parts, and a check that aborts (a crash to
 * libFuzzer and to the replay driver alike) naming the broken property. */
#ifndef RK_FUZZ_H
#define RK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_CHECK(cond)                                                                                   \
    do {                                                                                                 \
        if (!(cond)) {                                                                                   \
            fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond);                 \
            abort();                                                                                     \
        }                                                                                                \
    } while (0)

/* The input as a malloc'ed C string (it ends at its first NUL, if any). */
static inline char *fz_str(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Splits text in place at each line "%%" (the parts of a many-file input,
 * readable in the corpus); up to max parts, the rest joined to the last.
 * Returns how many parts there are (at least 1). */
static inline int fz_parts(char *text, char **parts, int max)
{
    int n = 0;
    parts[n++] = text;
    for (char *p = text; n < max && (p = strstr(p, "%%\n")); ) {
        if (p != text && p[-1] != '\n') {
            p += 3;
            continue;
        }
        *p = '\0';
        parts[n++] = p += 3;
    }
    return n;
}

/* Writes len bytes to path (a harness's own temporary folder); 0 when done. */
static inline int fz_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <unistd.h>

#include "crypto/pki.h"

/* Test keys made when a harness starts (never a network's, never in the
 * tree): a CA, and a requester and a provider it issued, in a temporary
 * folder removed at exit. */
static char fz_keys_dir[64];

static inline void fz_keys_remove(void)
{
    static const char *const files[] = {"ca.pem", "ca.key", "requester.pem", "requester.key", "provider.pem",
                                        "provider.key"};
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", fz_keys_dir, files[i]);
        unlink(path);
    }
    rmdir(fz_keys_dir);
}

static inline const char *fz_keys(void)
{
    if (fz_keys_dir[0])
        return fz_keys_dir;
    char ca[128], ca_key[128], cert[128], key[128];
    snprintf(fz_keys_dir, sizeof fz_keys_dir, "/tmp/rk-fuzz-keys-XXXXXX");
    if (!mkdtemp(fz_keys_dir))
        abort();
    atexit(fz_keys_remove);
    snprintf(ca, sizeof ca, "%s/ca.pem", fz_keys_dir);
    snprintf(ca_key, sizeof ca_key, "%s/ca.key", fz_keys_dir);
    if (rk_pki_create_ca(ca, ca_key, "renkei-fuzz-ca", 0) != RK_OK)
        abort();
    static const char *const names[] = {"requester", "provider"};
    for (size_t i = 0; i < 2; i++) {
        rk_cert_spec spec = {.common_name = names[i], .role = "agency", .name = names[i]};
        snprintf(cert, sizeof cert, "%s/%s.pem", fz_keys_dir, names[i]);
        snprintf(key, sizeof key, "%s/%s.key", fz_keys_dir, names[i]);
        if (rk_pki_issue(ca, ca_key, &spec, cert, key, NULL) != RK_OK)
            abort();
    }
    return fz_keys_dir;
}

static inline X509 *fz_cert(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.pem", fz_keys(), name);
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!x)
        abort();
    return x;
}

static inline EVP_PKEY *fz_key(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.key", fz_keys(), name);
    FILE *f = fopen(path, "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!k)
        abort();
    return k;
}

#endif
