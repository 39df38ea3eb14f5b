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
 * The token is cached (with its tenant and scope) in a kit_token: refreshed
 * 5 minutes before it expires, or at half its life when that is shorter,
 * one request at a time; a failed refresh keeps the current token while
 * it lasts; failures back off from 1 s to a minute.
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

	char log_what[320];	/* "azure NAME: IDENTITY" */
	struct kit_token token;	/* keyed by tenant and scope */
};

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
		rc = kit_token_parse(&rs, "Entra ID", time(NULL), tok, expires, e);
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
	rc = kit_token_parse(&rs, what, time(NULL), tok, expires, e);
out:
	http_headers_free(&h);
	http_response_free(&rs);
	free(url);
	return rc;
}

struct aza_fetch_ctx {
	struct az_auth *a;
	const struct az_challenge *ch;
};

/* kit_token_fetch_fn: a new token for the challenge. */
static int aza_fetch(void *ctx, int64_t deadline, struct secbuf *tok,
		     time_t *expires, struct err *e)
{
	struct aza_fetch_ctx *c = ctx;
	int rc;

	if (c->a->kind == AZA_MANAGED)
		rc = aza_managed(c->a, c->ch, deadline, tok, expires, e);
	else
		rc = aza_entra(c->a, c->ch, deadline, tok, expires, e);
	return rc < 0 ? err_prefix(e, "%s: ", c->a->identity) : 0;
}

int az_auth_token(struct az_auth *a, const struct az_challenge *ch,
		  int64_t deadline, struct secbuf *tok, uint64_t *gen,
		  struct err *e)
{
	struct aza_fetch_ctx c = { a, ch };
	char key[AZ_TENANT_MAX + AZ_SCOPE_MAX + 2];

	/* a token is for one tenant and scope */
	snprintf(key, sizeof(key), "%s %s", ch->tenant, ch->scope);
	return kit_token_get(&a->token, key, aza_fetch, &c, deadline,
			     a->log_what, tok, gen, e);
}

bool az_auth_reject(struct az_auth *a, uint64_t gen)
{
	bool retry = kit_token_reject(&a->token, gen);

	if (retry)
		log_debug("%s: Key Vault refused the token; getting another",
			  a->log_what);
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
	kit_token_destroy(&a->token);
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
	kit_token_init(&a->token);
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
	snprintf(a->log_what, sizeof(a->log_what), "azure %.64s: %s", conf->name,
		 a->identity);
	log_debug("azure %s: credentials: %s", conf->name, a->identity);
	*out = a;
	return 0;
}
