/* env.c - the daemon's environment as a read-only store.
 *
 *   [provider environ]
 *   type = env
 *   prefix = BILLING_          ; optional: only the variables it starts
 *   strip_prefix = true        ; the default: keys without the prefix
 *
 * environ:// is every (prefixed) variable, one key each; environ://NAME is
 * one variable as a single value (key ""), NAME spelled as environ://
 * shows it (without the prefix when it is stripped). Values are copied
 * into wiped memory at every fetch; the process's own environment block
 * (/proc/PID/environ, readable by its owner and root) keeps the original
 * for as long as the daemon runs, which nothing here can wipe.
 *
 * Try it: DB_PASSWORD=x secretfs -f -c conf /mnt, with
 * env.DB_PASSWORD = environ://DB_PASSWORD in an app.
 */
#include "provider.h"

#include <stdlib.h>
#include <string.h>

#include "kit.h"

#define ENV_VALUE_MAX (64 * 1024)	/* like every store's values */
#define ENV_NAME_MAX 255

extern char **environ;

struct env_store {
	char *prefix;	/* "" for every variable */
	bool strip;
};

static int env_create(const struct provider_conf *conf, void **state,
		      struct err *e)
{
	const char *prefix = kit_opt(conf, "prefix", NULL, "");
	struct env_store *es;
	bool strip;

	if (kit_opt_bool(conf, "strip_prefix", true, &strip, e) < 0)
		return -1;
	if (strchr(prefix, '=') || kit_has_ctl(prefix, strlen(prefix)))
		return err_set(e, ERR_INVALID,
			       "option prefix: '%s' cannot start a variable name",
			       prefix);
	es = calloc(1, sizeof(*es));
	if (es)
		es->prefix = strdup(prefix);
	if (!es || !es->prefix) {
		free(es);
		return err_oom(e);
	}
	es->strip = strip;
	*state = es;
	return 0;
}

static void env_destroy(void *state)
{
	struct env_store *es = state;

	if (es)
		free(es->prefix);
	free(es);
}

/* "" (every variable) or a name without '=' or control characters. */
static int env_check(const char *locator, const char *params, struct err *e)
{
	size_t len = strlen(locator);

	if (params)
		return err_set(e, ERR_INVALID,
			       "%s: environment references take no ?parameters",
			       locator);
	if (len > ENV_NAME_MAX || strchr(locator, '=') ||
	    kit_has_ctl(locator, len))
		return err_set(e, ERR_INVALID,
			       "%s: not an environment variable name", locator);
	return 0;
}

/* The key "NAME=value" shows as, or NULL when the prefix leaves it out. */
static const char *env_key_of(const struct env_store *es, const char *var,
			      size_t namelen)
{
	size_t plen = strlen(es->prefix);

	if (namelen < plen || strncmp(var, es->prefix, plen))
		return NULL;
	if (es->strip && namelen == plen)
		return NULL;	/* the prefix alone names no key */
	return es->strip ? var + plen : var;
}

static int env_add(const char *key, size_t keylen, const char *val,
		   struct kvmap *m, struct err *e)
{
	size_t len = strlen(val);
	char name[ENV_NAME_MAX + 1];

	if (keylen > ENV_NAME_MAX)
		return 0;	/* no reference could name it */
	if (len > ENV_VALUE_MAX)
		return err_set(e, ERR_TOOBIG, "%.*s: value larger than %d bytes",
			       (int)keylen, key, ENV_VALUE_MAX);
	memcpy(name, key, keylen);
	name[keylen] = '\0';
	if (kvmap_set(m, name, val, len) < 0)
		return err_oom(e);
	return 0;
}

/* Every variable the prefix lets through; one (want) when not NULL, under
 * key "". */
static int env_collect(const struct env_store *es, const char *want,
		       struct kvmap *m, struct err *e)
{
	for (char **v = environ; v && *v; v++) {
		const char *eq = strchr(*v, '=');
		const char *key;
		size_t keylen;

		if (!eq)
			continue;
		key = env_key_of(es, *v, (size_t)(eq - *v));
		if (!key)
			continue;
		keylen = (size_t)(eq - key);
		if (want && (strlen(want) != keylen || strncmp(want, key, keylen)))
			continue;
		if (env_add(want ? "" : key, want ? 0 : keylen, eq + 1, m, e) < 0)
			return -1;
		if (want)
			return 0;
	}
	return 0;
}

static int env_fetch(void *state, const char *locator, const char *params,
		     struct entry *out, struct err *e)
{
	const struct env_store *es = state;

	if (env_check(locator, params, e) < 0 ||
	    env_collect(es, locator[0] ? locator : NULL, &out->map, e) < 0) {
		kvmap_free(&out->map);
		return err_prefix(e, "%s: ", locator);
	}
	if (locator[0] && out->map.n == 0)
		return err_set(e, ERR_NOTFOUND,
			       "%s: no such variable in the daemon's environment%s%s",
			       locator, es->prefix[0] ? " (prefix " : "",
			       es->prefix[0] ? es->prefix : "");
	kit_map_version(&out->map, out->version);
	return 0;
}

static int env_store(void *state, const char *locator, const char *params,
		     const struct kvmap *m, const char *expect,
		     char new_version[PROVIDER_VERSION_MAX], struct err *e)
{
	return err_set(e, ERR_READONLY,
		       "%s: environment variables are read-only (provider type env); change them where the daemon is started",
		       locator);
}

static int env_list(void *state, const char *prefix, struct strv *out,
		    struct err *e)
{
	struct kvmap m = KVMAP_INIT;
	int rc = env_collect(state, NULL, &m, e);

	for (size_t i = 0; rc == 0 && i < m.n; i++)
		if (!strncmp(m.items[i].key, prefix, strlen(prefix)) &&
		    strv_push(out, m.items[i].key) < 0)
			rc = err_oom(e);
	kvmap_free(&m);
	if (rc < 0)
		strv_free(out);
	return rc;
}

static const char *const env_options[] = { "prefix", "strip_prefix", NULL };

const struct provider_ops env_provider_ops = {
	.type = "env",
	.options = env_options,
	.caps = PROVIDER_CAP_LIST,
	.create = env_create,
	.destroy = env_destroy,
	.check = env_check,
	.fetch = env_fetch,
	.store = env_store,
	.list = env_list,
};
