/* scratch.h - editors' temporary files inside an app folder.
 *
 * vim, nano and sed -i write swap, backup and temporary files next to the
 * file they edit and rename one over it to save. Such files live only here:
 * in memory, owned by their creator, mode at most 0600, bounded in number
 * and size, gone at unmount. Renaming one over .env or a key file commits
 * its contents through fs/app.c.
 *
 * Which names are scratch: names no key can have that editors use - dot
 * files (.env.swp, .DB.swp), backups ending in '~', all-digit names (vim's
 * 4913 probe), #autosave#, and the temporary names of sed -i (sedXXXXXX)
 * and Python's tempfile (tmpXXXXXXXX).
 */
#ifndef SECRETFS_SCRATCH_H
#define SECRETFS_SCRATCH_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "../base/secmem.h"
#include "../base/err.h"
#include "../base/kvmap.h"

#define SCRATCH_MAX_FILES 64	/* per app */

/* What a name in an app folder is: every name falls in one kind, and the
 * kind decides what creating, removing or renaming to it does. */
enum scratch_name_kind {
	SCRATCH_NAME_ENV,	/* .env */
	SCRATCH_NAME_KEYS,	/* .env.keys, and the encrypted views
				 * .env[.ENV].encrypted: made by secretfs,
				 * read-only, never scratch files */
	SCRATCH_NAME_KEY,	/* a valid key name */
	SCRATCH_NAME_TEMP,	/* an editor's temporary file: a scratch file */
	SCRATCH_NAME_INVALID,	/* neither: creating it is refused */
	SCRATCH_NAME_TOOLONG,	/* over NAME_MAX (255) bytes: FUSE passes
				 * names of up to 1024, but no file could
				 * be listed or opened under it */
};

enum scratch_name_kind scratch_name_kind(const char *name);

struct scratch {
	char *name;
	uid_t uid;
	gid_t gid;
	unsigned mode;
	time_t mtime;
	struct secbuf data;
	struct kvmap base;	/* .env values when it was made: the base of a
				 * rename over .env */
	int refs;		/* open handles + 1 while linked */
	bool new_key;		/* a key created by name, until its first commit */
};

/* The scratch files of one app; every call below but scratch_dir_init
 * expects the caller to hold lock. */
struct scratch_dir {
	pthread_mutex_t lock;
	struct scratch **v;
	size_t n;
};

void scratch_dir_init(struct scratch_dir *d);
void scratch_dir_destroy(struct scratch_dir *d);

struct scratch *scratch_find(struct scratch_dir *d, const char *name);
/* A new empty scratch file; base is copied (may be NULL). */
int scratch_create(struct scratch_dir *d, const char *name, uid_t uid,
		   gid_t gid, unsigned mode, const struct kvmap *base,
		   struct scratch **out, struct err *e);
/* Take it out of the folder; it lives on while handles hold it. */
void scratch_unlink(struct scratch_dir *d, struct scratch *s);
/* Give it a new name, replacing a scratch file of that name. */
int scratch_rename(struct scratch_dir *d, struct scratch *s,
		   const char *name, struct err *e);
void scratch_hold(struct scratch *s);
/* Drop a hold; frees (wiped) when the last goes. */
void scratch_release(struct scratch *s);

#endif
