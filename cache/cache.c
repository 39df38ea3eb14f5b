/* cache.c - the encrypted in-memory TTL cache of provider entries.
 *
 * One struct centry per (provider, locator, params): in a chained hash
 * table keyed by provider pointer + locator (the params variants of one
 * locator share a chain, so cache_forget finds them together) and on an
 * intrusive LRU list, most recently read first. A warm hit is one hash
 * lookup, one decrypt, no provider call.
 *
 * A value is a sealed blob: the entry serialized (version, then each key
 * and value, sorted by key) and encrypted with XChaCha20-Poly1305 under a
 * per-process key, the entry's identity (provider name \0 locator [\0
 * params]) as associated data, a fresh random nonce each time. An entry
 * larger than CACHE_CHUNK is sealed in chunks of whole records, each with
 * its own nonce, and the blob keeps the first key of each (key names are
 * file names, which the inode table and listings hold anyway; never a
 * value): a read that wants a few keys (a lookup or a key file in an app
 * of 50,000 keys) opens the chunks that can hold them, not the whole. The
 * chunks of a blob share its associated data: they are only ever opened in
 * place, in memory no one else writes. The key lives in sodium_malloc
 * memory that is PROT_NONE whenever no thread is sealing or opening.
 * Plaintext only ever sits in guarded scratch buffers (sodium_malloc, kept
 * in a small pool because allocating one costs ~25 us) that are wiped as
 * soon as the struct entry is built.
 *
 * Concurrency: one mutex guards the table, the LRU and every centry field
 * except the immutable identity. Provider fetches, sealing and opening run
 * without it. An entry being fetched is marked `fetching`; readers that
 * need it wait for that round instead of calling the provider (one fetch
 * per miss, however many readers). Entries and blobs are reference
 * counted (the table holds one reference), so an entry dropped by
 * cache_forget or eviction while in use is freed by its last user.
 */
#include "cache.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/clock.h"
#include "../base/hash.h"
#include "../base/secmem.h"

#define CACHE_NPUB crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define CACHE_ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define CACHE_KEYBYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES

#define CACHE_BUCKETS_MIN 64
/* Plaintext bytes per sealed chunk of a large entry: what a read of one
 * key decrypts; an entry this small is one chunk, as it always was. */
#define CACHE_CHUNK 4096
#define CACHE_WAIT_CONDS 16	/* readers waiting on a fetch, by hash */
#define CACHE_POOL_N 8		/* scratch buffers kept for reuse */
#define CACHE_POOL_MAX (256 * 1024)	/* larger ones are not kept */
/* A reader does not retry a provider that just failed sooner than this
 * (nor sooner than ttl): a down provider is not hammered by every read. */
#define CACHE_RETRY_MS 1000
#define CACHE_READ_WINDOW 3	/* refreshed while read within 3 ttls */
#define CACHE_JITTER 100	/* refresh jitter, per mille either way */
#define CACHE_NEVER (INT64_MIN / 4)

enum ce_state { CE_EMPTY, CE_VALUE, CE_MISSING };

/* One sealed chunk of a blob: at data + off, nonce, then ciphertext and
 * tag of plen plaintext bytes. */
struct chunk {
	uint32_t off, plen;
	char *first;	/* key of its first record; NULL for the first chunk */
};

/* Where the chunks of a blob of more than one are. */
struct chunks {
	uint32_t n;
	uint32_t bytes;		/* this, first keys included */
	struct chunk c[];
};

/* A sealed value: one or more chunks back to back. Immutable once built.
 * One pointer more than a single sealed value needs, nothing else: most
 * entries are small, and 10,000 apps of 20 keys are 10,000 blobs. */
struct blob {
	atomic_uint refs;
	uint32_t len;		/* bytes of data */
	struct chunks *chunks;	/* NULL when the whole is one chunk */
	unsigned char data[];
};

static uint32_t cache_blob_nchunks(const struct blob *b)
{
	return b->chunks ? b->chunks->n : 1;
}

/* Plaintext bytes of every chunk. */
static uint32_t cache_blob_plen(const struct blob *b)
{
	return b->len - cache_blob_nchunks(b) * (CACHE_NPUB + CACHE_ABYTES);
}

struct centry {
	struct centry *hnext;		/* hash chain */
	struct centry *lprev, *lnext;	/* LRU list */
	const struct provider *p;
	uint64_t hash;
	atomic_uint refs;		/* the table's, plus one per user */
	struct blob *blob;		/* the last good value, or NULL */
	char *error;			/* last failure message, or NULL */
	int64_t fetched_ms;		/* when blob (or MISSING) was fetched */
	int64_t read_ms;		/* last read */
	int64_t failed_ms;		/* last failed fetch */
	struct cache_policy pol;	/* of the most recent reader */
	size_t acct;			/* bytes counted in cache->bytes */
	unsigned seq;			/* fetch rounds completed */
	unsigned gen;			/* bumped by cache_stored */
	uint8_t state;			/* enum ce_state */
	uint8_t last_code;		/* enum err_code of the last round */
	bool fetching;
	bool expired;			/* revalidate at the next read */
	bool dead;			/* out of the table */
	int16_t jitter;			/* of refresh, per mille */
	uint32_t loc_off, par_off;	/* into id; par_off 0: params NULL */
	uint32_t id_len;		/* associated data length */
	char id[];			/* provider name \0 locator [\0 params] */
};

/* A guarded scratch buffer holding plaintext. */
struct plain {
	unsigned char *p;
	size_t len, cap;
};

struct cache {
	struct cache_conf conf;
	pthread_mutex_t lock;
	struct centry **buckets;
	size_t nbuckets, n;
	struct centry *lru_head, *lru_tail;
	size_t bytes;
	struct cache_stats st;
	pthread_cond_t fetched[CACHE_WAIT_CONDS];
	long min_refresh_ms;	/* over every read so far */
	/* entries stored, replaced, dropped or made due, ever (atomic: read
	 * without the lock by cache_changes) */
	uint64_t changes;

	pthread_t refresher;
	bool running, stop;
	pthread_cond_t wake;
	cache_changed_fn changed;
	void *ctx;

	pthread_mutex_t key_lock;
	unsigned key_users;
	bool key_readable;
	/* the refresher closes the key once idle (c->running, but read under
	 * key_lock by every release) */
	bool key_idler;
	int64_t key_used_ms;	/* when the last user let go */
	unsigned char *key;

	pthread_mutex_t pool_lock;
	struct plain pool[CACHE_POOL_N];
	size_t npool;
};

/* What one fetch round brought back. */
struct round {
	unsigned gen;		/* ce->gen when it started */
	int rc;
	struct err e;
	struct blob *old;	/* refresher: the value to compare with */
	struct blob *blob;	/* the new value sealed; NULL when same */
	bool same;		/* identical to old */
};

/* ---- the key ---- */

/* Readable while threads use it, PROT_NONE once unused. With the
 * refresher running, "unused" means for CACHE_KEY_IDLE_MS: two mprotect
 * calls per cache hit flush both CPUs' TLBs and cost a quarter of a warm
 * open, so a busy cache keeps the key readable and the refresher closes
 * it after a quiet second. */
#define CACHE_KEY_IDLE_MS 1000

static const unsigned char *key_acquire(struct cache *c)
{
	pthread_mutex_lock(&c->key_lock);
	c->key_users++;
	if (!c->key_readable) {
		sodium_mprotect_readonly(c->key);
		c->key_readable = true;
	}
	pthread_mutex_unlock(&c->key_lock);
	return c->key;
}

static void cache_key_close_locked(struct cache *c)
{
	sodium_mprotect_noaccess(c->key);
	c->key_readable = false;
}

static void cache_key_release(struct cache *c)
{
	pthread_mutex_lock(&c->key_lock);
	if (--c->key_users == 0) {
		c->key_used_ms = clock_now_ms();
		if (!c->key_idler)
			cache_key_close_locked(c);
	}
	pthread_mutex_unlock(&c->key_lock);
}

/* From the refresher: close the key once it has been idle. true while it
 * is still readable. */
static bool cache_key_close_idle(struct cache *c)
{
	bool readable;

	pthread_mutex_lock(&c->key_lock);
	if (c->key_readable && !c->key_users &&
	    clock_now_ms() - c->key_used_ms >= CACHE_KEY_IDLE_MS)
		cache_key_close_locked(c);
	readable = c->key_readable;
	pthread_mutex_unlock(&c->key_lock);
	return readable;
}

/* ---- plaintext scratch buffers ---- */

static int cache_plain_get(struct cache *c, size_t len, struct plain *pl)
{
	struct plain *best = NULL;

	pl->p = NULL;
	pthread_mutex_lock(&c->pool_lock);
	for (size_t i = 0; i < c->npool; i++)
		if (c->pool[i].cap >= len &&
		    (!best || c->pool[i].cap < best->cap))
			best = &c->pool[i];
	if (best) {
		*pl = *best;
		*best = c->pool[--c->npool];
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (!pl->p) {
		pl->cap = (len + 4095) & ~(size_t)4095;
		if (!pl->cap)
			pl->cap = 4096;
		pl->p = sodium_malloc(pl->cap);
		if (!pl->p)
			return -1;
	}
	pl->len = len;
	return 0;
}

/* Wipe, then keep for reuse or free. */
static void cache_plain_put(struct cache *c, struct plain *pl)
{
	if (!pl->p)
		return;
	sodium_memzero(pl->p, pl->len);
	pthread_mutex_lock(&c->pool_lock);
	if (pl->cap <= CACHE_POOL_MAX && c->npool < CACHE_POOL_N) {
		c->pool[c->npool++] = *pl;
		pl->p = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (pl->p)
		sodium_free(pl->p);
	pl->p = NULL;
}

/* ---- serialization: u32 len, version; u32 n; n x (u32 len, key \0,
 * u32 len, value). Native byte order: it never leaves the process. ---- */

static unsigned char *put_u32(unsigned char *w, size_t v)
{
	uint32_t u = (uint32_t)v;

	memcpy(w, &u, sizeof(u));
	return w + sizeof(u);
}

static int cache_get_u32(const unsigned char **r, const unsigned char *end,
		   uint32_t *v)
{
	if ((size_t)(end - *r) < sizeof(*v))
		return -1;
	memcpy(v, *r, sizeof(*v));
	*r += sizeof(*v);
	return 0;
}

static int cache_plain_build(struct cache *c, const struct entry *en,
		       struct plain *pl)
{
	size_t vlen = strnlen(en->version, PROVIDER_VERSION_MAX - 1);
	size_t len = 4 + vlen + 4;
	unsigned char *w;

	for (size_t i = 0; i < en->map.n; i++) {
		len += 8 + strlen(en->map.items[i].key) + 1 +
		       en->map.items[i].len;
		if (len > UINT32_MAX - CACHE_NPUB - CACHE_ABYTES)
			return -1;
	}
	if (cache_plain_get(c, len, pl) < 0)
		return -1;
	w = put_u32(pl->p, vlen);
	memcpy(w, en->version, vlen);
	w = put_u32(w + vlen, en->map.n);
	for (size_t i = 0; i < en->map.n; i++) {
		const struct kv *kv = &en->map.items[i];
		size_t klen = strlen(kv->key) + 1;

		w = put_u32(w, klen);
		memcpy(w, kv->key, klen);
		w = put_u32(w + klen, kv->len);
		memcpy(w, kv->val, kv->len);
		w += kv->len;
	}
	return 0;
}

/* The header: the version into out; *n the number of records. */
static int cache_header_parse(const unsigned char **r, const unsigned char *end,
			      struct entry *out, uint32_t *n)
{
	uint32_t vlen;

	if (cache_get_u32(r, end, &vlen) < 0 || vlen >= PROVIDER_VERSION_MAX ||
	    (size_t)(end - *r) < vlen)
		return -1;
	memcpy(out->version, *r, vlen);
	out->version[vlen] = '\0';
	*r += vlen;
	return cache_get_u32(r, end, n);
}

static bool cache_keys_has(const struct cache_keys *want, const char *key)
{
	if (!want)
		return true;
	for (size_t i = 0; i < want->n; i++)
		if (!strcmp(want->v[i], key))
			return true;
	return false;
}

/* One record (key, value) at *r into out when want has its key. */
static int cache_record_parse(const unsigned char **r, const unsigned char *end,
			      struct entry *out, const struct cache_keys *want)
{
	uint32_t klen, len;
	const char *key;

	if (cache_get_u32(r, end, &klen) < 0 || !klen ||
	    (size_t)(end - *r) < klen || (*r)[klen - 1] != '\0')
		return -1;
	key = (const char *)*r;
	*r += klen;
	if (cache_get_u32(r, end, &len) < 0 || (size_t)(end - *r) < len)
		return -1;
	if (cache_keys_has(want, key) && kvmap_set(&out->map, key, *r, len) < 0)
		return -1;
	*r += len;
	return 0;
}

static int cache_plain_parse(const struct plain *pl, struct entry *out)
{
	const unsigned char *r = pl->p, *end = pl->p + pl->len;
	uint32_t n;

	if (cache_header_parse(&r, end, out, &n) < 0)
		return -1;
	for (uint32_t i = 0; i < n; i++)
		if (cache_record_parse(&r, end, out, NULL) < 0)
			goto fail;
	return 0;
fail:
	entry_free(out);
	return -1;
}

static bool cache_plain_equal(const struct plain *a, const struct plain *b)
{
	return a->len == b->len && !memcmp(a->p, b->p, a->len);
}

/* ---- sealed blobs ---- */

static void cache_blob_put(struct blob *b)
{
	if (!b || atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	for (uint32_t i = 0; b->chunks && i < b->chunks->n; i++)
		free(b->chunks->c[i].first);
	free(b->chunks);
	free(b);
}

static struct blob *cache_blob_get(struct blob *b)
{
	if (b)
		atomic_fetch_add(&b->refs, 1);
	return b;
}

/* Append v to the cuts (*k of *cap); false when out of memory. */
static bool cache_cut_push(uint32_t **cut, uint32_t *k, uint32_t *cap,
			   uint32_t v)
{
	uint32_t *grown;

	if (*k == *cap) {
		grown = realloc(*cut, 2 * *cap * sizeof(**cut));
		if (!grown)
			return false;
		*cut = grown;
		*cap *= 2;
	}
	(*cut)[(*k)++] = v;
	return true;
}

/* Where pl's chunks end: cut[i] is the end of chunk i, at a record
 * boundary, each chunk at most CACHE_CHUNK bytes unless one record is
 * larger. The number of chunks, or 0 when out of memory. */
static uint32_t cache_blob_cuts(const struct plain *pl, uint32_t **cut)
{
	static const struct cache_keys none = { NULL, 0 };
	const unsigned char *r = pl->p, *end = pl->p + pl->len, *start = r;
	struct entry hdr = ENTRY_INIT;
	uint32_t n, k = 0, cap = 4;
	bool ok = true;

	*cut = malloc(cap * sizeof(**cut));
	if (!*cut)
		return 0;
	if (pl->len > CACHE_CHUNK && cache_header_parse(&r, end, &hdr, &n) == 0) {
		while (ok && r < end) {
			const unsigned char *rec = r;

			/* it cannot fail: cache_plain_build wrote it */
			if (cache_record_parse(&r, end, NULL, &none) < 0)
				break;
			if (r - start > CACHE_CHUNK && rec != start) {
				ok = cache_cut_push(cut, &k, &cap, (uint32_t)(rec - pl->p));
				start = rec;
			}
		}
	}
	if (ok)
		ok = cache_cut_push(cut, &k, &cap, (uint32_t)pl->len);
	if (!ok) {
		free(*cut);
		*cut = NULL;
		return 0;
	}
	return k;
}

/* The key of the record at p (a chunk's first), copied. */
static char *cache_first_key(const unsigned char *p)
{
	return strdup((const char *)p + sizeof(uint32_t));
}

static struct blob *cache_blob_alloc(const struct plain *pl, const uint32_t *cut,
				     uint32_t nchunks)
{
	size_t len = (size_t)nchunks * (CACHE_NPUB + CACHE_ABYTES) + pl->len;
	struct blob *b = len <= UINT32_MAX ? malloc(sizeof(*b) + len) : NULL;

	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	b->len = (uint32_t)len;
	b->chunks = NULL;
	if (nchunks == 1)
		return b;
	b->chunks = calloc(1, sizeof(*b->chunks) + nchunks * sizeof(struct chunk));
	if (!b->chunks) {
		free(b);
		return NULL;
	}
	b->chunks->bytes = sizeof(*b->chunks) + nchunks * sizeof(struct chunk);
	for (uint32_t i = 0; i < nchunks; i++) {
		struct chunk *ch = &b->chunks->c[i];
		uint32_t from = i ? cut[i - 1] : 0;

		b->chunks->n = i + 1;
		ch->off = from + i * (CACHE_NPUB + CACHE_ABYTES);
		ch->plen = cut[i] - from;
		if (i && !(ch->first = cache_first_key(pl->p + from))) {
			cache_blob_put(b);
			return NULL;
		}
		b->chunks->bytes += i ? strlen(ch->first) + 1 : 0;
	}
	return b;
}

/* Chunk i of b (the whole blob when it is one chunk). */
static struct chunk cache_blob_chunk(const struct blob *b, uint32_t i)
{
	if (!b->chunks)
		return (struct chunk){ .off = 0, .plen = cache_blob_plen(b) };
	return b->chunks->c[i];
}

static struct blob *cache_blob_seal(struct cache *c, const struct centry *ce,
			      const struct plain *pl)
{
	uint32_t *cut, nchunks = cache_blob_cuts(pl, &cut);
	struct blob *b = nchunks ? cache_blob_alloc(pl, cut, nchunks) : NULL;
	const unsigned char *key;
	uint32_t from = 0;

	free(cut);
	if (!b)
		return NULL;
	key = key_acquire(c);
	for (uint32_t i = 0; i < nchunks; i++) {
		struct chunk ch = cache_blob_chunk(b, i);
		unsigned char *at = b->data + ch.off;

		randombytes_buf(at, CACHE_NPUB);
		crypto_aead_xchacha20poly1305_ietf_encrypt(at + CACHE_NPUB, NULL,
			pl->p + from, ch.plen, (const unsigned char *)ce->id,
			ce->id_len, NULL, at, key);
		from += ch.plen;
	}
	cache_key_release(c);
	secmem_stack_wipe();	/* the cipher's frames held the plaintext */
	return b;
}

/* Decrypt chunk i of b to out (room for its plen bytes). Caller holds
 * the key. */
static int cache_chunk_open(const struct centry *ce, const struct blob *b,
			    uint32_t i, unsigned char *out,
			    const unsigned char *key)
{
	struct chunk ch = cache_blob_chunk(b, i);
	const unsigned char *at = b->data + ch.off;

	return crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL,
		at + CACHE_NPUB, ch.plen + CACHE_ABYTES,
		(const unsigned char *)ce->id, ce->id_len, at, key);
}

static int cache_blob_open(struct cache *c, const struct centry *ce,
		     const struct blob *b, struct plain *pl)
{
	const unsigned char *key;
	uint32_t from = 0;
	int rc = 0;

	if (cache_plain_get(c, cache_blob_plen(b), pl) < 0)
		return -1;
	key = key_acquire(c);
	for (uint32_t i = 0; rc == 0 && i < cache_blob_nchunks(b); i++) {
		rc = cache_chunk_open(ce, b, i, pl->p + from, key);
		from += cache_blob_chunk(b, i).plen;
	}
	cache_key_release(c);
	secmem_stack_wipe();
	if (rc != 0)
		cache_plain_put(c, pl);
	return rc ? -1 : 0;
}

/* The struct entry a blob holds. */
static int cache_blob_to_entry(struct cache *c, const struct centry *ce,
			 const struct blob *b, struct entry *out)
{
	struct plain pl;
	int rc;

	if (cache_blob_open(c, ce, b, &pl) < 0)
		return -1;
	rc = cache_plain_parse(&pl, out);
	cache_plain_put(c, &pl);
	return rc;
}

/* The chunk of b that holds key if any does: the last whose first key
 * is not after it. */
static uint32_t cache_blob_find(const struct blob *b, const char *key)
{
	uint32_t lo = 1, hi = b->chunks->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (strcmp(b->chunks->c[mid].first, key) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

/* Open chunk i of b and take its records that want has into out (the
 * first chunk: the version too). */
static int cache_chunk_to_entry(struct cache *c, const struct centry *ce,
				const struct blob *b, uint32_t i,
				const struct cache_keys *want, struct entry *out)
{
	struct chunk ch = cache_blob_chunk(b, i);
	const unsigned char *key, *r, *end;
	struct plain pl;
	uint32_t n;
	int rc;

	if (cache_plain_get(c, ch.plen, &pl) < 0)
		return -1;
	key = key_acquire(c);
	rc = cache_chunk_open(ce, b, i, pl.p, key);
	cache_key_release(c);
	secmem_stack_wipe();
	r = pl.p;
	end = pl.p + pl.len;
	if (rc == 0 && i == 0)
		rc = cache_header_parse(&r, end, out, &n);
	while (rc == 0 && r < end)
		rc = cache_record_parse(&r, end, out, want);
	cache_plain_put(c, &pl);
	return rc;
}

/* The part of the entry a blob holds that want asks for: the version,
 * and those of its keys the entry has, opening only the chunks that can
 * hold them. */
static int cache_blob_to_keys(struct cache *c, const struct centry *ce,
			      const struct blob *b,
			      const struct cache_keys *want, struct entry *out)
{
	uint32_t last = 0;
	/* the first chunk holds the version */
	int rc = cache_chunk_to_entry(c, ce, b, 0, want, out);

	for (size_t k = 0; rc == 0 && b->chunks && k < want->n; k++) {
		uint32_t i = cache_blob_find(b, want->v[k]);

		/* chunk 0 is open already; keys in one chunk are often asked
		 * for together */
		if (i != 0 && i != last)
			rc = cache_chunk_to_entry(c, ce, b, i, want, out);
		last = i;
	}
	if (rc < 0)
		entry_free(out);
	return rc;
}

/* ---- entries ---- */

static const char *cache_ce_locator(const struct centry *ce)
{
	return ce->id + ce->loc_off;
}

static const char *cache_ce_params(const struct centry *ce)
{
	return ce->par_off ? ce->id + ce->par_off : NULL;
}

static pthread_cond_t *cache_ce_cond(struct cache *c, const struct centry *ce)
{
	return &c->fetched[ce->hash % CACHE_WAIT_CONDS];
}

static void cache_ce_put(struct centry *ce)
{
	if (atomic_fetch_sub(&ce->refs, 1) != 1)
		return;
	cache_blob_put(ce->blob);
	free(ce->error);
	free(ce);
}

/* FNV-1a over the locator, seeded with the provider pointer, then a
 * splitmix64 finish so the low bits (the bucket) depend on every byte. */
static uint64_t cache_hash(const struct provider *p, const char *locator)
{
	uint64_t h = hash_fnv1a(HASH_FNV1A_INIT ^ (uint64_t)(uintptr_t)p, locator);

	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

static struct centry *cache_ce_new(const struct provider *p, uint64_t hash,
			     const char *locator, const char *params)
{
	const char *name = p->name ? p->name : "";
	size_t nl = strlen(name), ll = strlen(locator);
	size_t pl = params ? strlen(params) + 1 : 0;
	size_t idlen = nl + 1 + ll + pl;
	struct centry *ce;

	if (idlen >= UINT32_MAX)
		return NULL;
	ce = calloc(1, sizeof(*ce) + idlen + 1);
	if (!ce)
		return NULL;
	memcpy(ce->id, name, nl);
	memcpy(ce->id + nl + 1, locator, ll);
	if (params)
		memcpy(ce->id + nl + 1 + ll + 1, params, pl - 1);
	ce->loc_off = nl + 1;
	ce->par_off = params ? nl + 1 + ll + 1 : 0;
	ce->id_len = idlen;
	ce->p = p;
	ce->hash = hash;
	atomic_init(&ce->refs, 1);
	ce->fetched_ms = ce->failed_ms = ce->read_ms = CACHE_NEVER;
	ce->last_code = ERR_OK;
	return ce;
}

/* Bring ce's share of c->bytes up to date (not for dead entries). */
static void cache_ce_account(struct cache *c, struct centry *ce)
{
	size_t a = sizeof(*ce) + ce->id_len + 1;

	if (ce->dead)
		return;
	if (ce->blob)
		a += sizeof(*ce->blob) + ce->blob->len +
		     (ce->blob->chunks ? ce->blob->chunks->bytes : 0);
	if (ce->error)
		a += strlen(ce->error) + 1;
	c->bytes = c->bytes - ce->acct + a;
	ce->acct = a;
}

/* Something a reader was served may differ now (c->lock held). */
static void cache_changed(struct cache *c)
{
	__atomic_add_fetch(&c->changes, 1, __ATOMIC_RELEASE);
}

static void cache_ce_set_blob(struct cache *c, struct centry *ce, struct blob *b)
{
	cache_changed(c);
	cache_blob_put(ce->blob);
	ce->blob = b;
	cache_ce_account(c, ce);
}

static void cache_ce_set_error(struct cache *c, struct centry *ce, const char *msg)
{
	free(ce->error);
	ce->error = msg ? strdup(msg) : NULL;
	cache_ce_account(c, ce);
}

static int16_t cache_jitter(void)
{
	return (int16_t)randombytes_uniform(2 * CACHE_JITTER + 1) -
	       CACHE_JITTER;
}

/* ---- the table and the LRU list (c->lock held) ---- */

static void cache_lru_remove(struct cache *c, struct centry *ce)
{
	if (ce->lprev)
		ce->lprev->lnext = ce->lnext;
	else
		c->lru_head = ce->lnext;
	if (ce->lnext)
		ce->lnext->lprev = ce->lprev;
	else
		c->lru_tail = ce->lprev;
	ce->lprev = ce->lnext = NULL;
}

static void cache_lru_push_front(struct cache *c, struct centry *ce)
{
	ce->lprev = NULL;
	ce->lnext = c->lru_head;
	if (c->lru_head)
		c->lru_head->lprev = ce;
	else
		c->lru_tail = ce;
	c->lru_head = ce;
}

static struct centry *cache_table_lookup(struct cache *c, const struct provider *p,
				   uint64_t hash, const char *locator,
				   const char *params)
{
	struct centry *ce = c->buckets[hash & (c->nbuckets - 1)];

	for (; ce; ce = ce->hnext) {
		const char *cp = cache_ce_params(ce);

		if (ce->p != p || ce->hash != hash ||
		    strcmp(cache_ce_locator(ce), locator))
			continue;
		if (cp && params ? !strcmp(cp, params) : cp == params)
			return ce;
	}
	return NULL;
}

/* Double the buckets; on failure the table just stays denser. */
static void cache_table_grow(struct cache *c)
{
	size_t nb = c->nbuckets * 2;
	struct centry **b = calloc(nb, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct centry *ce = c->buckets[i], *next;

		for (; ce; ce = next) {
			next = ce->hnext;
			ce->hnext = b[ce->hash & (nb - 1)];
			b[ce->hash & (nb - 1)] = ce;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = nb;
}

static void cache_table_insert(struct cache *c, struct centry *ce)
{
	struct centry **head;

	if (c->n >= c->nbuckets)
		cache_table_grow(c);
	head = &c->buckets[ce->hash & (c->nbuckets - 1)];
	ce->hnext = *head;
	*head = ce;
	c->n++;
	cache_lru_push_front(c, ce);
	cache_ce_account(c, ce);
}

/* Out of the table; freed now or by its last user. */
static void cache_table_unlink(struct cache *c, struct centry *ce)
{
	struct centry **pp = &c->buckets[ce->hash & (c->nbuckets - 1)];

	while (*pp != ce)
		pp = &(*pp)->hnext;
	*pp = ce->hnext;
	cache_changed(c);
	cache_lru_remove(c, ce);
	c->n--;
	c->bytes -= ce->acct;
	ce->acct = 0;
	ce->dead = true;
	cache_ce_put(ce);
}

/* The entry for (p, locator, params), created if new, with a reference
 * for the caller. NULL when out of memory. */
static struct centry *cache_table_get(struct cache *c, const struct provider *p,
				const char *locator, const char *params)
{
	uint64_t hash = cache_hash(p, locator);
	struct centry *ce = cache_table_lookup(c, p, hash, locator, params);

	if (!ce) {
		ce = cache_ce_new(p, hash, locator, params);
		if (!ce)
			return NULL;
		cache_table_insert(c, ce);
	}
	atomic_fetch_add(&ce->refs, 1);
	return ce;
}

/* Drop least recently read entries until under max_bytes; an entry being
 * fetched stays (its readers are waiting for it). */
static void cache_evict(struct cache *c)
{
	struct centry *ce = c->lru_tail, *prev;

	for (; ce && c->bytes > c->conf.max_bytes; ce = prev) {
		prev = ce->lprev;
		if (ce->fetching)
			continue;
		cache_table_unlink(c, ce);
		c->st.evictions++;
	}
}

/* ---- fetch rounds ---- */

static bool cache_code_transient(int code)
{
	return code == ERR_PROVIDER || code == ERR_IO || code == ERR_UNSURE;
}

/* Call the provider and seal what it returns into r->blob, all without
 * c->lock; en keeps the entry. With r->old set, an identical entry is
 * reported as r->same instead of being sealed again. */
static void cache_round_fetch(struct cache *c, const struct centry *ce,
			struct entry *en, struct round *r)
{
	const struct provider *p = ce->p;
	struct plain pl, old;

	err_clear(&r->e);
	r->rc = p->ops->fetch(p->state, cache_ce_locator(ce), cache_ce_params(ce), en,
			      &r->e);
	if (r->rc < 0) {
		entry_free(en);
		if (r->e.code == ERR_OK || !r->e.msg[0])
			err_set(&r->e, r->e.code ? r->e.code : ERR_PROVIDER,
				"%s: fetch failed", cache_ce_locator(ce));
		return;
	}
	if (cache_plain_build(c, en, &pl) < 0) {
		r->rc = err_set(&r->e, ERR_NOMEM, "%s: out of memory caching",
				cache_ce_locator(ce));
		return;
	}
	if (r->old && cache_blob_open(c, ce, r->old, &old) == 0) {
		r->same = cache_plain_equal(&pl, &old);
		cache_plain_put(c, &old);
	}
	if (!r->same) {
		r->blob = cache_blob_seal(c, ce, &pl);
		if (!r->blob)
			r->rc = err_set(&r->e, ERR_NOMEM,
					"%s: out of memory caching",
					cache_ce_locator(ce));
	}
	cache_plain_put(c, &pl);
}

/* Record a round's outcome on ce and wake its waiters (c->lock held).
 * True when the cached content changed. */
static bool cache_round_complete(struct cache *c, struct centry *ce,
			   struct round *r)
{
	bool changed = false;

	ce->fetching = false;
	ce->seq++;
	c->st.fetches++;
	pthread_cond_broadcast(cache_ce_cond(c, ce));
	if (ce->gen != r->gen) {
		/* cache_stored ran meanwhile: its entry is newer */
		cache_blob_put(r->blob);
		r->blob = NULL;
		return false;
	}
	if (r->rc == 0) {
		if (r->blob) {
			changed = true;
			cache_ce_set_blob(c, ce, r->blob);
			r->blob = NULL;
		}
		ce->state = CE_VALUE;
		ce->fetched_ms = clock_now_ms();
		ce->expired = false;
		ce->jitter = cache_jitter();
		ce->last_code = ERR_OK;
		cache_ce_set_error(c, ce, NULL);
	} else if (r->e.code == ERR_NOTFOUND) {
		/* deleted: a real answer, it replaces the value */
		changed = ce->state == CE_VALUE;
		cache_ce_set_blob(c, ce, NULL);
		ce->state = CE_MISSING;
		ce->fetched_ms = clock_now_ms();
		ce->last_code = ERR_NOTFOUND;
		cache_ce_set_error(c, ce, r->e.msg);
	} else {
		ce->last_code = r->e.code;
		ce->failed_ms = clock_now_ms();
		cache_ce_set_error(c, ce, r->e.msg);
	}
	if (!ce->dead)
		cache_evict(c);
	return changed;
}

/* ---- reads ---- */

enum verdict { V_FRESH, V_STALE, V_MISSING, V_ERROR, V_FETCH };

/* What a read of ce gets now. done: a fetch round completed while this
 * read was waiting or leading, so its outcome is the answer. */
static enum verdict ce_verdict(const struct cache *c, const struct centry *ce,
			       const struct cache_policy *pol, int64_t now,
			       bool done)
{
	int64_t age = now - ce->fetched_ms;
	long retry = pol->ttl_ms < CACHE_RETRY_MS ? pol->ttl_ms : CACHE_RETRY_MS;
	bool transient = cache_code_transient(ce->last_code);

	if (ce->state == CE_VALUE &&
	    ((age < pol->ttl_ms && !ce->expired) || (done && ce->last_code == ERR_OK)))
		return V_FRESH;
	if (ce->state == CE_MISSING &&
	    (age < c->conf.negative_ttl_ms ||
	     (done && ce->last_code == ERR_NOTFOUND)))
		return V_MISSING;
	if (!done && !(transient && now - ce->failed_ms < retry))
		return V_FETCH;
	if (transient && ce->state == CE_VALUE && age < pol->max_stale_ms)
		return V_STALE;
	if (ce->last_code != ERR_OK)
		return V_ERROR;
	return V_FETCH;
}

static void cache_ce_touch(struct cache *c, struct centry *ce,
		     const struct cache_policy *pol, int64_t now)
{
	ce->read_ms = now;
	ce->pol = *pol;
	if (c->lru_head != ce && !ce->dead) {
		cache_lru_remove(c, ce);
		cache_lru_push_front(c, ce);
	}
	if (pol->refresh_ms > 0 &&
	    (!c->min_refresh_ms || pol->refresh_ms < c->min_refresh_ms)) {
		c->min_refresh_ms = pol->refresh_ms;
		pthread_cond_signal(&c->wake);
	}
}

static void cache_info_fill(struct cache_info *info, const struct centry *ce,
		      int64_t now, bool stale)
{
	if (!info)
		return;
	info->age_ms = ce->state == CE_VALUE ? (long)(now - ce->fetched_ms) : 0;
	info->stale = stale;
	snprintf(info->error, sizeof(info->error), "%s",
		 ce->error ? ce->error : "");
}

/* Fetch ce for a reader (c->lock held, released meanwhile). 1 when out
 * holds the fresh entry, 0 when the reader should look at ce again. */
static int cache_ce_lead(struct cache *c, struct centry *ce, struct entry *out)
{
	struct round r = { .gen = ce->gen };
	struct entry tmp = ENTRY_INIT;

	ce->fetching = true;
	pthread_mutex_unlock(&c->lock);
	cache_round_fetch(c, ce, &tmp, &r);
	pthread_mutex_lock(&c->lock);
	if (ce->gen == r.gen && r.rc == 0) {
		cache_round_complete(c, ce, &r);
		*out = tmp;
		return 1;
	}
	cache_round_complete(c, ce, &r);
	entry_free(&tmp);
	return 0;
}

/* Decrypt ce's value, or the part of it want asks for, into out (c->lock
 * held, released on return). */
static int cache_ce_serve(struct cache *c, struct centry *ce,
			  const struct cache_keys *want, struct entry *out,
			  struct err *e)
{
	struct blob *b = cache_blob_get(ce->blob);
	int rc;

	pthread_mutex_unlock(&c->lock);
	if (want)
		rc = cache_blob_to_keys(c, ce, b, want, out);
	else
		rc = cache_blob_to_entry(c, ce, b, out);
	cache_blob_put(b);
	if (rc < 0)
		err_set(e, ERR_NOMEM, "%s: cannot open cached entry",
			cache_ce_locator(ce));
	cache_ce_put(ce);
	return rc;
}

static int cache_ce_fail(struct cache *c, struct centry *ce, enum verdict v,
		   struct err *e)
{
	enum err_code code = v == V_MISSING ? ERR_NOTFOUND : ce->last_code;

	if (ce->error && ce->last_code == code)
		err_set(e, code, "%s", ce->error);
	else
		err_set(e, code, "%s: %s", cache_ce_locator(ce),
			err_code_name(code));
	cache_ce_put(ce);
	pthread_mutex_unlock(&c->lock);
	return -1;
}

int cache_fetch(struct cache *c, struct provider *p, const char *locator,
		const char *params, const struct cache_policy *pol,
		struct entry *out, struct cache_info *info, struct err *e)
{
	return cache_fetch_keys(c, p, locator, params, pol, NULL, out, info, e);
}

int cache_fetch_keys(struct cache *c, struct provider *p, const char *locator,
		     const char *params, const struct cache_policy *pol,
		     const struct cache_keys *want, struct entry *out,
		     struct cache_info *info, struct err *e)
{
	static const struct cache_policy none = { 0, 0, 0 };
	struct centry *ce;
	enum verdict v;
	bool done = false;
	int64_t now;

	if (!pol)
		pol = &none;
	pthread_mutex_lock(&c->lock);
	ce = cache_table_get(c, p, locator, params);
	if (!ce) {
		pthread_mutex_unlock(&c->lock);
		return err_set(e, ERR_NOMEM, "%s: out of memory", locator);
	}
	cache_ce_touch(c, ce, pol, clock_now_ms());
	for (;;) {
		now = clock_now_ms();
		v = ce_verdict(c, ce, pol, now, done);
		if (v != V_FETCH)
			break;
		if (ce->fetching) {
			unsigned seq = ce->seq;

			while (ce->seq == seq)
				pthread_cond_wait(cache_ce_cond(c, ce), &c->lock);
		} else if (cache_ce_lead(c, ce, out)) {
			c->st.misses++;
			cache_info_fill(info, ce, clock_now_ms(), false);
			cache_ce_put(ce);
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		done = true;
	}
	if (done)
		c->st.misses++;
	else
		c->st.hits++;
	cache_info_fill(info, ce, now, v == V_STALE);
	if (v == V_STALE)
		c->st.stale_served++;
	if (v == V_FRESH || v == V_STALE)
		return cache_ce_serve(c, ce, want, out, e);
	return cache_ce_fail(c, ce, v, e);
}

bool cache_would_fetch(struct cache *c, const struct provider *p,
		       const char *locator, const char *params,
		       const struct cache_policy *pol)
{
	struct centry *ce;
	bool fetch = true;

	pthread_mutex_lock(&c->lock);
	ce = cache_table_lookup(c, p, cache_hash(p, locator), locator, params);
	if (ce)
		fetch = ce_verdict(c, ce, pol, clock_now_ms(), false) == V_FETCH;
	pthread_mutex_unlock(&c->lock);
	return fetch;
}

bool cache_fresh(struct cache *c, const struct provider *p,
		 const char *locator, const char *params,
		 const struct cache_policy *pol)
{
	struct centry *ce;
	enum verdict v = V_FETCH;
	int64_t now = clock_now_ms();

	pthread_mutex_lock(&c->lock);
	ce = cache_table_lookup(c, p, cache_hash(p, locator), locator, params);
	if (ce)
		v = ce_verdict(c, ce, pol, now, false);
	if (v == V_FRESH || v == V_MISSING) {
		/* a read: the refresher keeps it fresh, eviction spares it */
		cache_ce_touch(c, ce, pol, now);
		c->st.hits++;
	}
	pthread_mutex_unlock(&c->lock);
	return v == V_FRESH || v == V_MISSING;
}

uint64_t cache_changes(struct cache *c)
{
	return __atomic_load_n(&c->changes, __ATOMIC_ACQUIRE);
}

void cache_expire(struct cache *c, const struct provider *p,
		  const char *locator)
{
	uint64_t hash = cache_hash(p, locator);
	struct centry *ce;

	pthread_mutex_lock(&c->lock);
	for (ce = c->buckets[hash & (c->nbuckets - 1)]; ce; ce = ce->hnext)
		if (ce->p == p && ce->hash == hash &&
		    !strcmp(cache_ce_locator(ce), locator)) {
			ce->expired = true;
			ce->failed_ms = 0;	/* no failure backoff for this one */
			cache_changed(c);
		}
	pthread_mutex_unlock(&c->lock);
}

/* ---- writes and forgetting ---- */

void cache_stored(struct cache *c, struct provider *p, const char *locator,
		  const struct entry *en)
{
	struct blob *b = NULL;
	struct centry *ce;
	struct plain pl;

	pthread_mutex_lock(&c->lock);
	ce = cache_table_get(c, p, locator, NULL);
	pthread_mutex_unlock(&c->lock);
	if (!ce)
		return;
	if (cache_plain_build(c, en, &pl) == 0) {
		b = cache_blob_seal(c, ce, &pl);
		cache_plain_put(c, &pl);
	}
	pthread_mutex_lock(&c->lock);
	ce->gen++;	/* a fetch in flight may predate the write */
	if (!b) {
		/* cannot hold the new value: never serve the old one */
		if (!ce->dead)
			cache_table_unlink(c, ce);
	} else {
		cache_ce_set_blob(c, ce, b);
		ce->state = CE_VALUE;
		ce->fetched_ms = clock_now_ms();
		ce->jitter = cache_jitter();
		ce->last_code = ERR_OK;
		cache_ce_set_error(c, ce, NULL);
		if (!ce->dead)
			cache_evict(c);
	}
	pthread_mutex_unlock(&c->lock);
	cache_ce_put(ce);
}

void cache_forget(struct cache *c, const struct provider *p,
		  const char *locator)
{
	uint64_t hash = cache_hash(p, locator);
	struct centry *ce, *next;

	pthread_mutex_lock(&c->lock);
	for (ce = c->buckets[hash & (c->nbuckets - 1)]; ce; ce = next) {
		next = ce->hnext;
		if (ce->p == p && ce->hash == hash &&
		    !strcmp(cache_ce_locator(ce), locator))
			cache_table_unlink(c, ce);
	}
	pthread_mutex_unlock(&c->lock);
}

void cache_forget_provider(struct cache *c, const struct provider *p)
{
	struct centry *ce, *next;

	pthread_mutex_lock(&c->lock);
	for (size_t b = 0; b < c->nbuckets; b++)
		for (ce = c->buckets[b]; ce; ce = next) {
			next = ce->hnext;
			if (ce->p == p)
				cache_table_unlink(c, ce);
		}
	pthread_mutex_unlock(&c->lock);
}

/* ---- the refresher ---- */

/* a * b, or INT64_MAX past it: a policy is the config's, and a duration
 * times a factor must not wrap into the past, whatever the caller allowed */
static int64_t cache_mul_sat(int64_t a, int64_t b)
{
	int64_t r;

	return __builtin_mul_overflow(a, b, &r) ? (a < 0) != (b < 0) ?
		INT64_MIN : INT64_MAX : r;
}

static int64_t cache_add_sat(int64_t a, int64_t b)
{
	int64_t r;

	return __builtin_add_overflow(a, b, &r) ? b < 0 ? INT64_MIN : INT64_MAX : r;
}

static bool cache_ce_refresh_due(const struct centry *ce, int64_t now)
{
	const struct cache_policy *pol = &ce->pol;
	int64_t every;

	if (ce->dead || ce->fetching || ce->state != CE_VALUE ||
	    pol->refresh_ms <= 0 ||
	    now - ce->read_ms > cache_mul_sat(CACHE_READ_WINDOW, pol->ttl_ms))
		return false;
	every = cache_add_sat(pol->refresh_ms,
			      cache_mul_sat(pol->refresh_ms, ce->jitter) / 1000);
	return now - ce->fetched_ms >= every && now - ce->failed_ms >= every;
}

/* Revalidate one entry (c->lock held, released meanwhile); drops the
 * caller's reference. */
static void cache_refresh_one(struct cache *c, struct centry *ce)
{
	struct round r = { .gen = ce->gen };
	struct entry tmp = ENTRY_INIT;
	cache_changed_fn fn = c->changed;
	bool changed;

	if (!cache_ce_refresh_due(ce, clock_now_ms())) {
		cache_ce_put(ce);
		return;
	}
	ce->fetching = true;
	r.old = cache_blob_get(ce->blob);
	pthread_mutex_unlock(&c->lock);
	cache_round_fetch(c, ce, &tmp, &r);
	entry_free(&tmp);
	pthread_mutex_lock(&c->lock);
	changed = cache_round_complete(c, ce, &r);
	pthread_mutex_unlock(&c->lock);
	cache_blob_put(r.old);
	if (changed && fn)
		fn(c->ctx, ce->p, cache_ce_locator(ce), cache_ce_params(ce));
	cache_ce_put(ce);
	pthread_mutex_lock(&c->lock);
}

/* One pass (c->lock held, released meanwhile): collect the entries due,
 * most recently read first, then revalidate them one by one. */
static void cache_refresh_pass(struct cache *c)
{
	int64_t now = clock_now_ms();
	struct centry **due = NULL, **grown;
	size_t n = 0, cap = 0;

	for (struct centry *ce = c->lru_head; ce; ce = ce->lnext) {
		if (!cache_ce_refresh_due(ce, now))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			grown = realloc(due, cap * sizeof(*due));
			if (!grown)
				break;
			due = grown;
		}
		atomic_fetch_add(&ce->refs, 1);
		due[n++] = ce;
	}
	for (size_t i = 0; i < n; i++) {
		if (c->stop) {
			cache_ce_put(due[i]);
			continue;
		}
		cache_refresh_one(c, due[i]);
	}
	free(due);
}

static void *cache_refresher_main(void *arg)
{
	struct cache *c = arg;
	struct timespec ts;
	long ms;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		cache_refresh_pass(c);
		if (c->stop)
			break;
		ms = c->min_refresh_ms ? c->min_refresh_ms / 4 : 1000;
		if (cache_key_close_idle(c) && ms > CACHE_KEY_IDLE_MS)
			ms = CACHE_KEY_IDLE_MS;
		/* a pass an hour at least: tv_sec below cannot overflow */
		if (ms > 3600 * 1000)
			ms = 3600 * 1000;
		if (ms < 5)
			ms = 5;
		ts = clock_deadline(CLOCK_MONOTONIC, ms);
		pthread_cond_timedwait(&c->wake, &c->lock, &ts);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int cache_start_refresher(struct cache *c, cache_changed_fn changed,
			  void *ctx, struct err *e)
{
	int rc;

	pthread_mutex_lock(&c->lock);
	if (c->running) {
		pthread_mutex_unlock(&c->lock);
		return err_set(e, ERR_INVALID, "cache: refresher already running");
	}
	c->changed = changed;
	c->ctx = ctx;
	rc = pthread_create(&c->refresher, NULL, cache_refresher_main, c);
	c->running = rc == 0;
	pthread_mutex_lock(&c->key_lock);
	c->key_idler = c->running;
	pthread_mutex_unlock(&c->key_lock);
	pthread_mutex_unlock(&c->lock);
	if (rc)
		return err_set(e, ERR_NOMEM, "cache: cannot start refresher: %s",
			       strerror(rc));
	return 0;
}

/* ---- life cycle ---- */

struct cache *cache_new(const struct cache_conf *conf, struct err *e)
{
	struct cache *c;
	pthread_condattr_t ca;

	if (sodium_init() < 0) {
		err_set(e, ERR_NOMEM, "cache: libsodium failed to initialize");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto nomem;
	if (conf)
		c->conf = *conf;
	if (!c->conf.max_bytes)
		c->conf.max_bytes = SIZE_MAX;
	c->nbuckets = CACHE_BUCKETS_MIN;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	c->key = sodium_malloc(CACHE_KEYBYTES);
	if (!c->buckets || !c->key)
		goto nomem;
	randombytes_buf(c->key, CACHE_KEYBYTES);
	sodium_mprotect_noaccess(c->key);
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->key_lock, NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	for (size_t i = 0; i < CACHE_WAIT_CONDS; i++)
		pthread_cond_init(&c->fetched[i], NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->wake, &ca);
	pthread_condattr_destroy(&ca);
	return c;
nomem:
	if (c) {
		free(c->buckets);
		if (c->key)
			sodium_free(c->key);
		free(c);
	}
	err_set(e, ERR_NOMEM, "cache: out of memory");
	return NULL;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	if (c->running)
		pthread_join(c->refresher, NULL);
	while (c->lru_head)
		cache_table_unlink(c, c->lru_head);
	for (size_t i = 0; i < c->npool; i++)
		sodium_free(c->pool[i].p);
	sodium_free(c->key);	/* wipes it */
	free(c->buckets);
	for (size_t i = 0; i < CACHE_WAIT_CONDS; i++)
		pthread_cond_destroy(&c->fetched[i]);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_mutex_destroy(&c->key_lock);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void cache_get_stats(struct cache *c, struct cache_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->st;
	st->entries = c->n;
	st->bytes = c->bytes;
	pthread_mutex_unlock(&c->lock);
}

bool cache_debug_ciphertext_contains(struct cache *c, const void *needle,
				     size_t n)
{
	bool found = false;

	pthread_mutex_lock(&c->lock);
	for (struct centry *ce = c->lru_head; ce && !found; ce = ce->lnext)
		found = ce->blob &&
			memmem(ce->blob->data, ce->blob->len, needle, n);
	pthread_mutex_unlock(&c->lock);
	return found;
}
