/* util.h — small helpers with no home of their own: randomness, hex,
 * time, bounded string copies, file reading with a cap, secure wiping. */
#ifndef RK_UTIL_H
#define RK_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "lib/err.h"

/* Cryptographically random bytes (OpenSSL's DRBG). */
rk_rc rk_random(void *buf, size_t len);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void rk_hex(const uint8_t *in, size_t len, char *out);
/* Parses exactly 2*len hex chars; RK_ERR_INVALID on anything else. */
rk_rc rk_unhex(const char *in, uint8_t *out, size_t len);

/* Wall clock in milliseconds since the epoch; monotonic ms for timeouts. */
int64_t rk_now_ms(void);
int64_t rk_mono_ms(void);
/* The monotonic clock in seconds, to the nanosecond (for timing runs). */
double rk_mono_s(void);
/* RFC 3339 UTC with milliseconds ("2026-11-27T16:22:00.000Z"); out >= 32 bytes. */
void rk_format_time(int64_t ms, char *out, size_t outlen);

/* Reads a whole file, at most cap bytes (RK_ERR_TOO_LARGE beyond). NUL-terminated. */
rk_rc rk_read_file(const char *path, size_t cap, char **out, size_t *outlen);
/* Writes a file atomically (temp + rename) with the given mode. */
rk_rc rk_write_file(const char *path, const void *data, size_t len, unsigned mode);
/* on: rk_write_file skips its fsync (the whole process) until turned off;
 * the writer then calls rk_sync_folder before it reports success. For one
 * command writing thousands of files (`net init`), nothing else. */
void rk_write_defer_sync(int on);
/* Flushes to disk everything written on the file system holding dir (syncfs). */
rk_rc rk_sync_folder(const char *dir);

/* Joins dir and a relative path ("" or absolute path returns path as is). */
void rk_path_join(char *out, size_t outlen, const char *dir, const char *path);
/* Directory part of path into out. */
void rk_dirname(const char *path, char *out, size_t outlen);
/* mkdir -p with mode. */
rk_rc rk_mkdirs(const char *path, unsigned mode);

/* RK_ERR_DENIED when group or others may read the file (keys must be 0600,
 * standard 第5-2(5)); RK_ERR_NOT_FOUND when it is missing. */
rk_rc rk_file_private(const char *path);

/* Waits on cond (mutex held) for at most ms milliseconds of wall clock. */
void rk_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mutex, int64_t ms);

/* Appends n bytes to a growing NUL-terminated buffer (*buf, *len, *cap),
 * refusing to grow past max bytes: RK_ERR_TOO_LARGE, or RK_ERR_NOMEM. */
rk_rc rk_buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n, size_t max);

/* Wipes memory the compiler may not optimise away (OPENSSL_cleanse). */
void rk_wipe(void *p, size_t len);
/* Makes jansson wipe every block it frees (a provided value or a My Number
 * passes through its strings and objects). Its blocks stay malloc's, so
 * text from json_dumps is still freed with free(). Call first in main(). */
void rk_json_wipe_on_free(void);

/* True if s is exactly n ASCII digits. */
int rk_is_digits(const char *s, size_t n);

/* A retry's delay: min_ms doubled for each attempt after the first, at
 * most max_ms, plus up to a quarter more at random (so that retries after
 * an outage spread out). */
int64_t rk_backoff_ms(int attempts, int64_t min_ms, int64_t max_ms);

/* A string found twice among strs[0..n) (one of them), else NULL; -1 in
 * *err when memory ran out. For the ids of a batch, each to be used once. */
const char *rk_duplicate(const char *const *strs, size_t n, int *err);

#endif
