/* aws.c - AWS Secrets Manager.
 *
 *   [provider aws]
 *   type = aws-secretsmanager
 *   region = eu-west-1        ; else AWS_REGION, AWS_DEFAULT_REGION, the profile's
 *   endpoint = http://127.0.0.1:4566   ; else AWS_ENDPOINT_URL_SECRETS_MANAGER,
 *                             ; AWS_ENDPOINT_URL, https://secretsmanager.REGION.amazonaws.com
 *   profile = prod            ; else AWS_PROFILE, else default
 *   ca_file = /etc/ssl/x.pem  ; else AWS_CA_BUNDLE
 *
 *   store = aws://apps/billing
 *   env.STRIPE_KEY = aws://prod/payments#stripe_key
 *   env.TLS_KEY = aws://arn:aws:secretsmanager:eu-west-1:123456789012:secret:tls-AbCdEf?stage=AWSPREVIOUS
 *
 * A locator is a secret's name or ARN; ?stage=LABEL and ?version=ID pick a
 * version other than AWSCURRENT. A SecretString holding a JSON object is
 * an entry of keys (strings as they are, other JSON values as compact
 * JSON text); any other SecretString, and a SecretBinary, is one value:
 * the map's single key "". The entry's version is the VersionId.
 *
 * The wire: every call is POST / with X-Amz-Target: secretsmanager.<Op>
 * and an application/x-amz-json-1.1 body, signed by curl's SigV4
 * (CURLOPT_AWS_SIGV4 "aws:amz:REGION:secretsmanager", the body through
 * POSTFIELDS, Content-Type set by us, X-Amz-Security-Token added by us
 * when there is a session token, no X-Amz-Date or header-removal lines:
 * aws_send lists the curl 7.88 rules and why each exists).
 *
 * Writes. Secrets Manager has no compare-and-set, so the caps leave it
 * out and kit_store_nocas (kit.h) does the strongest safe approximation:
 *   - the version the caller's edit is based on is the expect argument;
 *   - GetSecretValue first: if the entry moved from that version, or
 *     appeared when it was absent, ERR_CONFLICT and nothing is written;
 *   - PutSecretValue with a fresh UUIDv4 ClientRequestToken (idempotent
 *     across the HTTP layer's retries), or CreateSecret when the entry
 *     does not exist (its ResourceExistsException is ERR_CONFLICT);
 *   - after a short wait (about a round trip, at least 100 ms), read it
 *     back: when AWSCURRENT is another writer's version and our change is
 *     not in it, we were overwritten, and ERR_CONFLICT says so (the
 *     caller redoes its change on top of theirs) instead of hiding the
 *     lost race. A writer who built on our version kept our change: fine.
 * What is left: a writer who read before our put, wrote after our
 * read-back, and does not check afterwards, overwrites us unnoticed (two
 * secretfs writers both check, which closes most of it). The JSON types
 * of unchanged values and a SecretBinary stay as they were.
 *
 * Lists: ListSecrets with a name filter, page by page; AWS documents it
 * as possibly a few minutes stale.
 *
 * Credentials: aws_creds.c, looked up at the first request (create does
 * no I/O but reading the profile's region from ~/.aws/config).
 *
 * Try it: LocalStack (endpoint = http://127.0.0.1:4566, region =
 * us-east-1, AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test), or
 * tests/emulators/aws.py.
 */
#include "provider.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../base/secmem.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "aws.h"
#include "http.h"
#include "kit.h"

#define AWS_SERVICE "secretsmanager"
#define AWS_CONTENT_TYPE "application/x-amz-json-1.1"
#define AWS_ID_MAX 2048		/* SecretId: a name or an ARN */
#define AWS_NAME_MAX 512	/* CreateSecret Name */
#define AWS_SECRET_MAX 65536	/* SecretString / SecretBinary bytes */
#define AWS_VERSION_ID_MIN 32
#define AWS_VERSION_ID_MAX 64
#define AWS_STAGE_MAX 256
#define AWS_FILTER_MAX 512
#define AWS_LIST_PAGE 100
#define AWS_LIST_PAGES_MAX 1000
#define AWS_LIST_MAX 100000
#define AWS_TYPE_MAX 64
#define AWS_ERRTEXT_MAX 200
#define AWS_REGION_MAX 64
#define AWS_AUTH_LOG_MS 60000

struct aws {
	char *name;
	char *region;
	char *endpoint;		/* no trailing '/'; NULL: the regional one */
	long timeout_ms;
	struct http_client *http;
	struct aws_chain *chain;
	int64_t auth_logged_ms;	/* last credential error logged (atomic) */
};

/* One provider operation: every request of it shares one deadline. */
struct aws_op {
	struct aws *a;
	int64_t deadline;
	const char *what;	/* the locator, for messages */
	char region[AWS_REGION_MAX + 1];	/* signing region */
	char *url;		/* the endpoint's "/" */
};

/* What a write needs to know of the entry it replaces. */
struct aws_cur {
	bool exists;
	bool binary;		/* held a SecretBinary */
	json_t *obj;		/* its SecretString as a JSON object, or NULL */
	char version[PROVIDER_VERSION_MAX];
};

/* ---- errors (pure) ---- */

/* The error type of a raw __type or x-amzn-errortype: without a
 * "namespace#" prefix or a ":suffix" (Smithy's sanitizing). "" when there
 * is none or it is not a short printable name. */
static void aws_error_type(const char *raw, char *out, size_t size)
{
	const char *s = raw, *hash;
	size_t len;

	out[0] = '\0';
	if (!s)
		return;
	len = strcspn(s, ":");
	hash = memrchr(s, '#', len);
	if (hash) {
		len -= (size_t)(hash + 1 - s);
		s = hash + 1;
	}
	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len == 0 || len >= size || kit_has_ctl(s, len))
		return;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' &&
		    s[i] != '-')
			return;
	memcpy(out, s, len);
	out[len] = '\0';
}

static const struct aws_errmap {
	const char *type;
	enum err_code code;
	const char *text;
	bool show_message;	/* AWS's Message is safe and useful here */
	bool auth;		/* about the credentials: fresh ones may help */
} aws_errors[] = {
	{ "ResourceNotFoundException", ERR_NOTFOUND, "no such secret", false, false },
	{ "ResourceExistsException", ERR_CONFLICT, "already exists", false, false },
	{ "AccessDeniedException", ERR_ACCESS, "access denied by AWS", true, false },
	{ "AccessDenied", ERR_ACCESS, "access denied by AWS", true, false },
	{ "UnrecognizedClientException", ERR_ACCESS,
	  "AWS does not know the access key id or session token: check the credentials", false, true },
	{ "InvalidClientTokenId", ERR_ACCESS,
	  "AWS does not know the access key id or session token: check the credentials", false, true },
	{ "InvalidSignatureException", ERR_ACCESS,
	  "AWS rejected the request signature: check the secret access key", false, true },
	{ "SignatureDoesNotMatch", ERR_ACCESS,
	  "AWS rejected the request signature: check the secret access key", false, true },
	{ "IncompleteSignatureException", ERR_ACCESS,
	  "AWS found the request signature incomplete (a proxy changing headers?)", false, false },
	{ "MissingAuthenticationTokenException", ERR_ACCESS,
	  "AWS saw no signature on the request", false, false },
	{ "ExpiredTokenException", ERR_ACCESS, "the AWS session token has expired", false, true },
	{ "ExpiredToken", ERR_ACCESS, "the AWS session token has expired", false, true },
	{ "DecryptionFailure", ERR_PROVIDER, "AWS cannot decrypt the secret with its KMS key", true, false },
	{ "EncryptionFailure", ERR_PROVIDER, "AWS cannot encrypt the secret with its KMS key", true, false },
	{ "InvalidRequestException", ERR_PROVIDER, "AWS refused the request", true, false },
	{ "InvalidParameterException", ERR_PROVIDER, "AWS refused a parameter", false, false },
	{ "LimitExceededException", ERR_PROVIDER, "an AWS limit was reached", true, false },
	{ "InternalServiceError", ERR_PROVIDER, "AWS failed internally", false, false },
};

static const struct aws_errmap *aws_errmap_find(const char *type)
{
	for (size_t i = 0; i < sizeof(aws_errors) / sizeof(*aws_errors); i++)
		if (!strcmp(aws_errors[i].type, type))
			return &aws_errors[i];
	return NULL;
}

static bool aws_throttling(const char *type)
{
	static const char *const types[] = {
		"ThrottlingException", "Throttling", "ThrottledException",
		"TooManyRequestsException", "RequestLimitExceeded",
		"RequestThrottledException", "RequestThrottled", "SlowDown",
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++)
		if (!strcmp(type, types[i]))
			return true;
	return false;
}

/* A message fit for a log line: printable, short. */
static void aws_message_clean(const char *msg, char *out, size_t size)
{
	size_t n = 0;

	for (; msg && *msg && n + 1 < size && n < AWS_ERRTEXT_MAX; msg++)
		out[n++] = isprint((unsigned char)*msg) ? *msg : '?';
	out[n] = '\0';
}

/* The error of a non-200 answer with type (sanitized, maybe ""), AWS's
 * message, about what; source names the credentials when they are the
 * problem. Messages are shown only for types whose messages never quote
 * request data (a signature error quotes the canonical request, with
 * the session token in it). A 401/403 is ERR_ACCESS whatever the type:
 * an AWS-compatible server or a proxy may refuse with an HTML or XML page
 * that has none (http_answer_code). */
static int aws_error_map(long status, const char *type, const char *message,
			 const char *what, const char *source, struct err *e)
{
	const struct aws_errmap *m = type[0] ? aws_errmap_find(type) : NULL;
	enum err_code code = http_answer_code(status, m ? m->code : ERR_PROVIDER);
	char msg[AWS_ERRTEXT_MAX + 8] = "", src[200] = "";

	if (code == ERR_ACCESS && source)
		snprintf(src, sizeof(src), "; credentials from %s", source);
	if (!type[0])
		return err_set(e, code,
			       "%s: HTTP %ld (%s) without an AWS error type%s",
			       what, status, http_status_text(status), src);
	if (m && m->show_message && message && message[0]) {
		msg[0] = ':';
		msg[1] = ' ';
		aws_message_clean(message, msg + 2, sizeof(msg) - 2);
	}
	if (m)
		return err_set(e, code, "%s: %s (%s, HTTP %ld)%s%s", what,
			       m->text, type, status, msg, src);
	if (aws_throttling(type))
		return err_set(e, code,
			       "%s: AWS kept throttling the requests (%s, HTTP %ld)%s",
			       what, type, status, src);
	return err_set(e, code, "%s: AWS error %s (HTTP %ld)%s", what,
		       type, status, src);
}

/* The error type of an answer: the x-amzn-errortype header, else the
 * body's __type (or code). */
static void aws_answer_type(const struct http_response *rs, json_t *root,
			    char *out, size_t size)
{
	const char *raw = rs->header[0] ? rs->header : NULL;

	if (!raw)
		raw = json_string_value(json_object_get(root, "__type"));
	if (!raw)
		raw = json_string_value(json_object_get(root, "code"));
	aws_error_type(raw, out, size);
}

static int aws_status_err(const struct http_response *rs, const char *what,
			  const char *source, struct err *e)
{
	json_t *root = http_json_parse(rs);
	const char *msg = json_string_value(json_object_get(root, "Message"));
	char type[AWS_TYPE_MAX];
	int rc;

	if (!msg)
		msg = json_string_value(json_object_get(root, "message"));
	aws_answer_type(rs, root, type, sizeof(type));
	rc = aws_error_map(rs->status, type, msg, what, source, e);
	json_decref(root);
	return rc;
}

static int aws_garbage(struct err *e, const char *what, const char *why)
{
	return err_set(e, ERR_PROVIDER, "%s: garbage from AWS: %s", what, why);
}

/* ---- locators and parameters (pure) ---- */

/* A SecretId: a name or an ARN, 1 to 2048 bytes, no control characters. */
static int aws_id_check(const char *id, struct err *e)
{
	size_t len = strlen(id);

	if (len == 0 || len > AWS_ID_MAX || kit_has_ctl(id, len))
		return err_set(e, ERR_INVALID,
			       "locator %.64s: must be a secret name or ARN of 1 to %d characters",
			       id, AWS_ID_MAX);
	return 0;
}

static bool aws_is_arn(const char *id)
{
	return !strncmp(id, "arn:", 4);
}

/* A name CreateSecret takes: 1 to 512 of [A-Za-z0-9/_+=.@-]. */
static bool aws_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > AWS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("/_+=.@-", name[i]))
			return false;
	return true;
}

static bool aws_region_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > AWS_REGION_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) &&
		    s[i] != '-')
			return false;
	return true;
}

/* The region of arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME
 * into out; false when id is not such an ARN. */
static bool aws_arn_region(const char *id, char *out, size_t size)
{
	const char *p = id + 4, *r;
	size_t len;

	if (!aws_is_arn(id))
		return false;
	p = strchr(p, ':');
	if (!p || strncmp(p + 1, AWS_SERVICE ":", sizeof(AWS_SERVICE)))
		return false;
	r = p + 1 + sizeof(AWS_SERVICE);
	len = strcspn(r, ":");
	if (len == 0 || len >= size || r[len] != ':')
		return false;
	memcpy(out, r, len);
	out[len] = '\0';
	return true;
}

static bool aws_version_id_valid(const char *s)
{
	size_t len = strlen(s);

	if (len < AWS_VERSION_ID_MIN || len > AWS_VERSION_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

struct aws_params {
	char *stage;
	char *version;
};

static void aws_params_free(struct aws_params *ap)
{
	free(ap->stage);
	free(ap->version);
	ap->stage = ap->version = NULL;
}

static int aws_params_parse(const char *params, struct aws_params *ap,
			    struct err *e)
{
	struct kit_param p[] = { { "stage", NULL }, { "version", NULL } };

	if (kit_params_parse(params, p, 2, "stage=LABEL, version=ID", e) < 0)
		return -1;
	ap->stage = p[0].value;
	ap->version = p[1].value;
	if (ap->stage && (!ap->stage[0] || strlen(ap->stage) > AWS_STAGE_MAX ||
			  kit_has_ctl(ap->stage, strlen(ap->stage)))) {
		aws_params_free(ap);
		return err_set(e, ERR_INVALID,
			       "?stage= must be a label of 1 to %d characters",
			       AWS_STAGE_MAX);
	}
	if (ap->version && !aws_version_id_valid(ap->version)) {
		aws_params_free(ap);
		return err_set(e, ERR_INVALID,
			       "?version= must be a VersionId (%d to %d letters, digits or '-')",
			       AWS_VERSION_ID_MIN, AWS_VERSION_ID_MAX);
	}
	return 0;
}

/* ---- request bodies (pure) ---- */

static int aws_dump(json_t *req, struct secbuf *out, struct err *e)
{
	int rc = req && http_json_dump(req, out) == 0 ? 0 :
		err_oom(e);

	json_decref(req);
	return rc;
}

/* {"SecretId":..., "VersionStage"?, "VersionId"?} */
static int aws_get_body(const char *id, const char *stage,
			const char *version, struct secbuf *out,
			struct err *e)
{
	json_t *req = json_object(), *v = json_string(id);

	if (!v) {
		json_decref(req);
		return err_set(e, ERR_INVALID, "locator %.64s: not UTF-8 text",
			       id);
	}
	if (!req || json_object_set_new(req, "SecretId", v) < 0 ||
	    (stage && json_object_set_new(req, "VersionStage",
					  json_string(stage)) < 0) ||
	    (version && json_object_set_new(req, "VersionId",
					    json_string(version)) < 0)) {
		json_decref(req);
		return err_set(e, ERR_INVALID,
			       "locator %.64s: the parameters are not UTF-8 text",
			       id);
	}
	return aws_dump(req, out, e);
}


static int aws_too_big(const char *what, size_t len, struct err *e)
{
	return err_set(e, ERR_TOOBIG,
		       "%s: %zu bytes; Secrets Manager holds at most %d", what,
		       len, AWS_SECRET_MAX);
}

/* SecretBinary: the bytes in standard base64. */
static int aws_set_binary(json_t *req, const char *val, size_t len,
			  const char *what, struct err *e)
{
	size_t b64len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(b64len);
	int rc = 0;

	if (len > AWS_SECRET_MAX)
		rc = aws_too_big(what, len, e);
	else if (!b64)
		rc = err_oom(e);
	if (rc == 0) {
		sodium_bin2base64(b64, b64len, (const unsigned char *)val, len,
				  sodium_base64_VARIANT_ORIGINAL);
		if (json_object_set_new(req, "SecretBinary", json_string(b64)) < 0)
			rc = err_oom(e);
	}
	if (b64)
		secmem_free(b64, b64len);
	return rc;
}

/* SecretString or SecretBinary of m into req. A map of one key "" is the
 * whole value: a SecretBinary when the entry held one or the bytes are
 * not UTF-8, else a SecretString. Any other map is a JSON object. */
static int aws_secret_set(json_t *req, const struct kvmap *m,
			  const struct aws_cur *cur, const char *what,
			  struct err *e)
{
	struct secbuf text = SECBUF_INIT;
	json_t *obj = NULL, *str;
	int rc;

	if (m->n == 1 && m->items[0].key[0] == '\0') {
		const struct kv *kv = &m->items[0];

		str = cur->binary ? NULL : json_stringn(kv->val, kv->len);
		if (!str)
			return aws_set_binary(req, kv->val, kv->len, what, e);
		if (kv->len > AWS_SECRET_MAX) {
			json_decref(str);
			return aws_too_big(what, kv->len, e);
		}
		return json_object_set_new(req, "SecretString", str) < 0 ?
			err_oom(e) : 0;
	}
	if (http_json_from_map(m, cur->obj, what, &obj, e) < 0)
		return -1;
	rc = http_json_dump(obj, &text) < 0 ?
		err_oom(e) : 0;
	json_decref(obj);
	if (rc == 0 && text.len > AWS_SECRET_MAX)
		rc = aws_too_big(what, text.len, e);
	if (rc == 0 && json_object_set_new(req, "SecretString",
					   json_stringn(text.data, text.len)) < 0)
		rc = err_oom(e);
	secbuf_free(&text);
	return rc;
}

/* PutSecretValue {"SecretId",...} or CreateSecret {"Name",...}: idkey
 * says which, token is the ClientRequestToken. */
static int aws_write_body(const char *idkey, const char *id,
			  const char *token, const struct kvmap *m,
			  const struct aws_cur *cur, const char *what,
			  struct secbuf *out, struct err *e)
{
	json_t *req = json_object(), *v = json_string(id);

	if (!v) {
		json_decref(req);
		return err_set(e, ERR_INVALID, "locator %.64s: not UTF-8 text",
			       id);
	}
	if (!req || json_object_set_new(req, idkey, v) < 0 ||
	    json_object_set_new(req, "ClientRequestToken",
				json_string(token)) < 0) {
		json_decref(req);
		return err_oom(e);
	}
	if (aws_secret_set(req, m, cur, what, e) < 0) {
		json_decref(req);
		return -1;
	}
	return aws_dump(req, out, e);
}

/* Whether the name filter of ListSecrets can carry prefix: its pattern
 * is ^!?[a-zA-Z0-9 :_@/+=.-]*$, and a leading '!' negates. */
static bool aws_filter_ok(const char *prefix)
{
	size_t len = strlen(prefix);

	if (len == 0 || len > AWS_FILTER_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)prefix[i]) &&
		    !strchr(" :_@/+=.-", prefix[i]))
			return false;
	return true;
}

/* {"MaxResults":100, "Filters":[{"Key":"name","Values":[prefix]}]?,
 * "NextToken"?} */
static int aws_list_body(const char *prefix, const char *next,
			 struct secbuf *out, struct err *e)
{
	json_t *req = json_pack("{s:i}", "MaxResults", AWS_LIST_PAGE);

	if (req && aws_filter_ok(prefix) &&
	    json_object_set_new(req, "Filters",
				json_pack("[{s:s,s:[s]}]", "Key", "name",
					  "Values", prefix)) < 0) {
		json_decref(req);
		req = NULL;
	}
	if (req && next &&
	    json_object_set_new(req, "NextToken", json_string(next)) < 0) {
		json_decref(req);
		req = NULL;
	}
	return aws_dump(req, out, e);
}

/* ---- answers (pure) ---- */

/* SecretBinary (standard base64) as the single key "". */
static int aws_binary_map(const char *b64, size_t len, struct kvmap *m,
			  const char *what, struct err *e)
{
	size_t max = len / 4 * 3 + 3, bin_len = 0;
	unsigned char *bin = malloc(max);
	int rc = 0;

	if (!bin)
		return err_oom(e);
	if (sodium_base642bin(bin, max, b64, len, NULL, &bin_len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) < 0)
		rc = aws_garbage(e, what, "SecretBinary is not base64");
	else if (kvmap_set(m, "", bin, bin_len) < 0)
		rc = err_oom(e);
	secmem_free(bin, max);
	return rc;
}

/* A GetSecretValue answer (200) into out, and into cur when not NULL. */
static int aws_get_parse(const struct http_response *rs, const char *what,
			 struct entry *out, struct aws_cur *cur,
			 struct err *e)
{
	json_t *root = http_json_parse(rs);
	json_t *vid = json_object_get(root, "VersionId");
	json_t *ss = json_object_get(root, "SecretString");
	json_t *sb = json_object_get(root, "SecretBinary");
	int rc = -1;

	if (!json_is_object(root)) {
		aws_garbage(e, what, "the answer is not a JSON object");
		goto out;
	}
	if (!json_is_string(vid) || json_string_length(vid) == 0 ||
	    json_string_length(vid) >= PROVIDER_VERSION_MAX ||
	    kit_has_ctl(json_string_value(vid), json_string_length(vid))) {
		aws_garbage(e, what, "no VersionId");
		goto out;
	}
	if (json_is_string(ss))
		rc = kit_value_map(json_string_value(ss), json_string_length(ss),
				   "aws", &out->map, cur ? &cur->obj : NULL, e);
	else if (json_is_string(sb))
		rc = aws_binary_map(json_string_value(sb), json_string_length(sb),
				    &out->map, what, e);
	else
		rc = aws_garbage(e, what, "neither SecretString nor SecretBinary");
	if (rc < 0)
		goto out;
	snprintf(out->version, sizeof(out->version), "%s",
		 json_string_value(vid));
	if (cur) {
		cur->exists = true;
		cur->binary = !json_is_string(ss);
		memcpy(cur->version, out->version, sizeof(cur->version));
	}
out:
	if (rc < 0)
		entry_free(out);
	json_decref(root);
	return rc;
}

/* A ListSecrets page: the names starting with prefix into out, and the
 * NextToken (malloc'd) into *next, NULL on the last page. */
static int aws_list_parse(const struct http_response *rs, const char *prefix,
			  struct strv *out, char **next, struct err *e)
{
	json_t *root = http_json_parse(rs);
	json_t *list = json_object_get(root, "SecretList"), *s;
	json_t *tok = json_object_get(root, "NextToken");
	size_t i, plen = strlen(prefix);
	int rc = 0;

	*next = NULL;
	if (!json_is_object(root) || !json_is_array(list) ||
	    (tok && !json_is_string(tok) && !json_is_null(tok))) {
		json_decref(root);
		return aws_garbage(e, "ListSecrets", "no SecretList");
	}
	json_array_foreach(list, i, s) {
		json_t *name = json_object_get(s, "Name");
		const char *n = json_string_value(name);

		if (!n || json_string_length(name) != strlen(n) || !n[0] ||
		    kit_has_ctl(n, strlen(n)) || strncmp(n, prefix, plen) ||
		    out->n >= AWS_LIST_MAX)
			continue;
		if (strv_push(out, n) < 0) {
			rc = err_oom(e);
			break;
		}
	}
	if (rc == 0 && json_is_string(tok) && json_string_length(tok) > 0) {
		*next = strdup(json_string_value(tok));
		if (!*next)
			rc = err_oom(e);
	}
	json_decref(root);
	return rc;
}

/* A version 4 UUID (random, from libsodium): a ClientRequestToken. */
static void aws_uuid4(char out[37])
{
	unsigned char b[16];

	randombytes_buf(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* ---- requests ---- */

static int aws_op_start(struct aws_op *op, struct aws *a, const char *what,
			struct err *e)
{
	char arn_region[AWS_REGION_MAX + 1], *base = NULL;

	memset(op, 0, sizeof(*op));
	op->a = a;
	op->what = what;
	op->deadline = clock_now_ms() + a->timeout_ms;
	snprintf(op->region, sizeof(op->region), "%s", a->region);
	/* an ARN of another region is served there, unless the endpoint is
	 * pinned (an emulator knows one region) */
	if (!a->endpoint && aws_arn_region(what, arn_region, sizeof(arn_region)) &&
	    aws_region_valid(arn_region) && strcmp(arn_region, a->region)) {
		log_debug("aws %s: %s is in region %s", a->name, what,
			  arn_region);
		snprintf(op->region, sizeof(op->region), "%s", arn_region);
	}
	if (!a->endpoint)
		base = awsc_regional_url(AWS_SERVICE, op->region);
	if ((!a->endpoint && !base) ||
	    asprintf(&op->url, "%s/", a->endpoint ? a->endpoint : base) < 0) {
		op->url = NULL;
		free(base);
		return err_oom(e);
	}
	free(base);
	return 0;
}

static void aws_op_end(struct aws_op *op)
{
	free(op->url);
	op->url = NULL;
}

/* Signing. curl 7.88's CURLOPT_AWS_SIGV4 signs host, x-amz-date
 * and every CURLOPT_HTTPHEADER line, and hashes CURLOPT_POSTFIELDS; a
 * request is signed right only when these rules hold:
 *   1. the body goes through POSTFIELDS (with a read callback curl hashes
 *      an empty body) - the HTTP layer does so;
 *   2. Content-Type is set by us: curl's default form type is sent unsigned;
 *   3. no header-removal ("Expect:") or empty lines: 7.88 signs them but
 *      never sends them (IncompleteSignatureException; fixed in curl 8.3);
 *   4. X-Amz-Security-Token is added by us, only when there is a token:
 *      curl never adds it;
 *   5. never X-Amz-Date or Date: 7.88 sends a user X-Amz-Date twice;
 *   8. the full "aws:amz:REGION:SERVICE": else curl parses service and
 *      region from the host name, which fails for emulators and proxies;
 *   9. key id and secret set afresh on every attempt: credentials rotate.
 * (6 and 7 - x-amz-content-sha256, query canonicalization - do not matter
 * for POST / to Secrets Manager; the numbers are the ones used below.)
 *
 * One call's credentials, fetched afresh for every attempt of it, and
 * what its answers said. */
struct aws_call_ctx {
	struct aws_op *op;
	char sigv4[AWS_REGION_MAX + 32];
	struct aws_creds cr;
	uint64_t gen;
	bool have_creds;
	bool refreshed;		/* fresh credentials were asked for once */
};

/* The auth hook: sign with the chain's current credentials (rule 9: set
 * afresh on every attempt); rule 4: the session token only when there is
 * one. */
static int aws_call_auth(void *ctx, struct http_auth *au, struct err *e)
{
	struct aws_call_ctx *c = ctx;

	if (c->have_creds)
		awsc_creds_free(&c->cr);
	c->have_creds = false;
	if (awsc_chain_get(c->op->a->chain, c->op->deadline, &c->cr, &c->gen, e) < 0)
		return err_prefix(e, "%s: AWS credentials: ", c->op->what);
	c->have_creds = true;
	http_auth_sigv4(au, c->sigv4, c->cr.key_id, c->cr.secret);
	if (c->cr.token && c->cr.token[0] &&
	    http_auth_header(au, "X-Amz-Security-Token", c->cr.token) < 0)
		return err_oom(e);
	return 0;
}

/* The retry classifier: throttling is HTTP 400 in this protocol, which
 * the layer would not retry; an authentication error is retried once
 * with fresh credentials (the next attempt's auth hook fetches them). */
static enum http_verdict aws_call_classify(void *ctx,
					   const struct http_response *rs)
{
	struct aws_call_ctx *c = ctx;
	const struct aws_errmap *m;
	char type[AWS_TYPE_MAX];
	json_t *root;

	if (rs->status == 200)
		return HTTP_VERDICT_FINAL;
	root = http_json_parse(rs);
	aws_answer_type(rs, root, type, sizeof(type));
	json_decref(root);
	if (aws_throttling(type))
		return HTTP_VERDICT_RETRY;
	m = aws_errmap_find(type);
	if (m && m->auth && !c->refreshed &&
	    awsc_chain_reject(c->op->a->chain, c->gen)) {
		c->refreshed = true;
		return HTTP_VERDICT_RETRY;
	}
	return HTTP_VERDICT_DEFAULT;
}

/* Credential and signature errors are logged here too, since a cache
 * serving stale values hides them; once a minute is enough. */
static void aws_auth_log(struct aws *a, const struct err *e)
{
	if (kit_once_per(&a->auth_logged_ms, AWS_AUTH_LOG_MS))
		log_warn("aws %s: %s", a->name, e->msg);
}

/* One Secrets Manager operation: a signed POST / (the rules above). 0
 * with rs holding a 200 answer; -1 with e mapped from AWS's error
 * otherwise. */
static int aws_call(struct aws_op *op, const char *target,
		    const struct secbuf *body, struct http_response *rs,
		    struct err *e)
{
	struct aws_call_ctx c = { .op = op };
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_request rq = {
		.method = "POST",
		.url = op->url,
		.headers = &h,
		.body = body->data,
		.body_len = body->len,
		/* rule 2: our own, signed Content-Type */
		.content_type = AWS_CONTENT_TYPE,
		/* secrets and a signature never go to another host */
		.body_secret = true,
		.deadline_ms = op->deadline,
		.keep_header = "x-amzn-errortype",
		.auth = aws_call_auth,
		.classify = aws_call_classify,
		.ctx = &c,
	};
	char tgt[96];
	int rc;

	/* rule 8: the full provider:provider:region:service */
	snprintf(c.sigv4, sizeof(c.sigv4), "aws:amz:%s:%s", op->region,
		 AWS_SERVICE);
	snprintf(tgt, sizeof(tgt), "secretsmanager.%s", target);
	/* rule 5: never X-Amz-Date or Date; rule 3: no empty or removal
	 * lines */
	if (http_headers_add(&h, "X-Amz-Target", tgt, false) < 0)
		return err_oom(e);
	rc = http_request(op->a->http, &rq, rs, e);
	http_headers_free(&h);
	if (rc < 0 && c.have_creds)
		err_prefix(e, "%s: ", op->what);
	if (rc == 0 && rs->status != 200) {
		rc = aws_status_err(rs, op->what, c.cr.source, e);
		if (e->code == ERR_ACCESS)
			aws_auth_log(op->a, e);
	}
	if (c.have_creds)
		awsc_creds_free(&c.cr);
	return rc;
}

/* GetSecretValue of id into out (and cur). */
static int aws_get(struct aws_op *op, const char *id, const char *stage,
		   const char *version, struct entry *out,
		   struct aws_cur *cur, struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf body = SECBUF_INIT;
	int rc = -1;

	if (aws_get_body(id, stage, version, &body, e) == 0 &&
	    aws_call(op, "GetSecretValue", &body, &rs, e) == 0)
		rc = aws_get_parse(&rs, op->what, out, cur, e);
	secbuf_free(&body);
	http_response_free(&rs);
	return rc;
}

static int aws_fetch(void *state, const char *locator, const char *params,
		     struct entry *out, struct err *e)
{
	struct aws *a = state;
	struct aws_params p;
	struct aws_op op;
	int rc;

	if (aws_id_check(locator, e) < 0 || aws_params_parse(params, &p, e) < 0)
		return -1;
	rc = aws_op_start(&op, a, locator, e);
	if (rc == 0)
		rc = aws_get(&op, locator, p.stage, p.version, out, NULL, e);
	aws_op_end(&op);
	aws_params_free(&p);
	return rc;
}

/* ---- store ---- */

static void aws_cur_free(struct aws_cur *cur)
{
	json_decref(cur->obj);
	memset(cur, 0, sizeof(*cur));
}

/* The VersionId of a write's answer, else token. */
static void aws_written_version(const struct http_response *rs,
				const char *token,
				char version[PROVIDER_VERSION_MAX])
{
	json_t *root = http_json_parse(rs);
	json_t *vid = json_object_get(root, "VersionId");
	const char *s = json_string_value(vid);

	if (!s || json_string_length(vid) >= PROVIDER_VERSION_MAX ||
	    kit_has_ctl(s, strlen(s)) || !s[0])
		s = token;
	snprintf(version, PROVIDER_VERSION_MAX, "%s", s);
	json_decref(root);
}

/* PutSecretValue or CreateSecret (op names which). */
static int aws_write(struct aws_op *op, const char *target, const char *id,
		     const struct kvmap *m, const struct aws_cur *cur,
		     const char *token, char version[PROVIDER_VERSION_MAX],
		     struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf body = SECBUF_INIT;
	bool create = !strcmp(target, "CreateSecret");
	int rc = -1;

	if (create && !aws_name_valid(id)) {
		err_set(e, aws_is_arn(id) ? ERR_NOTFOUND : ERR_INVALID,
			aws_is_arn(id) ?
			"%.64s: no such secret, and an ARN cannot be created (name the secret instead)" :
			"%.64s: cannot be created: a name is 1 to 512 of A-Z a-z 0-9 / _ + = . @ -",
			id);
		goto out;
	}
	if (aws_write_body(create ? "Name" : "SecretId", id, token, m, cur,
			   op->what, &body, e) < 0 ||
	    aws_call(op, target, &body, &rs, e) < 0)
		goto out;
	aws_written_version(&rs, token, version);
	rc = 0;
out:
	secbuf_free(&body);
	http_response_free(&rs);
	return rc;
}

/* kit_store_nocas's view of one store(): the first read keeps the
 * current secret's JSON (types, binary-ness) for the write. */
struct aws_store_ctx {
	struct aws_op *op;
	const char *id;
	struct aws_cur cur;
	bool have_cur;
	char token[37];		/* one ClientRequestToken for the write */
};

static int aws_store_read(void *ctx, struct entry *out, struct err *e)
{
	struct aws_store_ctx *c = ctx;
	struct aws_cur *cur = c->have_cur ? NULL : &c->cur;

	c->have_cur = true;
	return aws_get(c->op, c->id, NULL, NULL, out, cur, e);
}

static int aws_store_write(void *ctx, const struct kvmap *m, bool create,
			   char version[PROVIDER_VERSION_MAX], struct err *e)
{
	struct aws_store_ctx *c = ctx;

	return aws_write(c->op, create ? "CreateSecret" : "PutSecretValue",
			 c->id, m, &c->cur, c->token, version, e);
}

/* Secrets Manager has no compare-and-set: the kit reads before and after
 * (kit_store_nocas). */
static int aws_store(void *state, const char *id, const char *params,
		     const struct kvmap *m,
		     const char *expect, char new_version[PROVIDER_VERSION_MAX],
		     struct err *e)
{
	struct aws_op op;
	struct aws_store_ctx c = { .op = &op, .id = id };
	struct kit_nocas s = { .ctx = &c, .what = id, .read = aws_store_read,
			       .write = aws_store_write };
	int rc;

	err_clear(e);
	if (aws_id_check(id, e) < 0 || aws_op_start(&op, state, id, e) < 0)
		return -1;
	s.deadline_ms = op.deadline;
	aws_uuid4(c.token);
	rc = kit_store_nocas(&s, m, expect, new_version, e);
	aws_cur_free(&c.cur);
	aws_op_end(&op);
	return rc;
}

/* ---- list ---- */

static int aws_list(void *state, const char *prefix, struct strv *out,
		    struct err *e)
{
	struct aws *a = state;
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf body = SECBUF_INIT;
	struct aws_op op;
	char *next = NULL;
	int rc = aws_op_start(&op, a, prefix[0] ? prefix : "ListSecrets", e);

	for (int page = 0; rc == 0 && page < AWS_LIST_PAGES_MAX; page++) {
		char *tok = next;

		rc = aws_list_body(prefix, tok, &body, e);
		free(tok);
		next = NULL;
		if (rc == 0)
			rc = aws_call(&op, "ListSecrets", &body, &rs, e);
		if (rc == 0)
			rc = aws_list_parse(&rs, prefix, out, &next, e);
		if (!next || out->n >= AWS_LIST_MAX)
			break;
	}
	free(next);
	if (rc < 0)
		strv_free(out);
	else
		strv_sort_unique(out);
	secbuf_free(&body);
	http_response_free(&rs);
	aws_op_end(&op);
	return rc;
}

/* ---- create ---- */

static const char *const aws_options[] = {
	"region", "endpoint", "profile", "ca_file", NULL
};

static void aws_destroy(void *state)
{
	struct aws *a = state;

	if (!a)
		return;
	awsc_chain_free(a->chain);
	http_client_free(a->http);
	free(a->name);
	free(a->region);
	free(a->endpoint);
	free(a);
}

static int aws_parse_profile(const struct provider_conf *conf,
			     const char **profile, struct err *e)
{
	const char *s = conf_opt_get(conf, "profile");

	*profile = s;
	if (s && (!s[0] || strlen(s) > 128 || kit_has_ctl(s, strlen(s)) ||
		  strpbrk(s, "[] \t")))
		return err_set(e, ERR_INVALID,
			       "option profile: '%.64s' is not a profile name",
			       s);
	return 0;
}

/* region, else AWS_REGION, AWS_DEFAULT_REGION, the profile's region. */
static int aws_parse_region(struct aws *a, const struct provider_conf *conf,
			    const char *profile, struct err *e)
{
	const char *s = conf_opt_get(conf, "region");
	const char *from = "option region";

	if (!s && (s = kit_env("AWS_REGION")))
		from = "AWS_REGION";
	if (!s && (s = kit_env("AWS_DEFAULT_REGION")))
		from = "AWS_DEFAULT_REGION";
	if (s) {
		a->region = strdup(s);
	} else {
		a->region = awsc_profile_region(awsc_profile_name(profile));
		from = "the profile's region in ~/.aws/config";
		if (!a->region)
			return err_set(e, ERR_INVALID,
				       "no region: set region = (e.g. us-east-1), or AWS_REGION");
	}
	if (!a->region)
		return err_oom(e);
	if (!aws_region_valid(a->region))
		return err_set(e, ERR_INVALID, "%s: '%.64s' is not a region",
			       from, a->region);
	return 0;
}

/* endpoint, else AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL, else
 * the regional one (a->endpoint stays NULL). */
static int aws_parse_endpoint(struct aws *a, const struct provider_conf *conf,
			      struct err *e)
{
	const char *s = conf_opt_get(conf, "endpoint");
	char brief[512];
	size_t len;

	if (!s)
		s = awsc_endpoint_env("AWS_ENDPOINT_URL_SECRETS_MANAGER");
	if (!s)
		return 0;
	len = strlen(s);
	http_url_brief(s, brief, sizeof(brief));
	if ((strncasecmp(s, "http://", 7) && strncasecmp(s, "https://", 8)) ||
	    strchr(s, '?') || strchr(s, '#') || kit_has_ctl(s, len) ||
	    !strcmp(brief, "?"))
		return err_set(e, ERR_INVALID,
			       "endpoint: '%.128s' is not an http:// or https:// URL",
			       s);
	a->endpoint = strdup(s);
	if (!a->endpoint)
		return err_oom(e);
	while (len > 0 && a->endpoint[len - 1] == '/')
		a->endpoint[--len] = '\0';
	if (!strncasecmp(s, "http://", 7) &&
	    strncmp(brief, "http://127.", 11) &&
	    strncmp(brief, "http://localhost", 16) &&
	    strncmp(brief, "http://[::1]", 12))
		log_warn("aws %s: endpoint %s is plain http: secrets travel unencrypted",
			 conf->name, brief);
	return 0;
}

static int aws_create(const struct provider_conf *conf, void **state,
		      struct err *e)
{
	struct http_client_conf hc = { .name = conf->name };
	struct aws_chain_conf cc = { .name = conf->name };
	struct aws *a = calloc(1, sizeof(*a));
	const char *profile = NULL;

	if (!a)
		return err_oom(e);
	if (sodium_init() < 0) {
		err_set(e, ERR_PROVIDER, "libsodium failed to start");
		goto fail;
	}
	a->timeout_ms = conf->request_timeout_ms > 0 ?
		conf->request_timeout_ms : HTTP_TIMEOUT_DEFAULT_MS;
	a->name = strdup(conf->name);
	if (!a->name) {
		err_oom(e);
		goto fail;
	}
	if (aws_parse_profile(conf, &profile, e) < 0 ||
	    aws_parse_region(a, conf, profile, e) < 0 ||
	    aws_parse_endpoint(a, conf, e) < 0)
		goto fail;
	hc.ca_file = conf_opt_get(conf, "ca_file");
	if (!hc.ca_file)
		hc.ca_file = kit_env("AWS_CA_BUNDLE");
	if (hc.ca_file && access(hc.ca_file, R_OK) < 0) {
		err_set(e, ERR_INVALID, "option ca_file: %s: %s", hc.ca_file,
			strerror(errno));
		goto fail;
	}
	hc.timeout_ms = a->timeout_ms;
	if (http_client_new(&hc, &a->http, e) < 0)
		goto fail;
	cc.profile = profile;
	cc.region = a->region;
	cc.http = a->http;
	if (awsc_chain_new(&cc, &a->chain, e) < 0)
		goto fail;
	*state = a;
	return 0;
fail:
	aws_destroy(a);
	return -1;
}

const struct provider_ops aws_provider_ops = {
	.type = "aws-secretsmanager",
	.options = aws_options,
	/* no PROVIDER_CAP_CAS: see aws_store */
	.caps = PROVIDER_CAP_WRITE | PROVIDER_CAP_LIST,
	.create = aws_create,
	.destroy = aws_destroy,
	.fetch = aws_fetch,
	.store = aws_store,
	.list = aws_list,
};
