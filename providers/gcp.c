/* gcp.c - GCP Secret Manager (API v1, REST).
 *
 *   [provider gcp]
 *   type = gcp-secretmanager
 *   project = my-project          ; else GOOGLE_CLOUD_PROJECT, else the
 *                                 ; credentials' project, else the metadata
 *                                 ; server's
 *   location = europe-west1       ; regional secrets (secretmanager.
 *                                 ; LOCATION.rep.googleapis.com)
 *   replication = automatic       ; or "europe-west1,europe-west4": the
 *                                 ; replicas of secrets secretfs creates
 *   endpoint = http://127.0.0.1:8085   ; instead of Google's (tests)
 *   credentials_file, token_uri, sts_endpoint, metadata_host
 *                                 ; (gcp_auth.c; Google's variables otherwise)
 *   ca_file, ca_path, client_cert, client_key, tls_skip_verify
 *
 *   store = gcp://billing-env                   ; a JSON object: the app's keys
 *   env.DB = gcp://shared-project/db#password   ; another project's secret
 *   env.TLS = gcp://tls-key?version=3           ; a number, latest or an alias
 *   env.X = gcp://projects/p/secrets/s/versions/2   ; full resource names,
 *   env.Y = gcp://projects/p/locations/l/secrets/s  ; regional ones too
 *
 * A payload that is a JSON object is an entry of keys (strings as they
 * are, other JSON values as compact JSON text); anything else, text or
 * binary, is a single value holding exactly its bytes (the key ""). The
 * entry's version is the number of the secret version read.
 *
 * The wire (docs/gcp.md): GET .../secrets/S/versions/V:access, whose
 * payload's dataCrc32c (CRC-32C, a decimal string) is checked against the
 * decoded bytes: a mismatch is ERR_PROVIDER and a log line, never the
 * value (a version from before Google kept checksums has none: served). Writes POST .../secrets/S:addVersion with the payload's
 * CRC-32C; a secret that does not exist yet is created first (POST
 * .../secrets?secretId=S with the configured replication; regional
 * secrets have none). Listing GETs .../secrets in pages.
 *
 * Secret Manager has no compare-and-set on versions: kit_store_nocas reads
 * before (the caller's expect), writes, reads back and reports a lost race
 * as ERR_CONFLICT. A disabled or destroyed version (FAILED_PRECONDITION)
 * is ERR_ACCESS: someone turned it off on purpose, and a stale copy must
 * not be served in its place. Refusals are logged (once a minute) naming
 * the identity and the secret.
 *
 * Try it: tests/integration/test_gcp_mount.py, against the emulator in
 * tests/emulators/.
 */
#include "provider.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../base/clock.h"
#include "../base/crc32c.h"
#include "../base/log.h"
#include "../base/secmem.h"
#include "gcp.h"
#include "http.h"
#include "kit.h"

#define GCP_SECRET_MAX 255
#define GCP_LOCATION_MAX 63
#define GCP_VERSION_MAX 63
#define GCP_PAYLOAD_MAX (64 * 1024)
#define GCP_GLOBAL_ENDPOINT "https://secretmanager.googleapis.com"
#define GCP_PAGE_SIZE 250
#define GCP_LIST_PAGES_MAX 400
#define GCP_AUTH_LOG_MS 60000

struct gcp {
	char *name;
	char *endpoint;		/* NULL: Google's, per location */
	char *project;		/* configured; NULL: the credentials' */
	char *location;		/* NULL: global secrets */
	json_t *replication;	/* the "replication" of created secrets */
	long timeout_ms;
	struct http_client *http;
	struct gcp_auth *auth;
	int64_t auth_logged_ms;	/* last refusal logged (atomic) */
};

/* A reference, parsed. */
struct gcp_ref {
	char *project;		/* NULL: the provider's */
	char *location;		/* NULL: the provider's */
	char *secret;
	char *version;		/* NULL: latest */
};

/* One provider operation: its requests share one deadline. */
struct gcp_op {
	struct gcp *g;
	int64_t deadline;
	const char *what;	/* the secret, for messages */
	char parent[256];	/* projects/P[/locations/L] */
	const char *location;	/* NULL: global */
};

/* ---- names (pure) ---- */

/* A secret id: 1 to 255 of A-Z a-z 0-9 _ -. */
static bool gcp_secret_valid(const char *s, size_t len)
{
	if (len == 0 || len > GCP_SECRET_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* A project id or number: lower-case letters, digits, '-', and the '.'
 * and ':' of legacy domain-scoped ids. */
static bool gcp_project_valid(const char *s, size_t len)
{
	if (len == 0 || len > GCP_PROJECT_MAX || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) &&
		    !strchr("-.:", s[i]))
			return false;
	return true;
}

static bool gcp_location_valid(const char *s, size_t len)
{
	if (len == 0 || len > GCP_LOCATION_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) &&
		    s[i] != '-')
			return false;
	return true;
}

/* A version: a number, latest, or an alias (letters, digits, _ and -). */
static bool gcp_version_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > GCP_VERSION_MAX)
		return false;
	if (isdigit((unsigned char)s[0]))
		return strspn(s, "0123456789") == len && s[0] != '0';
	return gcp_secret_valid(s, len);
}

/* ---- references (pure) ---- */

static void gcp_ref_free(struct gcp_ref *r)
{
	free(r->project);
	free(r->location);
	free(r->secret);
	free(r->version);
	memset(r, 0, sizeof(*r));
}

/* The '/'-separated segments of s, at most max, into seg (pointers into
 * a copy the caller frees). -1 when there are more, or an empty one. */
static int gcp_split(char *s, char **seg, int max)
{
	int n = 0;

	for (char *p = s;; p++) {
		char *slash = strchr(p, '/');

		if (n == max)
			return -1;
		seg[n++] = p;
		if (!slash)
			break;
		*slash = '\0';
		p = slash;
	}
	for (int i = 0; i < n; i++)
		if (!seg[i][0])
			return -1;
	return n;
}

static int gcp_dup(char **dst, const char *s, struct err *e)
{
	*dst = strdup(s);
	return *dst ? 0 : err_oom(e);
}

/* projects/P[/locations/L]/secrets/S[/versions/V] (n segments). */
static int gcp_ref_full(char **seg, int n, struct gcp_ref *r, struct err *e)
{
	int i = 2;

	if (n >= 4 && !strcmp(seg[2], "locations")) {
		if (gcp_dup(&r->location, seg[3], e) < 0)
			return -1;
		i = 4;
	}
	if (n != i + 2 && !(n == i + 4 && !strcmp(seg[i + 2], "versions")))
		return -1;
	if (strcmp(seg[i], "secrets"))
		return -1;
	if (gcp_dup(&r->project, seg[1], e) < 0 ||
	    gcp_dup(&r->secret, seg[i + 1], e) < 0)
		return -1;
	if (n == i + 4 && gcp_dup(&r->version, seg[i + 3], e) < 0)
		return -1;
	return 0;
}

#define GCP_REF_USAGE \
	"gcp://[PROJECT/]SECRET or gcp://projects/P/[locations/L/]secrets/S[/versions/V]"

/* The locator's parts, unchecked; -1 without e->code set when the shape
 * is wrong. */
static int gcp_ref_split(const char *locator, struct gcp_ref *r, struct err *e)
{
	char *copy = strdup(locator), *seg[8];
	int n, rc = -1;

	if (!copy)
		return err_oom(e);
	n = gcp_split(copy, seg, 8);
	if (n == 1)
		rc = gcp_dup(&r->secret, seg[0], e);
	else if (n == 2 && strcmp(seg[0], "projects"))
		rc = gcp_dup(&r->project, seg[0], e) < 0 ? -1 :
			gcp_dup(&r->secret, seg[1], e);
	else if (n >= 4 && !strcmp(seg[0], "projects"))
		rc = gcp_ref_full(seg, n, r, e);
	free(copy);
	return rc;
}

/* The parts of a reference, each checked. */
static int gcp_ref_check(const struct gcp_ref *r, const char *locator,
			 struct err *e)
{
	if (r->project && !gcp_project_valid(r->project, strlen(r->project)))
		return err_set(e, ERR_INVALID,
			       "'%.64s' is not a GCP project id or number", r->project);
	if (r->location && !gcp_location_valid(r->location, strlen(r->location)))
		return err_set(e, ERR_INVALID, "'%.64s' is not a GCP location",
			       r->location);
	if (!gcp_secret_valid(r->secret, strlen(r->secret)))
		return err_set(e, ERR_INVALID,
			       "'%.64s' is not a Secret Manager secret id: 1 to %d letters, digits, '_' and '-' (in %.100s)",
			       r->secret, GCP_SECRET_MAX, locator);
	if (r->version && !gcp_version_valid(r->version))
		return err_set(e, ERR_INVALID,
			       "version '%.64s' is not a version number, latest or an alias",
			       r->version);
	return 0;
}

static int gcp_ref_parse(const char *locator, const char *params,
			 struct gcp_ref *r, struct err *e)
{
	struct kit_param p[] = { { "version", NULL } };

	memset(r, 0, sizeof(*r));
	if (kit_params_parse(params, p, 1, "version=N|latest|ALIAS", e) < 0)
		return -1;
	err_clear(e);
	if (gcp_ref_split(locator, r, e) < 0) {
		if (e->code == ERR_OK)
			err_set(e, ERR_INVALID, "'%.100s' is not a secret: write "
				GCP_REF_USAGE, locator);
		goto fail;
	}
	if (p[0].value && r->version) {
		err_set(e, ERR_INVALID,
			"the version is named twice: in the name and in ?version=");
		goto fail;
	}
	if (p[0].value) {
		r->version = p[0].value;
		p[0].value = NULL;
	}
	if (gcp_ref_check(r, locator, e) < 0)
		goto fail;
	return 0;
fail:
	kit_params_free(p, 1);
	gcp_ref_free(r);
	return -1;
}

/* provider_ops.check: references are checked when the config loads. */
static int gcp_check(const char *locator, const char *params, struct err *e)
{
	struct gcp_ref r;

	if (gcp_ref_parse(locator, params, &r, e) < 0)
		return -1;
	gcp_ref_free(&r);
	return 0;
}

/* ---- errors (pure) ---- */

struct gcp_errinfo {
	char status[64];
	char message[KIT_TEXT_MAX + 8];
};

/* {"error":{"code","message","status"}}; false when the body is not that
 * (a proxy's page, garbage). */
static bool gcp_errinfo_get(const struct http_response *rs,
			    struct gcp_errinfo *out)
{
	json_t *root = http_json_parse(rs);
	json_t *err = json_object_get(root, "error");
	json_t *status = json_object_get(err, "status");
	bool ok = json_is_object(err) && json_is_string(status);

	memset(out, 0, sizeof(*out));
	if (ok) {
		kit_text_clean(json_string_value(status), out->status,
			       sizeof(out->status));
		kit_text_clean(json_string_value(json_object_get(err, "message")),
			       out->message, sizeof(out->message));
	}
	json_decref(root);
	return ok;
}

static enum err_code gcp_status_code(const char *status, long http)
{
	static const struct {
		const char *status;
		enum err_code code;
	} map[] = {
		{ "NOT_FOUND", ERR_NOTFOUND },
		{ "PERMISSION_DENIED", ERR_ACCESS },
		{ "UNAUTHENTICATED", ERR_ACCESS },
		{ "FAILED_PRECONDITION", ERR_ACCESS },
		{ "ALREADY_EXISTS", ERR_EXISTS },
		{ "INVALID_ARGUMENT", ERR_INVALID },
		{ "OUT_OF_RANGE", ERR_INVALID },
		{ "ABORTED", ERR_CONFLICT },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(*map); i++)
		if (!strcmp(status, map[i].status))
			return http_answer_code(http, map[i].code);
	return http_answer_code(http, ERR_PROVIDER);
}

int gcp_error_map(const struct http_response *rs, const char *service,
		  const char *what, const char *identity, struct err *e)
{
	struct gcp_errinfo ei;
	long st = rs->status;
	enum err_code code;

	if (!gcp_errinfo_get(rs, &ei)) {
		code = http_answer_code(st, ERR_PROVIDER);
		if (code == ERR_ACCESS)
			return err_set(e, code, "%s: access denied by %s (HTTP %ld); identity: %s",
				       what, service, st, identity);
		return err_set(e, code, "%s: HTTP %ld (%s) from %s, not a Google API error",
			       what, st, http_status_text(st), service);
	}
	code = gcp_status_code(ei.status, st);
	if (!strcmp(ei.status, "FAILED_PRECONDITION"))
		return err_set(e, code,
			       "%s: the version cannot be used (FAILED_PRECONDITION: %s); enable it or name another version",
			       what, ei.message);
	if (code == ERR_ACCESS)
		return err_set(e, code, "%s: %s by %s (HTTP %ld %s: %s); identity: %s",
			       what, st == 401 ? "credentials refused" :
			       "access denied", service, st, ei.status,
			       ei.message, identity);
	if (code == ERR_NOTFOUND)
		return err_set(e, code, "%s: not found (%s)", what, ei.message);
	return err_set(e, code, "%s: %s error %s (HTTP %ld): %s", what, service,
		       ei.status, st, ei.message);
}

static int gcp_garbage(struct err *e, const char *what, const char *why)
{
	return err_set(e, ERR_PROVIDER, "garbage from Secret Manager: %s: %s",
		       what, why);
}

/* ---- answers (pure) ---- */

/* A CRC-32C as Google writes it: a decimal string (an int64 in JSON), or a
 * number. -1 when it is neither. */
static long long gcp_crc_value(json_t *j)
{
	const char *s = json_string_value(j);
	unsigned long long v;
	char *end;

	if (json_is_integer(j))
		return json_integer_value(j) >= 0 &&
			json_integer_value(j) <= 0xffffffffLL ?
			json_integer_value(j) : -1;
	if (!s || !isdigit((unsigned char)s[0]) || strlen(s) > 10)
		return -1;
	v = strtoull(s, &end, 10);
	return *end || v > 0xffffffffULL ? -1 : (long long)v;
}

/* The version number at the end of a version's name
 * (projects/N/secrets/S/versions/3). */
static bool gcp_name_version(json_t *name, char *out, size_t size)
{
	const char *s = json_string_value(name), *v;
	size_t len;

	if (!s || json_string_length(name) != strlen(s))
		return false;
	v = strstr(s, "/versions/");
	if (!v)
		return false;
	v += 10;
	len = strlen(v);
	if (len == 0 || len >= size || strspn(v, "0123456789") != len)
		return false;
	memcpy(out, v, len + 1);
	return true;
}

/* An :access answer (200) into out: the payload decoded and its CRC-32C
 * checked (*corrupt: it did not match), then as a map. *obj (obj may be
 * NULL) gets a JSON object payload. */
static int gcp_access_parse(const struct http_response *rs, const char *what,
			    struct entry *out, json_t **obj, bool *corrupt,
			    struct err *e)
{
	json_t *root = http_json_parse(rs);
	json_t *payload = json_object_get(root, "payload");
	json_t *data = json_object_get(payload, "data");
	json_t *jcrc = json_object_get(payload, "dataCrc32c");
	long long crc = jcrc ? gcp_crc_value(jcrc) : -2;
	size_t b64len = json_string_length(data), max = b64len / 4 * 3 + 3, len = 0;
	unsigned char *bin = NULL;
	int rc = -1;

	*corrupt = false;
	if (!json_is_object(root) ||
	    !gcp_name_version(json_object_get(root, "name"), out->version,
			      sizeof(out->version))) {
		gcp_garbage(e, what, "no version name");
		goto out;
	}
	if (!json_is_object(payload) || (data && !json_is_string(data)) ||
	    crc == -1) {
		gcp_garbage(e, what, "no payload with data (and a dataCrc32c number)");
		goto out;
	}
	bin = malloc(max);
	if (!bin) {
		err_oom(e);
		goto out;
	}
	if (b64len && sodium_base642bin(bin, max, json_string_value(data), b64len,
					NULL, &len, NULL,
					sodium_base64_VARIANT_ORIGINAL) < 0) {
		gcp_garbage(e, what, "the payload is not base64");
		goto out;
	}
	/* versions added before Google kept checksums come without one */
	if (crc >= 0 && crc32c_update(0, bin, len) != (uint32_t)crc) {
		*corrupt = true;
		err_set(e, ERR_PROVIDER,
			"%s: version %s: the payload does not match its CRC32C checksum (corrupted on the way); not served",
			what, out->version);
		goto out;
	}
	rc = kit_value_map((const char *)bin, len, "gcp", &out->map, obj, e);
out:
	if (bin)
		secmem_free(bin, max);
	if (rc < 0)
		entry_free(out);
	json_decref(root);
	return rc;
}

/* The addVersion body: {"payload":{"data":B64,"dataCrc32c":"N"}}, built in
 * wiped memory. */
static int gcp_payload_body(const void *val, size_t len, struct secbuf *out,
			    struct err *e)
{
	size_t b64max = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char crc[16];
	int rc = 0;

	snprintf(crc, sizeof(crc), "%u", crc32c_update(0, val, len));
	secbuf_clear(out);
	if (secbuf_puts(out, "{\"payload\":{\"data\":\"") < 0 ||
	    secbuf_reserve(out, b64max) < 0)
		return err_oom(e);
	sodium_bin2base64(out->data + out->len, b64max, val, len,
			  sodium_base64_VARIANT_ORIGINAL);
	out->len += strlen(out->data + out->len);
	rc |= secbuf_puts(out, "\",\"dataCrc32c\":\"");
	rc |= secbuf_puts(out, crc);
	rc |= secbuf_puts(out, "\"}}");
	return rc ? err_oom(e) : 0;
}

/* The version number of an addVersion answer (a SecretVersion). */
static int gcp_added_parse(const struct http_response *rs, const char *what,
			   char version[PROVIDER_VERSION_MAX], struct err *e)
{
	json_t *root = http_json_parse(rs);
	bool ok = gcp_name_version(json_object_get(root, "name"), version,
				   PROVIDER_VERSION_MAX);

	json_decref(root);
	if (ok)
		return 0;
	gcp_garbage(e, what, "no version name in the answer");
	e->code = ERR_UNSURE;	/* answered 2xx: it most likely landed */
	return -1;
}

/* The secret ids of a list page (names projects/P/secrets/S) with prefix
 * into out, and the nextPageToken (malloc'd, NULL at the end). */
static int gcp_list_page(const struct http_response *rs, const char *what,
			 const char *prefix, struct strv *out, char **next,
			 struct err *e)
{
	json_t *root = http_json_parse(rs), *secrets = json_object_get(root, "secrets");
	json_t *tok = json_object_get(root, "nextPageToken"), *it;
	size_t i;
	int rc = 0;

	*next = NULL;
	if (!json_is_object(root) || (secrets && !json_is_array(secrets)) ||
	    (tok && !json_is_string(tok))) {
		json_decref(root);
		return gcp_garbage(e, what, "not a secret list");
	}
	json_array_foreach(secrets, i, it) {
		const char *name = json_string_value(json_object_get(it, "name"));
		const char *id = name ? strrchr(name, '/') : NULL;

		if (!id || !gcp_secret_valid(id + 1, strlen(id + 1)) ||
		    strncmp(id + 1, prefix, strlen(prefix)))
			continue;
		if (strv_push(out, id + 1) < 0) {
			rc = err_oom(e);
			break;
		}
	}
	if (rc == 0 && json_string_length(tok) > 0) {
		*next = strdup(json_string_value(tok));
		if (!*next)
			rc = err_oom(e);
	}
	json_decref(root);
	return rc;
}

/* ---- requests ---- */

/* Start an operation on r's secret: its parent and location. */
static int gcp_op_start(struct gcp_op *op, struct gcp *g,
			const struct gcp_ref *r, const char *what,
			struct err *e)
{
	char project[GCP_PROJECT_MAX + 1];
	const char *p = r ? r->project : NULL;

	op->g = g;
	op->what = what;
	op->deadline = clock_now_ms() + g->timeout_ms;
	op->location = r && r->location ? r->location : g->location;
	if (!p)
		p = g->project;
	if (!p) {
		if (gcp_auth_project(g->auth, op->deadline, project,
				     sizeof(project), e) < 0)
			return err_prefix(e, "%s: ", what);
		p = project;
	}
	if (op->location)
		snprintf(op->parent, sizeof(op->parent), "projects/%s/locations/%s",
			 p, op->location);
	else
		snprintf(op->parent, sizeof(op->parent), "projects/%s", p);
	return 0;
}

/* {endpoint}/v1/{parent}{path}, malloc'd. Names are checked: no escaping
 * is needed. */
static char *gcp_url(const struct gcp_op *op, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static char *gcp_url(const struct gcp_op *op, const char *fmt, ...)
{
	char *tail = NULL, *url = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&tail, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	if (op->g->endpoint)
		n = asprintf(&url, "%s/v1/%s%s", op->g->endpoint, op->parent, tail);
	else if (op->location)
		n = asprintf(&url, "https://secretmanager.%s.rep.googleapis.com/v1/%s%s",
			     op->location, op->parent, tail);
	else
		n = asprintf(&url, GCP_GLOBAL_ENDPOINT "/v1/%s%s", op->parent, tail);
	free(tail);
	return n < 0 ? NULL : url;
}

struct gcp_call {
	struct gcp_op *op;
	uint64_t gen;
};

/* The HTTP layer's auth hook: a bearer token on every attempt. */
static int gcp_auth_hook(void *ctx, struct http_auth *a, struct err *e)
{
	struct gcp_call *c = ctx;
	struct secbuf tok = SECBUF_INIT, line = SECBUF_INIT;
	int rc = gcp_auth_token(c->op->g->auth, c->op->deadline, &tok, &c->gen, e);

	if (rc == 0 && (secbuf_puts(&line, "Bearer ") < 0 ||
			secbuf_append(&line, tok.data, tok.len) < 0 ||
			http_auth_header(a, "Authorization", line.data) < 0))
		rc = err_oom(e);
	secbuf_free(&tok);
	secbuf_free(&line);
	return rc;
}

/* Refusals are logged too, since a cache serving stale values hides
 * them; once a minute is enough. */
static void gcp_auth_log(struct gcp *g, const struct err *e)
{
	if (kit_once_per(&g->auth_logged_ms, GCP_AUTH_LOG_MS))
		log_warn("gcp %s: %s", g->name, e->msg);
}

/* One request with a token; a 401 is tried once more with a new one. rs
 * gets the answer, whatever its status. */
static int gcp_call(struct gcp_op *op, const char *method, const char *url,
		    const struct secbuf *body, struct http_response *rs,
		    struct err *e)
{
	struct gcp_call c = { op, 0 };
	struct http_request rq = {
		.method = method, .url = url, .body_secret = true,
		.deadline_ms = op->deadline, .auth = gcp_auth_hook, .ctx = &c,
	};

	if (body) {
		rq.body = body->data ? body->data : "";
		rq.body_len = body->len;
	}
	for (int attempt = 0;; attempt++) {
		if (http_request(op->g->http, &rq, rs, e) < 0) {
			err_prefix(e, "%s: ", op->what);
			if (e->code == ERR_ACCESS)
				gcp_auth_log(op->g, e);
			return -1;
		}
		if (rs->status != 401 || attempt > 0 ||
		    !gcp_auth_reject(op->g->auth, c.gen))
			return 0;
		log_debug("gcp %s: Secret Manager refused the token of %s; getting another",
			  op->g->name, gcp_auth_identity(op->g->auth));
	}
}

/* gcp_call, then the error of any answer but 200. */
static int gcp_call_ok(struct gcp_op *op, const char *method, const char *url,
		       const struct secbuf *body, struct http_response *rs,
		       struct err *e)
{
	if (!url)
		return err_oom(e);
	if (gcp_call(op, method, url, body, rs, e) < 0)
		return -1;
	if (rs->status == 200)
		return 0;
	gcp_error_map(rs, "Secret Manager", op->what,
		      gcp_auth_identity(op->g->auth), e);
	if (e->code == ERR_ACCESS)
		gcp_auth_log(op->g, e);
	return -1;
}

/* Access a version of the secret into out (*obj: a JSON object payload). */
static int gcp_access(struct gcp_op *op, const char *secret,
		      const char *version, struct entry *out, json_t **obj,
		      struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	char *url = gcp_url(op, "/secrets/%s/versions/%s:access", secret,
			    version ? version : "latest");
	int rc = gcp_call_ok(op, "GET", url, NULL, &rs, e);
	bool corrupt = false;

	if (rc == 0)
		rc = gcp_access_parse(&rs, op->what, out, obj, &corrupt, e);
	/* every time: corruption on the way is worth more than a warning */
	if (corrupt)
		log_error("gcp %s: %s", op->g->name, e->msg);
	http_response_free(&rs);
	free(url);
	return rc;
}

static int gcp_fetch(void *state, const char *locator, const char *params,
		     struct entry *out, struct err *e)
{
	struct gcp_ref r;
	struct gcp_op op;
	int rc;

	if (gcp_ref_parse(locator, params, &r, e) < 0)
		return -1;
	rc = gcp_op_start(&op, state, &r, locator, e);
	if (rc == 0)
		rc = gcp_access(&op, r.secret, r.version, out, NULL, e);
	gcp_ref_free(&r);
	return rc;
}

/* ---- writes ---- */

/* POST .../secrets?secretId=S; one that exists already is fine. */
static int gcp_create_secret(struct gcp_op *op, const char *secret,
			     struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf body = SECBUF_INIT;
	json_t *req = json_object();
	char *url = gcp_url(op, "/secrets?secretId=%s", secret);
	int rc;

	/* regional secrets live in their location: no replication */
	if (!req || (!op->location &&
		     json_object_set(req, "replication", op->g->replication) < 0) ||
	    http_json_dump(req, &body) < 0)
		rc = err_oom(e);
	else
		rc = gcp_call_ok(op, "POST", url, &body, &rs, e);
	if (rc < 0 && e->code == ERR_EXISTS) {
		err_clear(e);
		rc = 0;
	}
	if (rc == 0)
		log_info("gcp %s: created secret %s/secrets/%s", op->g->name,
			 op->parent, secret);
	json_decref(req);
	secbuf_free(&body);
	http_response_free(&rs);
	free(url);
	return rc;
}

/* POST .../secrets/S:addVersion; the new version's number into version. */
static int gcp_add_version(struct gcp_op *op, const char *secret,
			   const void *val, size_t len,
			   char version[PROVIDER_VERSION_MAX], struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf body = SECBUF_INIT;
	char *url = NULL;
	int rc;

	if (len > GCP_PAYLOAD_MAX)
		return err_set(e, ERR_TOOBIG,
			       "%s: %zu bytes; a Secret Manager payload holds at most %d",
			       op->what, len, GCP_PAYLOAD_MAX);
	url = gcp_url(op, "/secrets/%s:addVersion", secret);
	rc = gcp_payload_body(val, len, &body, e);
	if (rc == 0)
		rc = gcp_call_ok(op, "POST", url, &body, &rs, e);
	if (rc == 0)
		rc = gcp_added_parse(&rs, op->what, version, e);
	secbuf_free(&body);
	http_response_free(&rs);
	free(url);
	return rc;
}

/* What kit_store_nocas's callbacks share for one store(). */
struct gcp_store {
	struct gcp_op *op;
	const char *secret;
	bool have_first;
	json_t *cur;		/* the first read's JSON object, or NULL */
};

static int gcp_store_read(void *ctx, struct entry *out, struct err *e)
{
	struct gcp_store *s = ctx;
	bool first = !s->have_first;

	s->have_first = true;
	return gcp_access(s->op, s->secret, NULL, out, first ? &s->cur : NULL, e);
}

/* The payload of m: a single value as it is, else a JSON object keeping
 * the JSON types of unchanged values. */
static int gcp_payload_of(const struct gcp_store *s, const struct kvmap *m,
			  struct secbuf *out, struct err *e)
{
	json_t *obj = NULL;
	int rc;

	if (m->n == 1 && m->items[0].key[0] == '\0')
		return secbuf_set(out, m->items[0].val, m->items[0].len) < 0 ?
			err_oom(e) : 0;
	if (http_json_from_map(m, s->cur, s->secret, &obj, e) < 0)
		return -1;
	rc = http_json_dump(obj, out) < 0 ? err_oom(e) : 0;
	json_decref(obj);
	return rc;
}

static int gcp_store_write(void *ctx, const struct kvmap *m, bool create,
			   char version[PROVIDER_VERSION_MAX], struct err *e)
{
	struct gcp_store *s = ctx;
	struct secbuf val = SECBUF_INIT;
	int rc = gcp_payload_of(s, m, &val, e);

	if (rc == 0 && create)
		rc = gcp_create_secret(s->op, s->secret, e);
	if (rc == 0)
		rc = gcp_add_version(s->op, s->secret, val.data ? val.data : "",
				     val.len, version, e);
	secbuf_free(&val);
	return rc;
}

/* Secret Manager has no compare-and-set on versions: kit_store_nocas
 * reads before and after. */
static int gcp_store(void *state, const char *locator, const char *params,
		     const struct kvmap *m, const char *expect,
		     char new_version[PROVIDER_VERSION_MAX], struct err *e)
{
	struct gcp_op op;
	struct gcp_ref r;
	struct gcp_store s = { .op = &op };
	struct kit_nocas n = { .ctx = &s, .what = locator,
			       .read = gcp_store_read, .write = gcp_store_write };
	int rc;

	err_clear(e);
	if (gcp_ref_parse(locator, params, &r, e) < 0)
		return -1;
	if (r.version) {
		gcp_ref_free(&r);
		return err_set(e, ERR_READONLY, "%s: a pinned version is read-only",
			       locator);
	}
	s.secret = r.secret;
	rc = gcp_op_start(&op, state, &r, locator, e);
	n.deadline_ms = op.deadline;
	if (rc == 0)
		rc = kit_store_nocas(&n, m, expect, new_version, e);
	json_decref(s.cur);
	gcp_ref_free(&r);
	return rc;
}

/* ---- list ---- */

static int gcp_list(void *state, const char *prefix, struct strv *out,
		    struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct gcp_op op;
	char *token = NULL, *url = NULL;
	int rc = gcp_op_start(&op, state, NULL, prefix[0] ? prefix : "list", e);

	for (int page = 0; rc == 0; page++) {
		char *esc = token ? curl_easy_escape(NULL, token, 0) : NULL;

		if (token && !esc) {
			rc = err_oom(e);
			break;
		}
		if (page >= GCP_LIST_PAGES_MAX) {
			rc = gcp_garbage(e, op.what, "too many list pages");
			break;
		}
		free(url);
		url = gcp_url(&op, "/secrets?pageSize=%d%s%s", GCP_PAGE_SIZE,
			      esc ? "&pageToken=" : "", esc ? esc : "");
		curl_free(esc);
		free(token);
		token = NULL;
		rc = gcp_call_ok(&op, "GET", url, NULL, &rs, e);
		if (rc == 0)
			rc = gcp_list_page(&rs, op.what, prefix, out, &token, e);
		if (rc < 0 || !token)
			break;
	}
	free(token);
	free(url);
	http_response_free(&rs);
	if (rc < 0)
		strv_free(out);
	else
		strv_sort_unique(out);
	return rc;
}

/* ---- create ---- */

static const char *const gcp_options[] = {
	"project", "location", "endpoint", "replication",
	"credentials_file", "token_uri", "sts_endpoint", "metadata_host",
	"ca_file", "ca_path", "client_cert", "client_key", "tls_skip_verify",
	NULL
};

static void gcp_destroy(void *state)
{
	struct gcp *g = state;

	if (!g)
		return;
	gcp_auth_free(g->auth);
	http_client_free(g->http);
	json_decref(g->replication);
	free(g->name);
	free(g->endpoint);
	free(g->project);
	free(g->location);
	free(g);
}

/* replication = automatic | LOC[,LOC...] (user-managed replicas). */
static int gcp_parse_replication(struct gcp *g, const struct provider_conf *conf,
				 struct err *e)
{
	const char *s = kit_opt(conf, "replication", NULL, "automatic");
	json_t *replicas, *um;
	char *copy, *save = NULL;
	int rc = 0;

	if (!strcmp(s, "automatic")) {
		g->replication = json_pack("{s:{}}", "automatic");
		return g->replication ? 0 : err_oom(e);
	}
	replicas = json_array();
	um = json_pack("{s:{s:o}}", "userManaged", "replicas", replicas);
	g->replication = um;
	copy = strdup(s);
	if (!um || !copy) {
		free(copy);
		return err_oom(e);
	}
	for (char *t = strtok_r(copy, ", ", &save); t && rc == 0;
	     t = strtok_r(NULL, ", ", &save)) {
		if (!gcp_location_valid(t, strlen(t)))
			rc = err_set(e, ERR_INVALID,
				     "option replication: '%.64s' is not a location; write automatic or LOCATION[,LOCATION...]",
				     t);
		else if (json_array_append_new(replicas,
					       json_pack("{s:s}", "location", t)) < 0)
			rc = err_oom(e);
	}
	if (rc == 0 && json_array_size(replicas) == 0)
		rc = err_set(e, ERR_INVALID,
			     "option replication: automatic or LOCATION[,LOCATION...]");
	free(copy);
	return rc;
}

static int gcp_parse_names(struct gcp *g, const struct provider_conf *conf,
			   struct err *e)
{
	const char *project = kit_opt(conf, "project", "GOOGLE_CLOUD_PROJECT", NULL);
	const char *location = kit_opt(conf, "location", NULL, NULL);
	const char *endpoint = kit_opt(conf, "endpoint", NULL, NULL);
	char what[160];

	snprintf(what, sizeof(what), "gcp %s", conf->name);
	if (project && !gcp_project_valid(project, strlen(project)))
		return err_set(e, ERR_INVALID,
			       "option project: '%.64s' is not a project id or number",
			       project);
	if (location && !gcp_location_valid(location, strlen(location)))
		return err_set(e, ERR_INVALID,
			       "option location: '%.64s' is not a GCP location (europe-west1)",
			       location);
	if (endpoint && kit_opt_url("endpoint", endpoint, what, &g->endpoint, e) < 0)
		return -1;
	if (project && gcp_dup(&g->project, project, e) < 0)
		return -1;
	if (location && gcp_dup(&g->location, location, e) < 0)
		return -1;
	return 0;
}

static int gcp_create(const struct provider_conf *conf, void **state,
		      struct err *e)
{
	struct http_client_conf hc = { .name = conf->name };
	struct gcp *g = calloc(1, sizeof(*g));
	char what[160];

	if (!g)
		return err_oom(e);
	snprintf(what, sizeof(what), "gcp %s", conf->name);
	if (sodium_init() < 0) {
		err_set(e, ERR_PROVIDER, "libsodium failed to start");
		goto fail;
	}
	g->timeout_ms = conf->request_timeout_ms > 0 ?
		conf->request_timeout_ms : HTTP_TIMEOUT_DEFAULT_MS;
	if (gcp_dup(&g->name, conf->name, e) < 0 ||
	    gcp_parse_names(g, conf, e) < 0 ||
	    gcp_parse_replication(g, conf, e) < 0 ||
	    kit_opt_tls(conf, NULL, what, &hc, e) < 0)
		goto fail;
	hc.timeout_ms = g->timeout_ms;
	if (http_client_new(&hc, &g->http, e) < 0 ||
	    gcp_auth_new(conf, g->http, &g->auth, e) < 0)
		goto fail;
	*state = g;
	return 0;
fail:
	gcp_destroy(g);
	return -1;
}

const struct provider_ops gcp_provider_ops = {
	.type = "gcp-secretmanager",
	.options = gcp_options,
	/* no PROVIDER_CAP_CAS: see gcp_store */
	.caps = PROVIDER_CAP_WRITE | PROVIDER_CAP_LIST,
	.create = gcp_create,
	.destroy = gcp_destroy,
	.check = gcp_check,
	.fetch = gcp_fetch,
	.store = gcp_store,
	.list = gcp_list,
};
