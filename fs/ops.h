/* ops.h - the FUSE low-level adapter: inodes, handles, errno. */
#ifndef SECRETFS_OPS_H
#define SECRETFS_OPS_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "app.h"
#include "edit.h"
#include "hooks.h"
#include "node.h"

/* Inodes whose kernel cache is to be invalidated, and the thread that
 * does it (never a request handler). */
struct ops_inval {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	fuse_ino_t *q;
	size_t n;
	size_t cap;
	bool all;	/* the queue could not grow: invalidate every file */
	bool busy;	/* the thread is invalidating what it took */
	bool stop;
	bool running;
};

/* The state behind one mount; the userdata of the FUSE session. */
/* The background requests (closes among them) the kernel may have
 * outstanding at once unless -o max_background says otherwise: the
 * protocol's largest (why: ops.c, ops_init_background). */
#define OPS_MAX_BACKGROUND 65535u

struct ops_fs {
	struct appfs *appfs;
	/* every request holds it to read, a reload to write: a request sees
	 * one configuration from start to end (the one in edit.cfg) */
	pthread_rwlock_t reload_lock;
	/* the configurations reloads read: freed at unmount, since providers
	 * kept across a reload may hold on to their sections' text */
	struct config **cfgs;
	size_t ncfgs;
	time_t mounted;		/* mtime of the folders */
	struct node_table nodes;	/* inodes, and what the kernel saw */
	struct edit edit;	/* open files, scratch files, merge bases */
	bool kernel_cache;	/* let the kernel keep pages and attributes */
	bool read_only;		/* mounted -o ro */
	bool no_open;		/* read-only fast path: opens stay in the kernel */
	unsigned max_background;	/* -o max_background=N; 0: OPS_MAX_BACKGROUND */
	struct fuse_session *se;
	struct ops_inval inval;
	struct hooks *hooks;	/* on_change: NULL when no app has one */
};

extern const struct fuse_lowlevel_ops ops_table;

int ops_fs_init(struct ops_fs *ofs, struct appfs *appfs,
		const struct config *cfg);
/* Once mounted and daemonized: start the threads that keep the kernel's
 * cache right (invalidation, the cache's refresher). */
int ops_start(struct ops_fs *ofs, struct fuse_session *se, struct err *e);
/* Before the session goes: stop the invalidation thread. */
void ops_stop(struct ops_fs *ofs);
void ops_fs_destroy(struct ops_fs *ofs);

/* Read the configuration at path and serve it from now on, mounted as it
 * is: apps added, removed and changed, providers whose section changed
 * re-created, every other app, open file and inode number untouched.
 * Requests wait while the new configuration is swapped in (not while it
 * is read and its providers created). On any error (e->msg: file:line:
 * what) the running configuration stays. From any thread but a request
 * handler (main.c: SIGHUP). */
int ops_reload(struct ops_fs *ofs, const char *path, struct err *e);

#endif
