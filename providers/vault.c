/* vault.c - HashiCorp Vault, KV secrets engine version 1 and 2.
 *
 *   [provider vault]
 *   type = vault
 *   address = https://vault.example.com:8200
 *   auth = approle                  ; token | approle | kubernetes
 *   role_id_file = /etc/secretfs/role-id
 *   secret_id_file = /etc/secretfs/secret-id
 *
 *   env.DB_PASSWORD = vault://secret/shared/database#password
 *   store = vault://kv/team/billing?mount=kv/team
 *
 * A locator is the logical path <mount>/<path> (never with "data/"). The
 * mount may hold slashes; it is found through sys/internal/ui/mounts and
 * remembered per mount prefix, or pinned with ?mount=. KV v2 entries carry
 * their version number and are written with check-and-set. KV v1 has no
 * versions: an entry's version is a keyed hash of its content, and CAS is
 * emulated by reading before writing (a small race window remains, see
 * vault_v1_store).
 *
 * Tokens: auth = token reads token_file, VAULT_TOKEN or ~/.vault-token;
 * approle and kubernetes log in lazily, on the first request. Renewal is
 * lazy too: the first request after 2/3 of the token's TTL renews it (or
 * logs in again once renewal stops extending it); no thread is needed.
 *
 * Try it: tests/emulators/vault.py --port 18200 --root-token root, then
 * mount with address = http://127.0.0.1:18200 and a token_file holding
 * "root" (mode 0600).
 */
#include "provider.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/secmem.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "http.h"
#include "kit.h"

#define VAULT_ADDR_DEFAULT "https://127.0.0.1:8200"
#define VAULT_JWT_DEFAULT "/var/run/secrets/kubernetes.io/serviceaccount/token"
#define VAULT_LOCATOR_MAX 1024
/* credential files are small; anything bigger is a mistake */
#define VAULT_CRED_MAX (64 * 1024)
#define VAULT_LIST_DEPTH_MAX 32
#define VAULT_LIST_MAX 100000
#define VAULT_MOUNTS_MAX 256
#define VAULT_ERRTEXT_MAX 160
/* failed logins back off from 1 s to 5 min, like Vault Agent */
#define VAULT_LOGIN_BACKOFF_MIN_MS 1000L
#define VAULT_LOGIN_BACKOFF_MAX_MS (5 * 60 * 1000L)
/* A token this young that gets 403 is denied for real: no re-login. The
 * age doubles (to 5 min) each time a re-login did not cure a 403, so a
 * path the policy denies does not cause a login per request. */
#define VAULT_RELOGIN_AGE_MIN_MS 10000L
#define VAULT_RELOGIN_AGE_MAX_MS (5 * 60 * 1000L)
/* writes retried here when Vault demands a cas we could not know */
#define VAULT_CAS_ATTEMPTS 3
#define VAULT_HASH_BYTES 16

enum vault_auth {
	VAULT_AUTH_TOKEN,
	VAULT_AUTH_APPROLE,
	VAULT_AUTH_KUBERNETES,
};

struct vault_mount {
	char *prefix;	/* "secret", "kv/team": no slash at either end */
	int version;	/* 1 or 2 */
};

struct vault {
	char *name;
	char *addr;		/* no trailing '/' */
	char *ns;		/* X-Vault-Namespace, or NULL */
	int kv_version;		/* 0: detect */
	enum vault_auth auth;
	char *token_file;	/* auth = token: the file, or NULL for env */
	char *env_token;	/* VAULT_TOKEN, wiped memory */
	char *role_id_file;
	char *secret_id_file;
	char *auth_mount;	/* approle / kubernetes path under auth/ */
	char *role;
	char *jwt_file;
	long timeout_ms;
	struct http_client *http;
	/* keys the content hash that versions KV v1 entries, so a version
	 * (visible in xattrs) cannot be used to guess a short value */
	unsigned char hash_key[crypto_generichash_KEYBYTES];

	/* token state; held across logins so threads do not log in twice */
	pthread_mutex_t auth_lock;
	char *token;		/* wiped memory; NULL until first use */
	uint64_t token_gen;	/* bumped whenever the token changes */
	int64_t token_got_ms;
	int64_t expire_at_ms;	/* 0: no expiry known */
	int64_t renew_at_ms;	/* 0: nothing to do */
	long lease_s;		/* renewal increment */
	bool renewable;
	struct stat token_st;	/* of token_file when read, to see changes */
	int64_t login_retry_ms;	/* no login attempt before this */
	long login_backoff_ms;
	struct err login_err;	/* the last login failure */
	long relogin_age_ms;	/* see VAULT_RELOGIN_AGE_MIN_MS */

	pthread_mutex_t mount_lock;
	struct vault_mount *mounts;
	size_t nmounts;
};

/* One provider operation: every request of it shares one deadline. */
struct vault_op {
	struct vault *v;
	int64_t deadline;
};

/* A locator resolved against its mount. */
struct vault_loc {
	const char *locator;
	char *mount;		/* malloc'd */
	const char *path;	/* inside locator, after "mount/"; may be "" */
	int version;		/* KV 1 or 2 */
	long long get_version;	/* ?version=N, 0: latest */
};

/* ---- small helpers ---- */

/* The first of Vault's "errors" for a message, made printable and short.
 * Vault's errors describe requests, never echo stored values. */
static void vault_errors_text(const struct http_response *rs, char *out,
			      size_t size)
{
	json_t *root = http_json_parse(rs);
	json_t *errs = json_object_get(root, "errors");
	const char *s = json_string_value(json_array_get(errs, 0));
	size_t n = 0;

	out[0] = '\0';
	if (s && size > 4) {
		out[n++] = ':';
		out[n++] = ' ';
		for (; *s && n < size - 1 && n < VAULT_ERRTEXT_MAX; s++)
			out[n++] = isprint((unsigned char)*s) ? *s : '?';
		out[n] = '\0';
	}
	json_decref(root);
}

static bool vault_errors_contain(const struct http_response *rs,
				 const char *needle)
{
	json_t *root = http_json_parse(rs);
	json_t *errs = json_object_get(root, "errors");
	bool found = false;
	size_t i;
	json_t *x;

	json_array_foreach(errs, i, x) {
		const char *s = json_string_value(x);

		if (s && strstr(s, needle))
			found = true;
	}
	json_decref(root);
	return found;
}

/* An unusual status of a request about what (a locator or an API path).
 * A 401 or 403 is a refusal whatever its body (Vault's JSON, a proxy's
 * HTML page): http_status_refused. */
static int vault_status_err(const struct http_response *rs, const char *what,
			    struct err *e)
{
	char detail[VAULT_ERRTEXT_MAX + 8];

	if (http_status_refused(rs->status))
		return err_set(e, ERR_ACCESS, "%s: permission denied (HTTP %ld)",
			       what, rs->status);
	vault_errors_text(rs, detail, sizeof(detail));
	switch (rs->status) {
	case 404:
		return err_set(e, ERR_NOTFOUND, "%s: no such entry", what);
	case 412:
		return err_set(e, ERR_PROVIDER,
			       "%s: vault is not yet consistent (HTTP 412)",
			       what);
	case 429:
		return err_set(e, ERR_PROVIDER,
			       "%s: vault rate limit exceeded (HTTP 429)", what);
	case 503:
		return err_set(e, ERR_PROVIDER,
			       "%s: vault unavailable: sealed, standby or overloaded (HTTP 503%s)",
			       what, detail);
	}
	return err_set(e, rs->status == 400 ? ERR_INVALID : ERR_PROVIDER,
		       "%s: HTTP %ld (%s)%s", what, rs->status,
		       http_status_text(rs->status), detail);
}

static int vault_garbage(struct err *e, const char *what, const char *why)
{
	return err_set(e, ERR_PROVIDER, "%s: garbage from vault: %s", what, why);
}

/* ---- credential files ---- */

/* ---- JSON to entries (pure) ---- */


/* A JSON integer >= min, or -1. */
static long long vault_json_int(const json_t *j, long long min)
{
	if (!json_is_integer(j) || json_integer_value(j) < min)
		return -1;
	return json_integer_value(j);
}

/* A KV v2 read (GET <m>/data/<p>) answer into out, and its data object
 * into *raw when raw is not NULL. Not found, deleted and destroyed
 * versions (a 404 either with {"errors":[]} or with the full envelope and
 * data.data null) are ERR_NOTFOUND. */
static int vault_v2_read_parse(const struct http_response *rs,
			       const char *what, struct entry *out,
			       json_t **raw, struct err *e)
{
	json_t *root, *data, *dd, *md;
	long long version;
	int rc = -1;

	if (rs->status != 200 && rs->status != 404)
		return vault_status_err(rs, what, e);
	root = http_json_parse(rs);
	data = json_object_get(root, "data");
	if (rs->status == 404) {
		md = json_object_get(data, "metadata");
		version = vault_json_int(json_object_get(md, "version"), 1);
		if (json_is_object(data) && version > 0)
			rc = err_set(e, ERR_NOTFOUND,
				     "%s: no such entry (version %lld is deleted)",
				     what, version);
		else
			rc = err_set(e, ERR_NOTFOUND, "%s: no such entry", what);
		goto out;
	}
	if (!json_is_object(root) || !json_is_object(data)) {
		vault_garbage(e, what, "no data object");
		goto out;
	}
	dd = json_object_get(data, "data");
	md = json_object_get(data, "metadata");
	version = vault_json_int(json_object_get(md, "version"), 1);
	if (json_is_null(dd)) {
		rc = err_set(e, ERR_NOTFOUND, "%s: no such entry (deleted)",
			     what);
		goto out;
	}
	if (!json_is_object(md) || version < 0) {
		vault_garbage(e, what, "no metadata.version");
		goto out;
	}
	if (http_json_to_map(dd, &out->map, what, e) < 0)
		goto out;
	snprintf(out->version, sizeof(out->version), "%lld", version);
	if (raw)
		*raw = json_incref(dd);
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* Version of a KV v1 entry: a keyed hash of its sorted map. */
static void vault_v1_version(const unsigned char *key, const struct kvmap *m,
			     char version[PROVIDER_VERSION_MAX])
{
	crypto_generichash_state st;
	unsigned char h[VAULT_HASH_BYTES];

	crypto_generichash_init(&st, key, crypto_generichash_KEYBYTES,
				sizeof(h));
	for (size_t i = 0; i < m->n; i++) {
		uint64_t len = m->items[i].len;

		crypto_generichash_update(&st, (const unsigned char *)m->items[i].key,
					  strlen(m->items[i].key) + 1);
		crypto_generichash_update(&st, (const unsigned char *)&len,
					  sizeof(len));
		crypto_generichash_update(&st, (const unsigned char *)m->items[i].val,
					  m->items[i].len);
	}
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_memzero(&st, sizeof(st));
	secmem_stack_wipe();
	sodium_bin2hex(version, PROVIDER_VERSION_MAX, h, sizeof(h));
}

/* A KV v2 path answered on a mount we took for v1 says so in warnings. */
static bool vault_v1_wrong_version(const json_t *root)
{
	json_t *warn = json_object_get(root, "warnings");
	size_t i;
	json_t *w;

	json_array_foreach(warn, i, w) {
		const char *s = json_string_value(w);

		if (s && strstr(s, "versioned K/V"))
			return true;
	}
	return false;
}

/* A KV v1 read (GET <m>/<p>) answer into out. */
static int vault_v1_read_parse(const struct http_response *rs,
			       const unsigned char *hash_key, const char *what,
			       struct entry *out, json_t **raw, struct err *e)
{
	json_t *root, *data;
	int rc = -1;

	if (rs->status != 200 && rs->status != 404)
		return vault_status_err(rs, what, e);
	root = http_json_parse(rs);
	if (rs->status == 404) {
		if (vault_v1_wrong_version(root))
			rc = err_set(e, ERR_PROVIDER,
				     "%s: the mount is KV version 2 but was taken for version 1 (set kv_version = 2 or ?mount=)",
				     what);
		else
			rc = err_set(e, ERR_NOTFOUND, "%s: no such entry", what);
		goto out;
	}
	data = json_object_get(root, "data");
	if (!json_is_object(root) || !json_is_object(data)) {
		vault_garbage(e, what, "no data object");
		goto out;
	}
	if (http_json_to_map(data, &out->map, what, e) < 0)
		goto out;
	vault_v1_version(hash_key, &out->map, out->version);
	if (raw)
		*raw = json_incref(data);
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* A KV v2 metadata answer: the current version number, and whether that
 * version holds data (not deleted, not destroyed). A deletion time in the
 * future (delete_version_after) is not a deletion yet. */
static int vault_meta_parse(const struct http_response *rs, const char *what,
			    long long *current, bool *live, struct err *e)
{
	json_t *root = http_json_parse(rs);
	json_t *data = json_object_get(root, "data");
	json_t *ver, *dt;
	char key[32];
	int rc = -1;

	*live = false;
	*current = vault_json_int(json_object_get(data, "current_version"), 0);
	if (!json_is_object(data) || *current < 0) {
		vault_garbage(e, what, "no current_version in the metadata");
		goto out;
	}
	rc = 0;
	if (*current == 0)
		goto out;
	snprintf(key, sizeof(key), "%lld", *current);
	ver = json_object_get(json_object_get(data, "versions"), key);
	if (!json_is_object(ver)) {
		/* no details: assume it holds data, the safe side for CAS */
		*live = true;
		goto out;
	}
	dt = json_object_get(ver, "deletion_time");
	*live = !json_is_true(json_object_get(ver, "destroyed"));
	if (*live && json_is_string(dt) && json_string_value(dt)[0]) {
		long long t = clock_rfc3339_parse(json_string_value(dt));

		*live = t >= 0 && t > (long long)time(NULL);
	}
out:
	json_decref(root);
	return rc;
}

/* auth.{client_token,lease_duration,renewable} of a login or renewal. The
 * token goes to *token (wiped memory) when token is not NULL. */
static int vault_auth_parse(const struct http_response *rs, const char *what,
			    char **token, long *lease_s, bool *renewable,
			    struct err *e)
{
	json_t *root = http_json_parse(rs);
	json_t *auth = json_object_get(root, "auth");
	json_t *tok = json_object_get(auth, "client_token");
	long long lease = vault_json_int(json_object_get(auth, "lease_duration"), 0);
	int rc = -1;

	if (!json_is_object(auth) || lease < 0 || !json_is_string(tok) ||
	    json_string_length(tok) == 0 ||
	    kit_has_ctl(json_string_value(tok), json_string_length(tok))) {
		vault_garbage(e, what, "no auth.client_token and lease_duration");
		goto out;
	}
	*lease_s = lease > LONG_MAX / 1000 ? LONG_MAX / 1000 : (long)lease;
	*renewable = json_is_true(json_object_get(auth, "renewable"));
	if (token) {
		*token = secmem_dup(json_string_value(tok),
				    json_string_length(tok));
		if (!*token) {
			err_oom(e);
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* ---- locators and parameters (pure) ---- */

/* A path of non-empty segments, none "." or "..". */
static bool vault_path_valid(const char *s)
{
	if (!s[0] || strlen(s) > VAULT_LOCATOR_MAX || kit_has_ctl(s, strlen(s)))
		return false;
	for (;;) {
		size_t len = strcspn(s, "/");

		if (len == 0 || (len == 1 && s[0] == '.') ||
		    (len == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		if (!s[len])
			return true;
		s += len + 1;
	}
}

/* ?mount=M: a path, slashes trimmed, into *mount (malloc'd), else NULL. */
static int vault_param_mount(char *val, char **mount, struct err *e)
{
	char *m = val;
	size_t len;

	*mount = NULL;
	if (!val)
		return 0;
	while (*m == '/')
		m++;
	len = strlen(m);
	while (len > 0 && m[len - 1] == '/')
		m[--len] = '\0';
	if (!vault_path_valid(m))
		return err_set(e, ERR_INVALID,
			       "?mount= must be a path of non-empty segments");
	*mount = strdup(m);
	return *mount ? 0 : err_oom(e);
}

/* ?version=N&mount=M: *mount (malloc'd, slashes trimmed) and *version
 * (0 when absent). */
static int vault_params_parse(const char *params, char **mount,
			      long long *version, struct err *e)
{
	struct kit_param p[] = { { "version", NULL }, { "mount", NULL } };
	const char *ver;
	char *end;
	int rc;

	*version = 0;
	*mount = NULL;
	if (kit_params_parse(params, p, 2, "version=N, mount=M", e) < 0)
		return -1;
	ver = p[0].value;
	rc = vault_param_mount(p[1].value, mount, e);
	if (rc == 0 && ver) {
		errno = 0;
		*version = strtoll(ver, &end, 10);
		if (errno || end == ver || *end || *version < 1 ||
		    !isdigit((unsigned char)ver[0]))
			rc = err_set(e, ERR_INVALID,
				     "?version= must be a positive number");
	}
	kit_params_free(p, 2);
	if (rc < 0) {
		free(*mount);
		*mount = NULL;
	}
	return rc;
}

/* The rest of locator below mount, or NULL when it is not under it. */
static const char *vault_under(const char *locator, const char *mount)
{
	size_t n = strlen(mount);

	if (strncmp(locator, mount, n))
		return NULL;
	if (locator[n] == '\0')
		return locator + n;
	return locator[n] == '/' ? locator + n + 1 : NULL;
}

/* The longest cached mount holding locator; NULL when none. */
static const struct vault_mount *vault_mount_match(const struct vault_mount *ms,
						   size_t n, const char *locator)
{
	const struct vault_mount *best = NULL;

	for (size_t i = 0; i < n; i++)
		if (vault_under(locator, ms[i].prefix) &&
		    (!best || strlen(ms[i].prefix) > strlen(best->prefix)))
			best = &ms[i];
	return best;
}

/* sys/internal/ui/mounts/<path>: data.path (the mount, "kv/team/") and
 * data.options.version. prefix is NULL when data.path does not hold the
 * locator. */
static int vault_ui_mount_parse(const struct http_response *rs,
				const char *locator, char **prefix,
				int *version, struct err *e)
{
	json_t *root = http_json_parse(rs);
	json_t *data = json_object_get(root, "data");
	json_t *path = json_object_get(data, "path");
	const char *ver = json_string_value(json_object_get(
		json_object_get(data, "options"), "version"));
	char *p;
	size_t len;
	int rc = -1;

	*prefix = NULL;
	if (!json_is_object(data) || !json_is_string(path)) {
		vault_garbage(e, "sys/internal/ui/mounts", "no data.path");
		goto out;
	}
	*version = ver && !strcmp(ver, "2") ? 2 : 1;
	p = strdup(json_string_value(path));
	if (!p) {
		err_oom(e);
		goto out;
	}
	len = strlen(p);
	while (len > 0 && p[len - 1] == '/')
		p[--len] = '\0';
	if (len > 0 && vault_under(locator, p))
		*prefix = p;
	else
		free(p);
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* ---- requests ---- */

/* Vault Enterprise answers 412 while a performance standby has not yet
 * caught up with a write: worth another try. */
static enum http_verdict vault_classify(void *ctx,
					const struct http_response *rs)
{
	(void)ctx;
	return rs->status == 412 ? HTTP_VERDICT_RETRY : HTTP_VERDICT_DEFAULT;
}

/* One Vault API call without retry on 403. path is below /v1/ and
 * escaped; token may be NULL (logins). */
static int vault_send(struct vault_op *op, const char *method,
		      const char *path, const char *query,
		      const struct secbuf *body, const char *token,
		      struct http_response *rs, struct err *e)
{
	struct vault *v = op->v;
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_request rq = {
		.method = method,
		.body = body ? body->data : NULL,
		.body_len = body ? body->len : 0,
		/* KV data and login credentials never go to another host */
		.body_secret = body != NULL,
		.deadline_ms = op->deadline,
		.classify = vault_classify,
	};
	char *url = NULL;
	int rc;

	if (asprintf(&url, "%s/v1/%s%s%s", v->addr, path, query ? "?" : "",
		     query ? query : "") < 0) {
		url = NULL;
		rc = err_oom(e);
		goto out;
	}
	rq.url = url;
	if (http_headers_add(&h, "X-Vault-Request", "true", false) < 0 ||
	    (v->ns && http_headers_add(&h, "X-Vault-Namespace", v->ns, false) < 0) ||
	    (token && http_headers_add(&h, "X-Vault-Token", token, true) < 0)) {
		rc = err_oom(e);
		goto out;
	}
	rq.headers = &h;
	rc = http_request(v->http, &rq, rs, e);
out:
	http_headers_free(&h);
	free(url);
	return rc;
}

static void vault_token_set(struct vault *v, char *token, long lease_s,
			    bool renewable)
{
	int64_t now = clock_now_ms();

	secmem_free_str(v->token);
	v->token = token;
	v->token_gen++;
	v->token_got_ms = now;
	v->lease_s = lease_s;
	v->renewable = renewable;
	v->expire_at_ms = lease_s > 0 ? now + lease_s * 1000LL : 0;
	/* renew (or, for logins, log in again) at 2/3 of the TTL */
	v->renew_at_ms = lease_s > 0 ? now + lease_s * 2000LL / 3 : 0;
	if (v->auth == VAULT_AUTH_TOKEN && !renewable)
		v->renew_at_ms = 0;
}

/* auth = token: learn the token's TTL with lookup-self, so that renewable
 * tokens get renewed. A failure only means no renewal. */
static void vault_token_lookup(struct vault_op *op, char *token)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct err e;
	long long ttl = -1;
	bool renewable = false;

	if (vault_send(op, "GET", "auth/token/lookup-self", NULL, NULL, token,
		       &rs, &e) == 0 && rs.status == 200) {
		json_t *root = http_json_parse(&rs);
		json_t *data = json_object_get(root, "data");

		ttl = vault_json_int(json_object_get(data, "ttl"), 0);
		renewable = json_is_true(json_object_get(data, "renewable"));
		json_decref(root);
	}
	if (ttl < 0)
		log_debug("vault %s: token lookup-self failed; the token will not be renewed",
			  op->v->name);
	vault_token_set(op->v, token, ttl > 0 ? (long)ttl : 0, renewable);
	http_response_free(&rs);
}

/* auth = token: token_file, ~/.vault-token, or VAULT_TOKEN. */
static int vault_token_load(struct vault_op *op, struct err *e)
{
	struct vault *v = op->v;
	struct secbuf b = SECBUF_INIT;
	struct stat st;
	char *tok;

	if (!v->token_file) {
		tok = secmem_dup(v->env_token, strlen(v->env_token));
	} else {
		if (kit_file_read(v->token_file, KIT_FILE_PRIVATE | KIT_FILE_TRIM, VAULT_CRED_MAX, &b, &st, e) < 0)
			return err_prefix(e, "vault token: ");
		if (kit_has_ctl(b.data, b.len)) {
			secbuf_free(&b);
			return err_set(e, ERR_ACCESS,
				       "vault token: %s holds control characters",
				       v->token_file);
		}
		tok = secmem_dup(b.data, b.len);
		secbuf_free(&b);
		v->token_st = st;
	}
	if (!tok)
		return err_oom(e);
	vault_token_lookup(op, tok);
	return 0;
}

/* The JSON body of an approle or kubernetes login, in wiped memory. */
static int vault_login_body(struct vault *v, struct secbuf *body,
			    struct err *e)
{
	struct secbuf a = SECBUF_INIT, b = SECBUF_INIT;
	struct stat st;
	json_t *j = NULL;
	int rc = -1;

	if (v->auth == VAULT_AUTH_APPROLE) {
		if (kit_file_read(v->role_id_file, KIT_FILE_PRIVATE | KIT_FILE_TRIM, VAULT_CRED_MAX, &a, &st, e) < 0 ||
		    kit_file_read(v->secret_id_file, KIT_FILE_PRIVATE | KIT_FILE_TRIM, VAULT_CRED_MAX, &b, &st, e) < 0)
			goto out;
		j = json_pack("{s:s%,s:s%}", "role_id", a.data, a.len,
			      "secret_id", b.data, b.len);
	} else {
		/* re-read at every login: projected tokens rotate */
		if (kit_file_read(v->jwt_file, KIT_FILE_TRIM, VAULT_CRED_MAX, &b, &st, e) < 0)
			goto out;
		j = json_pack("{s:s,s:s%}", "role", v->role, "jwt", b.data,
			      b.len);
	}
	if (!j) {
		err_set(e, ERR_ACCESS, "login credentials are not UTF-8 text");
		goto out;
	}
	if (http_json_dump(j, body) < 0) {
		err_oom(e);
		goto out;
	}
	rc = 0;
out:
	json_decref(j);
	secbuf_free(&a);
	secbuf_free(&b);
	return rc;
}

/* approle / kubernetes: POST auth/<mount>/login. */
static int vault_login_once(struct vault_op *op, struct err *e)
{
	struct vault *v = op->v;
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf body = SECBUF_INIT;
	char *path = NULL, *mount = http_path_escape(v->auth_mount);
	char what[300], detail[VAULT_ERRTEXT_MAX + 8];
	char *token = NULL;
	long lease = 0;
	bool renewable = false;
	int rc = -1;

	snprintf(what, sizeof(what), "vault login (auth/%s)", v->auth_mount);
	if (!mount || asprintf(&path, "auth/%s/login", mount) < 0) {
		path = NULL;
		err_oom(e);
		goto out;
	}
	if (vault_login_body(v, &body, e) < 0 ||
	    vault_send(op, "POST", path, NULL, &body, NULL, &rs, e) < 0)
		goto out;
	if (rs.status == 400 || rs.status == 401 || rs.status == 403) {
		vault_errors_text(&rs, detail, sizeof(detail));
		err_set(e, ERR_ACCESS, "HTTP %ld%s", rs.status, detail);
		goto out;
	}
	if (rs.status != 200) {
		vault_status_err(&rs, "login", e);
		goto out;
	}
	if (vault_auth_parse(&rs, "login", &token, &lease, &renewable, e) < 0)
		goto out;
	vault_token_set(v, token, lease, renewable);
	log_info("vault %s: logged in through auth/%s (token TTL %ld s%s)",
		 v->name, v->auth_mount, lease,
		 renewable ? ", renewable" : "");
	rc = 0;
out:
	if (rc < 0)
		err_prefix(e, "%s: ", what);
	secbuf_free(&body);
	http_response_free(&rs);
	free(path);
	free(mount);
	return rc;
}

/* Log in (or load the token), backing off after failures so a broken
 * setup does not hammer Vault. Called with auth_lock held. */
static int vault_login(struct vault_op *op, struct err *e)
{
	struct vault *v = op->v;
	int64_t now = clock_now_ms();
	int rc;

	if (v->auth == VAULT_AUTH_TOKEN)
		return vault_token_load(op, e);
	if (now < v->login_retry_ms) {
		*e = v->login_err;
		return err_prefix(e, "(next login attempt in %" PRId64 " s) ",
				  (v->login_retry_ms - now + 999) / 1000);
	}
	rc = vault_login_once(op, e);
	if (rc == 0) {
		v->login_backoff_ms = 0;
		v->login_retry_ms = 0;
		return 0;
	}
	v->login_backoff_ms = v->login_backoff_ms ?
		v->login_backoff_ms * 2 : VAULT_LOGIN_BACKOFF_MIN_MS;
	if (v->login_backoff_ms > VAULT_LOGIN_BACKOFF_MAX_MS)
		v->login_backoff_ms = VAULT_LOGIN_BACKOFF_MAX_MS;
	v->login_retry_ms = clock_now_ms() + v->login_backoff_ms;
	v->login_err = *e;
	log_warn("vault %s: %s", v->name, e->msg);
	return -1;
}

enum vault_renewal {
	VAULT_RENEWED,		/* the TTL grew: keep the token */
	VAULT_RENEW_OVER,	/* refused, or the TTL stopped growing */
	VAULT_RENEW_LATER,	/* Vault unreachable: try again later */
};

/* POST auth/token/renew-self with the token's own lease as increment. */
static enum vault_renewal vault_renew_self(struct vault_op *op)
{
	struct vault *v = op->v;
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf body = SECBUF_INIT;
	enum vault_renewal r = VAULT_RENEW_LATER;
	int64_t old_expire = v->expire_at_ms;
	long lease = 0;
	bool renewable = false;
	char inc[64];
	struct err e;

	snprintf(inc, sizeof(inc), "{\"increment\":\"%lds\"}", v->lease_s);
	if (secbuf_puts(&body, inc) < 0 ||
	    vault_send(op, "POST", "auth/token/renew-self", NULL, &body,
		       v->token, &rs, &e) < 0)
		goto out;
	if (rs.status == 400 || rs.status == 403) {
		r = VAULT_RENEW_OVER;
	} else if (rs.status == 200 &&
		   vault_auth_parse(&rs, "renew-self", NULL, &lease,
				    &renewable, &e) == 0) {
		r = VAULT_RENEW_OVER;
		/* the increment "may be ignored": only growth counts */
		if (clock_now_ms() + lease * 1000LL > old_expire + 1000) {
			char *tok = v->token;

			v->token = NULL;
			vault_token_set(v, tok, lease, renewable);
			r = VAULT_RENEWED;
		}
	}
out:
	secbuf_free(&body);
	http_response_free(&rs);
	return r;
}

/* Past 2/3 of the TTL (auth_lock held): renew the token, or log in again
 * once renewal is over. A failure is not an error while the token lives:
 * the request goes on with it. */
static void vault_renew(struct vault_op *op)
{
	struct vault *v = op->v;
	enum vault_renewal r = v->renewable ? vault_renew_self(op) :
		VAULT_RENEW_OVER;
	int64_t now = clock_now_ms();
	struct err e;

	if (r == VAULT_RENEWED) {
		log_debug("vault %s: token renewed (TTL %ld s)", v->name,
			  v->lease_s);
		return;
	}
	if (r == VAULT_RENEW_LATER && v->expire_at_ms > now + 2000) {
		v->renew_at_ms = now + (v->expire_at_ms - now) / 2;
		log_debug("vault %s: token renewal failed; retrying later",
			  v->name);
		return;
	}
	if (v->auth == VAULT_AUTH_TOKEN) {
		/* nothing else to do: use it until it expires */
		v->renew_at_ms = 0;
		log_debug("vault %s: the token can no longer be renewed",
			  v->name);
		return;
	}
	log_debug("vault %s: token renewal is over; logging in again",
		  v->name);
	if (vault_login(op, &e) < 0)
		v->renew_at_ms = v->login_retry_ms;
}

/* A copy of the current token (wiped memory) and its generation. */
static int vault_token_get(struct vault_op *op, char **tok, uint64_t *gen,
			   struct err *e)
{
	struct vault *v = op->v;
	int rc = 0;

	pthread_mutex_lock(&v->auth_lock);
	if (v->token && v->expire_at_ms && clock_now_ms() >= v->expire_at_ms &&
	    v->auth != VAULT_AUTH_TOKEN) {
		secmem_free_str(v->token);
		v->token = NULL;
	}
	if (!v->token)
		rc = vault_login(op, e);
	else if (v->renew_at_ms && clock_now_ms() >= v->renew_at_ms)
		vault_renew(op);
	if (rc == 0) {
		*tok = secmem_dup(v->token, strlen(v->token));
		*gen = v->token_gen;
		if (!*tok)
			rc = err_oom(e);
	}
	pthread_mutex_unlock(&v->auth_lock);
	return rc;
}

static bool vault_stat_changed(const struct stat *a, const struct stat *b)
{
	return a->st_ino != b->st_ino || a->st_dev != b->st_dev ||
	       a->st_size != b->st_size ||
	       a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
	       a->st_mtim.tv_nsec != b->st_mtim.tv_nsec;
}

/* A request with token generation gen got 403: is a retry with a new
 * token worth it? Re-reads a changed token file, or logs in again when
 * the token is not brand new (a fresh token denied is a real denial). */
static bool vault_token_refresh(struct vault_op *op, uint64_t gen)
{
	struct vault *v = op->v;
	bool retry = false;
	struct stat st;
	struct err e;

	pthread_mutex_lock(&v->auth_lock);
	if (v->token_gen != gen) {
		retry = true;	/* another thread already got a new one */
	} else if (v->auth == VAULT_AUTH_TOKEN) {
		retry = v->token_file && stat(v->token_file, &st) == 0 &&
			vault_stat_changed(&st, &v->token_st) &&
			vault_token_load(op, &e) == 0;
	} else if (clock_now_ms() - v->token_got_ms >= v->relogin_age_ms) {
		retry = vault_login(op, &e) == 0;
	}
	pthread_mutex_unlock(&v->auth_lock);
	return retry;
}

/* Whether the retry after a re-login was still denied. */
static void vault_relogin_outcome(struct vault *v, bool denied)
{
	pthread_mutex_lock(&v->auth_lock);
	if (!denied)
		v->relogin_age_ms = VAULT_RELOGIN_AGE_MIN_MS;
	else if (v->relogin_age_ms < VAULT_RELOGIN_AGE_MAX_MS / 2)
		v->relogin_age_ms *= 2;
	else
		v->relogin_age_ms = VAULT_RELOGIN_AGE_MAX_MS;
	pthread_mutex_unlock(&v->auth_lock);
}

/* A Vault API call with the token; a 403 is retried once with a new
 * token when one can be had. */
static int vault_call(struct vault_op *op, const char *method,
		      const char *path, const char *query,
		      const struct secbuf *body, struct http_response *rs,
		      struct err *e)
{
	for (int pass = 0;; pass++) {
		char *tok = NULL;
		uint64_t gen = 0;
		int rc;

		if (vault_token_get(op, &tok, &gen, e) < 0)
			return -1;
		rc = vault_send(op, method, path, query, body, tok, rs, e);
		secmem_free_str(tok);
		if (pass > 0 && rc == 0)
			vault_relogin_outcome(op->v, rs->status == 403);
		if (rc < 0 || rs->status != 403 || pass > 0 ||
		    !vault_token_refresh(op, gen))
			return rc;
		log_debug("vault %s: permission denied; retrying with a new token",
			  op->v->name);
	}
}

/* "<escaped mount>/<api>/<escaped path>" or without api. */
static char *vault_api_path(const char *mount, const char *api,
			    const char *path)
{
	char *m = http_path_escape(mount), *p = http_path_escape(path), *out;

	if (!m || !p || asprintf(&out, "%s%s%s%s%s", m, api ? "/" : "",
				 api ? api : "", path[0] ? "/" : "", p) < 0)
		out = NULL;
	free(m);
	free(p);
	return out;
}

/* ---- mounts ---- */

static void vault_mount_remember(struct vault *v, const char *prefix,
				 int version)
{
	struct vault_mount *ms;

	pthread_mutex_lock(&v->mount_lock);
	for (size_t i = 0; i < v->nmounts; i++)
		if (!strcmp(v->mounts[i].prefix, prefix))
			goto out;
	if (v->nmounts >= VAULT_MOUNTS_MAX)
		goto out;
	ms = realloc(v->mounts, (v->nmounts + 1) * sizeof(*ms));
	if (!ms)
		goto out;
	v->mounts = ms;
	ms[v->nmounts].prefix = strdup(prefix);
	ms[v->nmounts].version = version;
	if (ms[v->nmounts].prefix)
		v->nmounts++;
out:
	pthread_mutex_unlock(&v->mount_lock);
}

/* Ask Vault which mount holds path: *prefix (malloc'd) and *version.
 * A 404 (older Vault) or 403 (no access to the endpoint) means KV v1
 * mounted at the first segment, as the CLI assumes; *cache is false after
 * a 403, which may change with the token's policies. */
static int vault_mount_detect(struct vault_op *op, const char *path,
			      char **prefix, int *version, bool *cache,
			      struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	char *esc = http_path_escape(path), *api = NULL;
	int rc = -1;

	*prefix = NULL;
	*version = 1;
	*cache = true;
	if (!esc || asprintf(&api, "sys/internal/ui/mounts/%s", esc) < 0) {
		api = NULL;
		err_oom(e);
		goto out;
	}
	if (vault_call(op, "GET", api, NULL, NULL, &rs, e) < 0)
		goto out;
	if (rs.status == 200) {
		rc = vault_ui_mount_parse(&rs, path, prefix, version, e);
		if (rc == 0 && !*prefix)
			log_debug("vault %s: %s: the mount vault names does not hold it; taking its first segment",
				  op->v->name, path);
	} else if (rs.status == 404 || rs.status == 403) {
		log_debug("vault %s: %s: mount lookup answered HTTP %ld; taking KV v1 at its first segment",
			  op->v->name, path, rs.status);
		*cache = rs.status == 404;
		rc = 0;
	} else {
		vault_status_err(&rs, "sys/internal/ui/mounts", e);
		err_prefix(e, "%s: finding the mount: ", path);
	}
	if (rc == 0 && !*prefix) {
		*prefix = strndup(path, strcspn(path, "/"));
		if (!*prefix)
			rc = err_oom(e);
	}
out:
	http_response_free(&rs);
	free(esc);
	free(api);
	return rc;
}

/* Resolve locator (and its ?mount= pin) to mount, path and KV version. */
static int vault_resolve(struct vault_op *op, const char *locator,
			 const char *pin, struct vault_loc *loc,
			 struct err *e)
{
	struct vault *v = op->v;
	const struct vault_mount *m;
	int version = 0;
	bool cache = true;

	loc->locator = locator;
	loc->mount = NULL;
	pthread_mutex_lock(&v->mount_lock);
	m = pin ? NULL : vault_mount_match(v->mounts, v->nmounts, locator);
	if (pin) {
		for (size_t i = 0; i < v->nmounts; i++)
			if (!strcmp(v->mounts[i].prefix, pin))
				version = v->mounts[i].version;
	} else if (m) {
		loc->mount = strdup(m->prefix);
		version = m->version;
	}
	pthread_mutex_unlock(&v->mount_lock);
	if (pin) {
		loc->mount = strdup(pin);
		if (loc->mount && !version && !v->kv_version) {
			char *prefix;

			/* only the version is wanted: the pin wins */
			if (vault_mount_detect(op, pin, &prefix, &version,
					       &cache, e) < 0)
				goto fail;
			free(prefix);
		}
		if (loc->mount && cache)
			vault_mount_remember(v, pin, version ? version : 1);
	} else if (!m) {
		if (vault_mount_detect(op, locator, &loc->mount, &version,
				       &cache, e) < 0)
			goto fail;
		if (cache)
			vault_mount_remember(v, loc->mount, version);
	}
	if (!loc->mount)
		return err_oom(e);
	loc->path = vault_under(locator, loc->mount);
	if (!loc->path) {
		err_set(e, ERR_INVALID, "%s is not under the mount %s", locator,
			loc->mount);
		goto fail;
	}
	loc->version = v->kv_version ? v->kv_version : version ? version : 1;
	return 0;
fail:
	free(loc->mount);
	loc->mount = NULL;
	return -1;
}

/* Locator and params of fetch/store into loc. */
static int vault_loc_open(struct vault_op *op, const char *locator,
			  const char *params, struct vault_loc *loc,
			  struct err *e)
{
	char *pin = NULL;
	long long version = 0;
	int rc;

	loc->mount = NULL;
	if (!vault_path_valid(locator))
		return err_set(e, ERR_INVALID,
			       "locator %.64s: must be MOUNT/PATH, non-empty segments, no . or ..",
			       locator);
	if (vault_params_parse(params, &pin, &version, e) < 0)
		return -1;
	rc = vault_resolve(op, locator, pin, loc, e);
	free(pin);
	if (rc < 0)
		return -1;
	loc->get_version = version;
	if (!loc->path[0])
		rc = err_set(e, ERR_INVALID,
			     "%s names the mount itself, not an entry in it",
			     locator);
	else if (version && loc->version != 2)
		rc = err_set(e, ERR_INVALID,
			     "%s: ?version= needs a KV version 2 mount (%s is version 1)",
			     locator, loc->mount);
	if (rc < 0) {
		free(loc->mount);
		loc->mount = NULL;
	}
	return rc;
}

static void vault_op_start(struct vault_op *op, void *state)
{
	op->v = state;
	op->deadline = clock_now_ms() + op->v->timeout_ms;
}

/* ---- fetch ---- */

/* The entry at loc: KV v2 data/<p>[?version=N], or KV v1 <p>; its JSON
 * data object too when raw is not NULL. */
static int vault_read(struct vault_op *op, const struct vault_loc *loc,
		      long long version, struct entry *out, json_t **raw,
		      struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	char *api = vault_api_path(loc->mount, loc->version == 2 ? "data" : NULL,
				   loc->path);
	char query[40];
	int rc = -1;

	if (!api)
		return err_oom(e);
	snprintf(query, sizeof(query), "version=%lld", version);
	if (vault_call(op, "GET", api, version ? query : NULL, NULL, &rs, e) < 0)
		goto out;
	if (loc->version == 2)
		rc = vault_v2_read_parse(&rs, loc->locator, out, raw, e);
	else
		rc = vault_v1_read_parse(&rs, op->v->hash_key, loc->locator,
					 out, raw, e);
out:
	if (rc < 0)
		entry_free(out);
	http_response_free(&rs);
	free(api);
	return rc;
}

static int vault_fetch(void *state, const char *locator, const char *params,
		       struct entry *out, struct err *e)
{
	struct vault_op op;
	struct vault_loc loc;
	int rc;

	vault_op_start(&op, state);
	if (vault_loc_open(&op, locator, params, &loc, e) < 0)
		return -1;
	rc = vault_read(&op, &loc, loc.get_version, out, NULL, e);
	free(loc.mount);
	return rc;
}

/* ---- store ---- */


/* The data object stored at loc (version N, or the latest when 0) and
 * its version, for http_json_from_map; *prev is NULL when there is none. */
static int vault_prev_data(struct vault_op *op, const struct vault_loc *loc,
			   long long version, json_t **prev,
			   char cur_version[PROVIDER_VERSION_MAX],
			   struct err *e)
{
	struct entry en = ENTRY_INIT;
	int rc = vault_read(op, loc, version, &en, prev, e);

	*cur_version = '\0';
	if (rc == 0)
		memcpy(cur_version, en.version, PROVIDER_VERSION_MAX);
	entry_free(&en);
	if (rc < 0 && e->code == ERR_NOTFOUND) {
		err_clear(e);
		*prev = NULL;
		rc = 0;
	}
	return rc;
}

/* KV v2 metadata: the cas to write "as if absent" (the current version
 * when it is deleted or destroyed), or ERR_CONFLICT when it holds data. */
static int vault_v2_cas_absent(struct vault_op *op, const struct vault_loc *loc,
			       bool any, long long *cas, struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	char *api = vault_api_path(loc->mount, "metadata", loc->path);
	bool live = false;
	int rc = -1;

	if (!api)
		return err_oom(e);
	if (vault_call(op, "GET", api, NULL, NULL, &rs, e) < 0)
		goto out;
	*cas = 0;
	if (rs.status == 404)
		rc = 0;
	else if (rs.status == 200)
		rc = vault_meta_parse(&rs, loc->locator, cas, &live, e);
	else
		rc = vault_status_err(&rs, loc->locator, e);
	if (rc == 0 && live && !any)
		rc = err_set(e, ERR_CONFLICT, "%s: already exists",
			     loc->locator);
out:
	http_response_free(&rs);
	free(api);
	return rc;
}

/* A version string from fetch() as a KV v2 cas. */
static int vault_cas_parse(const char *expect, const char *what,
			   long long *cas, struct err *e)
{
	char *end;

	errno = 0;
	*cas = strtoll(expect, &end, 10);
	if (errno || end == expect || *end || *cas < 1 ||
	    !isdigit((unsigned char)expect[0]))
		return err_set(e, ERR_CONFLICT,
			       "%s: version %.40s is not a KV version 2 version (did the mount change?)",
			       what, expect);
	return 0;
}

/* What a KV v2 write came to, when Vault answered. */
enum vault_post {
	VAULT_POST_WRITTEN,
	VAULT_POST_CAS_MISMATCH,	/* "check-and-set parameter did not match" */
	VAULT_POST_CAS_REQUIRED,	/* the mount has cas_required */
};

/* POST data/<p> with {"options":{"cas":N},"data":{...}}; cas < 0: none.
 * 0 with *outcome, or -1 with e. */
static int vault_v2_post(struct vault_op *op, const struct vault_loc *loc,
			 json_t *data, long long cas,
			 char new_version[PROVIDER_VERSION_MAX],
			 enum vault_post *outcome, struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf body = SECBUF_INIT;
	char *api = vault_api_path(loc->mount, "data", loc->path);
	json_t *doc = json_object(), *root = NULL;
	long long version;
	int rc = -1;

	*outcome = VAULT_POST_WRITTEN;
	if (!api || !doc || json_object_set(doc, "data", data) < 0 ||
	    (cas >= 0 && json_object_set_new(doc, "options",
					     json_pack("{s:I}", "cas",
						       (json_int_t)cas)) < 0) ||
	    http_json_dump(doc, &body) < 0) {
		err_oom(e);
		goto out;
	}
	if (vault_call(op, "POST", api, NULL, &body, &rs, e) < 0)
		goto out;
	if (rs.status == 400 && vault_errors_contain(&rs, "did not match")) {
		*outcome = VAULT_POST_CAS_MISMATCH;
		rc = 0;
		goto out;
	}
	if (rs.status == 400 && vault_errors_contain(&rs, "parameter required")) {
		*outcome = VAULT_POST_CAS_REQUIRED;
		rc = 0;
		goto out;
	}
	if (rs.status != 200 && rs.status != 204) {
		vault_status_err(&rs, loc->locator, e);
		goto out;
	}
	root = http_json_parse(&rs);
	version = vault_json_int(json_object_get(json_object_get(root, "data"),
						 "version"), 1);
	if (version < 0) {
		vault_garbage(e, loc->locator, "no data.version after a write");
		e->code = ERR_UNSURE;	/* answered 2xx: it most likely landed */
		goto out;
	}
	if (new_version)
		snprintf(new_version, PROVIDER_VERSION_MAX, "%lld", version);
	rc = 0;
out:
	json_decref(root);
	json_decref(doc);
	secbuf_free(&body);
	http_response_free(&rs);
	free(api);
	return rc;
}

/* KV v2: one POST with check-and-set. expect "" writes only when the
 * entry is absent, or its latest version deleted or destroyed (Vault then
 * wants cas = that version, read from the metadata). expect NULL sends no
 * cas, unless the mount requires one: then the current version's. */
static int vault_v2_store(struct vault_op *op, const struct vault_loc *loc,
			  const struct kvmap *m, const char *expect,
			  char new_version[PROVIDER_VERSION_MAX],
			  struct err *e)
{
	char cur[PROVIDER_VERSION_MAX];
	json_t *prev = NULL, *data = NULL;
	long long cas = -1;
	enum vault_post outcome = VAULT_POST_WRITTEN;
	int rc = -1;

	if (expect && expect[0] && vault_cas_parse(expect, loc->locator, &cas, e) < 0)
		return -1;
	if (expect && !expect[0])
		cas = 0;
	/* the entry's types: the version the caller read, or the latest */
	if ((!expect || expect[0]) &&
	    vault_prev_data(op, loc, cas > 0 ? cas : 0, &prev, cur, e) < 0)
		return -1;
	if (http_json_from_map(m, prev, loc->locator, &data, e) < 0)
		goto out;
	for (int attempt = 0; attempt < VAULT_CAS_ATTEMPTS; attempt++) {
		rc = vault_v2_post(op, loc, data, cas, new_version, &outcome, e);
		if (rc < 0 || outcome == VAULT_POST_WRITTEN)
			goto out;
		rc = -1;
		if (outcome == VAULT_POST_CAS_REQUIRED && cas >= 0) {
			err_set(e, ERR_PROVIDER,
				"%s: vault demands a check-and-set parameter although one was sent",
				loc->locator);
			goto out;
		}
		/* a mismatch against a version the caller read is final */
		if (outcome == VAULT_POST_CAS_MISMATCH && expect && expect[0])
			break;
		/* absent-or-deleted, or any: ask the metadata */
		if (vault_v2_cas_absent(op, loc, !expect, &cas, e) < 0)
			goto out;
	}
	if (expect && !expect[0])
		err_set(e, ERR_CONFLICT, "%s: already exists", loc->locator);
	else
		err_set(e, ERR_CONFLICT, "%s: changed since it was read",
			loc->locator);
out:
	json_decref(prev);
	json_decref(data);
	return rc;
}

/* KV v1 has no check-and-set. With an expected version we read the entry,
 * compare, and write: a writer that slips in between the read and the
 * write (a few milliseconds) is overwritten. Best effort, documented;
 * use KV v2 where writers race. */
static int vault_v1_store(struct vault_op *op, const struct vault_loc *loc,
			  const struct kvmap *m, const char *expect,
			  char new_version[PROVIDER_VERSION_MAX],
			  struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf body = SECBUF_INIT;
	char *api = vault_api_path(loc->mount, NULL, loc->path);
	char cur[PROVIDER_VERSION_MAX];
	json_t *prev = NULL, *data = NULL;
	int rc = -1;

	if (!api)
		return err_oom(e);
	if (vault_prev_data(op, loc, 0, &prev, cur, e) < 0)
		goto out;
	if (expect && !expect[0] && prev) {
		err_set(e, ERR_CONFLICT, "%s: already exists", loc->locator);
		goto out;
	}
	if (expect && expect[0] && (!prev || strcmp(expect, cur))) {
		err_set(e, ERR_CONFLICT, "%s: changed since it was read",
			loc->locator);
		goto out;
	}
	if (http_json_from_map(m, prev, loc->locator, &data, e) < 0)
		goto out;
	if (http_json_dump(data, &body) < 0) {
		err_oom(e);
		goto out;
	}
	if (vault_call(op, "POST", api, NULL, &body, &rs, e) < 0)
		goto out;
	if (rs.status != 200 && rs.status != 204) {
		vault_status_err(&rs, loc->locator, e);
		goto out;
	}
	if (new_version)
		vault_v1_version(op->v->hash_key, m, new_version);
	rc = 0;
out:
	json_decref(prev);
	json_decref(data);
	secbuf_free(&body);
	http_response_free(&rs);
	free(api);
	return rc;
}

static int vault_store(void *state, const char *locator, const char *params,
		       const struct kvmap *m,
		       const char *expect, char new_version[PROVIDER_VERSION_MAX],
		       struct err *e)
{
	struct vault_op op;
	struct vault_loc loc;
	int rc;

	vault_op_start(&op, state);
	err_clear(e);
	/* the entry fetch() read: ?mount= too */
	if (vault_loc_open(&op, locator, params, &loc, e) < 0)
		return -1;
	if (loc.version == 2)
		rc = vault_v2_store(&op, &loc, m, expect, new_version, e);
	else
		rc = vault_v1_store(&op, &loc, m, expect, new_version, e);
	free(loc.mount);
	return rc;
}

/* ---- list ---- */

/* A name in a listing: one segment, or one followed by '/' (a folder). */
static bool vault_list_key_valid(const json_t *k)
{
	const char *name = json_string_value(k);
	size_t len = name ? strlen(name) : 0;

	if (!name || len == 0 || len != json_string_length(k))
		return false;
	if (name[len - 1] == '/')
		len--;
	return len > 0 && !memchr(name, '/', len) &&
	       !kit_has_ctl(name, len) &&
	       !(len == 1 && name[0] == '.') &&
	       !(len == 2 && name[0] == '.' && name[1] == '.');
}

/* LIST one folder (dir is "" or ends with '/'), recursing into folders. */
static int vault_list_dir(struct vault_op *op, const struct vault_loc *loc,
			  const char *dir, int depth, struct strv *out,
			  struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	char *api = NULL, *esc = http_path_escape(dir);
	char *mount = http_path_escape(loc->mount);
	json_t *root = NULL, *keys, *k;
	size_t i;
	int rc = -1;

	if (!esc || !mount ||
	    asprintf(&api, "%s%s%s", mount,
		     loc->version == 2 ? "/metadata/" : "/", esc) < 0) {
		api = NULL;
		err_oom(e);
		goto out;
	}
	if (vault_call(op, "LIST", api, NULL, NULL, &rs, e) < 0)
		goto out;
	rc = 0;
	if (rs.status == 404)
		goto out;
	if (rs.status != 200) {
		rc = vault_status_err(&rs, loc->mount, e);
		goto out;
	}
	root = http_json_parse(&rs);
	keys = json_object_get(json_object_get(root, "data"), "keys");
	if (!json_is_array(keys)) {
		rc = vault_garbage(e, loc->mount, "no data.keys in a listing");
		goto out;
	}
	json_array_foreach(keys, i, k) {
		const char *name = json_string_value(k);
		char *sub = NULL;
		size_t len = name ? strlen(name) : 0;

		if (!vault_list_key_valid(k) || out->n >= VAULT_LIST_MAX)
			continue;
		if (asprintf(&sub, "%s%s", dir, name) < 0) {
			rc = err_oom(e);
			break;
		}
		if (name[len - 1] == '/') {
			if (depth + 1 < VAULT_LIST_DEPTH_MAX)
				rc = vault_list_dir(op, loc, sub, depth + 1,
						    out, e);
		} else {
			char *locator = NULL;

			if (asprintf(&locator, "%s/%s", loc->mount, sub) < 0 ||
			    strv_push(out, locator) < 0)
				rc = err_oom(e);
			free(locator);
		}
		free(sub);
		if (rc < 0)
			break;
	}
out:
	json_decref(root);
	http_response_free(&rs);
	free(api);
	free(esc);
	free(mount);
	return rc;
}

/* The mounts table: sys/internal/ui/mounts (any token; data.secret), else
 * sys/mounts (needs read on it; data). NULL with e set when neither. */
static json_t *vault_mounts_table(struct vault_op *op, struct err *e)
{
	static const struct {
		const char *api;
		const char *key;
	} srcs[] = {
		{ "sys/internal/ui/mounts", "secret" },
		{ "sys/mounts", NULL },
	};
	struct http_response rs = HTTP_RESPONSE_INIT;
	json_t *table = NULL;

	for (size_t i = 0; i < 2 && !table; i++) {
		json_t *root, *data;

		if (vault_call(op, "GET", srcs[i].api, NULL, NULL, &rs, e) < 0)
			break;
		if (rs.status != 200) {
			vault_status_err(&rs, srcs[i].api, e);
			continue;
		}
		root = http_json_parse(&rs);
		data = json_object_get(root, "data");
		if (srcs[i].key)
			data = json_object_get(data, srcs[i].key);
		if (json_is_object(data))
			table = json_incref(data);
		else
			vault_garbage(e, srcs[i].api, "no table of mounts");
		json_decref(root);
	}
	http_response_free(&rs);
	return table;
}

/* prefix "": every KV mount the token can see. */
static int vault_list_mounts(struct vault_op *op, struct strv *out,
			     struct err *e)
{
	json_t *table = vault_mounts_table(op, e), *mnt;
	const char *path;
	int rc = 0;

	if (!table)
		return -1;
	json_object_foreach(table, path, mnt) {
		const char *type = json_string_value(json_object_get(mnt, "type"));
		const char *ver = json_string_value(json_object_get(
			json_object_get(mnt, "options"), "version"));
		struct vault_loc loc = { .path = "" };
		size_t len = strlen(path);

		if (!type || (strcmp(type, "kv") && strcmp(type, "generic")))
			continue;
		while (len > 0 && path[len - 1] == '/')
			len--;
		loc.mount = strndup(path, len);
		if (!loc.mount) {
			rc = err_oom(e);
			break;
		}
		loc.locator = loc.mount;
		loc.version = op->v->kv_version ? op->v->kv_version :
			ver && !strcmp(ver, "2") ? 2 : 1;
		if (vault_path_valid(loc.mount)) {
			vault_mount_remember(op->v, loc.mount, loc.version);
			rc = vault_list_dir(op, &loc, "", 0, out, e);
		}
		free(loc.mount);
		if (rc < 0)
			break;
	}
	json_decref(table);
	return rc;
}

static int vault_list(void *state, const char *prefix, struct strv *out,
		      struct err *e)
{
	struct vault_op op;
	struct vault_loc loc = { NULL };
	char *p = strdup(prefix), *dir = NULL;
	size_t len = strlen(prefix);
	int rc = -1;

	vault_op_start(&op, state);
	if (!p)
		return err_oom(e);
	/* "team/" and "team" are one folder */
	while (len > 0 && p[len - 1] == '/')
		p[--len] = '\0';
	if (len == 0) {
		rc = vault_list_mounts(&op, out, e);
		goto out;
	}
	if (!vault_path_valid(p)) {
		err_set(e, ERR_INVALID, "prefix %.64s: not a valid path", p);
		goto out;
	}
	if (vault_resolve(&op, p, NULL, &loc, e) < 0)
		goto out;
	if (asprintf(&dir, "%s%s", loc.path, loc.path[0] ? "/" : "") < 0) {
		dir = NULL;
		err_oom(e);
		goto out;
	}
	rc = vault_list_dir(&op, &loc, dir, 0, out, e);
out:
	if (rc < 0)
		strv_free(out);
	else
		strv_sort_unique(out);
	free(loc.mount);
	free(dir);
	free(p);
	return rc;
}

/* ---- create ---- */

static const char *const vault_options[] = {
	"address", "namespace", "ca_file", "ca_path", "client_cert",
	"client_key", "tls_skip_verify", "kv_version", "auth", "token_file",
	"role_id_file", "secret_id_file", "mount", "role", "jwt_file",
	"max_response_bytes", NULL
};

static void vault_destroy(void *state)
{
	struct vault *v = state;

	if (!v)
		return;
	http_client_free(v->http);
	secmem_free_str(v->token);
	secmem_free_str(v->env_token);
	for (size_t i = 0; i < v->nmounts; i++)
		free(v->mounts[i].prefix);
	free(v->mounts);
	free(v->name);
	free(v->addr);
	free(v->ns);
	free(v->token_file);
	free(v->role_id_file);
	free(v->secret_id_file);
	free(v->auth_mount);
	free(v->role);
	free(v->jwt_file);
	sodium_memzero(v->hash_key, sizeof(v->hash_key));
	pthread_mutex_destroy(&v->auth_lock);
	pthread_mutex_destroy(&v->mount_lock);
	free(v);
}

static bool vault_set(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return !src || *dst;
}

/* Options that belong to other auth methods are mistakes worth naming. */
static int vault_auth_opts_check(const struct provider_conf *conf,
				 enum vault_auth auth, struct err *e)
{
	static const struct {
		const char *opt;
		unsigned methods;	/* 1 << enum vault_auth */
		const char *where;
	} table[] = {
		{ "token_file", 1 << VAULT_AUTH_TOKEN, "auth = token" },
		{ "role_id_file", 1 << VAULT_AUTH_APPROLE, "auth = approle" },
		{ "secret_id_file", 1 << VAULT_AUTH_APPROLE, "auth = approle" },
		{ "mount", 1 << VAULT_AUTH_APPROLE | 1 << VAULT_AUTH_KUBERNETES,
		  "auth = approle or kubernetes" },
		{ "role", 1 << VAULT_AUTH_KUBERNETES, "auth = kubernetes" },
		{ "jwt_file", 1 << VAULT_AUTH_KUBERNETES, "auth = kubernetes" },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (conf_opt_get(conf, table[i].opt) &&
		    !(table[i].methods & 1u << auth))
			return err_set(e, ERR_INVALID,
				       "option %s is only used with %s",
				       table[i].opt, table[i].where);
	return 0;
}

static int vault_parse_auth(const struct provider_conf *conf,
			    enum vault_auth *auth, struct err *e)
{
	const char *s = conf_opt_get(conf, "auth");

	if (!s || !strcmp(s, "token"))
		*auth = VAULT_AUTH_TOKEN;
	else if (!strcmp(s, "approle"))
		*auth = VAULT_AUTH_APPROLE;
	else if (!strcmp(s, "kubernetes"))
		*auth = VAULT_AUTH_KUBERNETES;
	else
		return err_set(e, ERR_INVALID,
			       "option auth: '%s' is not token, approle or kubernetes",
			       s);
	return vault_auth_opts_check(conf, *auth, e);
}

static int vault_parse_address(struct vault *v, const struct provider_conf *conf,
			       struct err *e)
{
	char what[160];

	snprintf(what, sizeof(what), "vault %s", conf->name);
	return kit_opt_url("address", kit_opt(conf, "address", "VAULT_ADDR",
					      VAULT_ADDR_DEFAULT),
			   what, &v->addr, e);
}

static int vault_parse_kv(struct vault *v, const struct provider_conf *conf,
			  struct err *e)
{
	const char *s = conf_opt_get(conf, "kv_version");

	if (!s || !strcmp(s, "auto"))
		v->kv_version = 0;
	else if (!strcmp(s, "1") || !strcmp(s, "2"))
		v->kv_version = s[0] - '0';
	else
		return err_set(e, ERR_INVALID,
			       "option kv_version: '%s' is not auto, 1 or 2", s);
	return 0;
}

static int vault_parse_size(const struct provider_conf *conf, size_t *out,
			    struct err *e)
{
	const char *s = conf_opt_get(conf, "max_response_bytes");
	unsigned long long n;
	char *end;

	*out = HTTP_MAX_RESPONSE_DEFAULT;
	if (!s)
		return 0;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s || *end || !isdigit((unsigned char)s[0]) ||
	    n < 1024 || n > 1024ULL * 1024 * 1024)
		return err_set(e, ERR_INVALID,
			       "option max_response_bytes: '%s' is not a number of bytes from 1024 to 1073741824",
			       s);
	*out = (size_t)n;
	return 0;
}

/* ~/.vault-token of the user running the daemon. */
static char *vault_home_token(void)
{
	const char *home = getenv("HOME");
	struct passwd pw, *res = NULL;
	char buf[4096], *path = NULL;

	if ((!home || !home[0]) &&
	    getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
		home = res->pw_dir;
	if (!home || !home[0] ||
	    asprintf(&path, "%s/.vault-token", home) < 0)
		return NULL;
	return path;
}

/* auth = token: where the token comes from, checked now. */
static int vault_token_source(struct vault *v, const struct provider_conf *conf,
			      struct err *e)
{
	const char *file = conf_opt_get(conf, "token_file");
	const char *env = getenv("VAULT_TOKEN");

	if (file)
		return vault_set(&v->token_file, file) ?
			kit_file_check("token_file", file, KIT_FILE_PRIVATE, e) :
			err_oom(e);
	if (env && env[0]) {
		if (kit_has_ctl(env, strlen(env)))
			return err_set(e, ERR_INVALID,
				       "VAULT_TOKEN holds control characters");
		v->env_token = secmem_dup(env, strlen(env));
		return v->env_token ? 0 : err_oom(e);
	}
	v->token_file = vault_home_token();
	if (!v->token_file || access(v->token_file, F_OK) < 0)
		return err_set(e, ERR_INVALID,
			       "auth = token but no token: set token_file, or VAULT_TOKEN, or write ~/.vault-token");
	return kit_file_check("~/.vault-token", v->token_file, KIT_FILE_PRIVATE, e);
}

static int vault_parse_login(struct vault *v, const struct provider_conf *conf,
			     struct err *e)
{
	bool ok;

	if (v->auth == VAULT_AUTH_TOKEN)
		return vault_token_source(v, conf, e);
	ok = vault_set(&v->auth_mount, kit_opt(conf, "mount", NULL,
		       v->auth == VAULT_AUTH_APPROLE ? "approle" : "kubernetes"));
	if (ok && v->auth == VAULT_AUTH_APPROLE) {
		ok = vault_set(&v->role_id_file, conf_opt_get(conf, "role_id_file")) &&
		     vault_set(&v->secret_id_file, conf_opt_get(conf, "secret_id_file"));
	} else if (ok) {
		ok = vault_set(&v->role, conf_opt_get(conf, "role")) &&
		     vault_set(&v->jwt_file, kit_opt(conf, "jwt_file", NULL,
						       VAULT_JWT_DEFAULT));
	}
	if (!ok)
		return err_oom(e);
	while (v->auth_mount[0] == '/')
		memmove(v->auth_mount, v->auth_mount + 1, strlen(v->auth_mount));
	if (!vault_path_valid(v->auth_mount))
		return err_set(e, ERR_INVALID, "option mount: '%s' is not a path",
			       v->auth_mount);
	if (v->auth == VAULT_AUTH_APPROLE) {
		if (!v->role_id_file || !v->secret_id_file)
			return err_set(e, ERR_INVALID,
				       "auth = approle needs role_id_file and secret_id_file");
		return kit_file_check("role_id_file", v->role_id_file, KIT_FILE_PRIVATE, e) < 0 ||
		       kit_file_check("secret_id_file", v->secret_id_file, KIT_FILE_PRIVATE, e) < 0 ?
		       -1 : 0;
	}
	if (!v->role)
		return err_set(e, ERR_INVALID, "auth = kubernetes needs role");
	/* the service account token is not checked for permissions:
	 * Kubernetes mounts it 0644, and it is only short-lived proof of
	 * the pod's identity. It may also appear only after start. */
	if (v->jwt_file[0] != '/')
		return err_set(e, ERR_INVALID,
			       "option jwt_file: %s must be an absolute path",
			       v->jwt_file);
	return 0;
}

/* Vault's own client variables, as defaults of the TLS options. */
static const struct kit_tls_env vault_tls_env = {
	"VAULT_CACERT", "VAULT_CAPATH", "VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY"
};

static int vault_create(const struct provider_conf *conf, void **state,
			struct err *e)
{
	struct http_client_conf hc = { .name = conf->name };
	struct vault *v = calloc(1, sizeof(*v));
	char what[160];
	const char *ns;

	if (!v)
		return err_oom(e);
	pthread_mutex_init(&v->auth_lock, NULL);
	pthread_mutex_init(&v->mount_lock, NULL);
	if (sodium_init() < 0) {
		err_set(e, ERR_PROVIDER, "libsodium failed to start");
		goto fail;
	}
	randombytes_buf(v->hash_key, sizeof(v->hash_key));
	v->relogin_age_ms = VAULT_RELOGIN_AGE_MIN_MS;
	v->timeout_ms = conf->request_timeout_ms > 0 ?
		conf->request_timeout_ms : HTTP_TIMEOUT_DEFAULT_MS;
	ns = kit_opt(conf, "namespace", "VAULT_NAMESPACE", NULL);
	if (!vault_set(&v->name, conf->name) || !vault_set(&v->ns, ns)) {
		err_oom(e);
		goto fail;
	}
	if (ns && kit_has_ctl(ns, strlen(ns))) {
		err_set(e, ERR_INVALID, "option namespace: control characters");
		goto fail;
	}
	snprintf(what, sizeof(what), "vault %s", conf->name);
	if (vault_parse_address(v, conf, e) < 0 || vault_parse_kv(v, conf, e) < 0 ||
	    vault_parse_auth(conf, &v->auth, e) < 0 ||
	    vault_parse_size(conf, &hc.max_response, e) < 0 ||
	    kit_opt_tls(conf, &vault_tls_env, what, &hc, e) < 0 ||
	    vault_parse_login(v, conf, e) < 0)
		goto fail;
	hc.timeout_ms = v->timeout_ms;
	if (http_client_new(&hc, &v->http, e) < 0)
		goto fail;
	*state = v;
	return 0;
fail:
	vault_destroy(v);
	return -1;
}

const struct provider_ops vault_provider_ops = {
	.type = "vault",
	.options = vault_options,
	.caps = PROVIDER_CAP_CAS | PROVIDER_CAP_WRITE | PROVIDER_CAP_LIST,
	.create = vault_create,
	.destroy = vault_destroy,
	.fetch = vault_fetch,
	.store = vault_store,
	.list = vault_list,
};
