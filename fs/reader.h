/* reader.h - read-only opens of app files: which snapshot an open serves
 * and how it may use the kernel's page cache (fs/node.h keeps the books).
 * FUSE-free: the adapter applies what these decide.
 */
#ifndef SECRETFS_READER_H
#define SECRETFS_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/err.h"
#include "app.h"
#include "edit.h"
#include "node.h"

/* What the kernel is told of a read-only open. */
struct reader_open {
	bool inval;		/* the file changed: invalidate the inode */
	bool cached;		/* through the page cache (else direct_io) */
	bool keep;		/* keep its pages (else the kernel drops them) */
};

/* A read-only open of n (app a) that serves the snapshot a read made
 * before, while nothing it was made of changed: no value is fetched,
 * opened, rendered or hashed. NULL when the open must read. */
struct edit_handle *reader_open_kept(struct node_table *t, struct edit *ed,
				     struct appfs *fs, struct node *n,
				     const struct app_conf *a,
				     const struct edit_who *who, int flags);

/* How read-only open h of n (app a) reads: through the page cache when
 * the opens reading through it read the same version, around it
 * otherwise. changes is app_changes from before h's read. */
void reader_open(struct node_table *t, struct node *n, const struct app_conf *a,
		 struct edit_handle *h, uint64_t changes, bool kernel_cache,
		 struct reader_open *out);

/* A request of open file h on ino: its open has returned, so the pages it
 * was to drop are gone. Once per open file; requests of one may run at
 * once. */
void reader_dropped(struct node_table *t, uint64_t ino, struct edit_handle *h);

/* The last of open file h on ino: commit what is left, free it, and count
 * it out of the page cache's readers. */
int reader_release(struct node_table *t, struct edit *ed, uint64_t ino,
		   struct edit_handle *h, struct err *e);

#endif
