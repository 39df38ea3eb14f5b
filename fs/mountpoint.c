/* mountpoint.c - see mountpoint.h */
#include "mountpoint.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>

#include "../base/log.h"

extern char **environ;

/* Copy the space-ended field at *p into out, undoing mountinfo's \ooo
 * escapes (space, tab, newline, backslash); *p moves past it. */
static void mountpoint_field(const char **p, char *out, size_t size)
{
	const char *s = *p;
	size_t n = 0;

	while (*s && *s != ' ' && *s != '\n') {
		char c = *s++;

		if (c == '\\' && s[0] >= '0' && s[0] <= '3' && s[1] && s[2]) {
			c = (char)((s[0] - '0') * 64 + (s[1] - '0') * 8 + (s[2] - '0'));
			s += 3;
		}
		if (n + 1 < size)
			out[n++] = c;
	}
	out[n] = '\0';
	while (*s == ' ')
		s++;
	*p = s;
}

/* Parse one line: ID PARENT MAJ:MIN ROOT TARGET OPTS [TAGS...] - TYPE SOURCE ... */
static bool mountpoint_line(const char *line, struct mountpoint_entry *en)
{
	char skip[4096];
	const char *p = line, *dash;

	for (int i = 0; i < 4; i++)
		mountpoint_field(&p, skip, sizeof(skip));
	mountpoint_field(&p, en->target, sizeof(en->target));
	dash = strstr(p, " - ");
	if (!dash)
		return false;
	p = dash + 3;
	mountpoint_field(&p, en->fstype, sizeof(en->fstype));
	mountpoint_field(&p, en->source, sizeof(en->source));
	return true;
}

bool mountpoint_find(const char *mountinfo, const char *target,
		     struct mountpoint_entry *out)
{
	struct mountpoint_entry en;
	bool found = false;

	/* later lines are mounted over earlier ones: the last match is on top */
	for (const char *line = mountinfo; line && *line;) {
		const char *nl = strchr(line, '\n');

		if (mountpoint_line(line, &en) && !strcmp(en.target, target)) {
			*out = en;
			found = true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return found;
}

/* /proc/self/mountinfo, NUL-ended; NULL when it cannot be read. */
static char *mountpoint_table(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *text = NULL;
	size_t len = 0;

	if (!f)
		return NULL;
	if (getdelim(&text, &len, '\0', f) < 0) {
		free(text);
		text = NULL;
	}
	fclose(f);
	return text;
}

/* The absolute path of target as the mount table spells it; a dead
 * mountpoint cannot be resolved itself, its parent can. */
static int mountpoint_canonical(const char *target, char *out, size_t size,
				struct err *e)
{
	char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];

	snprintf(a, sizeof(a), "%s", target);
	snprintf(b, sizeof(b), "%s", target);
	if (!realpath(dirname(a), dir))
		return err_set(e, ERR_NOTFOUND, "mountpoint %s: %s", target,
			       strerror(errno));
	if (snprintf(out, size, "%s/%s", strcmp(dir, "/") ? dir : "",
		     basename(b)) >= (int)size)
		return err_set(e, ERR_INVALID, "mountpoint %s: path too long", target);
	return 0;
}

/* umount -l, else (not root) fusermount3 -u -z. */
static int mountpoint_detach(const char *target, struct err *e)
{
	char *argv[] = { "fusermount3", "-u", "-z", (char *)target, NULL };
	int status = 0;
	pid_t pid;

	if (umount2(target, MNT_DETACH) == 0)
		return 0;
	if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) == 0 &&
	    waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0)
		return 0;
	return err_set(e, ERR_BUSY,
		       "%s: a dead secretfs mount is in the way and cannot be detached: fusermount3 -u -z %s",
		       target, target);
}

int mountpoint_prepare(const char *target, struct err *e)
{
	struct mountpoint_entry en;
	char path[PATH_MAX];
	char *table;
	struct statfs st;
	bool found;

	if (mountpoint_canonical(target, path, sizeof(path), e) < 0)
		return -1;
	table = mountpoint_table();
	found = table && mountpoint_find(table, path, &en);
	free(table);
	if (!found || strcmp(en.fstype, MOUNTPOINT_TYPE))
		return 0;
	/* statfs always reaches the daemon, where stat may be answered
	 * from the kernel's cache of a mount whose daemon is gone */
	if (statfs(path, &st) == 0 || (errno != ENOTCONN && errno != ECONNABORTED))
		return err_set(e, ERR_BUSY,
			       "%s is already mounted by a running secretfs (of %s): unmount it first (umount %s)",
			       path, en.source, path);
	if (mountpoint_detach(path, e) < 0)
		return -1;
	log_info("%s: detached a dead secretfs mount (of %s) left by a daemon that ended",
		 path, en.source);
	return 0;
}
