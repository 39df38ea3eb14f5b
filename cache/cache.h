/* cache.h - the encrypted in-memory TTL cache of provider entries.
 *
 * Unit: one provider entry (provider, locator, params). Values are held
 * encrypted (XChaCha20-Poly1305 under a random per-process key kept in
 * guarded sodium_malloc memory, the entry's identity as associated data);
 * plaintext exists only in the struct entry handed to a caller.
 *
 * Freshness, per read (struct cache_policy, per app):
 *   age < ttl            served from the cache, no provider call
 *   age >= ttl           revalidated (fetched) before it is served
 *   fetch fails (ERR_PROVIDER) and age < max_stale
 *                        the last good value is served, info->stale = true
 * Entries read within the last few ttls are revalidated in the background
 * every `refresh` (with jitter) by the refresher thread, so readers normally
 * never wait; when a refresh finds a different entry, changed() is called
 * (from the refresher thread, never from a reader's).
 * Concurrent misses on one entry share one provider fetch. Missing entries
 * (ERR_NOTFOUND) are remembered for negative_ttl. Memory is bounded by
 * max_bytes of ciphertext, least recently used entries evicted first.
 */
#ifndef SECRETFS_CACHE_H
#define SECRETFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"
#include "../providers/provider.h"

struct cache;

struct cache_conf {
	long negative_ttl_ms;	/* how long "no such entry" is remembered */
	size_t max_bytes;	/* bound on cached ciphertext + bookkeeping */
};

struct cache_policy {
	long ttl_ms;
	long refresh_ms;
	long max_stale_ms;
};

struct cache_info {
	long age_ms;		/* since the value served was fetched */
	bool stale;		/* served past a failed revalidation */
	char error[256];	/* last provider error for this entry, "" if none */
};

/* Called from the refresher thread when an entry's content changed. */
typedef void (*cache_changed_fn)(void *ctx, const struct provider *p,
				 const char *locator, const char *params);

struct cache *cache_new(const struct cache_conf *conf, struct err *e);
/* Stops the refresher, wipes everything. NULL is fine. */
void cache_free(struct cache *c);

/* The entry, through the cache. out must be empty; info may be NULL.
 * Errors are the provider's (a remembered ERR_NOTFOUND included). */
int cache_fetch(struct cache *c, struct provider *p, const char *locator,
		const char *params, const struct cache_policy *pol,
		struct entry *out, struct cache_info *info, struct err *e);

/* Keys of an entry a read wants. */
struct cache_keys {
	const char *const *v;
	size_t n;
};

/* cache_fetch for a read that wants only the keys in want: out gets the
 * version and at least those of them the entry has (the whole entry when
 * this read fetched it). A cached entry larger than a few KiB is opened
 * only where those keys can be, so one key of an entry of 50,000 costs
 * what one key of a small entry does. */
int cache_fetch_keys(struct cache *c, struct provider *p, const char *locator,
		     const char *params, const struct cache_policy *pol,
		     const struct cache_keys *want, struct entry *out,
		     struct cache_info *info, struct err *e);

/* Would cache_fetch() have to ask the provider now (nothing cached, or
 * too old)? For callers that fetch several entries in parallel only when
 * it pays. */
bool cache_would_fetch(struct cache *c, const struct provider *p,
		       const char *locator, const char *params,
		       const struct cache_policy *pol);

/* A write through p stored en at locator: cache it as fresh (params NULL
 * entry), so the writer's next read sees its own write. */
void cache_stored(struct cache *c, struct provider *p, const char *locator,
		  const struct entry *en);

/* Drop what is cached for locator (every params), e.g. after a write to
 * an entry that is read under params. A failed write expires instead
 * (cache_expire): readers may still fall back to the old value. */
void cache_forget(struct cache *c, const struct provider *p,
		  const char *locator);

/* Drop everything cached through p: a reload replaced or removed it. A
 * refresh of p already under way finishes (p must stay alive). */
void cache_forget_provider(struct cache *c, const struct provider *p);

/* Would cache_fetch() serve what it served last, without asking the
 * provider (fresh, or remembered missing)? Counts as a read of it (the
 * refresher stays interested), but opens nothing: with cache_changes, how
 * a caller that keeps what it made of an entry knows it may serve that. */
bool cache_fresh(struct cache *c, const struct provider *p,
		 const char *locator, const char *params,
		 const struct cache_policy *pol);

/* How many times an entry was stored, replaced, dropped or made due so
 * far (a fetch a reader waited for replaces, even with the same entry: it
 * is not compared; a refresh that finds the same entry does not): what was
 * made of entries while this stays the same, and they stay cache_fresh,
 * is what a read would make of them now. */
uint64_t cache_changes(struct cache *c);

/* Make what is cached for locator (every params) due: the next read
 * revalidates it, and a failure still falls back to it within max_stale
 * (setfattr user.secretfs.refresh). */
void cache_expire(struct cache *c, const struct provider *p,
		  const char *locator);

/* Start the background refresher; changed may be NULL. */
int cache_start_refresher(struct cache *c, cache_changed_fn changed,
			  void *ctx, struct err *e);

/* For benchmarks and tests. */
struct cache_stats {
	size_t entries;
	size_t bytes;
	unsigned long hits, misses, fetches, evictions, stale_served;
};
void cache_get_stats(struct cache *c, struct cache_stats *st);
/* Tests only: true when the n bytes at needle occur in any cached
 * ciphertext (they never should: values are held encrypted). */
bool cache_debug_ciphertext_contains(struct cache *c, const void *needle,
				     size_t n);

#endif
