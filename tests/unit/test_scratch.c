/* test_scratch.c - editors' temporary files (fs/scratch.c): which names are
 * which kind, and the life of a scratch file: create, rename, unlink while
 * a handle still holds it, and the limits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "fs/scratch.h"

static void test_name_kinds(void **state)
{
	static const struct {
		const char *name;
		enum scratch_name_kind kind;
	} cases[] = {
		{ ".env", SCRATCH_NAME_ENV },
		{ ".env.keys", SCRATCH_NAME_KEYS },
		{ "DB_URL", SCRATCH_NAME_KEY },
		{ "_X1", SCRATCH_NAME_KEY },
		/* vim: swap files, the 4913 probe, backups */
		{ ".env.swp", SCRATCH_NAME_TEMP },
		{ ".DB_URL.swx", SCRATCH_NAME_TEMP },
		{ "4913", SCRATCH_NAME_TEMP },
		{ ".env~", SCRATCH_NAME_TEMP },
		{ "DB_URL~", SCRATCH_NAME_TEMP },
		/* emacs autosave, sed -i, Python's tempfile */
		{ "#.env#", SCRATCH_NAME_TEMP },
		{ "sedAb12Z9", SCRATCH_NAME_TEMP },
		{ "tmpa1_b2c3d", SCRATCH_NAME_TEMP },
		/* look alike, are not: then they are keys or nothing */
		{ "sed", SCRATCH_NAME_KEY },
		{ "sedAb12Z", SCRATCH_NAME_KEY },
		{ "tmpABCDEFGH", SCRATCH_NAME_KEY },
		{ "tmpa1-b2c3d", SCRATCH_NAME_INVALID },
		{ "", SCRATCH_NAME_INVALID },
		{ ".", SCRATCH_NAME_INVALID },
		{ "..", SCRATCH_NAME_INVALID },
		{ "a/b", SCRATCH_NAME_INVALID },
		{ "has space", SCRATCH_NAME_INVALID },
		{ "1abc", SCRATCH_NAME_INVALID },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (scratch_name_kind(cases[i].name) != cases[i].kind)
			fail_msg("%s: kind %d, expected %d", cases[i].name,
				 scratch_name_kind(cases[i].name), cases[i].kind);
}

static void test_name_too_long(void **state)
{
	char name[300];

	memset(name, '.', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(scratch_name_kind(name), SCRATCH_NAME_TOOLONG);
	name[255] = '\0';
	assert_int_equal(scratch_name_kind(name), SCRATCH_NAME_TEMP);
	/* a key name too: FUSE passes up to 1024 bytes, no file shows them */
	memset(name, 'K', 255);
	assert_int_equal(scratch_name_kind(name), SCRATCH_NAME_KEY);
	name[255] = 'K';
	name[256] = '\0';
	assert_int_equal(scratch_name_kind(name), SCRATCH_NAME_TOOLONG);
}

static void test_create_find_mode_base(void **state)
{
	struct scratch_dir d;
	struct kvmap base = KVMAP_INIT;
	struct scratch *s;
	struct err e = { 0 };

	scratch_dir_init(&d);
	assert_int_equal(kvmap_set(&base, "A", "fp-a", 4), 0);
	assert_int_equal(scratch_create(&d, ".env.swp", 1000, 1001, 0755, &base, &s, &e), 0);
	assert_ptr_equal(scratch_find(&d, ".env.swp"), s);
	assert_null(scratch_find(&d, ".env.swx"));
	assert_int_equal(s->uid, 1000);
	assert_int_equal(s->gid, 1001);
	assert_int_equal(s->mode, 0600);	/* never more than the owner's */
	assert_non_null(kvmap_get(&s->base, "A"));
	assert_memory_equal(kvmap_get(&s->base, "A")->val, "fp-a", 4);
	assert_int_equal(s->data.len, 0);
	kvmap_free(&base);
	scratch_dir_destroy(&d);
}

static void test_rename_replaces(void **state)
{
	struct scratch_dir d;
	struct scratch *a, *b;
	struct err e = { 0 };

	scratch_dir_init(&d);
	assert_int_equal(scratch_create(&d, "4913", 0, 0, 0600, NULL, &a, &e), 0);
	assert_int_equal(scratch_create(&d, ".env~", 0, 0, 0600, NULL, &b, &e), 0);
	assert_int_equal(scratch_rename(&d, a, ".env~", &e), 0);
	assert_ptr_equal(scratch_find(&d, ".env~"), a);
	assert_null(scratch_find(&d, "4913"));
	assert_int_equal(d.n, 1);
	assert_int_equal(scratch_rename(&d, a, ".env~", &e), 0);	/* onto itself */
	assert_ptr_equal(scratch_find(&d, ".env~"), a);
	scratch_dir_destroy(&d);
}

static void test_unlink_while_held(void **state)
{
	struct scratch_dir d;
	struct scratch *s;
	struct err e = { 0 };

	scratch_dir_init(&d);
	assert_int_equal(scratch_create(&d, ".x.swp", 0, 0, 0600, NULL, &s, &e), 0);
	scratch_hold(s);	/* an open handle */
	assert_int_equal(secbuf_set(&s->data, "abc", 3), 0);
	scratch_unlink(&d, s);
	assert_null(scratch_find(&d, ".x.swp"));
	/* still there for the handle: ASan would see a use after free */
	assert_int_equal(s->data.len, 3);
	assert_int_equal(s->refs, 1);
	scratch_release(s);
	scratch_dir_destroy(&d);
}

static void test_at_most_max_files(void **state)
{
	struct scratch_dir d;
	struct scratch *s;
	struct err e = { 0 };
	char name[32];

	scratch_dir_init(&d);
	for (int i = 0; i < SCRATCH_MAX_FILES; i++) {
		snprintf(name, sizeof(name), "%d", i);
		assert_int_equal(scratch_create(&d, name, 0, 0, 0600, NULL, &s, &e), 0);
	}
	assert_int_equal(scratch_create(&d, "99999", 0, 0, 0600, NULL, &s, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	scratch_unlink(&d, scratch_find(&d, "0"));
	assert_int_equal(scratch_create(&d, "99999", 0, 0, 0600, NULL, &s, &e), 0);
	scratch_dir_destroy(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_kinds),
		cmocka_unit_test(test_name_too_long),
		cmocka_unit_test(test_create_find_mode_base),
		cmocka_unit_test(test_rename_replaces),
		cmocka_unit_test(test_unlink_while_held),
		cmocka_unit_test(test_at_most_max_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
