#include "lib/err.h"

const char *rk_strerror(rk_rc rc)
{
    static const char *const text[RK_ERR__COUNT] = {
        [RK_OK] = "ok",
        [RK_ERR_NOMEM] = "out of memory",
        [RK_ERR_IO] = "input/output error",
        [RK_ERR_INVALID] = "invalid input",
        [RK_ERR_NOT_FOUND] = "not found",
        [RK_ERR_CONFLICT] = "conflict",
        [RK_ERR_EXISTS] = "already exists",
        [RK_ERR_CRYPTO] = "cryptographic failure",
        [RK_ERR_STORE] = "storage failure",
        [RK_ERR_UPSTREAM] = "peer unavailable",
        [RK_ERR_TIMEOUT] = "peer timed out",
        [RK_ERR_DENIED] = "permission denied",
        [RK_ERR_TOO_LARGE] = "too large",
        [RK_ERR_CONFIG] = "configuration error",
        [RK_ERR_BUSY] = "busy",
        [RK_ERR_UNAVAILABLE] = "database unavailable",
    };
    if ((unsigned)rc >= RK_ERR__COUNT || !text[rc])
        return "unknown error";
    return text[rc];
}
