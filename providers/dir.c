/* dir.c - a folder of secret files, one per key: Docker and Compose
 * secrets (/run/secrets), Kubernetes Secret volumes, secrets/NAME.txt.
 *
 *   [provider secrets]
 *   type = dir
 *   directory = /run/secrets
 *   trim_newline = true        ; drop one trailing newline (echo's)
 *
 * secrets:// is the folder: each regular file is a key (its name), its
 * bytes the value. secrets://SUB is a subfolder, or, when SUB names a
 * file, that file alone as a single value (key ""). Names starting with
 * '.' are not keys (temporary files, Kubernetes' ..data); subfolders are
 * other entries. A file named that is not a regular file (a FIFO) is
 * refused at once (kit_entry_read), as in the other local stores. A
 * symbolic link is refused, except Kubernetes' layout:
 * KEY -> ..data/KEY and ..data -> ..TIMESTAMP, a folder beside them. Such a
 * folder is read from the one ..TIMESTAMP folder ..data names, checked
 * again after the read (a swap meanwhile reads again), and is read-only.
 * The rule: the only link followed is ..data, to a ..NAME beside it; the
 * KEY links are never followed (values are read from the regular files
 * of that folder), and no folder below the directory is reached through
 * a link (kit_dir_beneath).
 *
 * The version is a hash of every name and value. Writers take an
 * exclusive flock on the folder, compare, then replace each changed file
 * atomically (kit_file_replace: 0600, temp + fsync + rename) and unlink
 * removed keys; readers of a folder take a shared flock, so secretfs
 * readers never see half of another secretfs write. Temporaries a crash
 * left behind (".KEY.<hex>", a value in plaintext) are removed when the
 * store is created (kit_temp_sweep).
 */
#include "provider.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/log.h"
#include "kit.h"

#define DIR_VALUE_MAX (64 * 1024)	/* like every store's values */
#define DIR_TOTAL_MAX (1024 * 1024)	/* like a written .env */
#define DIR_LOCATOR_MAX 1024
#define DIR_DEPTH_MAX 32
#define DIR_KUBE_DATA "..data"
/* a Kubernetes swap during a read: read again, this often */
#define DIR_READ_ATTEMPTS 4

struct dir_store {
	char *dir;	/* absolute, no trailing '/' unless it is "/" */
	bool trim;	/* trim_newline */
};

/* One open folder while reading: where its files are (data: the
 * ..TIMESTAMP folder of a Kubernetes volume, else the folder itself). */
struct dir_folder {
	int fd;
	int data;
	char kube[NAME_MAX + 1];	/* what ..data named, "" when plain */
	const char *path;	/* for messages */
};

static int dir_check(const char *locator, const char *params, struct err *e)
{
	const char *s = locator;

	if (params)
		return err_set(e, ERR_INVALID,
			       "%s: folder references take no ?parameters",
			       locator);
	if (strlen(locator) > DIR_LOCATOR_MAX)
		return err_set(e, ERR_INVALID, "%.64s...: too long", locator);
	for (int depth = 0; *s; depth++) {
		size_t len = strcspn(s, "/");

		if (!kit_name_valid(s, len) || depth >= DIR_DEPTH_MAX)
			return err_set(e, ERR_INVALID,
				       "%s: names must be non-empty, made of A-Z a-z 0-9 . _ -, not start with '.', at most %d levels",
				       locator, DIR_DEPTH_MAX);
		s += len + (s[len] == '/');
	}
	return 0;
}

static int dir_create(const struct provider_conf *conf, void **state,
		      struct err *e)
{
	struct dir_store *ds;
	char *dir;
	bool trim;

	if (kit_opt_bool(conf, "trim_newline", false, &trim, e) < 0 ||
	    kit_opt_directory(conf, DIR_LOCATOR_MAX, &dir, e) < 0)
		return -1;
	ds = calloc(1, sizeof(*ds));
	if (!ds) {
		free(dir);
		return err_oom(e);
	}
	ds->dir = dir;
	ds->trim = trim;
	/* keys' files lie in folders at most DIR_DEPTH_MAX down; ..data and
	 * ..TIMESTAMP are neither a temporary's name nor a folder swept */
	kit_temp_sweep(conf->name, dir, "", DIR_DEPTH_MAX);
	*state = ds;
	return 0;
}

static void dir_destroy(void *state)
{
	struct dir_store *ds = state;

	if (ds)
		free(ds->dir);
	free(ds);
}

/* ---- reading ---- */

/* What ..data names in folder fd: a single name starting with "..".
 * 1 found (into target), 0 absent (a plain folder), -1 refused. */
static int dir_kube_target(int fd, const char *path, char *target,
			   size_t size, struct err *e)
{
	ssize_t n = readlinkat(fd, DIR_KUBE_DATA, target, size - 1);

	if (n < 0 && (errno == ENOENT || errno == EINVAL))
		return errno == ENOENT ? 0 :
			err_set(e, ERR_ACCESS, "%s/" DIR_KUBE_DATA ": not a symbolic link",
				path);
	if (n < 0)
		return err_set(e, ERR_IO, "%s/" DIR_KUBE_DATA ": %s", path,
			       strerror(errno));
	target[n] = '\0';
	if (strncmp(target, "..", 2) || !strcmp(target, "..") ||
	    strchr(target, '/'))
		return err_set(e, ERR_ACCESS,
			       "%s/" DIR_KUBE_DATA ": points at %s, not at a ..TIMESTAMP folder beside it",
			       path, target);
	return 1;
}

/* Open folder fd (consumed) for reading, resolving the Kubernetes
 * layout. */
static int dir_folder_open(int fd, const char *path, struct dir_folder *f,
			   struct err *e)
{
	int k;

	*f = (struct dir_folder){ .fd = fd, .data = fd, .path = path };
	k = dir_kube_target(fd, path, f->kube, sizeof(f->kube), e);
	if (k < 0) {
		close(fd);
		f->fd = f->data = -1;
		return -1;
	}
	if (k == 0)
		return 0;
	f->data = openat(fd, f->kube, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			 O_CLOEXEC);
	if (f->data >= 0)
		return 0;
	/* ENOENT: swapped and removed since readlink: read again */
	err_set(e, errno == ENOENT ? ERR_CONFLICT : ERR_IO, "%s/%s: %s", path,
		f->kube, strerror(errno));
	close(fd);
	f->fd = f->data = -1;
	return -1;
}

static void dir_folder_close(struct dir_folder *f)
{
	if (f->data >= 0 && f->data != f->fd)
		close(f->data);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = f->data = -1;
}

/* Still the ..TIMESTAMP folder the read started from? */
static bool dir_kube_same(const struct dir_folder *f)
{
	char now[NAME_MAX + 1];
	struct err e;

	if (!f->kube[0])
		return true;
	return dir_kube_target(f->fd, f->path, now, sizeof(now), &e) == 1 &&
	       !strcmp(now, f->kube);
}

/* The bytes of regular file name in folder fd into out, trimmed as
 * configured; ERR_NOTFOUND when missing. kit_entry_read refuses a
 * symbolic link and anything but a regular file (a FIFO without waiting
 * on it), as the other local stores do. */
static int dir_value_read(const struct dir_store *ds, int fd,
			  const char *path, const char *name,
			  struct secbuf *out, struct err *e)
{
	char file[PATH_MAX];
	int rc;

	snprintf(file, sizeof(file), "%s/%s", path, name);
	/* room for the newline trim_newline drops */
	rc = kit_entry_read(fd, name, file, DIR_VALUE_MAX + 2, out, e);
	if (rc == 0)
		return err_set(e, ERR_NOTFOUND, "%s: no such file", file);
	if (rc < 0 && e->code == ERR_TOOBIG)
		err_set(e, ERR_TOOBIG, "%s: larger than 64 KiB", file);
	if (rc < 0)
		return -1;
	if (ds->trim && out->len && out->data[out->len - 1] == '\n')
		secbuf_truncate(out, out->len - 1 -
				(out->len > 1 && out->data[out->len - 2] == '\r'));
	if (out->len > DIR_VALUE_MAX) {
		secbuf_clear(out);
		return err_set(e, ERR_TOOBIG, "%s: larger than 64 KiB", file);
	}
	return 0;
}

/* One name of a plain folder: a key, something to skip (0), or a
 * refused symbolic link. */
static int dir_entry_kind(int fd, const char *path, const char *name,
			  bool *key, struct err *e)
{
	struct stat st;

	*key = false;
	if (name[0] == '.' || kit_has_ctl(name, strlen(name)))
		return 0;
	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? err_set(e, ERR_CONFLICT, "%s/%s: gone",
						 path, name) :
			err_set(e, ERR_IO, "%s/%s: %s", path, name, strerror(errno));
	if (S_ISLNK(st.st_mode))
		return err_set(e, ERR_ACCESS,
			       "%s/%s: a symbolic link; only the Kubernetes ..data layout is followed",
			       path, name);
	*key = S_ISREG(st.st_mode);
	return 0;
}

/* Every key of the open folder into m. */
static int dir_folder_read(const struct dir_store *ds, struct dir_folder *f,
			   struct kvmap *m, struct err *e)
{
	struct secbuf val = SECBUF_INIT;
	int dup_fd = dup(f->data);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	size_t total = 0;
	int rc = 0;

	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return err_set(e, ERR_IO, "%s: %s", f->path, strerror(errno));
	}
	for (struct dirent *de; rc == 0 && (errno = 0, de = readdir(d));) {
		bool key;

		rc = dir_entry_kind(f->data, f->path, de->d_name, &key, e);
		if (rc < 0 || !key)
			continue;
		rc = dir_value_read(ds, f->data, f->path, de->d_name, &val, e);
		/* listed, then gone: someone else's write or a swap */
		if (rc < 0 && e->code == ERR_NOTFOUND)
			e->code = ERR_CONFLICT;
		total += val.len;
		if (rc == 0 && total > DIR_TOTAL_MAX)
			rc = err_set(e, ERR_TOOBIG, "%s: more than 1 MiB of values",
				     f->path);
		if (rc == 0 && kvmap_set(m, de->d_name, val.data, val.len) < 0)
			rc = err_oom(e);
	}
	if (rc == 0 && errno)
		rc = err_set(e, ERR_IO, "%s: %s", f->path, strerror(errno));
	closedir(d);
	secbuf_free(&val);
	return rc;
}

/* Open the folder at rel ("" the top) below the store, no symbolic links
 * followed (kit_dir_beneath); with create, missing folders are made
 * (0700). */
static int dir_open_rel(const struct dir_store *ds, const char *rel,
			bool create, struct err *e)
{
	int fd = kit_dir_beneath(ds->dir, rel, create, e);

	if (fd < 0 && e->code == ERR_NOTFOUND)
		return err_set(e, ERR_NOTFOUND, "%s: no such folder under %s",
			       rel[0] ? rel : ".", ds->dir);
	return fd;
}

/* Split locator into its folder (copied to parent) and last name. */
static const char *dir_split(const char *locator, char *parent, size_t size)
{
	const char *slash = strrchr(locator, '/');
	size_t n = slash ? (size_t)(slash - locator) : 0;

	snprintf(parent, size, "%.*s", (int)n, locator);
	return slash ? slash + 1 : locator;
}

/* The locator names a file (KEY in its folder, through the Kubernetes
 * layout when its folder has one): its value, key "". 0 read, 1 it is a
 * plain folder (an entry of its own), -1. */
static int dir_read_single(const struct dir_store *ds, const char *locator,
			   struct kvmap *m, struct err *e)
{
	char parent[DIR_LOCATOR_MAX + 1], path[PATH_MAX];
	const char *name = dir_split(locator, parent, sizeof(parent));
	struct secbuf val = SECBUF_INIT;
	struct dir_folder f;
	struct stat st;
	int fd = dir_open_rel(ds, parent, false, e), rc;

	if (fd < 0)
		return -1;
	snprintf(path, sizeof(path), "%s%s%s", ds->dir, parent[0] ? "/" : "",
		 parent);
	if (dir_folder_open(fd, path, &f, e) < 0)
		return -1;
	if (!f.kube[0] && fstatat(f.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode)) {
		dir_folder_close(&f);
		return 1;
	}
	/* the value lives where the folder's data does */
	rc = dir_value_read(ds, f.data, path, name, &val, e);
	if (!dir_kube_same(&f))
		rc = err_set(e, ERR_CONFLICT, "%s: swapped during the read", path);
	if (rc == 0 && kvmap_set(m, "", val.data, val.len) < 0)
		rc = err_oom(e);
	dir_folder_close(&f);
	secbuf_free(&val);
	return rc;
}

static int dir_read_whole(const struct dir_store *ds, const char *locator,
			  struct kvmap *m, struct err *e)
{
	char path[PATH_MAX];
	struct dir_folder f;
	int fd = dir_open_rel(ds, locator, false, e), rc;

	if (fd < 0)
		return -1;
	snprintf(path, sizeof(path), "%s%s%s", ds->dir, locator[0] ? "/" : "",
		 locator);
	if (dir_folder_open(fd, path, &f, e) < 0)
		return -1;
	/* secretfs writers hold LOCK_EX while they change several files;
	 * a folder that takes no locks (NFS without lockd) is read as is */
	if (!f.kube[0] && flock(f.fd, LOCK_SH) < 0 && errno != ENOLCK &&
	    errno != EOPNOTSUPP)
		log_debug("%s: shared lock: %s; reading unlocked", path,
			  strerror(errno));
	rc = dir_folder_read(ds, &f, m, e);
	if (rc == 0 && !dir_kube_same(&f))
		rc = err_set(e, ERR_CONFLICT, "%s: swapped during the read", path);
	dir_folder_close(&f);
	return rc;
}

static int dir_fetch(void *state, const char *locator, const char *params,
		     struct entry *out, struct err *e)
{
	const struct dir_store *ds = state;
	int rc = -1;

	if (dir_check(locator, params, e) < 0)
		return -1;
	for (int i = 0; i < DIR_READ_ATTEMPTS; i++) {
		kvmap_free(&out->map);
		rc = locator[0] ? dir_read_single(ds, locator, &out->map, e) : 1;
		if (rc == 1)
			rc = dir_read_whole(ds, locator, &out->map, e);
		if (rc == 0 || e->code != ERR_CONFLICT)
			break;
	}
	if (rc < 0) {
		kvmap_free(&out->map);
		if (e->code == ERR_CONFLICT)
			e->code = ERR_IO;
		return -1;
	}
	kit_map_version(&out->map, out->version);
	return 0;
}

/* ---- writing ---- */

static int dir_map_check(const char *locator, const struct kvmap *m,
			 struct err *e)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct kv *kv = &m->items[i];

		if (!kit_name_valid(kv->key, strlen(kv->key)))
			return err_set(e, ERR_INVALID,
				       "%s: key %s cannot be a file name here (A-Z a-z 0-9 . _ -, not starting with '.')",
				       locator, kv->key);
		if (kv->len > DIR_VALUE_MAX)
			return err_set(e, ERR_TOOBIG, "%s: %s: larger than 64 KiB",
				       locator, kv->key);
	}
	return 0;
}

/* Write value val of key name into folder fd, with the newline
 * trim_newline drops on reading. */
static int dir_value_write(const struct dir_store *ds, int fd,
			   const char *path, const char *name,
			   const struct kv *val, struct err *e)
{
	struct secbuf text = SECBUF_INIT;
	int rc;

	if (secbuf_set(&text, val->val, val->len) < 0 ||
	    (ds->trim && secbuf_putc(&text, '\n') < 0))
		rc = err_oom(e);
	else
		rc = kit_file_replace(fd, path, name, text.data, text.len, e);
	secbuf_free(&text);
	return rc;
}

/* With the folder locked: make it hold m, file by file. */
static int dir_apply(const struct dir_store *ds, struct dir_folder *f,
		     const struct kvmap *cur, const struct kvmap *m,
		     struct err *e)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct kv *want = &m->items[i];
		const struct kv *now = kvmap_get(cur, want->key);

		if (now && now->len == want->len &&
		    !memcmp(now->val, want->val, now->len))
			continue;
		if (dir_value_write(ds, f->fd, f->path, want->key, want, e) < 0)
			return -1;
	}
	for (size_t i = 0; i < cur->n; i++)
		if (!kvmap_get(m, cur->items[i].key) &&
		    unlinkat(f->fd, cur->items[i].key, 0) < 0 && errno != ENOENT)
			return err_set(e, ERR_IO, "%s/%s: %s", f->path,
				       cur->items[i].key, strerror(errno));
	if (fsync(f->fd) < 0)
		return err_set(e, kit_io_code(errno), "%s: %s", f->path,
			       strerror(errno));
	return 0;
}

/* One file's value (absent: nothing) into cur under name, and its
 * version as fetch() has it ({"": value}) into current. */
static int dir_single_current(const struct dir_store *ds, int fd,
			      const char *path, const char *name,
			      struct kvmap *cur, char *current, struct err *e)
{
	struct secbuf val = SECBUF_INIT;
	struct kvmap one = KVMAP_INIT;
	int rc = dir_value_read(ds, fd, path, name, &val, e);

	if (rc == 0 && (kvmap_set(&one, "", val.data, val.len) < 0 ||
			kvmap_set(cur, name, val.data, val.len) < 0))
		rc = err_oom(e);
	if (rc == 0)
		kit_map_version(&one, current);
	if (rc < 0 && e->code == ERR_NOTFOUND)
		rc = 0;
	kvmap_free(&one);
	secbuf_free(&val);
	return rc;
}

/* rel: the folder; m: its keys, or for a single file (name not NULL)
 * {"": value}. */
static int dir_store_in(const struct dir_store *ds, const char *locator,
			const char *rel, const char *name,
			const struct kvmap *m, const char *expect,
			struct err *e)
{
	char path[PATH_MAX], current[PROVIDER_VERSION_MAX] = "";
	struct kvmap cur = KVMAP_INIT, want = KVMAP_INIT;
	struct dir_folder f;
	int fd = dir_open_rel(ds, rel, true, e), rc;

	if (fd < 0)
		return -1;
	snprintf(path, sizeof(path), "%s%s%s", ds->dir, rel[0] ? "/" : "", rel);
	if (dir_folder_open(fd, path, &f, e) < 0)
		return -1;
	if (f.kube[0]) {
		dir_folder_close(&f);
		return err_set(e, ERR_READONLY,
			       "%s: a Kubernetes Secret volume (..data) is read-only; change the Secret",
			       locator);
	}
	rc = kit_flock(f.fd, LOCK_EX, path, e);
	if (rc == 0 && name) {
		rc = dir_single_current(ds, f.fd, path, name, &cur, current, e);
		if (rc == 0 && kvmap_set(&want, name, m->items[0].val,
					 m->items[0].len) < 0)
			rc = err_oom(e);
	} else if (rc == 0) {
		rc = dir_folder_read(ds, &f, &cur, e);
		if (rc == 0 && cur.n)
			kit_map_version(&cur, current);
		if (rc == 0 && kvmap_copy(&want, m) < 0)
			rc = err_oom(e);
	}
	if (rc == 0)
		rc = kit_version_check(locator, expect, current, e);
	if (rc == 0)
		rc = dir_apply(ds, &f, &cur, &want, e);
	dir_folder_close(&f);
	kvmap_free(&cur);
	kvmap_free(&want);
	return rc;
}

static int dir_store(void *state, const char *locator, const char *params,
		     const struct kvmap *m, const char *expect,
		     char new_version[PROVIDER_VERSION_MAX], struct err *e)
{
	const struct dir_store *ds = state;
	bool single = m->n == 1 && m->items[0].key[0] == '\0';
	char parent[DIR_LOCATOR_MAX + 1];
	const char *name = NULL;

	if (dir_check(locator, params, e) < 0)
		return -1;
	if (single && !locator[0])
		return err_set(e, ERR_INVALID,
			       "the folder itself cannot hold a single value");
	if (single) {
		name = dir_split(locator, parent, sizeof(parent));
		if (m->items[0].len > DIR_VALUE_MAX)
			return err_set(e, ERR_TOOBIG, "%s: larger than 64 KiB",
				       locator);
	} else if (dir_map_check(locator, m, e) < 0) {
		return -1;
	}
	if (dir_store_in(ds, locator, single ? parent : locator, name, m,
			 expect, e) < 0)
		return -1;
	if (new_version)
		kit_map_version(m, new_version);
	return 0;
}

static const char *const dir_options[] = { "directory", "trim_newline", NULL };

const struct provider_ops dir_provider_ops = {
	.type = "dir",
	.options = dir_options,
	.caps = PROVIDER_CAP_CAS | PROVIDER_CAP_WRITE,
	.create = dir_create,
	.destroy = dir_destroy,
	.check = dir_check,
	.fetch = dir_fetch,
	.store = dir_store,
};
