/* node.c - see node.h */
#include "node.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../base/hash.h"

#define NODE_BATCH 256	/* inodes node_each hands out per lock taken */

int node_init(struct node_table *t, size_t napps, time_t mounted,
	      struct err *e)
{
	memset(t, 0, sizeof(*t));
	t->napps = napps;
	t->mounted = mounted;
	if (napps > NODE_APPS_MAX)
		return err_set(e, ERR_INVALID, "more than %zu apps", NODE_APPS_MAX);
	t->heads = calloc(napps ? napps : 1, sizeof(*t->heads));
	if (!t->heads)
		return err_oom(e);
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

int node_grow(struct node_table *t, size_t napps, struct err *e)
{
	struct node **heads;

	if (napps > NODE_APPS_MAX)
		return err_set(e, ERR_INVALID,
			       "more than %zu apps over the life of the mount: remount",
			       NODE_APPS_MAX);
	pthread_mutex_lock(&t->lock);
	if (napps > t->napps) {
		heads = realloc(t->heads, napps * sizeof(*heads));
		if (!heads) {
			pthread_mutex_unlock(&t->lock);
			return err_oom(e);
		}
		memset(heads + t->napps, 0, (napps - t->napps) * sizeof(*heads));
		t->heads = heads;
		t->napps = napps;
	}
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void node_destroy(struct node_table *t)
{
	if (!t->heads)
		return;	/* node_init failed */
	for (size_t i = 0; i < t->nnodes; i++) {
		if (*t->nodes[i]->name)
			free((char *)t->nodes[i]->name);
		snap_put(t->nodes[i]->snap);
		free(t->nodes[i]);
	}
	for (size_t i = 0; i < t->nretired; i++)
		free((char *)t->retired[i]);
	free(t->retired);
	free(t->buckets);
	free(t->nodes);
	free(t->heads);
	pthread_mutex_destroy(&t->lock);
}

/* ---- numbers ---- */

/* Fixed, not after the apps of the day: a reload that adds apps must not
 * renumber any file. */
static uint64_t node_first_file_ino(const struct node_table *t)
{
	(void)t;
	return NODE_ROOT_INO + 1 + NODE_APPS_MAX;
}

uint64_t node_app_ino(size_t app)
{
	return NODE_ROOT_INO + 1 + (uint64_t)app;
}

bool node_app_dir(const struct node_table *t, uint64_t ino, size_t *app)
{
	/* napps grows only in a reload, while no request runs (ops.c) */
	if (ino <= NODE_ROOT_INO || ino >= node_first_file_ino(t) ||
	    ino - NODE_ROOT_INO - 1 >= t->napps)
		return false;
	*app = (size_t)(ino - NODE_ROOT_INO - 1);
	return true;
}

struct node *node_find(struct node_table *t, uint64_t ino)
{
	struct node *n = NULL;

	pthread_mutex_lock(&t->lock);
	if (ino >= node_first_file_ino(t) &&
	    ino - node_first_file_ino(t) < t->nnodes)
		n = t->nodes[ino - node_first_file_ino(t)];
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* ---- names ---- */

static uint64_t node_name_hash(size_t app, const char *name)
{
	uint64_t h = hash_fnv1a(HASH_FNV1A_INIT ^ ((uint64_t)app * 0x9e3779b97f4a7c15ULL), name);

	/* mixed, so the low bits (the bucket) depend on every byte */
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	return h ^ (h >> 32);
}

static struct node **node_bucket(const struct node_table *t, size_t app,
				 const char *name)
{
	return &t->buckets[node_name_hash(app, name) & (t->nbuckets - 1)];
}

/* The node named (app, name); NULL when there is none. Caller holds
 * t->lock. */
static struct node *node_lookup(const struct node_table *t, size_t app,
				const char *name)
{
	struct node *n;

	if (!t->nbuckets)
		return NULL;
	for (n = *node_bucket(t, app, name); n; n = n->hnext)
		if (n->app == app && !strcmp(n->name, name))
			return n;
	return NULL;
}

static void node_hash_insert(struct node_table *t, struct node *n)
{
	struct node **b = node_bucket(t, n->app, n->name);

	n->hnext = *b;
	*b = n;
}

static void node_hash_remove(struct node_table *t, struct node *n)
{
	struct node **pp = node_bucket(t, n->app, n->name);

	while (*pp && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = n->hnext;
	n->hnext = NULL;
}

/* Room in the hash for one more node: twice the buckets when they are
 * as many as the nodes. Caller holds t->lock. false when out of memory. */
static bool node_hash_reserve(struct node_table *t)
{
	size_t nb = t->nbuckets ? t->nbuckets * 2 : 64;
	struct node **b;

	if (t->nnodes < t->nbuckets)
		return true;
	b = calloc(nb, sizeof(*b));
	if (!b)
		return false;
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
	for (size_t i = 0; i < t->nnodes; i++)
		if (*t->nodes[i]->name)	/* a detached node is no name's */
			node_hash_insert(t, t->nodes[i]);
	return true;
}

/* Keep a node's old name until unmount: a reader may still hold it.
 * Caller holds t->lock. false when out of memory. */
static bool node_name_retire(struct node_table *t, const char *name)
{
	const char **v;

	if (!*name)
		return true;	/* a detached node's "" */
	v = realloc(t->retired, (t->nretired + 1) * sizeof(*v));
	if (!v)
		return false;
	t->retired = v;
	v[t->nretired++] = name;
	return true;
}

void node_rename(struct node_table *t, size_t app, const char *from,
		 const char *to)
{
	struct node **pp, *src = NULL;
	const char *name;

	pthread_mutex_lock(&t->lock);
	for (pp = &t->heads[app]; *pp;) {
		struct node *n = *pp;

		if (!strcmp(n->name, to) && node_name_retire(t, n->name)) {
			*pp = n->next;	/* detached: no name finds it again */
			node_hash_remove(t, n);
			n->name = "";
			continue;
		}
		if (!strcmp(n->name, from))
			src = n;
		pp = &n->next;
	}
	name = src ? strdup(to) : NULL;
	if (name && node_name_retire(t, src->name)) {
		node_hash_remove(t, src);
		src->name = name;
		node_hash_insert(t, src);
		/* what the kernel saw was another file: its size too, until
		 * the adapter invalidates it */
		src->seen = false;
		src->changes++;
	} else {
		free((char *)name);
	}
	pthread_mutex_unlock(&t->lock);
}

/* Room for one more node. Caller holds t->lock. */
static bool node_reserve(struct node_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct node **nodes;

	if (t->nnodes < t->cap)
		return true;
	nodes = realloc(t->nodes, cap * sizeof(*nodes));
	if (!nodes)
		return false;
	t->nodes = nodes;
	t->cap = cap;
	return true;
}

/* A new node of (app, name), numbered next. Caller holds t->lock. */
static struct node *node_new(struct node_table *t, size_t app,
			     const char *name)
{
	struct node *n;

	if (!node_reserve(t) || !node_hash_reserve(t) ||
	    !(n = calloc(1, sizeof(*n))))
		return NULL;
	n->name = strdup(name);
	if (!n->name) {
		free(n);
		return NULL;
	}
	n->app = app;
	n->ino = node_first_file_ino(t) + t->nnodes;
	n->next = t->heads[app];
	t->heads[app] = n;
	t->nodes[t->nnodes++] = n;
	node_hash_insert(t, n);
	return n;
}

struct node *node_get(struct node_table *t, size_t app, const char *name,
		      struct err *e)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = node_lookup(t, app, name);
	if (!n)
		n = node_new(t, app, name);
	pthread_mutex_unlock(&t->lock);
	if (!n)
		err_oom(e);
	return n;
}

/* ---- what the kernel saw ---- */

/* node_observe with the hash of data. Caller holds t->lock. */
static bool node_observe_hash(struct node_table *t, struct node *n,
			      const unsigned char h[16])
{
	bool changed = n->seen && memcmp(h, n->hash, sizeof(n->hash));

	if (!n->seen || changed) {
		memcpy(n->hash, h, sizeof(n->hash));
		n->mtime = n->seen ? time(NULL) : t->mounted;
		n->seen = true;
	}
	if (changed)
		n->changes++;
	return changed;
}

bool node_observe_hashed(struct node_table *t, struct node *n,
			 const unsigned char h[SNAP_HASH_LEN])
{
	bool changed;

	pthread_mutex_lock(&t->lock);
	changed = node_observe_hash(t, n, h);
	pthread_mutex_unlock(&t->lock);
	return changed;
}

bool node_observe(struct node_table *t, struct node *n,
		  const struct secbuf *data)
{
	unsigned char h[SNAP_HASH_LEN];
	bool changed;

	snap_hash(data, h);
	changed = node_observe_hashed(t, n, h);
	sodium_memzero(h, sizeof(h));
	return changed;
}

struct snap *node_snap(struct node_table *t, struct node *n, const void *conf,
		       uint64_t changes)
{
	struct snap *s;

	pthread_mutex_lock(&t->lock);
	s = n->snap;
	if (s && s->conf == conf && s->changes == changes)
		snap_hold(s);
	else
		s = NULL;
	pthread_mutex_unlock(&t->lock);
	return s;
}

bool node_snap_wanted(struct node_table *t, struct node *n, const void *conf,
		      uint64_t changes)
{
	bool again;

	pthread_mutex_lock(&t->lock);
	again = n->read_conf == conf && n->read_changes == changes;
	n->read_conf = conf;
	n->read_changes = changes;
	pthread_mutex_unlock(&t->lock);
	return again;
}

void node_snap_keep(struct node_table *t, struct node *n, struct snap *s)
{
	struct snap *old;

	snap_hold(s);
	pthread_mutex_lock(&t->lock);
	old = n->snap;
	n->snap = s;
	pthread_mutex_unlock(&t->lock);
	snap_put(old);
}

/* ---- the page cache ---- */

enum node_pages node_pages_open(struct node_table *t, struct node *n,
				const struct secbuf *data, bool *changed)
{
	unsigned char h[SNAP_HASH_LEN];
	enum node_pages how;

	snap_hash(data, h);
	how = node_pages_open_hashed(t, n, h, changed);
	sodium_memzero(h, sizeof(h));
	return how;
}

enum node_pages node_pages_open_hashed(struct node_table *t, struct node *n,
				       const unsigned char h[SNAP_HASH_LEN],
				       bool *changed)
{
	bool same;
	enum node_pages how;

	pthread_mutex_lock(&t->lock);
	*changed = node_observe_hash(t, n, h);
	same = n->pages_known && !memcmp(h, n->pages_hash, SNAP_HASH_LEN);
	if ((n->paged && !same) || n->told != n->changes) {
		/* another version's readers, or a size from before */
		how = NODE_PAGES_AROUND;
	} else {
		/* nothing else reads through the cache, or only this version:
		 * a cache of anything else (or of what no one knows) goes, and
		 * while the kernel may not have dropped it yet, it goes again */
		how = same && !n->dropping ? NODE_PAGES_KEEP : NODE_PAGES_DROP;
		if (how == NODE_PAGES_DROP)
			n->dropping++;
		memcpy(n->pages_hash, h, SNAP_HASH_LEN);
		n->pages_known = true;
		n->paged++;
	}
	pthread_mutex_unlock(&t->lock);
	return how;
}

void node_pages_dropped(struct node_table *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	if (n->dropping)
		n->dropping--;
	pthread_mutex_unlock(&t->lock);
}

void node_pages_close(struct node_table *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	if (n->paged)
		n->paged--;
	pthread_mutex_unlock(&t->lock);
}

uint64_t node_inval_begin(struct node_table *t, uint64_t ino)
{
	struct node *n = node_find(t, ino);
	uint64_t changes = 0;

	if (!n)
		return 0;
	pthread_mutex_lock(&t->lock);
	changes = n->changes;
	pthread_mutex_unlock(&t->lock);
	return changes;
}

void node_inval_done(struct node_table *t, uint64_t ino, uint64_t changes)
{
	struct node *n = node_find(t, ino);

	if (!n)
		return;
	pthread_mutex_lock(&t->lock);
	if (changes > n->told)
		n->told = changes;
	pthread_mutex_unlock(&t->lock);
}

bool node_pages_mixed(struct node_table *t, const struct node *n)
{
	bool mixed;

	pthread_mutex_lock(&t->lock);
	mixed = n->paged && n->seen &&
		memcmp(n->hash, n->pages_hash, sizeof(n->hash));
	pthread_mutex_unlock(&t->lock);
	return mixed;
}

time_t node_mtime(struct node_table *t, const struct node *n)
{
	time_t mtime;

	pthread_mutex_lock(&t->lock);
	mtime = n->seen ? n->mtime : t->mounted;
	pthread_mutex_unlock(&t->lock);
	return mtime;
}

static void node_call(node_each_fn *fn, void *ctx, const uint64_t *inos,
		      size_t k)
{
	for (size_t i = 0; i < k; i++)
		fn(ctx, inos[i]);
}

void node_each(struct node_table *t, size_t app, node_each_fn *fn, void *ctx)
{
	uint64_t inos[NODE_BATCH];
	struct node *n;
	size_t k = 0;

	pthread_mutex_lock(&t->lock);
	for (n = t->heads[app]; n; n = n->next) {
		if (k == NODE_BATCH) {
			/* nodes are never freed: n stays valid unlocked */
			pthread_mutex_unlock(&t->lock);
			node_call(fn, ctx, inos, k);
			k = 0;
			pthread_mutex_lock(&t->lock);
		}
		inos[k++] = n->ino;
	}
	pthread_mutex_unlock(&t->lock);
	node_call(fn, ctx, inos, k);
}

void node_each_file(struct node_table *t, node_each_fn *fn, void *ctx)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->nnodes;
	pthread_mutex_unlock(&t->lock);
	/* numbered densely from the first, and never freed */
	for (size_t i = 0; i < n; i++)
		fn(ctx, node_first_file_ino(t) + i);
}
