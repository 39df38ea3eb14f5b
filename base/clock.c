/* clock.c - the one monotonic clock, sleep and RFC 3339 parser. */
#include "clock.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <time.h>

int64_t clock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec clock_deadline(clockid_t clk, int64_t ms)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

void clock_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* "+hh:mm" or "-hh:mm" at p in seconds east of UTC; 0 with *ok false
 * when p is not one. */
static long long clock_zone(const char *p, int *ok)
{
	const unsigned char *u = (const unsigned char *)p;
	long long off;

	*ok = (*p == '+' || *p == '-') && isdigit(u[1]) && isdigit(u[2]) &&
	      p[3] == ':' && isdigit(u[4]) && isdigit(u[5]);
	if (!*ok)
		return 0;
	off = (((p[1] - '0') * 10 + (p[2] - '0')) * 60LL +
	       (p[4] - '0') * 10 + (p[5] - '0')) * 60;
	return *p == '+' ? off : -off;
}

long long clock_rfc3339_parse(const char *s)
{
	struct tm tm = { 0 };
	const char *p;
	long long t;
	int zoned;

	if (!s)
		return -1;
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -1;
	t = (long long)timegm(&tm);
	if (*p == '.')
		while (isdigit((unsigned char)*++p))
			;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else {
		t -= clock_zone(p, &zoned);
		if (zoned)
			p += 6;
	}
	return *p ? -1 : t;
}
