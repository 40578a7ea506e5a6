/* err.h — the one error type every renkei function returns.
 *
 * Functions return rk_rc; RK_OK is 0. The caller decides what an error means
 * for it (an HTTP status, an exit code, a retry). Messages for people come
 * from rk_strerror() plus whatever detail the caller adds. */
#ifndef RK_ERR_H
#define RK_ERR_H

typedef enum {
    RK_OK = 0,
    RK_ERR_NOMEM,      /* allocation failed */
    RK_ERR_IO,         /* file or socket I/O failed */
    RK_ERR_INVALID,    /* input is malformed or out of range */
    RK_ERR_NOT_FOUND,  /* the thing asked for does not exist */
    RK_ERR_CONFLICT,   /* same id, different content; or state forbids it */
    RK_ERR_EXISTS,     /* already there (a success for idempotent callers) */
    RK_ERR_CRYPTO,     /* key, certificate, signature or cipher failure */
    RK_ERR_STORE,      /* the database refused or failed */
    RK_ERR_UPSTREAM,   /* a peer could not be reached or answered badly */
    RK_ERR_TIMEOUT,    /* a peer did not answer in time */
    RK_ERR_DENIED,     /* the caller may not do this */
    RK_ERR_TOO_LARGE,  /* input over a size cap */
    RK_ERR_CONFIG,     /* configuration is missing or wrong */
    RK_ERR_BUSY,       /* no capacity now (a full queue): retry later */
    RK_ERR_UNAVAILABLE, /* the database is unreachable, its connection lost, or it is a
                           standby (a failover): nothing was done; retry with the same id */
    RK_ERR__COUNT
} rk_rc;

const char *rk_strerror(rk_rc rc);

#endif
