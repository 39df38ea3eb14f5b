/* edit.h - editor sessions on an app folder, below the FUSE adapter.
 *
 * The rules fs/ops.c applies to opens, writes, closes and names, kept free
 * of FUSE so that unit tests drive them:
 *  - merge bases: the base of a .env edit is what the editing process last
 *    read, not what the file held when it saved - vim and nano re-open the
 *    file, or write a temporary one and rename it, long after they read.
 *    So each process's last read of an app's .env is kept, and its later
 *    writes merge against it: someone else's change meanwhile survives, or
 *    is a conflict;
 *  - commits: an open file is a snapshot, and what a writer wrote goes to
 *    the store at flush (close) or fsync, so close() reports whether the
 *    store took it; a bare O_TRUNC only at release (`> file` flushes a
 *    dup()ed descriptor before it writes); a key created by name at its
 *    first close, even with nothing written (`touch NEW`);
 *  - names: editors' temporary files are scratch files (fs/scratch.h);
 *    renaming one over .env or a key commits it (vim, sed -i), renaming .env
 *    or a key to a scratch name leaves a copy (vim's backup), a key renamed
 *    over .env becomes the new .env, and other renames are refused.
 * Every change that reaches the store is reported to the changed hook (the
 * adapter invalidates the kernel's cache there).
 */
#ifndef SECRETFS_EDIT_H
#define SECRETFS_EDIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "../base/err.h"
#include "../base/kvmap.h"
#include "../base/secmem.h"
#include "../base/strv.h"
#include "app.h"
#include "scratch.h"
#include "snap.h"

/* Who asks: the process whose reads are its merge base, and the owner
 * of the scratch files it makes. */
struct edit_who {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

/* An open file: the snapshot it reads and what a writer wrote; or, for a
 * scratch file, the scratch file itself. The adapter reads sc (a scratch
 * file or not) and, right after edit_open, data, and keeps paged and
 * dropping; the rest is edit.c's. */
struct edit_handle {
	size_t app;
	char *name;	/* opened by: a rename does not move it */
	pthread_mutex_t lock;
	pthread_mutex_t *lk;	/* &lock, or the app's scratch lock */
	pthread_mutex_t commit_lock;	/* one commit of this handle at a time */
	struct secbuf data;
	struct secbuf *buf;	/* &data, or the scratch file's */
	/* a read-only open of a kept snapshot (edit_open_snap): data stays
	 * empty, and a read opens the snapshot instead (the adapter's) */
	struct snap *snap;
	struct scratch *sc;
	pid_t pid;		/* of the opener */
	struct edit_handle *prev, *next;	/* open handles, under edit->lock */
	struct kvmap base;	/* .env: the values the snapshot showed */
	bool based;	/* base was taken (the adapter's to read) */
	bool dirty;	/* written to: flush commits */
	bool truncated;	/* opened with O_TRUNC and not written: release commits */
	bool append;
	bool read_only;	/* opened O_RDONLY: nothing to commit, ever */
	/* the adapter's: reads through the kernel's page cache, and was told
	 * to drop it, which no request of it has shown done yet (atomic) */
	bool paged;
	bool dropping;
	enum err_code failed;	/* of a failed write: the commit fails with it */
};

struct edit_reader;

/* Told after a change reached the store: every file of app may differ. */
typedef void edit_changed_fn(void *ctx, size_t app);

/* The editing state of one mount. Apps are named by slot here and in
 * every call below: an app name's slot is its for the life of the mount
 * (fs/node.h numbers folders by it), whatever reloads add or remove. */
struct edit {
	struct appfs *appfs;
	const struct config *cfg;	/* the configuration served now */
	char **slot_names;	/* by slot, every app ever configured */
	size_t nslots;
	const struct app_conf **by_slot;	/* NULL: removed by a reload */
	size_t *slot_of;	/* by index in cfg->apps */
	struct scratch_dir **scratch;	/* editors' temporary files, by slot */
	pthread_mutex_t lock;	/* readers and handles */
	struct edit_reader *readers;	/* each process's last read of a .env */
	struct edit_handle *handles;	/* open files */
	edit_changed_fn *changed;
	void *ctx;
};

int edit_init(struct edit *ed, struct appfs *appfs, const struct config *cfg,
	      edit_changed_fn *changed, void *ctx);
/* Serve cfg from now on (a reload): apps new to the mount get slots.
 * The caller keeps every other call out meanwhile, and cfg alive for as
 * long as the edit. */
int edit_set_config(struct edit *ed, const struct config *cfg, struct err *e);
/* The config of slot's app; NULL when it is no longer configured. Calls
 * below take slots whose app is configured, but for open handles, which
 * a reload may have left without one (their commit then fails). */
const struct app_conf *edit_app(const struct edit *ed, size_t slot);
/* The slot app name has had, if any. */
bool edit_slot_find(const struct edit *ed, const char *name, size_t *slot);
/* The slot of a, one of cfg's apps. */
size_t edit_app_slot(const struct edit *ed, const struct app_conf *a);
/* Frees the handles still open too: at unmount the kernel sends no release. */
void edit_destroy(struct edit *ed);

/* Open file name of app with open(2) flags: its scratch file, or a
 * snapshot of the app's file. O_TRUNC empties it (committed at release). */
int edit_open(struct edit *ed, size_t app, const char *name,
	      const struct edit_who *who, int flags, struct edit_handle **out,
	      struct err *e);
/* A read-only open of app file name that serves snapshot s (a reference
 * of its own): no value is read; for .env, s->base (if any) is what the
 * opener read. *out stays NULL when the open must read (edit_open)
 * instead: name is a scratch file's, or it is .env, s has no base and
 * the opener's is not known yet. */
int edit_open_snap(struct edit *ed, size_t app, const char *name,
		   const struct edit_who *who, struct snap *s,
		   struct edit_handle **out, struct err *e);
/* Read-only open h of an app file reads s, what it read sealed, from now
 * on, and its plaintext goes. Right after edit_open, before any request
 * of h. */
void edit_handle_seal(struct edit_handle *h, struct snap *s);
/* May name be created in app? ERR_INVALID, ERR_EXISTS or ERR_READONLY
 * when not; asks nothing of the store. */
int edit_may_create(struct edit *ed, size_t app, const char *name,
		    struct err *e);
/* Create and open name: a scratch file, or a new key that is one until its
 * first close commits it. */
int edit_create(struct edit *ed, size_t app, const char *name,
		const struct edit_who *who, unsigned mode,
		struct edit_handle **out, struct err *e);

/* The bytes a read through h sees, locked until edit_unlock (not for a
 * snapshot's open: h->snap). */
const struct secbuf *edit_lock(struct edit_handle *h);
void edit_unlock(struct edit_handle *h);
int edit_write(struct edit_handle *h, const char *buf, size_t size, off_t off,
	       struct err *e);
/* ftruncate(h, len); committed like a write. */
int edit_truncate(struct edit_handle *h, size_t len, struct err *e);
/* truncate(name, len) without an open file: committed at once. */
int edit_truncate_name(struct edit *ed, size_t app, const char *name,
		       size_t len, struct err *e);
/* close() or fsync(): commit what was written. */
int edit_flush(struct edit *ed, struct edit_handle *h, struct err *e);
/* The last close: commit what a flush did not, and free h. */
int edit_release(struct edit *ed, struct edit_handle *h, struct err *e);

/* May name be removed from app? ERR_PERM for .env and .env.keys. */
int edit_may_unlink(struct edit *ed, size_t app, const char *name,
		    struct err *e);
/* rm name: a scratch file, or a key from the store. */
int edit_unlink(struct edit *ed, size_t app, const char *name, struct err *e);
/* rename(from, to) in app; noreplace: RENAME_NOREPLACE. ERR_NOTSUP: not a
 * rename this folder makes (mv then copies and removes). ERR_PERM: from is
 * a scratch file of another user (only its owner or root may rename it). */
int edit_rename(struct edit *ed, size_t app, const char *from, const char *to,
		bool noreplace, const struct edit_who *who, struct err *e);

/* Is name served by a scratch file: there is one, or only one could be? */
bool edit_is_scratch_name(struct edit *ed, size_t app, const char *name);
/* The attributes of scratch file name (but st_ino; st may be NULL);
 * false if there is none. */
bool edit_scratch_stat(struct edit *ed, size_t app, const char *name,
		       struct stat *st);
/* An open file's attributes, as a scratch file's (true), or only its size
 * in *size (false: the app file's other attributes apply). */
bool edit_handle_stat(struct edit_handle *h, struct stat *st, size_t *size);
/* h is a read-only open of an app file (no scratch file): its release
 * commits nothing and touches no value but the snapshot on the heap. */
bool edit_handle_reads_only(const struct edit_handle *h);
/* chmod of scratch file name: modes within 0600; ERR_PERM otherwise. */
int edit_scratch_chmod(struct edit *ed, size_t app, const char *name,
		       unsigned mode, struct err *e);
/* Add the names of app's scratch files to names. */
int edit_list_scratch(struct edit *ed, size_t app, struct strv *names,
		      struct err *e);

#endif
