/* test_vault.c - unit tests for the Vault provider (providers/vault.c).
 *
 * The parsing and policy parts are static in vault.c; this file includes
 * it to reach them (the archive's copy is then never linked in). Nothing
 * here talks to a network: response bodies are fed in as they come from
 * Vault, and create() is checked for what it refuses. The wire protocol
 * is exercised against tests/emulators/vault.py by the integration tests.
 * Run: build/tests/test_vault
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "providers/vault.c"

#define PROVIDER_TEST_NAME "vault"
#define PROVIDER_TEST_TYPE "vault"
#include "provider_test.h"

/* ---- helpers ---- */

static int create(struct conf *c, void **state, struct err *e)
{
	*state = NULL;
	c->pc.request_timeout_ms = 2000;
	return vault_provider_ops.create(&c->pc, state, e);
}

static void create_fails(struct conf *c, const char *needle)
{
	void *st = NULL;
	struct err e = { 0 };

	assert_int_equal(create(c, &st, &e), -1);
	assert_null(st);
	if (!strstr(e.msg, needle))
		fail_msg("error '%s' does not say '%s'", e.msg, needle);
}

static void create_ok(struct conf *c)
{
	void *st = NULL;
	struct err e = { 0 };

	if (create(c, &st, &e) < 0)
		fail_msg("create failed: %s", e.msg);
	assert_non_null(st);
	vault_provider_ops.destroy(st);
}

/* ---- KV v2 reads ---- */

static void test_v2_envelope(void **state)
{
	struct http_response rs = resp(200,
		"{\"request_id\":\"r\",\"lease_id\":\"\",\"data\":{\"data\":"
		"{\"s\":\"pw\",\"n\":5432,\"f\":1.5,\"b\":true,\"z\":null,"
		"\"o\":{\"a\":[1,\"x\"]},\"nul\":\"a\\u0000b\",\"e\":\"\"},"
		"\"metadata\":{\"created_time\":\"2024-01-01T00:00:00Z\","
		"\"deletion_time\":\"\",\"destroyed\":false,\"version\":7}},"
		"\"warnings\":null}");
	struct entry en = ENTRY_INIT;
	json_t *raw = NULL;
	struct err e;

	(void)state;
	assert_int_equal(vault_v2_read_parse(&rs, "secret/x", &en, &raw, &e), 0);
	assert_string_equal(en.version, "7");
	assert_int_equal(en.map.n, 8);
	assert_string_equal(get(&en, "s")->val, "pw");
	assert_string_equal(get(&en, "n")->val, "5432");
	assert_string_equal(get(&en, "f")->val, "1.5");
	assert_string_equal(get(&en, "b")->val, "true");
	assert_string_equal(get(&en, "z")->val, "null");
	assert_string_equal(get(&en, "o")->val, "{\"a\":[1,\"x\"]}");
	/* an embedded NUL keeps the value's length */
	assert_int_equal(get(&en, "nul")->len, 3);
	assert_memory_equal(get(&en, "nul")->val, "a\0b", 3);
	assert_int_equal(get(&en, "e")->len, 0);
	assert_true(json_is_object(raw));
	assert_true(json_is_integer(json_object_get(raw, "n")));
	json_decref(raw);
	entry_free(&en);
	http_response_free(&rs);
}

static void test_v2_not_found_shapes(void **state)
{
	/* missing: 404 {"errors":[]} */
	struct http_response missing = resp(404, "{\"errors\":[]}");
	/* deleted: 404 with the whole envelope and data.data null */
	struct http_response deleted = resp(404,
		"{\"request_id\":\"r\",\"data\":{\"data\":null,\"metadata\":"
		"{\"deletion_time\":\"2024-05-01T10:00:00.5Z\",\"destroyed\":false,"
		"\"version\":3}},\"warnings\":null}");
	struct http_response destroyed = resp(404,
		"{\"data\":{\"data\":null,\"metadata\":{\"deletion_time\":\"\","
		"\"destroyed\":true,\"version\":4}}}");
	struct http_response empty = resp(404, NULL);
	struct http_response null200 = resp(200,
		"{\"data\":{\"data\":null,\"metadata\":{\"version\":2}}}");
	struct entry en = ENTRY_INIT;
	struct err e;

	(void)state;
	assert_int_equal(vault_v2_read_parse(&missing, "secret/x", &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_string_equal(e.msg, "secret/x: no such entry");
	assert_int_equal(vault_v2_read_parse(&deleted, "secret/x", &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "version 3 is deleted"));
	assert_int_equal(vault_v2_read_parse(&destroyed, "secret/x", &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_int_equal(vault_v2_read_parse(&empty, "secret/x", &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_int_equal(vault_v2_read_parse(&null200, "secret/x", &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_int_equal(en.map.n, 0);
	http_response_free(&missing);
	http_response_free(&deleted);
	http_response_free(&destroyed);
	http_response_free(&empty);
	http_response_free(&null200);
}

static void test_v2_garbage(void **state)
{
	static const char *const bodies[] = {
		"not json at all",
		"[1,2,3]",
		"{\"data\":[]}",
		"{\"data\":{\"data\":\"str\",\"metadata\":{\"version\":1}}}",
		"{\"data\":{\"data\":[],\"metadata\":{\"version\":1}}}",
		"{\"data\":{\"data\":{\"a\":\"b\"}}}",
		"{\"data\":{\"data\":{\"a\":\"b\"},\"metadata\":{\"version\":\"1\"}}}",
		"{\"data\":{\"data\":{\"a\":\"b\"},\"metadata\":{\"version\":0}}}",
		"{\"data\":{\"data\":{\"a\":\"b\",\"k\\u0000x\":\"v\"},\"metadata\":{\"version\":1}}}",
		"{\"data\":{\"data\":{\"a\":\"b\",\"a\":\"c\"},\"metadata\":{\"version\":1}}}",
		"",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct http_response rs = resp(200, bodies[i]);
		struct entry en = ENTRY_INIT;
		struct err e = { 0 };

		assert_int_equal(vault_v2_read_parse(&rs, "secret/x", &en, NULL, &e), -1);
		assert_int_equal(e.code, ERR_PROVIDER);
		assert_non_null(strstr(e.msg, "garbage"));
		/* the locator once, at the start, where fs/app.c puts the
		 * reference instead */
		if (strncmp(e.msg, "secret/x: ", 10) || strstr(e.msg + 10, "secret/x"))
			fail_msg("body %zu: \"%s\" does not name secret/x once, first",
				 i, e.msg);
		/* never a partial entry */
		assert_int_equal(en.map.n, 0);
		http_response_free(&rs);
	}
}

static void test_statuses(void **state)
{
	static const struct {
		long status;
		enum err_code code;
		const char *text;
	} cases[] = {
		{ 403, ERR_ACCESS, "secret/x: permission denied (HTTP 403)" },
		{ 401, ERR_ACCESS, "secret/x: permission denied (HTTP 401)" },
		{ 503, ERR_PROVIDER, "sealed" },
		{ 500, ERR_PROVIDER, "HTTP 500" },
		{ 502, ERR_PROVIDER, "HTTP 502" },
		{ 429, ERR_PROVIDER, "rate limit" },
		{ 400, ERR_INVALID, "HTTP 400 (bad request): no data provided" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_response rs = resp(cases[i].status,
					       "{\"errors\":[\"no data provided\"]}");
		struct entry en = ENTRY_INIT;
		struct err e;

		assert_int_equal(vault_v2_read_parse(&rs, "secret/x", &en, NULL, &e), -1);
		assert_int_equal(e.code, cases[i].code);
		if (!strstr(e.msg, cases[i].text))
			fail_msg("'%s' lacks '%s'", e.msg, cases[i].text);
		http_response_free(&rs);
	}
}

/* A refusal whatever the body: a proxy's HTML page in front of Vault must
 * not read as a transient failure that a stale value papers over. */
static void test_refusal_any_body(void **state)
{
	static const char *const bodies[] = {
		"<html><body><h1>401 Authorization Required</h1></body></html>",
		"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code></Error>",
		"", "{\"errors\":[]}",
	};

	(void)state;
	for (long status = 401; status <= 403; status += 2) {
		for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
			struct http_response rs = resp(status, bodies[i]);
			struct entry en = ENTRY_INIT;
			struct err e;

			assert_int_equal(vault_v2_read_parse(&rs, "secret/x", &en, NULL, &e), -1);
			if (e.code != ERR_ACCESS)
				fail_msg("HTTP %ld, body %zu: code %d (%s)", status,
					 i, e.code, e.msg);
			assert_null(strstr(e.msg, "<"));
			http_response_free(&rs);
		}
	}
}

/* ---- KV v1 ---- */

static void test_v1_envelope(void **state)
{
	unsigned char key[crypto_generichash_KEYBYTES] = { 1 };
	struct http_response a = resp(200,
		"{\"data\":{\"b\":\"2\",\"a\":\"1\",\"n\":3},\"lease_duration\":2764800}");
	struct http_response b = resp(200,
		"{\"data\":{\"n\":3,\"a\":\"1\",\"b\":\"2\"}}");
	struct http_response c = resp(200, "{\"data\":{\"a\":\"1\",\"b\":\"X\",\"n\":3}}");
	struct entry ea = ENTRY_INIT, eb = ENTRY_INIT, ec = ENTRY_INIT;
	struct err e;

	(void)state;
	assert_int_equal(vault_v1_read_parse(&a, key, "kv1/x", &ea, NULL, &e), 0);
	assert_int_equal(vault_v1_read_parse(&b, key, "kv1/x", &eb, NULL, &e), 0);
	assert_int_equal(vault_v1_read_parse(&c, key, "kv1/x", &ec, NULL, &e), 0);
	assert_int_equal(ea.map.n, 3);
	assert_string_equal(get(&ea, "n")->val, "3");
	/* a content version: equal content, equal version; else different */
	assert_int_equal(strlen(ea.version), 2 * VAULT_HASH_BYTES);
	assert_string_equal(ea.version, eb.version);
	assert_string_not_equal(ea.version, ec.version);
	/* keyed: another provider (another key) gives another version */
	key[0] = 2;
	entry_free(&eb);
	assert_int_equal(vault_v1_read_parse(&b, key, "kv1/x", &eb, NULL, &e), 0);
	assert_string_not_equal(ea.version, eb.version);
	entry_free(&ea);
	entry_free(&eb);
	entry_free(&ec);
	http_response_free(&a);
	http_response_free(&b);
	http_response_free(&c);
}

static void test_v1_not_found_and_wrong_version(void **state)
{
	unsigned char key[crypto_generichash_KEYBYTES] = { 0 };
	struct http_response nf = resp(404, "{\"errors\":[]}");
	struct http_response v2 = resp(404,
		"{\"data\":null,\"warnings\":[\"Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation.\"]}");
	struct http_response junk = resp(200, "{\"data\":\"x\"}");
	struct entry en = ENTRY_INIT;
	struct err e;

	(void)state;
	assert_int_equal(vault_v1_read_parse(&nf, key, "kv1/x", &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_int_equal(vault_v1_read_parse(&v2, key, "secret/x", &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "kv_version = 2"));
	assert_int_equal(vault_v1_read_parse(&junk, key, "kv1/x", &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "garbage from vault"));
	http_response_free(&nf);
	http_response_free(&v2);
	http_response_free(&junk);
}

/* ---- metadata, time, auth ---- */

static bool meta_live(const char *body, long long *cur)
{
	struct http_response rs = resp(200, body);
	bool live = true;
	struct err e;

	assert_int_equal(vault_meta_parse(&rs, "secret/x", cur, &live, &e), 0);
	http_response_free(&rs);
	return live;
}

static void test_metadata(void **state)
{
	long long cur = -1;
	struct http_response bad = resp(200, "{\"data\":{\"versions\":{}}}");
	bool live;
	struct err e;

	(void)state;
	assert_true(meta_live("{\"data\":{\"current_version\":3,\"versions\":{\"3\":"
			      "{\"deletion_time\":\"\",\"destroyed\":false}}}}", &cur));
	assert_int_equal(cur, 3);
	assert_false(meta_live("{\"data\":{\"current_version\":3,\"versions\":{\"3\":"
			       "{\"deletion_time\":\"2020-01-02T03:04:05.123456789Z\","
			       "\"destroyed\":false}}}}", &cur));
	assert_false(meta_live("{\"data\":{\"current_version\":2,\"versions\":{\"2\":"
			       "{\"deletion_time\":\"\",\"destroyed\":true}}}}", &cur));
	/* delete_version_after: a deletion in the future is not one yet */
	assert_true(meta_live("{\"data\":{\"current_version\":2,\"versions\":{\"2\":"
			      "{\"deletion_time\":\"2999-01-01T00:00:00Z\","
			      "\"destroyed\":false}}}}", &cur));
	assert_false(meta_live("{\"data\":{\"current_version\":0,\"versions\":{}}}", &cur));
	assert_int_equal(cur, 0);
	assert_int_equal(vault_meta_parse(&bad, "secret/x", &cur, &live, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	http_response_free(&bad);
}

static void test_auth_parse(void **state)
{
	struct http_response ok = resp(200,
		"{\"auth\":{\"client_token\":\"hvs.abc\",\"accessor\":\"a\","
		"\"lease_duration\":3600,\"renewable\":true}}");
	struct http_response nl = resp(200,
		"{\"auth\":{\"client_token\":\"hvs\\r\\nX-Evil: 1\","
		"\"lease_duration\":1,\"renewable\":false}}");
	struct http_response none = resp(200, "{\"auth\":null}");
	char *tok = NULL;
	long lease = 0;
	bool renewable = false;
	struct err e;

	(void)state;
	assert_int_equal(vault_auth_parse(&ok, "login", &tok, &lease, &renewable, &e), 0);
	assert_string_equal(tok, "hvs.abc");
	assert_int_equal(lease, 3600);
	assert_true(renewable);
	secmem_free_str(tok);
	/* a token that would inject a header line is garbage */
	assert_int_equal(vault_auth_parse(&nl, "login", &tok, &lease, &renewable, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_null(strstr(e.msg, "hvs"));
	assert_int_equal(vault_auth_parse(&none, "login", &tok, &lease, &renewable, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	http_response_free(&ok);
	http_response_free(&nl);
	http_response_free(&none);
}

/* ---- locators ---- */

static void test_params(void **state)
{
	char *mount = NULL;
	long long v = -1;
	struct err e;

	(void)state;
	assert_int_equal(vault_params_parse(NULL, &mount, &v, &e), 0);
	assert_null(mount);
	assert_int_equal(v, 0);
	assert_int_equal(vault_params_parse("version=12", &mount, &v, &e), 0);
	assert_int_equal(v, 12);
	assert_null(mount);
	assert_int_equal(vault_params_parse("mount=kv/team", &mount, &v, &e), 0);
	assert_string_equal(mount, "kv/team");
	free(mount);
	assert_int_equal(vault_params_parse("mount=%2Fkv%2Fteam%2F&version=3",
					    &mount, &v, &e), 0);
	assert_string_equal(mount, "kv/team");
	assert_int_equal(v, 3);
	free(mount);
	assert_int_equal(vault_params_parse("version=0", &mount, &v, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(vault_params_parse("version=-2", &mount, &v, &e), -1);
	assert_int_equal(vault_params_parse("version=3x", &mount, &v, &e), -1);
	assert_int_equal(vault_params_parse("version", &mount, &v, &e), -1);
	assert_int_equal(vault_params_parse("mount=a//b", &mount, &v, &e), -1);
	assert_int_equal(vault_params_parse("mount=a/../b", &mount, &v, &e), -1);
	assert_int_equal(vault_params_parse("mount=%zz", &mount, &v, &e), -1);
	assert_int_equal(vault_params_parse("mount=kv&field=x", &mount, &v, &e), -1);
	assert_non_null(strstr(e.msg, "unknown parameter 'field'"));
	assert_null(mount);
}

static void test_locator_split(void **state)
{
	struct vault_mount ms[] = {
		{ (char *)"secret", 2 },
		{ (char *)"kv", 1 },
		{ (char *)"kv/team", 2 },
	};
	const struct vault_mount *m;

	(void)state;
	m = vault_mount_match(ms, 3, "kv/team/billing/db");
	assert_non_null(m);
	assert_string_equal(m->prefix, "kv/team");
	m = vault_mount_match(ms, 3, "kv/teams/x");
	assert_non_null(m);
	assert_string_equal(m->prefix, "kv");
	m = vault_mount_match(ms, 3, "secret/a");
	assert_string_equal(m->prefix, "secret");
	assert_null(vault_mount_match(ms, 3, "secret2/a"));
	assert_null(vault_mount_match(ms, 3, "sec"));
	assert_string_equal(vault_under("kv/team/billing/db", "kv/team"), "billing/db");
	assert_string_equal(vault_under("kv/team", "kv/team"), "");
	assert_null(vault_under("kv/teamx/a", "kv/team"));
	assert_true(vault_path_valid("secret/a/b"));
	assert_true(vault_path_valid("secret/a b/%c"));
	assert_false(vault_path_valid(""));
	assert_false(vault_path_valid("/secret/a"));
	assert_false(vault_path_valid("secret/a/"));
	assert_false(vault_path_valid("secret//a"));
	assert_false(vault_path_valid("secret/../sys/x"));
	assert_false(vault_path_valid("secret/./x"));
	assert_false(vault_path_valid("secret/a\nb"));
}

static void test_ui_mounts(void **state)
{
	struct http_response two = resp(200,
		"{\"data\":{\"path\":\"kv/team/\",\"type\":\"kv\","
		"\"options\":{\"version\":\"2\"}}}");
	struct http_response one = resp(200,
		"{\"data\":{\"path\":\"kv1/\",\"type\":\"kv\",\"options\":null}}");
	struct http_response bad = resp(200, "{\"data\":{\"path\":7}}");
	char *prefix = NULL;
	int version = 0;
	struct err e;

	(void)state;
	assert_int_equal(vault_ui_mount_parse(&two, "kv/team/app", &prefix,
					      &version, &e), 0);
	assert_string_equal(prefix, "kv/team");
	assert_int_equal(version, 2);
	free(prefix);
	assert_int_equal(vault_ui_mount_parse(&one, "kv1/a/b", &prefix,
					      &version, &e), 0);
	assert_string_equal(prefix, "kv1");
	assert_int_equal(version, 1);
	free(prefix);
	/* a mount that does not hold the locator is not believed */
	assert_int_equal(vault_ui_mount_parse(&two, "other/app", &prefix,
					      &version, &e), 0);
	assert_null(prefix);
	assert_int_equal(vault_ui_mount_parse(&bad, "x/y", &prefix, &version, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	http_response_free(&two);
	http_response_free(&one);
	http_response_free(&bad);
}

/* ---- writes ---- */

static void test_data_json_keeps_types(void **state)
{
	json_t *prev = json_loads("{\"port\":5432,\"on\":true,\"o\":{\"a\":1},"
				  "\"s\":\"x\",\"gone\":1}", 0, NULL);
	struct kvmap m = KVMAP_INIT;
	json_t *out = NULL;
	struct err e;

	(void)state;
	kvmap_set(&m, "port", "5432", 4);	/* unchanged: stays a number */
	kvmap_set(&m, "on", "false", 5);	/* changed: becomes a string */
	kvmap_set(&m, "o", "{\"a\":1}", 7);	/* unchanged object */
	kvmap_set(&m, "s", "5432", 4);		/* was a string: stays one */
	kvmap_set(&m, "nul", "a\0b", 3);
	assert_int_equal(http_json_from_map(&m, prev, "secret/x", &out, &e), 0);
	assert_true(json_is_integer(json_object_get(out, "port")));
	assert_true(json_is_string(json_object_get(out, "on")));
	assert_true(json_is_object(json_object_get(out, "o")));
	assert_true(json_is_string(json_object_get(out, "s")));
	assert_int_equal(json_string_length(json_object_get(out, "nul")), 3);
	assert_null(json_object_get(out, "gone"));
	json_decref(out);
	/* Vault stores JSON text: bytes that are not UTF-8 are refused */
	kvmap_set(&m, "bin", "\xff\xfe", 2);
	assert_int_equal(http_json_from_map(&m, NULL, "secret/x", &out, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "value of bin"));
	kvmap_free(&m);
	json_decref(prev);
}

static void test_cas_parse(void **state)
{
	long long cas = 0;
	struct err e;

	(void)state;
	assert_int_equal(vault_cas_parse("12", "secret/x", &cas, &e), 0);
	assert_int_equal(cas, 12);
	/* a KV v1 content hash is no KV v2 version */
	assert_int_equal(vault_cas_parse("0a1b2c", "secret/x", &cas, &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);
	assert_int_equal(vault_cas_parse("0", "secret/x", &cas, &e), -1);
}

static void test_trim(void **state)
{
	struct secbuf b = SECBUF_INIT;

	(void)state;
	secbuf_set(&b, " \t hvs.tok \n\n", 13);
	secbuf_trim(&b);
	assert_int_equal(b.len, 7);
	assert_string_equal(b.data, "hvs.tok");
	secbuf_set(&b, " \n", 2);
	secbuf_trim(&b);
	assert_int_equal(b.len, 0);
	secbuf_free(&b);
}

/* ---- create(): options ---- */

static void test_options_token_file(void **state)
{
	struct conf c;
	char *good = tmpfile_mode("tok600", "root\n", 0600);
	char *open = tmpfile_mode("tok644", "root\n", 0644);
	char *group = tmpfile_mode("tok640", "root\n", 0640);

	(void)state;
	conf_make(&c, "address", "http://127.0.0.1:1", "token_file", good, NULL);
	create_ok(&c);
	conf_make(&c, "address", "http://127.0.0.1:1", "token_file", open, NULL);
	create_fails(&c, "readable by group or others (mode 0644)");
	conf_make(&c, "token_file", group, NULL);
	create_fails(&c, "option token_file");
	conf_make(&c, "token_file", "/nonexistent/token", NULL);
	create_fails(&c, "option token_file: /nonexistent/token");
	conf_make(&c, "token_file", "relative/token", NULL);
	create_fails(&c, "absolute path");
}

static void test_options_token_sources(void **state)
{
	struct conf c;
	char *home = tmpdir;
	char path[160];
	void *st = NULL;
	struct err e;

	(void)state;
	setenv("HOME", home, 1);
	unsetenv("VAULT_TOKEN");
	conf_make(&c, "address", "http://127.0.0.1:1", NULL);
	create_fails(&c, "no token");
	setenv("VAULT_TOKEN", "s.env", 1);
	create_ok(&c);
	unsetenv("VAULT_TOKEN");
	snprintf(path, sizeof(path), "%s/.vault-token", home);
	tmpfile_mode(".vault-token", "hvs.home", 0644);
	create_fails(&c, "readable by group or others");
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(create(&c, &st, &e), 0);
	assert_string_equal(((struct vault *)st)->token_file, path);
	vault_provider_ops.destroy(st);
	unlink(path);
}

static void test_options_values(void **state)
{
	char *tok = tmpfile_mode("tok", "t", 0600);
	struct conf c;
	void *st = NULL;
	struct err e;

	(void)state;
	conf_make(&c, "token_file", tok, "kv_version", "3", NULL);
	create_fails(&c, "option kv_version: '3' is not auto, 1 or 2");
	conf_make(&c, "token_file", tok, "auth", "ldap", NULL);
	create_fails(&c, "option auth: 'ldap'");
	conf_make(&c, "token_file", tok, "tls_skip_verify", "yes", NULL);
	create_fails(&c, "option tls_skip_verify");
	conf_make(&c, "token_file", tok, "max_response_bytes", "lots", NULL);
	create_fails(&c, "option max_response_bytes");
	conf_make(&c, "token_file", tok, "max_response_bytes", "100", NULL);
	create_fails(&c, "option max_response_bytes");
	conf_make(&c, "token_file", tok, "address", "ftp://vault", NULL);
	create_fails(&c, "option address");
	conf_make(&c, "token_file", tok, "ca_file", "/nonexistent/ca.pem", NULL);
	create_fails(&c, "option ca_file");
	conf_make(&c, "token_file", tok, "role", "web", NULL);
	create_fails(&c, "option role is only used with auth = kubernetes");
	conf_make(&c, "token_file", tok, "mount", "approle", NULL);
	create_fails(&c, "option mount is only used with auth = approle or kubernetes");
	/* everything at once, and the address keeps no trailing slash */
	conf_make(&c, "token_file", tok, "address", "https://vault.example:8200/",
		  "namespace", "ns1/", "kv_version", "2", "tls_skip_verify", "false",
		  "max_response_bytes", "65536", NULL);
	assert_int_equal(create(&c, &st, &e), 0);
	assert_string_equal(((struct vault *)st)->addr, "https://vault.example:8200");
	assert_string_equal(((struct vault *)st)->ns, "ns1/");
	assert_int_equal(((struct vault *)st)->kv_version, 2);
	assert_int_equal(((struct vault *)st)->timeout_ms, 2000);
	vault_provider_ops.destroy(st);
}

static void test_options_approle(void **state)
{
	char *rid = tmpfile_mode("role-id", "rid\n", 0600);
	char *sid = tmpfile_mode("secret-id", "sid\n", 0600);
	char *sid_open = tmpfile_mode("secret-id-open", "sid\n", 0604);
	struct conf c;
	void *st = NULL;
	struct err e;

	(void)state;
	conf_make(&c, "auth", "approle", "role_id_file", rid, NULL);
	create_fails(&c, "needs role_id_file and secret_id_file");
	conf_make(&c, "auth", "approle", "role_id_file", rid,
		  "secret_id_file", sid_open, NULL);
	create_fails(&c, "option secret_id_file");
	conf_make(&c, "auth", "approle", "role_id_file", rid,
		  "secret_id_file", sid, "token_file", rid, NULL);
	create_fails(&c, "option token_file is only used with auth = token");
	conf_make(&c, "auth", "approle", "role_id_file", rid,
		  "secret_id_file", sid, "mount", "/ci/approle", NULL);
	assert_int_equal(create(&c, &st, &e), 0);
	assert_string_equal(((struct vault *)st)->auth_mount, "ci/approle");
	vault_provider_ops.destroy(st);
}

static void test_options_kubernetes(void **state)
{
	/* Kubernetes mounts the service account token 0644: accepted */
	char *jwt = tmpfile_mode("jwt", "eyJ.x.y", 0644);
	struct conf c;
	void *st = NULL;
	struct err e;

	(void)state;
	conf_make(&c, "auth", "kubernetes", "jwt_file", jwt, NULL);
	create_fails(&c, "auth = kubernetes needs role");
	conf_make(&c, "auth", "kubernetes", "role", "web", "jwt_file", jwt, NULL);
	assert_int_equal(create(&c, &st, &e), 0);
	assert_string_equal(((struct vault *)st)->auth_mount, "kubernetes");
	vault_provider_ops.destroy(st);
	conf_make(&c, "auth", "kubernetes", "role", "web", NULL);
	assert_int_equal(create(&c, &st, &e), 0);
	assert_string_equal(((struct vault *)st)->jwt_file, VAULT_JWT_DEFAULT);
	vault_provider_ops.destroy(st);
}

static void test_options_listed(void **state)
{
	size_t n = 0;

	(void)state;
	for (const char *const *o = vault_provider_ops.options; *o; o++)
		n++;
	assert_int_equal(n, 16);
	assert_string_equal(vault_provider_ops.type, "vault");
	assert_ptr_equal(provider_ops_find("vault"), &vault_provider_ops);
	assert_int_equal(vault_provider_ops.caps,
			 PROVIDER_CAP_CAS | PROVIDER_CAP_WRITE | PROVIDER_CAP_LIST);
}

static int group_setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/test_vault.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	unsetenv("VAULT_ADDR");
	unsetenv("VAULT_NAMESPACE");
	unsetenv("VAULT_CACERT");
	unsetenv("VAULT_CAPATH");
	unsetenv("VAULT_CLIENT_CERT");
	unsetenv("VAULT_CLIENT_KEY");
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v2_envelope),
		cmocka_unit_test(test_v2_not_found_shapes),
		cmocka_unit_test(test_v2_garbage),
		cmocka_unit_test(test_statuses),
		cmocka_unit_test(test_refusal_any_body),
		cmocka_unit_test(test_v1_envelope),
		cmocka_unit_test(test_v1_not_found_and_wrong_version),
		cmocka_unit_test(test_metadata),
		cmocka_unit_test(test_auth_parse),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_locator_split),
		cmocka_unit_test(test_ui_mounts),
		cmocka_unit_test(test_data_json_keeps_types),
		cmocka_unit_test(test_cas_parse),
		cmocka_unit_test(test_trim),
		cmocka_unit_test(test_options_token_file),
		cmocka_unit_test(test_options_token_sources),
		cmocka_unit_test(test_options_values),
		cmocka_unit_test(test_options_approle),
		cmocka_unit_test(test_options_kubernetes),
		cmocka_unit_test(test_options_listed),
	};

	if (sodium_init() < 0)
		return 1;
	secmem_init_json();
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
