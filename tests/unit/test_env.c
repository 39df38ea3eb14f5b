/* test_env.c - unit tests for the env provider (providers/env.c): the
 * process environment, filtered by a prefix, read-only.
 * Run: build/tests/test_env
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "providers/kit.h"
#include "providers/provider.h"

#define PROVIDER_TEST_NAME "environ"
#define PROVIDER_TEST_TYPE "env"
#include "provider_test.h"

static const struct provider_ops *ops(void)
{
	return provider_ops_find("env");
}

static void *open_env(const char *prefix, const char *strip)
{
	struct conf c;
	struct err e;
	void *st = NULL;

	if (prefix && strip)
		conf_make(&c, "prefix", prefix, "strip_prefix", strip, NULL);
	else if (prefix)
		conf_make(&c, "prefix", prefix, NULL);
	else
		conf_make(&c, NULL);
	assert_int_equal(ops()->create(&c.pc, &st, &e), 0);
	return st;
}

static void test_one_variable(void **state)
{
	void *st = open_env(NULL, NULL);
	struct entry en = ENTRY_INIT;
	struct err e;

	(void)state;
	setenv("SFS_TEST_DB_PASSWORD", "s3cr=t\nline", 1);
	assert_int_equal(ops()->fetch(st, "SFS_TEST_DB_PASSWORD", NULL, &en, &e), 0);
	assert_int_equal(en.map.n, 1);
	assert_val(&en, "", "s3cr=t\nline", 11);
	assert_true(en.version[0]);
	entry_free(&en);
	assert_int_equal(ops()->fetch(st, "SFS_TEST_NOPE", NULL, &en, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "SFS_TEST_NOPE: no such variable"));
	ops()->destroy(st);
}

static void test_prefix_stripped_and_kept(void **state)
{
	void *st = open_env("SFSAPP_", NULL);
	struct entry en = ENTRY_INIT;
	char v1[PROVIDER_VERSION_MAX];
	struct err e;

	(void)state;
	setenv("SFSAPP_A", "1", 1);
	setenv("SFSAPP_B", "", 1);
	setenv("SFSAPP_", "prefix alone", 1);
	setenv("SFSOTHER", "x", 1);
	assert_int_equal(ops()->fetch(st, "", NULL, &en, &e), 0);
	assert_int_equal(en.map.n, 2);
	assert_val(&en, "A", "1", 1);
	assert_val(&en, "B", "", 0);
	strcpy(v1, en.version);
	entry_free(&en);
	/* one variable by its stripped name */
	assert_int_equal(ops()->fetch(st, "A", NULL, &en, &e), 0);
	assert_val(&en, "", "1", 1);
	entry_free(&en);
	/* a change is a new version */
	setenv("SFSAPP_A", "2", 1);
	assert_int_equal(ops()->fetch(st, "", NULL, &en, &e), 0);
	assert_string_not_equal(en.version, v1);
	entry_free(&en);
	ops()->destroy(st);

	st = open_env("SFSAPP_", "false");
	assert_int_equal(ops()->fetch(st, "", NULL, &en, &e), 0);
	assert_int_equal(en.map.n, 3);
	assert_val(&en, "SFSAPP_A", "2", 1);
	assert_val(&en, "SFSAPP_", "prefix alone", 12);
	entry_free(&en);
	assert_int_equal(ops()->fetch(st, "A", NULL, &en, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	ops()->destroy(st);
}

static void test_read_only(void **state)
{
	void *st = open_env(NULL, NULL);
	struct kvmap m = KVMAP_INIT;
	struct err e;

	(void)state;
	assert_false(ops()->caps & PROVIDER_CAP_WRITE);
	assert_int_equal(ops()->store(st, "", NULL, &m, NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_READONLY);
	assert_non_null(strstr(e.msg, "read-only"));
	ops()->destroy(st);
}

static void test_checks(void **state)
{
	struct conf c;
	struct err e;
	void *st = NULL;

	(void)state;
	assert_int_equal(ops()->check("", NULL, &e), 0);
	assert_int_equal(ops()->check("DB_PASSWORD", NULL, &e), 0);
	assert_int_equal(ops()->check("A=B", NULL, &e), -1);
	assert_int_equal(ops()->check("A", "x=1", &e), -1);
	assert_non_null(strstr(e.msg, "no ?parameters"));
	conf_make(&c, "strip_prefix", "yes", NULL);
	assert_int_equal(ops()->create(&c.pc, &st, &e), -1);
	assert_non_null(strstr(e.msg, "strip_prefix"));
	conf_make(&c, "prefix", "A=", NULL);
	assert_int_equal(ops()->create(&c.pc, &st, &e), -1);
}

static void test_too_big(void **state)
{
	void *st = open_env(NULL, NULL);
	struct entry en = ENTRY_INIT;
	char *big = malloc(64 * 1024 + 2);
	struct err e;

	(void)state;
	memset(big, 'x', 64 * 1024 + 1);
	big[64 * 1024 + 1] = '\0';
	setenv("SFS_TEST_BIG", big, 1);
	assert_int_equal(ops()->fetch(st, "SFS_TEST_BIG", NULL, &en, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	unsetenv("SFS_TEST_BIG");
	free(big);
	ops()->destroy(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_variable),
		cmocka_unit_test(test_prefix_stripped_and_kept),
		cmocka_unit_test(test_read_only),
		cmocka_unit_test(test_checks),
		cmocka_unit_test(test_too_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
