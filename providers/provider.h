/* provider.h - the one interface every secret store implements.
 *
 * An entry is a key -> value map plus an opaque version string. A provider
 * fetches an entry, stores a whole entry with compare-and-set against the
 * version it expects, and lists entries. File, Vault and AWS Secrets
 * Manager each fill one struct provider_ops; adding a backend is one new
 * file plus one line in registry.c.
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

#include "../fs/config.h"
#include "../fs/err.h"
#include "../fs/kvmap.h"

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
};

struct strv {
	char **v;
	size_t n;
};

struct provider_ops {
	const char *type;
	/* NULL-terminated names of the options a [provider] section may set
	 * besides type; the config refuses others. */
	const char *const *options;
	unsigned caps;

	/* Check conf and build the provider's state. No network here; global
	 * gives the [secretfs] settings (request_timeout). */
	int (*create)(const struct provider_conf *conf,
		      const struct config *global, void **state,
		      struct err *e);
	void (*destroy)(void *state);

	/* The entry at locator into out (empty on entry). A missing entry is
	 * ERR_NOTFOUND. params is the reference's raw ?text or NULL. */
	int (*fetch)(void *state, const char *locator, const char *params,
		     struct entry *out, struct err *e);

	/* Replace the entry at locator with m. expect: PROVIDER_EXPECT_ANY,
	 * PROVIDER_EXPECT_ABSENT, or the version the caller read; a mismatch
	 * is ERR_CONFLICT and writes nothing. On success the new version is
	 * copied to new_version (may be NULL). Atomic: readers see the old or
	 * the new entry, never a mix. */
	int (*store)(void *state, const char *locator, const struct kvmap *m,
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
/* Create every configured provider. */
int provider_open_all(const struct config *c, struct provider **out,
		      size_t *n, struct err *e);
void provider_close_all(struct provider *p, size_t n);
struct provider *provider_find(struct provider *p, size_t n,
			       const char *name);

void entry_free(struct entry *en);
void strv_free(struct strv *s);
int strv_push(struct strv *s, const char *str);
/* Sort by strcmp and drop duplicates: what list() returns. */
void strv_sort_unique(struct strv *s);

extern const struct provider_ops file_provider_ops;
extern const struct provider_ops vault_provider_ops;
extern const struct provider_ops aws_provider_ops;

#endif
