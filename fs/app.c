/* app.c - the value set of an app, its files, and write-through.
 *
 * Every operation works on fresh provider reads; the store entry is the
 * only thing ever written, always with compare-and-set where the provider
 * has it, so concurrent writers and generators in any number of processes
 * converge instead of overwriting each other.
 */
#include "app.h"

#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <unistd.h>

#include "../base/dotenv.h"
#include "../base/formats.h"
#include "../base/dotenvx.h"
#include "generate.h"
#include "sealed.h"
#include "../base/hash.h"
#include "../base/log.h"

#define APP_STORE_ATTEMPTS 12

/* How long "no such entry" is remembered: briefly, so an entry someone
 * creates shows up soon. */
#define APP_NEGATIVE_TTL_MS 2000

enum app_via { VIA_CACHE, VIA_PROVIDER };

int appfs_open(struct appfs *fs, const struct config *cfg, struct err *e)
{
	struct cache_conf cc = { APP_NEGATIVE_TTL_MS, cfg->cache_bytes };
	struct appfs_next next;

	memset(fs, 0, sizeof(*fs));
	randombytes_buf(fs->fp_key, sizeof(fs->fp_key));
	for (size_t i = 0; i < APP_WRITE_LOCKS; i++)
		pthread_mutex_init(&fs->write_locks[i], NULL);
	pthread_mutex_init(&fs->view_lock, NULL);
	fs->cache = cache_new(&cc, e);
	if (!fs->cache || appfs_prepare(fs, cfg, &next, e) < 0)
		return -1;
	appfs_commit(fs, &next);
	return 0;
}

static void appfs_close_providers(struct provider **p, size_t n)
{
	for (size_t i = 0; p && i < n; i++)
		if (p[i])
			provider_close(p[i]);
	free(p);
}

void appfs_close(struct appfs *fs)
{
	/* the refresher calls providers: stop it first */
	cache_free(fs->cache);
	fs->cache = NULL;
	appfs_close_providers(fs->prov, fs->nprov);
	appfs_close_providers(fs->retired, fs->nretired);
	fs->prov = fs->retired = NULL;
	fs->nprov = fs->nretired = 0;
	kvmap_free(&fs->view_cache);
}

/* The provider of the current configuration that section pc can keep. */
static struct provider *appfs_kept(struct appfs *fs,
				   const struct provider_conf *pc)
{
	for (size_t i = 0; fs->cfg && i < fs->nprov; i++)
		if (provider_conf_same(&fs->cfg->providers[i], pc))
			return fs->prov[i];
	return NULL;
}

static bool appfs_in(struct provider *const *v, size_t n,
		     const struct provider *p)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == p)
			return true;
	return false;
}

/* The providers of cfg: kept ones, and new ones in fresh[] too. */
static int appfs_providers(struct appfs *fs, const struct config *cfg,
			   struct provider **prov, struct provider **fresh,
			   size_t *nfresh, struct err *e)
{
	for (size_t i = 0; i < cfg->nproviders; i++) {
		const struct provider_conf *pc = &cfg->providers[i];

		prov[i] = appfs_kept(fs, pc);
		if (prov[i])
			continue;
		prov[i] = provider_open(pc, e);
		if (!prov[i])
			return -1;
		fresh[(*nfresh)++] = prov[i];
	}
	return 0;
}

int appfs_prepare(struct appfs *fs, const struct config *cfg,
		  struct appfs_next *next, struct err *e)
{
	size_t n = cfg->nproviders ? cfg->nproviders : 1;
	struct provider **retired = realloc(fs->retired,
		(fs->nretired + fs->nprov + 1) * sizeof(*retired));

	memset(next, 0, sizeof(*next));
	if (retired)
		fs->retired = retired;	/* room for appfs_commit */
	next->cfg = cfg;
	next->prov = calloc(n, sizeof(*next->prov));
	next->fresh = calloc(n, sizeof(*next->fresh));
	if (!retired || !next->prov || !next->fresh) {
		appfs_abort(next);
		return err_oom(e);
	}
	if (appfs_providers(fs, cfg, next->prov, next->fresh, &next->nfresh, e) < 0) {
		appfs_abort(next);
		return -1;
	}
	return 0;
}

void appfs_abort(struct appfs_next *next)
{
	appfs_close_providers(next->fresh, next->nfresh);
	free(next->prov);
	memset(next, 0, sizeof(*next));
}

void appfs_commit(struct appfs *fs, struct appfs_next *next)
{
	for (size_t i = 0; i < fs->nprov; i++) {
		if (appfs_in(next->prov, next->cfg->nproviders, fs->prov[i]))
			continue;
		cache_forget_provider(fs->cache, fs->prov[i]);
		fs->retired[fs->nretired++] = fs->prov[i];
	}
	free(fs->prov);
	free(next->fresh);
	fs->prov = next->prov;
	fs->nprov = next->cfg->nproviders;
	fs->cfg = next->cfg;
	memset(next, 0, sizeof(*next));
}

unsigned app_dir_mode(unsigned file_mode)
{
	unsigned r = file_mode & 0444;

	/* who may read may list; who may write may also create and remove */
	return r | (r >> 2) | (file_mode & 0222);
}

/* The view file name is, when the app shows it: .env.json -> FMT_JSON. */
static bool app_view(const struct app_conf *app, const char *name,
		     enum fmt_kind *f)
{
	size_t n = strlen(APP_VIEW_PREFIX);

	return !strncmp(name, APP_VIEW_PREFIX, n) && fmt_parse(name + n, f) == 0 &&
	       *f != FMT_ENV && (app->views & (1 << *f));
}

/* ---- sources ---- */

static const char *app_ref_text(const struct ref *r, char *buf, size_t size)
{
	ref_format(r, buf, size);
	return buf;
}

static const struct conf_mapping *app_mapping(const struct app_conf *app,
					      const char *key)
{
	for (size_t i = 0; i < app->nenv; i++)
		if (!strcmp(app->env[i].name, key))
			return &app->env[i];
	return NULL;
}

/* The index of the provider named name in fs->prov (which is in the
 * order of the configuration's sections), or -1. */
static ssize_t app_provider_index(const struct appfs *fs, const char *name)
{
	for (size_t i = 0; i < fs->nprov; i++)
		if (!strcmp(fs->prov[i]->name, name))
			return (ssize_t)i;
	return -1;
}

/* keys.default -> DOTENV_PRIVATE_KEY, keys.prod -> DOTENV_PRIVATE_KEY_PROD:
 * its line in .env.keys, and the store key a generated one is kept under. */
static void app_keys_name(const char *env, char *name, size_t size)
{
	size_t n = (size_t)snprintf(name, size, "DOTENV_PRIVATE_KEY");

	if (!strcmp(env, "default") || n + 1 >= size)
		return;
	name[n++] = '_';
	for (size_t j = 0; env[j] && n < size - 1; j++)
		name[n++] = (char)toupper((unsigned char)env[j]);
	name[n] = '\0';
}

/* The keys.* mapping generated under store key name, or NULL. */
static const struct conf_mapping *app_generated_key(const struct app_conf *app,
						    const char *name)
{
	char want[300];

	for (size_t i = 0; i < app->nkeys; i++) {
		if (app->keys[i].ref.kind != REF_GENERATE)
			continue;
		app_keys_name(app->keys[i].name, want, sizeof(want));
		if (!strcmp(want, name))
			return &app->keys[i];
	}
	return NULL;
}

static struct provider *app_provider(struct appfs *fs, const struct ref *r,
				     struct err *e)
{
	ssize_t i = app_provider_index(fs, r->provider);

	if (i < 0) {
		err_set(e, ERR_INVALID, "no provider '%s'", r->provider);
		return NULL;
	}
	return fs->prov[i];
}

/* Name the reference a failure is about, once: the message of a provider
 * (and of the cache) starts with the locator (provider.h), which the
 * reference replaces, so a log line reads "aws://prod/db#K: no such
 * secret", not "aws://prod/db#K: prod/db: no such secret". */
static int app_err_ref(struct err *e, const struct ref *r)
{
	char text[1024];
	size_t n = strlen(r->locator);

	/* an empty locator leaves the message starting ": " */
	if (!strncmp(e->msg, r->locator, n) && !strncmp(e->msg + n, ": ", 2))
		memmove(e->msg, e->msg + n + 2, strlen(e->msg + n + 2) + 1);
	return err_prefix(e, "%s: ", app_ref_text(r, text, sizeof(text)));
}

/* Fetch the entry a reference names, through the cache with the app's
 * policy, or straight from the provider (VIA_PROVIDER: what a write
 * compares against must be current). only (NULL: every key) names the
 * keys the caller needs: en may hold more, but a large cached entry is
 * then opened only where they are. A failure names the reference. */
static int app_fetch_keys(struct appfs *fs, const struct app_conf *app,
			  const struct ref *r, enum app_via via,
			  const struct cache_keys *only, struct entry *en,
			  struct err *e)
{
	struct provider *p = app_provider(fs, r, e);
	struct cache_policy pol = { app->ttl_ms, app->refresh_ms, app->max_stale_ms };
	int rc;

	if (!p)
		return -1;
	if (via == VIA_PROVIDER || !fs->cache)
		rc = p->ops->fetch(p->state, r->locator, r->params, en, e);
	else
		rc = cache_fetch_keys(fs->cache, p, r->locator, r->params, &pol,
				      only, en, NULL, e);
	return rc == 0 ? 0 : app_err_ref(e, r);
}

static int app_fetch(struct appfs *fs, const struct app_conf *app,
		     const struct ref *r, enum app_via via, struct entry *en,
		     struct err *e)
{
	return app_fetch_keys(fs, app, r, via, NULL, en, e);
}

static const struct conf_sealed *app_sealed(struct appfs *fs,
					    const struct ref *r);

/* The app's store entry (only: app_fetch_keys); a missing one is empty
 * (it is created on the first write). *exists tells which. */
static int app_fetch_store_keys(struct appfs *fs, const struct app_conf *app,
				enum app_via via, const struct cache_keys *only,
				struct entry *en, bool *exists, struct err *e)
{
	*exists = false;
	if (!app->has_store)
		return 0;
	/* an encrypted store (fernet_key, private_key) is read whole:
	 * opening a dotenvx file's values checks its public key lines */
	if (app_sealed(fs, &app->store))
		only = NULL;
	if (app_fetch_keys(fs, app, &app->store, via, only, en, e) == 0) {
		*exists = true;
		return 0;
	}
	if (e->code != ERR_NOTFOUND)
		return -1;
	err_clear(e);
	return 0;
}

static int app_fetch_store(struct appfs *fs, const struct app_conf *app,
			   enum app_via via, struct entry *en, bool *exists,
			   struct err *e)
{
	return app_fetch_store_keys(fs, app, via, NULL, en, exists, e);
}

/* The whole entry as one value: a single-value entry's bytes, or the map
 * as a JSON object with sorted keys. */
static int app_whole_entry(const struct entry *en, struct secbuf *out,
			   struct err *e)
{
	json_t *obj;
	char *text;
	int rc = 0;

	if (en->map.n == 1 && en->map.items[0].key[0] == '\0')
		return secbuf_set(out, en->map.items[0].val,
				  en->map.items[0].len) ? err_oom(e) : 0;
	obj = json_object();
	for (size_t i = 0; obj && i < en->map.n; i++) {
		const struct kv *kv = &en->map.items[i];

		if (json_object_set_new(obj, kv->key,
					json_stringn(kv->val, kv->len)) < 0)
			rc = err_set(e, ERR_PROVIDER, "key %s is not UTF-8 text, so the whole entry cannot be shown as JSON", kv->key);
	}
	text = obj && rc == 0 ? json_dumps(obj, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
	if (rc == 0 && (!text || secbuf_set(out, text, strlen(text)) < 0))
		rc = err_oom(e);
	secmem_free_str(text);
	json_decref(obj);
	return rc;
}

/* The value a reference selects out of its (already fetched) entry. */
static int app_select(const struct entry *en, const struct ref *r,
		      struct secbuf *out, struct err *e)
{
	const struct kv *kv;
	char text[1024];

	if (!r->field)
		return app_whole_entry(en, out, e);
	kv = kvmap_get(&en->map, r->field);
	if (!kv)
		return err_set(e, ERR_NOTFOUND, "%s: the entry has no key '%s'",
			       app_ref_text(r, text, sizeof(text)), r->field);
	if (secbuf_set(out, kv->val, kv->len) < 0)
		return err_oom(e);
	return 0;
}

/* Fetch one reference's entry and select its value. */
static int app_unseal(struct appfs *fs, const struct app_conf *app,
		      const struct ref *r, struct kvmap *m, const char *only,
		      struct err *e);

static int app_resolve(struct appfs *fs, const struct app_conf *app,
		       const struct ref *r, struct secbuf *out, struct err *e)
{
	struct entry en = ENTRY_INIT;
	int rc = app_fetch(fs, app, r, VIA_CACHE, &en, e);

	if (rc == 0)
		rc = app_unseal(fs, app, r, &en.map, r->field, e);
	if (rc == 0)
		rc = app_select(&en, r, out, e);
	entry_free(&en);
	/* a missing source is a broken file, not a missing one */
	if (rc < 0 && e->code == ERR_NOTFOUND)
		e->code = ERR_PROVIDER;
	return rc;
}

/* ---- encrypted providers (fernet_key, dotenvx private_key; fs/sealed.h) ---- */

static const struct conf_sealed *app_sealed(struct appfs *fs,
					    const struct ref *r)
{
	ssize_t i;

	if (r->kind != REF_PROVIDER || !fs->cfg->sealed)
		return NULL;
	i = app_provider_index(fs, r->provider);
	return i >= 0 && fs->cfg->sealed[i].kind ? &fs->cfg->sealed[i] : NULL;
}

/* The entry's reference without its field: what a message names. */
static const char *app_entry_text(const struct ref *r, char *buf, size_t size)
{
	struct ref whole = *r;

	whole.field = NULL;
	return app_ref_text(&whole, buf, size);
}

/* The key, through the cache like any value: its provider is not
 * encrypted itself (config.c), so this does not recurse. */
static int app_seal_key(struct appfs *fs, const struct app_conf *app,
			const struct conf_sealed *f, struct secbuf *key,
			struct err *e)
{
	if (app_resolve(fs, app, &f->key, key, e) == 0)
		return 0;
	return err_prefix(e, "%s: ", f->kind == SEAL_DOTENVX ? "private_key" : "fernet_key");
}

/* Replace the tokens in m (an entry of r; every key, or only) by their
 * plaintext when r's provider keeps tokens. */
static int app_unseal(struct appfs *fs, const struct app_conf *app,
		      const struct ref *r, struct kvmap *m, const char *only,
		      struct err *e)
{
	const struct conf_sealed *f = app_sealed(fs, r);
	struct secbuf key = SECBUF_INIT;
	char what[1024];
	int rc;

	if (!f || m->n == 0 || (only && !kvmap_get(m, only)))
		return 0;
	rc = app_seal_key(fs, app, f, &key, e);
	if (rc == 0)
		rc = sealed_open(f, &key, m, only, app_entry_text(r, what, sizeof(what)), e);
	secbuf_free(&key);
	return rc;
}

/* next (plaintext) into tokens for the store when it keeps them. */
static int app_seal(struct appfs *fs, const struct app_conf *app,
		    const struct kvmap *plain_cur, const struct kvmap *raw_cur,
		    struct kvmap *next, struct err *e)
{
	const struct conf_sealed *f = app_sealed(fs, &app->store);
	struct secbuf key = SECBUF_INIT;
	char what[1024];
	int rc;

	if (!f)
		return 0;
	rc = app_seal_key(fs, app, f, &key, e);
	if (rc == 0)
		rc = sealed_seal(f, &key, plain_cur, raw_cur, next,
				 app_entry_text(&app->store, what, sizeof(what)), e);
	secbuf_free(&key);
	return rc;
}

/* Keys of the store entry that are no value of the app: a dotenvx file's
 * DOTENV_PUBLIC_KEY* lines (they name its key pair), and the private keys
 * of keys.ENV = generate:dotenvx (.env.keys shows them, .env must not:
 * a file's values and the key to them do not travel together). */
static bool app_store_meta(const struct appfs *fs, const struct app_conf *app,
			   const char *key)
{
	const struct conf_sealed *f = app->has_store ?
		app_sealed((struct appfs *)fs, &app->store) : NULL;

	if (app_generated_key(app, key))
		return true;
	return f && f->kind == SEAL_DOTENVX && dotenvx_is_public_name(key);
}

/* ---- store updates ---- */

/* Edit the next version of the store entry from the current one; set
 * *changed when there is something to write. */
typedef int (*app_edit_fn)(void *ctx, const struct kvmap *cur,
			   struct kvmap *next, bool *changed, struct err *e);

/* One writer per store entry at a time within this process: CAS keeps
 * processes apart, this keeps our own threads from failing each other's
 * compare-and-set in a loop. */
static pthread_mutex_t *app_write_lock(struct appfs *fs, const struct provider *p,
				       const char *locator)
{
	uint64_t h = hash_fnv1a(hash_fnv1a(HASH_FNV1A_INIT, p->name), locator);

	return &fs->write_locks[h % APP_WRITE_LOCKS];
}

/* Tell the cache what a write attempt left in the store: en, or NULL when
 * it failed. The cache keeps what a params-less read sees; a store
 * reference with params (?mount=) is read under them: drop those instead.
 * A failed write only makes the cached entry due, not gone: whatever the
 * store holds now, the next read asks it, and while it cannot answer,
 * readers keep the last good value within max_stale, as for any read. */
static void app_store_cached(struct appfs *fs, const struct app_conf *app,
			     struct provider *p, const struct entry *en)
{
	if (!en)
		cache_expire(fs->cache, p, app->store.locator);
	else if (!app->store.params)
		cache_stored(fs->cache, p, app->store.locator, en);
	else
		cache_forget(fs->cache, p, app->store.locator);
}

/* A store() whose outcome is unknown (ERR_UNSURE: the request went out,
 * the answer was lost) is read back: when the store holds exactly what
 * was written, the write landed, and next takes the version read. 0 then;
 * else -1 with the store's error, which says what the read found. For
 * every provider alike. */
static int app_store_landed(struct appfs *fs, const struct app_conf *app,
			    struct entry *next, struct err *e)
{
	struct entry now = ENTRY_INIT;
	struct err re = { ERR_OK, "" };
	size_t n = strlen(e->msg);
	int got;

	if (e->code != ERR_UNSURE)
		return -1;
	got = app_fetch(fs, app, &app->store, VIA_PROVIDER, &now, &re);
	if (got == 0 && kvmap_equal(&now.map, &next->map))
		memcpy(next->version, now.version, sizeof(next->version));
	else
		got = -1;
	entry_free(&now);
	if (got < 0) {
		snprintf(e->msg + n, sizeof(e->msg) - n, "%s",
			 re.code == ERR_OK ? " (outcome unknown; read back, the store does not hold the write)" :
			 " (outcome unknown; it could not be read back)");
		return -1;
	}
	log_info("app %s: the store's answer to a write was lost; read back, it holds the write",
		 app->name);
	err_clear(e);
	return 0;
}

/* One attempt: read the entry as the store has it, edit, store with CAS.
 * The cache learns what the store holds afterwards either way. */
static int app_store_attempt(struct appfs *fs, const struct app_conf *app,
			     struct provider *p, app_edit_fn edit, void *ctx,
			     struct err *e)
{
	struct entry cur = ENTRY_INIT, next = ENTRY_INIT;
	struct kvmap plain = KVMAP_INIT;	/* cur's values, decrypted */
	bool exists, changed = false;
	const char *expect;
	int rc = app_fetch_store(fs, app, VIA_PROVIDER, &cur, &exists, e);

	if (rc == 0 && kvmap_copy(&plain, &cur.map) < 0)
		rc = err_oom(e);
	if (rc == 0)
		rc = app_unseal(fs, app, &app->store, &plain, NULL, e);
	if (rc == 0 && kvmap_copy(&next.map, &plain) < 0)
		rc = err_oom(e);
	if (rc == 0)
		rc = edit(ctx, &plain, &next.map, &changed, e);
	if (rc == 0 && changed)
		rc = app_seal(fs, app, &plain, &cur.map, &next.map, e);
	/* every store checks against what was read: atomically with CAS,
	 * by reading before and after without (kit_store_nocas) */
	expect = exists ? cur.version : PROVIDER_EXPECT_ABSENT;
	if (rc == 0 && changed &&
	    p->ops->store(p->state, app->store.locator, app->store.params,
			  &next.map, expect, next.version, e) < 0 &&
	    app_store_landed(fs, app, &next, e) < 0)
		rc = app_err_ref(e, &app->store);
	if (fs->cache)
		app_store_cached(fs, app, p, rc == 0 ? (changed ? &next : &cur) : NULL);
	entry_free(&next);
	entry_free(&cur);
	kvmap_free(&plain);
	return rc;
}

/* Read-modify-write of the store entry with compare-and-set, retried with
 * jittered backoff when the entry moved underneath. */
static int app_store_update(struct appfs *fs, const struct app_conf *app,
			    app_edit_fn edit, void *ctx, struct err *e)
{
	pthread_mutex_t *lock;
	struct provider *p;
	char text[1024];
	int rc = -1;

	if (!app->has_store)
		return err_set(e, ERR_READONLY, "the app has no store to write to");
	p = app_provider(fs, &app->store, e);
	if (!p)
		return -1;
	if (!p->ops->store)
		return err_set(e, ERR_READONLY, "%s: provider %s is read-only",
			       app_ref_text(&app->store, text, sizeof(text)), p->name);
	lock = app_write_lock(fs, p, app->store.locator);
	pthread_mutex_lock(lock);
	for (int attempt = 0; attempt < APP_STORE_ATTEMPTS; attempt++) {
		rc = app_store_attempt(fs, app, p, edit, ctx, e);
		if (rc == 0 || e->code != ERR_CONFLICT)
			break;
		log_debug("app %s: store entry changed during the write, retrying",
			  app->name);
		usleep(randombytes_uniform(2000u << (attempt < 6 ? attempt : 6)));
	}
	pthread_mutex_unlock(lock);
	if (rc < 0 && e->code == ERR_CONFLICT)
		return err_set(e, ERR_BUSY, "%s kept changing; gave up after %d attempts",
			       app_ref_text(&app->store, text, sizeof(text)),
			       APP_STORE_ATTEMPTS);
	return rc;
}

/* One missing generated key into next. A hash (argon2id:KEY) is made of
 * KEY's value in next, so it runs after the plain kinds. */
static int app_generate_one(const struct app_conf *app,
			    const struct conf_mapping *m, struct kvmap *next,
			    struct secbuf *val, struct err *e)
{
	const struct gen_spec *g = &m->ref.gen;
	const struct kv *src = NULL;
	int rc;

	if (gen_needs_input(g)) {
		src = kvmap_get(next, g->source);
		if (!src)
			return err_set(e, ERR_INVALID, "%s: generate:argon2id:%s: %s has no value in the store",
				       m->name, g->source, g->source);
		rc = gen_hash_value(g, src->val, src->len, val, e);
	} else {
		rc = gen_value(g, val, e);
	}
	if (rc == 0 && kvmap_set(next, m->name, val->data, val->len) < 0)
		rc = err_oom(e);
	if (rc == 0)
		log_info("app %s: generated %s", app->name, m->name);
	return rc;
}

/* Missing keys.ENV = generate:dotenvx private keys into next, under the
 * name .env.keys shows them by. */
static int app_edit_generate_keys(const struct app_conf *app,
				  const struct kvmap *cur, struct kvmap *next,
				  bool *changed, struct secbuf *val, struct err *e)
{
	char name[300];

	for (size_t i = 0; i < app->nkeys; i++) {
		const struct conf_mapping *m = &app->keys[i];

		app_keys_name(m->name, name, sizeof(name));
		if (m->ref.kind != REF_GENERATE || kvmap_get(cur, name))
			continue;
		if (gen_value(&m->ref.gen, val, e) < 0)
			return -1;
		if (kvmap_set(next, name, val->data, val->len) < 0)
			return err_oom(e);
		log_info("app %s: generated keys.%s", app->name, m->name);
		*changed = true;
	}
	return 0;
}

static int app_edit_generate(void *ctx, const struct kvmap *cur,
			     struct kvmap *next, bool *changed, struct err *e)
{
	const struct app_conf *app = ctx;
	struct secbuf val = SECBUF_INIT;
	int rc = 0;

	for (int hashes = 0; hashes < 2; hashes++) {
		for (size_t i = 0; rc == 0 && i < app->nenv; i++) {
			const struct conf_mapping *m = &app->env[i];

			if (m->ref.kind != REF_GENERATE || kvmap_get(cur, m->name) ||
			    gen_needs_input(&m->ref.gen) != hashes)
				continue;
			rc = app_generate_one(app, m, next, &val, e);
			*changed = true;
		}
	}
	rc = rc == 0 ? app_edit_generate_keys(app, cur, next, changed, &val, e) : rc;
	secbuf_free(&val);
	return rc;
}

static bool app_missing_generated(const struct app_conf *app,
				  const struct kvmap *store)
{
	char name[300];

	for (size_t i = 0; i < app->nenv; i++)
		if (app->env[i].ref.kind == REF_GENERATE &&
		    !kvmap_get(store, app->env[i].name))
			return true;
	for (size_t i = 0; i < app->nkeys; i++) {
		if (app->keys[i].ref.kind != REF_GENERATE)
			continue;
		app_keys_name(app->keys[i].name, name, sizeof(name));
		if (!kvmap_get(store, name))
			return true;
	}
	return false;
}

/* key and the app's generate: keys (store keys too): what a read of key
 * alone needs of the store entry. 0, or -1 out of memory. */
static int app_want_keys(const struct app_conf *app, const char *key,
			 struct strv *names)
{
	char name[300];
	int rc = strv_push(names, key);

	for (size_t i = 0; rc == 0 && i < app->nenv; i++)
		if (app->env[i].ref.kind == REF_GENERATE)
			rc = strv_push(names, app->env[i].name);
	for (size_t i = 0; rc == 0 && i < app->nkeys; i++) {
		if (app->keys[i].ref.kind != REF_GENERATE)
			continue;
		app_keys_name(app->keys[i].name, name, sizeof(name));
		rc = strv_push(names, name);
	}
	return rc;
}

/* The store entry with every generate: key present: missing ones are
 * generated, stored with compare-and-set, and the entry re-read, so the
 * value served is the one the store kept even when another process won
 * the race. With key (not NULL), en holds that key and the generate:
 * ones at least: a read of one key of a large entry opens a part of it. */
static int app_fetch_store_generated(struct appfs *fs,
				     const struct app_conf *app,
				     const char *key, struct entry *en,
				     struct err *e)
{
	struct strv names = { 0 };
	struct cache_keys only;
	bool exists;
	int rc = key && app_want_keys(app, key, &names) < 0 ? err_oom(e) : 0;

	only = (struct cache_keys){ (const char *const *)names.v, names.n };
	if (rc == 0)
		rc = app_fetch_store_keys(fs, app, VIA_CACHE, key ? &only : NULL,
					  en, &exists, e);
	strv_free(&names);
	if (rc < 0)
		return -1;
	if (!app_missing_generated(app, &en->map))
		return 0;
	entry_free(en);
	/* the update leaves what the store holds now in the cache */
	if (app_store_update(fs, app, app_edit_generate, (void *)app, e) < 0 ||
	    app_fetch_store(fs, app, VIA_CACHE, en, &exists, e) < 0)
		return -1;
	if (app_missing_generated(app, &en->map))
		return err_set(e, ERR_PROVIDER,
			       "generated values did not persist in the store");
	return 0;
}

/* ---- fingerprints ----
 *
 * A value's fingerprint: a BLAKE2b hash keyed per process, and a byte
 * that says whether the value holds a NUL (so .env could not show it).
 * Equal values, equal fingerprints; a fingerprint tells nothing else. */

#define APP_FP_HASH 16
#define APP_FP_LEN (APP_FP_HASH + 1)

static void app_fp(const struct appfs *fs, const char *val, size_t len,
		   unsigned char fp[APP_FP_LEN])
{
	crypto_generichash(fp, APP_FP_HASH, (const unsigned char *)val, len,
			   fs->fp_key, sizeof(fs->fp_key));
	fp[APP_FP_HASH] = memchr(val, 0, len) != NULL;
}

static int app_fingerprints(const struct appfs *fs, const struct kvmap *vals,
			    struct kvmap *out)
{
	unsigned char fp[APP_FP_LEN];
	int rc = 0;

	kvmap_free(out);
	for (size_t i = 0; rc == 0 && i < vals->n; i++) {
		app_fp(fs, vals->items[i].val, vals->items[i].len, fp);
		rc = kvmap_set(out, vals->items[i].key, fp, sizeof(fp));
	}
	secmem_stack_wipe();	/* once, for every hash above */
	return rc;
}

/* Does value (plaintext) match fingerprint fp? */
static bool app_fp_same(const struct appfs *fs, const struct kv *value,
			const struct kv *fp)
{
	unsigned char h[APP_FP_LEN];

	if (!value || !fp || fp->len != APP_FP_LEN)
		return false;
	app_fp(fs, value->val, value->len, h);
	secmem_stack_wipe();
	return !memcmp(h, fp->val, APP_FP_LEN);
}

/* ---- reads ---- */

/* One distinct entry an app's value set is made of. */
struct app_source {
	struct appfs *fs;
	const struct app_conf *app;
	const struct ref *ref;	/* the store's: fetched with generated keys */
	struct entry en;
	int rc;
	struct err e;
};

static void *app_source_fetch(void *arg)
{
	struct app_source *s = arg;

	if (s->app->has_store && s->ref == &s->app->store)
		s->rc = app_fetch_store_generated(s->fs, s->app, NULL, &s->en, &s->e);
	else
		s->rc = app_fetch(s->fs, s->app, s->ref, VIA_CACHE, &s->en, &s->e);
	/* glibc hands an ended thread's stack to the next thread it starts:
	 * what the fetch left there must not stay */
	secmem_stack_wipe_deep();
	return NULL;
}

static bool app_source_cold(const struct app_source *s)
{
	struct cache_policy pol = { s->app->ttl_ms, s->app->refresh_ms,
				    s->app->max_stale_ms };
	struct err e = { 0 };
	struct provider *p = app_provider(s->fs, s->ref, &e);

	return p && cache_would_fetch(s->fs->cache, p, s->ref->locator,
				      s->ref->params, &pol);
}

/* Fetch every source: at once when more than one has to reach a
 * provider, so a cold .env costs the slowest source, not their sum. */
static void app_sources_fetch(struct app_source *s, size_t n)
{
	pthread_t *t = calloc(n, sizeof(*t));
	bool *started = calloc(n, sizeof(*started));
	size_t cold = 0;

	for (size_t i = 0; t && started && i < n; i++)
		cold += app_source_cold(&s[i]);
	for (size_t i = 1; cold > 1 && i < n; i++)
		started[i] = pthread_create(&t[i], NULL, app_source_fetch, &s[i]) == 0;
	for (size_t i = 0; i < n; i++) {
		if (started && started[i])
			pthread_join(t[i], NULL);
		else
			app_source_fetch(&s[i]);
	}
	free(t);
	free(started);
}

static void app_source_add(struct appfs *fs, const struct app_conf *app,
			   const struct ref *r, struct app_source *s, size_t *n)
{
	bool seen = r->kind != REF_PROVIDER;

	for (size_t j = 0; !seen && j < *n; j++)
		seen = ref_same_entry(r, s[j].ref);
	if (!seen)
		s[(*n)++] = (struct app_source){ .fs = fs, .app = app, .ref = r };
}

/* How many sources app_sources can find at most. */
static size_t app_sources_max(const struct app_conf *app)
{
	size_t n = app->nenv + 1;

	for (size_t i = 0; i < app->ntpls; i++)
		n += app->tpls[i].tpl.n;
	return n;
}

/* The distinct entries behind the app's value set, the store first, and
 * the references of its templates: every file of the app is made of the
 * same sources, fetched together, all or nothing. */
static size_t app_sources(struct appfs *fs, const struct app_conf *app,
			  struct app_source *s)
{
	size_t n = 0;

	if (app->has_store)
		s[n++] = (struct app_source){ .fs = fs, .app = app, .ref = &app->store };
	for (size_t i = 0; i < app->nenv; i++)
		app_source_add(fs, app, &app->env[i].ref, s, &n);
	for (size_t i = 0; i < app->ntpls; i++)
		for (size_t j = 0; j < app->tpls[i].tpl.n; j++)
			if (app->tpls[i].tpl.parts[j].ref.kind == REF_PROVIDER &&
			    app->tpls[i].tpl.parts[j].ref.provider)
				app_source_add(fs, app, &app->tpls[i].tpl.parts[j].ref, s, &n);
	return n;
}

static const struct entry *app_source_of(const struct app_source *s, size_t n,
					 const struct ref *r)
{
	for (size_t j = 0; j < n; j++)
		if (ref_same_entry(r, s[j].ref))
			return &s[j].en;
	return NULL;
}

/* Fills a template in from a value set and the sources it came from. */
struct app_tpl_ctx {
	const struct kvmap *vals;
	const struct app_source *s;
	size_t n;
};

static int app_tpl_value(void *ctx, const struct tpl_part *p, struct secbuf *val,
			 struct err *e)
{
	const struct app_tpl_ctx *c = ctx;
	const struct kv *kv;

	if (!p->key)
		return app_select(app_source_of(c->s, c->n, &p->ref), &p->ref, val, e);
	kv = kvmap_get(c->vals, p->key);
	if (!kv)
		return err_set(e, ERR_PROVIDER, "the app has no key %s", p->key);
	return secbuf_set(val, kv->val, kv->len) < 0 ? err_oom(e) : 0;
}

/* The app's whole value set: store keys, then mappings over them; and
 * when tpl is not NULL, the template filled in from them into out. */
static int app_values_tpl(struct appfs *fs, const struct app_conf *app,
			  struct kvmap *vals, const struct tpl *tpl,
			  struct secbuf *out, struct err *e)
{
	struct app_source *s = calloc(app_sources_max(app), sizeof(*s));
	struct secbuf val = SECBUF_INIT;
	size_t n = s ? app_sources(fs, app, s) : 0;
	int rc = s ? 0 : err_oom(e);

	app_sources_fetch(s, n);
	for (size_t j = 0; rc == 0 && j < n; j++)
		if (s[j].rc < 0) {
			*e = s[j].e;
			rc = -1;
		}
	for (size_t j = 0; rc == 0 && j < n; j++)
		rc = app_unseal(fs, app, s[j].ref, &s[j].en.map, NULL, e);
	if (rc == 0 && app->has_store && kvmap_copy(vals, &s[0].en.map) < 0)
		rc = err_oom(e);
	for (size_t i = vals->n; rc == 0 && i-- > 0;)
		if (app_store_meta(fs, app, vals->items[i].key))
			kvmap_del(vals, vals->items[i].key);
	for (size_t i = 0; rc == 0 && i < app->nenv; i++) {
		const struct ref *r = &app->env[i].ref;

		if (r->kind == REF_GENERATE)
			continue;	/* already in the store's map */
		rc = app_select(app_source_of(s, n, r), r, &val, e);
		if (rc == 0 && kvmap_set(vals, app->env[i].name, val.data, val.len) < 0)
			rc = err_oom(e);
	}
	if (rc == 0 && tpl) {
		struct app_tpl_ctx c = { vals, s, n };

		rc = tpl_render(tpl, app_tpl_value, &c, out, e);
	}
	for (size_t j = 0; j < n; j++)
		entry_free(&s[j].en);
	free(s);
	secbuf_free(&val);
	if (rc < 0)
		kvmap_free(vals);
	/* a missing source is a broken .env, not a missing file */
	if (rc < 0 && e->code == ERR_NOTFOUND)
		e->code = ERR_PROVIDER;
	return rc;
}

static int app_values(struct appfs *fs, const struct app_conf *app,
		      struct kvmap *vals, struct err *e)
{
	return app_values_tpl(fs, app, vals, NULL, NULL, e);
}

/* One key of the store entry (generated keys made first). */
static int app_store_value(struct appfs *fs, const struct app_conf *app,
			   const char *key, struct secbuf *out, struct err *e)
{
	struct entry store = ENTRY_INIT;
	const struct kv *kv;
	int rc = app_fetch_store_generated(fs, app, key, &store, e);

	if (rc == 0)
		rc = app_unseal(fs, app, &app->store, &store.map, key, e);
	kv = rc == 0 ? kvmap_get(&store.map, key) : NULL;
	if (rc == 0 && !kv)
		rc = err_set(e, ERR_NOTFOUND, "no key %s", key);
	if (rc == 0 && secbuf_set(out, kv->val, kv->len) < 0)
		rc = err_oom(e);
	entry_free(&store);
	return rc;
}

static int app_key_value(struct appfs *fs, const struct app_conf *app,
			 const char *key, struct secbuf *out, struct err *e)
{
	const struct conf_mapping *m = app_mapping(app, key);

	if (m && m->ref.kind == REF_PROVIDER)
		return app_resolve(fs, app, &m->ref, out, e);
	if (app_store_meta(fs, app, key))
		return err_set(e, ERR_NOTFOUND, "no key %s", key);
	return app_store_value(fs, app, key, out, e);
}

/* The private key of keys.ENV m (a reference, or generated in the store). */
static int app_keys_value(struct appfs *fs, const struct app_conf *app,
			  const struct conf_mapping *m, struct secbuf *out,
			  struct err *e)
{
	char name[300];

	app_keys_name(m->name, name, sizeof(name));
	if (m->ref.kind == REF_GENERATE)
		return app_store_value(fs, app, name, out, e);
	return app_resolve(fs, app, &m->ref, out, e);
}

static int app_keys_values(struct appfs *fs, const struct app_conf *app,
			   struct kvmap *vals, struct err *e)
{
	struct secbuf val = SECBUF_INIT;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < app->nkeys; i++) {
		char name[300];

		app_keys_name(app->keys[i].name, name, sizeof(name));
		rc = app_keys_value(fs, app, &app->keys[i], &val, e);
		if (rc == 0 && kvmap_set(vals, name, val.data, val.len) < 0)
			rc = err_oom(e);
	}
	secbuf_free(&val);
	return rc;
}

/* Warn once per app, key and reason about a value .env or a view cannot
 * carry (portably). */
struct app_warn_ctx {
	const struct app_conf *app;
};

/* A warning about one key of an app, once per reason for the daemon's
 * life: reads and listings repeat, the log should not. */
static void app_warn_once(const char *app, const char *key, const char *why)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static struct strv warned;
	size_t len = strlen(key);
	char id[1400];
	bool seen = false;

	/* per reason: .env and a view may each have their own about one key */
	snprintf(id, sizeof(id), "%s/%s/%.60s", app, key, why);
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < warned.n && !seen; i++)
		seen = !strcmp(warned.v[i], id);
	seen = seen || strv_push(&warned, id) < 0;
	if (!seen && len > NAME_MAX)	/* its head names it well enough */
		log_warn("app %s: key %.40s... (%zu bytes): %s", app, key, len, why);
	else if (!seen)
		log_warn("app %s: key %s: %s", app, key, why);
	pthread_mutex_unlock(&lock);
}

static void app_render_warn(void *ctx, const char *key, const char *why)
{
	const struct app_warn_ctx *w = ctx;

	app_warn_once(w->app->name, key, why);
}

/* ---- encrypted views (.env.ENV.encrypted) ---- */

#define APP_VIEW_SUFFIX ".encrypted"
/* Forget every kept ciphertext past this many (keys that went away). */
#define APP_VIEW_CACHE_MAX 20000

/* The view's name for keys.ENV: .env.ENV.encrypted, .env.encrypted for
 * keys.default. */
static void app_view_name(const char *env, char *name, size_t size)
{
	if (!strcmp(env, "default"))
		snprintf(name, size, APP_ENV_NAME APP_VIEW_SUFFIX);
	else
		snprintf(name, size, APP_ENV_NAME ".%s" APP_VIEW_SUFFIX, env);
}

/* The keys.* mapping whose view name is, or NULL. */
static const struct conf_mapping *app_view_of(const struct app_conf *app,
					      const char *name)
{
	char want[300];

	for (size_t i = 0; i < app->nkeys; i++) {
		app_view_name(app->keys[i].name, want, sizeof(want));
		if (!strcmp(want, name))
			return &app->keys[i];
	}
	return NULL;
}

/* kv's ciphertext to pub: the one made before while kv's value is the
 * same (its fingerprint), else a new one, kept for next time. */
static int app_view_value(struct appfs *fs, const char *id, const struct kv *kv,
			  const char *pub, struct secbuf *ct, struct err *e)
{
	unsigned char fp[APP_FP_LEN];
	const struct kv *kept;
	int rc = 0;

	app_fp(fs, kv->val, kv->len, fp);
	secmem_stack_wipe();
	pthread_mutex_lock(&fs->view_lock);
	kept = kvmap_get(&fs->view_cache, id);
	if (kept && kept->len > APP_FP_LEN && !memcmp(kept->val, fp, APP_FP_LEN))
		rc = secbuf_set(ct, kept->val + APP_FP_LEN, kept->len - APP_FP_LEN) < 0 ?
			err_oom(e) : 1;
	pthread_mutex_unlock(&fs->view_lock);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (dotenvx_encrypt(pub, strlen(pub), kv->val, kv->len, ct, e) < 0)
		return err_prefix(e, "%s: ", kv->key);
	pthread_mutex_lock(&fs->view_lock);
	if (fs->view_cache.n >= APP_VIEW_CACHE_MAX)
		kvmap_free(&fs->view_cache);
	/* fp | ciphertext, as one value: built in ct's spare room */
	if (secbuf_reserve(ct, APP_FP_LEN) == 0) {
		memmove(ct->data + APP_FP_LEN, ct->data, ct->len);
		memcpy(ct->data, fp, APP_FP_LEN);
		(void)kvmap_set(&fs->view_cache, id, ct->data, ct->len + APP_FP_LEN);
		memmove(ct->data, ct->data + APP_FP_LEN, ct->len);
		ct->data[ct->len] = '\0';
	}
	pthread_mutex_unlock(&fs->view_lock);
	return 0;
}

/* The header dotenvx writes atop a file it encrypts, then the values. */
static int app_view_render(struct appfs *fs, const struct app_conf *app,
			   const struct conf_mapping *m, const char *pub,
			   const struct kvmap *vals, struct secbuf *out,
			   struct err *e)
{
	char pubname[300], file[300], id[1024];
	struct secbuf ct = SECBUF_INIT;
	int rc = 0;

	snprintf(file, sizeof(file), APP_ENV_NAME "%s%s",
		 strcmp(m->name, "default") ? "." : "",
		 strcmp(m->name, "default") ? m->name : "");
	dotenvx_key_name("DOTENV_PUBLIC_KEY", file, pubname, sizeof(pubname));
	if (secbuf_puts(out, "#/-------------------[DOTENV_PUBLIC_KEY]--------------------/\n"
			"#/            public-key encryption for .env files          /\n"
			"#/       [how it works](https://dotenvx.com/encryption)     /\n"
			"#/----------------------------------------------------------/\n") ||
	    secbuf_puts(out, pubname) || secbuf_puts(out, "=\"") ||
	    secbuf_puts(out, pub) || secbuf_puts(out, "\"\n\n# ") ||
	    secbuf_puts(out, file) || secbuf_putc(out, '\n'))
		return err_oom(e);
	for (size_t i = 0; rc == 0 && i < vals->n; i++) {
		const struct kv *kv = &vals->items[i];

		if (!dotenv_key_valid(kv->key) || memchr(kv->val, '\0', kv->len))
			continue;	/* as .env leaves them out */
		snprintf(id, sizeof(id), "%s\x1f%s\x1f%s", app->name, pub, kv->key);
		rc = app_view_value(fs, id, kv, pub, &ct, e);
		/* single quotes: dotenvx expands $VAR and runs $(cmd) in
		 * what a double-quoted or bare value decrypts to */
		if (rc == 0 && (secbuf_puts(out, kv->key) || secbuf_puts(out, "='") ||
				secbuf_append(out, ct.data, ct.len) ||
				secbuf_puts(out, "'\n")))
			rc = err_oom(e);
	}
	secbuf_free(&ct);
	return rc;
}

static int app_view_read(struct appfs *fs, const struct app_conf *app,
			 const struct conf_mapping *m, struct secbuf *out,
			 struct err *e)
{
	char pub[DOTENVX_PUBLIC_HEX_LEN + 1];
	struct secbuf key = SECBUF_INIT;
	struct kvmap vals = KVMAP_INIT;
	struct dotenvx_key k;
	int rc = app_keys_value(fs, app, m, &key, e);

	if (rc == 0 && dotenvx_key_parse(key.data, key.len, &k, e) == 0) {
		rc = dotenvx_public_of(&k, pub, e);
		dotenvx_key_wipe(&k);
	} else if (rc == 0) {
		rc = err_prefix(e, "keys.%s: ", m->name);
		e->code = ERR_PROVIDER;
	}
	secbuf_free(&key);
	if (rc == 0)
		rc = app_values(fs, app, &vals, e);
	if (rc == 0)
		rc = app_view_render(fs, app, m, pub, &vals, out, e);
	kvmap_free(&vals);
	return rc;
}

static int app_read_file(struct appfs *fs, const struct app_conf *app,
			 const char *name, struct secbuf *out,
			 struct kvmap *base, struct err *e)
{
	struct app_warn_ctx w = { app };
	struct kvmap vals = KVMAP_INIT;
	int rc;

	enum fmt_kind view = FMT_ENV;

	const struct conf_template *t = config_template(app, name);

	secbuf_clear(out);
	if (t) {
		rc = app_values_tpl(fs, app, &vals, &t->tpl, out, e);
		kvmap_free(&vals);
		return rc;
	}
	if (app_view_of(app, name))
		return app_view_read(fs, app, app_view_of(app, name), out, e);
	if (strcmp(name, APP_ENV_NAME) && strcmp(name, APP_KEYS_NAME) &&
	    !app_view(app, name, &view))
		return app_key_value(fs, app, name, out, e);
	if (strcmp(name, APP_KEYS_NAME))
		rc = app_values(fs, app, &vals, e);
	else
		rc = app_keys_values(fs, app, &vals, e);
	if (rc == 0 && view != FMT_ENV)
		/* a key the view cannot carry is left out, warned, and named in
		 * a comment line where the format has comments */
		rc = fmt_render(view, &vals, out, app_render_warn, &w, e);
	else if (rc == 0 && dotenv_render(&vals, out, app_render_warn, &w) < 0)
		rc = err_oom(e);
	if (rc == 0 && base && app_fingerprints(fs, &vals, base) < 0)
		rc = err_oom(e);
	kvmap_free(&vals);
	return rc;
}

int app_read(struct appfs *fs, const struct app_conf *app, const char *name,
	     struct secbuf *out, struct kvmap *base, struct err *e)
{
	if (app_read_file(fs, app, name, out, base, e) < 0)
		return err_prefix(e, "app %s: %s: ", app->name, name);
	return 0;
}

uint64_t app_changes(struct appfs *fs)
{
	return fs->cache ? cache_changes(fs->cache) : 0;
}

/* Every source of .env is cached fresh: fetched, not due, and not
 * encrypted (a sealed entry's key may be another entry's). */
bool app_fresh(struct appfs *fs, const struct app_conf *app, const char *name)
{
	struct cache_policy pol = { app->ttl_ms, app->refresh_ms, app->max_stale_ms };
	struct app_source *s;
	struct err e = { 0 };
	bool fresh;
	size_t n;

	if (!fs->cache || strcmp(name, APP_ENV_NAME))
		return false;
	s = calloc(app_sources_max(app), sizeof(*s));
	n = s ? app_sources(fs, app, s) : 0;
	fresh = s != NULL;
	for (size_t i = 0; fresh && i < n; i++) {
		struct provider *p = app_provider(fs, s[i].ref, &e);

		fresh = p && !app_sealed(fs, s[i].ref) &&
			cache_fresh(fs->cache, p, s[i].ref->locator,
				    s[i].ref->params, &pol);
	}
	free(s);
	return fresh;
}

int app_value_set(struct appfs *fs, const struct app_conf *app,
		  struct kvmap *out, struct err *e)
{
	if (app_values(fs, app, out, e) < 0)
		return err_prefix(e, "app %s: ", app->name);
	return 0;
}

/* ---- check ----
 *
 * Every reference resolved as a read would resolve it, through the same
 * fetch and field selection, except that nothing is generated or written:
 * a generate: key the store lacks is reported as such. */

struct app_checker {
	struct appfs *fs;
	const struct app_conf *app;
	app_check_fn fn;
	void *ctx;
	struct entry store;
	bool store_ok;		/* fetched, or absent (an empty entry) */
	char store_src[1024];
	int rc;
	struct err first;	/* the first failure */
};

static void app_check_emit(struct app_checker *c, const char *file,
			   const char *key, const char *source,
			   const char *version, enum app_check_state st,
			   const char *note)
{
	struct app_check_key k = { file, key, source, version, st, note };

	c->fn(c->ctx, &k);
}

static void app_check_fail(struct app_checker *c, const char *file,
			   const char *key, const char *source,
			   const struct err *why)
{
	if (c->rc == 0) {
		c->first = *why;
		if (key[0] != '(')	/* "(store)" is named by its reference */
			err_prefix(&c->first, "%s: ", key);
		c->rc = -1;
	}
	app_check_emit(c, file, key, source, "", APP_CHECK_FAILED, why->msg);
}

/* What .env does with a key it cannot show (dotenv_render leaves it out). */
static const char *app_check_env_note(const char *key, const char *val,
				      size_t len)
{
	if (!dotenv_key_valid(key))
		return "not in .env: not a valid variable name";
	if (val && memchr(val, 0, len))
		return "not in .env: the value holds a NUL byte";
	return "";
}

/* A mapped or keys.* reference: fetched and its field selected. */
static void app_check_ref(struct app_checker *c, const char *file,
			  const char *key, const struct ref *r)
{
	struct entry en = ENTRY_INIT;
	struct secbuf val = SECBUF_INIT;
	struct err e = { 0 };
	char src[1024];

	ref_format(r, src, sizeof(src));
	if (app_fetch(c->fs, c->app, r, VIA_CACHE, &en, &e) < 0 ||
	    app_select(&en, r, &val, &e) < 0)
		app_check_fail(c, file, key, src, &e);
	else
		app_check_emit(c, file, key, src, en.version, APP_CHECK_OK,
			       app_check_env_note(key, val.data, val.len));
	secbuf_free(&val);
	entry_free(&en);
}

static void app_check_generated(struct app_checker *c,
				const struct conf_mapping *m)
{
	const struct kv *kv = kvmap_get(&c->store.map, m->name);
	struct err e = { 0 };
	char src[1024], note[1200];

	ref_format(&m->ref, src, sizeof(src));
	if (!c->store_ok) {
		err_set(&e, ERR_PROVIDER, "the store (%s) failed", c->store_src);
		app_check_fail(c, APP_ENV_NAME, m->name, src, &e);
	} else if (kv) {
		app_check_emit(c, APP_ENV_NAME, m->name, src, c->store.version,
			       APP_CHECK_OK, app_check_env_note(m->name, kv->val, kv->len));
	} else {
		snprintf(note, sizeof(note), "would be generated into %s", c->store_src);
		app_check_emit(c, APP_ENV_NAME, m->name, src, "",
			       APP_CHECK_GENERATE, note);
	}
}

static void app_check_store_key(struct app_checker *c, const struct kv *kv)
{
	char src[1400];

	snprintf(src, sizeof(src), "%s#%s", c->store_src, kv->key);
	app_check_emit(c, APP_ENV_NAME, kv->key, src, c->store.version,
		       APP_CHECK_OK, app_check_env_note(kv->key, kv->val, kv->len));
}

static void app_check_mapping(struct app_checker *c,
			      const struct conf_mapping *m)
{
	if (m->ref.kind == REF_GENERATE)
		app_check_generated(c, m);
	else
		app_check_ref(c, APP_ENV_NAME, m->name, &m->ref);
}

/* The store entry itself: a row only when it fails or does not exist. */
static void app_check_store(struct app_checker *c)
{
	struct err e = { 0 };
	bool exists;

	if (!c->app->has_store) {
		c->store_ok = true;
		return;
	}
	ref_format(&c->app->store, c->store_src, sizeof(c->store_src));
	if (app_fetch_store(c->fs, c->app, VIA_CACHE, &c->store, &exists, &e) < 0) {
		app_check_fail(c, APP_ENV_NAME, "(store)", c->store_src, &e);
		return;
	}
	c->store_ok = true;
	if (!exists)
		app_check_emit(c, APP_ENV_NAME, "(store)", c->store_src, "",
			       APP_CHECK_OK, "no entry yet: the first write creates it");
}

int app_check(struct appfs *fs, const struct app_conf *app, app_check_fn fn,
	      void *ctx, struct err *e)
{
	struct app_checker c = { .fs = fs, .app = app, .fn = fn, .ctx = ctx,
				 .store = ENTRY_INIT };
	const struct kvmap *sm = &c.store.map;
	size_t i = 0, j = 0;

	app_check_store(&c);
	/* .env's keys in order: store keys not mapped, and mappings */
	while (i < sm->n || j < app->nenv) {
		if (i < sm->n && app_mapping(app, sm->items[i].key)) {
			i++;
		} else if (j == app->nenv ||
			   (i < sm->n && strcmp(sm->items[i].key, app->env[j].name) < 0)) {
			app_check_store_key(&c, &sm->items[i++]);
		} else {
			app_check_mapping(&c, &app->env[j++]);
		}
	}
	for (size_t k = 0; k < app->nkeys; k++) {
		char name[300];

		app_keys_name(app->keys[k].name, name, sizeof(name));
		app_check_ref(&c, APP_KEYS_NAME, name, &app->keys[k].ref);
	}
	/* dotenvx files against their keys: the CI drift check */
	if (c.rc == 0 && app_dotenvx_verify(fs, app, &c.first) < 0)
		c.rc = -1;
	entry_free(&c.store);
	if (c.rc < 0) {
		*e = c.first;
		return err_prefix(e, "app %s: ", app->name);
	}
	return 0;
}

/* ---- names ---- */

/* A store key shown as a file of its own: not a name the app's views
 * or .env take. */
static bool app_name_is_file(const struct app_conf *app, const char *key)
{
	enum fmt_kind f;

	return key[0] && strcmp(key, ".") && strcmp(key, "..") &&
	       !strchr(key, '/') && strcmp(key, APP_ENV_NAME) &&
	       strcmp(key, APP_KEYS_NAME) && !app_view(app, key, &f) &&
	       !config_template(app, key) && strlen(key) <= NAME_MAX;
}

/* .env.docker .env.json .env.sh, those the app shows, sorted. */
static int app_list_views(const struct app_conf *app, struct strv *out)
{
	static const enum fmt_kind order[] = { FMT_DOCKER, FMT_JSON, FMT_SH };
	char name[32];
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < sizeof(order) / sizeof(order[0]); i++) {
		if (!(app->views & (1 << order[i])))
			continue;
		snprintf(name, sizeof(name), "%s%s", APP_VIEW_PREFIX, fmt_name(order[i]));
		rc = strv_push(out, name);
	}
	return rc;
}

int app_list(struct appfs *fs, const struct app_conf *app, struct strv *out,
	     struct err *e)
{
	struct entry store = ENTRY_INIT;
	struct kvmap names = KVMAP_INIT;
	bool exists;
	int rc = app_fetch_store(fs, app, VIA_CACHE, &store, &exists, e);

	/* a store that cannot be read now still leaves the declared files
	 * (.env, env.* keys) to list: their reads say what is wrong */
	if (rc < 0 && e->code != ERR_NOMEM) {
		log_limited(LOG_LVL_WARN, "app %s: listing only its declared files: %s",
			    app->name, e->msg);
		err_clear(e);
		rc = 0;
	}
	/* a kvmap with empty values is a sorted set of names */
	for (size_t i = 0; rc == 0 && i < store.map.n; i++) {
		const char *key = store.map.items[i].key;

		if (strlen(key) > NAME_MAX)	/* put there by another tool */
			app_warn_once(app->name, key,
				      "longer than a file name can be (255 bytes); only in .env");
		else if (app_name_is_file(app, key) && !app_store_meta(fs, app, key))
			rc = kvmap_set(&names, key, "", 0);
	}
	for (size_t i = 0; rc == 0 && i < app->nenv; i++)
		rc = kvmap_set(&names, app->env[i].name, "", 0);
	for (size_t i = 0; rc == 0 && i < app->ntpls; i++)
		rc = kvmap_set(&names, app->tpls[i].name, "", 0);
	if (rc == 0)
		rc = strv_push(out, APP_ENV_NAME);
	if (rc == 0 && app->nkeys)
		rc = strv_push(out, APP_KEYS_NAME);
	if (rc == 0)
		rc = app_list_views(app, out);
	for (size_t i = 0; rc == 0 && i < app->nkeys; i++) {
		char view[300];

		app_view_name(app->keys[i].name, view, sizeof(view));
		rc = strv_push(out, view);
	}
	for (size_t i = 0; rc == 0 && i < names.n; i++)
		rc = strv_push(out, names.items[i].key);
	if (rc < 0 && e->code == ERR_OK)
		err_oom(e);
	kvmap_free(&names);
	entry_free(&store);
	return rc < 0 ? err_prefix(e, "app %s: ", app->name) : 0;
}

bool app_shows(const struct app_conf *app, const char *name)
{
	enum fmt_kind f;

	return !strcmp(name, APP_ENV_NAME) || (app->nkeys && !strcmp(name, APP_KEYS_NAME)) ||
	       app_view(app, name, &f) || config_template(app, name) ||
	       app_view_of(app, name);
}

bool app_read_only(const struct app_conf *app, const char *name)
{
	enum fmt_kind f;

	return app_view(app, name, &f) || config_template(app, name) ||
	       app_view_of(app, name);
}

int app_lookup(struct appfs *fs, const struct app_conf *app, const char *name,
	       struct err *e)
{
	struct entry store = ENTRY_INIT;
	bool exists;
	int rc;

	enum fmt_kind f;

	if (!strcmp(name, APP_ENV_NAME) || app_mapping(app, name) ||
	    app_view(app, name, &f) || config_template(app, name) ||
	    app_view_of(app, name))
		return 0;
	if (!strcmp(name, APP_KEYS_NAME))
		return app->nkeys ? 0 : err_set(e, ERR_NOTFOUND, "app %s has no keys.*", app->name);
	if (!app_name_is_file(app, name))
		return err_set(e, ERR_NOTFOUND, "not a key name");
	/* one key of what may be a large entry: only where it would be */
	rc = app_fetch_store_keys(fs, app, VIA_CACHE,
				  &(struct cache_keys){ &name, 1 }, &store,
				  &exists, e);
	if (rc == 0 && (!kvmap_get(&store.map, name) || app_store_meta(fs, app, name)))
		rc = err_set(e, ERR_NOTFOUND, "no key %s", name);
	entry_free(&store);
	return rc < 0 ? err_prefix(e, "app %s: ", app->name) : 0;
}

/* ---- writes ---- */

struct app_key_edit {
	const char *key;
	const char *val;
	size_t len;
};

static int app_edit_key(void *ctx, const struct kvmap *cur, struct kvmap *next,
			bool *changed, struct err *e)
{
	const struct app_key_edit *k = ctx;
	const struct kv *old = kvmap_get(cur, k->key);

	if (old && old->len == k->len && !memcmp(old->val, k->val, k->len))
		return 0;
	if (kvmap_set(next, k->key, k->val, k->len) < 0)
		return err_oom(e);
	*changed = true;
	return 0;
}

static int app_write_key(struct appfs *fs, const struct app_conf *app,
			 const char *key, const char *data, size_t len,
			 struct err *e)
{
	struct app_key_edit k = { key, data, len };
	const struct conf_mapping *m = app_mapping(app, key);
	char text[1024];

	if (m && m->ref.kind == REF_PROVIDER)
		return err_set(e, ERR_READONLY, "%s comes from %s; change it there",
			       key, app_ref_text(&m->ref, text, sizeof(text)));
	if (len > APP_VALUE_MAX)
		return err_set(e, ERR_TOOBIG, "%s: a value holds at most %d bytes",
			       key, APP_VALUE_MAX);
	if (!m && !dotenv_key_valid(key))
		return err_set(e, ERR_INVALID, "not a valid key name");
	if (strlen(key) > NAME_MAX)
		return err_set(e, ERR_NAMETOOLONG, "%.40s... (%zu bytes): a key name is at most %d bytes",
			       key, strlen(key), NAME_MAX);
	if (app_store_meta(fs, app, key))
		return err_set(e, ERR_PERM, "%s is no value of the app (a key pair's key)", key);
	return app_store_update(fs, app, app_edit_key, &k, e);
}

static int app_edit_remove(void *ctx, const struct kvmap *cur,
			   struct kvmap *next, bool *changed, struct err *e)
{
	const char *key = ctx;

	if (!kvmap_get(cur, key))
		return err_set(e, ERR_NOTFOUND, "no key %s", key);
	kvmap_del(next, key);
	*changed = true;
	return 0;
}

int app_remove_key(struct appfs *fs, const struct app_conf *app,
		   const char *key, struct err *e)
{
	const struct conf_mapping *m = app_mapping(app, key);
	int rc;

	if (m)
		rc = err_set(e, ERR_PERM, "%s is declared in the config (env.%s); remove it there",
			     key, key);
	else
		rc = app_store_update(fs, app, app_edit_remove, (void *)key, e);
	return rc < 0 ? err_prefix(e, "app %s: ", app->name) : 0;
}

/* What a written .env changes against the base its writer opened. */
struct app_env_edit {
	const struct appfs *fs;
	const struct app_conf *app;
	const struct kvmap *base;	/* fingerprints */
	struct kvmap set;	/* keys added or changed */
	struct kvmap del;	/* keys removed (values unused) */
};

static bool app_same(const struct kv *a, const struct kv *b)
{
	return a && b && a->len == b->len && !memcmp(a->val, b->val, a->len);
}

static int app_env_diff(struct app_env_edit *d, const struct kvmap *written,
			struct err *e)
{
	const struct app_conf *app = d->app;
	char text[1024];

	for (size_t i = 0; i < written->n; i++) {
		const struct kv *kv = &written->items[i];
		const struct conf_mapping *m = app_mapping(app, kv->key);

		if (app_fp_same(d->fs, kv, kvmap_get(d->base, kv->key)))
			continue;
		/* a new one; one already there (another tool's) may change */
		if (strlen(kv->key) > NAME_MAX && !kvmap_get(d->base, kv->key))
			return err_set(e, ERR_NAMETOOLONG,
				       "%.40s... (%zu bytes): a key name is at most %d bytes",
				       kv->key, strlen(kv->key), NAME_MAX);
		if (m && m->ref.kind == REF_PROVIDER)
			return err_set(e, ERR_READONLY, "%s comes from %s; change it there",
				       kv->key, app_ref_text(&m->ref, text, sizeof(text)));
		if (app_store_meta(d->fs, app, kv->key))
			return err_set(e, ERR_PERM, "%s is no value of the app (a key pair's key)",
				       kv->key);
		if (kv->len > APP_VALUE_MAX)
			return err_set(e, ERR_TOOBIG, "%s: a value holds at most %d bytes",
				       kv->key, APP_VALUE_MAX);
		if (kvmap_set(&d->set, kv->key, kv->val, kv->len) < 0)
			return err_oom(e);
	}
	/* Keys declared in the config (mapped, generated) stay when left out,
	 * and so do keys .env could not show (bad names, NUL bytes). */
	for (size_t i = 0; i < d->base->n; i++) {
		const struct kv *kv = &d->base->items[i];

		if (kvmap_get(written, kv->key) || app_mapping(app, kv->key) ||
		    !dotenv_key_valid(kv->key) ||
		    (kv->len == APP_FP_LEN && kv->val[APP_FP_HASH]))
			continue;
		if (kvmap_set(&d->del, kv->key, "", 0) < 0)
			return err_oom(e);
	}
	return 0;
}

/* Apply the diff to the current entry; a key someone else changed since
 * the writer opened the file is a conflict, not something to overwrite. */
static int app_edit_env(void *ctx, const struct kvmap *cur, struct kvmap *next,
			bool *changed, struct err *e)
{
	struct app_env_edit *d = ctx;
	const struct kvmap *lists[2] = { &d->set, &d->del };

	for (int l = 0; l < 2; l++) {
		for (size_t i = 0; i < lists[l]->n; i++) {
			const struct kv *want = &lists[l]->items[i];
			const struct kv *now = kvmap_get(cur, want->key);
			const struct kv *was = kvmap_get(d->base, want->key);
			bool moved = was ? !app_fp_same(d->fs, now, was) : now != NULL;

			if (moved && !(l == 0 && app_same(now, want)) && !(l == 1 && !now))
				return err_set(e, ERR_BUSY,
					       "%s was changed by someone else since the file was opened",
					       want->key);
			if (l == 0 && kvmap_set(next, want->key, want->val, want->len) < 0)
				return err_oom(e);
			if (l == 1)
				kvmap_del(next, want->key);
		}
	}
	*changed = !kvmap_equal(cur, next);
	return 0;
}

static int app_write_env(struct appfs *fs, const struct app_conf *app,
			 const struct kvmap *base, const char *data, size_t len,
			 struct err *e)
{
	struct app_env_edit d = { fs, app, base, KVMAP_INIT, KVMAP_INIT };
	struct kvmap written = KVMAP_INIT;
	int rc;

	if (len > APP_FILE_MAX)
		return err_set(e, ERR_TOOBIG, "a written file holds at most %d bytes", APP_FILE_MAX);
	if (dotenv_parse(data, len, &written, e) < 0)
		return -1;
	rc = app_env_diff(&d, &written, e);
	if (rc == 0 && (d.set.n || d.del.n))
		rc = app_store_update(fs, app, app_edit_env, &d, e);
	kvmap_free(&written);
	kvmap_free(&d.set);
	kvmap_free(&d.del);
	return rc;
}

int app_write(struct appfs *fs, const struct app_conf *app, const char *name,
	      const struct kvmap *base, const char *data, size_t len,
	      struct err *e)
{
	static const struct kvmap empty = KVMAP_INIT;
	enum fmt_kind f;
	int rc;

	if (!strcmp(name, APP_KEYS_NAME))
		rc = err_set(e, ERR_READONLY, "it comes from keys.* in the config; change it there");
	else if (app_view(app, name, &f))
		rc = err_set(e, ERR_READONLY, "a view of .env; write .env or a key's file");
	else if (config_template(app, name))
		rc = err_set(e, ERR_READONLY, "made from a template (file.%s); write .env or a key's file",
			     name);
	else if (app_view_of(app, name))
		rc = err_set(e, ERR_READONLY, "an encrypted view of .env; edit .env");
	else if (!strcmp(name, APP_ENV_NAME))
		rc = app_write_env(fs, app, base ? base : &empty, data, len, e);
	else
		rc = app_write_key(fs, app, name, data, len, e);
	return rc < 0 ? err_prefix(e, "app %s: %s: ", app->name, name) : 0;
}

/* ---- metadata and control ---- */

/* The entry a file's value comes from first: its mapping's, else the
 * store's (for .env.keys, the first keys.* one). NULL: none. */
static const struct ref *app_primary_ref(const struct app_conf *app,
					 const char *name)
{
	const struct conf_mapping *m = app_mapping(app, name);

	if (m && m->ref.kind == REF_PROVIDER)
		return &m->ref;
	if (!strcmp(name, APP_KEYS_NAME))
		return app->nkeys ? &app->keys[0].ref : NULL;
	return app->has_store ? &app->store : NULL;
}

/* Append r's text and a newline to out->source, as far as it fits. */
static void app_meta_add(struct app_meta *out, const struct ref *r)
{
	size_t len = strlen(out->source);
	size_t room = sizeof(out->source) - len;
	int n = ref_format(r, out->source + len, room);

	if (n > 0 && (size_t)n + 1 < room)
		strcpy(out->source + len + n, "\n");
	else
		out->source[len] = '\0';	/* all of a reference, or none */
}

static void app_meta_sources(const struct app_conf *app, const char *name,
			     struct app_meta *out)
{
	const struct conf_mapping *m = app_mapping(app, name);
	enum fmt_kind f;

	out->source[0] = '\0';
	if (m) {
		app_meta_add(out, &m->ref);
	} else if (!strcmp(name, APP_KEYS_NAME)) {
		for (size_t i = 0; i < app->nkeys; i++)
			app_meta_add(out, &app->keys[i].ref);
	} else if (app->has_store) {
		app_meta_add(out, &app->store);
		if (strcmp(name, APP_ENV_NAME) && !app_view(app, name, &f) &&
		    !config_template(app, name)) {
			/* a store key: the store's reference with #KEY */
			size_t len = strlen(out->source);

			if (len)
				snprintf(out->source + len - 1, sizeof(out->source) - len + 1,
					 "#%s\n", name);
		}
	}
	if (!strcmp(name, APP_ENV_NAME) || app_view(app, name, &f) ||
	    config_template(app, name))
		for (size_t i = 0; i < app->nenv; i++)
			app_meta_add(out, &app->env[i].ref);
}

int app_meta(struct appfs *fs, const struct app_conf *app, const char *name,
	     struct app_meta *out, struct err *e)
{
	const struct ref *r = app_primary_ref(app, name);
	struct cache_policy pol = { app->ttl_ms, app->refresh_ms, app->max_stale_ms };
	struct cache_info info = { 0 };
	struct entry en = ENTRY_INIT;
	struct provider *p;
	int rc;

	memset(out, 0, sizeof(*out));
	app_meta_sources(app, name, out);
	if (!r)
		return 0;
	p = app_provider(fs, r, e);
	if (!p)
		return -1;
	rc = cache_fetch(fs->cache, p, r->locator, r->params, &pol, &en, &info, e);
	if (rc == 0)
		snprintf(out->version, sizeof(out->version), "%s", en.version);
	out->age_s = info.age_ms / 1000;
	out->stale = info.stale;
	snprintf(out->error, sizeof(out->error), "%.*s", (int)sizeof(out->error) - 1,
		 rc == 0 ? info.error : e->msg);
	entry_free(&en);
	err_clear(e);
	return 0;
}

static bool app_ref_is(const struct ref *r, const char *provider,
		       const char *locator)
{
	return r->kind == REF_PROVIDER && r->provider && !strcmp(r->provider, provider) &&
	       !strcmp(r->locator, locator);
}

bool app_uses(const struct app_conf *app, const char *provider,
	      const char *locator)
{
	if (app->has_store && app_ref_is(&app->store, provider, locator))
		return true;
	for (size_t i = 0; i < app->nenv; i++)
		if (app_ref_is(&app->env[i].ref, provider, locator))
			return true;
	for (size_t i = 0; i < app->nkeys; i++)
		if (app_ref_is(&app->keys[i].ref, provider, locator))
			return true;
	for (size_t i = 0; i < app->ntpls; i++)
		for (size_t j = 0; j < app->tpls[i].tpl.n; j++)
			if (app_ref_is(&app->tpls[i].tpl.parts[j].ref, provider, locator))
				return true;
	return false;
}

static void app_expire_ref(struct appfs *fs, const struct ref *r)
{
	struct provider *p;
	struct err e = { 0 };

	if (r->kind != REF_PROVIDER)
		return;
	p = app_provider(fs, r, &e);
	if (p)
		cache_expire(fs->cache, p, r->locator);
}

void app_expire(struct appfs *fs, const struct app_conf *app)
{
	if (app->has_store)
		app_expire_ref(fs, &app->store);
	for (size_t i = 0; i < app->nenv; i++)
		app_expire_ref(fs, &app->env[i].ref);
	for (size_t i = 0; i < app->nkeys; i++)
		app_expire_ref(fs, &app->keys[i].ref);
	for (size_t i = 0; i < app->ntpls; i++)
		for (size_t j = 0; j < app->tpls[i].tpl.n; j++)
			if (app->tpls[i].tpl.parts[j].ref.provider)
				app_expire_ref(fs, &app->tpls[i].tpl.parts[j].ref);
}

struct app_regen {
	const struct app_conf *app;
	const char *key;
};

/* The key gets a new value; so do the hashes made of it, and nothing else. */
static int app_edit_regenerate(void *ctx, const struct kvmap *cur,
			       struct kvmap *next, bool *changed, struct err *e)
{
	const struct app_regen *g = ctx;
	struct secbuf val = SECBUF_INIT;
	int rc = 0;

	for (int hashes = 0; hashes < 2 && rc == 0; hashes++) {
		for (size_t i = 0; rc == 0 && i < g->app->nenv; i++) {
			const struct conf_mapping *m = &g->app->env[i];
			const struct gen_spec *s = &m->ref.gen;
			bool wanted = hashes ? gen_needs_input(s) && !strcmp(s->source, g->key) :
					       !strcmp(m->name, g->key);

			if (m->ref.kind != REF_GENERATE || !wanted)
				continue;
			rc = app_generate_one(g->app, m, next, &val, e);
			*changed = true;
		}
	}
	secbuf_free(&val);
	(void)cur;
	return rc;
}

int app_regenerate(struct appfs *fs, const struct app_conf *app,
		   const char *key, struct err *e)
{
	const struct conf_mapping *m = app_mapping(app, key);
	struct app_regen g = { app, key };
	int rc;

	if (!m || m->ref.kind != REF_GENERATE)
		rc = err_set(e, ERR_INVALID, "%s is not a generate: key", key);
	else
		rc = app_store_update(fs, app, app_edit_regenerate, &g, e);
	return rc < 0 ? err_prefix(e, "app %s: ", app->name) : 0;
}

/* ---- change hooks ---- */

int app_digest(void *ctx, const struct app_conf *app, struct kvmap *out,
	       struct err *e)
{
	struct appfs *fs = ctx;
	struct kvmap vals = KVMAP_INIT;
	struct secbuf text = SECBUF_INIT;
	unsigned char fp[APP_FP_LEN];
	int rc = app_values(fs, app, &vals, e);

	if (rc == 0 && app_fingerprints(fs, &vals, out) < 0)
		rc = err_oom(e);
	for (size_t i = 0; rc == 0 && i < app->ntpls; i++) {
		rc = app_read(fs, app, app->tpls[i].name, &text, NULL, e);
		if (rc == 0) {
			app_fp(fs, text.data ? text.data : "", text.len, fp);
			rc = kvmap_set(out, app->tpls[i].name, fp, sizeof(fp)) < 0 ? err_oom(e) : 0;
		}
	}
	secmem_stack_wipe();
	secbuf_free(&text);
	kvmap_free(&vals);
	return rc;
}

/* ---- dotenvx verification (secretfs check) ---- */

/* One entry of a dotenvx store, fresh from its provider, opened. A
 * missing store file is no drift: the first write creates it. */
static int app_dotenvx_verify_ref(struct appfs *fs, const struct app_conf *app,
				  const struct ref *r, struct err *e)
{
	const struct conf_sealed *f = app_sealed(fs, r);
	struct entry en = ENTRY_INIT;
	int rc;

	if (!f || f->kind != SEAL_DOTENVX)
		return 0;
	rc = app_fetch(fs, app, r, VIA_PROVIDER, &en, e);
	if (rc < 0 && e->code == ERR_NOTFOUND && r == &app->store) {
		err_clear(e);
		rc = 0;
	} else if (rc == 0) {
		rc = app_unseal(fs, app, r, &en.map, NULL, e);
	}
	entry_free(&en);
	return rc;
}

/* A keys.ENV reference (generated ones are made by secretfs: not read
 * here, so a check never writes) must hold a dotenvx private key. */
static int app_dotenvx_verify_key(struct appfs *fs, const struct app_conf *app,
				  const struct conf_mapping *m, struct err *e)
{
	struct secbuf key = SECBUF_INIT;
	struct dotenvx_key k;
	int rc;

	if (m->ref.kind != REF_PROVIDER)
		return 0;
	rc = app_resolve(fs, app, &m->ref, &key, e);
	if (rc == 0 && dotenvx_key_parse(key.data, key.len, &k, e) < 0)
		rc = err_prefix(e, "keys.%s: ", m->name);
	dotenvx_key_wipe(&k);
	secbuf_free(&key);
	return rc;
}

int app_dotenvx_verify(struct appfs *fs, const struct app_conf *app,
		       struct err *e)
{
	int rc = 0;

	if (app->has_store)
		rc = app_dotenvx_verify_ref(fs, app, &app->store, e);
	for (size_t i = 0; rc == 0 && i < app->nenv; i++)
		if (app->env[i].ref.kind == REF_PROVIDER)
			rc = app_dotenvx_verify_ref(fs, app, &app->env[i].ref, e);
	for (size_t i = 0; rc == 0 && i < app->nkeys; i++)
		rc = app_dotenvx_verify_key(fs, app, &app->keys[i], e);
	secmem_stack_wipe_deep();
	return rc;
}
