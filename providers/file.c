/* file.c - the embedded default secret store: a directory of .env files.
 *
 *   [provider local]
 *   type = file
 *   directory = /var/lib/secretfs/store
 *
 * The locator team/billing is the file DIRECTORY/team/billing.env, in the
 * dotenv dialect of base/dotenv.h. An entry's version is a hash of the file's
 * bytes, so compare-and-set is exact whatever the mtime granularity.
 * Writers take an exclusive flock on the entry's parent directory, compare,
 * write a temporary file beside the entry and rename it over: readers see
 * the old or the new file, never a mix, across threads and processes.
 * Temporaries a crash left behind are removed when the store is created.
 *
 * Nothing below the directory is reached through a symbolic link, and
 * only regular files are read (a FIFO is refused, not waited on): a link
 * or a special file put in the folder could otherwise lead reads and
 * writes elsewhere, or hang every reader.
 */
#include "provider.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/dotenv.h"
#include "../base/secmem.h"
#include "kit.h"

/* A written .env may be 1 MiB (README.md, EFBIG); quoting may make the
 * stored file longer. */
#define FILE_MAX ((size_t)1024 * 1024 + 64 * 1024)
#define FILE_SUFFIX ".env"
#define FILE_SUFFIX_LEN (sizeof(FILE_SUFFIX) - 1)
#define FILE_LOCATOR_MAX 1024
/* Bounds the open directories of a list() walk. */
#define FILE_DEPTH_MAX 32

struct file_store {
	char *dir;	/* absolute, no trailing '/' unless it is "/" */
};

/* A locator names a file below the store's folder: segments that are
 * file names, so no "..", no absolute path, no temporary or dot-file. */
static int file_locator_check(const char *locator, struct err *e)
{
	const char *s = locator;
	int depth = 0;

	if (strlen(locator) > FILE_LOCATOR_MAX)
		return err_set(e, ERR_INVALID, "locator %.64s...: too long",
			       locator);
	for (;;) {
		size_t len = strcspn(s, "/");

		if (!kit_name_valid(s, len))
			return err_set(e, ERR_INVALID,
				       "locator %s: segments must be non-empty, made of A-Z a-z 0-9 . _ -, and not start with '.'",
				       locator);
		if (++depth > FILE_DEPTH_MAX)
			return err_set(e, ERR_INVALID,
				       "locator %s: more than %d levels",
				       locator, FILE_DEPTH_MAX);
		if (s[len] == '\0')
			return 0;
		s += len + 1;
	}
}

/* provider_ops.check: the configuration refuses a locator the store would
 * refuse at every read (local://../../etc/shadow#x) with its file:line. */
static int file_check(const char *locator, const char *params, struct err *e)
{
	if (!locator[0])
		return err_set(e, ERR_INVALID,
			       "empty locator (provider type file needs one)");
	if (params)
		return err_set(e, ERR_INVALID, "locator %s: takes no ?parameters",
			       locator);
	return file_locator_check(locator, e);
}

/* The entry file p into text; *absent when it (or its folder) is
 * missing. */
static int file_read(const struct file_store *fs, const struct kit_path *p,
		     struct secbuf *text, bool *absent, struct err *e)
{
	int dfd = kit_dir_beneath(fs->dir, p->rel, false, e), rc;

	*absent = false;
	if (dfd < 0 && e->code == ERR_NOTFOUND) {
		err_clear(e);
		*absent = true;
		return 0;
	}
	if (dfd < 0)
		return -1;
	rc = kit_entry_read(dfd, p->base, p->file, FILE_MAX, text, e);
	close(dfd);
	*absent = rc == 0;
	return rc < 0 ? -1 : 0;
}

/* The store's folder may be missing (the first write creates it), but
 * not be something else. */
static int file_dir_check(const char *dir, struct err *e)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return errno == ENOENT ? 0 :
			err_set(e, ERR_IO, "directory %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(e, ERR_INVALID, "directory %s: not a directory",
			       dir);
	return 0;
}

static int file_create(const struct provider_conf *conf, void **state,
		       struct err *e)
{
	struct file_store *fs;
	char *dir;

	if (kit_opt_directory(conf, FILE_LOCATOR_MAX, &dir, e) < 0)
		return -1;
	if (file_dir_check(dir, e) < 0) {
		free(dir);
		return -1;
	}
	if (sodium_init() < 0) {
		free(dir);
		return err_set(e, ERR_PROVIDER, "libsodium failed to start");
	}
	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		free(dir);
		return err_oom(e);
	}
	fs->dir = dir;
	/* entry files lie at most FILE_DEPTH_MAX - 1 folders down */
	kit_temp_sweep(conf->name, dir, FILE_SUFFIX, FILE_DEPTH_MAX - 1);
	*state = fs;
	return 0;
}

static void file_destroy(void *state)
{
	struct file_store *fs = state;

	if (!fs)
		return;
	free(fs->dir);
	free(fs);
}

static int file_fetch(void *state, const char *locator, const char *params,
		      struct entry *out, struct err *e)
{
	struct file_store *fs = state;
	struct secbuf text = SECBUF_INIT;
	struct kit_path p = KIT_PATH_INIT;
	bool absent;
	int rc = -1;

	if (file_check(locator, params, e) < 0)
		return -1;
	if (kit_path_make(fs->dir, locator, FILE_SUFFIX, &p, e) < 0)
		goto out;
	if (file_read(fs, &p, &text, &absent, e) < 0)
		goto out;
	if (absent) {
		err_set(e, ERR_NOTFOUND, "%s: no such entry (%s)", locator,
			p.file);
		goto out;
	}
	rc = kit_dotenv_entry(&text, p.file, out, e);
out:
	secbuf_free(&text);
	kit_path_free(&p);
	return rc;
}

/* With the lock held: the version on disk, or "" when absent. */
static int file_current_version(int dfd, const struct kit_path *p,
				char version[PROVIDER_VERSION_MAX],
				struct err *e)
{
	struct secbuf text = SECBUF_INIT;
	int rc = kit_entry_read(dfd, p->base, p->file, FILE_MAX, &text, e);

	version[0] = '\0';
	if (rc == 1)
		kit_bytes_version(&text, version);
	secbuf_free(&text);
	return rc < 0 ? -1 : 0;
}

static int file_store(void *state, const char *locator, const char *params,
		      const struct kvmap *m,
		      const char *expect, char new_version[PROVIDER_VERSION_MAX],
		      struct err *e)
{
	struct file_store *fs = state;
	struct secbuf text = SECBUF_INIT;
	char version[PROVIDER_VERSION_MAX], current[PROVIDER_VERSION_MAX];
	struct kit_path p = KIT_PATH_INIT;
	int dfd = -1, rc = -1;

	if (file_check(locator, params, e) < 0 ||
	    kit_dotenv_check(locator, m, e) < 0)
		return -1;
	/* render before locking: the lock is held only for the I/O */
	if (dotenv_render(m, &text, NULL, NULL) < 0) {
		err_oom(e);
		goto out;
	}
	if (text.len > FILE_MAX) {
		err_set(e, ERR_TOOBIG, "%s: larger than %zu bytes", locator,
			FILE_MAX);
		goto out;
	}
	kit_bytes_version(&text, version);
	if (kit_path_make(fs->dir, locator, FILE_SUFFIX, &p, e) < 0)
		goto out;
	dfd = kit_dir_lock(fs->dir, p.rel, true, LOCK_EX, e);
	if (dfd < 0)
		goto out;
	if (file_current_version(dfd, &p, current, e) < 0 ||
	    kit_version_check(locator, expect, current, e) < 0)
		goto out;
	/* same bytes, same version: nothing to write */
	if (strcmp(current, version) &&
	    kit_file_replace(dfd, p.parent, p.base, text.data, text.len, e) < 0)
		goto out;
	if (new_version)
		memcpy(new_version, version, PROVIDER_VERSION_MAX);
	rc = 0;
out:
	if (dfd >= 0)
		close(dfd);
	kit_path_free(&p);
	secbuf_free(&text);
	return rc;
}

/* list(): the locator being built, and the folder it names for messages. */
struct file_walk {
	const struct file_store *fs;
	char rel[FILE_LOCATOR_MAX + 2];
	size_t len;
	struct strv *out;
};

static int file_walk_dir(struct file_walk *w, int dfd, int depth,
			 struct err *e);

static int file_walk_err(struct file_walk *w, const char *what,
			 struct err *e)
{
	return err_set(e, ERR_IO, "%s/%.*s: %s: %s", w->fs->dir, (int)w->len,
		       w->rel, what, strerror(errno));
}

/* One directory entry named name (a valid segment) inside dfd. */
static int file_walk_one(struct file_walk *w, int dfd, const char *name,
			 int depth, struct err *e)
{
	size_t nlen = strlen(name), old = w->len;
	struct stat st;
	int rc = 0;

	if (depth >= FILE_DEPTH_MAX)
		return 0;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : file_walk_err(w, name, e);
	if (S_ISDIR(st.st_mode)) {
		int sub;

		/* too deep or too long to be a locator: not an entry */
		if (depth + 1 >= FILE_DEPTH_MAX ||
		    w->len + nlen + 1 > FILE_LOCATOR_MAX)
			return 0;
		sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			     O_CLOEXEC);
		if (sub < 0)
			return errno == ENOENT ? 0 : file_walk_err(w, name, e);
		memcpy(w->rel + w->len, name, nlen);
		w->len += nlen;
		w->rel[w->len++] = '/';
		rc = file_walk_dir(w, sub, depth + 1, e);
		w->len = old;
		return rc;
	}
	/* a symbolic link is no entry: reads refuse it */
	if (!S_ISREG(st.st_mode) || nlen <= FILE_SUFFIX_LEN ||
	    strcmp(name + nlen - FILE_SUFFIX_LEN, FILE_SUFFIX) ||
	    w->len + nlen - FILE_SUFFIX_LEN > FILE_LOCATOR_MAX)
		return 0;
	memcpy(w->rel + w->len, name, nlen - FILE_SUFFIX_LEN);
	w->rel[w->len + nlen - FILE_SUFFIX_LEN] = '\0';
	if (strv_push(w->out, w->rel) < 0)
		return err_oom(e);
	return 0;
}

/* Walk dfd (consumed) recursively, appending locators to w->out. */
static int file_walk_dir(struct file_walk *w, int dfd, int depth,
			 struct err *e)
{
	DIR *d = fdopendir(dfd);
	int rc = 0;

	if (!d) {
		rc = file_walk_err(w, "open", e);
		close(dfd);
		return rc;
	}
	for (;;) {
		struct dirent *de;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				rc = file_walk_err(w, "read", e);
			break;
		}
		if (!kit_name_valid(de->d_name, strlen(de->d_name)))
			continue;
		rc = file_walk_one(w, dirfd(d), de->d_name, depth, e);
		if (rc < 0)
			break;
	}
	closedir(d);
	return rc;
}

static int file_list(void *state, const char *prefix, struct strv *out,
		     struct err *e)
{
	struct file_store *fs = state;
	struct file_walk w = { .fs = fs, .out = out };
	size_t plen = strlen(prefix);
	int dfd, depth = 0;

	/* "team/" and "team" are one folder */
	if (plen > 1 && prefix[plen - 1] == '/')
		plen--;
	if (plen > FILE_LOCATOR_MAX)
		return err_set(e, ERR_INVALID, "prefix %.64s...: too long",
			       prefix);
	memcpy(w.rel, prefix, plen);
	w.rel[plen] = '\0';
	if (plen > 0 && file_locator_check(w.rel, e) < 0)
		return -1;
	dfd = kit_dir_beneath(fs->dir, w.rel, false, e);
	if (dfd < 0 && e->code == ERR_NOTFOUND) {
		err_clear(e);
		return 0;
	}
	if (dfd < 0)
		return -1;
	/* the prefix's own levels count towards FILE_DEPTH_MAX */
	for (size_t i = 0; i < plen; i++)
		depth += w.rel[i] == '/';
	if (plen > 0) {
		w.rel[plen++] = '/';
		depth++;
	}
	w.len = plen;
	if (file_walk_dir(&w, dfd, depth, e) < 0) {
		strv_free(out);
		return -1;
	}
	strv_sort_unique(out);
	return 0;
}

static const char *const file_options[] = { "directory", NULL };

const struct provider_ops file_provider_ops = {
	.type = "file",
	.options = file_options,
	.caps = PROVIDER_CAP_CAS | PROVIDER_CAP_WRITE | PROVIDER_CAP_LIST,
	.create = file_create,
	.destroy = file_destroy,
	.check = file_check,
	.fetch = file_fetch,
	.store = file_store,
	.list = file_list,
};
