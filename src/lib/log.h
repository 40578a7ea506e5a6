/* log.h — one-line logs to stderr: time, node, level, message; as text
 * (`TIME NODE LEVEL: MESSAGE`) or, for journald and log collectors, as one
 * JSON object a line ({"time","level","node","msg"}), as `[node] log_format`
 * says.
 *
 * Rule (第5-2, 第8): never pass a My Number, a resident code or payload
 * content to these functions; log ids, codes' digests and outcomes only.
 * Control characters become '?' (a peer's text cannot forge a line), and a
 * My Number passed by mistake (12 digits with a good check digit) is masked
 * as 12 '#'. */
#ifndef RK_LOG_H
#define RK_LOG_H

typedef enum { RK_LOG_DEBUG, RK_LOG_INFO, RK_LOG_WARN, RK_LOG_ERROR } rk_log_level;

typedef enum { RK_LOG_TEXT, RK_LOG_JSON } rk_log_format;

void rk_log_init(const char *node_id, rk_log_level min_level, rk_log_format format);
void rk_log(rk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rk_debug(...) rk_log(RK_LOG_DEBUG, __VA_ARGS__)
#define rk_info(...)  rk_log(RK_LOG_INFO, __VA_ARGS__)
#define rk_warn(...)  rk_log(RK_LOG_WARN, __VA_ARGS__)
#define rk_error(...) rk_log(RK_LOG_ERROR, __VA_ARGS__)

#endif
