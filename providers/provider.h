/* provider.h - the one interface every secret store implements.
 *
 * An entry is a key -> value map plus an opaque version string. A provider
 * fetches an entry, stores a whole entry with compare-and-set against the
 * version it expects, and lists entries. File, Vault, AWS Secrets
 * Manager, Azure Key Vault and GCP Secret Manager each fill one struct
 * provider_ops; adding a backend is its own file(s), one line in
 * registry.c's PROVIDER_TYPES and one in meson.build.
 *
 * Functions may be called from many threads at once; a provider protects
 * its own state. They report failure as -1 with a struct err whose message
 * starts with the locator ("LOCATOR: reason"), never holds a value, and
 * names the locator nowhere else: a caller that names the whole reference
 * puts it in the locator's place (fs/app.c), so a log line names it once.
 */
#ifndef SECRETFS_PROVIDER_H
#define SECRETFS_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/err.h"
#include "../base/kvmap.h"
#include "../base/strv.h"

#define PROVIDER_VERSION_MAX 128

struct entry {
	struct kvmap map;
	/* opaque to callers; only compared for equality and passed back */
	char version[PROVIDER_VERSION_MAX];
};

#define ENTRY_INIT { KVMAP_INIT, "" }

/* store() preconditions: */
#define PROVIDER_EXPECT_ANY NULL	/* no check (stores without CAS) */
#define PROVIDER_EXPECT_ABSENT ""	/* create only: the entry must not exist */

enum provider_caps {
	PROVIDER_CAP_CAS = 1 << 0,	/* store() honours expect atomically */
	PROVIDER_CAP_WRITE = 1 << 1,
	PROVIDER_CAP_LIST = 1 << 2,
	/* values may be dotenvx "encrypted:..." values: the section's option
	 * private_key is a reference to the key, which the fs core resolves
	 * and opens them with (a provider resolves no references) */
	PROVIDER_CAP_DOTENVX = 1 << 3,
};

/* Where a setting was written, for error messages. */
struct conf_where {
	const char *file;	/* owned by the configuration */
	int line;
};

struct conf_opt {
	char *key;
	char *value;
	struct conf_where where;
};

/* A [provider NAME] section: what create() is given. */
struct provider_conf {
	char *name;		/* section name = reference scheme */
	char *type;		/* a provider_ops.type */
	struct conf_opt *opts;	/* every key but type, in file order */
	size_t nopts;
	struct conf_where where;
	long request_timeout_ms;	/* [secretfs] request_timeout */
};

/* Value of a provider option, or NULL when not set. */
const char *conf_opt_get(const struct provider_conf *p, const char *key);

struct provider_ops {
	const char *type;
	/* NULL-terminated names of the options a [provider] section may set
	 * besides type; the config refuses others. */
	const char *const *options;
	unsigned caps;

	/* Check conf and build the provider's state. No network here (a
	 * local store may tidy its own folder: file.c). */
	int (*create)(const struct provider_conf *conf, void **state,
		      struct err *e);
	void (*destroy)(void *state);

	/* Check a reference's locator and raw ?params when the config
	 * loads, so a name the store cannot hold is a file:line error
	 * instead of a failed read. No state, no I/O. NULL: fetch() checks. */
	int (*check)(const char *locator, const char *params, struct err *e);

	/* The entry at locator into out (empty on entry). A missing entry is
	 * ERR_NOTFOUND. params is the reference's raw ?text or NULL. */
	int (*fetch)(void *state, const char *locator, const char *params,
		     struct entry *out, struct err *e);

	/* Replace the entry at locator (params: the reference's raw ?text,
	 * as fetch() had it, or NULL) with m. expect: PROVIDER_EXPECT_ANY,
	 * PROVIDER_EXPECT_ABSENT, or the version the caller read; a mismatch
	 * is ERR_CONFLICT and writes nothing. On success the new version is
	 * copied to new_version (may be NULL). Atomic: readers see the old or
	 * the new entry, never a mix. */
	int (*store)(void *state, const char *locator, const char *params,
		     const struct kvmap *m,
		     const char *expect, char new_version[PROVIDER_VERSION_MAX],
		     struct err *e);

	/* Locators of the entries under prefix ("" for all), sorted. */
	int (*list)(void *state, const char *prefix, struct strv *out,
		    struct err *e);
};

/* A configured provider: a [provider NAME] section brought to life. */
struct provider {
	char *name;
	const struct provider_ops *ops;
	void *state;
};

/* registry.c */
const struct provider_ops *provider_ops_find(const char *type);
/* Create a provider for each of the n sections. */
int provider_open_all(const struct provider_conf *confs, size_t n,
		      struct provider **out, struct err *e);
void provider_close_all(struct provider *p, size_t n);
/* One provider, on its own (a reload replaces providers one by one). */
struct provider *provider_open(const struct provider_conf *pc, struct err *e);
void provider_close(struct provider *p);
/* Do a and b configure the same provider (name, type, every option)? */
bool provider_conf_same(const struct provider_conf *a,
			const struct provider_conf *b);

void entry_free(struct entry *en);

#endif
