/* test_file.c - unit tests for the file provider (providers/file.c).
 *
 * Every test gets a fresh mkdtemp() folder; the store directory inside it
 * does not exist until the first write. Run: build/tests/test_file
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "providers/provider.h"

struct fixture {
	char root[64];
	char dir[128];
	void *state;
};

/* The file provider as the registry finds it: no header names it. */
static const struct provider_ops *file_ops(void)
{
	return provider_ops_find("file");
}

static int test_provider_create(const char *dir, void **state, struct err *e)
{
	struct conf_opt opt = {
		.key = (char *)"directory", .value = (char *)dir,
		.where = { "test.conf", 2 },
	};
	struct provider_conf pc = {
		.name = (char *)"local", .type = (char *)"file",
		.opts = &opt, .nopts = dir ? 1 : 0,
		.where = { "test.conf", 1 },
	};

	return file_ops()->create(&pc, state, e);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct err e;

	if (!f)
		return -1;
	strcpy(f->root, "/tmp/test_file.XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/store", f->root);
	if (test_provider_create(f->dir, &f->state, &e) < 0)
		return -1;
	*state = f;
	return 0;
}

static int test_rm(const char *path, const struct stat *st, int flag,
		   struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	file_ops()->destroy(f->state);
	nftw(f->root, test_rm, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Whole file, NUL-terminated, or NULL when missing. Test data only. */
static char *test_slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = malloc(n + 1);
	if (buf && fread(buf, 1, n, fp) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	if (len)
		*len = n;
	fclose(fp);
	return buf;
}

static void test_spew(const char *path, const char *text)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void test_set(struct kvmap *m, const char *key, const char *val)
{
	assert_int_equal(kvmap_set(m, key, val, strlen(val)), 0);
}

static int test_store(struct fixture *f, const char *loc,
		      const struct kvmap *m, const char *expect,
		      char version[PROVIDER_VERSION_MAX], struct err *e)
{
	return file_ops()->store(f->state, loc, NULL, m, expect, version, e);
}

static int test_fetch(struct fixture *f, const char *loc, struct entry *en,
		      struct err *e)
{
	return file_ops()->fetch(f->state, loc, NULL, en, e);
}

/* Names starting with '.' under the store: temporary files left behind. */
static int dot_files;

static int test_count_dots(const char *path, const struct stat *st, int flag,
			   struct FTW *ftw)
{
	if (path[ftw->base] == '.')
		dot_files++;
	return 0;
}

static int test_dot_files(struct fixture *f)
{
	dot_files = 0;
	nftw(f->dir, test_count_dots, 16, FTW_PHYS);
	return dot_files;
}

static void test_create_checks(void **state)
{
	struct fixture *f = *state;
	char path[160];
	void *st = NULL;
	struct stat sb;
	struct err e;

	assert_string_equal(file_ops()->type, "file");
	assert_string_equal(file_ops()->options[0], "directory");
	assert_null(file_ops()->options[1]);
	assert_int_equal(file_ops()->caps, PROVIDER_CAP_CAS |
			 PROVIDER_CAP_WRITE | PROVIDER_CAP_LIST);

	assert_int_equal(test_provider_create(NULL, &st, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "directory"));

	assert_int_equal(test_provider_create("var/store", &st, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "var/store"));

	snprintf(path, sizeof(path), "%s/plain", f->root);
	test_spew(path, "x");
	assert_int_equal(test_provider_create(path, &st, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "not a directory"));

	/* the fixture's directory was accepted without being created */
	assert_int_equal(stat(f->dir, &sb), -1);
	assert_int_equal(errno, ENOENT);

}

static void test_trailing_slash(void **state)
{
	struct fixture *f = *state;
	struct kvmap m = KVMAP_INIT;
	struct entry en = ENTRY_INIT;
	char path[160];
	void *st = NULL;
	struct err e;

	/* "DIR/" names the same store as "DIR" */
	snprintf(path, sizeof(path), "%s/", f->dir);
	assert_int_equal(test_provider_create(path, &st, &e), 0);
	test_set(&m, "A", "1");
	assert_int_equal(file_ops()->store(st, "x", NULL, &m,
		PROVIDER_EXPECT_ABSENT, NULL, &e), 0);
	assert_int_equal(test_fetch(f, "x", &en, &e), 0);
	assert_true(kvmap_equal(&m, &en.map));
	kvmap_free(&m);
	entry_free(&en);
	file_ops()->destroy(st);
}

static void test_round_trip(void **state)
{
	static const char *const vals[][2] = {
		{ "SINGLE", "it's" },
		{ "DOUBLE", "say \"hi\" and 'bye'" },
		{ "NEWLINES", "line1\nline2\n\nline4\n" },
		{ "DOLLAR", "$HOME ${USER} $(id) `id`" },
		{ "BACKSLASH", "C:\\path\\ \\n \\\\" },
		{ "UNICODE", "p\xc3\xa4ssw\xc3\xb6rd \xe2\x9c\x93 \xf0\x9f\x94\x91" },
		{ "EMPTY", "" },
		{ "SPACES", "  padded  " },
		{ "HASH", "a #not a comment" },
		{ "CRLF", "a\r\nb" },
		{ "EQUALS", "k=v=w" },
	};
	struct fixture *f = *state;
	struct kvmap m = KVMAP_INIT;
	struct entry en = ENTRY_INIT;
	char ver[PROVIDER_VERSION_MAX] = "";
	char path[200];
	struct stat sb;
	struct err e;

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		test_set(&m, vals[i][0], vals[i][1]);
	assert_int_equal(test_store(f, "app", &m, PROVIDER_EXPECT_ABSENT, ver,
				    &e), 0);
	assert_int_equal(strlen(ver), 32);
	assert_int_equal(test_fetch(f, "app", &en, &e), 0);
	assert_true(kvmap_equal(&m, &en.map));
	assert_string_equal(en.version, ver);

	/* the store directory and the entry are private */
	assert_int_equal(stat(f->dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/app.env", f->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	kvmap_free(&m);
	entry_free(&en);
}

static void test_not_found(void **state)
{
	struct fixture *f = *state;
	struct entry en = ENTRY_INIT;
	struct err e;

	assert_int_equal(test_fetch(f, "missing", &en, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "missing"));
	assert_int_equal(test_fetch(f, "no/such/folder", &en, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_int_equal(en.map.n, 0);
}

static void test_version(void **state)
{
	struct fixture *f = *state;
	struct kvmap a = KVMAP_INIT, b = KVMAP_INIT;
	char v1[PROVIDER_VERSION_MAX], v2[PROVIDER_VERSION_MAX];
	char v3[PROVIDER_VERSION_MAX], v4[PROVIDER_VERSION_MAX];
	struct entry en = ENTRY_INIT;
	struct err e;

	test_set(&a, "K", "one");
	test_set(&b, "K", "two");
	assert_int_equal(test_store(f, "v", &a, PROVIDER_EXPECT_ANY, v1, &e), 0);
	assert_int_equal(test_store(f, "v", &a, PROVIDER_EXPECT_ANY, v2, &e), 0);
	assert_string_equal(v1, v2);
	assert_int_equal(test_fetch(f, "v", &en, &e), 0);
	assert_string_equal(en.version, v1);
	entry_free(&en);

	assert_int_equal(test_store(f, "v", &b, v1, v3, &e), 0);
	assert_string_not_equal(v1, v3);
	assert_int_equal(test_fetch(f, "v", &en, &e), 0);
	assert_string_equal(en.version, v3);
	entry_free(&en);

	/* content-addressed: the old content brings the old version back */
	assert_int_equal(test_store(f, "v", &a, v3, v4, &e), 0);
	assert_string_equal(v4, v1);

	kvmap_free(&a);
	kvmap_free(&b);
}

static void test_cas(void **state)
{
	struct fixture *f = *state;
	struct kvmap a = KVMAP_INIT, b = KVMAP_INIT;
	char v1[PROVIDER_VERSION_MAX], v2[PROVIDER_VERSION_MAX];
	char path[200], *before, *after;
	struct err e;

	snprintf(path, sizeof(path), "%s/cas.env", f->dir);
	test_set(&a, "K", "first");
	test_set(&b, "K", "second");
	assert_int_equal(test_store(f, "cas", &a, PROVIDER_EXPECT_ABSENT, v1,
				    &e), 0);
	before = test_slurp(path, NULL);
	assert_non_null(before);

	/* create-only on an existing entry */
	assert_int_equal(test_store(f, "cas", &b, PROVIDER_EXPECT_ABSENT, v2,
				    &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);
	assert_non_null(strstr(e.msg, "cas"));
	after = test_slurp(path, NULL);
	assert_string_equal(before, after);
	free(after);

	/* a stale version */
	assert_int_equal(test_store(f, "cas", &b, "0123456789abcdef0123456789abcdef",
				    v2, &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);
	assert_non_null(strstr(e.msg, "changed since it was read"));
	assert_null(strstr(e.msg, "first"));
	after = test_slurp(path, NULL);
	assert_string_equal(before, after);
	free(after);

	/* the right version */
	assert_int_equal(test_store(f, "cas", &b, v1, v2, &e), 0);
	after = test_slurp(path, NULL);
	assert_string_not_equal(before, after);
	free(after);

	/* the version we just replaced is now stale */
	assert_int_equal(test_store(f, "cas", &a, v1, NULL, &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);

	/* no check */
	assert_int_equal(test_store(f, "cas", &a, PROVIDER_EXPECT_ANY, NULL,
				    &e), 0);

	/* a version on a missing entry */
	assert_int_equal(test_store(f, "gone", &a, v1, NULL, &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);
	snprintf(path, sizeof(path), "%s/gone.env", f->dir);
	assert_int_equal(access(path, F_OK), -1);

	assert_int_equal(test_dot_files(f), 0);
	free(before);
	kvmap_free(&a);
	kvmap_free(&b);
}

static void test_bad_locators(void **state)
{
	static const char *const bad[] = {
		"", "..", ".", "../x", "a/../b", "a/./b", "/a", "a/", "a//b",
		".hidden", "a/.hidden", "a b", "a\\b", "caf\xc3\xa9", "a/b\n",
		"x?y", "a:b",
	};
	struct fixture *f = *state;
	struct kvmap m = KVMAP_INIT;
	struct entry en = ENTRY_INIT;
	struct strv l = { NULL, 0 };
	struct err e;

	test_set(&m, "K", "v");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(test_fetch(f, bad[i], &en, &e), -1);
		assert_int_equal(e.code, ERR_INVALID);
		assert_non_null(strstr(e.msg, bad[i]));
		assert_int_equal(test_store(f, bad[i], &m, PROVIDER_EXPECT_ANY,
					    NULL, &e), -1);
		assert_int_equal(e.code, ERR_INVALID);
	}
	assert_int_equal(file_ops()->list(f->state, "../x", &l, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(file_ops()->list(f->state, "/", &l, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	/* nothing was written anywhere */
	assert_int_equal(access(f->dir, F_OK), -1);

	/* what is allowed */
	assert_int_equal(test_store(f, "A-z_0.9/x.y", &m, PROVIDER_EXPECT_ABSENT,
				    NULL, &e), 0);
	assert_int_equal(test_fetch(f, "A-z_0.9/x.y", &en, &e), 0);
	entry_free(&en);
	kvmap_free(&m);
}

static void test_bad_map(void **state)
{
	struct fixture *f = *state;
	struct kvmap m = KVMAP_INIT;
	struct err e;

	test_set(&m, "1BAD", "v");
	assert_int_equal(test_store(f, "m", &m, PROVIDER_EXPECT_ANY, NULL, &e),
			 -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "1BAD"));
	kvmap_free(&m);

	assert_int_equal(kvmap_set(&m, "NUL", "se\0cret", 7), 0);
	assert_int_equal(test_store(f, "m", &m, PROVIDER_EXPECT_ANY, NULL, &e),
			 -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "NUL"));
	assert_null(strstr(e.msg, "se"));
	assert_int_equal(access(f->dir, F_OK), -1);
	kvmap_free(&m);
}

static void test_nested(void **state)
{
	struct fixture *f = *state;
	struct kvmap m = KVMAP_INIT;
	struct entry en = ENTRY_INIT;
	char path[256];
	struct stat sb;
	struct err e;

	test_set(&m, "K", "deep");
	assert_int_equal(test_store(f, "team/billing/prod", &m,
				    PROVIDER_EXPECT_ABSENT, NULL, &e), 0);
	snprintf(path, sizeof(path), "%s/team/billing", f->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/team/billing/prod.env", f->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(test_fetch(f, "team/billing/prod", &en, &e), 0);
	assert_true(kvmap_equal(&m, &en.map));
	entry_free(&en);

	/* an entry and a folder of the same name live side by side */
	assert_int_equal(test_store(f, "team", &m, PROVIDER_EXPECT_ABSENT,
				    NULL, &e), 0);
	assert_int_equal(test_fetch(f, "team", &en, &e), 0);
	entry_free(&en);
	kvmap_free(&m);
}

static void test_list_expect(struct fixture *f, const char *prefix,
			     const char *const *want, size_t n)
{
	struct strv l = { NULL, 0 };
	struct err e;

	assert_int_equal(file_ops()->list(f->state, prefix, &l, &e), 0);
	assert_int_equal(l.n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l.v[i], want[i]);
	strv_free(&l);
}

static void test_list(void **state)
{
	static const char *const locs[] = {
		"zeta", "alpha", "team/x", "team/a/deep", "team-b", "b.c",
	};
	static const char *const all[] = {
		"alpha", "b.c", "team-b", "team/a/deep", "team/x", "zeta",
	};
	static const char *const team[] = { "team/a/deep", "team/x" };
	static const char *const junk[] = {
		".hidden.env", "notes.txt", ".zeta.env.0123456789abcdef",
		"team/.x.env.0123456789abcdef", "bad name.env", ".env",
		"team/a/README", "envfile",
	};
	struct fixture *f = *state;
	struct kvmap m = KVMAP_INIT;
	char path[256];
	struct err e;

	/* no store directory yet: nothing listed, no error */
	test_list_expect(f, "", NULL, 0);

	test_set(&m, "K", "v");
	for (size_t i = 0; i < sizeof(locs) / sizeof(locs[0]); i++)
		assert_int_equal(test_store(f, locs[i], &m,
					    PROVIDER_EXPECT_ABSENT, NULL, &e), 0);
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, junk[i]);
		test_spew(path, "K=v\n");
	}
	snprintf(path, sizeof(path), "%s/.git", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/.git/config.env", f->dir);
	test_spew(path, "K=v\n");
	snprintf(path, sizeof(path), "%s/dir.env", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);

	test_list_expect(f, "", all, 6);
	test_list_expect(f, "team", team, 2);
	test_list_expect(f, "team/", team, 2);
	test_list_expect(f, "team/a", team, 1);
	test_list_expect(f, "nope", NULL, 0);
	test_list_expect(f, "zeta", NULL, 0);
	kvmap_free(&m);
}

static void test_broken_files(void **state)
{
	struct fixture *f = *state;
	struct entry en = ENTRY_INIT;
	struct kvmap m = KVMAP_INIT;
	char path[256], *big;
	size_t bigsz = 2 * 1024 * 1024;
	struct err e;

	test_set(&m, "K", "v");
	assert_int_equal(test_store(f, "ok", &m, PROVIDER_EXPECT_ABSENT, NULL,
				    &e), 0);
	snprintf(path, sizeof(path), "%s/broken.env", f->dir);
	test_spew(path, "A=1\nTOKEN='hunter2\n");
	assert_int_equal(test_fetch(f, "broken", &en, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_int_equal(strncmp(e.msg, path, strlen(path)), 0);
	assert_non_null(strstr(e.msg, "line 2"));
	assert_null(strstr(e.msg, "hunter2"));
	assert_int_equal(en.map.n, 0);

	big = malloc(bigsz + 1);
	assert_non_null(big);
	memcpy(big, "K='", 3);
	memset(big + 3, 'x', bigsz - 5);
	memcpy(big + bigsz - 2, "'\n", 3);
	snprintf(path, sizeof(path), "%s/big.env", f->dir);
	test_spew(path, big);
	assert_int_equal(test_fetch(f, "big", &en, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);

	/* and one too big to store */
	big[bigsz - 5] = '\0';
	test_set(&m, "BIG", big + 3);
	assert_int_equal(test_store(f, "big2", &m, PROVIDER_EXPECT_ANY, NULL,
				    &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	snprintf(path, sizeof(path), "%s/big2.env", f->dir);
	assert_int_equal(access(path, F_OK), -1);
	free(big);
	kvmap_free(&m);
}

/* A write that fails half-way (file size limit) leaves no temporary file
 * and the old entry intact. Runs in a child: the limit is per process. */
static void test_failed_write(void **state)
{
	struct fixture *f = *state;
	struct kvmap m = KVMAP_INIT;
	char path[256], *before, *after;
	int status;
	pid_t pid;
	struct err e;

	test_set(&m, "K", "small");
	assert_int_equal(test_store(f, "w", &m, PROVIDER_EXPECT_ABSENT, NULL,
				    &e), 0);
	snprintf(path, sizeof(path), "%s/w.env", f->dir);
	before = test_slurp(path, NULL);
	assert_non_null(before);
	test_set(&m, "K", "a value much longer than the limit set below");

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = { 16, 16 };
		int rc;

		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &rl);
		rc = test_store(f, "w", &m, PROVIDER_EXPECT_ANY, NULL, &e);
		_exit(rc == -1 && e.code == ERR_IO ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	after = test_slurp(path, NULL);
	assert_string_equal(before, after);
	assert_int_equal(test_dot_files(f), 0);
	free(before);
	free(after);
	kvmap_free(&m);
}

#define BUMPS 50

/* Read-modify-write KEY += 1 in the entry, retrying on conflict. */
static int test_bump(void *st, const char *key, struct err *e)
{
	for (;;) {
		struct entry en = ENTRY_INIT;
		const char *expect = PROVIDER_EXPECT_ABSENT;
		const struct kv *kv;
		char num[32];
		long n = 0;
		int rc;

		rc = file_ops()->fetch(st, "shared/counter", NULL, &en, e);
		if (rc < 0 && e->code != ERR_NOTFOUND)
			return -1;
		if (rc == 0)
			expect = en.version;
		kv = kvmap_get(&en.map, key);
		if (kv)
			n = strtol(kv->val, NULL, 10);
		snprintf(num, sizeof(num), "%ld", n + 1);
		rc = kvmap_set(&en.map, key, num, strlen(num));
		if (rc == 0)
			rc = file_ops()->store(st, "shared/counter", NULL,
						     &en.map, expect, NULL, e);
		entry_free(&en);
		if (rc == 0)
			return 0;
		if (e->code != ERR_CONFLICT)
			return -1;
	}
}

struct bumper {
	void *state;
	char key[16];
	int failures;
	struct err e;
};

static void *test_bumper(void *arg)
{
	struct bumper *b = arg;

	for (int i = 0; i < BUMPS; i++)
		if (test_bump(b->state, b->key, &b->e) < 0)
			b->failures++;
	return NULL;
}

static void test_counts(struct fixture *f, int n)
{
	struct entry en = ENTRY_INIT;
	struct err e;

	assert_int_equal(test_fetch(f, "shared/counter", &en, &e), 0);
	assert_int_equal(en.map.n, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(strtol(en.map.items[i].val, NULL, 10), BUMPS);
	entry_free(&en);
	assert_int_equal(test_dot_files(f), 0);
}

static void test_threads(void **state)
{
	struct fixture *f = *state;
	struct bumper b[8];
	pthread_t t[8];

	for (int i = 0; i < 8; i++) {
		b[i].state = f->state;
		b[i].failures = 0;
		snprintf(b[i].key, sizeof(b[i].key), "T%d", i);
		assert_int_equal(pthread_create(&t[i], NULL, test_bumper,
						&b[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (b[i].failures)
			fail_msg("%s: %s", b[i].key, b[i].e.msg);
	}
	test_counts(f, 8);
}

static void test_processes(void **state)
{
	struct fixture *f = *state;
	pid_t pid[2];

	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			struct bumper b = { .state = f->state };

			snprintf(b.key, sizeof(b.key), "P%d", i);
			test_bumper(&b);
			_exit(b.failures ? 1 : 0);
		}
	}
	for (int i = 0; i < 2; i++) {
		int status;

		assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	test_counts(f, 2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_create_checks),
		T(test_trailing_slash),
		T(test_round_trip),
		T(test_not_found),
		T(test_version),
		T(test_cas),
		T(test_bad_locators),
		T(test_bad_map),
		T(test_nested),
		T(test_list),
		T(test_broken_files),
		T(test_failed_write),
		T(test_threads),
		T(test_processes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
