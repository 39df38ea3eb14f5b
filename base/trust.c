/* trust.c - see trust.h. */
#include "trust.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int trust_stat(const struct stat *st, const char *path, uid_t also,
	       bool sticky_ok, const char *power, struct err *e)
{
	uid_t me = geteuid();

	if (st->st_uid != 0 && st->st_uid != me && st->st_uid != also)
		return err_set(e, ERR_INVALID,
			       "%s: owned by uid %u, not by root or the daemon's user (uid %u), so its owner could %s: chown root %s",
			       path, (unsigned)st->st_uid, (unsigned)me, power, path);
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) &&
	    !(sticky_ok && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX)))
		return err_set(e, ERR_INVALID,
			       "%s: writable by group or others (mode %04o), so they could %s: chmod go-w %s",
			       path, (unsigned)(st->st_mode & 07777), power, path);
	return 0;
}

int trust_fd(int fd, const char *path, const char *power, struct err *e)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
	return trust_stat(&st, path, TRUST_NOBODY_ELSE, false, power, e);
}
