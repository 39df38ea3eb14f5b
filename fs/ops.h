/* ops.h - the FUSE low-level adapter: inodes, handles, errno. */
#ifndef SECRETFS_OPS_H
#define SECRETFS_OPS_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <time.h>

#include "app.h"
#include "scratch.h"

struct ops_node;
struct ops_reader;

/* The state behind one mount; the userdata of the FUSE session. */
struct ops_fs {
	struct appfs *appfs;
	const struct config *cfg;
	time_t mounted;		/* mtime of everything, for now */
	pthread_mutex_t lock;	/* guards the node tables */
	struct ops_node **nodes;	/* file nodes, by inode - first file inode */
	struct ops_node **heads;	/* file nodes of each app, a list */
	struct scratch_dir *scratch;	/* editors' temporary files, per app */
	struct ops_reader *readers;	/* each process's last read of a .env */
	size_t nnodes;
	size_t cap;
};

extern const struct fuse_lowlevel_ops ops_table;

int ops_fs_init(struct ops_fs *ofs, struct appfs *appfs,
		const struct config *cfg);
void ops_fs_destroy(struct ops_fs *ofs);

#endif
