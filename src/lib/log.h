/* log.h — one-line logs to stderr: time, node, level, message.
 *
 * Rule (第5-2, 第8): never pass a My Number, a resident code or payload
 * content to these functions; log ids, codes' digests and outcomes only. */
#ifndef RK_LOG_H
#define RK_LOG_H

typedef enum { RK_LOG_DEBUG, RK_LOG_INFO, RK_LOG_WARN, RK_LOG_ERROR } rk_log_level;

void rk_log_init(const char *node_id, rk_log_level min_level);
void rk_log(rk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rk_debug(...) rk_log(RK_LOG_DEBUG, __VA_ARGS__)
#define rk_info(...)  rk_log(RK_LOG_INFO, __VA_ARGS__)
#define rk_warn(...)  rk_log(RK_LOG_WARN, __VA_ARGS__)
#define rk_error(...) rk_log(RK_LOG_ERROR, __VA_ARGS__)

#endif
