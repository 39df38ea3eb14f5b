/* trust.h - may a file steer what the daemon does?
 *
 * The configuration, its drop-ins, templates and on_change programs decide
 * which secrets go where and what runs as root, so each is trusted only
 * when nobody else can change it: owned by root, by the daemon's user (or
 * by one more user the caller names), and not writable by group or
 * others. A refusal is ERR_INVALID naming the path, who could abuse it
 * and the command that makes it safe (chown root PATH, chmod go-w PATH).
 */
#ifndef SECRETFS_TRUST_H
#define SECRETFS_TRUST_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "err.h"

/* No one but root, the daemon's euid or also (root again: none more). */
#define TRUST_NOBODY_ELSE ((uid_t)0)

/* st (of path) is trusted. power completes "so they could ..." in the
 * message, e.g. "grant themselves any app". A folder with the sticky bit
 * may be writable by others when sticky_ok (no one can replace what it
 * holds). */
int trust_stat(const struct stat *st, const char *path, uid_t also,
	       bool sticky_ok, const char *power, struct err *e);
/* trust_stat of the open fd: what is checked is what is read. */
int trust_fd(int fd, const char *path, const char *power, struct err *e);

#endif
