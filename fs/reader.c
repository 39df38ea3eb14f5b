/* reader.c - read-only opens and the page cache (reader.h). */
#include "reader.h"

#include <fcntl.h>
#include <string.h>

/* The hash of what read-only open h serves. What a read made of .env is
 * kept sealed too, for the opens that follow while nothing it was made of
 * changes (stamped with changes, app_changes before that read) - once it
 * is read again: reading 10,000 .env files once must not keep 10,000. */
static void reader_hash(struct node_table *t, struct node *n,
			const struct app_conf *a, struct edit_handle *h,
			uint64_t changes, unsigned char hash[SNAP_HASH_LEN])
{
	struct err e = { 0 };
	struct snap *s = NULL;

	if (h->snap) {
		memcpy(hash, h->snap->hash, SNAP_HASH_LEN);
		return;
	}
	if (!strcmp(n->name, APP_ENV_NAME) &&
	    node_snap_wanted(t, n, a, changes))
		s = snap_seal(&h->data, h->based ? &h->base : NULL, a, changes,
			      &e);
	if (!s) {
		snap_hash(&h->data, hash);
		return;
	}
	memcpy(hash, s->hash, SNAP_HASH_LEN);
	node_snap_keep(t, n, s);
	edit_handle_seal(h, s);	/* no plaintext held while it is open */
	snap_put(s);
}

/* A change it finds is invalidated: attributes, and pages no open file
 * reads any more. */
void reader_open(struct node_table *t, struct node *n, const struct app_conf *a,
		 struct edit_handle *h, uint64_t changes, bool kernel_cache,
		 struct reader_open *out)
{
	unsigned char hash[SNAP_HASH_LEN];
	enum node_pages how;

	memset(out, 0, sizeof(*out));
	reader_hash(t, n, a, h, changes, hash);
	if (!kernel_cache) {
		out->inval = node_observe_hashed(t, n, hash);
		return;
	}
	how = node_pages_open_hashed(t, n, hash, &out->inval);
	if (how == NODE_PAGES_AROUND)
		return;
	h->paged = true;
	__atomic_store_n(&h->dropping, how == NODE_PAGES_DROP, __ATOMIC_RELEASE);
	out->cached = true;
	out->keep = how == NODE_PAGES_KEEP;
}

struct edit_handle *reader_open_kept(struct node_table *t, struct edit *ed,
				     struct appfs *fs, struct node *n,
				     const struct app_conf *a,
				     const struct edit_who *who, int flags)
{
	struct edit_handle *h = NULL;
	struct err e = { 0 };
	struct snap *s;

	if ((flags & O_ACCMODE) != O_RDONLY)
		return NULL;
	s = node_snap(t, n, a, app_changes(fs));
	if (s && app_fresh(fs, a, n->name))
		(void)edit_open_snap(ed, n->app, n->name, who, s, &h, &e);
	snap_put(s);
	return h;
}

void reader_dropped(struct node_table *t, uint64_t ino, struct edit_handle *h)
{
	struct node *n;

	if (!__atomic_exchange_n(&h->dropping, false, __ATOMIC_ACQ_REL))
		return;
	n = node_find(t, ino);
	if (n)
		node_pages_dropped(t, n);
}

int reader_release(struct node_table *t, struct edit *ed, uint64_t ino,
		   struct edit_handle *h, struct err *e)
{
	bool paged = h->paged;
	/* nodes outlive their apps: a reload may have removed this one */
	struct node *n = node_find(t, ino);
	int rc;

	reader_dropped(t, ino, h);
	rc = edit_release(ed, h, e);
	if (paged && n)
		node_pages_close(t, n);
	return rc;
}
