/* clock.h - time: a monotonic millisecond clock, sleeping, RFC 3339. */
#ifndef SECRETFS_CLOCK_H
#define SECRETFS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in milliseconds: the clock of every deadline and age. */
int64_t clock_now_ms(void);

/* The time ms milliseconds from now on clock clk, for
 * pthread_cond_timedwait (the clock its condition variable uses). */
struct timespec clock_deadline(clockid_t clk, int64_t ms);

/* Sleep ms milliseconds, resuming after signals. */
void clock_sleep_ms(long ms);

/* "2024-05-01T10:00:00Z", with optional fraction and a Z/z or ±hh:mm
 * zone (none means UTC), in seconds since the epoch; -1 when s is NULL or
 * does not parse. */
long long clock_rfc3339_parse(const char *s);

#endif
