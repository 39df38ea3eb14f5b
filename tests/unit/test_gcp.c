/* test_gcp.c - unit tests for the GCP Secret Manager provider
 * (providers/gcp.c) and its Application Default Credentials
 * (providers/gcp_auth.c).
 *
 * Their parsing and policy parts are static; this file includes both, so
 * the archive's copies are never linked in. Nothing here needs a server:
 * references, answers, error bodies and credential files are fed in as
 * Google writes them, and the JWT assertion is verified with libcrypto
 * against a key made here. The wire protocol is exercised against
 * tests/emulators/gcpsm.py by real mounts
 * (tests/integration/test_gcp_mount.py).
 * Run: build/tests/test_gcp
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "providers/gcp.c"
#include "providers/gcp_auth.c"

#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROVIDER_TEST_NAME "gcp"
#define PROVIDER_TEST_TYPE "gcp-secretmanager"
#include "provider_test.h"

static const char *const gcp_vars[] = {
	"GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT",
	"CLOUDSDK_CONFIG", "GCE_METADATA_HOST",
};

static int env_reset(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof(gcp_vars) / sizeof(*gcp_vars); i++)
		unsetenv(gcp_vars[i]);
	setenv("HOME", tmpdir, 1);
	return 0;
}

static EVP_PKEY *test_key;
static char *test_pem;		/* PKCS#8 PEM of test_key */

static int setup_all(void **st)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long len;

	(void)st;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_gcp.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	log_init(LOG_LVL_ERROR, false);
	test_key = EVP_RSA_gen(2048);
	assert_non_null(test_key);
	assert_int_equal(PEM_write_bio_PrivateKey(b, test_key, NULL, NULL, 0,
						  NULL, NULL), 1);
	len = BIO_get_mem_data(b, &data);
	test_pem = strndup(data, (size_t)len);
	BIO_free(b);
	return 0;
}

static int teardown_all(void **st)
{
	char cmd[128];

	(void)st;
	EVP_PKEY_free(test_key);
	free(test_pem);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- CRC32C ---- */

static void test_crc32c_vector(void **st)
{
	(void)st;
	/* Castagnoli, not zlib's 0xCBF43926 */
	assert_int_equal(crc32c_update(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c_update(0, "123456789", 9), 3808858755u);
}

/* ---- references ---- */

static void check_ref(const char *loc, const char *params, const char *project,
		      const char *location, const char *secret,
		      const char *version)
{
	struct gcp_ref r;
	struct err e = { 0 };

	if (gcp_ref_parse(loc, params, &r, &e) < 0)
		fail_msg("%s: %s", loc, e.msg);
	if (project)
		assert_string_equal(r.project, project);
	else
		assert_null(r.project);
	if (location)
		assert_string_equal(r.location, location);
	else
		assert_null(r.location);
	assert_string_equal(r.secret, secret);
	if (version)
		assert_string_equal(r.version, version);
	else
		assert_null(r.version);
	gcp_ref_free(&r);
}

static void check_ref_bad(const char *loc, const char *params,
			  const char *substr)
{
	struct gcp_ref r;
	struct err e = { 0 };

	assert_int_equal(gcp_check(loc, params, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	if (!strstr(e.msg, substr))
		fail_msg("%s: \"%s\", wanted \"%s\"", loc, e.msg, substr);
	(void)r;
}

static void test_refs(void **st)
{
	(void)st;
	check_ref("db", NULL, NULL, NULL, "db", NULL);
	check_ref("my-proj/db_PW-1", "version=3", "my-proj", NULL, "db_PW-1", "3");
	check_ref("db", "version=latest", NULL, NULL, "db", "latest");
	check_ref("db", "version=stable-1", NULL, NULL, "db", "stable-1");
	check_ref("projects/p1/secrets/db", NULL, "p1", NULL, "db", NULL);
	check_ref("projects/123456/secrets/db/versions/7", NULL, "123456", NULL,
		  "db", "7");
	check_ref("projects/p1/locations/europe-west1/secrets/db", "version=2",
		  "p1", "europe-west1", "db", "2");
	check_ref("projects/p1/locations/us-east1/secrets/db/versions/latest",
		  NULL, "p1", "us-east1", "db", "latest");
	check_ref("google.com:legacy/db", NULL, "google.com:legacy", NULL, "db",
		  NULL);
	{
		char id[256];

		memset(id, 'a', 255);
		id[255] = '\0';
		check_ref(id, NULL, NULL, NULL, id, NULL);
		strcat(id, "");
	}
	check_ref_bad("db.password", NULL, "not a Secret Manager secret id");
	check_ref_bad("p1/db/x", NULL, "is not a secret");
	check_ref_bad("projects/p1/secrets", NULL, "is not a secret");
	check_ref_bad("projects/p1/keys/db", NULL, "is not a secret");
	check_ref_bad("projects/p1/secrets/db/versions", NULL, "is not a secret");
	check_ref_bad("p1//db", NULL, "is not a secret");
	check_ref_bad("My_Proj/db", NULL, "not a GCP project");
	check_ref_bad("projects/p1/locations/EU/secrets/db", NULL, "not a GCP location");
	check_ref_bad("db", "version=0", "not a version number");
	check_ref_bad("db", "version=1.5", "not a version number");
	check_ref_bad("projects/p1/secrets/db/versions/2", "version=3",
		      "named twice");
	check_ref_bad("db", "mount=x", "version=N|latest|ALIAS");
	{
		char id[300];

		memset(id, 'a', 256);
		id[256] = '\0';
		check_ref_bad(id, NULL, "not a Secret Manager secret id");
	}
}

/* ---- answers ---- */

/* An :access answer for the len bytes at data, with crc ("" leaves it
 * out, NULL: the right one). */
static char *access_body(const void *data, size_t len, const char *crc)
{
	char b64[4096], right[16], *out = NULL;

	sodium_bin2base64(b64, sizeof(b64), data, len,
			  sodium_base64_VARIANT_ORIGINAL);
	snprintf(right, sizeof(right), "%u", crc32c_update(0, data, len));
	if (!crc)
		crc = right;
	assert_true(asprintf(&out,
			     "{\"name\":\"projects/861234567890/secrets/s/versions/12\",\"payload\":{\"data\":\"%s\"%s%s%s}}",
			     b64, crc[0] ? ",\"dataCrc32c\":\"" : "", crc,
			     crc[0] ? "\"" : "") > 0);
	return out;
}

static int access_of(const char *body, struct entry *en, json_t **obj,
		  struct err *e)
{
	struct http_response rs = resp(200, body);
	bool corrupt = false;
	int rc = gcp_access_parse(&rs, "s", en, obj, &corrupt, e);

	assert_true(corrupt == (rc < 0 && strstr(e->msg, "CRC32C checksum") != NULL));

	http_response_free(&rs);
	return rc;
}

static void test_access_parse(void **st)
{
	static const char json[] = "{\"A\":\"1\",\"PORT\":5432}";
	static const unsigned char bin[] = { 0, 1, 0xff, 'x', '\n', 0 };
	struct entry en = ENTRY_INIT;
	struct err e = { 0 };
	json_t *obj = NULL;
	char *b;

	(void)st;
	/* a JSON object: keys */
	b = access_body(json, strlen(json), NULL);
	assert_int_equal(access_of(b, &en, &obj, &e), 0);
	assert_string_equal(en.version, "12");
	assert_int_equal(en.map.n, 2);
	assert_string_equal(kvmap_get(&en.map, "PORT")->val, "5432");
	assert_non_null(obj);
	json_decref(obj);
	entry_free(&en);
	free(b);
	/* binary: one value, exact bytes */
	b = access_body(bin, sizeof(bin), NULL);
	assert_int_equal(access_of(b, &en, NULL, &e), 0);
	assert_int_equal(en.map.n, 1);
	assert_int_equal(kvmap_get(&en.map, "")->len, sizeof(bin));
	assert_memory_equal(kvmap_get(&en.map, "")->val, bin, sizeof(bin));
	entry_free(&en);
	free(b);
	/* text */
	b = access_body("plain text", 10, NULL);
	assert_int_equal(access_of(b, &en, NULL, &e), 0);
	assert_string_equal(kvmap_get(&en.map, "")->val, "plain text");
	entry_free(&en);
	free(b);
	/* an empty payload has no data member */
	assert_int_equal(access_of("{\"name\":\"projects/1/secrets/s/versions/1\",\"payload\":{\"dataCrc32c\":\"0\"}}",
				&en, NULL, &e), 0);
	assert_int_equal(kvmap_get(&en.map, "")->len, 0);
	entry_free(&en);
	/* no checksum (a version older than checksums): served */
	b = access_body("old", 3, "");
	assert_int_equal(access_of(b, &en, NULL, &e), 0);
	entry_free(&en);
	free(b);
}

static void check_access_bad(const char *body, const char *substr)
{
	struct entry en = ENTRY_INIT;
	struct err e = { 0 };

	assert_int_equal(access_of(body, &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	if (!strstr(e.msg, substr))
		fail_msg("%s: \"%s\", wanted \"%s\"", body, e.msg, substr);
	assert_int_equal(en.map.n, 0);
	/* never the value */
	assert_null(strstr(e.msg, "c2VjcmV0"));
	assert_null(strstr(e.msg, "secret-value"));
}

static void test_access_bad(void **st)
{
	char *b;

	(void)st;
	/* a wrong checksum: the value is not served */
	b = access_body("secret-value", 12, "12345");
	check_access_bad(b, "does not match its CRC32C checksum");
	free(b);
	/* zlib's crc32 is not it */
	b = access_body("123456789", 9, "3421780262");
	check_access_bad(b, "CRC32C");
	free(b);
	b = access_body("secret-value", 12, "-1");
	check_access_bad(b, "dataCrc32c");
	free(b);
	b = access_body("secret-value", 12, "99999999999");
	check_access_bad(b, "dataCrc32c");
	free(b);
	check_access_bad("{\"payload\":{\"data\":\"c2VjcmV0\",\"dataCrc32c\":\"1\"}}",
			 "no version name");
	check_access_bad("{\"name\":\"projects/1/secrets/s/versions/x\",\"payload\":{}}",
			 "no version name");
	check_access_bad("{\"name\":\"projects/1/secrets/s/versions/1\",\"payload\":{\"data\":\"!!\",\"dataCrc32c\":\"1\"}}",
			 "not base64");
	check_access_bad("{\"name\":\"projects/1/secrets/s/versions/1\"}", "no payload");
	check_access_bad("<html>", "no version name");
}

static void test_payload_body(void **st)
{
	static const unsigned char val[] = { 'p', 0, 0xfe, '"' };
	struct secbuf b = SECBUF_INIT;
	struct err e = { 0 };
	json_t *j, *p;
	unsigned char out[16];
	size_t len;
	char want[16];

	(void)st;
	assert_int_equal(gcp_payload_body(val, sizeof(val), &b, &e), 0);
	j = json_loadb(b.data, b.len, 0, NULL);
	p = json_object_get(j, "payload");
	assert_int_equal(sodium_base642bin(out, sizeof(out),
					   json_string_value(json_object_get(p, "data")),
					   json_string_length(json_object_get(p, "data")),
					   NULL, &len, NULL,
					   sodium_base64_VARIANT_ORIGINAL), 0);
	assert_int_equal(len, sizeof(val));
	assert_memory_equal(out, val, len);
	snprintf(want, sizeof(want), "%u", crc32c_update(0, val, sizeof(val)));
	assert_string_equal(json_string_value(json_object_get(p, "dataCrc32c")), want);
	json_decref(j);
	secbuf_free(&b);
}

static void test_added_and_list(void **st)
{
	struct http_response rs = resp(200, "{\"name\":\"projects/8612/secrets/s/versions/4\",\"createTime\":\"2026-01-01T00:00:00Z\",\"state\":\"ENABLED\"}");
	char version[PROVIDER_VERSION_MAX];
	struct strv out = { NULL, 0 };
	struct err e = { 0 };
	char *next = NULL;

	(void)st;
	assert_int_equal(gcp_added_parse(&rs, "s", version, &e), 0);
	assert_string_equal(version, "4");
	http_response_free(&rs);
	rs = resp(200, "{\"state\":\"ENABLED\"}");
	assert_int_equal(gcp_added_parse(&rs, "s", version, &e), -1);
	http_response_free(&rs);

	rs = resp(200, "{\"secrets\":[{\"name\":\"projects/1/secrets/app-a\"},{\"name\":\"projects/1/secrets/other\"},{\"name\":\"projects/1/secrets/app-b\"}],\"nextPageToken\":\"tok/+=\",\"totalSize\":3}");
	assert_int_equal(gcp_list_page(&rs, "list", "app-", &out, &next, &e), 0);
	assert_int_equal(out.n, 2);
	assert_string_equal(out.v[0], "app-a");
	assert_string_equal(next, "tok/+=");
	free(next);
	strv_free(&out);
	http_response_free(&rs);
	/* the last page: no secrets member at all */
	rs = resp(200, "{}");
	assert_int_equal(gcp_list_page(&rs, "list", "", &out, &next, &e), 0);
	assert_null(next);
	http_response_free(&rs);
	rs = resp(200, "{\"secrets\":{}}");
	assert_int_equal(gcp_list_page(&rs, "list", "", &out, &next, &e), -1);
	http_response_free(&rs);
}

/* ---- errors ---- */

static void check_error(long status, const char *body, enum err_code code,
			const char *substr)
{
	struct http_response rs = resp(status, body);
	struct err e = { 0 };

	assert_int_equal(gcp_error_map(&rs, "Secret Manager", "billing-env",
				       "service account a@p.iam.gserviceaccount.com",
				       &e), -1);
	if (e.code != code || !strstr(e.msg, substr))
		fail_msg("%ld %s: \"%s\" (%s), wanted %s \"%s\"", status,
			 body ? body : "", e.msg, err_code_name(e.code),
			 err_code_name(code), substr);
	http_response_free(&rs);
}

static void test_error_map(void **st)
{
	(void)st;
	check_error(404, "{\"error\":{\"code\":404,\"message\":\"Secret [projects/1/secrets/billing-env] not found or has no versions.\",\"status\":\"NOT_FOUND\"}}",
		    ERR_NOTFOUND, "billing-env: not found (Secret [projects/1/secrets/billing-env] not found");
	check_error(403, "{\"error\":{\"code\":403,\"message\":\"Permission 'secretmanager.versions.access' denied for resource 'projects/p/secrets/billing-env/versions/latest' (or it may not exist).\",\"status\":\"PERMISSION_DENIED\"}}",
		    ERR_ACCESS, "billing-env: access denied by Secret Manager (HTTP 403 PERMISSION_DENIED: Permission 'secretmanager.versions.access' denied");
	check_error(403, "{\"error\":{\"code\":403,\"message\":\"x\",\"status\":\"PERMISSION_DENIED\"}}",
		    ERR_ACCESS, "identity: service account a@p.iam.gserviceaccount.com");
	check_error(401, "{\"error\":{\"code\":401,\"message\":\"Request had invalid authentication credentials.\",\"status\":\"UNAUTHENTICATED\"}}",
		    ERR_ACCESS, "credentials refused by Secret Manager");
	/* any refusal, whatever the body */
	check_error(403, "<html>Forbidden</html>", ERR_ACCESS,
		    "access denied by Secret Manager (HTTP 403); identity: service account");
	check_error(401, NULL, ERR_ACCESS, "identity");
	check_error(403, "{\"error\":{\"code\":403,\"message\":\"m\",\"status\":\"NOT_FOUND\"}}",
		    ERR_ACCESS, "access denied");
	/* a disabled or destroyed version: a refusal, not "missing" */
	check_error(400, "{\"error\":{\"code\":400,\"message\":\"SecretVersion [projects/1/secrets/s/versions/2] is in DISABLED state.\",\"status\":\"FAILED_PRECONDITION\"}}",
		    ERR_ACCESS, "billing-env: the version cannot be used (FAILED_PRECONDITION: SecretVersion [projects/1/secrets/s/versions/2] is in DISABLED state.)");
	check_error(409, "{\"error\":{\"code\":409,\"message\":\"Secret [x] already exists.\",\"status\":\"ALREADY_EXISTS\"}}",
		    ERR_EXISTS, "ALREADY_EXISTS");
	check_error(400, "{\"error\":{\"code\":400,\"message\":\"bad\\nline two\",\"status\":\"INVALID_ARGUMENT\"}}",
		    ERR_INVALID, "Secret Manager error INVALID_ARGUMENT (HTTP 400): bad");
	check_error(429, "{\"error\":{\"code\":429,\"message\":\"Quota exceeded\",\"status\":\"RESOURCE_EXHAUSTED\"}}",
		    ERR_PROVIDER, "RESOURCE_EXHAUSTED");
	check_error(503, "{\"error\":{\"code\":503,\"message\":\"The service is currently unavailable.\",\"status\":\"UNAVAILABLE\"}}",
		    ERR_PROVIDER, "UNAVAILABLE");
	/* a 404 that is not Google's: not "missing" (that would generate) */
	check_error(404, "<html>Not Found</html>", ERR_PROVIDER,
		    "HTTP 404 (not found) from Secret Manager, not a Google API error");
	check_error(500, "garbage", ERR_PROVIDER, "HTTP 500");
	check_error(200, "{\"error\":\"x\"}", ERR_PROVIDER, "not a Google API error");
}

/* ---- the JWT assertion ---- */

static json_t *jwt_part(const char *s, size_t len)
{
	unsigned char buf[2048];
	size_t n;

	assert_int_equal(sodium_base642bin(buf, sizeof(buf), s, len, NULL, &n,
					   NULL,
					   sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	return json_loadb((char *)buf, n, 0, NULL);
}

static void test_jwt(void **st)
{
	struct secbuf jwt = SECBUF_INIT;
	struct err e = { 0 };
	const char *d1, *d2;
	unsigned char sig[512];
	size_t siglen;
	json_t *h, *c;
	EVP_MD_CTX *ctx;

	(void)st;
	assert_int_equal(gca_jwt_build(test_pem, strlen(test_pem), "kid-1",
				       "app@p.iam.gserviceaccount.com",
				       "https://oauth2.googleapis.com/token",
				       1700000000, &jwt, &e), 0);
	d1 = strchr(jwt.data, '.');
	assert_non_null(d1);
	d2 = strchr(d1 + 1, '.');
	assert_non_null(d2);
	assert_null(strchr(jwt.data, '='));
	h = jwt_part(jwt.data, (size_t)(d1 - jwt.data));
	c = jwt_part(d1 + 1, (size_t)(d2 - d1 - 1));
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
	assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "kid-1");
	assert_string_equal(json_string_value(json_object_get(c, "iss")),
			    "app@p.iam.gserviceaccount.com");
	assert_string_equal(json_string_value(json_object_get(c, "aud")),
			    "https://oauth2.googleapis.com/token");
	assert_string_equal(json_string_value(json_object_get(c, "scope")),
			    "https://www.googleapis.com/auth/cloud-platform");
	assert_int_equal(json_integer_value(json_object_get(c, "iat")), 1700000000);
	assert_int_equal(json_integer_value(json_object_get(c, "exp")), 1700003600);
	json_decref(h);
	json_decref(c);
	/* the signature verifies with the public key */
	assert_int_equal(sodium_base642bin(sig, sizeof(sig), d2 + 1, strlen(d2 + 1),
					   NULL, &siglen, NULL,
					   sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	assert_int_equal(siglen, 256);
	ctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
					      test_key), 1);
	assert_int_equal(EVP_DigestVerify(ctx, sig, siglen,
					  (const unsigned char *)jwt.data,
					  (size_t)(d2 - jwt.data)), 1);
	/* and not for other content */
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
					      test_key), 1);
	assert_int_not_equal(EVP_DigestVerify(ctx, sig, siglen,
					      (const unsigned char *)jwt.data,
					      (size_t)(d2 - jwt.data - 1)), 1);
	EVP_MD_CTX_free(ctx);
	/* without a key id: no kid */
	assert_int_equal(gca_jwt_build(test_pem, strlen(test_pem), NULL, "a", "b",
				       1, &jwt, &e), 0);
	h = jwt_part(jwt.data, (size_t)(strchr(jwt.data, '.') - jwt.data));
	assert_null(json_object_get(h, "kid"));
	json_decref(h);
	/* not a key: refused, nothing of it in the message */
	assert_int_equal(gca_jwt_build("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
				       60, NULL, "a", "b", 1, &jwt, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_null(strstr(e.msg, "AAAA"));
	assert_int_equal(jwt.len, 0);
	secbuf_free(&jwt);
}

/* ---- token answers ---- */

static void test_iam_parse(void **st)
{
	struct http_response rs = resp(200, "{\"accessToken\":\"ya29.imp\",\"expireTime\":\"2026-12-05T10:00:00Z\"}");
	struct secbuf tok = SECBUF_INIT;
	struct err e = { 0 };
	time_t exp;

	(void)st;
	assert_int_equal(gca_iam_parse(&rs, "IAM", &tok, &exp, &e), 0);
	assert_string_equal(tok.data, "ya29.imp");
	assert_int_equal(exp, clock_rfc3339_parse("2026-12-05T10:00:00Z"));
	http_response_free(&rs);
	rs = resp(200, "{\"accessToken\":\"ya29.imp\"}");
	assert_int_equal(gca_iam_parse(&rs, "IAM", &tok, &exp, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	http_response_free(&rs);
	rs = resp(200, "{\"accessToken\":\"a b\",\"expireTime\":\"2026-12-05T10:00:00Z\"}");
	assert_int_equal(gca_iam_parse(&rs, "IAM", &tok, &exp, &e), -1);
	http_response_free(&rs);
	secbuf_free(&tok);
}

static void test_subject_extract(void **st)
{
	struct secbuf raw = SECBUF_INIT, out = SECBUF_INIT;
	struct err e = { 0 };
	json_t *fmt = json_pack("{s:s,s:s}", "type", "json",
				"subject_token_field_name", "id_token");

	(void)st;
	secbuf_puts(&raw, "eyJ.subject.sig\n");
	assert_int_equal(gca_subject_extract(NULL, &raw, &out, &e), 0);
	assert_string_equal(out.data, "eyJ.subject.sig");
	secbuf_set(&raw, "{\"id_token\":\"eyJ.j.s\"}", 22);
	assert_int_equal(gca_subject_extract(fmt, &raw, &out, &e), 0);
	assert_string_equal(out.data, "eyJ.j.s");
	secbuf_set(&raw, "{\"other\":1}", 11);
	assert_int_equal(gca_subject_extract(fmt, &raw, &out, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	secbuf_set(&raw, " \n", 2);
	assert_int_equal(gca_subject_extract(NULL, &raw, &out, &e), -1);
	json_decref(fmt);
	secbuf_free(&raw);
	secbuf_free(&out);
}

/* ---- credentials files ---- */

static int auth_new(struct conf *c, struct gcp_auth **a, struct err *e)
{
	return gcp_auth_new(&c->pc, NULL, a, e);
}

static void check_kind(const char *json, enum gca_kind kind,
		       const char *identity, const char *project)
{
	struct conf c;
	struct gcp_auth *a = NULL;
	struct err e = { 0 };
	char *p = tmpfile_mode("cred.json", json, 0600);

	conf_make(&c, "credentials_file", p, NULL);
	if (auth_new(&c, &a, &e) < 0)
		fail_msg("%s: %s", json, e.msg);
	assert_int_equal(a->kind, kind);
	if (!strstr(a->identity, identity))
		fail_msg("identity \"%s\", wanted \"%s\"", a->identity, identity);
	if (project)
		assert_string_equal(a->file_project, project);
	else
		assert_null(a->file_project);
	gcp_auth_free(a);
}

static void check_auth_bad(struct conf *c, const char *substr)
{
	struct gcp_auth *a = NULL;
	struct err e = { 0 };

	assert_int_equal(auth_new(c, &a, &e), -1);
	if (!strstr(e.msg, substr))
		fail_msg("\"%s\", wanted \"%s\"", e.msg, substr);
	assert_null(strstr(e.msg, "PRIVATE KEY"));
}

static void test_adc_types(void **st)
{
	(void)st;
	check_kind("{\"type\":\"service_account\",\"project_id\":\"p1\",\"private_key_id\":\"k\",\"private_key\":\"-----BEGIN PRIVATE KEY-----\\n\",\"client_email\":\"app@p1.iam.gserviceaccount.com\",\"token_uri\":\"https://oauth2.googleapis.com/token\"}",
		   GCA_SERVICE_ACCOUNT, "service account app@p1.iam.gserviceaccount.com", "p1");
	check_kind("{\"type\":\"authorized_user\",\"client_id\":\"c\",\"client_secret\":\"s\",\"refresh_token\":\"r\"}",
		   GCA_AUTHORIZED_USER, "user credentials", NULL);
	check_kind("{\"type\":\"external_account\",\"audience\":\"//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q\",\"subject_token_type\":\"urn:ietf:params:oauth:token-type:jwt\",\"token_url\":\"https://sts.googleapis.com/v1/token\",\"credential_source\":{\"file\":\"/var/run/t\"},\"service_account_impersonation_url\":\"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken\"}",
		   GCA_EXTERNAL, "workload identity federation (//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q) as service account sa@p.iam.gserviceaccount.com", NULL);
	check_kind("{\"type\":\"impersonated_service_account\",\"service_account_impersonation_url\":\"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/t@p.iam.gserviceaccount.com:generateAccessToken\",\"source_credentials\":{\"type\":\"authorized_user\"},\"delegates\":[]}",
		   GCA_IMPERSONATED, "service account t@p.iam.gserviceaccount.com (impersonated)", NULL);
}

static void test_adc_refusals(void **st)
{
	struct conf c;
	char *p;

	(void)st;
	/* a key readable by others */
	p = tmpfile_mode("open.json", "{\"type\":\"service_account\",\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nX\\n\",\"client_email\":\"a@b\"}", 0644);
	conf_make(&c, "credentials_file", p, NULL);
	check_auth_bad(&c, "readable by group or others");
	/* an external_account file holds no secret: it may be shared */
	p = tmpfile_mode("wif.json", "{\"type\":\"external_account\",\"audience\":\"a\",\"subject_token_type\":\"t\",\"token_url\":\"https://sts.googleapis.com/v1/token\",\"credential_source\":{\"file\":\"/t\"}}", 0644);
	conf_make(&c, "credentials_file", p, NULL);
	{
		struct gcp_auth *a = NULL;
		struct err e = { 0 };

		assert_int_equal(auth_new(&c, &a, &e), 0);
		gcp_auth_free(a);
	}
	p = tmpfile_mode("unknown.json", "{\"type\":\"external_account_authorized_user\"}", 0600);
	conf_make(&c, "credentials_file", p, NULL);
	check_auth_bad(&c, "credentials of type 'external_account_authorized_user'");
	p = tmpfile_mode("notype.json", "{\"client_email\":\"x\"}", 0600);
	conf_make(&c, "credentials_file", p, NULL);
	check_auth_bad(&c, "credentials of type '(none)'");
	p = tmpfile_mode("garbage.json", "-----BEGIN PRIVATE KEY-----", 0600);
	conf_make(&c, "credentials_file", p, NULL);
	check_auth_bad(&c, "not a JSON object");
	conf_make(&c, "credentials_file", "/nonexistent/key.json", NULL);
	check_auth_bad(&c, "credentials_file: /nonexistent/key.json");
	conf_make(&c, NULL);
	setenv("GOOGLE_APPLICATION_CREDENTIALS", "relative.json", 1);
	check_auth_bad(&c, "GOOGLE_APPLICATION_CREDENTIALS: relative.json must be an absolute path");
	p = tmpfile_mode("bad-uri.json", "{\"type\":\"authorized_user\",\"token_uri\":\"ftp://x\"}", 0600);
	conf_make(&c, "credentials_file", p, NULL);
	check_auth_bad(&c, "token_uri");
}

static void test_adc_order(void **st)
{
	struct conf c;
	struct gcp_auth *a = NULL;
	struct err e = { 0 };
	char dir[128], *p;

	(void)st;
	/* nothing: the metadata server, GCE_METADATA_HOST honoured */
	conf_make(&c, NULL);
	setenv("GCE_METADATA_HOST", "127.0.0.1:8181", 1);
	assert_int_equal(auth_new(&c, &a, &e), 0);
	assert_int_equal(a->kind, GCA_METADATA);
	assert_string_equal(a->metadata, "http://127.0.0.1:8181");
	assert_non_null(strstr(a->identity, "metadata server"));
	gcp_auth_free(a);
	conf_make(&c, "metadata_host", "169.254.169.254", NULL);
	assert_int_equal(auth_new(&c, &a, &e), 0);
	assert_string_equal(a->metadata, "http://169.254.169.254");
	gcp_auth_free(a);
	conf_make(&c, "metadata_host", "evil/path", NULL);
	check_auth_bad(&c, "not a host[:port]");
	unsetenv("GCE_METADATA_HOST");
	/* gcloud's file under $HOME */
	snprintf(dir, sizeof(dir), "%s/.config", tmpdir);
	mkdir(dir, 0700);
	snprintf(dir, sizeof(dir), "%s/.config/gcloud", tmpdir);
	mkdir(dir, 0700);
	p = tmpfile_mode(".config/gcloud/application_default_credentials.json",
			 "{\"type\":\"authorized_user\"}", 0600);
	conf_make(&c, NULL);
	assert_int_equal(auth_new(&c, &a, &e), 0);
	assert_int_equal(a->kind, GCA_AUTHORIZED_USER);
	assert_string_equal(a->file, p);
	gcp_auth_free(a);
	/* GOOGLE_APPLICATION_CREDENTIALS before it, the option before both */
	setenv("GOOGLE_APPLICATION_CREDENTIALS",
	       tmpfile_mode("gac.json", "{\"type\":\"service_account\",\"client_email\":\"e@x\"}", 0600), 1);
	assert_int_equal(auth_new(&c, &a, &e), 0);
	assert_int_equal(a->kind, GCA_SERVICE_ACCOUNT);
	gcp_auth_free(a);
	conf_make(&c, "credentials_file",
		  tmpfile_mode("opt.json", "{\"type\":\"impersonated_service_account\"}", 0600),
		  NULL);
	assert_int_equal(auth_new(&c, &a, &e), 0);
	assert_int_equal(a->kind, GCA_IMPERSONATED);
	gcp_auth_free(a);
	unlink(p);
}

/* ---- options ---- */

static void check_create_bad(struct conf *c, const char *substr)
{
	void *g = NULL;
	struct err e = { 0 };

	assert_int_equal(gcp_create(&c->pc, &g, &e), -1);
	if (!strstr(e.msg, substr))
		fail_msg("\"%s\", wanted \"%s\"", e.msg, substr);
}

static void test_options(void **st)
{
	struct conf c;
	struct gcp *g = NULL;
	struct err e = { 0 };
	char *s;

	(void)st;
	setenv("GCE_METADATA_HOST", "127.0.0.1:1", 1);
	conf_make(&c, "project", "my-proj", "location", "europe-west1",
		  "replication", "us-east1, europe-west4", "endpoint",
		  "http://127.0.0.1:8085/", NULL);
	assert_int_equal(gcp_create(&c.pc, (void **)&g, &e), 0);
	assert_string_equal(g->endpoint, "http://127.0.0.1:8085");
	s = json_dumps(g->replication, JSON_COMPACT);
	assert_string_equal(s, "{\"userManaged\":{\"replicas\":[{\"location\":\"us-east1\"},{\"location\":\"europe-west4\"}]}}");
	free(s);
	gcp_destroy(g);
	conf_make(&c, NULL);
	setenv("GOOGLE_CLOUD_PROJECT", "env-proj", 1);
	assert_int_equal(gcp_create(&c.pc, (void **)&g, &e), 0);
	assert_string_equal(g->project, "env-proj");
	s = json_dumps(g->replication, JSON_COMPACT);
	assert_string_equal(s, "{\"automatic\":{}}");
	free(s);
	gcp_destroy(g);
	conf_make(&c, "project", "Bad_Project", NULL);
	check_create_bad(&c, "option project");
	conf_make(&c, "location", "Europe", NULL);
	check_create_bad(&c, "option location");
	conf_make(&c, "replication", "us-east1,EU!", NULL);
	check_create_bad(&c, "option replication");
	conf_make(&c, "replication", ",", NULL);
	check_create_bad(&c, "option replication");
	conf_make(&c, "endpoint", "ftp://x", NULL);
	check_create_bad(&c, "option endpoint");
}

static void test_urls(void **st)
{
	struct gcp g = { .name = (char *)"gcp", .project = (char *)"p1",
			 .timeout_ms = 1000 };
	struct gcp_ref r = { .secret = (char *)"s" };
	struct gcp_op op;
	struct err e = { 0 };
	char *u;

	(void)st;
	assert_int_equal(gcp_op_start(&op, &g, &r, "s", &e), 0);
	u = gcp_url(&op, "/secrets/%s/versions/%s:access", "s", "latest");
	assert_string_equal(u, "https://secretmanager.googleapis.com/v1/projects/p1/secrets/s/versions/latest:access");
	free(u);
	r.location = (char *)"europe-west1";
	r.project = (char *)"p2";
	assert_int_equal(gcp_op_start(&op, &g, &r, "s", &e), 0);
	u = gcp_url(&op, "/secrets?secretId=%s", "s");
	assert_string_equal(u, "https://secretmanager.europe-west1.rep.googleapis.com/v1/projects/p2/locations/europe-west1/secrets?secretId=s");
	free(u);
	g.endpoint = (char *)"http://127.0.0.1:9";
	u = gcp_url(&op, ":x");
	assert_string_equal(u, "http://127.0.0.1:9/v1/projects/p2/locations/europe-west1:x");
	free(u);
}

#define T(f) cmocka_unit_test_setup(f, env_reset)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_crc32c_vector),
		T(test_refs),
		T(test_access_parse),
		T(test_access_bad),
		T(test_payload_body),
		T(test_added_and_list),
		T(test_error_map),
		T(test_jwt),
		T(test_iam_parse),
		T(test_subject_extract),
		T(test_adc_types),
		T(test_adc_refusals),
		T(test_adc_order),
		T(test_options),
		T(test_urls),
	};

	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
