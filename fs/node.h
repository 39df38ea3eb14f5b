/* node.h - the inode numbers of a mount, below the FUSE adapter.
 *
 * NODE_ROOT_INO is the root, the next NODE_APPS_MAX numbers the app
 * folders (one per app slot: an app name keeps its slot, and so its
 * folder's inode, across reloads that add or remove other apps), then one
 * number per (slot, file name) ever looked up, kept for the life of the
 * mount so a name always has the same inode - a reload changes none.
 * Renames are followed, so the inode the kernel holds for a name stays
 * the one served for that name.
 *
 * A (slot, name) finds its node in a hash table: `ls -l` of an app of
 * 50,000 keys looks up each of them, and must not walk them all each time.
 *
 * Each file node also keeps what the kernel was last shown of it (a hash
 * of the bytes) and the mtime it shows: the kernel keeps pages and
 * attributes, so a change must be seen to be invalidated, and content
 * that did not change must keep its mtime (tools compare mtimes).
 *
 * And which version the kernel's page cache of it may hold: every open
 * that reads through that cache fills it from its own snapshot, so opens
 * of two versions must never share it. The first open of a version other
 * than the cached one's waits its turn outside the cache (direct I/O)
 * while opens of the older one are still open; once they are all closed,
 * the next open drops what the cache holds and takes it over. The kernel
 * drops it when it finishes that open, which the daemon learns only from
 * the open file's first request (a read, or its release): until then,
 * every other open drops it again rather than read what may still be
 * there. And a reader through the cache reads as far as the size the
 * kernel keeps: until the kernel has been told of the last change (the
 * adapter's invalidation), opens read around the cache too.
 */
#ifndef SECRETFS_NODE_H
#define SECRETFS_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../base/err.h"
#include "../base/secmem.h"
#include "snap.h"

#define NODE_ROOT_INO 1
/* app slots a mount can ever have (reloads included) */
#define NODE_APPS_MAX ((size_t)1 << 16)

/* A file's inode. The adapter reads ino, app and name; the rest is
 * node.c's, under the table's lock. */
struct node {
	uint64_t ino;
	size_t app;
	/* replaced, never changed in place, by a rename: readers may hold it */
	const char *name;
	struct node *next;	/* in the same app */
	struct node *hnext;	/* in the same hash bucket */
	bool seen;		/* hash and mtime hold what the kernel saw */
	unsigned char hash[16];
	time_t mtime;
	uint64_t changes;	/* changes observed */
	uint64_t told;		/* of them, invalidated in the kernel */
	/* the kernel's page cache of this inode: filled only by the open
	 * files counted in paged, all of the version pages_hash names
	 * (pages_known: the cache may hold pages of that version alone) */
	unsigned paged;
	unsigned dropping;	/* of them, opens that may not have dropped it yet */
	bool pages_known;
	unsigned char pages_hash[16];
	/* the bytes served last, sealed, for opens while nothing changed;
	 * and the stamp of the last read, so that only a file read twice
	 * between changes is kept */
	struct snap *snap;
	const void *read_conf;
	uint64_t read_changes;
};

/* Every inode of one mount. */
struct node_table {
	size_t napps;
	time_t mounted;		/* the mtime of what nothing changed yet */
	pthread_mutex_t lock;	/* guards everything below and the nodes */
	struct node **nodes;	/* file nodes, by inode - first file inode */
	struct node **heads;	/* file nodes of each app, a list */
	struct node **buckets;	/* nodes that have a name, by (app, name) */
	size_t nbuckets;	/* a power of two, or 0 */
	const char **retired;	/* names nodes had before a rename */
	size_t nretired;
	size_t nnodes;
	size_t cap;
};

int node_init(struct node_table *t, size_t napps, time_t mounted,
	      struct err *e);
/* Room for app slots up to napps (a reload added apps); never shrinks. */
int node_grow(struct node_table *t, size_t napps, struct err *e);
void node_destroy(struct node_table *t);

/* The inode of app's folder. */
uint64_t node_app_ino(size_t app);
/* Is ino an app slot's folder? Its slot into *app when it is (the slot's
 * app may since have been removed by a reload). */
bool node_app_dir(const struct node_table *t, uint64_t ino, size_t *app);

/* The file node of ino; NULL when ino is no file's. */
struct node *node_find(struct node_table *t, uint64_t ino);
/* The node of (app, name), made on first use. */
struct node *node_get(struct node_table *t, size_t app, const char *name,
		      struct err *e);
/* After rename(from, to) in app: from's inode is to's now, and to's old
 * inode is no name's. */
void node_rename(struct node_table *t, size_t app, const char *from,
		 const char *to);

/* Compare data, what n serves now, with what the kernel was last shown;
 * true when it changed, and the kernel's copy must go. A change gives n
 * a new mtime; the first sight of n is no change (the kernel has
 * nothing yet) and shows the mount's time. */
bool node_observe(struct node_table *t, struct node *n,
		  const struct secbuf *data);

/* node_observe with data's hash (snap_hash), when data is not at hand. */
bool node_observe_hashed(struct node_table *t, struct node *n,
			 const unsigned char h[SNAP_HASH_LEN]);

/* The snapshot n keeps, held for the caller (snap_put), if it was made
 * from conf at changes; NULL if not. */
struct snap *node_snap(struct node_table *t, struct node *n, const void *conf,
		       uint64_t changes);
/* A read of n made from conf at changes: should what it made be kept?
 * Yes when the read before it had the same stamp (the file is read again
 * between changes); a file read once per change keeps nothing. */
bool node_snap_wanted(struct node_table *t, struct node *n, const void *conf,
		      uint64_t changes);
/* Keep s (a reference of its own) as n's snapshot, replacing the last. */
void node_snap_keep(struct node_table *t, struct node *n, struct snap *s);

/* How an open of a file reads, for the page cache (see the top). */
enum node_pages {
	NODE_PAGES_AROUND,	/* direct I/O: the cache holds another version */
	NODE_PAGES_KEEP,	/* through the cache, which holds this version */
	NODE_PAGES_DROP,	/* through the cache, once the kernel dropped it */
};

/* A read-only open of n that serves data, on a mount with the kernel's
 * page cache: node_observe's answer into *changed, and how the open reads.
 * Each KEEP or DROP is to be matched by one node_pages_close, at its
 * release, and each DROP by one node_pages_dropped, at the first request
 * the open file makes (its release at the latest). */
enum node_pages node_pages_open(struct node_table *t, struct node *n,
				const struct secbuf *data, bool *changed);
/* The same with data's hash (snap_hash). */
enum node_pages node_pages_open_hashed(struct node_table *t, struct node *n,
				       const unsigned char h[SNAP_HASH_LEN],
				       bool *changed);
void node_pages_dropped(struct node_table *t, struct node *n);
void node_pages_close(struct node_table *t, struct node *n);
/* Are opens still reading through the page cache a version other than
 * the one last observed? The inode's size the kernel keeps is then
 * theirs or the new one's, by turns, so it must not be kept for long. */
bool node_pages_mixed(struct node_table *t, const struct node *n);

/* The kernel is about to be told to drop what it holds of inode ino
 * (attributes and pages): node_inval_done(t, ino, the answer) once it has
 * been. 0 for an inode that is no file's. */
uint64_t node_inval_begin(struct node_table *t, uint64_t ino);
void node_inval_done(struct node_table *t, uint64_t ino, uint64_t changes);

/* The mtime n shows. */
time_t node_mtime(struct node_table *t, const struct node *n);

typedef void node_each_fn(void *ctx, uint64_t ino);
/* fn for the inode of every file of app. Called without the table's lock
 * held, so fn may take locks of its own. */
void node_each(struct node_table *t, size_t app, node_each_fn *fn, void *ctx);
/* fn for every file inode handed out so far, of any app, renamed over or
 * not (when what the kernel holds cannot be known any better). Unlocked,
 * as node_each. */
void node_each_file(struct node_table *t, node_each_fn *fn, void *ctx);

#endif
