/* test_xattr.c - the user.secretfs.* attributes (fs/xattr.c) over the file
 * store: the names a file lists, each value (never a secret), what has no
 * such attribute, and the two controls, refresh and regenerate, with what
 * they refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/xattr.h"
#include "file_test.h"

struct fixture {
	char dir[64];
	struct config cfg;
	struct appfs fs;
	struct edit ed;
};

static const struct edit_who vim = { .pid = 100, .uid = 1000, .gid = 1000 };

#define APP 0	/* billing: a store, a mapping and a generate: key */
#define BROKEN 1	/* a mapping to an entry that is not there */

static void on_changed(void *ctx, size_t app)
{
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char text[1024], path[128];
	struct err e = { 0 };

	strcpy(fx->dir, "/tmp/secretfs-test-xattr-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(path, sizeof(path), "%s/store", fx->dir);
	mkdir(path, 0700);
	write_file(fx->dir, "store/billing.env", "DB='a'\nPLAIN='x'\n");
	write_file(fx->dir, "store/shared.env", "URL='postgres://db'\n");
	snprintf(text, sizeof(text),
		 "[provider local]\ntype = file\ndirectory = %s/store\n"
		 "[app billing]\nstore = local://billing\n"
		 "env.URL = local://shared#URL\n"
		 "env.TOKEN = generate:hex:16\n"
		 "[app broken]\nenv.GONE = local://missing#X\n", fx->dir);
	write_file(fx->dir, "secretfs.conf", text);
	snprintf(path, sizeof(path), "%s/secretfs.conf", fx->dir);
	if (config_load(path, &fx->cfg, &e) < 0)
		fail_msg("config: %s", e.msg);
	assert_int_equal(appfs_open(&fx->fs, &fx->cfg, &e), 0);
	assert_int_equal(edit_init(&fx->ed, &fx->fs, &fx->cfg, on_changed, fx), 0);
	*state = fx;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	edit_destroy(&fx->ed);
	appfs_close(&fx->fs);
	config_free(&fx->cfg);
	nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* Attribute attr (without the prefix) of name in app, as a static string. */
static const char *get(struct fixture *fx, size_t app, const char *name,
		       const char *attr)
{
	static char text[sizeof(((struct xattr_value *)0)->text) + 1];
	struct xattr_value v;
	char full[64];
	struct err e = { 0 };

	snprintf(full, sizeof(full), XATTR_PREFIX "%s", attr);
	if (xattr_get(&fx->ed, app, name, full, &v, &e) < 0)
		fail_msg("%s of %s: %s", attr, name, e.msg);
	assert_true(v.len < sizeof(text));
	memcpy(text, v.text, v.len);
	text[v.len] = '\0';
	return text;
}

/* The error code of getting attr (the whole name) of name. */
static enum err_code get_fails(struct fixture *fx, const char *name,
			       const char *attr)
{
	struct xattr_value v;
	struct err e = { 0 };

	assert_int_equal(xattr_get(&fx->ed, APP, name, attr, &v, &e), -1);
	return e.code;
}

/* A file of APP as a static string. */
static const char *rd(struct fixture *fx, const char *name)
{
	static char text[1024];
	struct secbuf out = SECBUF_INIT;
	struct err e = { 0 };

	if (app_read(&fx->fs, &fx->cfg.apps[APP], name, &out, NULL, &e) < 0)
		fail_msg("read %s: %s", name, e.msg);
	assert_true(out.len < sizeof(text));
	memcpy(text, out.data, out.len + 1);
	secbuf_free(&out);
	return text;
}

/* ---- names ---- */

static void test_names(void **state)
{
	static const char *const want[] = { "source", "version", "age", "stale", "error" };
	size_t len, i = 0;
	const char *names = xattr_names(&len), *p;

	for (p = names; p < names + len; p += strlen(p) + 1, i++) {
		assert_true(i < 5);
		assert_true(!strncmp(p, XATTR_PREFIX, strlen(XATTR_PREFIX)));
		assert_string_equal(p + strlen(XATTR_PREFIX), want[i]);
	}
	assert_int_equal(i, 5);
	assert_int_equal(names[len - 1], '\0');	/* the last one ends too */
}

/* ---- values ---- */

static void test_source(void **state)
{
	struct fixture *fx = *state;

	assert_string_equal(get(fx, APP, "DB", "source"), "local://billing#DB");
	assert_string_equal(get(fx, APP, "URL", "source"), "local://shared#URL");
	assert_string_equal(get(fx, APP, "TOKEN", "source"), "generate:hex:16");
	/* .env: every source, one a line, without the last line's newline */
	assert_string_equal(get(fx, APP, ".env", "source"),
			    "local://billing\ngenerate:hex:16\nlocal://shared#URL");
}

static void test_freshness(void **state)
{
	struct fixture *fx = *state;
	char version[sizeof(((struct app_meta *)0)->version)];

	rd(fx, "DB");	/* fetched now */
	strcpy(version, get(fx, APP, "DB", "version"));
	assert_true(strlen(version) > 0);
	assert_string_equal(get(fx, APP, "DB", "age"), "0");
	assert_string_equal(get(fx, APP, "DB", "stale"), "0");
	assert_string_equal(get(fx, APP, "DB", "error"), "");
	/* a key of the same store entry has its version */
	assert_string_equal(get(fx, APP, "PLAIN", "version"), version);
}

static void test_no_value_shown(void **state)
{
	struct fixture *fx = *state;
	const char *attrs[] = { "source", "version", "age", "stale", "error" };

	for (size_t i = 0; i < 5; i++) {
		assert_null(strstr(get(fx, APP, "URL", attrs[i]), "postgres"));
		assert_null(strstr(get(fx, APP, ".env", attrs[i]), "postgres"));
	}
}

static void test_provider_error(void **state)
{
	struct fixture *fx = *state;

	/* the failure is the value of error, not a failure of the get */
	assert_true(strlen(get(fx, BROKEN, "GONE", "error")) > 0);
	assert_string_equal(get(fx, BROKEN, "GONE", "source"), "local://missing#X");
}

static void test_no_such_attribute(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(get_fails(fx, "DB", XATTR_PREFIX "value"), ERR_NOATTR);
	assert_int_equal(get_fails(fx, "DB", XATTR_PREFIX), ERR_NOATTR);
	assert_int_equal(get_fails(fx, "DB", "user.other"), ERR_NOATTR);
	assert_int_equal(get_fails(fx, "DB", "security.capability"), ERR_NOATTR);
	assert_int_equal(get_fails(fx, "DB", "user.secretfs"), ERR_NOATTR);
}

static void test_scratch_file_has_none(void **state)
{
	struct fixture *fx = *state;
	struct edit_handle *h;
	struct err e = { 0 };

	assert_int_equal(edit_create(&fx->ed, APP, ".env.swp", &vim, 0600, &h, &e), 0);
	assert_int_equal(get_fails(fx, ".env.swp", XATTR_PREFIX "source"), ERR_NOATTR);
	assert_int_equal(edit_release(&fx->ed, h, &e), 0);
}

/* ---- controls ---- */

static int may_set(struct fixture *fx, const char *name, const char *attr)
{
	struct err e = { 0 };

	if (xattr_may_set(&fx->ed, APP, name, attr, &e) == 0)
		return ERR_OK;
	return e.code;
}

static void test_may_set(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(may_set(fx, "DB", XATTR_PREFIX "refresh"), ERR_OK);
	assert_int_equal(may_set(fx, NULL, XATTR_PREFIX "refresh"), ERR_OK);
	assert_int_equal(may_set(fx, "TOKEN", XATTR_PREFIX "regenerate"), ERR_OK);
	/* whether DB is a generate: key is regenerate's to say */
	assert_int_equal(may_set(fx, "DB", XATTR_PREFIX "regenerate"), ERR_OK);
	assert_int_equal(may_set(fx, NULL, XATTR_PREFIX "regenerate"), ERR_INVALID);
	assert_int_equal(may_set(fx, "DB", XATTR_PREFIX "source"), ERR_NOTSUP);
	assert_int_equal(may_set(fx, "DB", XATTR_PREFIX "frobnicate"), ERR_NOTSUP);
	assert_int_equal(may_set(fx, "DB", "user.mine"), ERR_NOTSUP);
	assert_int_equal(may_set(fx, NULL, "user.mine"), ERR_NOTSUP);
}

static void test_refresh(void **state)
{
	struct fixture *fx = *state;
	struct err e = { 0 };

	assert_string_equal(rd(fx, "DB"), "a");
	/* changed behind the cache: served from it until refreshed */
	write_file(fx->dir, "store/billing.env", "DB='b'\nPLAIN='x'\n");
	assert_string_equal(rd(fx, "DB"), "a");
	assert_int_equal(xattr_set(&fx->ed, APP, NULL, XATTR_PREFIX "refresh", &e), 0);
	assert_string_equal(rd(fx, "DB"), "b");
	/* from a file as well */
	write_file(fx->dir, "store/billing.env", "DB='c'\nPLAIN='x'\n");
	assert_int_equal(xattr_set(&fx->ed, APP, "PLAIN", XATTR_PREFIX "refresh", &e), 0);
	assert_string_equal(rd(fx, "DB"), "c");
}

static void test_regenerate(void **state)
{
	struct fixture *fx = *state;
	char before[64];
	struct err e = { 0 };

	snprintf(before, sizeof(before), "%s", rd(fx, "TOKEN"));
	assert_int_equal(strlen(before), 32);
	assert_int_equal(xattr_set(&fx->ed, APP, "TOKEN", XATTR_PREFIX "regenerate", &e), 0);
	assert_int_equal(strlen(rd(fx, "TOKEN")), 32);
	assert_string_not_equal(rd(fx, "TOKEN"), before);
	assert_string_equal(rd(fx, "DB"), "a");	/* nothing else moved */
}

static void test_set_refused(void **state)
{
	struct fixture *fx = *state;
	struct err e = { 0 };

	assert_int_equal(xattr_set(&fx->ed, APP, "DB", XATTR_PREFIX "regenerate", &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "is not a generate: key"));
	assert_int_equal(xattr_set(&fx->ed, APP, NULL, XATTR_PREFIX "regenerate", &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(xattr_set(&fx->ed, APP, "DB", "user.mine", &e), -1);
	assert_int_equal(e.code, ERR_NOTSUP);
	assert_string_equal(rd(fx, "DB"), "a");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		T(test_source),
		T(test_freshness),
		T(test_no_value_shown),
		T(test_provider_error),
		T(test_no_such_attribute),
		T(test_scratch_file_has_none),
		T(test_may_set),
		T(test_refresh),
		T(test_regenerate),
		T(test_set_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
