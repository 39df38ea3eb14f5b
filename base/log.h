/* log.h - log lines to stderr, a file (a descriptor) or syslog.
 *
 * Never pass a secret value: log keys, references, line numbers.
 * Tests read every line the daemon writes and fail on any test secret.
 */
#ifndef SECRETFS_LOG_H
#define SECRETFS_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(enum log_level max, bool use_syslog);
/* Lines to fd (stderr kept across daemonizing, or a log file). */
void log_init_fd(enum log_level max, int fd);
/* Are debug lines written? (To skip building them.) */
bool log_debug_on(void);
/* "error" "warn" "info" "debug" -> level; -1 when unknown. */
int log_level_parse(const char *s);
/* A line is cut at LOG_LINE_MAX bytes before it is escaped. */
#define LOG_LINE_MAX 1024
/* Every line is escaped on its way out (callers need not): backslash as
 * \\, newline, CR and tab as \n \r \t, other control bytes, and the
 * two bytes of a C1 control in UTF-8 (U+0080..U+009F), as \xHH.
 * log_escape writes s so into out (size > 0, cut to fit, never within an
 * escape) and returns its length. */
size_t log_escape(char *out, size_t size, const char *s);
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* log_msg, but a line of the same text is written at most once every
 * LOG_LIMIT_S seconds (a reader retrying in a loop must not flood the
 * log); the next one says how many were left out. */
#define LOG_LIMIT_S 10
void log_limited(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
