/* gcp_auth.c - Application Default Credentials for the GCP Secret Manager
 * provider, in the order of Google's client libraries:
 *
 *   1. the file of credentials_file, else GOOGLE_APPLICATION_CREDENTIALS
 *      (it must exist);
 *   2. gcloud's file: $CLOUDSDK_CONFIG/application_default_credentials.json,
 *      else ~/.config/gcloud/application_default_credentials.json (when
 *      it exists);
 *   3. the metadata server: GET http://metadata.google.internal (or
 *      metadata_host / GCE_METADATA_HOST) /computeMetadata/v1/instance/
 *      service-accounts/default/token with Metadata-Flavor: Google, and
 *      the answer must carry that header too (anything else is not a
 *      metadata server).
 *
 * A file's "type" picks the flow:
 *   - service_account: an RS256 JWT (iss = client_email, scope =
 *     cloud-platform, aud = token_uri, exp = iat + 3600) signed with the
 *     private_key by OpenSSL's libcrypto, POSTed to token_uri as
 *     grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer;
 *   - authorized_user (gcloud auth application-default login):
 *     grant_type=refresh_token with client_id, client_secret and
 *     refresh_token;
 *   - external_account (workload identity federation): a subject token
 *     from credential_source (a file, or a URL with headers; format text,
 *     or json with subject_token_field_name) exchanged at the STS
 *     token_url (RFC 8693 token exchange for an access_token with the
 *     audience and subject_token_type of the file), then, with
 *     service_account_impersonation_url, exchanged again for the service
 *     account's token (IAM Credentials generateAccessToken);
 *   - impersonated_service_account: the source_credentials (a
 *     service_account or authorized_user) get a token, which
 *     generateAccessToken turns into the target's (with delegates).
 * token_uri and sts_endpoint options replace the endpoints a file names
 * (tests, private endpoints).
 *
 * Files holding secrets (all but external_account, which names where its
 * subject token is) are refused when group or others may read them. The
 * file is read once at create() for its type and names, and again at
 * every token request for its secrets, so a rotated key is picked up and
 * the secrets stay in memory only while a token is made. Tokens are
 * cached in a kit_token: refreshed 5 minutes before they expire, one
 * request at a time.
 */
#include "gcp.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../base/clock.h"
#include "../base/log.h"
#include "kit.h"

#define GCA_TOKEN_URI "https://oauth2.googleapis.com/token"
#define GCA_METADATA_HOST "metadata.google.internal"
#define GCA_MD_TOKEN "/computeMetadata/v1/instance/service-accounts/default/token"
#define GCA_MD_PROJECT "/computeMetadata/v1/project/project-id"
#define GCA_ADC_NAME "application_default_credentials.json"
#define GCA_JWT_BEARER "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define GCA_TOKEN_EXCHANGE "urn:ietf:params:oauth:grant-type:token-exchange"
#define GCA_ACCESS_TOKEN "urn:ietf:params:oauth:token-type:access_token"
#define GCA_FILE_MAX (64 * 1024)
#define GCA_JWT_LIFE 3600
#define GCA_FORM "application/x-www-form-urlencoded"

enum gca_kind {
	GCA_SERVICE_ACCOUNT,
	GCA_AUTHORIZED_USER,
	GCA_EXTERNAL,
	GCA_IMPERSONATED,
	GCA_METADATA,
};

struct gcp_auth {
	char *name;
	struct http_client *http;
	enum gca_kind kind;
	char *file;		/* the credentials file; NULL: metadata */
	char *token_uri;	/* option token_uri; NULL: the file's */
	char *sts_url;		/* option sts_endpoint; NULL: the file's */
	char *metadata;		/* http://HOST */
	char *file_project;	/* a service account key's project_id */
	char identity[320];
	char log_what[400];	/* "gcp NAME: IDENTITY" */
	struct kit_token token;

	pthread_mutex_t plock;	/* guards md_project */
	char *md_project;	/* the metadata server's, once asked */
};

/* What one token request works with. */
struct gca_req {
	struct gcp_auth *a;
	int64_t deadline;
};

/* ---- pure helpers ---- */

/* The text of member key of obj, or NULL when it is not a string without
 * NUL bytes. */
static const char *gca_str(json_t *obj, const char *key)
{
	json_t *j = json_object_get(obj, key);
	const char *s = json_string_value(j);

	return s && json_string_length(j) == strlen(s) ? s : NULL;
}

static int gca_b64url(struct secbuf *out, const void *p, size_t n)
{
	size_t max = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);

	if (secbuf_reserve(out, max) < 0)
		return -1;
	sodium_bin2base64(out->data + out->len, max, p, n,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	out->len += strlen(out->data + out->len);
	return 0;
}

/* The JSON text of j, base64url-encoded, appended to out. */
static int gca_b64url_json(struct secbuf *out, const json_t *j)
{
	struct secbuf txt = SECBUF_INIT;
	int rc = http_json_dump(j, &txt);

	if (rc == 0)
		rc = gca_b64url(out, txt.data, txt.len);
	secbuf_free(&txt);
	return rc;
}

/* Sign the len bytes at data with the PEM private key (RS256) into
 * *sig (malloc'd, *siglen). OpenSSL's error text is never shown. */
static int gca_rs256(const char *pem, size_t pem_len, const void *data,
		     size_t len, unsigned char **sig, size_t *siglen,
		     struct err *e)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -1;

	*sig = NULL;
	if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
		err_set(e, ERR_ACCESS, "private_key is not an RSA private key in PEM");
		goto out;
	}
	if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, NULL, siglen, data, len) != 1 ||
	    !(*sig = malloc(*siglen)) ||
	    EVP_DigestSign(ctx, *sig, siglen, data, len) != 1) {
		err_set(e, ERR_PROVIDER, "signing the JWT assertion failed");
		goto out;
	}
	rc = 0;
out:
	if (rc < 0) {
		free(*sig);
		*sig = NULL;
	}
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	BIO_free(bio);
	return rc;
}

/* A service account's assertion: base64url(header).base64url(claims).
 * base64url(RS256 signature), into out (wiped memory). kid may be NULL. */
static int gca_jwt_build(const char *pem, size_t pem_len, const char *kid,
			 const char *iss, const char *aud, time_t iat,
			 struct secbuf *out, struct err *e)
{
	json_t *hdr = json_pack("{s:s,s:s}", "alg", "RS256", "typ", "JWT");
	json_t *claims = json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", iss,
				   "scope", GCP_SCOPE, "aud", aud,
				   "iat", (json_int_t)iat,
				   "exp", (json_int_t)(iat + GCA_JWT_LIFE));
	unsigned char *sig = NULL;
	size_t siglen = 0;
	int rc = -1;

	secbuf_clear(out);
	if (!hdr || !claims || (kid && json_object_set_new(hdr, "kid",
							   json_string(kid)) < 0) ||
	    gca_b64url_json(out, hdr) < 0 || secbuf_putc(out, '.') < 0 ||
	    gca_b64url_json(out, claims) < 0) {
		err_oom(e);
		goto out;
	}
	if (gca_rs256(pem, pem_len, out->data, out->len, &sig, &siglen, e) < 0)
		goto out;
	if (secbuf_putc(out, '.') < 0 || gca_b64url(out, sig, siglen) < 0) {
		err_oom(e);
		goto out;
	}
	rc = 0;
out:
	if (rc < 0)
		secbuf_clear(out);
	free(sig);
	json_decref(hdr);
	json_decref(claims);
	return rc;
}

/* A generateAccessToken answer (200): {"accessToken","expireTime"}. */
static int gca_iam_parse(const struct http_response *rs, const char *what,
			 struct secbuf *tok, time_t *expires, struct err *e)
{
	json_t *root = http_json_parse(rs);
	json_t *at = json_object_get(root, "accessToken");
	long long exp = clock_rfc3339_parse(gca_str(root, "expireTime"));
	int rc = -1;

	secbuf_clear(tok);
	if (!json_is_string(at) || json_string_length(at) == 0 ||
	    kit_has_ctl(json_string_value(at), json_string_length(at)) ||
	    strchr(json_string_value(at), ' ') || exp <= 0)
		err_set(e, ERR_PROVIDER,
			"garbage from %s: no accessToken with an expireTime", what);
	else if (secbuf_set(tok, json_string_value(at), json_string_length(at)) < 0)
		err_oom(e);
	else
		rc = 0;
	*expires = (time_t)exp;
	json_decref(root);
	return rc;
}

/* The service account of an impersonation URL
 * (.../serviceAccounts/EMAIL:generateAccessToken), for messages. */
static void gca_sa_of_url(const char *url, char *out, size_t size)
{
	const char *s = url ? strstr(url, "/serviceAccounts/") : NULL;
	size_t len;

	out[0] = '\0';
	if (!s)
		return;
	s += 17;
	len = strcspn(s, ":/?");
	if (len < size && !kit_has_ctl(s, len))
		snprintf(out, size, "%.*s", (int)len, s);
}

/* ---- requests ---- */

/* POST a form body to url and parse the OAuth answer. */
static int gca_form_post(struct gca_req *r, const char *url, const char *what,
			 const struct secbuf *body, struct secbuf *tok,
			 time_t *expires, struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_request rq = {
		.method = "POST", .url = url, .content_type = GCA_FORM,
		.body = body->data, .body_len = body->len, .body_secret = true,
		.deadline_ms = r->deadline,
	};
	int rc = -1;

	if (http_request(r->a->http, &rq, &rs, e) == 0)
		rc = kit_token_parse(&rs, what, time(NULL), tok, expires, e);
	http_response_free(&rs);
	return rc;
}

static int gca_form(struct secbuf *b, const char *key, const char *val)
{
	return val ? kit_form_add(b, key, val, strlen(val)) : 0;
}

/* The token endpoint of a credentials object: the option, the file's,
 * else Google's. */
static const char *gca_token_uri(const struct gcp_auth *a, json_t *cred)
{
	const char *s = gca_str(cred, "token_uri");

	return a->token_uri ? a->token_uri : s ? s : GCA_TOKEN_URI;
}

/* service_account: a signed assertion for an access token. */
static int gca_service_account(struct gca_req *r, json_t *cred,
			       struct secbuf *tok, time_t *expires,
			       struct err *e)
{
	json_t *key = json_object_get(cred, "private_key");
	const char *email = gca_str(cred, "client_email");
	const char *uri = gca_token_uri(r->a, cred);
	struct secbuf jwt = SECBUF_INIT, body = SECBUF_INIT;
	int rc = -1;

	if (!json_is_string(key) || !email)
		return err_set(e, ERR_ACCESS,
			       "the service account key has no private_key or client_email");
	if (gca_jwt_build(json_string_value(key), json_string_length(key),
			  gca_str(cred, "private_key_id"), email, uri,
			  time(NULL), &jwt, e) < 0)
		goto out;
	if (gca_form(&body, "grant_type", GCA_JWT_BEARER) < 0 ||
	    kit_form_add(&body, "assertion", jwt.data, jwt.len) < 0) {
		err_oom(e);
		goto out;
	}
	rc = gca_form_post(r, uri, "the token endpoint", &body, tok, expires, e);
out:
	secbuf_free(&jwt);
	secbuf_free(&body);
	return rc;
}

/* authorized_user: the refresh token for an access token. */
static int gca_authorized_user(struct gca_req *r, json_t *cred,
			       struct secbuf *tok, time_t *expires,
			       struct err *e)
{
	const char *id = gca_str(cred, "client_id");
	const char *secret = gca_str(cred, "client_secret");
	const char *refresh = gca_str(cred, "refresh_token");
	struct secbuf body = SECBUF_INIT;
	int rc;

	if (!id || !secret || !refresh)
		return err_set(e, ERR_ACCESS,
			       "the authorized_user credentials lack client_id, client_secret or refresh_token");
	if (gca_form(&body, "grant_type", "refresh_token") < 0 ||
	    gca_form(&body, "client_id", id) < 0 ||
	    gca_form(&body, "client_secret", secret) < 0 ||
	    gca_form(&body, "refresh_token", refresh) < 0)
		rc = err_oom(e);
	else
		rc = gca_form_post(r, gca_token_uri(r->a, cred), "the token endpoint",
				   &body, tok, expires, e);
	secbuf_free(&body);
	return rc;
}

/* A subject token's text: the whole text, or with format json the string
 * at subject_token_field_name. */
static int gca_subject_extract(json_t *format, struct secbuf *raw,
			       struct secbuf *out, struct err *e)
{
	const char *type = gca_str(format, "type");
	const char *field = gca_str(format, "subject_token_field_name");
	json_t *root, *val;
	int rc;

	if (!type || !strcmp(type, "text")) {
		secbuf_trim(raw);
		rc = raw->len ? secbuf_set(out, raw->data, raw->len) : -2;
		return rc == -2 ? err_set(e, ERR_ACCESS, "the subject token is empty") :
			rc < 0 ? err_oom(e) : 0;
	}
	if (strcmp(type, "json") || !field)
		return err_set(e, ERR_ACCESS,
			       "credential_source.format: type text, or json with subject_token_field_name");
	root = json_loadb(raw->data ? raw->data : "", raw->len, 0, NULL);
	val = json_object_get(root, field);
	if (!json_is_string(val) || json_string_length(val) == 0)
		rc = err_set(e, ERR_ACCESS, "the subject token's JSON has no string %s",
			     field);
	else
		rc = secbuf_set(out, json_string_value(val),
				json_string_length(val)) < 0 ? err_oom(e) : 0;
	json_decref(root);
	return rc;
}

/* GET a URL-sourced subject token with the source's headers. */
static int gca_subject_url(struct gca_req *r, const char *url, json_t *headers,
			   struct secbuf *raw, struct err *e)
{
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_request rq = { .method = "GET", .url = url, .headers = &h,
				   .deadline_ms = r->deadline };
	const char *k;
	json_t *v;
	int rc = 0;

	json_object_foreach(headers, k, v) {
		if (!json_is_string(v) || kit_has_ctl(k, strlen(k)) ||
		    kit_has_ctl(json_string_value(v), json_string_length(v)))
			continue;
		if (http_headers_add(&h, k, json_string_value(v), true) < 0) {
			rc = err_oom(e);
			break;
		}
	}
	if (rc == 0 && http_request(r->a->http, &rq, &rs, e) < 0)
		rc = err_prefix(e, "the subject token URL: ");
	else if (rc == 0 && rs.status != 200)
		rc = err_set(e, http_answer_code(rs.status, ERR_PROVIDER),
			     "the subject token URL answered HTTP %ld (%s)",
			     rs.status, http_status_text(rs.status));
	else if (rc == 0 && secbuf_set(raw, rs.body.data, rs.body.len) < 0)
		rc = err_oom(e);
	http_headers_free(&h);
	http_response_free(&rs);
	return rc;
}

/* The subject token of an external_account's credential_source. */
static int gca_subject(struct gca_req *r, json_t *src, struct secbuf *out,
		       struct err *e)
{
	const char *file = gca_str(src, "file"), *url = gca_str(src, "url");
	struct secbuf raw = SECBUF_INIT;
	int rc;

	if (file)
		rc = kit_file_read(file, 0, GCA_FILE_MAX, &raw, NULL, e);
	else if (url)
		rc = gca_subject_url(r, url, json_object_get(src, "headers"), &raw, e);
	else
		rc = err_set(e, ERR_ACCESS,
			     "credential_source has no file or url (executable and AWS sources are not supported)");
	if (rc >= 0)
		rc = gca_subject_extract(json_object_get(src, "format"), &raw, out, e);
	secbuf_free(&raw);
	return rc;
}

/* generateAccessToken at url with the bearer token src. */
static int gca_impersonate(struct gca_req *r, const char *url,
			   const struct secbuf *src, json_t *delegates,
			   struct secbuf *tok, time_t *expires, struct err *e)
{
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf auth = SECBUF_INIT, body = SECBUF_INIT;
	json_t *req = json_pack("{s:[s],s:s}", "scope", GCP_SCOPE,
				"lifetime", "3600s");
	struct http_request rq = { .method = "POST", .url = url, .headers = &h,
				   .deadline_ms = r->deadline };
	int rc = -1;

	if (!req || (json_is_array(delegates) && json_array_size(delegates) &&
		     json_object_set(req, "delegates", delegates) < 0) ||
	    http_json_dump(req, &body) < 0 ||
	    secbuf_puts(&auth, "Bearer ") < 0 ||
	    secbuf_append(&auth, src->data, src->len) < 0 ||
	    http_headers_add(&h, "Authorization", auth.data, true) < 0) {
		err_oom(e);
		goto out;
	}
	rq.body = body.data;
	rq.body_len = body.len;
	if (http_request(r->a->http, &rq, &rs, e) < 0) {
		err_prefix(e, "service account impersonation: ");
		goto out;
	}
	if (rs.status != 200) {
		gcp_error_map(&rs, "IAM Credentials", "service account impersonation",
			      "the source credentials", e);
		goto out;
	}
	rc = gca_iam_parse(&rs, "IAM Credentials", tok, expires, e);
out:
	json_decref(req);
	http_headers_free(&h);
	http_response_free(&rs);
	secbuf_free(&auth);
	secbuf_free(&body);
	return rc;
}

/* external_account: the subject token exchanged at STS, then the service
 * account impersonated when the file asks for it. */
static int gca_external(struct gca_req *r, json_t *cred, struct secbuf *tok,
			time_t *expires, struct err *e)
{
	const char *aud = gca_str(cred, "audience");
	const char *stt = gca_str(cred, "subject_token_type");
	const char *sts = r->a->sts_url ? r->a->sts_url : gca_str(cred, "token_url");
	const char *imp = gca_str(cred, "service_account_impersonation_url");
	struct secbuf subject = SECBUF_INIT, body = SECBUF_INIT, fed = SECBUF_INIT;
	int rc;

	if (!aud || !stt || !sts)
		return err_set(e, ERR_ACCESS,
			       "the external_account credentials lack audience, subject_token_type or token_url");
	rc = gca_subject(r, json_object_get(cred, "credential_source"), &subject, e);
	if (rc >= 0 &&
	    (gca_form(&body, "grant_type", GCA_TOKEN_EXCHANGE) < 0 ||
	     gca_form(&body, "audience", aud) < 0 ||
	     gca_form(&body, "scope", GCP_SCOPE) < 0 ||
	     gca_form(&body, "requested_token_type", GCA_ACCESS_TOKEN) < 0 ||
	     kit_form_add(&body, "subject_token", subject.data, subject.len) < 0 ||
	     gca_form(&body, "subject_token_type", stt) < 0))
		rc = err_oom(e);
	if (rc >= 0)
		rc = gca_form_post(r, sts, "the STS token exchange", &body,
				   imp ? &fed : tok, expires, e);
	if (rc >= 0 && imp)
		rc = gca_impersonate(r, imp, &fed, NULL, tok, expires, e);
	secbuf_free(&subject);
	secbuf_free(&body);
	secbuf_free(&fed);
	return rc < 0 ? -1 : 0;
}

/* impersonated_service_account: the source credentials' token, then the
 * target's. */
static int gca_impersonated(struct gca_req *r, json_t *cred,
			    struct secbuf *tok, time_t *expires, struct err *e)
{
	json_t *src = json_object_get(cred, "source_credentials");
	const char *type = gca_str(src, "type");
	const char *url = gca_str(cred, "service_account_impersonation_url");
	struct secbuf stok = SECBUF_INIT;
	time_t sexp;
	int rc;

	if (!url || !type)
		return err_set(e, ERR_ACCESS,
			       "the impersonated_service_account credentials lack service_account_impersonation_url or source_credentials");
	if (!strcmp(type, "service_account"))
		rc = gca_service_account(r, src, &stok, &sexp, e);
	else if (!strcmp(type, "authorized_user"))
		rc = gca_authorized_user(r, src, &stok, &sexp, e);
	else
		rc = err_set(e, ERR_ACCESS,
			     "source_credentials of type '%.40s': service_account or authorized_user",
			     type);
	if (rc == 0)
		rc = gca_impersonate(r, url, &stok, json_object_get(cred, "delegates"),
				     tok, expires, e);
	secbuf_free(&stok);
	return rc;
}

/* Why an answer is not the metadata server's. */
static int gca_md_check(const struct http_response *rs, const char *what,
			struct err *e)
{
	if (strcasecmp(rs->header, "Google"))
		return err_set(e, ERR_PROVIDER,
			       "%s: the answer has no Metadata-Flavor: Google header: not a metadata server",
			       what);
	return 0;
}

/* GET a metadata path (with Metadata-Flavor: Google both ways). */
static int gca_md_get(struct gca_req *r, const char *path,
		      struct http_response *rs, struct err *e)
{
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_request rq = { .method = "GET", .headers = &h,
				   .deadline_ms = r->deadline,
				   .keep_header = "Metadata-Flavor" };
	char *url = NULL;
	int rc = -1;

	if (asprintf(&url, "%s%s", r->a->metadata, path) < 0) {
		url = NULL;
		rc = err_oom(e);
	} else if (http_headers_add(&h, "Metadata-Flavor", "Google", false) < 0) {
		rc = err_oom(e);
	} else {
		rq.url = url;
		rc = http_request(r->a->http, &rq, rs, e);
		if (rc < 0)
			err_prefix(e, "the metadata server (no credentials file was found, so it was asked): ");
		else
			rc = gca_md_check(rs, "the metadata server", e);
	}
	http_headers_free(&h);
	free(url);
	return rc;
}

static int gca_metadata(struct gca_req *r, struct secbuf *tok, time_t *expires,
			struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	int rc = gca_md_get(r, GCA_MD_TOKEN, &rs, e);

	if (rc == 0)
		rc = kit_token_parse(&rs, "the metadata server", time(NULL), tok,
				     expires, e);
	http_response_free(&rs);
	return rc;
}

/* The credentials file, parsed (secrets in jansson's memory, which
 * secmem_init_json wipes when freed). */
static int gca_file_load(const struct gcp_auth *a, unsigned flags,
			 json_t **root, struct stat *st, struct err *e)
{
	struct secbuf raw = SECBUF_INIT;
	int rc = kit_file_read(a->file, flags, GCA_FILE_MAX, &raw, st, e);

	*root = NULL;
	if (rc > 0) {
		*root = json_loadb(raw.data, raw.len, JSON_REJECT_DUPLICATES, NULL);
		rc = json_is_object(*root) ? 0 :
			err_set(e, ERR_ACCESS, "%s: not a JSON object", a->file);
	}
	secbuf_free(&raw);
	return rc < 0 ? -1 : 0;
}

/* kit_token_fetch_fn: a new token from the configured credentials. */
static int gca_fetch(void *ctx, int64_t deadline, struct secbuf *tok,
		     time_t *expires, struct err *e)
{
	struct gcp_auth *a = ctx;
	struct gca_req r = { a, deadline };
	json_t *cred = NULL;
	int rc;

	if (a->kind == GCA_METADATA) {
		rc = gca_metadata(&r, tok, expires, e);
		return rc < 0 ? err_prefix(e, "%s: ", a->identity) : 0;
	}
	rc = gca_file_load(a, a->kind == GCA_EXTERNAL ? 0 : KIT_FILE_PRIVATE,
			   &cred, NULL, e);
	if (rc == 0 && a->kind == GCA_SERVICE_ACCOUNT)
		rc = gca_service_account(&r, cred, tok, expires, e);
	else if (rc == 0 && a->kind == GCA_AUTHORIZED_USER)
		rc = gca_authorized_user(&r, cred, tok, expires, e);
	else if (rc == 0 && a->kind == GCA_EXTERNAL)
		rc = gca_external(&r, cred, tok, expires, e);
	else if (rc == 0)
		rc = gca_impersonated(&r, cred, tok, expires, e);
	json_decref(cred);
	return rc < 0 ? err_prefix(e, "%s: ", a->identity) : 0;
}

int gcp_auth_token(struct gcp_auth *a, int64_t deadline, struct secbuf *tok,
		   uint64_t *gen, struct err *e)
{
	return kit_token_get(&a->token, "", gca_fetch, a, deadline, a->log_what,
			     tok, gen, e);
}

bool gcp_auth_reject(struct gcp_auth *a, uint64_t gen)
{
	return kit_token_reject(&a->token, gen);
}

const char *gcp_auth_identity(const struct gcp_auth *a)
{
	return a->identity;
}

/* The metadata server's project id (lock held). */
static int gca_md_project(struct gcp_auth *a, int64_t deadline, struct err *e)
{
	struct gca_req r = { a, deadline };
	struct http_response rs = HTTP_RESPONSE_INIT;
	int rc = gca_md_get(&r, GCA_MD_PROJECT, &rs, e);

	if (rc == 0 && (rs.status != 200 || rs.body.len == 0 ||
			rs.body.len > GCP_PROJECT_MAX ||
			strspn(rs.body.data, "abcdefghijklmnopqrstuvwxyz0123456789-.:") !=
			rs.body.len))
		rc = err_set(e, ERR_PROVIDER,
			     "the metadata server gave no project id (HTTP %ld)",
			     rs.status);
	if (rc == 0 && !(a->md_project = strdup(rs.body.data)))
		rc = err_oom(e);
	http_response_free(&rs);
	return rc;
}

int gcp_auth_project(struct gcp_auth *a, int64_t deadline, char *out,
		     size_t size, struct err *e)
{
	int rc = 0;

	if (a->file_project) {
		snprintf(out, size, "%s", a->file_project);
		return 0;
	}
	if (a->kind != GCA_METADATA)
		return err_set(e, ERR_INVALID,
			       "no project: name it in the reference (gcp://PROJECT/SECRET) or set project = (or GOOGLE_CLOUD_PROJECT); %s names none",
			       a->identity);
	pthread_mutex_lock(&a->plock);
	if (!a->md_project)
		rc = gca_md_project(a, deadline, e);
	if (rc == 0)
		snprintf(out, size, "%s", a->md_project);
	pthread_mutex_unlock(&a->plock);
	return rc;
}

/* ---- create ---- */

void gcp_auth_free(struct gcp_auth *a)
{
	if (!a)
		return;
	kit_token_destroy(&a->token);
	pthread_mutex_destroy(&a->plock);
	free(a->name);
	free(a->file);
	free(a->token_uri);
	free(a->sts_url);
	free(a->metadata);
	free(a->file_project);
	free(a->md_project);
	free(a);
}

/* Where the credentials file is: option, variable, else gcloud's when it
 * exists; NULL: the metadata server. */
static int gca_find_file(struct gcp_auth *a, const struct provider_conf *conf,
			 struct err *e)
{
	const char *opt = conf_opt_get(conf, "credentials_file");
	const char *env = kit_env("GOOGLE_APPLICATION_CREDENTIALS");
	const char *dir = kit_env("CLOUDSDK_CONFIG"), *home = kit_env("HOME");
	const char *which = opt ? "credentials_file" : "GOOGLE_APPLICATION_CREDENTIALS";
	char *path = NULL;
	struct stat st;

	if (opt || env) {
		if (kit_file_check(which, opt ? opt : env, 0, e) < 0)
			return -1;
		a->file = strdup(opt ? opt : env);
		return a->file ? 0 : err_oom(e);
	}
	if (dir && asprintf(&path, "%s/" GCA_ADC_NAME, dir) < 0)
		return err_oom(e);
	if (!dir && home && asprintf(&path, "%s/.config/gcloud/" GCA_ADC_NAME, home) < 0)
		return err_oom(e);
	if (path && stat(path, &st) == 0)
		a->file = path;
	else
		free(path);
	return 0;
}

/* A URL the file names, checked like an option (plain http to another
 * host than loopback is warned about). */
static int gca_file_url(const struct gcp_auth *a, json_t *cred, const char *key,
			const char *what, struct err *e)
{
	const char *s = gca_str(cred, key);
	char *url = NULL;
	int rc;

	if (!s)
		return 0;
	rc = kit_opt_url(key, s, what, &url, e);
	free(url);
	return rc < 0 ? err_prefix(e, "%s: ", a->file) : 0;
}

/* The file's type, names and URLs, checked; secrets are read again when
 * a token is made. */
static int gca_file_conf(struct gcp_auth *a, const char *what, struct err *e)
{
	static const char *const types[] = {
		[GCA_SERVICE_ACCOUNT] = "service_account",
		[GCA_AUTHORIZED_USER] = "authorized_user",
		[GCA_EXTERNAL] = "external_account",
		[GCA_IMPERSONATED] = "impersonated_service_account",
	};
	struct stat st;
	json_t *cred = NULL;
	const char *type, *email, *imp;
	char sa[160];
	int rc = gca_file_load(a, 0, &cred, &st, e);
	size_t i;

	if (rc < 0)
		return err_prefix(e, "credentials: ");
	type = gca_str(cred, "type");
	for (i = 0; type && i < sizeof(types) / sizeof(*types); i++)
		if (!strcmp(type, types[i]))
			break;
	if (!type || i == sizeof(types) / sizeof(*types)) {
		err_set(e, ERR_INVALID,
			"%s: credentials of type '%.40s': service_account, authorized_user, external_account or impersonated_service_account",
			a->file, type ? type : "(none)");
		json_decref(cred);
		return -1;
	}
	a->kind = (enum gca_kind)i;
	if (a->kind != GCA_EXTERNAL && (st.st_mode & 077))
		rc = kit_file_check("credentials", a->file, KIT_FILE_PRIVATE, e);
	email = gca_str(cred, "client_email");
	imp = gca_str(cred, "service_account_impersonation_url");
	gca_sa_of_url(imp, sa, sizeof(sa));
	if (a->kind == GCA_SERVICE_ACCOUNT)
		snprintf(a->identity, sizeof(a->identity), "service account %.200s",
			 email ? email : "?");
	else if (a->kind == GCA_AUTHORIZED_USER)
		snprintf(a->identity, sizeof(a->identity),
			 "user credentials of %.200s (authorized_user)", a->file);
	else if (a->kind == GCA_EXTERNAL)
		snprintf(a->identity, sizeof(a->identity),
			 "workload identity federation (%.120s)%s%.120s",
			 gca_str(cred, "audience") ? gca_str(cred, "audience") : "?",
			 sa[0] ? " as service account " : "", sa);
	else
		snprintf(a->identity, sizeof(a->identity),
			 "service account %.200s (impersonated)", sa[0] ? sa : "?");
	if (rc == 0 && gca_str(cred, "project_id") &&
	    !(a->file_project = strdup(gca_str(cred, "project_id"))))
		rc = err_oom(e);
	if (rc == 0)
		rc = gca_file_url(a, cred, "token_uri", what, e);
	if (rc == 0)
		rc = gca_file_url(a, cred, "token_url", what, e);
	if (rc == 0)
		rc = gca_file_url(a, cred, "service_account_impersonation_url", what, e);
	json_decref(cred);
	return rc;
}

/* metadata_host / GCE_METADATA_HOST: a host[:port], or a URL. */
static int gca_metadata_conf(struct gcp_auth *a, const struct provider_conf *conf,
			     const char *what, struct err *e)
{
	const char *s = kit_opt(conf, "metadata_host", "GCE_METADATA_HOST",
				GCA_METADATA_HOST);
	char *url = NULL;
	int rc;

	if (!strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8))
		return kit_opt_url("metadata_host", s, what, &a->metadata, e);
	if (asprintf(&url, "http://%s", s) < 0)
		return err_oom(e);
	/* the metadata server speaks plain http on a link-local address */
	rc = kit_has_ctl(s, strlen(s)) || strpbrk(s, "/?#@ ") ?
		err_set(e, ERR_INVALID, "metadata_host: '%.64s' is not a host[:port]", s) : 0;
	if (rc == 0)
		a->metadata = url;
	else
		free(url);
	return rc;
}

static int gca_opt_url(const struct provider_conf *conf, const char *key,
		       const char *what, char **out, struct err *e)
{
	const char *s = kit_opt(conf, key, NULL, NULL);

	return s ? kit_opt_url(key, s, what, out, e) : 0;
}

int gcp_auth_new(const struct provider_conf *conf, struct http_client *http,
		 struct gcp_auth **out, struct err *e)
{
	struct gcp_auth *a = calloc(1, sizeof(*a));
	char what[160];
	int rc;

	if (!a)
		return err_oom(e);
	kit_token_init(&a->token);
	pthread_mutex_init(&a->plock, NULL);
	a->http = http;
	snprintf(what, sizeof(what), "gcp %s", conf->name);
	a->name = strdup(conf->name);
	rc = a->name ? 0 : err_oom(e);
	if (rc == 0)
		rc = gca_opt_url(conf, "token_uri", what, &a->token_uri, e);
	if (rc == 0)
		rc = gca_opt_url(conf, "sts_endpoint", what, &a->sts_url, e);
	if (rc == 0)
		rc = gca_metadata_conf(a, conf, what, e);
	if (rc == 0)
		rc = gca_find_file(a, conf, e);
	if (rc == 0 && a->file) {
		rc = gca_file_conf(a, what, e);
	} else if (rc == 0) {
		a->kind = GCA_METADATA;
		snprintf(a->identity, sizeof(a->identity),
			 "metadata server (%s, default service account)", a->metadata);
	}
	if (rc < 0) {
		gcp_auth_free(a);
		return -1;
	}
	snprintf(a->log_what, sizeof(a->log_what), "gcp %.64s: %s", conf->name,
		 a->identity);
	log_debug("gcp %s: credentials: %s", conf->name, a->identity);
	*out = a;
	return 0;
}
