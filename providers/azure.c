/* azure.c - Azure Key Vault secrets.
 *
 *   [provider azure]
 *   type = azure-keyvault
 *   vault = myvault              ; https://myvault.vault.azure.net, or a full
 *                                ; https:// URL (sovereign clouds, private
 *                                ; endpoints, emulators)
 *   api_version = 7.4
 *   credential = auto            ; client_secret | workload_identity | managed_identity
 *   tenant_id, client_id, client_secret_file, authority_host, imds_endpoint
 *                                ; (azure_auth.c; AZURE_* variables otherwise)
 *   ca_file, ca_path, client_cert, client_key, tls_skip_verify
 *   disable_challenge_resource_verification = false
 *
 *   store = azure://billing-env                 ; a JSON object: the app's keys
 *   env.DB = azure://shared-db#password         ; one key of such a secret
 *   env.TLS_KEY = azure://tls-key?version=0123abcd...   ; any other value: a
 *                                               ; single value (the key "")
 *   store = azure://?prefix=billing-            ; per-secret layout
 *
 * Two layouts:
 *   - JSON: one secret whose value is a JSON object is an entry of keys
 *     (strings as they are, other JSON values as compact JSON text); any
 *     other value is a single value. The entry's version is the secret
 *     version's id. Writes PUT a new version (contentType
 *     application/json, the tags of the version they replace);
 *   - per-secret (?prefix=P, empty name): every secret named P... is one
 *     key. The key is the tag secretfs-key when the secret has it, else
 *     the name after P with '-' read as '_' (names cannot hold '_'); two
 *     secrets giving one key are an error naming both. The entry's version
 *     is a hash of the secrets' names and version ids. Writes PUT each
 *     changed key (as P + the key with '_' written '-', tagged
 *     secretfs-key = the key) and DELETE (a soft delete) each removed one:
 *     one request per key, so this layout is not atomic across keys the
 *     way the JSON layout is. Needs the List permission.
 *
 * The wire (docs/azure.md): GET /secrets/NAME/[VERSION], PUT
 * /secrets/NAME, DELETE /secrets/NAME, GET /secrets (pages of 25 and a
 * nextLink, followed only to the vault's own origin), each with
 * ?api-version=. The first request goes without a token and without a
 * body, as the SDKs send it; its 401 challenge (WWW-Authenticate: Bearer
 * authorization="https://login.../TENANT", resource="https://vault.azure.net"
 * or scope=...) names the tenant and the scope (+ "/.default") to get a
 * token for, after checking that the vault's host ends with "." + the
 * resource's host (unless disable_challenge_resource_verification, which
 * emulators and private endpoints need). The challenge is kept for the
 * provider's life; a later 401 to a request with a token updates it and
 * the token is fetched again, once.
 *
 * Writes: Key Vault has no compare-and-set; kit_store_nocas reads before
 * (the caller's expect), writes, reads back and reports a lost race as
 * ERR_CONFLICT. A name held by a soft-deleted secret cannot be written
 * (409 ObjectIsDeletedButRecoverable): ERR_EXISTS says to recover or purge
 * it. A disabled secret is ERR_ACCESS, as is a refusal, which is also
 * logged (once a minute) naming the identity and the secret.
 *
 * Try it: tests/emulators/azurekv.py (vault = https://127.0.0.1:PORT,
 * ca_file = its CA, disable_challenge_resource_verification = true).
 */
#include "provider.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../base/clock.h"
#include "../base/log.h"
#include "../base/secmem.h"
#include "azure.h"
#include "http.h"
#include "kit.h"

#define AZ_NAME_MAX 127
#define AZ_VAULT_NAME_MIN 3
#define AZ_VAULT_NAME_MAX 24
#define AZ_VALUE_MAX (25 * 1024)
#define AZ_VERSION_MAX 64
#define AZ_API_DEFAULT "7.4"
#define AZ_API_MAX 32
#define AZ_KEY_TAG "secretfs-key"
#define AZ_KEY_MAX 255
#define AZ_LIST_PAGES_MAX 1000
#define AZ_ITEMS_MAX 5000
#define AZ_AUTH_LOG_MS 60000
#define AZ_JSON_TYPE "application/json"

struct azure {
	char *name;
	char *vault;		/* base URL, no trailing '/' */
	char *host;		/* the vault's host name */
	char *api;
	bool verify;		/* check the challenge's resource */
	long timeout_ms;
	struct http_client *http;
	struct az_auth *auth;
	pthread_mutex_t lock;	/* guards ch and have_ch */
	struct az_challenge ch;
	bool have_ch;
	int64_t auth_logged_ms;	/* last refusal logged (atomic) */
};

/* One provider operation: its requests share one deadline. */
struct az_op {
	struct azure *az;
	int64_t deadline;
	const char *what;	/* the secret or prefix, for messages */
};

/* What a JSON-layout write keeps of the version it replaces. */
struct az_cur {
	json_t *obj;		/* the value as a JSON object, or NULL */
	json_t *tags;
	char *ctype;
};

/* One secret of the per-secret layout. */
struct az_item {
	char *name;		/* as the vault lists it */
	char *key;		/* the app's key */
	json_t *tags;		/* as listed, or NULL */
	char *ctype;
	char version[AZ_VERSION_MAX + 1];
	bool gone;		/* deleted between the list and the read */
};

struct az_items {
	struct az_item *v;
	size_t n;
};

/* ---- names (pure) ---- */

/* A secret name: 1 to 127 of 0-9 a-z A-Z '-'. */
static bool az_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > AZ_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* A version id: letters and digits (32 hex digits in Azure). */
static bool az_version_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > AZ_VERSION_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]))
			return false;
	return true;
}

/* The key of a secret without the tag: the name after prefix, '-' read as
 * '_'. malloc'd; NULL when nothing is left. */
static char *az_key_of(const char *name, size_t plen)
{
	char *k = name[plen] ? strdup(name + plen) : NULL;

	for (char *p = k; p && *p; p++)
		if (*p == '-')
			*p = '_';
	return k;
}

/* The secret name of a new key: prefix + key with '_' written '-'.
 * malloc'd; NULL (with e) when that is not a secret name. */
static char *az_name_of(const char *prefix, const char *key, struct err *e)
{
	char *n = NULL;

	if (asprintf(&n, "%s%s", prefix, key) < 0) {
		err_oom(e);
		return NULL;
	}
	for (char *p = n + strlen(prefix); *p; p++)
		if (*p == '_')
			*p = '-';
	if (!az_name_valid(n, strlen(n))) {
		err_set(e, ERR_INVALID,
			"key %s: %s%s is not a Key Vault secret name (at most %d letters, digits, '-'; '_' is written '-')",
			key, prefix, key, AZ_NAME_MAX);
		free(n);
		return NULL;
	}
	return n;
}

/* A key a tag may name: printable, no '/', not . or .. */
static bool az_key_valid(const char *s, size_t len)
{
	if (len == 0 || len > AZ_KEY_MAX || kit_has_ctl(s, len) ||
	    strnlen(s, len) != len || memchr(s, '/', len))
		return false;
	return strcmp(s, ".") && strcmp(s, "..");
}

/* ---- references (pure) ---- */

struct az_ref {
	char *version;
	char *prefix;
};

static void az_ref_free(struct az_ref *r)
{
	free(r->version);
	free(r->prefix);
	r->version = r->prefix = NULL;
}

static int az_ref_parse(const char *locator, const char *params,
			struct az_ref *r, struct err *e)
{
	struct kit_param p[] = { { "version", NULL }, { "prefix", NULL } };
	size_t len = strlen(locator);

	r->version = r->prefix = NULL;
	if (kit_params_parse(params, p, 2, "version=ID, prefix=NAME-PREFIX",
			     e) < 0)
		return -1;
	r->version = p[0].value;
	r->prefix = p[1].value;
	if (r->prefix && (len || r->version)) {
		az_ref_free(r);
		return err_set(e, ERR_INVALID,
			       "?prefix= is the per-secret layout: write azure://?prefix=P alone, without a name or version");
	}
	if (r->prefix && !az_name_valid(r->prefix, strlen(r->prefix))) {
		az_ref_free(r);
		return err_set(e, ERR_INVALID,
			       "?prefix=: secret names are letters, digits and '-' only, at most %d",
			       AZ_NAME_MAX);
	}
	if (!r->prefix && !az_name_valid(locator, len)) {
		az_ref_free(r);
		return err_set(e, ERR_INVALID,
			       "'%.64s' is not a Key Vault secret name: 1 to %d letters, digits and '-' (no '_', '/' or '.')",
			       locator, AZ_NAME_MAX);
	}
	if (r->version && !az_version_valid(r->version)) {
		az_ref_free(r);
		return err_set(e, ERR_INVALID,
			       "?version= must be a secret version id (letters and digits)");
	}
	return 0;
}

/* provider_ops.check: references are checked when the config loads. */
static int azure_check(const char *locator, const char *params,
		       struct err *e)
{
	struct az_ref r;

	if (az_ref_parse(locator, params, &r, e) < 0)
		return -1;
	az_ref_free(&r);
	return 0;
}

/* ---- the challenge (pure) ---- */

struct az_chparams {
	char auth[512];
	char resource[AZ_SCOPE_MAX];
	char scope[AZ_SCOPE_MAX];
	bool auth_cut, resource_cut, scope_cut;
};

/* Keep val (len bytes, cut: its end is missing) when key is wanted. */
static void az_chparam_set(struct az_chparams *p, const char *key, size_t klen,
			   const char *val, size_t len, bool cut)
{
	char *dst = NULL;
	bool *dcut = NULL;
	size_t size = 0;

	if ((klen == 13 && !strncasecmp(key, "authorization", 13)) ||
	    (klen == 17 && !strncasecmp(key, "authorization_uri", 17))) {
		dst = p->auth, dcut = &p->auth_cut, size = sizeof(p->auth);
	} else if (klen == 8 && !strncasecmp(key, "resource", 8)) {
		dst = p->resource, dcut = &p->resource_cut,
		size = sizeof(p->resource);
	} else if (klen == 5 && !strncasecmp(key, "scope", 5)) {
		dst = p->scope, dcut = &p->scope_cut, size = sizeof(p->scope);
	}
	if (!dst)
		return;
	if (len >= size) {
		len = size - 1;
		cut = true;
	}
	memcpy(dst, val, len);
	dst[len] = '\0';
	*dcut = cut;
}

/* The parameters of "Bearer k="v", k2=v2 ..."; cut: the header's end is
 * missing (a value without its closing quote is then incomplete). */
static int az_chparams_parse(const char *h, bool cut, struct az_chparams *p)
{
	memset(p, 0, sizeof(*p));
	if (strncasecmp(h, "Bearer", 6) || (h[6] != ' ' && h[6] != '\t'))
		return -1;
	h += 6;
	for (;;) {
		const char *key, *val, *end;
		size_t klen;
		bool vcut = false;

		while (*h == ' ' || *h == '\t' || *h == ',')
			h++;
		if (!*h)
			return 0;
		key = h;
		klen = strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
		if (!klen || h[klen] != '=')
			return -1;
		val = h + klen + 1;
		if (*val == '"') {
			val++;
			end = strchr(val, '"');
			if (!end && !cut)
				return -1;
			vcut = !end;
			h = end ? end + 1 : val + strlen(val);
			end = end ? end : h;
		} else {
			end = val + strcspn(val, ", \t");
			vcut = cut && !*end;
			h = end;
		}
		az_chparam_set(p, key, klen, val, (size_t)(end - val), vcut);
	}
}

/* The host of an http(s) URL into out; false when it has none. */
static bool az_url_host(const char *url, char *out, size_t size)
{
	CURLU *u = curl_url();
	char *host = NULL;
	bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		strlen(host) < size;

	if (ok)
		snprintf(out, size, "%s", host);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/* The tenant of authorization="https://login.../TENANT[/...]". */
static int az_ch_tenant(const struct az_chparams *p, struct az_challenge *out)
{
	const char *s = p->auth, *t;
	size_t len;

	if (p->auth_cut || (strncasecmp(s, "https://", 8) &&
			    strncasecmp(s, "http://", 7)))
		return -1;
	t = strchr(strstr(s, "//") + 2, '/');
	if (!t)
		return -1;
	t++;
	len = strcspn(t, "/?#");
	if (len == 0 || len >= sizeof(out->tenant))
		return -1;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)t[i]) && t[i] != '-' && t[i] != '.')
			return -1;
	memcpy(out->tenant, t, len);
	out->tenant[len] = '\0';
	return 0;
}

/* Whether host is under the resource's host: ends with "." + it. */
static bool az_host_under(const char *host, const char *scope)
{
	char rhost[256];
	size_t hl = strlen(host), rl;

	if (!az_url_host(scope, rhost, sizeof(rhost)))
		return false;
	rl = strlen(rhost);
	return hl > rl + 1 && host[hl - rl - 1] == '.' &&
	       !strcasecmp(host + hl - rl, rhost);
}

/* A WWW-Authenticate header (cut: truncated by the HTTP layer) into out:
 * the tenant, and the scope (scope=, else resource= + "/.default"). With
 * verify, the vault's host must be under the resource's host, as the SDKs
 * check, so a forged challenge cannot get a token for another service. */
static int az_challenge_parse(const char *header, bool cut,
			      const char *vault_host, bool verify,
			      struct az_challenge *out, struct err *e)
{
	struct az_chparams p;
	const char *scope;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (az_chparams_parse(header, cut, &p) < 0 || !p.auth[0])
		return err_set(e, ERR_PROVIDER,
			       "Key Vault's 401 carries no Bearer challenge with authorization=");
	if (az_ch_tenant(&p, out) < 0)
		return err_set(e, ERR_PROVIDER,
			       "the challenge's authorization= names no tenant");
	if (p.scope[0] && !p.scope_cut) {
		scope = p.scope;
	} else if (p.resource[0] && !p.resource_cut) {
		scope = p.resource;
	} else {
		return err_set(e, ERR_PROVIDER,
			       "the challenge names no resource or scope%s",
			       cut ? " (the header was longer than secretfs reads)" : "");
	}
	len = strlen(scope);
	while (len > 0 && scope[len - 1] == '/')
		len--;
	if (len > 9 && !strncmp(scope + len - 9, "/.default", 9))
		len -= 9;
	if (len == 0 || len + 10 > sizeof(out->scope) ||
	    kit_has_ctl(scope, len) || strchr(scope, ' '))
		return err_set(e, ERR_PROVIDER, "the challenge's scope is not a URL");
	snprintf(out->scope, sizeof(out->scope), "%.*s/.default", (int)len, scope);
	if (verify && !az_host_under(vault_host, out->scope))
		return err_set(e, ERR_ACCESS,
			       "the challenge asks for a token for %.*s, and the vault's host %s is not under it (an emulator or private endpoint needs disable_challenge_resource_verification = true)",
			       (int)len, scope, vault_host);
	return 0;
}

/* ---- errors (pure) ---- */

struct az_errinfo {
	char code[64];
	char inner[64];
	char message[KIT_TEXT_MAX + 8];
};

/* {"error":{"code","message","innererror":{"code"}}}; false when the body
 * is not that. */
static bool az_errinfo_get(const struct http_response *rs,
			   struct az_errinfo *out)
{
	json_t *root = http_json_parse(rs);
	json_t *err = json_object_get(root, "error");
	bool ok = json_is_object(err);

	memset(out, 0, sizeof(*out));
	if (ok) {
		kit_text_clean(json_string_value(json_object_get(err, "code")),
			      out->code, sizeof(out->code));
		kit_text_clean(json_string_value(json_object_get(
			json_object_get(err, "innererror"), "code")),
			      out->inner, sizeof(out->inner));
		kit_text_clean(json_string_value(json_object_get(err, "message")),
			      out->message, sizeof(out->message));
	}
	json_decref(root);
	return ok;
}

/* The error of a Key Vault answer other than 200. identity names who
 * asked (401/403). Key Vault's messages name identities, names and
 * permissions, never values: they are shown. */
static int az_error_map(const struct http_response *rs, const char *what,
			const char *identity, struct err *e)
{
	struct az_errinfo ei;
	long st = rs->status;
	bool known = az_errinfo_get(rs, &ei);
	const char *code = ei.inner[0] ? ei.inner : ei.code;

	if (st == 404)
		return err_set(e, ERR_NOTFOUND, "%s: no such secret in the vault",
			       what);
	if (st == 403 && !strcasecmp(ei.inner, "SecretDisabled"))
		return err_set(e, ERR_ACCESS,
			       "%s: the secret is disabled (az keyvault secret set-attributes --enabled true)",
			       what);
	if (st == 401 || st == 403)
		return err_set(e, ERR_ACCESS,
			       "%s: %s by Key Vault (HTTP %ld%s%s)%s%s; identity: %s",
			       what, st == 401 ? "token refused" : "access denied",
			       st, code[0] ? " " : "", code, ei.message[0] ? ": " : "",
			       ei.message, identity);
	if (st == 409 && !strcasecmp(ei.inner, "ObjectIsDeletedButRecoverable"))
		return err_set(e, ERR_EXISTS,
			       "%s: the name belongs to a soft-deleted secret: recover it (az keyvault secret recover) or purge it (az keyvault secret purge) first",
			       what);
	if (!known)
		return err_set(e, st >= 500 || st == 429 ? ERR_PROVIDER :
			       http_status_code(st),
			       "%s: HTTP %ld (%s) from Key Vault", what, st,
			       http_status_text(st));
	if (st == 409)
		return err_set(e, ERR_CONFLICT, "%s: Key Vault: conflict (%s): %s",
			       what, code, ei.message);
	if (st == 400)
		return err_set(e, ERR_INVALID,
			       "%s: Key Vault refused the request (%s): %s", what,
			       code, ei.message);
	return err_set(e, st == 413 ? ERR_TOOBIG : ERR_PROVIDER,
		       "%s: Key Vault error %s (HTTP %ld)", what,
		       code[0] ? code : "?", st);
}

static int az_garbage(struct err *e, const char *what, const char *why)
{
	return err_set(e, ERR_PROVIDER, "garbage from Key Vault: %s: %s", what,
		       why);
}

/* ---- answers (pure) ---- */

/* The last path segment of a secret id
 * ("https://v.vault.azure.net/secrets/NAME/VERSION"): the version of a
 * bundle, the name of a list item. */
static bool az_id_segment(json_t *id, char *out, size_t size)
{
	const char *s = json_string_value(id), *slash;
	size_t len;

	if (!s || json_string_length(id) != strlen(s))
		return false;
	len = strlen(s);
	while (len > 0 && s[len - 1] == '/')
		len--;
	slash = memrchr(s, '/', len);
	if (!slash)
		return false;
	slash++;
	len -= (size_t)(slash - s);
	if (len == 0 || len >= size || !az_name_valid(slash, len))
		return false;
	memcpy(out, slash, len);
	out[len] = '\0';
	return true;
}

/* A SecretBundle: its value (a string), version and enabled flag. */
static int az_bundle_get(json_t *root, const char *what, json_t **value,
			 char version[AZ_VERSION_MAX + 1], struct err *e)
{
	json_t *attrs = json_object_get(root, "attributes");
	json_t *enabled = json_object_get(attrs, "enabled");

	*value = json_object_get(root, "value");
	if (!json_is_object(root))
		return az_garbage(e, what, "the answer is not a JSON object");
	if (!az_id_segment(json_object_get(root, "id"), version,
			   AZ_VERSION_MAX + 1) || !az_version_valid(version))
		return az_garbage(e, what, "no secret id with a version");
	if (json_is_false(enabled))
		return err_set(e, ERR_ACCESS,
			       "%s: the secret is disabled (az keyvault secret set-attributes --enabled true)",
			       what);
	if (!json_is_string(*value))
		return az_garbage(e, what, "no value");
	return 0;
}

/* A GET answer (200) of the JSON layout into out, and cur. */
static int az_get_parse(const struct http_response *rs, const char *what,
			struct entry *out, struct az_cur *cur, struct err *e)
{
	json_t *root = http_json_parse(rs), *value;
	const char *ctype;
	int rc = az_bundle_get(root, what, &value, out->version, e);

	if (rc == 0)
		rc = kit_value_map(json_string_value(value),
				   json_string_length(value), "azure", &out->map,
				   cur ? &cur->obj : NULL, e);
	if (rc == 0 && cur) {
		json_t *tags = json_object_get(root, "tags");

		ctype = json_string_value(json_object_get(root, "contentType"));
		cur->tags = json_is_object(tags) ? json_incref(tags) : NULL;
		cur->ctype = ctype ? strdup(ctype) : NULL;
		if (ctype && !cur->ctype)
			rc = err_oom(e);
	}
	if (rc < 0)
		entry_free(out);
	json_decref(root);
	return rc;
}

/* ---- requests ---- */

static void az_op_start(struct az_op *op, struct azure *az, const char *what)
{
	op->az = az;
	op->what = what;
	op->deadline = clock_now_ms() + az->timeout_ms;
}

/* {vault}/secrets[/a[/b]]?api-version=V (names are checked: no escaping
 * needed), malloc'd. */
static char *az_url(const struct azure *az, const char *a, const char *b)
{
	char *url = NULL;

	if (asprintf(&url, "%s/secrets%s%s%s%s?api-version=%s", az->vault,
		     a ? "/" : "", a ? a : "", b ? "/" : "", b ? b : "",
		     az->api) < 0)
		return NULL;
	return url;
}

/* One request; bearer NULL: without a token. */
static int az_request(struct az_op *op, const char *method, const char *url,
		      const struct secbuf *body, const struct secbuf *bearer,
		      struct http_response *rs, struct err *e)
{
	struct http_headers h = HTTP_HEADERS_INIT;
	struct secbuf auth = SECBUF_INIT;
	struct http_request rq = {
		.method = method, .url = url, .headers = &h,
		.body_secret = true, .deadline_ms = op->deadline,
		.keep_header = "WWW-Authenticate",
	};
	int rc = 0;

	if (body) {
		rq.body = body->data ? body->data : "";
		rq.body_len = body->len;
	}
	if (bearer && (secbuf_puts(&auth, "Bearer ") < 0 ||
		       secbuf_append(&auth, bearer->data, bearer->len) < 0 ||
		       http_headers_add(&h, "Authorization", auth.data, true) < 0))
		rc = err_oom(e);
	if (rc == 0 && http_request(op->az->http, &rq, rs, e) < 0)
		rc = err_prefix(e, "%s: ", op->what);
	http_headers_free(&h);
	secbuf_free(&auth);
	return rc;
}

static bool az_challenge_get(struct azure *az, struct az_challenge *ch)
{
	bool have;

	pthread_mutex_lock(&az->lock);
	have = az->have_ch;
	*ch = az->ch;
	pthread_mutex_unlock(&az->lock);
	return have;
}

/* Take the challenge of a 401 answer as the vault's. */
static int az_challenge_learn(struct az_op *op, const struct http_response *rs,
			      struct err *e)
{
	struct azure *az = op->az;
	struct az_challenge ch;
	bool cut = strlen(rs->header) + 1 >= sizeof(rs->header);

	if (az_challenge_parse(rs->header, cut, az->host, az->verify, &ch, e) < 0)
		return err_prefix(e, "%s: ", op->what);
	pthread_mutex_lock(&az->lock);
	if (!az->have_ch || strcmp(az->ch.tenant, ch.tenant) ||
	    strcmp(az->ch.scope, ch.scope))
		log_debug("azure %s: challenge: tenant %s, scope %s", az->name,
			  ch.tenant, ch.scope);
	az->ch = ch;
	az->have_ch = true;
	pthread_mutex_unlock(&az->lock);
	return 0;
}

/* Refusals are logged too, since a cache serving stale values hides
 * them; once a minute is enough. */
static void az_auth_log(struct azure *az, const struct err *e)
{
	if (kit_once_per(&az->auth_logged_ms, AZ_AUTH_LOG_MS))
		log_warn("azure %s: %s", az->name, e->msg);
}

/* The first request of the provider: without token and body, for the
 * challenge. 1 when rs is already the answer (a request without a body
 * that needs no token). */
static int az_probe(struct az_op *op, const char *method, const char *url,
		    bool has_body, struct http_response *rs, struct err *e)
{
	struct secbuf empty = SECBUF_INIT;

	if (az_request(op, method, url, has_body ? &empty : NULL, NULL, rs,
		       e) < 0)
		return -1;
	if (rs->status == 401)
		return az_challenge_learn(op, rs, e);
	if (!has_body)
		return 1;
	return err_set(e, ERR_PROVIDER,
		       "%s: Key Vault answered HTTP %ld to a request without a token, not the 401 challenge",
		       op->what, rs->status);
}

/* One Key Vault request with the challenge and token dance; rs gets the
 * final answer, whatever its status. A 401 to a request with a token is
 * tried once more with a fresh token (and the challenge it carries). */
static int az_call(struct az_op *op, const char *method, const char *url,
		   const struct secbuf *body, struct http_response *rs,
		   struct err *e)
{
	struct secbuf tok = SECBUF_INIT;
	struct az_challenge ch;
	bool retried = false;
	uint64_t gen;
	int rc;

	for (;;) {
		if (!az_challenge_get(op->az, &ch)) {
			rc = az_probe(op, method, url, body != NULL, rs, e);
			if (rc != 0)
				break;
			continue;
		}
		rc = az_auth_token(op->az->auth, &ch, op->deadline, &tok, &gen, e);
		if (rc < 0) {
			err_prefix(e, "%s: ", op->what);
			if (e->code == ERR_ACCESS)
				az_auth_log(op->az, e);
			break;
		}
		rc = az_request(op, method, url, body, &tok, rs, e);
		if (rc < 0 || rs->status != 401 || retried)
			break;
		retried = true;
		if (rs->header[0] && az_challenge_learn(op, rs, e) < 0) {
			rc = -1;
			break;
		}
		if (!az_auth_reject(op->az->auth, gen))
			break;
	}
	secbuf_free(&tok);
	return rc < 0 ? -1 : 0;
}

/* az_call, then the error of any answer but 200. */
static int az_call_ok(struct az_op *op, const char *method, const char *url,
		      const struct secbuf *body, struct http_response *rs,
		      struct err *e)
{
	if (az_call(op, method, url, body, rs, e) < 0)
		return -1;
	if (rs->status == 200)
		return 0;
	az_error_map(rs, op->what, az_auth_identity(op->az->auth), e);
	if (e->code == ERR_ACCESS)
		az_auth_log(op->az, e);
	return -1;
}

/* GET /secrets/NAME/[VERSION] into rs (200). */
static int az_get_raw(struct az_op *op, const char *name, const char *version,
		      struct http_response *rs, struct err *e)
{
	/* latest: the trailing slash, as the SDKs send it */
	char *url = az_url(op->az, name, version ? version : "");
	int rc;

	if (!url)
		return err_oom(e);
	rc = az_call_ok(op, "GET", url, NULL, rs, e);
	free(url);
	return rc;
}

/* The JSON layout: one secret. */
static int az_get(struct az_op *op, const char *name, const char *version,
		  struct entry *out, struct az_cur *cur, struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	int rc = az_get_raw(op, name, version, &rs, e);

	if (rc == 0)
		rc = az_get_parse(&rs, op->what, out, cur, e);
	http_response_free(&rs);
	return rc;
}

/* ---- listing ---- */

/* Called for each item of GET /secrets with its name. */
typedef int (*az_item_fn)(void *ctx, const char *name, json_t *item,
			  struct err *e);

/* One page: each item to fn, the nextLink (malloc'd) into *next. */
static int az_list_page(const struct http_response *rs, const char *what,
			az_item_fn fn, void *ctx, char **next, struct err *e)
{
	json_t *root = http_json_parse(rs), *items = json_object_get(root, "value");
	json_t *link = json_object_get(root, "nextLink"), *it;
	char name[AZ_NAME_MAX + 1];
	size_t i;
	int rc = 0;

	*next = NULL;
	if (!json_is_array(items) || (link && !json_is_string(link) &&
				      !json_is_null(link))) {
		json_decref(root);
		return az_garbage(e, what, "not a secret list");
	}
	json_array_foreach(items, i, it) {
		/* certificates' backing secrets are not ours to show */
		if (json_is_true(json_object_get(it, "managed")) ||
		    !az_id_segment(json_object_get(it, "id"), name, sizeof(name)))
			continue;
		rc = fn(ctx, name, it, e);
		if (rc < 0)
			break;
	}
	if (rc == 0 && json_is_string(link) && json_string_length(link) > 0) {
		*next = strdup(json_string_value(link));
		if (!*next)
			rc = err_oom(e);
	}
	json_decref(root);
	return rc;
}

/* Every page of GET /secrets. A nextLink is followed only when it is an
 * absolute URL of the vault's own origin: the token goes with it. */
static int az_list_walk(struct az_op *op, az_item_fn fn, void *ctx,
			struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	char *url = az_url(op->az, NULL, NULL), *next = NULL;
	int rc = url ? 0 : err_oom(e);

	for (int page = 0; rc == 0 && url; page++) {
		if (page >= AZ_LIST_PAGES_MAX) {
			rc = az_garbage(e, op->what, "too many list pages");
			break;
		}
		rc = az_call_ok(op, "GET", url, NULL, &rs, e);
		if (rc == 0)
			rc = az_list_page(&rs, op->what, fn, ctx, &next, e);
		free(url);
		url = next;
		next = NULL;
		if (rc == 0 && url &&
		    (strncasecmp(url, "https://", 8) && strncasecmp(url, "http://", 7)))
			rc = az_garbage(e, op->what, "a relative nextLink");
		else if (rc == 0 && url &&
			 http_redirect_check(op->az->vault, url) != HTTP_REDIRECT_SAME_ORIGIN)
			rc = err_set(e, ERR_PROVIDER,
				     "%s: Key Vault's nextLink points to another host; not followed",
				     op->what);
	}
	free(url);
	http_response_free(&rs);
	return rc;
}

/* ---- the per-secret layout ---- */

static void az_items_free(struct az_items *it)
{
	for (size_t i = 0; i < it->n; i++) {
		free(it->v[i].name);
		free(it->v[i].key);
		free(it->v[i].ctype);
		json_decref(it->v[i].tags);
	}
	free(it->v);
	it->v = NULL;
	it->n = 0;
}

static struct az_item *az_items_add(struct az_items *it)
{
	struct az_item *v = realloc(it->v, (it->n + 1) * sizeof(*v));

	if (!v)
		return NULL;
	it->v = v;
	memset(&v[it->n], 0, sizeof(*v));
	return &v[it->n++];
}

struct az_collect {
	const char *prefix;
	struct az_items *items;
};

/* A listed secret under the prefix as an item: its key from the tag, else
 * from its name. */
static int az_collect_one(void *ctx, const char *name, json_t *js,
			  struct err *e)
{
	struct az_collect *c = ctx;
	size_t plen = strlen(c->prefix);
	json_t *tags = json_object_get(js, "tags");
	json_t *tag = json_object_get(tags, AZ_KEY_TAG);
	const char *ctype = json_string_value(json_object_get(js, "contentType"));
	struct az_item *it;

	if (strncasecmp(name, c->prefix, plen))
		return 0;
	if (tag && (!json_is_string(tag) ||
		    !az_key_valid(json_string_value(tag), json_string_length(tag))))
		return err_set(e, ERR_PROVIDER,
			       "secret %s: its tag " AZ_KEY_TAG " is not a key name",
			       name);
	if (!tag && !name[plen])
		return 0;
	if (c->items->n >= AZ_ITEMS_MAX)
		return err_set(e, ERR_TOOBIG, "more than %d secrets named %s...",
			       AZ_ITEMS_MAX, c->prefix);
	it = az_items_add(c->items);
	if (!it)
		return err_oom(e);
	it->name = strdup(name);
	it->key = tag ? strdup(json_string_value(tag)) : az_key_of(name, plen);
	it->tags = json_is_object(tags) ? json_incref(tags) : NULL;
	it->ctype = ctype ? strdup(ctype) : NULL;
	if (!it->name || !it->key || (ctype && !it->ctype))
		return err_oom(e);
	return 0;
}

static int az_item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct az_item *)a)->key,
		      ((const struct az_item *)b)->key);
}

/* Sorted by key; two secrets with one key are an error naming both (the
 * store holds what secretfs cannot show: EIO, like garbage). */
static int az_items_check(struct az_items *it, struct err *e)
{
	if (it->n > 1)
		qsort(it->v, it->n, sizeof(*it->v), az_item_cmp);
	for (size_t i = 1; i < it->n; i++)
		if (!strcmp(it->v[i - 1].key, it->v[i].key))
			return err_set(e, ERR_PROVIDER,
				       "secrets %s and %s both give the key %s (tag one of them with " AZ_KEY_TAG ")",
				       it->v[i - 1].name, it->v[i].name,
				       it->v[i].key);
	return 0;
}

/* The entry version of the layout: a hash of the secrets' names and
 * version ids, in key order. */
static void az_items_version(const struct az_items *it,
			     char out[PROVIDER_VERSION_MAX])
{
	crypto_generichash_state st;
	unsigned char h[24];

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	for (size_t i = 0; i < it->n; i++) {
		if (it->v[i].gone)
			continue;
		crypto_generichash_update(&st, (const unsigned char *)it->v[i].name,
					  strlen(it->v[i].name) + 1);
		crypto_generichash_update(&st, (const unsigned char *)it->v[i].version,
					  strlen(it->v[i].version) + 1);
	}
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(out, "set-", 4);
	sodium_bin2hex(out + 4, PROVIDER_VERSION_MAX - 4, h, sizeof(h));
}

/* Read one listed secret's latest value into m. */
static int az_item_read(struct az_op *op, struct az_item *it, struct kvmap *m,
			struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct az_op one = *op;
	json_t *root = NULL, *value;
	int rc;

	one.what = it->name;
	rc = az_get_raw(&one, it->name, NULL, &rs, e);
	if (rc < 0 && e->code == ERR_NOTFOUND) {
		/* deleted since the list */
		it->gone = true;
		err_clear(e);
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	root = http_json_parse(&rs);
	rc = az_bundle_get(root, it->name, &value, it->version, e);
	if (rc == 0 && kvmap_set(m, it->key, json_string_value(value),
				 json_string_length(value)) < 0)
		rc = err_oom(e);
out:
	json_decref(root);
	http_response_free(&rs);
	return rc;
}

/* The per-secret layout: list, then read each secret. */
static int az_prefix_read(struct az_op *op, const char *prefix,
			  struct entry *out, struct az_items *items,
			  struct err *e)
{
	struct az_collect c = { prefix, items };
	size_t live = 0;
	int rc = az_list_walk(op, az_collect_one, &c, e);

	if (rc == 0)
		rc = az_items_check(items, e);
	for (size_t i = 0; rc == 0 && i < items->n; i++) {
		rc = az_item_read(op, &items->v[i], &out->map, e);
		live += rc == 0 && !items->v[i].gone;
	}
	if (rc == 0 && live == 0)
		rc = err_set(e, ERR_NOTFOUND, "no secret named %s... in the vault",
			     prefix);
	if (rc == 0)
		az_items_version(items, out->version);
	if (rc < 0)
		entry_free(out);
	return rc;
}

/* ---- fetch ---- */

static int azure_fetch(void *state, const char *locator, const char *params,
		       struct entry *out, struct err *e)
{
	struct az_items items = { NULL, 0 };
	struct az_ref r;
	struct az_op op;
	int rc;

	if (az_ref_parse(locator, params, &r, e) < 0)
		return -1;
	az_op_start(&op, state, r.prefix ? r.prefix : locator);
	if (r.prefix)
		rc = az_prefix_read(&op, r.prefix, out, &items, e);
	else
		rc = az_get(&op, locator, r.version, out, NULL, e);
	az_items_free(&items);
	az_ref_free(&r);
	return rc;
}

/* ---- writes ---- */

/* PUT /secrets/NAME {"value","contentType"?,"tags"?}; the new version
 * into version. */
static int az_put(struct az_op *op, const char *name, const char *val,
		  size_t len, const char *ctype, json_t *tags,
		  char version[AZ_VERSION_MAX + 1], struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf body = SECBUF_INIT;
	json_t *req = json_object(), *v = json_stringn(val, len), *root = NULL;
	char *url = az_url(op->az, name, NULL);
	int rc = -1;

	if (len > AZ_VALUE_MAX) {
		err_set(e, ERR_TOOBIG, "%s: %zu bytes; a Key Vault secret holds at most %d",
			op->what, len, AZ_VALUE_MAX);
		goto out;
	}
	if (!v) {
		err_set(e, ERR_INVALID, "%s: Key Vault holds text only (UTF-8)",
			op->what);
		goto out;
	}
	if (!req || !url || json_object_set(req, "value", v) < 0 ||
	    (ctype && json_object_set_new(req, "contentType", json_string(ctype)) < 0) ||
	    (tags && json_object_set(req, "tags", tags) < 0) ||
	    http_json_dump(req, &body) < 0) {
		err_oom(e);
		goto out;
	}
	if (az_call_ok(op, "PUT", url, &body, &rs, e) < 0)
		goto out;
	root = http_json_parse(&rs);
	if (!az_id_segment(json_object_get(root, "id"), version, AZ_VERSION_MAX + 1) ||
	    !az_version_valid(version)) {
		az_garbage(e, op->what, "no secret id with a version in the answer");
		e->code = ERR_UNSURE;	/* answered 2xx: it most likely landed */
		goto out;
	}
	rc = 0;
out:
	json_decref(root);
	json_decref(v);
	json_decref(req);
	secbuf_free(&body);
	http_response_free(&rs);
	free(url);
	return rc;
}

/* DELETE /secrets/NAME (a soft delete); one already gone is fine. */
static int az_delete(struct az_op *op, const char *name, struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	char *url = az_url(op->az, name, NULL);
	int rc = url ? az_call_ok(op, "DELETE", url, NULL, &rs, e) : err_oom(e);

	if (rc < 0 && e->code == ERR_NOTFOUND) {
		err_clear(e);
		rc = 0;
	}
	http_response_free(&rs);
	free(url);
	return rc;
}

/* What kit_store_nocas's callbacks share for one store(). */
struct az_store {
	struct az_op *op;
	const char *name;	/* JSON layout */
	const char *prefix;	/* per-secret layout */
	bool have_first;
	struct az_cur cur;	/* JSON layout: the version replaced */
	struct az_items items;	/* per-secret: the first read's secrets */
	struct kvmap prev;	/* per-secret: the first read's values */
};

static int az_store_read(void *ctx, struct entry *out, struct err *e)
{
	struct az_store *s = ctx;
	struct az_items items = { NULL, 0 };
	bool first = !s->have_first;
	int rc;

	s->have_first = true;
	if (!s->prefix)
		return az_get(s->op, s->name, NULL, out, first ? &s->cur : NULL, e);
	rc = az_prefix_read(s->op, s->prefix, out, first ? &s->items : &items, e);
	if (rc == 0 && first && kvmap_copy(&s->prev, &out->map) < 0)
		rc = err_oom(e);
	az_items_free(&items);
	return rc;
}

/* The JSON layout's value of m: a single value as it is, else a JSON
 * object keeping the JSON types of unchanged values. */
static int az_json_value(const struct az_store *s, const struct kvmap *m,
			 struct secbuf *out, struct err *e)
{
	json_t *obj = NULL;
	int rc;

	if (m->n == 1 && m->items[0].key[0] == '\0')
		return secbuf_set(out, m->items[0].val, m->items[0].len) < 0 ?
			err_oom(e) : 0;
	if (http_json_from_map(m, s->cur.obj, s->name, &obj, e) < 0)
		return -1;
	rc = http_json_dump(obj, out) < 0 ? err_oom(e) : 0;
	json_decref(obj);
	return rc;
}

static int az_json_write(struct az_store *s, const struct kvmap *m,
			 char version[PROVIDER_VERSION_MAX], struct err *e)
{
	struct secbuf val = SECBUF_INIT;
	bool single = m->n == 1 && m->items[0].key[0] == '\0';
	const char *ctype = s->cur.ctype;
	int rc;

	if (!single)
		ctype = AZ_JSON_TYPE;
	else if (ctype && !strcmp(ctype, AZ_JSON_TYPE))
		ctype = NULL;
	rc = az_json_value(s, m, &val, e);
	if (rc == 0)
		rc = az_put(s->op, s->name, val.data ? val.data : "", val.len,
			    ctype, s->cur.tags, version, e);
	secbuf_free(&val);
	return rc;
}

static struct az_item *az_items_find(struct az_items *it, const char *key)
{
	for (size_t i = 0; i < it->n; i++)
		if (!it->v[i].gone && !strcmp(it->v[i].key, key))
			return &it->v[i];
	return NULL;
}

/* Whether a secret name is taken (names are case-insensitive). */
static bool az_items_has_name(const struct az_items *it, const char *name)
{
	for (size_t i = 0; i < it->n; i++)
		if (!it->v[i].gone && !strcasecmp(it->v[i].name, name))
			return true;
	return false;
}

/* New keys of m as items (name derived, tagged), checked before anything
 * is written: a name must be valid and not another secret's. */
static int az_items_plan(struct az_store *s, const struct kvmap *m,
			 struct err *e)
{
	for (size_t i = 0; i < m->n; i++) {
		const char *key = m->items[i].key;
		struct az_item *it;
		char *name;

		if (az_items_find(&s->items, key))
			continue;
		name = az_name_of(s->prefix, key, e);
		if (!name)
			return -1;
		if (az_items_has_name(&s->items, name)) {
			err_set(e, ERR_INVALID,
				"key %s: its secret name %s is taken by another key's secret",
				key, name);
			free(name);
			return -1;
		}
		it = az_items_add(&s->items);
		if (!it) {
			free(name);
			return err_oom(e);
		}
		it->name = name;
		it->key = strdup(key);
		if (!it->key)
			return err_oom(e);
	}
	return 0;
}

/* Tags of a written secret: its own, with the key's tag set. */
static json_t *az_item_tags(const struct az_item *it)
{
	json_t *t = it->tags ? json_deep_copy(it->tags) : json_object();

	if (t && json_object_set_new(t, AZ_KEY_TAG, json_string(it->key)) < 0) {
		json_decref(t);
		return NULL;
	}
	return t;
}

/* PUT each changed or new key, DELETE each removed one. */
static int az_items_write(struct az_store *s, const struct kvmap *m,
			  char version[PROVIDER_VERSION_MAX], struct err *e)
{
	struct az_op one = *s->op;
	int rc = az_items_plan(s, m, e);

	for (size_t i = 0; rc == 0 && i < s->items.n; i++) {
		struct az_item *it = &s->items.v[i];
		const struct kv *now = kvmap_get(m, it->key);
		const struct kv *was = kvmap_get(&s->prev, it->key);
		json_t *tags;

		if (it->gone)
			continue;
		one.what = it->name;
		if (!now) {
			rc = az_delete(&one, it->name, e);
			it->gone = rc == 0;
			continue;
		}
		if (was && was->len == now->len &&
		    !memcmp(was->val, now->val, now->len))
			continue;
		tags = az_item_tags(it);
		rc = tags ? az_put(&one, it->name, now->val, now->len, it->ctype,
				   tags, it->version, e) : err_oom(e);
		json_decref(tags);
	}
	if (rc < 0)
		return err_prefix(e, "%s (the keys before it are written): ",
				  s->prefix);
	if (az_items_check(&s->items, e) < 0)
		return -1;
	az_items_version(&s->items, version);
	return 0;
}

static int az_store_write(void *ctx, const struct kvmap *m, bool create,
			  char version[PROVIDER_VERSION_MAX], struct err *e)
{
	struct az_store *s = ctx;

	(void)create;
	if (s->prefix)
		return az_items_write(s, m, version, e);
	return az_json_write(s, m, version, e);
}

/* Key Vault has no compare-and-set: kit_store_nocas reads before and
 * after. */
static int azure_store(void *state, const char *locator, const char *params,
		       const struct kvmap *m,
		       const char *expect, char new_version[PROVIDER_VERSION_MAX],
		       struct err *e)
{
	struct az_op op;
	struct az_ref r;
	struct az_store s = { .op = &op, .name = locator };
	struct kit_nocas n = { .ctx = &s, .read = az_store_read,
			       .write = az_store_write };
	int rc;

	err_clear(e);
	if (az_ref_parse(locator, params, &r, e) < 0)
		return -1;
	if (r.version) {
		az_ref_free(&r);
		return err_set(e, ERR_READONLY, "%s: a pinned version is read-only",
			       locator);
	}
	s.prefix = r.prefix;
	az_op_start(&op, state, r.prefix ? r.prefix : locator);
	n.what = op.what;
	n.deadline_ms = op.deadline;
	rc = kit_store_nocas(&n, m, expect, new_version, e);
	json_decref(s.cur.obj);
	json_decref(s.cur.tags);
	free(s.cur.ctype);
	az_items_free(&s.items);
	kvmap_free(&s.prev);
	az_ref_free(&r);
	return rc;
}

/* ---- list ---- */

struct az_names {
	const char *prefix;
	struct strv *out;
};

static int az_names_one(void *ctx, const char *name, json_t *item,
			struct err *e)
{
	struct az_names *c = ctx;

	(void)item;
	if (strncmp(name, c->prefix, strlen(c->prefix)))
		return 0;
	return strv_push(c->out, name) < 0 ? err_oom(e) : 0;
}

static int azure_list(void *state, const char *prefix, struct strv *out,
		      struct err *e)
{
	struct az_names c = { prefix, out };
	struct az_op op;
	int rc;

	az_op_start(&op, state, prefix[0] ? prefix : "list");
	rc = az_list_walk(&op, az_names_one, &c, e);
	if (rc < 0)
		strv_free(out);
	else
		strv_sort_unique(out);
	return rc;
}

/* ---- create ---- */

static const char *const azure_options[] = {
	"vault", "api_version", "credential", "tenant_id", "client_id",
	"client_secret_file", "authority_host", "imds_endpoint",
	"disable_challenge_resource_verification",
	"ca_file", "ca_path", "client_cert", "client_key", "tls_skip_verify",
	NULL
};

static void azure_destroy(void *state)
{
	struct azure *az = state;

	if (!az)
		return;
	az_auth_free(az->auth);
	http_client_free(az->http);
	pthread_mutex_destroy(&az->lock);
	free(az->name);
	free(az->vault);
	free(az->host);
	free(az->api);
	free(az);
}

/* A vault name: 3 to 24 letters, digits and '-', starting with a letter. */
static bool az_vault_name_valid(const char *s)
{
	size_t len = strlen(s);

	if (len < AZ_VAULT_NAME_MIN || len > AZ_VAULT_NAME_MAX ||
	    !isalpha((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* vault = NAME or URL into az->vault and az->host. */
static int az_parse_vault(struct azure *az, const struct provider_conf *conf,
			  struct err *e)
{
	const char *s = conf_opt_get(conf, "vault");
	char what[160], host[256], *url = NULL;

	snprintf(what, sizeof(what), "azure %s", conf->name);
	if (!s || !s[0])
		return err_set(e, ERR_INVALID,
			       "no vault: set vault = NAME (https://NAME.vault.azure.net) or a https:// URL");
	if (!strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8)) {
		if (kit_opt_url("vault", s, what, &az->vault, e) < 0)
			return -1;
	} else if (!az_vault_name_valid(s)) {
		return err_set(e, ERR_INVALID,
			       "option vault: '%.64s' is neither a vault name (3 to 24 letters, digits and '-') nor a https:// URL",
			       s);
	} else if (asprintf(&url, "https://%s.vault.azure.net", s) < 0) {
		return err_oom(e);
	} else {
		az->vault = url;
	}
	if (!az_url_host(az->vault, host, sizeof(host)))
		return err_set(e, ERR_INVALID, "option vault: no host in %s",
			       az->vault);
	az->host = strdup(host);
	return az->host ? 0 : err_oom(e);
}

static int az_parse_api(struct azure *az, const struct provider_conf *conf,
			struct err *e)
{
	const char *s = kit_opt(conf, "api_version", NULL, AZ_API_DEFAULT);
	size_t len = strlen(s);

	if (len > AZ_API_MAX || strspn(s, "0123456789abcdefghijklmnopqrstuvwxyz.-") != len)
		return err_set(e, ERR_INVALID,
			       "option api_version: '%.40s' is not an API version (e.g. 7.4)",
			       s);
	az->api = strdup(s);
	return az->api ? 0 : err_oom(e);
}

static int azure_create(const struct provider_conf *conf, void **state,
			struct err *e)
{
	struct http_client_conf hc = { .name = conf->name };
	struct azure *az = calloc(1, sizeof(*az));
	bool no_verify = false;
	char what[160];

	if (!az)
		return err_oom(e);
	pthread_mutex_init(&az->lock, NULL);
	snprintf(what, sizeof(what), "azure %s", conf->name);
	if (sodium_init() < 0) {
		err_set(e, ERR_PROVIDER, "libsodium failed to start");
		goto fail;
	}
	az->timeout_ms = conf->request_timeout_ms > 0 ?
		conf->request_timeout_ms : HTTP_TIMEOUT_DEFAULT_MS;
	az->name = strdup(conf->name);
	if (!az->name) {
		err_oom(e);
		goto fail;
	}
	if (az_parse_vault(az, conf, e) < 0 || az_parse_api(az, conf, e) < 0 ||
	    kit_opt_bool(conf, "disable_challenge_resource_verification", false,
			 &no_verify, e) < 0 ||
	    kit_opt_tls(conf, NULL, what, &hc, e) < 0)
		goto fail;
	az->verify = !no_verify;
	hc.timeout_ms = az->timeout_ms;
	if (http_client_new(&hc, &az->http, e) < 0 ||
	    az_auth_new(conf, az->http, &az->auth, e) < 0)
		goto fail;
	*state = az;
	return 0;
fail:
	azure_destroy(az);
	return -1;
}

const struct provider_ops azure_provider_ops = {
	.type = "azure-keyvault",
	.options = azure_options,
	/* no PROVIDER_CAP_CAS: see azure_store */
	.caps = PROVIDER_CAP_WRITE | PROVIDER_CAP_LIST,
	.create = azure_create,
	.destroy = azure_destroy,
	.check = azure_check,
	.fetch = azure_fetch,
	.store = azure_store,
	.list = azure_list,
};
