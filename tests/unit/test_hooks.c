/* test_hooks.c - fs/hooks.c: argv splitting, and the runner's thread with a
 * fake digest: debounce, no overlap, timeout, the child's environment. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "fs/hooks.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int version;	/* what the fake app shows */

static int fake_digest(void *ctx, const struct app_conf *app, struct kvmap *out,
		       struct err *e)
{
	char v[16];

	(void)ctx;
	(void)app;
	(void)e;
	pthread_mutex_lock(&lock);
	snprintf(v, sizeof(v), "%d", version);
	pthread_mutex_unlock(&lock);
	kvmap_set(out, "STEADY", "x", 1);
	return kvmap_set(out, "ROTATED", v, strlen(v));
}

static char logpath[64];

struct rig {
	struct config cfg;
	struct app_conf app;
	struct hooks *h;
};

static void rig_start(struct rig *r, const char *cmd, long delay_ms, long timeout_ms)
{
	struct err e = { 0 };

	memset(r, 0, sizeof(*r));
	strcpy(logpath, "/tmp/test_hooks.XXXXXX");
	close(mkstemp(logpath));
	r->app.name = "billing";
	r->app.refresh_ms = 3600 * 1000;	/* only pokes compare */
	r->app.on_change_delay_ms = delay_ms;
	r->app.on_change_timeout_ms = timeout_ms;
	assert_int_equal(hooks_split(cmd, &r->app.on_change, &e), 0);
	r->cfg.apps = &r->app;
	r->cfg.napps = 1;
	version = 0;
	r->h = hooks_start(&r->cfg, fake_digest, NULL, NULL, &e);
	assert_non_null(r->h);
	clock_sleep_ms(150);	/* the first sight */
}

static void rotate(struct rig *r)
{
	pthread_mutex_lock(&lock);
	version++;
	pthread_mutex_unlock(&lock);
	hooks_poke(r->h, "billing");
}

static char *slurp(void)
{
	static char buf[4096];
	FILE *f = fopen(logpath, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	buf[n] = '\0';
	if (f)
		fclose(f);
	return buf;
}

static void rig_stop(struct rig *r)
{
	hooks_stop(r->h);
	strv_free(&r->app.on_change);
	unlink(logpath);
}

static void wait_runs(struct rig *r, unsigned n, long max_ms)
{
	int64_t end = clock_now_ms() + max_ms;

	while (hooks_runs(r->h, "billing") < n && clock_now_ms() < end)
		clock_sleep_ms(20);
}

static void test_split(void **state)
{
	struct strv v = { 0 };
	struct err e = { 0 };

	(void)state;
	assert_int_equal(hooks_split("kill  -HUP '$(cat x)' \"a \\\"b\\\" \\$c\\d\" e\\ f '' x\"y\"z", &v, &e), 0);
	assert_int_equal(v.n, 7);
	assert_string_equal(v.v[0], "kill");
	assert_string_equal(v.v[1], "-HUP");
	assert_string_equal(v.v[2], "$(cat x)");
	assert_string_equal(v.v[3], "a \"b\" $c\\d");
	assert_string_equal(v.v[4], "e f");
	assert_string_equal(v.v[5], "");
	assert_string_equal(v.v[6], "xyz");
	assert_null(v.v[7]);
	strv_free(&v);
	assert_int_equal(hooks_split("sh -c 'echo", &v, &e), -1);
	assert_string_equal(e.msg, "unterminated ' quote");
	assert_int_equal(hooks_split("  ", &v, &e), -1);
	assert_string_equal(e.msg, "an empty command");
}

/* A burst of changes inside the delay is one run, with every name once,
 * in a minimal environment that is not ours. */
static void test_debounce_and_environment(void **state)
{
	struct rig r;
	char cmd[256];

	(void)state;
	setenv("SFS_TEST_CANARY", "daemon-only", 1);
	rig_start(&r, "true", 300, 5000);	/* the command, once logpath is made: */
	strv_free(&r.app.on_change);
	snprintf(cmd, sizeof(cmd), "sh -c 'env | sort >> %s; echo run >> %s'", logpath, logpath);
	assert_int_equal(hooks_split(cmd, &r.app.on_change, &(struct err){ 0 }), 0);
	for (int i = 0; i < 3; i++) {
		rotate(&r);
		clock_sleep_ms(60);
	}
	assert_int_equal(hooks_runs(r.h, "billing"), 0);
	wait_runs(&r, 1, 3000);
	clock_sleep_ms(500);
	assert_int_equal(hooks_runs(r.h, "billing"), 1);
	assert_non_null(strstr(slurp(), "SECRETFS_APP=billing\n"));
	assert_non_null(strstr(slurp(), "SECRETFS_CHANGED=ROTATED\n"));
	assert_null(strstr(slurp(), "SFS_TEST_CANARY"));
	assert_null(strstr(slurp(), "STEADY"));
	assert_int_equal(strstr(slurp(), "run\n") - slurp(), strlen(slurp()) - 4);
	rig_stop(&r);
}

/* A change while the command runs starts one more run after it, never
 * a second one beside it. */
static void test_no_overlap(void **state)
{
	struct rig r;
	char cmd[256];

	(void)state;
	rig_start(&r, "true", 0, 5000);
	strv_free(&r.app.on_change);
	snprintf(cmd, sizeof(cmd), "sh -c 'echo start >> %s; sleep 0.4; echo end >> %s'",
		 logpath, logpath);
	assert_int_equal(hooks_split(cmd, &r.app.on_change, &(struct err){ 0 }), 0);
	rotate(&r);
	clock_sleep_ms(150);
	rotate(&r);
	wait_runs(&r, 2, 4000);
	assert_int_equal(hooks_runs(r.h, "billing"), 2);
	assert_string_equal(slurp(), "start\nend\nstart\nend\n");
	rig_stop(&r);
}

/* Past on_change_timeout the process group is killed. */
static void test_timeout_kills_the_group(void **state)
{
	struct rig r;
	char cmd[256];
	int64_t t0;

	(void)state;
	rig_start(&r, "true", 0, 300);
	strv_free(&r.app.on_change);
	snprintf(cmd, sizeof(cmd), "sh -c 'sleep 5 & sleep 5; echo survived >> %s'", logpath);
	assert_int_equal(hooks_split(cmd, &r.app.on_change, &(struct err){ 0 }), 0);
	t0 = clock_now_ms();
	rotate(&r);
	wait_runs(&r, 1, 4000);
	assert_int_equal(hooks_runs(r.h, "billing"), 1);
	assert_true(clock_now_ms() - t0 < 2000);
	clock_sleep_ms(200);
	assert_string_equal(slurp(), "");
	rig_stop(&r);
}

/* hooks_trust_check on cmd: 0, or -1 with needle in the message. */
static void trust_expect(const char *cmd, bool as_user, uid_t uid,
			 const char *needle)
{
	struct app_conf app = { .name = "billing", .hook_as_user = as_user,
				.hook_uid = uid };
	struct err e = { 0 };
	int rc;

	assert_int_equal(hooks_split(cmd, &app.on_change, &e), 0);
	rc = hooks_trust_check(&app, &e);
	if (needle && (rc != -1 || !strstr(e.msg, needle)))
		fail_msg("%s: got %d \"%s\", want \"%s\"", cmd, rc, e.msg, needle);
	if (!needle && rc != 0)
		fail_msg("%s: refused: %s", cmd, e.msg);
	strv_free(&app.on_change);
}

/* The program, a sh -c script's first word, and their folders: owned by
 * root, us or on_change_user, writable by nobody else. */
static void test_trust(void **state)
{
	char dir[64] = "/tmp/test_hooks.XXXXXX", hook[96], cmd[512], want[512];
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(hook, sizeof(hook), "%s/hook", dir);
	f = fopen(hook, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\n", f);
	fclose(f);
	assert_int_equal(chmod(hook, 0755), 0);

	trust_expect("sh -c 'kill -HUP 1'", false, 0, NULL);
	trust_expect("usr/bin/env true", false, 0, NULL);	/* from / */
	trust_expect("no-such-hook-program", false, 0, "no-such-hook-program: not found in");
	trust_expect(hook, false, 0, NULL);
	assert_int_equal(chmod(hook, 0775), 0);
	snprintf(want, sizeof(want), "program %s: %s: writable by group or others (mode 0775), so they could run any command as ", hook, hook);
	trust_expect(hook, false, 0, want);
	snprintf(want, sizeof(want), "chmod go-w %s", hook);
	trust_expect(hook, false, 0, want);
	snprintf(cmd, sizeof(cmd), "/bin/sh -ec '%s \"$SECRETFS_APP\"'", hook);
	snprintf(want, sizeof(want), "program %s (run by /bin/sh -c): ", hook);
	trust_expect(cmd, false, 0, want);
	snprintf(cmd, sizeof(cmd), "env sh -c '%s'", hook);	/* not a shell */
	trust_expect(cmd, false, 0, NULL);

	assert_int_equal(chmod(hook, 0755), 0);
	assert_int_equal(chmod(dir, 0777), 0);	/* the program could be replaced */
	snprintf(want, sizeof(want), "%s: writable by group or others (mode 0777), so they could run any command as uid 4242: chmod go-w %s", dir, dir);
	trust_expect(hook, true, 4242, want);
	assert_int_equal(chmod(dir, 01777), 0);	/* but not in a sticky one */
	trust_expect(hook, false, 0, NULL);
	assert_int_equal(chmod(dir, 0700), 0);
	if (geteuid() == 0) {
		assert_int_equal(chown(hook, 4242, -1), 0);
		trust_expect(hook, false, 0, "owned by uid 4242");
		trust_expect(hook, true, 4242, NULL);	/* it runs as its owner */
		trust_expect(hook, true, 4243, "chown root");
	}
	unlink(hook);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_trust),
		cmocka_unit_test(test_debounce_and_environment),
		cmocka_unit_test(test_no_overlap),
		cmocka_unit_test(test_timeout_kills_the_group),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
