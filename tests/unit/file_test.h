/* file_test.h - what the fs core's unit tests (test_app.c, test_edit.c,
 * test_xattr.c, test_races.c) share: writing a file into a store folder.
 * Include it after cmocka.h.
 */
#ifndef SECRETFS_FILE_TEST_H
#define SECRETFS_FILE_TEST_H

#include <stdio.h>

/* dir/name holds text, or the test fails. */
static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

#endif
