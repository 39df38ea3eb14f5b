/* test_kit.c - the provider toolkit: options with environment fallback,
 * credential files, reference parameters, values as maps, OAuth token
 * answers and the token cache, and the store of backends without
 * compare-and-set against a fake store that other writers race. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/log.h"
#include "providers/kit.h"

/* ---- options ---- */

static void test_opt_env_fallback(void **state)
{
	struct conf_opt opts[] = { { "address", "http://a", { "x.conf", 3 } },
				   { "empty", "", { "x.conf", 4 } } };
	struct provider_conf pc = { .name = "v", .opts = opts, .nopts = 2 };
	bool b;
	struct err e;

	(void)state;
	setenv("KIT_TEST_ADDR", "http://env", 1);
	setenv("KIT_TEST_EMPTY", "", 1);
	assert_string_equal(kit_opt(&pc, "address", "KIT_TEST_ADDR", "d"), "http://a");
	assert_string_equal(kit_opt(&pc, "nope", "KIT_TEST_ADDR", "d"), "http://env");
	assert_string_equal(kit_opt(&pc, "nope", "KIT_TEST_EMPTY", "d"), "d");
	/* an empty option is unset: the environment still counts */
	assert_string_equal(kit_opt(&pc, "empty", "KIT_TEST_ADDR", NULL), "http://env");
	assert_null(kit_opt(&pc, "nope", NULL, NULL));
	assert_int_equal(kit_opt_bool(&pc, "nope", true, &b, &e), 0);
	assert_true(b);
	assert_int_equal(kit_opt_bool(&pc, "address", false, &b, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "option address"));
}

static void test_opt_url(void **state)
{
	struct err e;
	char *u;

	(void)state;
	assert_int_equal(kit_opt_url("address", "https://v.example:8200//", "t", &u, &e), 0);
	assert_string_equal(u, "https://v.example:8200");
	free(u);
	assert_int_equal(kit_opt_url("address", "ftp://x", "t", &u, &e), -1);
	assert_null(u);
	assert_int_equal(kit_opt_url("address", "https://x/?a", "t", &u, &e), -1);
	assert_int_equal(kit_opt_url("address", "https://x/\n", "t", &u, &e), -1);
}

/* ---- credential files ---- */

static char *kit_tmp(const char *text, mode_t mode)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/kit-test-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void test_file_read(void **state)
{
	struct secbuf b = SECBUF_INIT;
	struct err e;
	char *p = kit_tmp("  tok-en\n", 0600);

	(void)state;
	assert_int_equal(kit_file_check("token_file", p, KIT_FILE_PRIVATE, &e), 0);
	assert_int_equal(kit_file_read(p, KIT_FILE_PRIVATE | KIT_FILE_TRIM, 100, &b, NULL, &e), 1);
	assert_int_equal(b.len, 6);
	assert_memory_equal(b.data, "tok-en", 6);
	/* too large: refused, nothing kept */
	assert_int_equal(kit_file_read(p, 0, 4, &b, NULL, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_int_equal(b.len, 0);
	/* group or other bits on a credential */
	chmod(p, 0640);
	assert_int_equal(kit_file_check("token_file", p, KIT_FILE_PRIVATE, &e), -1);
	assert_non_null(strstr(e.msg, "chmod 600"));
	assert_non_null(strstr(e.msg, "option token_file"));
	assert_int_equal(kit_file_read(p, KIT_FILE_PRIVATE, 100, &b, NULL, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	/* not private: fine */
	assert_int_equal(kit_file_read(p, 0, 100, &b, NULL, &e), 1);
	unlink(p);
	assert_int_equal(kit_file_read(p, KIT_FILE_OPTIONAL, 100, &b, NULL, &e), 0);
	assert_int_equal(kit_file_read(p, 0, 100, &b, NULL, &e), -1);
	assert_int_equal(kit_file_check("x", "relative", 0, &e), -1);
	assert_non_null(strstr(e.msg, "absolute"));
	p = kit_tmp(" \n", 0600);
	assert_int_equal(kit_file_read(p, KIT_FILE_TRIM, 100, &b, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "empty"));
	unlink(p);
	secbuf_free(&b);
}

/* ---- local folders ---- */

static void test_temp_name(void **state)
{
	char name[NAME_MAX + 1];

	(void)state;
	assert_true(kit_temp_name(".billing.env.0123456789abcdef", ".env"));
	/* the dir store's, of key api_key.txt */
	assert_true(kit_temp_name(".api_key.txt.0123456789abcdef", ""));
	/* Kubernetes' and dotenvx's names are nobody's stem */
	assert_false(kit_temp_name("..data.0123456789abcdef", ""));
	assert_false(kit_temp_name("..2024_01_01_00_00_00.0123456789abcdef", ""));
	assert_false(kit_temp_name("..env.production.0123456789abcdef", ""));
	assert_false(kit_temp_name("..x.env.0123456789abcdef", ".env"));
	assert_false(kit_temp_name("..0123456789abcdef", ""));
	assert_false(kit_temp_name(".billing.env.0123456789abcde", ".env"));
	assert_false(kit_temp_name(".billing.env.0123456789ABCDEF", ".env"));
	assert_false(kit_temp_name(".billing.txt.0123456789abcdef", ".env"));
	assert_false(kit_temp_name("billing.env.0123456789abcdef", ".env"));
	assert_false(kit_temp_name("..env.0123456789abcdef", ".env"));
	assert_false(kit_temp_name(".a b.env.0123456789abcdef", ".env"));
	assert_false(kit_temp_name(".billing.env-0123456789abcdef", ".env"));
	/* a stem at most as long as a name the store writes */
	name[0] = '.';
	memset(name + 1, 'a', KIT_NAME_MAX + 1);
	strcpy(name + 1 + KIT_NAME_MAX, ".0123456789abcdef");
	assert_true(kit_temp_name(name, ""));
	strcpy(name + 2 + KIT_NAME_MAX, ".0123456789abcdef");
	assert_false(kit_temp_name(name, ""));
	assert_int_equal(kit_io_code(ENOSPC), ERR_NOSPACE);
	assert_int_equal(kit_io_code(EDQUOT), ERR_QUOTA);
	assert_int_equal(kit_io_code(EIO), ERR_IO);
}

/* No symbolic link below a store's folder is followed, a FIFO is refused
 * without waiting for a writer, and missing is not an error. */
static void test_beneath(void **state)
{
	char top[] = "/tmp/test_kit.XXXXXX", path[256];
	struct secbuf b = SECBUF_INIT;
	struct err e;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(top));
	fd = kit_dir_beneath(top, "a/b", true, &e);
	assert_true(fd >= 0);
	assert_int_equal(mkfifoat(fd, "fifo", 0600), 0);
	assert_int_equal(symlinkat("/etc/hostname", fd, "link"), 0);
	assert_int_equal(kit_entry_read(fd, "fifo", "F", 100, &b, &e), -1);
	assert_int_equal(e.code, ERR_IO);
	assert_non_null(strstr(e.msg, "F: not a regular file"));
	assert_int_equal(kit_entry_read(fd, "link", "L", 100, &b, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_int_equal(kit_entry_read(fd, "none", "N", 100, &b, &e), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/a/up", top);
	assert_int_equal(symlink("..", path), 0);
	assert_int_equal(kit_dir_beneath(top, "a/up", false, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_int_equal(kit_dir_beneath(top, "a/up/a", true, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_int_equal(kit_dir_lock(top, "a/up", true, LOCK_EX, &e), -1);
	assert_int_equal(kit_dir_beneath(top, "a/none", false, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	/* the top folder itself is the configuration's: a link is fine */
	snprintf(path, sizeof(path), "%s/a", top);
	fd = kit_dir_beneath(path, "up", false, &e);
	assert_int_equal(fd, -1);
	snprintf(path, sizeof(path), "%s/a/up", top);
	fd = kit_dir_beneath(path, "a/b", false, &e);
	assert_true(fd >= 0);
	close(fd);
	secbuf_free(&b);
	snprintf(path, sizeof(path), "rm -rf '%s'", top);
	assert_int_equal(system(path), 0);
}

/* ---- parameters ---- */

static void test_params(void **state)
{
	struct kit_param p[] = { { "version", NULL }, { "mount", NULL } };
	struct err e;

	(void)state;
	assert_int_equal(kit_params_parse(NULL, p, 2, "u", &e), 0);
	assert_null(p[0].value);
	assert_int_equal(kit_params_parse("version=3&mount=a%2Fb", p, 2, "u", &e), 0);
	assert_string_equal(p[0].value, "3");
	assert_string_equal(p[1].value, "a/b");
	kit_params_free(p, 2);
	assert_null(p[0].value);
	assert_int_equal(kit_params_parse("mount=x&stage=y", p, 2, "version=N, mount=M", &e), -1);
	assert_string_equal(e.msg, "unknown parameter 'stage' (version=N, mount=M)");
	assert_null(p[1].value);
	assert_int_equal(kit_params_parse("version", p, 2, "u", &e), -1);
	assert_non_null(strstr(e.msg, "has no value"));
	assert_int_equal(kit_params_parse("version=1&version=2", p, 2, "u", &e), -1);
	assert_non_null(strstr(e.msg, "twice"));
	assert_int_equal(kit_params_parse("version=%zz", p, 2, "u", &e), -1);
	assert_non_null(strstr(e.msg, "escape"));
	assert_int_equal(kit_params_parse("version=%00", p, 2, "u", &e), -1);
	/* an empty value is a value */
	assert_int_equal(kit_params_parse("version=", p, 2, "u", &e), 0);
	assert_string_equal(p[0].value, "");
	kit_params_free(p, 2);
}

/* ---- stored values ---- */

static void test_value_map(void **st)
{
	struct kvmap m = KVMAP_INIT;
	json_t *obj = NULL;
	struct err e;
	const struct kv *kv;

	(void)st;
	assert_int_equal(kit_value_map("{\"A\":\"1\",\"N\":2}", 15, "t", &m, &obj, &e), 0);
	assert_int_equal(m.n, 2);
	assert_string_equal(kvmap_get(&m, "N")->val, "2");
	assert_non_null(obj);
	json_decref(obj);
	obj = NULL;
	kvmap_free(&m);
	/* text, a JSON array, only the key "": one value with exact bytes */
	assert_int_equal(kit_value_map("plain", 5, "t", &m, &obj, &e), 0);
	assert_null(obj);
	assert_string_equal(kvmap_get(&m, "")->val, "plain");
	kvmap_free(&m);
	assert_int_equal(kit_value_map("{\"\":\"x\"}", 8, "t", &m, NULL, &e), 0);
	kv = kvmap_get(&m, "");
	assert_int_equal(kv->len, 8);
	kvmap_free(&m);
	assert_int_equal(kit_value_map("a\0b", 3, "t", &m, NULL, &e), 0);
	kv = kvmap_get(&m, "");
	assert_int_equal(kv->len, 3);
	assert_memory_equal(kv->val, "a\0b", 3);
	kvmap_free(&m);
	/* a duplicate key is not an object of keys */
	assert_int_equal(kit_value_map("{\"A\":1,\"A\":2}", 13, "t", &m, NULL, &e), 0);
	assert_non_null(kvmap_get(&m, ""));
	kvmap_free(&m);
}

/* ---- stores without compare-and-set ---- */

static void test_changes_kept(void **st)
{
	struct kvmap prev = KVMAP_INIT, mine = KVMAP_INIT, now = KVMAP_INIT;

	(void)st;
	kvmap_set(&prev, "A", "1", 1);
	kvmap_set(&prev, "GONE", "x", 1);
	kvmap_set(&mine, "A", "1", 1);
	kvmap_set(&mine, "NEW", "n", 1);
	/* someone built on ours: kept */
	kvmap_copy(&now, &mine);
	kvmap_set(&now, "THEIRS", "t", 1);
	assert_true(kit_changes_kept(&prev, &mine, &now));
	/* they changed a key we did not touch: still kept */
	kvmap_set(&now, "A", "2", 1);
	assert_true(kit_changes_kept(&prev, &mine, &now));
	/* our new key missing: lost */
	kvmap_del(&now, "NEW");
	assert_false(kit_changes_kept(&prev, &mine, &now));
	/* our removal undone: lost */
	kvmap_set(&now, "NEW", "n", 1);
	kvmap_set(&now, "GONE", "x", 1);
	assert_false(kit_changes_kept(&prev, &mine, &now));
	kvmap_free(&prev);
	kvmap_free(&mine);
	kvmap_free(&now);
}

/* A store with versions "1", "2", ... and no CAS; `racer` is written by
 * "another writer" right after our write when set. */
struct fake {
	bool exists;
	struct kvmap map;
	int version;
	int reads, writes, creates;
	const struct kvmap *racer;
	bool delete_before_write;
};

static int fake_read(void *ctx, struct entry *out, struct err *e)
{
	struct fake *f = ctx;

	f->reads++;
	if (!f->exists)
		return err_set(e, ERR_NOTFOUND, "x: no such secret");
	kvmap_copy(&out->map, &f->map);
	snprintf(out->version, sizeof(out->version), "%d", f->version);
	return 0;
}

static int fake_write(void *ctx, const struct kvmap *m, bool create,
		      char version[PROVIDER_VERSION_MAX], struct err *e)
{
	struct fake *f = ctx;

	if (f->delete_before_write && !create) {
		f->exists = false;
		f->delete_before_write = false;
	}
	if (!create && !f->exists)
		return err_set(e, ERR_NOTFOUND, "x: no such secret");
	if (create && f->exists)
		return err_set(e, ERR_CONFLICT, "x: already exists");
	f->writes++;
	f->creates += create;
	f->exists = true;
	kvmap_copy(&f->map, m);
	snprintf(version, PROVIDER_VERSION_MAX, "%d", ++f->version);
	if (f->racer) {
		kvmap_copy(&f->map, f->racer);
		f->version++;
	}
	return 0;
}

static int fake_store(struct fake *f, const struct kvmap *m, const char *expect,
		      char v[PROVIDER_VERSION_MAX], struct err *e)
{
	struct kit_nocas s = { .ctx = f, .what = "x",
			       .deadline_ms = clock_now_ms() + 2000,
			       .read = fake_read, .write = fake_write };

	return kit_store_nocas(&s, m, expect, v, e);
}

static void test_store_nocas(void **st)
{
	struct fake f = { .map = KVMAP_INIT };
	struct kvmap mine = KVMAP_INIT, theirs = KVMAP_INIT;
	char v[PROVIDER_VERSION_MAX];
	struct err e;

	(void)st;
	kvmap_set(&mine, "A", "1", 1);
	/* absent, expected absent: created */
	assert_int_equal(fake_store(&f, &mine, PROVIDER_EXPECT_ABSENT, v, &e), 0);
	assert_int_equal(f.creates, 1);
	assert_string_equal(v, "1");
	/* expected absent but there: conflict, nothing written */
	assert_int_equal(fake_store(&f, &mine, PROVIDER_EXPECT_ABSENT, v, &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);
	assert_int_equal(f.writes, 1);
	/* the version we read: written and read back */
	kvmap_set(&mine, "B", "2", 1);
	f.reads = 0;
	assert_int_equal(fake_store(&f, &mine, "1", v, &e), 0);
	assert_string_equal(v, "2");
	assert_int_equal(f.reads, 2);
	/* an old version: conflict */
	assert_int_equal(fake_store(&f, &mine, "1", v, &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);
	/* another writer overwrote us without our change: a lost race */
	kvmap_set(&theirs, "A", "1", 1);
	kvmap_set(&mine, "C", "3", 1);
	f.racer = &theirs;
	assert_int_equal(fake_store(&f, &mine, "2", v, &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);
	assert_non_null(strstr(e.msg, "lost a race"));
	/* another writer built on ours: fine */
	kvmap_copy(&theirs, &mine);
	kvmap_set(&mine, "D", "4", 1);
	kvmap_set(&theirs, "D", "4", 1);
	kvmap_set(&theirs, "E", "5", 1);
	assert_int_equal(fake_store(&f, &mine, NULL, v, &e), 0);
	f.racer = NULL;
	/* deleted between our read and write: created again */
	f.creates = 0;
	f.delete_before_write = true;
	assert_int_equal(fake_store(&f, &mine, NULL, v, &e), 0);
	assert_int_equal(f.creates, 1);
	/* ... but not when a version was expected */
	f.delete_before_write = true;
	snprintf(v, sizeof(v), "%d", f.version);
	assert_int_equal(fake_store(&f, &mine, v, v, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	kvmap_free(&mine);
	kvmap_free(&theirs);
	kvmap_free(&f.map);
}

/* ---- OAuth tokens ---- */

static struct http_response resp(long status, const char *body)
{
	struct http_response rs = HTTP_RESPONSE_INIT;

	rs.status = status;
	if (body)
		assert_int_equal(secbuf_set(&rs.body, body, strlen(body)), 0);
	return rs;
}

static void check_token(long status, const char *body, time_t expires)
{
	struct http_response rs = resp(status, body);
	struct secbuf tok = SECBUF_INIT;
	struct err e = { 0 };
	time_t exp = 0;

	if (kit_token_parse(&rs, "t", 1000, &tok, &exp, &e) < 0)
		fail_msg("%s: %s", body, e.msg);
	assert_string_equal(tok.data, "eyJ0eXAi.tok.sig");
	assert_int_equal(exp, expires);
	secbuf_free(&tok);
	http_response_free(&rs);
}

static void check_token_bad(long status, const char *body, enum err_code code,
			    const char *substr)
{
	struct http_response rs = resp(status, body);
	struct secbuf tok = SECBUF_INIT;
	struct err e = { 0 };
	time_t exp = 0;

	assert_int_equal(kit_token_parse(&rs, "Entra ID", 1000, &tok, &exp, &e), -1);
	if (e.code != code || !strstr(e.msg, substr))
		fail_msg("%s: \"%s\" (%s), wanted \"%s\"", body ? body : "", e.msg,
			 err_code_name(e.code), substr);
	assert_int_equal(tok.len, 0);
	secbuf_free(&tok);
	http_response_free(&rs);
}

static void test_token_parse(void **st)
{
	(void)st;
	/* Entra ID: a number */
	check_token(200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,\"access_token\":\"eyJ0eXAi.tok.sig\"}",
		    1000 + 3599);
	/* IMDS: strings, expires_on too */
	check_token(200, "{\"access_token\":\"eyJ0eXAi.tok.sig\",\"expires_in\":\"86399\",\"expires_on\":\"1700000000\",\"resource\":\"https://vault.azure.net\",\"token_type\":\"Bearer\"}",
		    1000 + 86399);
	/* App Service: expires_on only, a string */
	check_token(200, "{\"access_token\":\"eyJ0eXAi.tok.sig\",\"expires_on\":\"1700000000\",\"token_type\":\"Bearer\"}",
		    1700000000);
	check_token(200, "{\"access_token\":\"eyJ0eXAi.tok.sig\",\"expires_on\":1700000000}",
		    1700000000);
	check_token_bad(200, "{\"access_token\":\"x\"}", ERR_PROVIDER,
			"neither expires_in nor expires_on");
	check_token_bad(200, "{\"access_token\":\"x\",\"expires_in\":\"soon\"}",
			ERR_PROVIDER, "expires_in");
	check_token_bad(200, "{\"expires_in\":1}", ERR_PROVIDER, "no access_token");
	check_token_bad(200, "{\"access_token\":\"a b\",\"expires_in\":1}",
			ERR_PROVIDER, "no access_token");
	check_token_bad(200, "{\"access_token\":\"a\\nb\",\"expires_in\":1}",
			ERR_PROVIDER, "no access_token");
	check_token_bad(200, "not json", ERR_PROVIDER, "no access_token");
	/* Google's token endpoint and STS */
	check_token(200, "{\"access_token\":\"eyJ0eXAi.tok.sig\",\"expires_in\":3599,\"token_type\":\"Bearer\"}",
		    1000 + 3599);
	check_token_bad(400, "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}",
			ERR_ACCESS, "(HTTP 400): invalid_grant: Invalid JWT Signature.");
	/* errors: the AADSTS code, the first line, no trace */
	check_token_bad(401, "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client secret provided.\\r\\nTrace ID: abc\\r\\nCorrelation ID: def\",\"error_codes\":[7000215]}",
			ERR_ACCESS,
			"Entra ID: token request refused (HTTP 401): invalid_client: AADSTS7000215: Invalid client secret provided.");
	check_token_bad(400, "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}",
			ERR_ACCESS, "invalid_request: Identity not found");
	check_token_bad(401, "{\"statusCode\":401,\"message\":\"Unauthorized request\"}",
			ERR_ACCESS, "(HTTP 401): Unauthorized request");
	check_token_bad(503, "{\"error\":\"temporarily_unavailable\"}",
			ERR_PROVIDER, "temporarily_unavailable");
	check_token_bad(410, NULL, ERR_ACCESS, "HTTP 410");
}

static void test_text_clean(void **st)
{
	char out[200], big[400];

	(void)st;
	kit_text_clean("AADSTS1: x\r\nTrace ID: 1", out, sizeof(out));
	assert_string_equal(out, "AADSTS1: x");
	kit_text_clean("a\tb\x7f" "c", out, sizeof(out));
	assert_string_equal(out, "abc");
	kit_text_clean(NULL, out, sizeof(out));
	assert_string_equal(out, "");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	kit_text_clean(big, out, sizeof(out));
	assert_int_equal(strlen(out), KIT_TEXT_MAX);
	kit_text_clean(big, out, 10);
	assert_int_equal(strlen(out), 9);
}

static void test_refresh_at(void **st)
{
	(void)st;
	/* an hour: 5 minutes before */
	assert_int_equal(kit_refresh_at(1000, 1000 + 3600), 1000 + 3600 - 300);
	/* short lives: half way */
	assert_int_equal(kit_refresh_at(1000, 1000 + 600), 1000 + 300);
	assert_int_equal(kit_refresh_at(1000, 1000 + 6), 1000 + 3);
	assert_int_equal(kit_refresh_at(1000, 999), 1000);
}


/* ---- the token cache ---- */

struct fake_idp {
	int calls;
	int fail;		/* fail the next this many calls */
	time_t life;
};

static int fake_fetch(void *ctx, int64_t deadline, struct secbuf *tok,
		      time_t *expires, struct err *e)
{
	struct fake_idp *f = ctx;
	char t[32];

	(void)deadline;
	f->calls++;
	if (f->fail > 0) {
		f->fail--;
		return err_set(e, ERR_ACCESS, "refused");
	}
	snprintf(t, sizeof(t), "tok%d", f->calls);
	*expires = time(NULL) + f->life;
	return secbuf_puts(tok, t);
}

static void test_token_cache(void **state)
{
	struct fake_idp f = { 0, 0, 3600 };
	struct kit_token t;
	struct secbuf out = SECBUF_INIT;
	struct err e = { 0 };
	uint64_t gen, gen2;

	(void)state;
	kit_token_init(&t);
	assert_int_equal(kit_token_get(&t, "k", fake_fetch, &f, 0, "t", &out, &gen, &e), 0);
	assert_string_equal(out.data, "tok1");
	/* fresh: cached */
	assert_int_equal(kit_token_get(&t, "k", fake_fetch, &f, 0, "t", &out, &gen2, &e), 0);
	assert_string_equal(out.data, "tok1");
	assert_int_equal(f.calls, 1);
	assert_true(gen == gen2);
	/* another key: another token */
	assert_int_equal(kit_token_get(&t, "k2", fake_fetch, &f, 0, "t", &out, &gen, &e), 0);
	assert_string_equal(out.data, "tok2");
	/* refused once: a new one is worth it; refused again: not */
	assert_true(kit_token_reject(&t, gen));
	assert_int_equal(kit_token_get(&t, "k2", fake_fetch, &f, 0, "t", &out, &gen, &e), 0);
	assert_string_equal(out.data, "tok3");
	/* a stale generation is ignored */
	assert_true(kit_token_reject(&t, gen - 1));
	assert_int_equal(kit_token_get(&t, "k2", fake_fetch, &f, 0, "t", &out, &gen2, &e), 0);
	assert_int_equal(f.calls, 3);
	/* due for refresh (short life) and the refresh fails: the current
	 * token is kept while it lasts */
	t.refresh_at = time(NULL) - 1;
	f.fail = 1;
	assert_int_equal(kit_token_get(&t, "k2", fake_fetch, &f, 0, "t", &out, &gen, &e), 0);
	assert_string_equal(out.data, "tok3");
	/* expired and the IdP refuses: the error, then backoff repeats it
	 * without a request */
	t.expires = time(NULL) - 1;
	t.retry_ms = 0;
	f.fail = 1;
	assert_int_equal(kit_token_get(&t, "k2", fake_fetch, &f, 0, "t", &out, &gen, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_int_equal(out.len, 0);
	f.calls = 0;
	assert_int_equal(kit_token_get(&t, "k2", fake_fetch, &f, 0, "t", &out, &gen, &e), -1);
	assert_non_null(strstr(e.msg, "next attempt in"));
	assert_int_equal(f.calls, 0);
	secbuf_free(&out);
	kit_token_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opt_env_fallback),
		cmocka_unit_test(test_opt_url),
		cmocka_unit_test(test_file_read),
		cmocka_unit_test(test_temp_name),
		cmocka_unit_test(test_beneath),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_value_map),
		cmocka_unit_test(test_changes_kept),
		cmocka_unit_test(test_store_nocas),
		cmocka_unit_test(test_text_clean),
		cmocka_unit_test(test_refresh_at),
		cmocka_unit_test(test_token_parse),
		cmocka_unit_test(test_token_cache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
