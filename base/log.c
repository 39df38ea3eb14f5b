/* log.c - see log.h */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static enum log_level log_max = LOG_LVL_INFO;
static bool log_syslog;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

void log_init(enum log_level max, bool use_syslog)
{
	log_max = max;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog("secretfs", LOG_PID, LOG_DAEMON);
}

int log_level_parse(const char *s)
{
	for (int i = 0; s && i < 4; i++)
		if (!strcmp(s, log_names[i]))
			return i;
	return -1;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	va_list ap;

	if (lvl > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog)
		syslog(prio[lvl], "%s", line);
	else
		/* one write per line so lines of threads never interleave */
		fprintf(stderr, "secretfs: %s: %s\n", log_names[lvl], line);
}
