/* mountpoint.h - what is mounted at a mountpoint already, before we mount.
 *
 * A second secretfs over a live one would stack (mount -a twice, a hand
 * run over a service); a dead one (its daemon crashed or was killed:
 * every access fails with ENOTCONN) blocks the mountpoint until someone
 * detaches it. So before mounting: refuse a live secretfs, detach a dead
 * one. No FUSE here: the mount table is read from /proc/self/mountinfo.
 */
#ifndef SECRETFS_MOUNTPOINT_H
#define SECRETFS_MOUNTPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/err.h"

#define MOUNTPOINT_TYPE "fuse.secretfs"

/* One line of mountinfo, the fields we need, unescaped. */
struct mountpoint_entry {
	char target[4096];
	char fstype[256];
	char source[4096];
};

/* The topmost entry of mountinfo text (the file's content) mounted at
 * target; false when nothing is. */
bool mountpoint_find(const char *mountinfo, const char *target,
		     struct mountpoint_entry *out);

/* Make target ready for our mount: refuse (ERR_BUSY, with a message for
 * the user) when a live secretfs serves it; lazily unmount a dead one. */
int mountpoint_prepare(const char *target, struct err *e);

#endif
