/* test_dir.c - unit tests for the dir provider (providers/dir.c): a
 * folder of secret files, Docker- and Kubernetes-style.
 * Every test gets a fresh mkdtemp() folder. Run: build/tests/test_dir
 */
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
#include <unistd.h>

#include "providers/kit.h"
#include "providers/provider.h"

#define PROVIDER_TEST_NAME "secrets"
#define PROVIDER_TEST_TYPE "dir"
#include "provider_test.h"

static const struct provider_ops *ops(void)
{
	return provider_ops_find("dir");
}

static void *open_dir(const char *trim)
{
	struct conf c;
	struct err e;
	void *st = NULL;

	if (trim)
		conf_make(&c, "directory", tmpdir, "trim_newline", trim, NULL);
	else
		conf_make(&c, "directory", tmpdir, NULL);
	assert_int_equal(ops()->create(&c.pc, &st, &e), 0);
	return st;
}

static void put(const char *name, const char *text)
{
	tmpfile_mode(name, text, 0644);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb; (void)flag; (void)f;
	return remove(p);
}

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/sfs-dir-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmpdir/name; valid for the next three calls */
static char *path_of(const char *name)
{
	static char p[4][256];
	static int slot;
	char *s = p[slot++ % 4];

	snprintf(s, 256, "%s/%s", tmpdir, name);
	return s;
}

static void test_folder_exact_bytes(void **state)
{
	void *st = open_dir(NULL);
	struct entry en = ENTRY_INIT;
	struct err e;

	(void)state;
	put("DB_PASSWORD", "hunter2\n");
	put("api_key.txt", "k\r\n");
	put(".hidden", "no");
	assert_int_equal(mkdir(path_of("sub"), 0700), 0);
	put("sub/INNER", "in");
	assert_int_equal(ops()->fetch(st, "", NULL, &en, &e), 0);
	assert_int_equal(en.map.n, 2);
	assert_val(&en, "DB_PASSWORD", "hunter2\n", 8);
	assert_val(&en, "api_key.txt", "k\r\n", 3);
	assert_true(en.version[0]);
	entry_free(&en);
	/* a subfolder is an entry of its own; a file a single value */
	assert_int_equal(ops()->fetch(st, "sub", NULL, &en, &e), 0);
	assert_val(&en, "INNER", "in", 2);
	entry_free(&en);
	assert_int_equal(ops()->fetch(st, "api_key.txt", NULL, &en, &e), 0);
	assert_int_equal(en.map.n, 1);
	assert_val(&en, "", "k\r\n", 3);
	entry_free(&en);
	assert_int_equal(ops()->fetch(st, "nope", NULL, &en, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	ops()->destroy(st);
}

static void test_trim_newline(void **state)
{
	void *st = open_dir("true");
	struct entry en = ENTRY_INIT;
	struct err e;

	(void)state;
	put("A", "one\n");
	put("B", "two\r\n");
	put("C", "three\n\n");
	put("D", "four");
	assert_int_equal(ops()->fetch(st, "", NULL, &en, &e), 0);
	assert_val(&en, "A", "one", 3);
	assert_val(&en, "B", "two", 3);
	assert_val(&en, "C", "three\n", 6);	/* one newline, echo's */
	assert_val(&en, "D", "four", 4);
	entry_free(&en);
	ops()->destroy(st);
}

static void test_symlinks_refused(void **state)
{
	void *st = open_dir(NULL);
	struct entry en = ENTRY_INIT;
	struct err e;

	(void)state;
	put("A", "a");
	assert_int_equal(symlink("/etc/hostname", path_of("LINK")), 0);
	assert_int_equal(ops()->fetch(st, "", NULL, &en, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_non_null(strstr(e.msg, "LINK: a symbolic link"));
	assert_int_equal(ops()->fetch(st, "LINK", NULL, &en, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	/* a linked folder is not followed either */
	assert_int_equal(unlink(path_of("LINK")), 0);
	assert_int_equal(symlink("/etc", path_of("etc")), 0);
	assert_int_equal(ops()->fetch(st, "etc", NULL, &en, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_int_equal(ops()->fetch(st, "etc/hostname", NULL, &en, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	ops()->destroy(st);
}

/* The layout kubelet's atomic writer makes. */
static void kube_version(const char *ts, const char *k1)
{
	char name[64], link[64];

	snprintf(name, sizeof(name), "%s", ts);
	assert_int_equal(mkdir(path_of(name), 0755), 0);
	snprintf(link, sizeof(link), "%s/K1", ts);
	put(link, k1);
	snprintf(link, sizeof(link), "%s/K2", ts);
	put(link, "two");
	assert_int_equal(symlink(ts, path_of("..data_tmp")), 0);
	assert_int_equal(rename(path_of("..data_tmp"), path_of("..data")), 0);
}

static void test_kubernetes_layout(void **state)
{
	void *st = open_dir(NULL);
	struct entry en = ENTRY_INIT;
	struct kvmap m = KVMAP_INIT;
	char v1[PROVIDER_VERSION_MAX];
	struct err e;

	(void)state;
	kube_version("..2024_01_01_00_00_00.1", "one");
	assert_int_equal(symlink("..data/K1", path_of("K1")), 0);
	assert_int_equal(symlink("..data/K2", path_of("K2")), 0);
	assert_int_equal(ops()->fetch(st, "", NULL, &en, &e), 0);
	assert_int_equal(en.map.n, 2);
	assert_val(&en, "K1", "one", 3);
	assert_val(&en, "K2", "two", 3);
	strcpy(v1, en.version);
	entry_free(&en);
	assert_int_equal(ops()->fetch(st, "K1", NULL, &en, &e), 0);
	assert_val(&en, "", "one", 3);
	entry_free(&en);
	/* an atomic swap: the new version, whole */
	kube_version("..2024_01_01_00_00_00.2", "uno");
	assert_int_equal(ops()->fetch(st, "", NULL, &en, &e), 0);
	assert_val(&en, "K1", "uno", 3);
	assert_string_not_equal(en.version, v1);
	entry_free(&en);
	/* read-only */
	assert_int_equal(kvmap_set(&m, "K1", "x", 1), 0);
	assert_int_equal(ops()->store(st, "", NULL, &m, NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_READONLY);
	assert_non_null(strstr(e.msg, "Kubernetes"));
	kvmap_free(&m);
	/* ..data may not lead out of the folder */
	assert_int_equal(unlink(path_of("..data")), 0);
	assert_int_equal(symlink("/etc", path_of("..data")), 0);
	assert_int_equal(ops()->fetch(st, "", NULL, &en, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_non_null(strstr(e.msg, "not at a ..TIMESTAMP folder"));
	ops()->destroy(st);
}

static void test_write_through(void **state)
{
	void *st = open_dir(NULL);
	struct entry en = ENTRY_INIT;
	struct kvmap m = KVMAP_INIT;
	char v[PROVIDER_VERSION_MAX], v2[PROVIDER_VERSION_MAX];
	struct stat sb;
	struct err e;

	(void)state;
	assert_int_equal(kvmap_set(&m, "A", "1", 1), 0);
	assert_int_equal(kvmap_set(&m, "B", "2\0x", 3), 0);
	assert_int_equal(ops()->store(st, "app", NULL, &m, PROVIDER_EXPECT_ABSENT,
				      v, &e), 0);
	assert_int_equal(stat(path_of("app/B"), &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sb.st_size, 3);
	assert_int_equal(ops()->fetch(st, "app", NULL, &en, &e), 0);
	assert_string_equal(en.version, v);
	assert_val(&en, "B", "2\0x", 3);
	entry_free(&en);
	/* compare-and-set */
	assert_int_equal(ops()->store(st, "app", NULL, &m, PROVIDER_EXPECT_ABSENT,
				      NULL, &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);
	assert_int_equal(ops()->store(st, "app", NULL, &m, "stale", NULL, &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);
	/* a removed key's file goes */
	assert_true(kvmap_del(&m, "B"));
	assert_int_equal(ops()->store(st, "app", NULL, &m, v, v2, &e), 0);
	assert_int_equal(stat(path_of("app/B"), &sb), -1);
	assert_int_equal(stat(path_of("app/A"), &sb), 0);
	/* names a file cannot take */
	assert_int_equal(kvmap_set(&m, ".x", "1", 1), 0);
	assert_int_equal(ops()->store(st, "app", NULL, &m, NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	kvmap_free(&m);
	/* one file as a single value */
	assert_int_equal(kvmap_set(&m, "", "pw", 2), 0);
	assert_int_equal(ops()->store(st, "db.txt", NULL, &m, NULL, v, &e), 0);
	assert_int_equal(ops()->fetch(st, "db.txt", NULL, &en, &e), 0);
	assert_string_equal(en.version, v);
	assert_val(&en, "", "pw", 2);
	entry_free(&en);
	assert_int_equal(ops()->store(st, "db.txt", NULL, &m, v, NULL, &e), 0);
	kvmap_free(&m);
	ops()->destroy(st);
}

static void test_write_trim_round_trip(void **state)
{
	void *st = open_dir("true");
	struct entry en = ENTRY_INIT;
	struct kvmap m = KVMAP_INIT;
	char v[PROVIDER_VERSION_MAX];
	struct secbuf b = SECBUF_INIT;
	struct err e;
	int fd;

	(void)state;
	assert_int_equal(kvmap_set(&m, "A", "x\n", 2), 0);
	assert_int_equal(ops()->store(st, "", NULL, &m, NULL, v, &e), 0);
	fd = open(path_of("A"), O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(secbuf_read_fd(&b, fd, 100), 0);
	close(fd);
	assert_int_equal(b.len, 3);	/* the newline echo would write */
	assert_int_equal(ops()->fetch(st, "", NULL, &en, &e), 0);
	assert_val(&en, "A", "x\n", 2);
	assert_string_equal(en.version, v);
	entry_free(&en);
	secbuf_free(&b);
	kvmap_free(&m);
	ops()->destroy(st);
}

static void test_limits_and_checks(void **state)
{
	void *st = open_dir(NULL);
	struct entry en = ENTRY_INIT;
	char *big = malloc(70 * 1024);
	struct conf c;
	struct err e;
	void *other;

	(void)state;
	memset(big, 'x', 70 * 1024 - 1);
	big[70 * 1024 - 1] = '\0';
	put("BIG", big);
	free(big);
	assert_int_equal(ops()->fetch(st, "", NULL, &en, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	assert_int_equal(ops()->check("", NULL, &e), 0);
	assert_int_equal(ops()->check("a/b.txt", NULL, &e), 0);
	assert_int_equal(ops()->check("../x", NULL, &e), -1);
	assert_int_equal(ops()->check("a//b", NULL, &e), -1);
	assert_int_equal(ops()->check("a", "x=1", &e), -1);
	conf_make(&c, "directory", "relative", NULL);
	assert_int_equal(ops()->create(&c.pc, &other, &e), -1);
	/* a missing store folder: no entry yet */
	conf_make(&c, "directory", "/nonexistent/sfs", NULL);
	assert_int_equal(ops()->create(&c.pc, &other, &e), 0);
	assert_int_equal(ops()->fetch(other, "", NULL, &en, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	ops()->destroy(other);
	ops()->destroy(st);
}

/* create() removes the temporaries a killed writer left, down to the
 * deepest folder a locator can name (32 levels), and nothing deeper. */
static void test_create_sweeps_temporaries(void **state)
{
	char rel[128] = "", tmp[128];
	struct conf c;
	struct err e;
	void *st;

	(void)state;
	for (int depth = 1; depth <= 33; depth++) {
		strcat(rel, depth > 1 ? "/d" : "d");
		assert_int_equal(mkdir(path_of(rel), 0700), 0);
		snprintf(tmp, sizeof(tmp), "%s/.K.0123456789abcdef", rel);
		put(tmp, "stale");
		/* the deepest a write can reach: a folder of 32 levels */
		assert_int_equal(ops()->check(rel, NULL, &e), depth <= 32 ? 0 : -1);
	}
	put(".K.0123456789abcdef", "stale");
	put("..data.0123456789abcdef", "not ours");
	conf_make(&c, "directory", tmpdir, NULL);
	assert_int_equal(ops()->create(&c.pc, &st, &e), 0);
	assert_int_equal(access(path_of(".K.0123456789abcdef"), F_OK), -1);
	assert_int_equal(access(path_of("..data.0123456789abcdef"), F_OK), 0);
	assert_int_equal(access(path_of("d/.K.0123456789abcdef"), F_OK), -1);
	rel[strlen(rel) - 2] = '\0';	/* 32 levels */
	snprintf(tmp, sizeof(tmp), "%s/.K.0123456789abcdef", rel);
	assert_int_equal(access(path_of(tmp), F_OK), -1);
	snprintf(tmp, sizeof(tmp), "%s/d/.K.0123456789abcdef", rel);
	assert_int_equal(access(path_of(tmp), F_OK), 0);
	ops()->destroy(st);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_folder_exact_bytes),
		T(test_trim_newline),
		T(test_symlinks_refused),
		T(test_kubernetes_layout),
		T(test_write_through),
		T(test_write_trim_round_trip),
		T(test_limits_and_checks),
		T(test_create_sweeps_temporaries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
