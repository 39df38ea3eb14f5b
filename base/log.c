/* log.c - see log.h */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"

static enum log_level log_max = LOG_LVL_INFO;
static bool log_syslog;
static int log_fd = STDERR_FILENO;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

void log_init(enum log_level max, bool use_syslog)
{
	log_max = max;
	log_syslog = use_syslog;
	log_fd = STDERR_FILENO;
	if (use_syslog)
		openlog("secretfs", LOG_PID, LOG_DAEMON);
}

void log_init_fd(enum log_level max, int fd)
{
	log_max = max;
	log_syslog = false;
	log_fd = fd;
}

bool log_debug_on(void)
{
	return log_max >= LOG_LVL_DEBUG;
}

int log_level_parse(const char *s)
{
	for (int i = 0; s && i < 4; i++)
		if (!strcmp(s, log_names[i]))
			return i;
	return -1;
}

size_t log_escape(char *out, size_t size, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	if (size == 0)
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[9] = { '\\', 0, 0, 0, 0, 0, 0, 0, 0 };
		size_t len = 2;

		if (c == 0xc2 && (unsigned char)s[1] >= 0x80 &&
		    (unsigned char)s[1] <= 0x9f) {
			/* a C1 control in UTF-8 (U+009B starts a terminal
			 * escape as ESC [ does): both bytes as \xHH */
			c = (unsigned char)*++s;
			memcpy(esc, "\\xc2\\x", 6);
			esc[6] = hex[c >> 4];
			esc[7] = hex[c & 15];
			len = 8;
		} else if (c == '\\')
			esc[1] = '\\';
		else if (c == '\n')
			esc[1] = 'n';
		else if (c == '\r')
			esc[1] = 'r';
		else if (c == '\t')
			esc[1] = 't';
		else if (c < 0x20 || c == 0x7f) {
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			len = 4;
		} else {
			esc[0] = (char)c;
			len = 1;
		}
		if (n + len >= size)
			break;	/* cut, never in the middle of an escape */
		memcpy(out + n, esc, len);
		n += len;
	}
	out[n] = '\0';
	return n;
}

/* Every line goes out here, escaped: a name from a store or the kernel may
 * hold a newline, which would otherwise forge a line of its own. */
static void log_line(enum log_level lvl, const char *line)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char safe[LOG_LINE_MAX * 4];
	char out[sizeof(safe) + 32];
	int n;

	log_escape(safe, sizeof(safe), line);
	if (log_syslog) {
		syslog(prio[lvl], "%s", safe);
		return;
	}
	/* one write per line so lines of threads never interleave */
	n = snprintf(out, sizeof(out), "secretfs: %s: %s\n", log_names[lvl], safe);
	if (n > (int)sizeof(out) - 1)
		n = (int)sizeof(out) - 1;
	if (write(log_fd, out, (size_t)n) < 0)
		return;	/* nowhere left to say so */
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	va_list ap;

	if (lvl > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_line(lvl, line);
}

/* Recent lines by hash of their text: when each was last written and how
 * many were left out since. */
#define LOG_LIMIT_SLOTS 64
static struct {
	uint64_t hash;
	time_t last;
	unsigned skipped;
} log_recent[LOG_LIMIT_SLOTS];
static pthread_mutex_t log_recent_lock = PTHREAD_MUTEX_INITIALIZER;

void log_limited(enum log_level lvl, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	uint64_t h;
	unsigned skipped = 0;
	time_t now = time(NULL);
	bool write_it;
	va_list ap;

	if (lvl > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	h = hash_fnv1a(HASH_FNV1A_INIT, line);
	pthread_mutex_lock(&log_recent_lock);
	{
		size_t i = h % LOG_LIMIT_SLOTS;

		write_it = log_recent[i].hash != h || now - log_recent[i].last >= LOG_LIMIT_S;
		if (write_it) {
			skipped = log_recent[i].hash == h ? log_recent[i].skipped : 0;
			log_recent[i].hash = h;
			log_recent[i].last = now;
			log_recent[i].skipped = 0;
		} else {
			log_recent[i].skipped++;
		}
	}
	pthread_mutex_unlock(&log_recent_lock);
	if (!write_it)
		return;
	if (skipped)
		log_msg(lvl, "%s (and %u more like it in %d s)", line, skipped, LOG_LIMIT_S);
	else
		log_line(lvl, line);
}
