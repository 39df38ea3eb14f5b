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
 * Writes are whole-file: the text a writer closes is applied to the store.
 */
#ifndef SECRETFS_APP_H
#define SECRETFS_APP_H

#include <pthread.h>
#include <stddef.h>

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

#define APP_WRITE_LOCKS 64

struct appfs {
	const struct config *cfg;
	struct provider *prov;
	size_t nprov;
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

/* The names in the app folder (.env, .env.keys when keys.* exist, every
 * key), sorted. */
int app_list(struct appfs *fs, const struct app_conf *app, struct strv *out,
	     struct err *e);

/* 0 when name is a file of the app; ERR_NOTFOUND when not. */
int app_lookup(struct appfs *fs, const struct app_conf *app, const char *name,
	       struct err *e);

/* The bytes of file name into out. For .env, base (when not NULL) receives
 * the value set it was rendered from as fingerprints (keyed hashes, no
 * plaintext): the base of a later app_write. */
int app_read(struct appfs *fs, const struct app_conf *app, const char *name,
	     struct secbuf *out, struct kvmap *base, struct err *e);

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

/* File mode of an app folder for file mode m: its read and write bits, and
 * x with each read bit (0400 -> 0500, 0640 -> 0750, 0600 -> 0700). */
unsigned app_dir_mode(unsigned file_mode);

#endif
