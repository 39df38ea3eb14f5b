/* test_aws.c - unit tests for the AWS Secrets Manager provider
 * (providers/aws.c) and its credential chain (providers/aws_creds.c).
 *
 * Their parsing and policy parts are static; this file includes both (and
 * providers/http.c, to check the SigV4 header rules of the HTTP layer),
 * so the archive's copies are never linked in. Nothing here needs a
 * server: answers are fed in as AWS, STS, ECS and IMDS send them; chain
 * tests that reach a network source point it at a closed local port, so
 * the error names the source the chain picked. The wire protocol is
 * exercised against tests/emulators/aws.py by real mounts.
 * Run: build/tests/test_aws
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "providers/http.c"
#include "providers/aws.c"
#include "providers/aws_creds.c"

#define PROVIDER_TEST_NAME "aws"
#define PROVIDER_TEST_TYPE "aws-secretsmanager"
#include "provider_test.h"

/* ---- helpers ---- */

/* Every variable the provider or the chain reads. */
static const char *const aws_vars[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
	"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SHARED_CREDENTIALS_FILE",
	"AWS_CONFIG_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
	"AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS",
	"AWS_ENDPOINT_URL_SECRETS_MANAGER",
	"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "SECRETFS_ECS_ENDPOINT",
	"AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "AWS_CA_BUNDLE",
};

/* A clean environment: no AWS variables, HOME an empty directory (no
 * ~/.aws), instance metadata off. */
static int env_reset(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof(aws_vars) / sizeof(*aws_vars); i++)
		unsetenv(aws_vars[i]);
	setenv("HOME", tmpdir, 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
	return 0;
}

/* A chain with no HTTP client is enough for the sources that need none;
 * a client for those that do (pointed at a closed port). */
static struct aws_chain *chain_new(const char *profile,
				   struct http_client **http)
{
	struct http_client_conf hc = { .name = "t", .timeout_ms = 2000,
				       .max_attempts = 1 };
	struct aws_chain_conf cc = { .name = "t", .profile = profile,
				     .region = "us-east-1" };
	struct aws_chain *c;
	struct err e;

	assert_int_equal(http_client_new(&hc, http, &e), 0);
	cc.http = *http;
	assert_int_equal(awsc_chain_new(&cc, &c, &e), 0);
	return c;
}

/* Resolve the chain: 0 with out filled, or -1 with e. */
static int chain_resolve(const char *profile, struct aws_creds *out,
			 struct err *e)
{
	struct http_client *http;
	struct aws_chain *c = chain_new(profile, &http);
	int rc = awsc_resolve(c, clock_now_ms() + 2000, out, e);

	awsc_chain_free(c);
	http_client_free(http);
	return rc;
}

/* ---- __type and error mapping ---- */

static void test_error_type(void **st)
{
	char t[AWS_TYPE_MAX];

	(void)st;
	aws_error_type("ResourceNotFoundException", t, sizeof(t));
	assert_string_equal(t, "ResourceNotFoundException");
	aws_error_type("com.amazonaws.secretsmanager#ResourceNotFoundException",
		       t, sizeof(t));
	assert_string_equal(t, "ResourceNotFoundException");
	aws_error_type("ResourceNotFoundException:http://internal.amazon.com/coral/com.amazonaws.secretsmanager/",
		       t, sizeof(t));
	assert_string_equal(t, "ResourceNotFoundException");
	aws_error_type("aws.protocoltests.restjson#FooError:http://internal.amazon.com/coral/com.amazon.coral.validate/",
		       t, sizeof(t));
	assert_string_equal(t, "FooError");
	aws_error_type(" ThrottlingException ", t, sizeof(t));
	assert_string_equal(t, "ThrottlingException");
	/* nothing usable: "" */
	aws_error_type(NULL, t, sizeof(t));
	assert_string_equal(t, "");
	aws_error_type("", t, sizeof(t));
	assert_string_equal(t, "");
	aws_error_type("ns#", t, sizeof(t));
	assert_string_equal(t, "");
	aws_error_type("not a type at all", t, sizeof(t));
	assert_string_equal(t, "");
	aws_error_type("Bad\nType", t, sizeof(t));
	assert_string_equal(t, "");
	aws_error_type("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		       t, sizeof(t));
	assert_string_equal(t, "");
}

static void test_error_map(void **st)
{
	static const struct {
		const char *type;
		enum err_code code;
	} cases[] = {
		{ "ResourceNotFoundException", ERR_NOTFOUND },
		{ "ResourceExistsException", ERR_CONFLICT },
		{ "AccessDeniedException", ERR_ACCESS },
		{ "AccessDenied", ERR_ACCESS },
		{ "UnrecognizedClientException", ERR_ACCESS },
		{ "InvalidSignatureException", ERR_ACCESS },
		{ "ExpiredTokenException", ERR_ACCESS },
		{ "IncompleteSignatureException", ERR_ACCESS },
		{ "ThrottlingException", ERR_PROVIDER },
		{ "InvalidRequestException", ERR_PROVIDER },
		{ "InvalidParameterException", ERR_PROVIDER },
		{ "DecryptionFailure", ERR_PROVIDER },
		{ "InternalServiceError", ERR_PROVIDER },
		{ "SomethingNewException", ERR_PROVIDER },
	};
	struct err e;

	(void)st;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		assert_int_equal(aws_error_map(400, cases[i].type, NULL, "prod/db",
					       "the environment", &e), -1);
		assert_int_equal(e.code, cases[i].code);
		assert_non_null(strstr(e.msg, "prod/db"));
		assert_non_null(strstr(e.msg, cases[i].type));
	}
	/* no type at all: garbage */
	aws_error_map(502, "", NULL, "prod/db", NULL, &e);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "HTTP 502"));
}

static void test_error_messages(void **st)
{
	struct err e;

	(void)st;
	/* a signature error's message quotes the canonical request (and
	 * the session token in it): never shown */
	aws_error_map(400, "InvalidSignatureException",
		      "The Canonical String ... x-amz-security-token:SECRETTOKEN",
		      "prod/db", "profile x in /root/.aws/credentials", &e);
	assert_null(strstr(e.msg, "SECRETTOKEN"));
	assert_non_null(strstr(e.msg, "check the secret access key"));
	assert_non_null(strstr(e.msg, "credentials from profile x"));
	aws_error_map(400, "UnrecognizedClientException", "The security token",
		      "prod/db", "the environment", &e);
	assert_non_null(strstr(e.msg, "access key id"));
	/* AccessDenied's names the principal and action: shown, printable */
	aws_error_map(400, "AccessDeniedException",
		      "User: arn:aws:iam::1:user/x is not\nauthorized", "prod/db",
		      "the environment", &e);
	assert_non_null(strstr(e.msg, "User: arn:aws:iam::1:user/x is not?authorized"));
	/* a parameter error might quote the value: not shown */
	aws_error_map(400, "InvalidParameterException", "value hunter2 bad",
		      "prod/db", NULL, &e);
	assert_null(strstr(e.msg, "hunter2"));
	aws_error_map(400, "ThrottlingException", "Rate exceeded", "prod/db",
		      NULL, &e);
	assert_non_null(strstr(e.msg, "throttl"));
}

static void test_status_err(void **st)
{
	struct http_response rs;
	struct err e;

	(void)st;
	rs = resp(400, "{\"__type\":\"com.amazonaws.secretsmanager#ResourceNotFoundException\",\"Message\":\"x\"}");
	aws_status_err(&rs, "a", NULL, &e);
	assert_int_equal(e.code, ERR_NOTFOUND);
	http_response_free(&rs);
	/* the header wins over the body */
	rs = resp(400, "{\"__type\":\"InternalServiceError\"}");
	snprintf(rs.header, sizeof(rs.header),
		 "ResourceExistsException:http://internal.amazon.com/coral/x/");
	aws_status_err(&rs, "a", NULL, &e);
	assert_int_equal(e.code, ERR_CONFLICT);
	http_response_free(&rs);
	/* "code", as ECS and some front ends write it */
	rs = resp(403, "{\"code\":\"AccessDenied\",\"message\":\"no\"}");
	aws_status_err(&rs, "a", NULL, &e);
	assert_int_equal(e.code, ERR_ACCESS);
	http_response_free(&rs);
	/* garbage */
	rs = resp(500, "<html>oops</html>");
	aws_status_err(&rs, "a", NULL, &e);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "HTTP 500"));
	http_response_free(&rs);
	rs = resp(400, "{\"__type\":42}");
	aws_status_err(&rs, "a", NULL, &e);
	assert_int_equal(e.code, ERR_PROVIDER);
	http_response_free(&rs);
}

/* A 401/403 is a refusal whatever its body: an AWS-compatible server or a
 * proxy answering with an HTML or XML page (no AWS error type) must not
 * come out as ERR_PROVIDER, which the cache treats as transient and
 * papers over with a stale value. */
static void test_status_err_refusals(void **st)
{
	static const struct {
		long status;
		const char *body;
		const char *header;
	} cases[] = {
		{ 403, "<html><body><h1>403 Forbidden</h1></body></html>", "" },
		{ 401, "<?xml version=\"1.0\"?><Error><Code>Unauthorized</Code></Error>", "" },
		{ 403, "", "" },
		{ 403, "{\"__type\":\"SomethingNewException\"}", "" },
		{ 403, "{\"message\":\"no\"}", "ThrottlingException" },
	};
	struct http_response rs;
	struct err e;

	(void)st;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		rs = resp(cases[i].status, cases[i].body);
		snprintf(rs.header, sizeof(rs.header), "%s", cases[i].header);
		assert_int_equal(aws_status_err(&rs, "prod/db", "the environment", &e), -1);
		if (e.code != ERR_ACCESS)
			fail_msg("case %zu: code %d (%s), want access denied",
				 i, e.code, e.msg);
		assert_non_null(strstr(e.msg, "prod/db"));
		assert_non_null(strstr(e.msg, "credentials from the environment"));
		assert_null(strstr(e.msg, "<"));
		http_response_free(&rs);
	}
	rs = resp(403, "<html>Forbidden</html>");
	aws_status_err(&rs, "prod/db", NULL, &e);
	assert_string_equal(e.msg,
			    "prod/db: HTTP 403 (forbidden) without an AWS error type");
	http_response_free(&rs);
}

/* ---- GetSecretValue answers ---- */

static int parse(const char *body, struct entry *en, struct aws_cur *cur,
		 struct err *e)
{
	struct http_response rs = resp(200, body);
	int rc = aws_get_parse(&rs, "prod/db", en, cur, e);

	http_response_free(&rs);
	return rc;
}

static void test_get_json_object(void **st)
{
	struct entry en = ENTRY_INIT;
	struct aws_cur cur = { 0 };
	struct err e;

	(void)st;
	assert_int_equal(parse("{\"ARN\":\"arn:x\",\"Name\":\"prod/db\",\"VersionId\":\"v-1234\","
			       "\"SecretString\":\"{\\\"DB\\\":\\\"pw\\\",\\\"PORT\\\":5432,\\\"ON\\\":true,"
			       "\\\"N\\\":null,\\\"O\\\":{\\\"a\\\":[1, 2]},\\\"Z\\\":\\\"a\\\\u0000b\\\"}\","
			       "\"VersionStages\":[\"AWSCURRENT\"],\"CreatedDate\":1.523477145713E9}",
			       &en, &cur, &e), 0);
	assert_string_equal(en.version, "v-1234");
	assert_int_equal(en.map.n, 6);
	assert_val(&en, "DB", "pw", 2);
	assert_val(&en, "PORT", "5432", 4);
	assert_val(&en, "ON", "true", 4);
	assert_val(&en, "N", "null", 4);
	assert_val(&en, "O", "{\"a\":[1,2]}", 11);
	assert_val(&en, "Z", "a\0b", 3);
	assert_true(cur.exists);
	assert_false(cur.binary);
	assert_non_null(cur.obj);
	assert_string_equal(cur.version, "v-1234");
	aws_cur_free(&cur);
	entry_free(&en);
	/* an empty object is an entry with no keys */
	assert_int_equal(parse("{\"VersionId\":\"v\",\"SecretString\":\" {} \"}",
			       &en, NULL, &e), 0);
	assert_int_equal(en.map.n, 0);
	entry_free(&en);
}

/* Whatever is not a usable JSON object is one value, the whole text. */
static void test_get_single(void **st)
{
	static const struct {
		const char *json;	/* the SecretString as JSON text */
		const char *value;
		size_t len;
	} cases[] = {
		{ "\"hello world\"", "hello world", 11 },
		{ "\"[1,2]\"", "[1,2]", 5 },
		{ "\"\\\"just a string\\\"\"", "\"just a string\"", 15 },
		{ "\"42\"", "42", 2 },
		{ "\"{not json\"", "{not json", 9 },
		{ "\"\"", "", 0 },
		{ "\"nul\\u0000inside\"", "nul\0inside", 10 },
		/* a duplicate key, a NUL in a key, only the key "" */
		{ "\"{\\\"a\\\":1,\\\"a\\\":2}\"", "{\"a\":1,\"a\":2}", 13 },
		{ "\"{\\\"a\\\\u0000b\\\":1}\"", "{\"a\\u0000b\":1}", 14 },
		{ "\"{\\\"\\\":\\\"x\\\"}\"", "{\"\":\"x\"}", 8 },
	};
	struct err e;

	(void)st;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct entry en = ENTRY_INIT;
		struct aws_cur cur = { 0 };
		char body[256];

		snprintf(body, sizeof(body),
			 "{\"VersionId\":\"v1\",\"SecretString\":%s}", cases[i].json);
		assert_int_equal(parse(body, &en, &cur, &e), 0);
		assert_int_equal(en.map.n, 1);
		assert_val(&en, "", cases[i].value, cases[i].len);
		assert_null(cur.obj);
		assert_false(cur.binary);
		aws_cur_free(&cur);
		entry_free(&en);
	}
}

static void test_get_binary(void **st)
{
	struct entry en = ENTRY_INIT;
	struct aws_cur cur = { 0 };
	struct err e;

	(void)st;
	/* "bin\0ary\xff" */
	assert_int_equal(parse("{\"VersionId\":\"v2\",\"SecretBinary\":\"YmluAGFyef8=\"}",
			       &en, &cur, &e), 0);
	assert_val(&en, "", "bin\0ary\xff", 8);
	assert_true(cur.binary);
	assert_null(cur.obj);
	aws_cur_free(&cur);
	entry_free(&en);
	assert_int_equal(parse("{\"VersionId\":\"v2\",\"SecretBinary\":\"\"}",
			       &en, NULL, &e), 0);
	assert_val(&en, "", "", 0);
	entry_free(&en);
	/* URL-safe or broken base64 is garbage */
	assert_int_equal(parse("{\"VersionId\":\"v2\",\"SecretBinary\":\"YmluAGFye_8=\"}",
			       &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_int_equal(parse("{\"VersionId\":\"v2\",\"SecretBinary\":\"!!\"}",
			       &en, NULL, &e), -1);
	assert_int_equal(en.map.n, 0);
}

static void test_get_garbage(void **st)
{
	static const char *const bodies[] = {
		"", "not json", "null", "[1,2,3]", "{\"ARN\":\"arn:aws:secretsmanager:us-east-1:1:secr",
		"{\"SecretString\":\"x\"}",			/* no VersionId */
		"{\"VersionId\":\"\",\"SecretString\":\"x\"}",
		"{\"VersionId\":7,\"SecretString\":\"x\"}",
		"{\"VersionId\":\"a\\nb\",\"SecretString\":\"x\"}",
		"{\"VersionId\":\"v\"}",			/* no value */
		"{\"VersionId\":\"v\",\"SecretString\":42}",
		"{\"VersionId\":\"v\",\"SecretBinary\":[1]}",
		"{\"VersionId\":\"v\",\"SecretString\":\"x\",\"SecretString\":\"y\"}",
	};
	struct err e;

	(void)st;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
		struct entry en = ENTRY_INIT;

		e.code = ERR_OK;
		assert_int_equal(parse(bodies[i], &en, NULL, &e), -1);
		assert_int_equal(e.code, ERR_PROVIDER);
		assert_non_null(strstr(e.msg, "garbage"));
		/* the locator once, at the start, where fs/app.c puts the
		 * reference instead */
		if (strncmp(e.msg, "prod/db: ", 9) || strstr(e.msg + 9, "prod/db"))
			fail_msg("body %zu: \"%s\" does not name prod/db once, first",
				 i, e.msg);
		assert_int_equal(en.map.n, 0);
	}
}

/* ---- request bodies ---- */

static json_t *body_json(const struct secbuf *b)
{
	json_t *j = json_loadb(b->data, b->len, JSON_ALLOW_NUL, NULL);

	assert_non_null(j);
	return j;
}

static void test_get_body(void **st)
{
	struct secbuf b = SECBUF_INIT;
	struct err e;
	json_t *j;

	(void)st;
	assert_int_equal(aws_get_body("prod/db", NULL, NULL, &b, &e), 0);
	assert_string_equal(b.data, "{\"SecretId\":\"prod/db\"}");
	assert_int_equal(aws_get_body("arn:aws:secretsmanager:us-east-1:1:secret:x",
				      "AWSPREVIOUS", "01234567-0123-0123-0123-0123456789ab",
				      &b, &e), 0);
	j = body_json(&b);
	assert_string_equal(json_string_value(json_object_get(j, "VersionStage")),
			    "AWSPREVIOUS");
	assert_string_equal(json_string_value(json_object_get(j, "VersionId")),
			    "01234567-0123-0123-0123-0123456789ab");
	json_decref(j);
	/* a locator that is not UTF-8 */
	assert_int_equal(aws_get_body("bad\xff", NULL, NULL, &b, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	secbuf_free(&b);
}

static void test_write_body_map(void **st)
{
	struct kvmap m = KVMAP_INIT;
	struct aws_cur cur = { .exists = true };
	struct secbuf b = SECBUF_INIT;
	json_t *j, *s;
	struct err e;

	(void)st;
	cur.obj = json_loads("{\"PORT\":5432,\"ON\":true,\"OLD\":[1]}", 0, NULL);
	assert_int_equal(kvmap_set(&m, "PORT", "5432", 4), 0);	/* unchanged */
	assert_int_equal(kvmap_set(&m, "ON", "yes", 3), 0);	/* changed */
	assert_int_equal(kvmap_set(&m, "DB", "p\0w", 3), 0);
	assert_int_equal(aws_write_body("SecretId", "prod/db",
					"11111111-2222-4333-8444-555555555555",
					&m, &cur, "prod/db", &b, &e), 0);
	j = body_json(&b);
	assert_string_equal(json_string_value(json_object_get(j, "SecretId")), "prod/db");
	assert_string_equal(json_string_value(json_object_get(j, "ClientRequestToken")),
			    "11111111-2222-4333-8444-555555555555");
	assert_null(json_object_get(j, "SecretBinary"));
	s = json_loads(json_string_value(json_object_get(j, "SecretString")),
		       JSON_ALLOW_NUL, NULL);
	assert_non_null(s);
	assert_true(json_is_integer(json_object_get(s, "PORT")));
	assert_string_equal(json_string_value(json_object_get(s, "ON")), "yes");
	assert_int_equal(json_string_length(json_object_get(s, "DB")), 3);
	assert_null(json_object_get(s, "OLD"));
	json_decref(s);
	json_decref(j);
	/* CreateSecret names it */
	assert_int_equal(aws_write_body("Name", "prod/db", "t", &m, &cur,
					"prod/db", &b, &e), 0);
	j = body_json(&b);
	assert_string_equal(json_string_value(json_object_get(j, "Name")), "prod/db");
	json_decref(j);
	/* a value a JSON object cannot hold */
	assert_int_equal(kvmap_set(&m, "BIN", "\xff\xfe", 2), 0);
	assert_int_equal(aws_write_body("SecretId", "prod/db", "t", &m, &cur,
					"prod/db", &b, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "BIN"));
	kvmap_free(&m);
	aws_cur_free(&cur);
	secbuf_free(&b);
}

static void test_write_body_single(void **st)
{
	struct kvmap m = KVMAP_INIT;
	struct aws_cur cur = { .exists = true };
	struct secbuf b = SECBUF_INIT;
	json_t *j;
	struct err e;

	(void)st;
	/* text: a plain SecretString, never wrapped in an object */
	assert_int_equal(kvmap_set(&m, "", "hello\0world", 11), 0);
	assert_int_equal(aws_write_body("SecretId", "x", "t", &m, &cur, "x",
					&b, &e), 0);
	j = body_json(&b);
	assert_int_equal(json_string_length(json_object_get(j, "SecretString")), 11);
	assert_memory_equal(json_string_value(json_object_get(j, "SecretString")),
			    "hello\0world", 11);
	json_decref(j);
	/* bytes that are not UTF-8: SecretBinary */
	assert_int_equal(kvmap_set(&m, "", "bin\0ary\xff", 8), 0);
	assert_int_equal(aws_write_body("SecretId", "x", "t", &m, &cur, "x",
					&b, &e), 0);
	j = body_json(&b);
	assert_null(json_object_get(j, "SecretString"));
	assert_string_equal(json_string_value(json_object_get(j, "SecretBinary")),
			    "YmluAGFyef8=");
	json_decref(j);
	/* a secret that was binary stays binary, even for text */
	cur.binary = true;
	assert_int_equal(kvmap_set(&m, "", "text", 4), 0);
	assert_int_equal(aws_write_body("SecretId", "x", "t", &m, &cur, "x",
					&b, &e), 0);
	j = body_json(&b);
	assert_string_equal(json_string_value(json_object_get(j, "SecretBinary")),
			    "dGV4dA==");
	json_decref(j);
	kvmap_free(&m);
	secbuf_free(&b);
}

static void test_write_body_too_big(void **st)
{
	struct kvmap m = KVMAP_INIT;
	struct aws_cur cur = { 0 };
	struct secbuf b = SECBUF_INIT;
	char *big = malloc(AWS_SECRET_MAX + 1);
	struct err e;

	(void)st;
	assert_non_null(big);
	memset(big, 'a', AWS_SECRET_MAX + 1);
	assert_int_equal(kvmap_set(&m, "", big, AWS_SECRET_MAX), 0);
	assert_int_equal(aws_write_body("SecretId", "x", "t", &m, &cur, "x",
					&b, &e), 0);
	assert_int_equal(kvmap_set(&m, "", big, AWS_SECRET_MAX + 1), 0);
	assert_int_equal(aws_write_body("SecretId", "x", "t", &m, &cur, "x",
					&b, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	kvmap_free(&m);
	/* a map whose JSON text is over the limit */
	assert_int_equal(kvmap_set(&m, "K", big, AWS_SECRET_MAX - 4), 0);
	assert_int_equal(aws_write_body("SecretId", "x", "t", &m, &cur, "x",
					&b, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	cur.binary = true;
	kvmap_free(&m);
	assert_int_equal(kvmap_set(&m, "", big, AWS_SECRET_MAX + 1), 0);
	assert_int_equal(aws_write_body("SecretId", "x", "t", &m, &cur, "x",
					&b, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	kvmap_free(&m);
	secbuf_free(&b);
	free(big);
}

static void test_list_body_parse(void **st)
{
	struct secbuf b = SECBUF_INIT;
	struct strv out = { NULL, 0 };
	struct http_response rs;
	struct err e;
	char *next = NULL;
	json_t *j;

	(void)st;
	assert_int_equal(aws_list_body("", NULL, &b, &e), 0);
	assert_string_equal(b.data, "{\"MaxResults\":100}");
	assert_int_equal(aws_list_body("apps/", "tok==", &b, &e), 0);
	j = body_json(&b);
	assert_string_equal(json_string_value(json_object_get(j, "NextToken")), "tok==");
	assert_string_equal(json_string_value(json_array_get(json_object_get(
		json_array_get(json_object_get(j, "Filters"), 0), "Values"), 0)),
		"apps/");
	json_decref(j);
	/* '!' would negate the filter: left to the client side */
	assert_int_equal(aws_list_body("!apps", NULL, &b, &e), 0);
	assert_string_equal(b.data, "{\"MaxResults\":100}");
	secbuf_free(&b);

	rs = resp(200, "{\"SecretList\":[{\"Name\":\"apps/a\"},{\"Name\":\"other\"},"
		  "{\"Name\":\"apps/b\\u0000x\"},{\"ARN\":\"x\"},{\"Name\":\"apps/c\"}],"
		  "\"NextToken\":\"n2\"}");
	assert_int_equal(aws_list_parse(&rs, "apps/", &out, &next, &e), 0);
	assert_int_equal(out.n, 2);
	assert_string_equal(out.v[0], "apps/a");
	assert_string_equal(out.v[1], "apps/c");
	assert_string_equal(next, "n2");
	free(next);
	http_response_free(&rs);
	rs = resp(200, "{\"SecretList\":[{\"Name\":\"apps/a\"}]}");
	assert_int_equal(aws_list_parse(&rs, "", &out, &next, &e), 0);
	assert_null(next);
	strv_sort_unique(&out);
	assert_int_equal(out.n, 2);	/* the duplicate went */
	strv_free(&out);
	http_response_free(&rs);
	rs = resp(200, "{\"Secrets\":[]}");
	assert_int_equal(aws_list_parse(&rs, "", &out, &next, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	http_response_free(&rs);
}

/* ---- locators, parameters, tokens ---- */

static void test_params(void **st)
{
	struct aws_params p;
	struct err e;

	(void)st;
	assert_int_equal(aws_params_parse(NULL, &p, &e), 0);
	assert_null(p.stage);
	assert_null(p.version);
	assert_int_equal(aws_params_parse("stage=AWSPREVIOUS", &p, &e), 0);
	assert_string_equal(p.stage, "AWSPREVIOUS");
	aws_params_free(&p);
	assert_int_equal(aws_params_parse("version=01234567-0123-0123-0123-0123456789ab&stage=my%20label",
					  &p, &e), 0);
	assert_string_equal(p.version, "01234567-0123-0123-0123-0123456789ab");
	assert_string_equal(p.stage, "my label");
	aws_params_free(&p);
	assert_int_equal(aws_params_parse("version=short", &p, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(aws_params_parse("stage=", &p, &e), -1);
	assert_int_equal(aws_params_parse("stage", &p, &e), -1);
	assert_int_equal(aws_params_parse("stage=%zz", &p, &e), -1);
	assert_int_equal(aws_params_parse("stage=a%00b", &p, &e), -1);
	assert_int_equal(aws_params_parse("region=us-east-1", &p, &e), -1);
	assert_non_null(strstr(e.msg, "unknown parameter 'region'"));
	assert_null(p.stage);
}

static void test_locators(void **st)
{
	char r[AWS_REGION_MAX + 1];
	struct err e;

	(void)st;
	assert_int_equal(aws_id_check("prod/db", &e), 0);
	assert_int_equal(aws_id_check("", &e), -1);
	assert_int_equal(aws_id_check("a\nb", &e), -1);
	assert_true(aws_name_valid("apps/billing-1_x+y=z.w@v"));
	assert_false(aws_name_valid("apps billing"));
	assert_false(aws_name_valid("arn:aws:secretsmanager:x"));
	assert_false(aws_name_valid(""));
	assert_true(aws_arn_region("arn:aws:secretsmanager:eu-west-1:123456789012:secret:tls-AbCdEf",
				   r, sizeof(r)));
	assert_string_equal(r, "eu-west-1");
	assert_true(aws_arn_region("arn:aws-cn:secretsmanager:cn-north-1:1:secret:x",
				   r, sizeof(r)));
	assert_string_equal(r, "cn-north-1");
	assert_false(aws_arn_region("arn:aws:ssm:eu-west-1:1:parameter/x", r, sizeof(r)));
	assert_false(aws_arn_region("prod/db", r, sizeof(r)));
	assert_false(aws_arn_region("arn:aws:secretsmanager:", r, sizeof(r)));
}

static void test_uuid(void **st)
{
	char a[37], b[37];

	(void)st;
	aws_uuid4(a);
	aws_uuid4(b);
	assert_int_equal(strlen(a), 36);
	assert_string_not_equal(a, b);
	assert_int_equal(a[8], '-');
	assert_int_equal(a[13], '-');
	assert_int_equal(a[14], '4');
	assert_non_null(strchr("89ab", a[19]));
	assert_true(strspn(a, "0123456789abcdef-") == 36);
}

/* ---- the HTTP layer's part of the SigV4 rules ---- */

static void test_sigv4_headers(void **st)
{
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_request rq = {
		.method = "POST", .url = "http://x/", .headers = &h,
		.body = "{}", .body_len = 2, .content_type = AWS_CONTENT_TYPE,
	};
	struct http_auth au = { HTTP_HEADERS_INIT, NULL, NULL, NULL };
	struct curl_slist *l;
	bool ok, ctype = false;

	(void)st;
	assert_int_equal(http_headers_add(&h, "X-Amz-Target",
					  "secretsmanager.GetSecretValue", false), 0);
	http_auth_sigv4(&au, "aws:amz:us-east-1:secretsmanager", "AKID", "s");
	l = http_slist_build(&rq, &au, false, &ok);
	assert_true(ok);
	/* rule 3: no removal ("Name:") or empty lines; rule 5: no dates;
	 * rule 2: our Content-Type */
	for (struct curl_slist *p = l; p; p = p->next) {
		const char *colon = strchr(p->data, ':');

		assert_non_null(colon);
		assert_true(colon[1] == ' ' && colon[2] != '\0');
		assert_true(strncasecmp(p->data, "x-amz-date", 10));
		assert_true(strncasecmp(p->data, "date:", 5));
		if (!strcmp(p->data, "Content-Type: application/x-amz-json-1.1"))
			ctype = true;
	}
	assert_true(ctype);
	http_slist_free(l);
	/* without SigV4 the removal line is there */
	au.sigv4 = NULL;
	l = http_slist_build(&rq, &au, false, &ok);
	assert_string_equal(l->data, "Expect:");
	http_slist_free(l);
	http_headers_free(&h);
}

static void test_keep_header(void **st)
{
	char out[32] = "";

	(void)st;
	http_header_keep("x-amzn-ErrorType: ResourceNotFoundException:http://x/\r\n",
			 56, "x-amzn-errortype", out, sizeof(out));
	assert_string_equal(out, "ResourceNotFoundException:http:");
	out[0] = '\0';
	http_header_keep("x-amzn-errortypes: x\r\n", 22, "x-amzn-errortype",
			 out, sizeof(out));
	assert_string_equal(out, "");
}

/* ---- credential files ---- */

static int ini(const char *text, const char *profile, bool config,
	       struct awsc_profile *p, struct err *e)
{
	struct secbuf b = SECBUF_INIT;
	int rc;

	memset(p, 0, sizeof(*p));
	assert_int_equal(secbuf_puts(&b, text), 0);
	rc = awsc_ini_parse(&b, "test.ini", profile, config, p, e);
	secbuf_free(&b);
	return rc;
}

static void test_ini_credentials(void **st)
{
	struct awsc_profile p;
	struct err e;
	char text[4096], tok[1601];

	(void)st;
	memset(tok, 'T', sizeof(tok) - 1);
	tok[sizeof(tok) - 1] = '\0';
	snprintf(text, sizeof(text),
		 "# comment\n; another\n\n[default]\naws_access_key_id = AKIDDEF\n"
		 "aws_secret_access_key = def/secret+key=\n\n"
		 "[ prod ]\r\nAWS_ACCESS_KEY_ID=AKIDPROD\r\n"
		 "aws_secret_access_key: prod secret ; with spaces\r\n"
		 "aws_session_token = %s\r\nregion = eu-west-1\r\n"
		 "[prodx]\naws_access_key_id = WRONG\n", tok);
	assert_int_equal(ini(text, "default", false, &p, &e), 0);
	assert_true(p.found);
	assert_string_equal(p.key_id, "AKIDDEF");
	assert_string_equal(p.secret, "def/secret+key=");
	assert_null(p.token);
	awsc_profile_free(&p);
	assert_int_equal(ini(text, "prod", false, &p, &e), 0);
	assert_string_equal(p.key_id, "AKIDPROD");
	/* botocore has no inline comments: the value is the whole rest */
	assert_string_equal(p.secret, "prod secret ; with spaces");
	assert_string_equal(p.token, tok);	/* longer than inih's line */
	assert_string_equal(p.region, "eu-west-1");
	awsc_profile_free(&p);
	assert_int_equal(ini(text, "nope", false, &p, &e), 0);
	assert_false(p.found);
	assert_null(p.key_id);
	/* the credentials file has no "profile " prefix */
	assert_int_equal(ini("[profile prod]\naws_access_key_id = X\n", "prod",
			     false, &p, &e), 0);
	assert_false(p.found);
}

static void test_ini_config(void **st)
{
	static const char text[] =
		"[default]\nregion = us-east-1\n"
		"[profile dev]\nregion=us-west-2\naws_access_key_id = AKIDDEV\n"
		"aws_secret_access_key = devsecret\ns3 =\n  max_concurrent_requests = 20\n"
		"[dev]\naws_access_key_id = NOTTHIS\n"
		"[profile web]\nrole_arn = arn:aws:iam::1:role/r\n"
		"web_identity_token_file = /var/run/token\nrole_session_name = s1\n"
		"[profile sso]\nsso_start_url = https://x\n"
		"[profile   a very long profile name that inih would cut short]\nregion = ap-south-1\n";
	struct awsc_profile p;
	struct err e;

	(void)st;
	assert_int_equal(ini(text, "default", true, &p, &e), 0);
	assert_string_equal(p.region, "us-east-1");
	awsc_profile_free(&p);
	assert_int_equal(ini(text, "dev", true, &p, &e), 0);
	assert_string_equal(p.key_id, "AKIDDEV");
	assert_string_equal(p.region, "us-west-2");
	awsc_profile_free(&p);
	assert_int_equal(ini(text, "web", true, &p, &e), 0);
	assert_string_equal(p.role_arn, "arn:aws:iam::1:role/r");
	assert_string_equal(p.web_token_file, "/var/run/token");
	assert_string_equal(p.session_name, "s1");
	assert_null(p.unsupported);
	awsc_profile_free(&p);
	assert_int_equal(ini(text, "sso", true, &p, &e), 0);
	assert_string_equal(p.unsupported, "sso_start_url");
	awsc_profile_free(&p);
	assert_int_equal(ini(text, "a very long profile name that inih would cut short",
			     true, &p, &e), 0);
	assert_string_equal(p.region, "ap-south-1");
	awsc_profile_free(&p);
	/* [profile default] is default too */
	assert_int_equal(ini("[profile default]\nregion = x\n", "default", true,
			     &p, &e), 0);
	assert_string_equal(p.region, "x");
	awsc_profile_free(&p);
	/* syntax errors name the line */
	assert_int_equal(ini("[default]\nregion = x\njunk line\n", "default",
			     true, &p, &e), -1);
	assert_non_null(strstr(e.msg, "test.ini:3"));
	awsc_profile_free(&p);
}

/* ---- the chain ---- */

static void test_chain_env(void **st)
{
	struct aws_creds cr = { 0 };
	struct err e;

	(void)st;
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	setenv("AWS_SESSION_TOKEN", "envtoken", 1);
	assert_int_equal(chain_resolve(NULL, &cr, &e), 0);
	assert_int_equal(cr.src, AWS_SRC_ENV);
	assert_string_equal(cr.key_id, "AKIDENV");
	assert_string_equal(cr.secret, "envsecret");
	assert_string_equal(cr.token, "envtoken");
	assert_int_equal(cr.expire, 0);
	assert_null(strstr(cr.source, "envsecret"));
	awsc_creds_free(&cr);
	/* half set is an error, not a fall-through */
	unsetenv("AWS_SECRET_ACCESS_KEY");
	assert_int_equal(chain_resolve(NULL, &cr, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_non_null(strstr(e.msg, "AWS_SECRET_ACCESS_KEY"));
	/* control characters are refused */
	setenv("AWS_SECRET_ACCESS_KEY", "a\r\nb", 1);
	assert_int_equal(chain_resolve(NULL, &cr, &e), -1);
	assert_null(strstr(e.msg, "a\r\nb"));
}

static void test_chain_files(void **st)
{
	struct aws_creds cr = { 0 };
	char *creds, *config;
	struct err e;

	(void)st;
	creds = tmpfile_mode("credentials",
			     "[default]\naws_access_key_id = AKIDFILE\n"
			     "aws_secret_access_key = filesecret\n"
			     "[prod]\naws_access_key_id = AKIDPROD\n"
			     "aws_secret_access_key = prodsecret\n"
			     "[half]\naws_access_key_id = AKIDHALF\n", 0600);
	config = tmpfile_mode("config",
			      "[profile cfg]\naws_access_key_id = AKIDCFG\n"
			      "aws_secret_access_key = cfgsecret\n"
			      "aws_session_token = cfgtoken\n"
			      "[profile prod]\naws_access_key_id = AKIDNOT\n"
			      "aws_secret_access_key = notthis\n"
			      "[profile sso]\nsso_session = x\n", 0600);
	setenv("AWS_SHARED_CREDENTIALS_FILE", creds, 1);
	setenv("AWS_CONFIG_FILE", config, 1);
	assert_int_equal(chain_resolve(NULL, &cr, &e), 0);
	assert_int_equal(cr.src, AWS_SRC_FILES);
	assert_string_equal(cr.key_id, "AKIDFILE");
	assert_non_null(strstr(cr.source, "profile default"));
	awsc_creds_free(&cr);
	/* the credentials file wins over the config file */
	setenv("AWS_PROFILE", "prod", 1);
	assert_int_equal(chain_resolve(NULL, &cr, &e), 0);
	assert_string_equal(cr.key_id, "AKIDPROD");
	awsc_creds_free(&cr);
	/* the option wins over AWS_PROFILE; [profile cfg] in the config */
	assert_int_equal(chain_resolve("cfg", &cr, &e), 0);
	assert_string_equal(cr.key_id, "AKIDCFG");
	assert_string_equal(cr.token, "cfgtoken");
	awsc_creds_free(&cr);
	assert_int_equal(chain_resolve("half", &cr, &e), -1);
	assert_non_null(strstr(e.msg, "aws_secret_access_key"));
	assert_int_equal(chain_resolve("sso", &cr, &e), -1);
	assert_non_null(strstr(e.msg, "sso_session"));
	assert_int_equal(chain_resolve("missing", &cr, &e), -1);
	assert_non_null(strstr(e.msg, "profile missing is in neither"));
	/* readable by others: refused, naming the file */
	chmod(creds, 0640);
	assert_int_equal(chain_resolve("prod", &cr, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_non_null(strstr(e.msg, "chmod 600"));
	assert_null(strstr(e.msg, "prodsecret"));
	/* ~/.aws/credentials by default */
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	unsetenv("AWS_PROFILE");
	assert_int_equal(mkdir(strcat(strcpy((char[128]){ 0 }, tmpdir), "/.aws"), 0700), 0);
	tmpfile_mode(".aws/credentials",
		     "[default]\naws_access_key_id = AKIDHOME\n"
		     "aws_secret_access_key = homesecret\n", 0600);
	assert_int_equal(chain_resolve(NULL, &cr, &e), 0);
	assert_string_equal(cr.key_id, "AKIDHOME");
	awsc_creds_free(&cr);
}

/* The chain's order: env, web identity, files, container, instance
 * metadata. Network sources point at a closed port; their error shows
 * they were the one chosen. */
static void test_chain_order(void **st)
{
	struct aws_creds cr = { 0 };
	char *creds, *tok;
	struct err e;

	(void)st;
	creds = tmpfile_mode("credentials2",
			     "[default]\naws_access_key_id = AKIDFILE\n"
			     "aws_secret_access_key = filesecret\n", 0600);
	tok = tmpfile_mode("webtoken", "eyJ.web.token\n", 0644);
	setenv("AWS_SHARED_CREDENTIALS_FILE", creds, 1);
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tok, 1);
	setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r", 1);
	setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1", 1);
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds", 1);
	setenv("SECRETFS_ECS_ENDPOINT", "http://127.0.0.1:1", 1);
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	/* 1. the environment */
	assert_int_equal(chain_resolve(NULL, &cr, &e), 0);
	assert_string_equal(cr.key_id, "AKIDENV");
	awsc_creds_free(&cr);
	/* an explicit profile skips the environment: web identity next */
	assert_int_equal(chain_resolve("default", &cr, &e), -1);
	assert_non_null(strstr(e.msg, "web identity (role arn:aws:iam::1:role/r)"));
	assert_null(strstr(e.msg, "eyJ.web.token"));
	/* 2. web identity, before the files */
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	assert_int_equal(chain_resolve(NULL, &cr, &e), -1);
	assert_non_null(strstr(e.msg, "web identity"));
	/* 3. the files, before the container */
	unsetenv("AWS_ROLE_ARN");
	assert_int_equal(chain_resolve(NULL, &cr, &e), 0);
	assert_string_equal(cr.key_id, "AKIDFILE");
	awsc_creds_free(&cr);
	/* 4. the container */
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent", 1);
	assert_int_equal(chain_resolve(NULL, &cr, &e), -1);
	assert_non_null(strstr(e.msg, "ECS container credentials"));
	assert_non_null(strstr(e.msg, "127.0.0.1:1/creds"));
	/* 5. instance metadata, when enabled */
	unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	assert_int_equal(chain_resolve(NULL, &cr, &e), -1);
	assert_non_null(strstr(e.msg, "AWS_EC2_METADATA_DISABLED"));
	setenv("AWS_EC2_METADATA_DISABLED", "false", 1);
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1/", 1);
	assert_int_equal(chain_resolve(NULL, &cr, &e), -1);
	assert_non_null(strstr(e.msg, "EC2 instance metadata (http://127.0.0.1:1/)"));
}

static void test_chain_get_and_reject(void **st)
{
	struct http_client *http;
	struct aws_chain *c = chain_new(NULL, &http);
	struct aws_creds a = { 0 }, b = { 0 };
	uint64_t g1, g2;
	struct err e;

	(void)st;
	assert_int_equal(awsc_chain_get(c, 0, &a, &g1, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	/* failures back off: the next call answers at once */
	assert_int_equal(awsc_chain_get(c, 0, &a, &g1, &e), -1);
	assert_non_null(strstr(e.msg, "next attempt in"));
	c->retry_ms = 0;
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	assert_int_equal(awsc_chain_get(c, 0, &a, &g1, &e), 0);
	assert_int_equal(awsc_chain_get(c, 0, &b, &g2, &e), 0);
	assert_int_equal(g1, g2);
	assert_string_equal(b.secret, "envsecret");
	assert_ptr_not_equal(a.secret, b.secret);	/* copies */
	assert_int_equal(c->refresh_at, 0);	/* the environment never changes */
	/* refusing environment keys again and again gets nothing new */
	assert_false(awsc_chain_reject(c, g1));
	/* another thread has fresh ones: retry */
	assert_true(awsc_chain_reject(c, g1 - 1));
	awsc_creds_free(&a);
	awsc_creds_free(&b);
	/* temporary ones in hand are refreshed at the planned time */
	c->cur.src = AWS_SRC_ECS;
	c->got_ms -= AWSC_REJECT_AGE_MS;
	assert_true(awsc_chain_reject(c, c->gen));
	assert_null(c->cur.key_id);
	awsc_chain_free(c);
	http_client_free(http);
}

static void test_refresh_at(void **st)
{
	time_t now = 1700000000;

	(void)st;
	assert_int_equal(awsc_refresh_at(now, 0), 0);
	/* an hour left: 5 minutes before */
	assert_int_equal(awsc_refresh_at(now, now + 3600), now + 3600 - 300);
	/* exactly 10 minutes: both rules agree */
	assert_int_equal(awsc_refresh_at(now, now + 600), now + 300);
	/* short-lived: half way */
	assert_int_equal(awsc_refresh_at(now, now + 120), now + 60);
	assert_int_equal(awsc_refresh_at(now, now + 20), now + 10);
	/* never a busy loop near expiry, never past it */
	assert_int_equal(awsc_refresh_at(now, now + 6), now + 5);
	assert_int_equal(awsc_refresh_at(now, now + 3), now + 3);
	assert_int_equal(awsc_refresh_at(now, now - 10), now);
}

/* ---- credential answers ---- */

static void test_sts_parse(void **st)
{
	struct aws_creds cr = { 0 };
	struct http_response rs;
	struct err e;

	(void)st;
	rs = resp(200,
		  "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
		  "<AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>x</SubjectFromWebIdentityToken>"
		  "<Credentials><SessionToken>FwoG&amp;token/+=</SessionToken>"
		  "<SecretAccessKey>wJalr&lt;K</SecretAccessKey>"
		  "<Expiration>2023-11-14T22:13:20Z</Expiration>"
		  "<AccessKeyId>ASIAEXAMPLE</AccessKeyId></Credentials>"
		  "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>");
	assert_int_equal(awsc_sts_parse(&rs, "web identity", &cr, &e), 0);
	assert_string_equal(cr.key_id, "ASIAEXAMPLE");
	assert_string_equal(cr.secret, "wJalr<K");
	assert_string_equal(cr.token, "FwoG&token/+=");
	assert_int_equal(cr.expire, 1700000000);
	awsc_creds_free(&cr);
	http_response_free(&rs);
	rs = resp(400, "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
		  "<Message>token eyJ.secret is bad</Message></Error></ErrorResponse>");
	assert_int_equal(awsc_sts_parse(&rs, "web identity", &cr, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_non_null(strstr(e.msg, "InvalidIdentityToken"));
	assert_null(strstr(e.msg, "eyJ.secret"));
	http_response_free(&rs);
	rs = resp(200, "<AssumeRoleWithWebIdentityResponse/>");
	assert_int_equal(awsc_sts_parse(&rs, "web identity", &cr, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	http_response_free(&rs);
	rs = resp(503, "");
	assert_int_equal(awsc_sts_parse(&rs, "web identity", &cr, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	http_response_free(&rs);
}

static void test_json_creds(void **st)
{
	struct aws_creds cr = { 0 };
	struct http_response rs;
	struct err e;

	(void)st;
	rs = resp(200, "{\"Code\":\"Success\",\"LastUpdated\":\"2023-11-14T21:00:00Z\","
		  "\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAIMDS\","
		  "\"SecretAccessKey\":\"imdssecret\",\"Token\":\"imdstoken\","
		  "\"Expiration\":\"2023-11-14T22:13:20Z\"}");
	assert_int_equal(awsc_json_creds(&rs, "imds", &cr, &e), 0);
	assert_string_equal(cr.key_id, "ASIAIMDS");
	assert_string_equal(cr.token, "imdstoken");
	assert_int_equal(cr.expire, 1700000000);
	awsc_creds_free(&cr);
	http_response_free(&rs);
	rs = resp(200, "{\"Code\":\"AssumeRoleUnauthorizedAccess\"}");
	assert_int_equal(awsc_json_creds(&rs, "imds", &cr, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	http_response_free(&rs);
	rs = resp(200, "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Token\":\"T\","
		  "\"Expiration\":\"tomorrow\"}");
	assert_int_equal(awsc_json_creds(&rs, "ecs", &cr, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	http_response_free(&rs);
	rs = resp(200, "{\"AccessKeyId\":\"A\"}");
	assert_int_equal(awsc_json_creds(&rs, "ecs", &cr, &e), -1);
	http_response_free(&rs);
	rs = resp(200, "<html/>");
	assert_int_equal(awsc_json_creds(&rs, "ecs", &cr, &e), -1);
	http_response_free(&rs);
	/* no expiration: long-lived */
	rs = resp(200, "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}");
	assert_int_equal(awsc_json_creds(&rs, "ecs", &cr, &e), 0);
	assert_int_equal(cr.expire, 0);
	assert_null(cr.token);
	awsc_creds_free(&cr);
	http_response_free(&rs);
}

static void test_ecs_urls(void **st)
{
	char *url = NULL;
	struct err e;

	(void)st;
	assert_true(awsc_ecs_full_ok("https://creds.example.com/x"));
	assert_true(awsc_ecs_full_ok("http://127.0.0.1:51679/creds"));
	assert_true(awsc_ecs_full_ok("http://169.254.170.2/v2/creds"));
	assert_true(awsc_ecs_full_ok("http://169.254.170.23/v1/credentials"));
	assert_true(awsc_ecs_full_ok("http://[fd00:ec2::23]/v1/credentials"));
	assert_true(awsc_ecs_full_ok("http://localhost:8080/"));
	assert_false(awsc_ecs_full_ok("http://example.com/creds"));
	assert_false(awsc_ecs_full_ok("http://169.254.169.254/"));
	assert_false(awsc_ecs_full_ok("ftp://127.0.0.1/"));
	assert_int_equal(awsc_ecs_url(&url, &e), 0);
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc", 1);
	assert_int_equal(awsc_ecs_url(&url, &e), 1);
	assert_string_equal(url, "http://169.254.170.2/v2/credentials/abc");
	free(url);
	setenv("SECRETFS_ECS_ENDPOINT", "http://127.0.0.1:9999/", 1);
	assert_int_equal(awsc_ecs_url(&url, &e), 1);
	assert_string_equal(url, "http://127.0.0.1:9999/v2/credentials/abc");
	free(url);
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "no-slash", 1);
	assert_int_equal(awsc_ecs_url(&url, &e), -1);
	unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://evil.example.com/", 1);
	assert_int_equal(awsc_ecs_url(&url, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
}

static void test_imds_role(void **st)
{
	struct http_response rs;
	char *role;

	(void)st;
	rs = resp(200, "my-role\nsecond\n");
	role = awsc_imds_role(&rs);
	assert_string_equal(role, "my-role");
	free(role);
	http_response_free(&rs);
	rs = resp(200, "../etc");
	assert_null(awsc_imds_role(&rs));
	http_response_free(&rs);
	rs = resp(200, "");
	assert_null(awsc_imds_role(&rs));
	http_response_free(&rs);
}

static void test_form_and_endpoints(void **st)
{
	struct secbuf b = SECBUF_INIT;
	char *u;

	(void)st;
	assert_int_equal(kit_form_add(&b, "A", "x y/+=&~", 8), 0);
	assert_int_equal(kit_form_add(&b, "B", "", 0), 0);
	assert_string_equal(b.data, "A=x%20y%2F%2B%3D%26~&B=");
	secbuf_free(&b);
	u = awsc_regional_url("secretsmanager", "eu-west-1");
	assert_string_equal(u, "https://secretsmanager.eu-west-1.amazonaws.com");
	free(u);
	u = awsc_regional_url("sts", "cn-north-1");
	assert_string_equal(u, "https://sts.cn-north-1.amazonaws.com.cn");
	free(u);
	u = awsc_sts_url(NULL);
	assert_string_equal(u, "https://sts.amazonaws.com");
	free(u);
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566/", 1);
	u = awsc_sts_url("us-east-1");
	assert_string_equal(u, "http://127.0.0.1:4566");
	free(u);
	setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5000", 1);
	u = awsc_sts_url("us-east-1");
	assert_string_equal(u, "http://127.0.0.1:5000");
	free(u);
	setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
	u = awsc_sts_url("us-east-1");
	assert_string_equal(u, "https://sts.us-east-1.amazonaws.com");
	free(u);
}

/* ---- options ---- */

static int create(struct conf *c, struct aws **a, struct err *e)
{
	void *state = NULL;
	int rc = aws_provider_ops.create(&c->pc, &state, e);

	*a = state;
	return rc;
}

static void test_options_region(void **st)
{
	struct conf c;
	struct aws *a;
	struct err e;

	(void)st;
	conf_make(&c, NULL);
	assert_int_equal(create(&c, &a, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "no region"));
	setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
	assert_int_equal(create(&c, &a, &e), 0);
	assert_string_equal(a->region, "eu-central-1");
	assert_null(a->endpoint);
	aws_destroy(a);
	setenv("AWS_REGION", "eu-west-2", 1);
	assert_int_equal(create(&c, &a, &e), 0);
	assert_string_equal(a->region, "eu-west-2");
	aws_destroy(a);
	conf_make(&c, "region", "ap-south-1", NULL);
	assert_int_equal(create(&c, &a, &e), 0);
	assert_string_equal(a->region, "ap-south-1");
	aws_destroy(a);
	conf_make(&c, "region", "US East", NULL);
	assert_int_equal(create(&c, &a, &e), -1);
	assert_non_null(strstr(e.msg, "not a region"));
	/* the profile's region in the config file */
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	setenv("AWS_CONFIG_FILE",
	       tmpfile_mode("config-region", "[profile p]\nregion = sa-east-1\n", 0644), 1);
	conf_make(&c, "profile", "p", NULL);
	assert_int_equal(create(&c, &a, &e), 0);
	assert_string_equal(a->region, "sa-east-1");
	aws_destroy(a);
}

static void test_options_endpoint(void **st)
{
	struct conf c;
	struct aws *a;
	struct err e;

	(void)st;
	conf_make(&c, "region", "us-east-1", "endpoint", "http://127.0.0.1:4566/", NULL);
	assert_int_equal(create(&c, &a, &e), 0);
	assert_string_equal(a->endpoint, "http://127.0.0.1:4566");
	aws_destroy(a);
	conf_make(&c, "region", "us-east-1", "endpoint", "127.0.0.1:4566", NULL);
	assert_int_equal(create(&c, &a, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	conf_make(&c, "region", "us-east-1", "endpoint", "http://x/?q=1", NULL);
	assert_int_equal(create(&c, &a, &e), -1);
	/* the service's variable beats the global one */
	conf_make(&c, "region", "us-east-1", NULL);
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1111", 1);
	assert_int_equal(create(&c, &a, &e), 0);
	assert_string_equal(a->endpoint, "http://127.0.0.1:1111");
	aws_destroy(a);
	setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:2222", 1);
	assert_int_equal(create(&c, &a, &e), 0);
	assert_string_equal(a->endpoint, "http://127.0.0.1:2222");
	aws_destroy(a);
	setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE", 1);
	assert_int_equal(create(&c, &a, &e), 0);
	assert_null(a->endpoint);
	aws_destroy(a);
}

static void test_options_misc(void **st)
{
	struct conf c;
	struct aws *a;
	struct err e;
	bool saw_region = false;

	(void)st;
	conf_make(&c, "region", "us-east-1", "profile", "bad profile", NULL);
	assert_int_equal(create(&c, &a, &e), -1);
	assert_non_null(strstr(e.msg, "option profile"));
	conf_make(&c, "region", "us-east-1", "profile", "prod", NULL);
	assert_int_equal(create(&c, &a, &e), 0);
	aws_destroy(a);
	conf_make(&c, "region", "us-east-1", "ca_file", "/nonexistent.pem", NULL);
	assert_int_equal(create(&c, &a, &e), -1);
	assert_non_null(strstr(e.msg, "ca_file"));
	setenv("AWS_CA_BUNDLE", "/nonexistent.pem", 1);
	conf_make(&c, "region", "us-east-1", NULL);
	assert_int_equal(create(&c, &a, &e), -1);
	unsetenv("AWS_CA_BUNDLE");
	/* create() looks for no credentials (and does no I/O for them) */
	assert_int_equal(create(&c, &a, &e), 0);
	assert_null(a->chain->cur.key_id);
	aws_destroy(a);
	for (const char *const *o = aws_provider_ops.options; *o; o++)
		saw_region |= !strcmp(*o, "region");
	assert_true(saw_region);
	assert_false(aws_provider_ops.caps & PROVIDER_CAP_CAS);
	assert_true(aws_provider_ops.caps & PROVIDER_CAP_WRITE);
	assert_ptr_equal(provider_ops_find("aws-secretsmanager"), &aws_provider_ops);
}

static void test_op_region(void **st)
{
	struct aws a = { .name = "aws", .region = "us-east-1", .timeout_ms = 1000 };
	struct aws_op op;
	struct err e;

	(void)st;
	assert_int_equal(aws_op_start(&op, &a, "prod/db", &e), 0);
	assert_string_equal(op.region, "us-east-1");
	assert_string_equal(op.url, "https://secretsmanager.us-east-1.amazonaws.com/");
	aws_op_end(&op);
	/* an ARN of another region goes there */
	assert_int_equal(aws_op_start(&op, &a, "arn:aws:secretsmanager:eu-west-1:1:secret:x",
				      &e), 0);
	assert_string_equal(op.region, "eu-west-1");
	assert_string_equal(op.url, "https://secretsmanager.eu-west-1.amazonaws.com/");
	aws_op_end(&op);
	/* unless the endpoint is pinned */
	a.endpoint = (char *)"http://127.0.0.1:4566";
	assert_int_equal(aws_op_start(&op, &a, "arn:aws:secretsmanager:eu-west-1:1:secret:x",
				      &e), 0);
	assert_string_equal(op.region, "us-east-1");
	assert_string_equal(op.url, "http://127.0.0.1:4566/");
	aws_op_end(&op);
}

static int setup_all(void **st)
{
	(void)st;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_aws.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
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

#define T(f) cmocka_unit_test_setup(f, env_reset)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_error_type),
		T(test_error_map),
		T(test_error_messages),
		T(test_status_err),
		T(test_status_err_refusals),
		T(test_get_json_object),
		T(test_get_single),
		T(test_get_binary),
		T(test_get_garbage),
		T(test_get_body),
		T(test_write_body_map),
		T(test_write_body_single),
		T(test_write_body_too_big),
		T(test_list_body_parse),
		T(test_params),
		T(test_locators),
		T(test_uuid),
		T(test_sigv4_headers),
		T(test_keep_header),
		T(test_ini_credentials),
		T(test_ini_config),
		T(test_chain_env),
		T(test_chain_files),
		T(test_chain_order),
		T(test_chain_get_and_reject),
		T(test_refresh_at),
		T(test_sts_parse),
		T(test_json_creds),
		T(test_ecs_urls),
		T(test_imds_role),
		T(test_form_and_endpoints),
		T(test_options_region),
		T(test_options_endpoint),
		T(test_options_misc),
		T(test_op_region),
	};

	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
