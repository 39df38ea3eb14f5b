/* azure_auth.c - Entra ID tokens for the Azure Key Vault provider.
 *
 * One credential per provider, chosen at create() by the option
 * credential = auto | client_secret | workload_identity | managed_identity.
 * auto takes the first that is configured, in the order of the Azure
 * SDKs' DefaultAzureCredential:
 *
 *   1. client secret: client_secret_file (read at every token request, so
 *      a rotated secret is picked up; refused when group or others may
 *      read it), else AZURE_CLIENT_SECRET; with client_id / AZURE_CLIENT_ID.
 *      POST {authority}/{tenant}/oauth2/v2.0/token, form body client_id,
 *      scope, client_secret, grant_type=client_credentials;
 *   2. workload identity: AZURE_FEDERATED_TOKEN_FILE (read at every token
 *      request: the projected token rotates) as client_assertion, with
 *      client_assertion_type jwt-bearer, to the same endpoint;
 *   3. managed identity: App Service when IDENTITY_ENDPOINT and
 *      IDENTITY_HEADER are set (GET ?api-version=2019-08-01&resource=,
 *      header X-IDENTITY-HEADER), else IMDS (GET
 *      http://169.254.169.254/metadata/identity/oauth2/token?api-version=
 *      2018-02-01&resource=, header Metadata: true; imds_endpoint or
 *      AZURE_POD_IDENTITY_AUTHORITY_HOST replace the address). client_id
 *      (or AZURE_CLIENT_ID) picks a user-assigned identity. IMDS answers
 *      404, 410 (updating, up to 70 s), 429 and 5xx are tried again with
 *      backoff while the request's deadline allows.
 *
 * The authority is authority_host, else AZURE_AUTHORITY_HOST, else
 * https://login.microsoftonline.com. The tenant is tenant_id (or
 * AZURE_TENANT_ID) when set, else the one the vault's challenge names. A
 * configured tenant that differs from the challenge's is an error, as in
 * the SDKs without additionally_allowed_tenants: a token of the wrong
 * tenant would be refused anyway. Managed identities have no tenant.
 *
 * The token is cached (with its tenant and scope) and refreshed 5 minutes
 * before it expires, or at half its life when that is shorter. A failed
 * refresh keeps the current token while it lasts; failures back off from
 * 1 s to a minute. One mutex guards the state and is held across the
 * token request, so concurrent readers wait for one request instead of
 * each making one.
 */
#include "azure.h"

#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../base/clock.h"
#include "../base/log.h"
#include "kit.h"

#define AZA_LOGIN_DEFAULT "https://login.microsoftonline.com"
#define AZA_IMDS_DEFAULT "http://169.254.169.254"
#define AZA_IMDS_PATH "/metadata/identity/oauth2/token"
#define AZA_IMDS_API "2018-02-01"
#define AZA_APPSERVICE_API "2019-08-01"
#define AZA_JWT_BEARER "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define AZA_FILE_MAX (64 * 1024)
#define AZA_BACKOFF_MIN_MS 1000L
#define AZA_BACKOFF_MAX_MS 60000L
/* a token this close to expiry is not sent */
#define AZA_EXPIRY_SLACK_S 2
#define AZA_TOKEN_MAX 16384

enum aza_kind {
	AZA_CLIENT_SECRET,
	AZA_WORKLOAD,
	AZA_MANAGED,
};

struct az_auth {
	char *name;
	struct http_client *http;
	enum aza_kind kind;
	char *tenant;		/* configured; NULL: the challenge's */
	char *client_id;	/* NULL: a system-assigned managed identity */
	char *secret_file;	/* client_secret_file */
	char *secret_env;	/* AZURE_CLIENT_SECRET, wiped memory */
	char *token_file;	/* AZURE_FEDERATED_TOKEN_FILE */
	char *authority;	/* no trailing '/' */
	char *mi_url;		/* IMDS base or App Service endpoint */
	char *mi_header;	/* IDENTITY_HEADER, wiped memory; NULL: IMDS */
	char identity[200];

	pthread_mutex_t lock;
	struct secbuf token;	/* len 0: none */
	char tok_tenant[AZ_TENANT_MAX];
	char tok_scope[AZ_SCOPE_MAX];
	time_t expires;
	time_t refresh_at;
	uint64_t gen;
	int64_t retry_ms;	/* after a failure, no attempt before this */
	long backoff_ms;
	struct err last_err;
};

/* ---- pure helpers ---- */

void az_text_clean(const char *s, char *out, size_t size)
{
	kit_text_clean(s, AZ_TEXT_MAX, out, size);
}

time_t az_refresh_at(time_t now, time_t expires)
{
	time_t left = expires - now;

	if (left <= 0)
		return now;
	if (left > 2 * AZ_REFRESH_MARGIN_S)
		return expires - AZ_REFRESH_MARGIN_S;
	return now + left / 2;
}

/* A JSON number or a string of digits, as seconds; -1 otherwise. */
static long long aza_seconds(json_t *j)
{
	const char *s = json_string_value(j);
	char *end;
	long long v;

	if (json_is_integer(j))
		return json_integer_value(j);
	if (json_is_real(j))
		return (long long)json_real_value(j);
	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	v = strtoll(s, &end, 10);
	return *end ? -1 : v;
}

/* The error of a non-200 token answer. */
static int aza_token_error(const struct http_response *rs, json_t *root,
			   const char *what, struct err *e)
{
	const char *code = json_string_value(json_object_get(root, "error"));
	const char *desc = json_string_value(json_object_get(root,
							     "error_description"));
	enum err_code ec = rs->status == 429 || rs->status >= 500 ?
		ERR_PROVIDER : ERR_ACCESS;
	char c[64], d[AZ_TEXT_MAX + 8];

	if (!desc)
		desc = json_string_value(json_object_get(root, "message"));
	az_text_clean(code, c, sizeof(c));
	az_text_clean(desc, d, sizeof(d));
	if (c[0] || d[0])
		return err_set(e, ec, "%s: token request refused (HTTP %ld): %s%s%s",
			       what, rs->status, c, c[0] && d[0] ? ": " : "", d);
	return err_set(e, ec, "%s: token request refused: HTTP %ld (%s)", what,
		       rs->status, http_status_text(rs->status));
}

int az_token_parse(const struct http_response *rs, const char *what,
		   time_t now, struct secbuf *tok, time_t *expires,
		   struct err *e)
{
	json_t *root = http_json_parse(rs);
	json_t *at = json_object_get(root, "access_token");
	long long in = aza_seconds(json_object_get(root, "expires_in"));
	long long on = aza_seconds(json_object_get(root, "expires_on"));
	int rc = -1;

	secbuf_clear(tok);
	if (rs->status != 200) {
		rc = aza_token_error(rs, root, what, e);
		goto out;
	}
	if (!json_is_object(root) || !json_is_string(at) ||
	    json_string_length(at) == 0 ||
	    json_string_length(at) > AZA_TOKEN_MAX ||
	    kit_has_ctl(json_string_value(at), json_string_length(at)) ||
	    strchr(json_string_value(at), ' ')) {
		err_set(e, ERR_PROVIDER, "garbage from %s: no access_token",
			what);
		goto out;
	}
	if (in < 0 && on <= 0) {
		err_set(e, ERR_PROVIDER,
			"garbage from %s: neither expires_in nor expires_on",
			what);
		goto out;
	}
	*expires = in >= 0 ? now + (time_t)in : (time_t)on;
	if (secbuf_set(tok, json_string_value(at), json_string_length(at)) < 0) {
		err_oom(e);
		goto out;
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* ---- token requests ---- */

/* The Entra ID token endpoint with a client secret or an assertion. */
static int aza_entra(struct az_auth *a, const struct az_challenge *ch,
		     int64_t deadline, struct secbuf *tok, time_t *expires,
		     struct err *e)
{
	struct secbuf body = SECBUF_INIT, cred = SECBUF_INIT;
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_request rq = {
		.method = "POST",
		.content_type = "application/x-www-form-urlencoded",
		.body_secret = true,
		.deadline_ms = deadline,
	};
	const char *tenant = a->tenant ? a->tenant : ch->tenant;
	char *url = NULL;
	int rc = -1;

	if (a->tenant && strcasecmp(a->tenant, ch->tenant)) {
		return err_set(e, ERR_ACCESS,
			       "the vault is in tenant %s, but the credential is for tenant %s (tenant_id / AZURE_TENANT_ID)",
			       ch->tenant, a->tenant);
	}
	if (asprintf(&url, "%s/%s/oauth2/v2.0/token", a->authority, tenant) < 0) {
		url = NULL;
		return err_oom(e);
	}
	if (a->kind == AZA_WORKLOAD)
		rc = kit_file_read(a->token_file, KIT_FILE_TRIM, AZA_FILE_MAX,
				   &cred, NULL, e);
	else if (a->secret_file)
		rc = kit_file_read(a->secret_file, KIT_FILE_PRIVATE | KIT_FILE_TRIM,
				   AZA_FILE_MAX, &cred, NULL, e);
	else
		rc = secbuf_set(&cred, a->secret_env, strlen(a->secret_env)) < 0 ?
			err_oom(e) : 1;
	if (rc < 0)
		goto out;
	rc = -1;
	if (kit_form_add(&body, "client_id", a->client_id, strlen(a->client_id)) < 0 ||
	    kit_form_add(&body, "scope", ch->scope, strlen(ch->scope)) < 0 ||
	    kit_form_add(&body, "grant_type", "client_credentials", 18) < 0 ||
	    (a->kind == AZA_WORKLOAD ?
	     kit_form_add(&body, "client_assertion_type", AZA_JWT_BEARER,
			  strlen(AZA_JWT_BEARER)) < 0 ||
	     kit_form_add(&body, "client_assertion", cred.data, cred.len) < 0 :
	     kit_form_add(&body, "client_secret", cred.data, cred.len) < 0)) {
		err_oom(e);
		goto out;
	}
	rq.url = url;
	rq.body = body.data;
	rq.body_len = body.len;
	if (http_request(a->http, &rq, &rs, e) == 0)
		rc = az_token_parse(&rs, "Entra ID", time(NULL), tok, expires, e);
out:
	secbuf_free(&cred);
	secbuf_free(&body);
	http_response_free(&rs);
	free(url);
	return rc;
}

/* len bytes of s percent-encoded, malloc'd. */
static char *aza_escape(const char *s, size_t len)
{
	char *c = curl_easy_escape(NULL, s, (int)len);
	char *d = c ? strdup(c) : NULL;

	curl_free(c);
	return d;
}

/* The managed identity endpoint's URL for scope's resource. */
static char *aza_mi_url(const struct az_auth *a, const char *scope)
{
	size_t rlen = strlen(scope);
	char *res, *cid = NULL, *url = NULL;
	int n;

	if (rlen > 9 && !strcmp(scope + rlen - 9, "/.default"))
		rlen -= 9;
	res = aza_escape(scope, rlen);
	if (a->client_id)
		cid = aza_escape(a->client_id, strlen(a->client_id));
	if (res && (!a->client_id || cid)) {
		if (a->mi_header)
			n = asprintf(&url, "%s?api-version=%s&resource=%s%s%s",
				     a->mi_url, AZA_APPSERVICE_API, res,
				     cid ? "&client_id=" : "", cid ? cid : "");
		else
			n = asprintf(&url, "%s%s?api-version=%s&resource=%s%s%s",
				     a->mi_url, AZA_IMDS_PATH, AZA_IMDS_API, res,
				     cid ? "&client_id=" : "", cid ? cid : "");
		if (n < 0)
			url = NULL;
	}
	free(res);
	free(cid);
	return url;
}

/* IMDS answers 404 while the identity is not assigned yet and 410 while
 * it is updating: worth waiting out, beside the layer's 429 and 5xx. */
static enum http_verdict aza_imds_classify(void *ctx,
					   const struct http_response *rs)
{
	(void)ctx;
	return rs->status == 404 || rs->status == 410 ? HTTP_VERDICT_RETRY :
		HTTP_VERDICT_DEFAULT;
}

static int aza_managed(struct az_auth *a, const struct az_challenge *ch,
		       int64_t deadline, struct secbuf *tok, time_t *expires,
		       struct err *e)
{
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_request rq = { .method = "GET", .headers = &h,
				   .deadline_ms = deadline };
	const char *what = a->mi_header ? "App Service managed identity" :
		"IMDS managed identity";
	char *url = aza_mi_url(a, ch->scope);
	int rc = -1;

	if (!url ||
	    (a->mi_header ?
	     http_headers_add(&h, "X-IDENTITY-HEADER", a->mi_header, true) :
	     http_headers_add(&h, "Metadata", "true", false)) < 0) {
		err_oom(e);
		goto out;
	}
	rq.url = url;
	if (!a->mi_header)
		rq.classify = aza_imds_classify;
	if (http_request(a->http, &rq, &rs, e) < 0) {
		err_prefix(e, "%s: ", what);
		goto out;
	}
	rc = az_token_parse(&rs, what, time(NULL), tok, expires, e);
out:
	http_headers_free(&h);
	http_response_free(&rs);
	free(url);
	return rc;
}

/* A new token for ch into the cache (lock held). */
static int aza_fetch(struct az_auth *a, const struct az_challenge *ch,
		     int64_t deadline, struct err *e)
{
	struct secbuf tok = SECBUF_INIT;
	time_t expires = 0, now;
	int rc;

	if (a->kind == AZA_MANAGED)
		rc = aza_managed(a, ch, deadline, &tok, &expires, e);
	else
		rc = aza_entra(a, ch, deadline, &tok, &expires, e);
	if (rc < 0) {
		secbuf_free(&tok);
		return err_prefix(e, "%s: ", a->identity);
	}
	now = time(NULL);
	secbuf_free(&a->token);
	a->token = tok;
	snprintf(a->tok_tenant, sizeof(a->tok_tenant), "%s", ch->tenant);
	snprintf(a->tok_scope, sizeof(a->tok_scope), "%s", ch->scope);
	a->expires = expires;
	a->refresh_at = az_refresh_at(now, expires);
	a->gen++;
	a->backoff_ms = 0;
	a->retry_ms = 0;
	log_debug("azure %s: new token for %s, valid %lld s", a->name,
		  a->identity, (long long)(expires - now));
	return 0;
}

static bool aza_matches(const struct az_auth *a, const struct az_challenge *ch)
{
	return a->token.len && !strcmp(a->tok_tenant, ch->tenant) &&
	       !strcmp(a->tok_scope, ch->scope);
}

/* Fresh token for ch in the cache (lock held); a failed refresh of a
 * token still good keeps it. */
static int aza_update(struct az_auth *a, const struct az_challenge *ch,
		      int64_t deadline, struct err *e)
{
	time_t now = time(NULL);
	bool usable = aza_matches(a, ch) && now < a->expires - AZA_EXPIRY_SLACK_S;
	int64_t mono = clock_now_ms();

	if (usable && now < a->refresh_at)
		return 0;
	if (mono < a->retry_ms) {
		if (usable)
			return 0;
		*e = a->last_err;
		return err_prefix(e, "(next attempt in %" PRId64 " s) ",
				  (a->retry_ms - mono + 999) / 1000);
	}
	if (aza_fetch(a, ch, deadline, e) == 0)
		return 0;
	a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : AZA_BACKOFF_MIN_MS;
	if (a->backoff_ms > AZA_BACKOFF_MAX_MS)
		a->backoff_ms = AZA_BACKOFF_MAX_MS;
	a->retry_ms = clock_now_ms() + a->backoff_ms;
	a->last_err = *e;
	if (usable) {
		log_warn("azure %s: refreshing the token failed: %s; using the current one until it expires",
			 a->name, e->msg);
		err_clear(e);
		return 0;
	}
	return -1;
}

int az_auth_token(struct az_auth *a, const struct az_challenge *ch,
		  int64_t deadline, struct secbuf *tok, uint64_t *gen,
		  struct err *e)
{
	int rc;

	secbuf_clear(tok);
	pthread_mutex_lock(&a->lock);
	rc = aza_update(a, ch, deadline, e);
	if (rc == 0 && secbuf_set(tok, a->token.data, a->token.len) < 0)
		rc = err_oom(e);
	*gen = a->gen;
	pthread_mutex_unlock(&a->lock);
	return rc;
}

bool az_auth_reject(struct az_auth *a, uint64_t gen)
{
	bool retry = true;

	pthread_mutex_lock(&a->lock);
	if (gen == a->gen && a->token.len) {
		log_debug("azure %s: Key Vault refused the token of %s; getting another",
			  a->name, a->identity);
		secbuf_free(&a->token);
		a->gen++;
		a->retry_ms = 0;
	} else if (gen == a->gen) {
		retry = false;
	}
	pthread_mutex_unlock(&a->lock);
	return retry;
}

const char *az_auth_identity(const struct az_auth *a)
{
	return a->identity;
}

/* ---- create ---- */

void az_auth_free(struct az_auth *a)
{
	if (!a)
		return;
	secbuf_free(&a->token);
	pthread_mutex_destroy(&a->lock);
	free(a->name);
	free(a->tenant);
	free(a->client_id);
	free(a->secret_file);
	secmem_free_str(a->secret_env);
	free(a->token_file);
	free(a->authority);
	free(a->mi_url);
	secmem_free_str(a->mi_header);
	free(a);
}

/* A tenant id or domain: letters, digits, '.', '-'. */
static bool aza_tenant_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len >= AZ_TENANT_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

/* A client id: printable, no spaces, short. */
static bool aza_client_id_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 128 || kit_has_ctl(s, len))
		return false;
	for (size_t i = 0; i < len; i++)
		if (isspace((unsigned char)s[i]) || s[i] == '&' || s[i] == '=')
			return false;
	return true;
}

static int aza_dup(char **dst, const char *s, struct err *e)
{
	*dst = s ? strdup(s) : NULL;
	return s && !*dst ? err_oom(e) : 0;
}

/* credential = ... into a->kind; AUTO resolves to the first configured. */
static int aza_kind(struct az_auth *a, const struct provider_conf *conf,
		    struct err *e)
{
	const char *s = kit_opt(conf, "credential", NULL, "auto");
	bool secret = conf_opt_get(conf, "client_secret_file") ||
		kit_env("AZURE_CLIENT_SECRET");
	bool workload = kit_env("AZURE_FEDERATED_TOKEN_FILE") != NULL;

	if (!strcmp(s, "client_secret"))
		a->kind = AZA_CLIENT_SECRET;
	else if (!strcmp(s, "workload_identity"))
		a->kind = AZA_WORKLOAD;
	else if (!strcmp(s, "managed_identity"))
		a->kind = AZA_MANAGED;
	else if (!strcmp(s, "auto"))
		a->kind = secret ? AZA_CLIENT_SECRET : workload ? AZA_WORKLOAD :
			AZA_MANAGED;
	else
		return err_set(e, ERR_INVALID,
			       "option credential: '%s' is not auto, client_secret, workload_identity or managed_identity",
			       s);
	if (a->kind == AZA_CLIENT_SECRET && !secret)
		return err_set(e, ERR_INVALID,
			       "credential = client_secret needs client_secret_file (or AZURE_CLIENT_SECRET)");
	if (a->kind == AZA_WORKLOAD && !workload)
		return err_set(e, ERR_INVALID,
			       "credential = workload_identity needs AZURE_FEDERATED_TOKEN_FILE");
	return 0;
}

/* The client secret or federated token file, client id and authority. */
static int aza_entra_conf(struct az_auth *a, const struct provider_conf *conf,
			  struct err *e)
{
	const char *file = conf_opt_get(conf, "client_secret_file");
	const char *env = kit_env("AZURE_CLIENT_SECRET");
	const char *host = kit_opt(conf, "authority_host", "AZURE_AUTHORITY_HOST",
				   AZA_LOGIN_DEFAULT);
	char what[160];

	if (!a->client_id)
		return err_set(e, ERR_INVALID,
			       "a %s needs client_id (or AZURE_CLIENT_ID)",
			       a->kind == AZA_WORKLOAD ? "workload identity" :
			       "client secret");
	snprintf(what, sizeof(what), "azure %s", conf->name);
	if (kit_opt_url("authority_host", host, what, &a->authority, e) < 0)
		return -1;
	if (a->kind == AZA_WORKLOAD) {
		file = kit_env("AZURE_FEDERATED_TOKEN_FILE");
		if (kit_file_check("AZURE_FEDERATED_TOKEN_FILE", file, 0, e) < 0 ||
		    aza_dup(&a->token_file, file, e) < 0)
			return -1;
		snprintf(a->identity, sizeof(a->identity),
			 "client id %s (workload identity)", a->client_id);
		return 0;
	}
	if (file) {
		if (kit_file_check("client_secret_file", file, KIT_FILE_PRIVATE, e) < 0 ||
		    aza_dup(&a->secret_file, file, e) < 0)
			return -1;
	} else {
		a->secret_env = secmem_dup(env, strlen(env));
		if (!a->secret_env)
			return err_oom(e);
	}
	snprintf(a->identity, sizeof(a->identity),
		 "client id %s (client secret)", a->client_id);
	return 0;
}

/* App Service when IDENTITY_ENDPOINT and IDENTITY_HEADER are set, else
 * IMDS. */
static int aza_managed_conf(struct az_auth *a, const struct provider_conf *conf,
			    struct err *e)
{
	const char *ep = kit_env("IDENTITY_ENDPOINT");
	const char *hdr = kit_env("IDENTITY_HEADER");
	const char *imds = kit_opt(conf, "imds_endpoint",
				   "AZURE_POD_IDENTITY_AUTHORITY_HOST",
				   AZA_IMDS_DEFAULT);
	char what[160];
	const char *kind = "IMDS";

	snprintf(what, sizeof(what), "azure %s", conf->name);
	if (ep && hdr) {
		kind = "App Service";
		if (kit_has_ctl(hdr, strlen(hdr)))
			return err_set(e, ERR_INVALID,
				       "IDENTITY_HEADER holds control characters");
		if (kit_opt_url("IDENTITY_ENDPOINT", ep, what, &a->mi_url, e) < 0)
			return -1;
		a->mi_header = secmem_dup(hdr, strlen(hdr));
		if (!a->mi_header)
			return err_oom(e);
	} else if (kit_opt_url("imds_endpoint", imds, what, &a->mi_url, e) < 0) {
		return -1;
	}
	if (a->client_id)
		snprintf(a->identity, sizeof(a->identity),
			 "managed identity %s (%s)", a->client_id, kind);
	else
		snprintf(a->identity, sizeof(a->identity),
			 "managed identity (%s, system-assigned)", kind);
	return 0;
}

int az_auth_new(const struct provider_conf *conf, struct http_client *http,
		struct az_auth **out, struct err *e)
{
	struct az_auth *a = calloc(1, sizeof(*a));
	const char *tenant = kit_opt(conf, "tenant_id", "AZURE_TENANT_ID", NULL);
	const char *cid = kit_opt(conf, "client_id", "AZURE_CLIENT_ID", NULL);
	int rc;

	if (!a)
		return err_oom(e);
	pthread_mutex_init(&a->lock, NULL);
	a->http = http;
	rc = aza_dup(&a->name, conf->name, e);
	if (rc == 0 && tenant && !aza_tenant_valid(tenant))
		rc = err_set(e, ERR_INVALID,
			     "tenant_id: '%.64s' is not a tenant id or domain",
			     tenant);
	if (rc == 0 && cid && !aza_client_id_valid(cid))
		rc = err_set(e, ERR_INVALID, "client_id: '%.64s' is not a client id",
			     cid);
	if (rc == 0)
		rc = aza_dup(&a->tenant, tenant, e);
	if (rc == 0)
		rc = aza_dup(&a->client_id, cid, e);
	if (rc == 0)
		rc = aza_kind(a, conf, e);
	if (rc == 0)
		rc = a->kind == AZA_MANAGED ? aza_managed_conf(a, conf, e) :
			aza_entra_conf(a, conf, e);
	if (rc < 0) {
		az_auth_free(a);
		return -1;
	}
	log_debug("azure %s: credentials: %s", conf->name, a->identity);
	*out = a;
	return 0;
}
