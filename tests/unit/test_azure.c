/* test_azure.c - unit tests for the Azure Key Vault provider
 * (providers/azure.c) and its tokens (providers/azure_auth.c).
 *
 * Their parsing and policy parts are static; this file includes both, so
 * the archive's copies are never linked in. Nothing here needs a server:
 * challenges, error bodies and token answers are fed in as Key Vault,
 * Entra ID, IMDS and App Service send them. The wire protocol is
 * exercised against tests/emulators/azurekv.py by real mounts
 * (tests/integration/test_azure_mount.py).
 * Run: build/tests/test_azure
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "providers/azure.c"
#include "providers/azure_auth.c"

#define PROVIDER_TEST_NAME "azure"
#define PROVIDER_TEST_TYPE "azure-keyvault"
#include "provider_test.h"

#define TENANT "5ec2e7f5-0000-4a1e-9d3b-7e57a2c0ffee"
#define VAULT_HOST "myvault.vault.azure.net"

/* ---- helpers ---- */

static const char *const az_vars[] = {
	"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
	"AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
	"AZURE_POD_IDENTITY_AUTHORITY_HOST", "IDENTITY_ENDPOINT",
	"IDENTITY_HEADER",
};

static int env_reset(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof(az_vars) / sizeof(*az_vars); i++)
		unsetenv(az_vars[i]);
	return 0;
}

static int setup_all(void **st)
{
	(void)st;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_azure.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	log_init(LOG_LVL_ERROR, false);
	return 0;
}

static int teardown_all(void **st)
{
	char cmd[128];

	(void)st;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- the 401 challenge ---- */

static void check_challenge(const char *hdr, bool cut, const char *host,
			    bool verify, const char *tenant, const char *scope)
{
	struct az_challenge ch;
	struct err e = { 0 };

	if (az_challenge_parse(hdr, cut, host, verify, &ch, &e) < 0)
		fail_msg("challenge \"%s\": %s", hdr, e.msg);
	assert_string_equal(ch.tenant, tenant);
	assert_string_equal(ch.scope, scope);
}

static void check_challenge_bad(const char *hdr, bool cut, const char *host,
				bool verify, enum err_code code,
				const char *substr)
{
	struct az_challenge ch;
	struct err e = { 0 };

	assert_int_equal(az_challenge_parse(hdr, cut, host, verify, &ch, &e), -1);
	assert_int_equal(e.code, code);
	if (!strstr(e.msg, substr))
		fail_msg("challenge \"%s\": \"%s\" lacks \"%s\"", hdr, e.msg,
			 substr);
}

static void test_challenge_parse(void **st)
{
	(void)st;
	/* as Key Vault writes it: comma separated, quoted */
	check_challenge("Bearer authorization=\"https://login.windows.net/" TENANT
			"\", resource=\"https://vault.azure.net\"", false,
			VAULT_HOST, true, TENANT, "https://vault.azure.net/.default");
	/* scope wins over resource; /.default is not doubled */
	check_challenge("Bearer authorization=\"https://login.microsoftonline.com/" TENANT
			"\", resource=\"https://vault.azure.net\", scope=\"https://vault.azure.net/.default\"",
			false, VAULT_HOST, true, TENANT,
			"https://vault.azure.net/.default");
	check_challenge("Bearer authorization=\"https://login.microsoftonline.com/" TENANT
			"\", scope=\"https://vault.azure.net\"", false, VAULT_HOST,
			true, TENANT, "https://vault.azure.net/.default");
	/* blanks only, unquoted values, authorization_uri, a path after the
	 * tenant, a trailing slash on the resource */
	check_challenge("bearer authorization_uri=https://login.microsoftonline.com/contoso.com/oauth2 resource=https://vault.azure.net/",
			false, VAULT_HOST, true, "contoso.com",
			"https://vault.azure.net/.default");
	/* sovereign cloud */
	check_challenge("Bearer authorization=\"https://login.chinacloudapi.cn/" TENANT
			"\", resource=\"https://vault.azure.cn\"", false,
			"v.vault.azure.cn", true, TENANT,
			"https://vault.azure.cn/.default");
	/* emulators and private endpoints: no check */
	check_challenge("Bearer authorization=\"https://login.microsoftonline.com/" TENANT
			"\", resource=\"https://vault.azure.net\"", false,
			"127.0.0.1", false, TENANT, "https://vault.azure.net/.default");
}

static void test_challenge_resource_check(void **st)
{
	(void)st;
	/* the host must end with "." + the resource's host */
	check_challenge_bad("Bearer authorization=\"https://login.microsoftonline.com/" TENANT
			    "\", resource=\"https://vault.azure.net\"", false,
			    "127.0.0.1", true, ERR_ACCESS,
			    "disable_challenge_resource_verification");
	check_challenge_bad("Bearer authorization=\"https://login.microsoftonline.com/" TENANT
			    "\", resource=\"https://evil.example\"", false,
			    VAULT_HOST, true, ERR_ACCESS, "not under it");
	check_challenge_bad("Bearer authorization=\"https://login.microsoftonline.com/" TENANT
			    "\", resource=\"https://vault.azure.net\"", false,
			    "vault.azure.net", true, ERR_ACCESS, "not under it");
	check_challenge_bad("Bearer authorization=\"https://login.microsoftonline.com/" TENANT
			    "\", resource=\"https://vault.azure.net\"", false,
			    "myvaultvault.azure.net", true, ERR_ACCESS,
			    "not under it");
}

/* A real challenge fits the HTTP layer's kept header whole; one longer
 * than that arrives cut, and a cut value is never used as it is. */
static void test_challenge_cut(void **st)
{
	static const char full[] =
		"Bearer authorization=\"https://login.microsoftonline.com/" TENANT
		"\", resource=\"https://vault.azure.net\", scope=\"https://vault.azure.net/.default\"";
	struct http_response rs;

	(void)st;
	assert_true(sizeof(full) < sizeof(rs.header));
	check_challenge(full, false, VAULT_HOST, true, TENANT,
			"https://vault.azure.net/.default");
	/* a cut scope falls back to the whole resource */
	check_challenge("Bearer authorization=\"https://127.0.0.1:4433/" TENANT
			"\", resource=\"https://vault.azure.net\", scope=\"https://vault.az",
			true, "127.0.0.1", false, TENANT,
			"https://vault.azure.net/.default");
	/* a cut resource and no scope: refused */
	check_challenge_bad("Bearer authorization=\"https://login.microsoftonline.com/" TENANT
			    "\", resource=\"https://vault.azure.n", true, VAULT_HOST, true,
			    ERR_PROVIDER, "longer than secretfs reads");
	/* a cut tenant */
	check_challenge_bad("Bearer authorization=\"https://login.microsoftonline.com/5ec2",
			    true, VAULT_HOST, true, ERR_PROVIDER, "no tenant");
	/* not cut, but unterminated: malformed */
	check_challenge_bad("Bearer authorization=\"https://login.microsoftonline.com/" TENANT
			    "\", resource=\"https://vault.azure.net", false,
			    VAULT_HOST, true, ERR_PROVIDER, "no Bearer challenge");
}

static void test_challenge_malformed(void **st)
{
	(void)st;
	check_challenge_bad("", false, VAULT_HOST, true, ERR_PROVIDER,
			    "no Bearer challenge");
	check_challenge_bad("Basic realm=\"x\"", false, VAULT_HOST, true,
			    ERR_PROVIDER, "no Bearer challenge");
	check_challenge_bad("Bearer resource=\"https://vault.azure.net\"", false,
			    VAULT_HOST, true, ERR_PROVIDER, "authorization=");
	check_challenge_bad("Bearer authorization=\"https://login.microsoftonline.com/\", resource=\"https://vault.azure.net\"",
			    false, VAULT_HOST, true, ERR_PROVIDER, "no tenant");
	check_challenge_bad("Bearer authorization=\"https://login.microsoftonline.com/t?x\"",
			    false, VAULT_HOST, true, ERR_PROVIDER,
			    "no resource or scope");
	check_challenge_bad("Bearer authorization=\"https://login/a b\", resource=\"x\"",
			    false, VAULT_HOST, true, ERR_PROVIDER, "no tenant");
	check_challenge_bad("Bearer =x", false, VAULT_HOST, true, ERR_PROVIDER,
			    "no Bearer challenge");
}

/* ---- names and references ---- */

static void test_names(void **st)
{
	char n128[129];

	(void)st;
	assert_true(az_name_valid("db-password", 11));
	assert_true(az_name_valid("A-0", 3));
	assert_false(az_name_valid("", 0));
	assert_false(az_name_valid("DB_PASSWORD", 11));
	assert_false(az_name_valid("a/b", 3));
	assert_false(az_name_valid("a.b", 3));
	memset(n128, 'a', 128);
	n128[128] = '\0';
	assert_true(az_name_valid(n128, 127));
	assert_false(az_name_valid(n128, 128));
	assert_true(az_version_valid("0123456789abcdef0123456789abcdef"));
	assert_false(az_version_valid(""));
	assert_false(az_version_valid("../x"));
}

static void check_ref(const char *loc, const char *params, const char *version,
		      const char *prefix)
{
	struct az_ref r;
	struct err e = { 0 };

	if (az_ref_parse(loc, params, &r, &e) < 0)
		fail_msg("ref %s ? %s: %s", loc, params ? params : "", e.msg);
	if (version)
		assert_string_equal(r.version, version);
	else
		assert_null(r.version);
	if (prefix)
		assert_string_equal(r.prefix, prefix);
	else
		assert_null(r.prefix);
	az_ref_free(&r);
	assert_int_equal(azure_check(loc, params, &e), 0);
}

static void check_ref_bad(const char *loc, const char *params,
			  const char *substr)
{
	struct az_ref r;
	struct err e = { 0 };

	assert_int_equal(az_ref_parse(loc, params, &r, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	if (!strstr(e.msg, substr))
		fail_msg("ref %s: \"%s\" lacks \"%s\"", loc, e.msg, substr);
	assert_null(r.version);
	assert_null(r.prefix);
	assert_int_equal(azure_check(loc, params, &e), -1);
}

static void test_refs(void **st)
{
	(void)st;
	check_ref("billing-env", NULL, NULL, NULL);
	check_ref("tls", "version=0123abcd", "0123abcd", NULL);
	check_ref("", "prefix=billing-", NULL, "billing-");
	check_ref("", "prefix=billing%2D", NULL, "billing-");
	check_ref_bad("db_password", NULL, "not a Key Vault secret name");
	check_ref_bad("a/b", NULL, "no '_', '/' or '.'");
	check_ref_bad("", NULL, "not a Key Vault secret name");
	check_ref_bad("x", "prefix=a-", "without a name");
	check_ref_bad("", "prefix=a-&version=1", "without a name");
	check_ref_bad("", "prefix=a_b", "letters, digits and '-'");
	check_ref_bad("x", "version=../1", "version id");
	check_ref_bad("x", "stage=AWSCURRENT", "unknown parameter");
	check_ref_bad("x", "version=1&version=2", "given twice");
}

static void test_key_mapping(void **st)
{
	struct err e = { 0 };
	char *s;

	(void)st;
	s = az_key_of("billing-DB-PASSWORD", 8);
	assert_string_equal(s, "DB_PASSWORD");
	free(s);
	assert_null(az_key_of("billing-", 8));
	s = az_name_of("billing-", "DB_PASSWORD", &e);
	assert_string_equal(s, "billing-DB-PASSWORD");
	free(s);
	assert_null(az_name_of("billing-", "B.C", &e));
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "key B.C"));
	assert_true(az_key_valid("API_KEY", 7));
	assert_true(az_key_valid("a.b-c", 5));
	assert_false(az_key_valid("", 0));
	assert_false(az_key_valid("..", 2));
	assert_false(az_key_valid("a/b", 3));
	assert_false(az_key_valid("a\nb", 3));
}

/* A listed secret, as GET /secrets shows it. */
static json_t *item(const char *name, const char *tag)
{
	json_t *j = json_pack("{s:s, s:{s:b}}", "id", "", "attributes",
			      "enabled", 1);
	char id[256];

	snprintf(id, sizeof(id), "https://v.vault.azure.net/secrets/%s", name);
	json_object_set_new(j, "id", json_string(id));
	if (tag)
		json_object_set_new(j, "tags", json_pack("{s:s}", AZ_KEY_TAG, tag));
	return j;
}

static int collect(struct az_items *items, const char *name, const char *tag,
		   struct err *e)
{
	struct az_collect c = { "billing-", items };
	json_t *j = item(name, tag);
	int rc = az_collect_one(&c, name, j, e);

	json_decref(j);
	return rc;
}

static void test_items_and_collisions(void **st)
{
	struct az_items items = { NULL, 0 };
	struct err e = { 0 };
	char v1[PROVIDER_VERSION_MAX], v2[PROVIDER_VERSION_MAX];

	(void)st;
	assert_int_equal(collect(&items, "billing-DB-PASSWORD", NULL, &e), 0);
	assert_int_equal(collect(&items, "billing-api", "API_KEY", &e), 0);
	assert_int_equal(collect(&items, "other-x", NULL, &e), 0);	/* not ours */
	assert_int_equal(collect(&items, "BILLING-y", NULL, &e), 0);	/* case-blind */
	assert_int_equal(items.n, 3);
	assert_int_equal(az_items_check(&items, &e), 0);
	/* sorted by key */
	assert_string_equal(items.v[0].key, "API_KEY");
	assert_string_equal(items.v[1].key, "DB_PASSWORD");
	assert_string_equal(items.v[2].key, "y");
	/* the version: a hash of names and version ids */
	snprintf(items.v[0].version, sizeof(items.v[0].version), "aa");
	az_items_version(&items, v1);
	assert_int_equal(strncmp(v1, "set-", 4), 0);
	assert_int_equal(strlen(v1), 4 + 48);
	snprintf(items.v[0].version, sizeof(items.v[0].version), "ab");
	az_items_version(&items, v2);
	assert_string_not_equal(v1, v2);
	items.v[2].gone = true;
	az_items_version(&items, v1);
	assert_string_not_equal(v1, v2);
	/* a tag naming a key another secret's name gives: an error naming both */
	assert_int_equal(collect(&items, "billing-other", "DB_PASSWORD", &e), 0);
	assert_int_equal(az_items_check(&items, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "billing-DB-PASSWORD"));
	assert_non_null(strstr(e.msg, "billing-other"));
	assert_non_null(strstr(e.msg, "DB_PASSWORD"));
	/* a tag that is no key */
	assert_int_equal(collect(&items, "billing-bad", "a/b", &e), -1);
	assert_non_null(strstr(e.msg, "billing-bad"));
	az_items_free(&items);
}

/* ---- answers ---- */

static void check_error(long status, const char *body, enum err_code code,
			const char *substr)
{
	struct http_response rs = resp(status, body);
	struct err e = { 0 };

	assert_int_equal(az_error_map(&rs, "billing-env", "client id app", &e), -1);
	if (e.code != code || !strstr(e.msg, substr))
		fail_msg("HTTP %ld: %s (%s) wanted %s (%s)", status, e.msg,
			 err_code_name(e.code), err_code_name(code), substr);
	http_response_free(&rs);
}

static void test_error_map(void **st)
{
	(void)st;
	check_error(404, "{\"error\":{\"code\":\"SecretNotFound\",\"message\":\"A secret with (name/id) x was not found\"}}",
		    ERR_NOTFOUND, "billing-env: no such secret");
	check_error(403, "{\"error\":{\"code\":\"Forbidden\",\"message\":\"Operation get is not allowed on a disabled secret.\",\"innererror\":{\"code\":\"SecretDisabled\"}}}",
		    ERR_ACCESS, "the secret is disabled");
	check_error(403, "{\"error\":{\"code\":\"Forbidden\",\"message\":\"The user, group or application 'appid=x' does not have secrets get permission\",\"innererror\":{\"code\":\"AccessDenied\"}}}",
		    ERR_ACCESS, "access denied by Key Vault (HTTP 403 AccessDenied): The user");
	check_error(403, "{\"error\":{\"code\":\"Forbidden\"}}", ERR_ACCESS,
		    "identity: client id app");
	check_error(401, "{\"error\":{\"code\":\"Unauthorized\",\"message\":\"AKV10000: Token is expired.\"}}",
		    ERR_ACCESS, "token refused by Key Vault (HTTP 401 Unauthorized): AKV10000");
	/* a refusal is a refusal whatever the body */
	check_error(403, "<html>denied</html>", ERR_ACCESS, "access denied");
	check_error(409, "{\"error\":{\"code\":\"Conflict\",\"message\":\"Secret x is currently in a deleted but recoverable state\",\"innererror\":{\"code\":\"ObjectIsDeletedButRecoverable\"}}}",
		    ERR_EXISTS, "az keyvault secret purge");
	check_error(409, "{\"error\":{\"code\":\"Conflict\",\"message\":\"busy\"}}",
		    ERR_CONFLICT, "conflict");
	check_error(400, "{\"error\":{\"code\":\"BadParameter\",\"message\":\"The request URI contains an invalid name: x\"}}",
		    ERR_INVALID, "refused the request (BadParameter)");
	check_error(429, "{\"error\":{\"code\":\"Throttled\",\"message\":\"slow down\"}}",
		    ERR_PROVIDER, "Throttled");
	check_error(503, "not json", ERR_PROVIDER, "HTTP 503");
	check_error(500, NULL, ERR_PROVIDER, "HTTP 500");
	/* Azure's text is cut and cleaned */
	check_error(400, "{\"error\":{\"code\":\"Bad\\u0001Parameter\",\"message\":\"line one\\r\\nTrace ID: 123\"}}",
		    ERR_INVALID, "(BadParameter): line one");
}

static void check_get(const char *body, enum err_code code, const char *substr)
{
	struct http_response rs = resp(200, body);
	struct entry en = ENTRY_INIT;
	struct err e = { 0 };

	assert_int_equal(az_get_parse(&rs, "x", &en, NULL, &e), -1);
	assert_int_equal(e.code, code);
	if (!strstr(e.msg, substr))
		fail_msg("\"%s\" lacks \"%s\"", e.msg, substr);
	assert_int_equal(en.map.n, 0);
	http_response_free(&rs);
}

static void test_get_parse(void **st)
{
	struct http_response rs = resp(200,
		"{\"value\":\"{\\\"DB\\\":\\\"pw\\\",\\\"PORT\\\":5432}\",\"contentType\":\"application/json\","
		"\"id\":\"https://v.vault.azure.net/secrets/x/0123abcd\","
		"\"attributes\":{\"enabled\":true},\"tags\":{\"team\":\"a\"}}");
	struct entry en = ENTRY_INIT;
	struct az_cur cur = { 0 };
	struct err e = { 0 };

	(void)st;
	assert_int_equal(az_get_parse(&rs, "x", &en, &cur, &e), 0);
	assert_string_equal(en.version, "0123abcd");
	assert_int_equal(en.map.n, 2);
	assert_string_equal(kvmap_get(&en.map, "PORT")->val, "5432");
	assert_non_null(cur.obj);
	assert_string_equal(cur.ctype, "application/json");
	assert_string_equal(json_string_value(json_object_get(cur.tags, "team")), "a");
	json_decref(cur.obj);
	json_decref(cur.tags);
	free(cur.ctype);
	entry_free(&en);
	http_response_free(&rs);

	/* any other value is the single key "" */
	rs = resp(200, "{\"value\":\"plain {not json\",\"id\":\"https://v/secrets/x/ff\",\"attributes\":{\"enabled\":true}}");
	assert_int_equal(az_get_parse(&rs, "x", &en, NULL, &e), 0);
	assert_int_equal(en.map.n, 1);
	assert_string_equal(kvmap_get(&en.map, "")->val, "plain {not json");
	entry_free(&en);
	http_response_free(&rs);
	rs = resp(200, "{\"value\":\"{\\\"\\\":\\\"x\\\"}\",\"id\":\"https://v/secrets/x/ff\"}");
	assert_int_equal(az_get_parse(&rs, "x", &en, NULL, &e), 0);
	assert_string_equal(kvmap_get(&en.map, "")->val, "{\"\":\"x\"}");
	entry_free(&en);
	http_response_free(&rs);

	check_get("{\"value\":\"v\",\"id\":\"https://v/secrets/x/ff\",\"attributes\":{\"enabled\":false}}",
		  ERR_ACCESS, "disabled");
	check_get("{\"id\":\"https://v/secrets/x/ff\"}", ERR_PROVIDER, "no value");
	check_get("{\"value\":42,\"id\":\"https://v/secrets/x/ff\"}", ERR_PROVIDER,
		  "no value");
	check_get("{\"value\":\"v\",\"id\":[\"x\"]}", ERR_PROVIDER, "no secret id");
	check_get("{\"value\":\"v\"}", ERR_PROVIDER, "no secret id");
	check_get("{\"value\":\"v\",\"id\":\"nothing\"}", ERR_PROVIDER, "no secret id");
	check_get("[1,2]", ERR_PROVIDER, "not a JSON object");
	check_get("<html>", ERR_PROVIDER, "not a JSON object");
}

static void test_list_page(void **st)
{
	struct http_response rs = resp(200,
		"{\"value\":[{\"id\":\"https://v/secrets/billing-a\",\"attributes\":{}},"
		"{\"id\":\"https://v/secrets/cert\",\"managed\":true},"
		"{\"id\":\"https://v/secrets/bad_name\"}],"
		"\"nextLink\":\"https://v/secrets?$skiptoken=x\"}");
	struct strv names = { NULL, 0 };
	struct az_names c = { "", &names };
	struct err e = { 0 };
	char *next = NULL;

	(void)st;
	assert_int_equal(az_list_page(&rs, "list", az_names_one, &c, &next, &e), 0);
	assert_int_equal(names.n, 1);
	assert_string_equal(names.v[0], "billing-a");
	assert_string_equal(next, "https://v/secrets?$skiptoken=x");
	free(next);
	strv_free(&names);
	http_response_free(&rs);
	rs = resp(200, "{\"value\":[],\"nextLink\":null}");
	assert_int_equal(az_list_page(&rs, "list", az_names_one, &c, &next, &e), 0);
	assert_null(next);
	http_response_free(&rs);
	rs = resp(200, "{\"secrets\":[]}");
	assert_int_equal(az_list_page(&rs, "list", az_names_one, &c, &next, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	http_response_free(&rs);
}

/* ---- options ---- */

static int create(struct conf *c, struct err *e)
{
	void *st = NULL;
	int rc = azure_create(&c->pc, &st, e);

	if (rc == 0)
		azure_destroy(st);
	return rc;
}

static void check_create_bad(struct conf *c, const char *substr)
{
	struct err e = { 0 };

	assert_int_equal(create(c, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	if (!strstr(e.msg, substr))
		fail_msg("\"%s\" lacks \"%s\"", e.msg, substr);
}

static void test_options(void **st)
{
	struct conf c;
	struct err e = { 0 };
	struct azure *az = NULL;
	char *secret = tmpfile_mode("secret", "s3cr3t\n", 0600);
	char *loose = tmpfile_mode("loose", "s3cr3t\n", 0644);

	(void)st;
	/* a vault name is the public cloud's URL; auto is managed identity
	 * when nothing else is configured */
	conf_make(&c, "vault", "my-vault", NULL);
	assert_int_equal(azure_create(&c.pc, (void **)&az, &e), 0);
	assert_string_equal(az->vault, "https://my-vault.vault.azure.net");
	assert_string_equal(az->host, "my-vault.vault.azure.net");
	assert_string_equal(az->api, "7.4");
	assert_true(az->verify);
	assert_string_equal(az_auth_identity(az->auth),
			    "managed identity (IMDS, system-assigned)");
	azure_destroy(az);
	conf_make(&c, "vault", "https://kv.example.private:8443/", "api_version",
		  "7.5", "disable_challenge_resource_verification", "true",
		  "client_id", "app", "client_secret_file", secret, NULL);
	assert_int_equal(azure_create(&c.pc, (void **)&az, &e), 0);
	assert_string_equal(az->vault, "https://kv.example.private:8443");
	assert_string_equal(az->host, "kv.example.private");
	assert_false(az->verify);
	assert_string_equal(az_auth_identity(az->auth),
			    "client id app (client secret)");
	assert_string_equal(az->auth->authority, "https://login.microsoftonline.com");
	azure_destroy(az);

	conf_make(&c, NULL);
	check_create_bad(&c, "no vault");
	conf_make(&c, "vault", "my_vault", NULL);
	check_create_bad(&c, "neither a vault name");
	conf_make(&c, "vault", "ab", NULL);
	check_create_bad(&c, "neither a vault name");
	conf_make(&c, "vault", "ftp://x", NULL);
	check_create_bad(&c, "neither a vault name");
	conf_make(&c, "vault", "https://x?y", NULL);
	check_create_bad(&c, "not an http:// or https:// URL");
	conf_make(&c, "vault", "v-1", "api_version", "7.4&x=1", NULL);
	check_create_bad(&c, "api_version");
	conf_make(&c, "vault", "v-1", "credential", "password", NULL);
	check_create_bad(&c, "not auto, client_secret");
	conf_make(&c, "vault", "v-1", "credential", "client_secret", NULL);
	check_create_bad(&c, "needs client_secret_file");
	conf_make(&c, "vault", "v-1", "credential", "workload_identity", NULL);
	check_create_bad(&c, "needs AZURE_FEDERATED_TOKEN_FILE");
	conf_make(&c, "vault", "v-1", "client_secret_file", secret, NULL);
	check_create_bad(&c, "needs client_id");
	conf_make(&c, "vault", "v-1", "client_id", "app",
		  "client_secret_file", loose, NULL);
	check_create_bad(&c, "readable by group or others");
	conf_make(&c, "vault", "v-1", "client_id", "app",
		  "client_secret_file", "relative/path", NULL);
	check_create_bad(&c, "absolute path");
	conf_make(&c, "vault", "v-1", "tenant_id", "a/b", NULL);
	check_create_bad(&c, "tenant_id");
	conf_make(&c, "vault", "v-1", "client_id", "a b", NULL);
	check_create_bad(&c, "client_id");
	conf_make(&c, "vault", "v-1", "disable_challenge_resource_verification",
		  "yes", NULL);
	check_create_bad(&c, "not true or false");
	conf_make(&c, "vault", "v-1", "client_id", "app", "client_secret_file",
		  secret, "authority_host", "login.example", NULL);
	check_create_bad(&c, "authority_host");
	conf_make(&c, "vault", "v-1", "ca_file", "/nonexistent/ca.pem", NULL);
	check_create_bad(&c, "ca_file");
}

static void test_credential_chain(void **st)
{
	struct conf c;
	struct err e = { 0 };
	struct azure *az = NULL;
	char *fed = tmpfile_mode("fed", "jwt\n", 0644);

	(void)st;
	/* environment client secret first... */
	setenv("AZURE_CLIENT_ID", "env-app", 1);
	setenv("AZURE_CLIENT_SECRET", "env-secret", 1);
	setenv("AZURE_FEDERATED_TOKEN_FILE", fed, 1);
	setenv("AZURE_AUTHORITY_HOST", "https://login.example/", 1);
	conf_make(&c, "vault", "v-1", NULL);
	assert_int_equal(azure_create(&c.pc, (void **)&az, &e), 0);
	assert_string_equal(az_auth_identity(az->auth),
			    "client id env-app (client secret)");
	assert_string_equal(az->auth->authority, "https://login.example");
	azure_destroy(az);
	/* ...then workload identity (its token file may be 0644)... */
	unsetenv("AZURE_CLIENT_SECRET");
	assert_int_equal(azure_create(&c.pc, (void **)&az, &e), 0);
	assert_string_equal(az_auth_identity(az->auth),
			    "client id env-app (workload identity)");
	azure_destroy(az);
	/* ...then managed identity, AZURE_CLIENT_ID naming a user-assigned
	 * one; App Service when its variables are set */
	unsetenv("AZURE_FEDERATED_TOKEN_FILE");
	assert_int_equal(azure_create(&c.pc, (void **)&az, &e), 0);
	assert_string_equal(az_auth_identity(az->auth),
			    "managed identity env-app (IMDS)");
	azure_destroy(az);
	setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:8081/msi/token", 1);
	setenv("IDENTITY_HEADER", "hdr", 1);
	unsetenv("AZURE_CLIENT_ID");
	assert_int_equal(azure_create(&c.pc, (void **)&az, &e), 0);
	assert_string_equal(az_auth_identity(az->auth),
			    "managed identity (App Service, system-assigned)");
	azure_destroy(az);
	/* an explicit credential wins */
	setenv("AZURE_CLIENT_SECRET", "env-secret", 1);
	setenv("AZURE_CLIENT_ID", "env-app", 1);
	conf_make(&c, "vault", "v-1", "credential", "managed_identity", NULL);
	assert_int_equal(azure_create(&c.pc, (void **)&az, &e), 0);
	assert_int_equal(az->auth->kind, AZA_MANAGED);
	azure_destroy(az);
}

static void test_mi_url(void **st)
{
	struct conf c;
	struct err e = { 0 };
	struct azure *az = NULL;
	char *url;

	(void)st;
	setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9/", 1);
	conf_make(&c, "vault", "v-1", NULL);
	assert_int_equal(azure_create(&c.pc, (void **)&az, &e), 0);
	url = aza_mi_url(az->auth, "https://vault.azure.net/.default");
	assert_string_equal(url, "http://127.0.0.1:9/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net");
	free(url);
	azure_destroy(az);
	conf_make(&c, "vault", "v-1", "client_id", "mi-1",
		  "imds_endpoint", "http://127.0.0.1:10", NULL);
	assert_int_equal(azure_create(&c.pc, (void **)&az, &e), 0);
	url = aza_mi_url(az->auth, "https://vault.azure.net/.default");
	assert_string_equal(url, "http://127.0.0.1:10/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=mi-1");
	free(url);
	azure_destroy(az);
	{
		struct http_response r = HTTP_RESPONSE_INIT;
		static const struct { long status; enum http_verdict v; } cases[] = {
			{ 410, HTTP_VERDICT_RETRY }, { 404, HTTP_VERDICT_RETRY },
			{ 429, HTTP_VERDICT_DEFAULT }, { 503, HTTP_VERDICT_DEFAULT },
			{ 400, HTTP_VERDICT_DEFAULT }, { 200, HTTP_VERDICT_DEFAULT },
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
			r.status = cases[i].status;
			assert_int_equal(aza_imds_classify(NULL, &r), cases[i].v);
		}
	}
}

static void test_tenant_mismatch(void **st)
{
	struct conf c;
	struct err e = { 0 };
	struct azure *az = NULL;
	struct az_challenge ch = { TENANT, "https://vault.azure.net/.default" };
	struct secbuf tok = SECBUF_INIT;
	uint64_t gen;

	(void)st;
	setenv("AZURE_CLIENT_SECRET", "env-secret", 1);
	conf_make(&c, "vault", "v-1", "client_id", "app", "tenant_id",
		  "other-tenant", NULL);
	assert_int_equal(azure_create(&c.pc, (void **)&az, &e), 0);
	assert_int_equal(az_auth_token(az->auth, &ch, clock_now_ms() + 1000,
				       &tok, &gen, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_non_null(strstr(e.msg, "the vault is in tenant " TENANT));
	assert_non_null(strstr(e.msg, "client id app"));
	/* failures back off: the next call says so without a request */
	assert_int_equal(az_auth_token(az->auth, &ch, clock_now_ms() + 1000,
				       &tok, &gen, &e), -1);
	assert_non_null(strstr(e.msg, "next attempt in"));
	secbuf_free(&tok);
	azure_destroy(az);
}

#define T(f) cmocka_unit_test_setup(f, env_reset)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_challenge_parse),
		T(test_challenge_resource_check),
		T(test_challenge_cut),
		T(test_challenge_malformed),
		T(test_names),
		T(test_refs),
		T(test_key_mapping),
		T(test_items_and_collisions),
		T(test_error_map),
		T(test_get_parse),
		T(test_list_page),
		T(test_options),
		T(test_credential_chain),
		T(test_mi_url),
		T(test_tenant_mismatch),
	};

	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
