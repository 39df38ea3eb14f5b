/* test_mountpoint.c - reading the mount table (fs/mountpoint.c): the
 * topmost mount at a path, escaped names, the type and source fields. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "fs/mountpoint.h"

static const char table[] =
	"22 1 0:21 / /run rw,nosuid shared:5 - tmpfs tmpfs rw\n"
	"40 22 0:40 / /run/secrets rw,nosuid shared:20 - fuse.secretfs /etc/secretfs/a.conf rw,user_id=0\n"
	"41 40 0:41 / /run/secrets rw,nosuid - fuse.secretfs /etc/secretfs/b.conf rw\n"
	"42 22 0:42 / /run/my\\040dir rw - fuse.secretfs /etc/x\\054y.conf rw\n";

static void test_topmost_wins(void **state)
{
	struct mountpoint_entry en;

	(void)state;
	assert_true(mountpoint_find(table, "/run/secrets", &en));
	assert_string_equal(en.fstype, "fuse.secretfs");
	assert_string_equal(en.source, "/etc/secretfs/b.conf");
	assert_true(mountpoint_find(table, "/run", &en));
	assert_string_equal(en.fstype, "tmpfs");
	assert_false(mountpoint_find(table, "/run/secret", &en));
	assert_false(mountpoint_find("", "/run", &en));
}

static void test_escapes(void **state)
{
	struct mountpoint_entry en;

	(void)state;
	assert_true(mountpoint_find(table, "/run/my dir", &en));
	assert_string_equal(en.source, "/etc/x,y.conf");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topmost_wins),
		cmocka_unit_test(test_escapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
