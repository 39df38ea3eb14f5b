/* app.h - what an app folder shows, and how writes to it land.
 *
 * The FUSE-free model under fs/ops.c. An app's value set is the union of its
 * store entry and its env.* mappings (a mapping wins); generate: keys missing
 * from the store are created, stored with compare-and-set and re-read, so
 * every reader everywhere converges on one value. Files:
 *   .env        every key, dotenv-rendered, all sources or nothing
 *   .env.keys   DOTENV_PRIVATE_KEY[_ENV]=... from keys.*
 *   .env.ENV.encrypted   every key encrypted to keys.ENV's public key, a
 *               dotenvx file to commit (.env.encrypted for keys.default)
 *   KEY         the raw value
 *   .env.json .env.sh .env.docker
 *               the value set in a consumer's own format (views = ...;
 *               base/formats.h), read-only
 * Writes are whole-file: the text a writer closes is applied to the store.
 */
#ifndef SECRETFS_APP_H
#define SECRETFS_APP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "../cache/cache.h"
#include "../base/secmem.h"
#include "../providers/provider.h"
#include "config.h"
#include "../base/err.h"
#include "../base/kvmap.h"

#define APP_VALUE_MAX (64 * 1024)	/* bytes of one value */
#define APP_FILE_MAX (1024 * 1024)	/* bytes of one written file */
#define APP_ENV_NAME ".env"
#define APP_KEYS_NAME ".env.keys"
#define APP_VIEW_PREFIX ".env."	/* .env.json .env.sh .env.docker */

#define APP_WRITE_LOCKS 64

struct appfs {
	const struct config *cfg;
	struct provider **prov;	/* one per cfg->providers, in its order */
	size_t nprov;
	/* replaced or removed by a reload: closed only at appfs_close, since
	 * the cache's refresher may be fetching through one as it goes */
	struct provider **retired;
	size_t nretired;
	struct cache *cache;
	pthread_mutex_t write_locks[APP_WRITE_LOCKS];	/* by store entry */
	/* keys the fingerprints of a .env's base: what an editor read is kept
	 * as long as the edit lasts, so it is kept as keyed hashes, never as
	 * plaintext */
	unsigned char fp_key[32];
	/* the encrypted views' ciphertexts, kept while a value's fingerprint
	 * stays, so a view does not change at every read: "app\x1fpublic
	 * key\x1fKEY" -> fingerprint | "encrypted:..." */
	pthread_mutex_t view_lock;
	struct kvmap view_cache;
};

int appfs_open(struct appfs *fs, const struct config *cfg, struct err *e);
void appfs_close(struct appfs *fs);
/* A reload in two steps, so that providers are created while requests
 * still run: appfs_prepare keeps each provider whose section is unchanged
 * (with what the cache holds of it) and creates every other; then either
 * appfs_commit serves cfg from now on, retiring the providers no longer
 * configured or replaced, with their cache entries - the caller keeping
 * every other call out meanwhile, and cfg alive as long as fs - or
 * appfs_abort closes what prepare created. One reload at a time. */
struct appfs_next {
	const struct config *cfg;
	struct provider **prov;
	struct provider **fresh;	/* created by prepare */
	size_t nfresh;
};

int appfs_prepare(struct appfs *fs, const struct config *cfg,
		  struct appfs_next *next, struct err *e);
void appfs_commit(struct appfs *fs, struct appfs_next *next);
void appfs_abort(struct appfs_next *next);

/* The app's value set, what .env renders: the store's keys, then the
 * env.* mappings over them, generate: keys generated as a read generates
 * them. All sources or nothing. */
int app_value_set(struct appfs *fs, const struct app_conf *app,
		  struct kvmap *out, struct err *e);

/* What app_check says of one key. */
enum app_check_state {
	APP_CHECK_OK,		/* resolves */
	APP_CHECK_GENERATE,	/* a generate: key the store lacks */
	APP_CHECK_FAILED,	/* a read would fail: note says why */
};

/* One key of a check: where it comes from and what a read would do,
 * never the value. */
struct app_check_key {
	const char *file;	/* APP_ENV_NAME or APP_KEYS_NAME */
	const char *key;	/* "(store)" for the store entry itself */
	const char *source;	/* the reference; STORE#KEY for a store key */
	const char *version;	/* of the entry it comes from, or "" */
	enum app_check_state state;
	const char *note;	/* the failure, or what .env does with it; "" */
};

typedef void (*app_check_fn)(void *ctx, const struct app_check_key *k);

/* Resolve every reference of app and write nothing: fn is called for
 * each key of .env (store keys, then env.* mappings, sorted) and of
 * .env.keys. A missing generate: key is reported, not generated. 0 when
 * every key resolves; -1 with the first failure in e. */
int app_check(struct appfs *fs, const struct app_conf *app, app_check_fn fn,
	      void *ctx, struct err *e);

/* The names in the app folder (.env, .env.keys when keys.* exist, every
 * key), sorted. */
int app_list(struct appfs *fs, const struct app_conf *app, struct strv *out,
	     struct err *e);

/* Is name a file the configuration alone gives the app (.env, .env.keys
 * with keys.*, a view)? Asks no store. */
bool app_shows(const struct app_conf *app, const char *name);

/* Is name a file no write can change (a view)? Refused at open. */
bool app_read_only(const struct app_conf *app, const char *name);

/* 0 when name is a file of the app; ERR_NOTFOUND when not. */
int app_lookup(struct appfs *fs, const struct app_conf *app, const char *name,
	       struct err *e);

/* The bytes of file name into out. For .env, base (when not NULL) receives
 * the value set it was rendered from as fingerprints (keyed hashes, no
 * plaintext): the base of a later app_write. */
int app_read(struct appfs *fs, const struct app_conf *app, const char *name,
	     struct secbuf *out, struct kvmap *base, struct err *e);

/* What app_read made of file name can be served again as it is while
 * app_changes stays what it was before that read and app_fresh holds:
 * then the read would fetch nothing and make the same bytes. Only .env
 * answers true, when its every source is cached fresh (a cheap look, no
 * value opened; it counts as a read for the refresher). */
uint64_t app_changes(struct appfs *fs);
bool app_fresh(struct appfs *fs, const struct app_conf *app, const char *name);

/* Commit data written to file name. For .env, base is what the writer
 * opened: only keys changed against it are applied. */
int app_write(struct appfs *fs, const struct app_conf *app, const char *name,
	      const struct kvmap *base, const char *data, size_t len,
	      struct err *e);

/* Remove a key from the store (rm KEY). Keys declared in the config
 * (mapped or generated) cannot be removed: ERR_PERM. */
int app_remove_key(struct appfs *fs, const struct app_conf *app,
		   const char *key, struct err *e);

/* Where a file's value comes from, for xattrs: the reference (for .env
 * every source, one per line), and of its primary entry the version, age,
 * whether it is served stale, and the last provider error. No values. */
struct app_meta {
	char source[2048];
	char version[PROVIDER_VERSION_MAX];
	long age_s;
	bool stale;
	char error[256];
};

int app_meta(struct appfs *fs, const struct app_conf *app, const char *name,
	     struct app_meta *out, struct err *e);

/* The dotenvx check `secretfs check` runs: every dotenvx store entry the
 * app reads (its store, env.* mappings) is fetched from its provider (not
 * the cache) and opened: the file's DOTENV_PUBLIC_KEY* must be the
 * private key's and every value must decrypt. 0 when they do (or the app
 * reads no dotenvx file); -1 with a message naming file, key and key pair
 * when they drifted apart (ERR_PROVIDER), or why it could not be checked. */
int app_dotenvx_verify(struct appfs *fs, const struct app_conf *app,
		       struct err *e);

/* Does the app read the entry (provider, locator)? */
bool app_uses(const struct app_conf *app, const char *provider,
	      const char *locator);

/* Make every source of the app due for revalidation at its next read
 * (setfattr -n user.secretfs.refresh); stale values stay servable. */
void app_expire(struct appfs *fs, const struct app_conf *app);

/* Give the generate: key a new value (and re-derive the argon2id hashes
 * made of it). ERR_INVALID when key is not a generate: key. */
int app_regenerate(struct appfs *fs, const struct app_conf *app,
		   const char *key, struct err *e);

/* What the app shows now, for change hooks (fs/hooks.h): each key ->
 * its fingerprint (a keyed hash, no value), and each template file ->
 * the hash of its content. ctx is the struct appfs. */
int app_digest(void *ctx, const struct app_conf *app, struct kvmap *out,
	       struct err *e);

/* File mode of an app folder for file mode m: its read and write bits, and
 * x with each read bit (0400 -> 0500, 0640 -> 0750, 0600 -> 0700). */
unsigned app_dir_mode(unsigned file_mode);

#endif
