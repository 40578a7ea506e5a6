#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

rk_rc rk_random(void *buf, size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? RK_OK : RK_ERR_CRYPTO;
}

void rk_hex(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

rk_rc rk_unhex(const char *in, uint8_t *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int hi = hexval(in[2 * i]);
        int lo = hi < 0 ? -1 : hexval(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return RK_ERR_INVALID;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return in[2 * len] == '\0' ? RK_OK : RK_ERR_INVALID;
}

int64_t rk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rk_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double rk_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void rk_format_time(int64_t ms, char *out, size_t outlen)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03dZ", base, (int)(ms % 1000));
}

rk_rc rk_read_file(const char *path, size_t cap, char **out, size_t *outlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? RK_ERR_NOT_FOUND : RK_ERR_IO;
    rk_rc rc = RK_OK;
    size_t len = 0, size = 4096;
    char *buf = malloc(size + 1);
    if (!buf) {
        rc = RK_ERR_NOMEM;
        goto done;
    }
    for (;;) {
        if (len == size) {
            if (size >= cap) {
                rc = RK_ERR_TOO_LARGE;
                goto done;
            }
            size = size * 2 > cap ? cap : size * 2;
            char *bigger = realloc(buf, size + 1);
            if (!bigger) {
                rc = RK_ERR_NOMEM;
                goto done;
            }
            buf = bigger;
        }
        size_t n = fread(buf + len, 1, size - len, f);
        if (n == 0)
            break;
        len += n;
    }
    if (ferror(f))
        rc = RK_ERR_IO;
done:
    fclose(f);
    if (rc != RK_OK) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    if (outlen)
        *outlen = len;
    return RK_OK;
}

/* Set by a writer of many files (`net init`) that syncs them all at its end. */
static atomic_int write_sync_deferred;

void rk_write_defer_sync(int on)
{
    atomic_store(&write_sync_deferred, on ? 1 : 0);
}

rk_rc rk_sync_folder(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return RK_ERR_IO;
    int r = syncfs(fd); /* every file and directory of its file system, data and metadata */
    close(fd);
    return r == 0 ? RK_OK : RK_ERR_IO;
}

rk_rc rk_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return RK_ERR_INVALID;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return RK_ERR_IO;
    rk_rc rc = RK_OK;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = RK_ERR_IO;
            break;
        }
        p += n;
        left -= (size_t)n;
    }
    if (rc == RK_OK && (fchmod(fd, mode) != 0 || (!atomic_load(&write_sync_deferred) && fsync(fd) != 0)))
        rc = RK_ERR_IO;
    close(fd);
    if (rc == RK_OK && rename(tmp, path) != 0)
        rc = RK_ERR_IO;
    if (rc != RK_OK)
        unlink(tmp);
    return rc;
}

void rk_path_join(char *out, size_t outlen, const char *dir, const char *path)
{
    if (!path || !*path || path[0] == '/' || !dir || !*dir)
        snprintf(out, outlen, "%s", path ? path : "");
    else
        snprintf(out, outlen, "%s/%s", dir, path);
}

void rk_dirname(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, outlen, ".");
    else if (slash == path)
        snprintf(out, outlen, "/");
    else
        snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

rk_rc rk_mkdirs(const char *path, unsigned mode)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return RK_ERR_INVALID;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return RK_ERR_IO;
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST)
        return RK_ERR_IO;
    return RK_OK;
}

rk_rc rk_file_private(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? RK_ERR_NOT_FOUND : RK_ERR_IO;
    return (st.st_mode & 077) ? RK_ERR_DENIED : RK_OK;
}

/* jansson's blocks are malloc's own (json_dumps' text is freed with free()
 * by its callers); only jansson's frees are wiped, over the block's size. */
static void json_release(void *p)
{
    if (!p)
        return;
    rk_wipe(p, malloc_usable_size(p));
    free(p);
}

void rk_json_wipe_on_free(void)
{
    json_set_alloc_funcs(malloc, json_release);
}

void rk_wipe(void *p, size_t len)
{
    if (p && len)
        OPENSSL_cleanse(p, len);
}

int rk_is_digits(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

void rk_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mutex, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(cond, mutex, &until);
}

rk_rc rk_buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n, size_t max)
{
    if (*len + n + 1 > max)
        return RK_ERR_TOO_LARGE;
    if (*len + n + 1 > *cap) {
        size_t grown = *cap ? *cap : 1024;
        while (grown < *len + n + 1)
            grown *= 2;
        char *bigger = realloc(*buf, grown);
        if (!bigger)
            return RK_ERR_NOMEM;
        *buf = bigger;
        *cap = grown;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return RK_OK;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *rk_duplicate(const char *const *strs, size_t n, int *err)
{
    *err = 0;
    const char **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) {
        *err = -1;
        return NULL;
    }
    memcpy(sorted, strs, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, by_text);
    const char *twice = NULL;
    for (size_t i = 1; i < n && !twice; i++)
        if (strcmp(sorted[i], sorted[i - 1]) == 0)
            twice = sorted[i];
    free(sorted);
    return twice;
}

int64_t rk_backoff_ms(int attempts, int64_t min_ms, int64_t max_ms)
{
    int64_t d = min_ms;
    for (int i = 1; i < attempts && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    uint16_t jitter = 0;
    rk_random(&jitter, sizeof jitter);
    return d + (int64_t)(jitter % (d / 4 + 1));
}
