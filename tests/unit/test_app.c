/* test_app.c - the app model (fs/app.c) over the file store: value sets,
 * rendering, generated values, and write-through with its conflicts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/app.h"
#include "base/dotenv.h"
#include "file_test.h"

struct fixture {
	char dir[64];
	char conf[128];
	struct config cfg;
	struct appfs fs;
};

static char *read_file(const char *dir, const char *name)
{
	char path[512];
	static char buf[8192];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char text[2048], store[128];
	struct err e = { 0 };

	strcpy(fx->dir, "/tmp/secretfs-test-app-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(store, sizeof(store), "%s/store", fx->dir);
	mkdir(store, 0700);
	snprintf(text, sizeof(text), "%s/team", store);
	mkdir(text, 0700);
	write_file(store, "team/billing.env", "DB='pa$$ word'\nPLAIN='x'\nSHARED='store loses'\n");
	write_file(store, "team/shared.env", "URL='postgres://db'\nKEY='1111111111111111111111111111111111111111111111111111111111111111'\nPROD='2222222222222222222222222222222222222222222222222222222222222222'\n");
	snprintf(text, sizeof(text),
		 "[provider local]\ntype = file\ndirectory = %s\n"
		 "[app billing]\nstore = local://team/billing\n"
		 "env.SHARED = local://team/shared#URL\n"
		 "env.TOKEN = generate:hex:16\n"
		 "keys.default = local://team/shared#KEY\n"
		 "keys.production = local://team/shared#PROD\n"
		 "[app whole]\nenv.ALL = local://team/shared\n"
		 "[app broken]\nstore = local://team/billing\n"
		 "env.GONE = local://team/missing#X\n"
		 "[app viewed]\nviews = json, docker sh\nstore = local://team/viewed\n", store);
	write_file(store, "team/viewed.env", "A=\"it's\"\nB=\"two\\nlines\"\n");
	write_file(fx->dir, "secretfs.conf", text);
	snprintf(fx->conf, sizeof(fx->conf), "%s/secretfs.conf", fx->dir);
	if (config_load(fx->conf, &fx->cfg, &e) < 0)
		fail_msg("config: %s", e.msg);
	assert_int_equal(appfs_open(&fx->fs, &fx->cfg, &e), 0);
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

	appfs_close(&fx->fs);
	config_free(&fx->cfg);
	nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static const struct app_conf *app(struct fixture *fx, const char *name)
{
	const struct app_conf *a = config_app(&fx->cfg, name);

	assert_non_null(a);
	return a;
}

/* Read a file of an app into a static NUL-terminated string. */
static const char *rd(struct fixture *fx, const char *appname, const char *file)
{
	static char text[8192];
	struct secbuf out = SECBUF_INIT;
	struct err e = { 0 };

	if (app_read(&fx->fs, app(fx, appname), file, &out, NULL, &e) < 0)
		fail_msg("read %s/%s: %s", appname, file, e.msg);
	assert_true(out.len < sizeof(text));
	memcpy(text, out.data, out.len + 1);
	secbuf_free(&out);
	return text;
}

static int wr(struct fixture *fx, const char *appname, const char *file,
	      const struct kvmap *base, const char *data, struct err *e)
{
	return app_write(&fx->fs, app(fx, appname), file, base, data, strlen(data), e);
}

/* The base a writer of .env gets at open. */
static void open_base(struct fixture *fx, const char *appname, struct kvmap *base)
{
	struct secbuf out = SECBUF_INIT;
	struct err e = { 0 };

	assert_int_equal(app_read(&fx->fs, app(fx, appname), ".env", &out, base, &e), 0);
	secbuf_free(&out);
}

static void test_env_union_mapping_wins_and_generated(void **state)
{
	struct fixture *fx = *state;
	const char *env = rd(fx, "billing", ".env");
	char token[64];
	struct kvmap m = KVMAP_INIT;
	struct err e = { 0 };
	const struct kv *kv;

	assert_int_equal(dotenv_parse(env, strlen(env), &m, &e), 0);
	assert_int_equal(m.n, 4);
	assert_string_equal(kvmap_get(&m, "DB")->val, "pa$$ word");
	assert_string_equal(kvmap_get(&m, "SHARED")->val, "postgres://db");
	kv = kvmap_get(&m, "TOKEN");
	assert_non_null(kv);
	assert_int_equal(kv->len, 32);
	strcpy(token, kv->val);
	/* stored, and the same on every later read */
	assert_non_null(strstr(read_file(fx->dir, "store/team/billing.env"), token));
	assert_string_equal(rd(fx, "billing", "TOKEN"), token);
	kvmap_free(&m);
}

static void test_key_files_and_keys_file(void **state)
{
	struct fixture *fx = *state;

	assert_string_equal(rd(fx, "billing", "DB"), "pa$$ word");
	assert_string_equal(rd(fx, "billing", "SHARED"), "postgres://db");
	assert_string_equal(rd(fx, "billing", ".env.keys"),
			    "DOTENV_PRIVATE_KEY='1111111111111111111111111111111111111111111111111111111111111111'\n"
			    "DOTENV_PRIVATE_KEY_PRODUCTION='2222222222222222222222222222222222222222222222222222222222222222'\n");
	assert_string_equal(rd(fx, "whole", "ALL"),
			    "{\"KEY\":\"1111111111111111111111111111111111111111111111111111111111111111\",\"PROD\":\"2222222222222222222222222222222222222222222222222222222222222222\",\"URL\":\"postgres://db\"}");
}

static void test_list_and_lookup(void **state)
{
	struct fixture *fx = *state;
	const char *want[] = { ".env", ".env.keys", ".env.encrypted",
			       ".env.production.encrypted", "DB", "PLAIN",
			       "SHARED", "TOKEN" };
	struct strv names = { 0 };
	struct err e = { 0 };

	assert_int_equal(app_list(&fx->fs, app(fx, "billing"), &names, &e), 0);
	assert_int_equal(names.n, 8);
	for (size_t i = 0; i < names.n; i++)
		assert_string_equal(names.v[i], want[i]);
	strv_free(&names);
	assert_int_equal(app_lookup(&fx->fs, app(fx, "billing"), "PLAIN", &e), 0);
	assert_int_equal(app_lookup(&fx->fs, app(fx, "billing"), "NOPE", &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_int_equal(app_lookup(&fx->fs, app(fx, "whole"), ".env.keys", &e), -1);
}

/* views = json sh docker: each file the value set in its format; the
 * newline docker cannot carry is left out and said so. */
static void test_views(void **state)
{
	struct fixture *fx = *state;
	const char *want[] = { ".env", ".env.docker", ".env.json", ".env.sh", "A", "B" };
	struct strv names = { 0 };
	struct err e = { 0 };

	assert_int_equal(app_list(&fx->fs, app(fx, "viewed"), &names, &e), 0);
	assert_int_equal(names.n, 6);
	for (size_t i = 0; i < names.n; i++)
		assert_string_equal(names.v[i], want[i]);
	strv_free(&names);
	assert_string_equal(rd(fx, "viewed", ".env.json"),
			    "{\n  \"A\": \"it's\",\n  \"B\": \"two\\nlines\"\n}\n");
	assert_string_equal(rd(fx, "viewed", ".env.sh"),
			    "export A='it'\\''s'\nexport B='two\nlines'\n");
	assert_string_equal(rd(fx, "viewed", ".env.docker"),
			    "# B left out: the value holds a newline, which docker's --env-file cannot carry (json and sh can)\n"
			    "A=it's\n");
	/* not shown where not asked for; never written */
	assert_int_equal(app_lookup(&fx->fs, app(fx, "billing"), ".env.json", &e), -1);
	assert_int_equal(app_lookup(&fx->fs, app(fx, "viewed"), ".env.json", &e), 0);
	assert_int_equal(wr(fx, "viewed", ".env.sh", NULL, "export A=b\n", &e), -1);
	assert_int_equal(e.code, ERR_READONLY);
}

static void test_missing_source_fails_env_not_other_keys(void **state)
{
	struct fixture *fx = *state;
	struct secbuf out = SECBUF_INIT;
	struct err e = { 0 };

	assert_int_equal(app_read(&fx->fs, app(fx, "broken"), ".env", &out, NULL, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "local://team/missing#X"));
	assert_int_equal(out.len, 0);
	assert_int_equal(app_read(&fx->fs, app(fx, "broken"), "GONE", &out, NULL, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_string_equal(rd(fx, "broken", "PLAIN"), "x");
	secbuf_free(&out);
}

/* A failure names the reference once: the provider's message starts with
 * the locator, which the reference replaces ("local://team/missing#X:
 * team/missing: no such entry" named it twice). */
static void test_failure_names_the_reference_once(void **state)
{
	struct fixture *fx = *state;
	struct secbuf out = SECBUF_INIT;
	struct err e = { 0 };
	char want[512];

	snprintf(want, sizeof(want),
		 "app broken: GONE: local://team/missing#X: no such entry (%s/store/team/missing.env)",
		 fx->dir);
	assert_int_equal(app_read(&fx->fs, app(fx, "broken"), "GONE", &out, NULL, &e), -1);
	assert_string_equal(e.msg, want);
	snprintf(want, sizeof(want),
		 "app broken: .env: local://team/missing#X: no such entry (%s/store/team/missing.env)",
		 fx->dir);
	assert_int_equal(app_read(&fx->fs, app(fx, "broken"), ".env", &out, NULL, &e), -1);
	assert_string_equal(e.msg, want);
	secbuf_free(&out);
}

/* check: one row per key in .env's order, then .env.keys; a missing
 * generate: key is reported and not generated; failures are rows too,
 * and the first one is the error. */
struct check_rows {
	char text[4096];
};

static void check_row(void *ctx, const struct app_check_key *k)
{
	static const char *const st[] = { "ok", "gen", "FAILED" };
	struct check_rows *r = ctx;
	size_t n = strlen(r->text);

	snprintf(r->text + n, sizeof(r->text) - n, "%s %s %s %s %s|", k->file,
		 k->key, k->source, st[k->state], k->version[0] ? "v" : "-");
}

static void test_check_reports_and_writes_nothing(void **state)
{
	struct fixture *fx = *state;
	struct check_rows r = { "" };
	struct err e = { 0 };
	char *store;

	assert_int_equal(app_check(&fx->fs, app(fx, "billing"), check_row, &r, &e), 0);
	assert_string_equal(r.text,
		".env DB local://team/billing#DB ok v|"
		".env PLAIN local://team/billing#PLAIN ok v|"
		".env SHARED local://team/shared#URL ok v|"
		".env TOKEN generate:hex:16 gen -|"
		".env.keys DOTENV_PRIVATE_KEY local://team/shared#KEY ok v|"
		".env.keys DOTENV_PRIVATE_KEY_PRODUCTION local://team/shared#PROD ok v|");
	store = read_file(fx->dir, "store/team/billing.env");
	assert_null(strstr(store, "TOKEN"));	/* nothing generated */

	r.text[0] = '\0';
	assert_int_equal(app_check(&fx->fs, app(fx, "broken"), check_row, &r, &e), -1);
	assert_non_null(strstr(r.text, ".env GONE local://team/missing#X FAILED -|"));
	assert_non_null(strstr(e.msg, "app broken: GONE: local://team/missing#X: no such entry"));
	/* a read generates; check then says it is there */
	rd(fx, "billing", "TOKEN");
	r.text[0] = '\0';
	assert_int_equal(app_check(&fx->fs, app(fx, "billing"), check_row, &r, &e), 0);
	assert_non_null(strstr(r.text, ".env TOKEN generate:hex:16 ok v|"));
}

static void test_value_set(void **state)
{
	struct fixture *fx = *state;
	struct kvmap vals = KVMAP_INIT;
	struct err e = { 0 };

	assert_int_equal(app_value_set(&fx->fs, app(fx, "billing"), &vals, &e), 0);
	assert_string_equal(kvmap_get(&vals, "SHARED")->val, "postgres://db");
	assert_non_null(kvmap_get(&vals, "TOKEN"));
	kvmap_free(&vals);
	assert_int_equal(app_value_set(&fx->fs, app(fx, "broken"), &vals, &e), -1);
	assert_int_equal(vals.n, 0);
	assert_non_null(strstr(e.msg, "app broken: local://team/missing#X"));
}

static void test_write_key(void **state)
{
	struct fixture *fx = *state;
	struct err e = { 0 };

	assert_int_equal(wr(fx, "billing", "PLAIN", NULL, "new 'value'", &e), 0);
	assert_string_equal(rd(fx, "billing", "PLAIN"), "new 'value'");
	assert_int_equal(wr(fx, "billing", "SHARED", NULL, "x", &e), -1);
	assert_int_equal(e.code, ERR_READONLY);
	assert_int_equal(wr(fx, "whole", "NEW", NULL, "x", &e), -1);
	assert_int_equal(e.code, ERR_READONLY);
	assert_int_equal(wr(fx, "billing", ".env.keys", NULL, "x", &e), -1);
	assert_int_equal(e.code, ERR_READONLY);
}

static void test_write_env_diff(void **state)
{
	struct fixture *fx = *state;
	struct kvmap base = KVMAP_INIT;
	struct err e = { 0 };
	const char *store;

	open_base(fx, "billing", &base);
	/* DB removed, PLAIN changed, NEW added; SHARED and TOKEN left out */
	assert_int_equal(wr(fx, "billing", ".env", &base, "PLAIN=changed\nNEW='n'\n", &e), 0);
	store = read_file(fx->dir, "store/team/billing.env");
	assert_null(strstr(store, "DB="));
	assert_non_null(strstr(store, "PLAIN='changed'"));
	assert_non_null(strstr(store, "NEW='n'"));
	assert_non_null(strstr(store, "TOKEN="));
	assert_string_equal(rd(fx, "billing", "SHARED"), "postgres://db");
	kvmap_free(&base);
}

static void test_write_env_refusals_leave_store(void **state)
{
	struct fixture *fx = *state;
	struct kvmap base = KVMAP_INIT;
	struct err e = { 0 };
	char before[8192];
	char big[70 * 1024];

	open_base(fx, "billing", &base);
	strcpy(before, read_file(fx->dir, "store/team/billing.env"));
	assert_int_equal(wr(fx, "billing", ".env", &base, "A=1\nBAD LINE\n", &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "line 2"));
	assert_int_equal(wr(fx, "billing", ".env", &base, "SHARED=other\n", &e), -1);
	assert_int_equal(e.code, ERR_READONLY);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "BIG=", 4);
	assert_int_equal(wr(fx, "billing", ".env", &base, big, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	assert_string_equal(read_file(fx->dir, "store/team/billing.env"), before);
	kvmap_free(&base);
}

static void test_write_env_concurrent_edits(void **state)
{
	struct fixture *fx = *state;
	struct kvmap base = KVMAP_INIT;
	struct err e = { 0 };
	char before[8192];

	open_base(fx, "billing", &base);
	/* someone else changes DB after this writer opened .env */
	assert_int_equal(wr(fx, "billing", "DB", NULL, "theirs", &e), 0);
	/* a change to another key lands, and theirs survives */
	assert_int_equal(wr(fx, "billing", ".env", &base,
			    "DB='pa$$ word'\nPLAIN=mine\n", &e), 0);
	assert_string_equal(rd(fx, "billing", "DB"), "theirs");
	assert_string_equal(rd(fx, "billing", "PLAIN"), "mine");
	/* a change to the same key is a conflict, and nothing is written */
	strcpy(before, read_file(fx->dir, "store/team/billing.env"));
	assert_int_equal(wr(fx, "billing", ".env", &base,
			    "DB=ours\nPLAIN=other\n", &e), -1);
	assert_int_equal(e.code, ERR_BUSY);
	assert_non_null(strstr(e.msg, "DB"));
	assert_string_equal(read_file(fx->dir, "store/team/billing.env"), before);
	kvmap_free(&base);
}

static void test_messages_hold_no_values(void **state)
{
	struct fixture *fx = *state;
	struct kvmap base = KVMAP_INIT;
	struct err e = { 0 };

	open_base(fx, "billing", &base);
	assert_int_equal(wr(fx, "billing", ".env", &base, "SHARED=s3cr3t-value\n", &e), -1);
	assert_null(strstr(e.msg, "s3cr3t-value"));
	assert_null(strstr(e.msg, "postgres://db"));
	kvmap_free(&base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_env_union_mapping_wins_and_generated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_files_and_keys_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_and_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_views, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_source_fails_env_not_other_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_names_the_reference_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_reports_and_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_value_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_env_diff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_env_refusals_leave_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_env_concurrent_edits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_messages_hold_no_values, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
