/* kit.c - the provider toolkit (kit.h): one copy of what backends share. */
#include "kit.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/dotenv.h"
#include "../base/log.h"
#include "../base/pct.h"

/* The read-back waits twice the write's round trip, within these bounds
 * (see kit_store_nocas). */
#define KIT_SETTLE_MIN_MS 100
#define KIT_SETTLE_MAX_MS 1000
/* the longest access token taken */
#define KIT_TOKEN_MAX 16384
/* failed token requests back off between these */
#define KIT_TOKEN_BACKOFF_MIN_MS 1000L
#define KIT_TOKEN_BACKOFF_MAX_MS 60000L
/* a token this close to expiry is not sent */
#define KIT_TOKEN_SLACK_S 2

/* ---- options ---- */

const char *kit_env(const char *name)
{
	const char *s = getenv(name);

	return s && s[0] ? s : NULL;
}

const char *kit_opt(const struct provider_conf *conf, const char *key,
		    const char *env, const char *def)
{
	const char *s = conf_opt_get(conf, key);

	if (s && !s[0])
		s = NULL;
	if (!s && env)
		s = kit_env(env);
	return s ? s : def;
}

int kit_opt_bool(const struct provider_conf *conf, const char *key, bool def,
		 bool *out, struct err *e)
{
	const char *s = conf_opt_get(conf, key);

	*out = def;
	if (!s)
		return 0;
	if (strcmp(s, "true") && strcmp(s, "false"))
		return err_set(e, ERR_INVALID,
			       "option %s: '%s' is not true or false", key, s);
	*out = !strcmp(s, "true");
	return 0;
}

bool kit_once_per(int64_t *last, int64_t every_ms)
{
	int64_t now = clock_now_ms();
	int64_t was = __atomic_load_n(last, __ATOMIC_RELAXED);

	if (was && now - was < every_ms)
		return false;
	return __atomic_compare_exchange_n(last, &was, now, false,
					   __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

bool kit_has_ctl(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

static bool kit_loopback(const char *brief)
{
	return !strncmp(brief, "http://127.", 11) ||
	       !strncmp(brief, "http://localhost", 16) ||
	       !strncmp(brief, "http://[::1]", 12);
}

int kit_opt_url(const char *opt, const char *s, const char *what, char **out,
		struct err *e)
{
	size_t len = strlen(s);
	char brief[512];

	*out = NULL;
	if ((strncasecmp(s, "http://", 7) && strncasecmp(s, "https://", 8)) ||
	    strchr(s, '?') || strchr(s, '#') || kit_has_ctl(s, len))
		return err_set(e, ERR_INVALID,
			       "option %s: '%s' is not an http:// or https:// URL",
			       opt, s);
	http_url_brief(s, brief, sizeof(brief));
	if (!strcmp(brief, "?"))
		return err_set(e, ERR_INVALID,
			       "option %s: '%s' is not a valid URL", opt, s);
	*out = strdup(s);
	if (!*out)
		return err_oom(e);
	while (len > 0 && (*out)[len - 1] == '/')
		(*out)[--len] = '\0';
	if (!strncasecmp(s, "http://", 7) && !kit_loopback(brief))
		log_warn("%s: %s %s is plain http: credentials and secrets travel unencrypted",
			 what, opt, brief);
	return 0;
}

int kit_opt_directory(const struct provider_conf *conf, size_t locator_max,
		      char **out, struct err *e)
{
	const char *dir = conf_opt_get(conf, "directory");
	size_t len;

	*out = NULL;
	if (!dir || !dir[0])
		return err_set(e, ERR_INVALID, "option directory is required");
	if (dir[0] != '/')
		return err_set(e, ERR_INVALID,
			       "option directory: %s is not an absolute path", dir);
	len = strlen(dir);
	if (len + locator_max + 64 > PATH_MAX)
		return err_set(e, ERR_INVALID, "directory %s: path too long",
			       dir);
	*out = strdup(dir);
	if (!*out)
		return err_oom(e);
	/* "/srv/store/" and "/srv/store" name one store */
	while (len > 1 && (*out)[len - 1] == '/')
		(*out)[--len] = '\0';
	return 0;
}

int kit_opt_tls(const struct provider_conf *conf, const struct kit_tls_env *env,
		const char *what, struct http_client_conf *hc, struct err *e)
{
	static const char *const opts[] = { "ca_file", "ca_path", "client_cert",
					    "client_key" };
	const char *envs[] = { env ? env->ca_file : NULL,
			       env ? env->ca_path : NULL,
			       env ? env->client_cert : NULL,
			       env ? env->client_key : NULL };
	const char **dst[] = { &hc->ca_file, &hc->ca_path, &hc->client_cert,
			       &hc->client_key };
	bool insecure;

	for (size_t i = 0; i < 4; i++) {
		const char *s = kit_opt(conf, opts[i], envs[i], NULL);

		*dst[i] = s;
		if (s && access(s, R_OK) < 0)
			return err_set(e, ERR_INVALID, "option %s: %s: %s",
				       opts[i], s, strerror(errno));
	}
	if (kit_opt_bool(conf, "tls_skip_verify", false, &insecure, e) < 0)
		return -1;
	hc->insecure = insecure;
	if (insecure)
		log_warn("%s: tls_skip_verify = true: the server's certificate is NOT verified; anyone on the network path can pose as the server and take the credentials and secrets",
			 what);
	return 0;
}

/* ---- form bodies ---- */

int kit_form_add(struct secbuf *b, const char *key, const char *val,
		 size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;

	if (b->len)
		rc |= secbuf_putc(b, '&');
	rc |= secbuf_puts(b, key);
	rc |= secbuf_putc(b, '=');
	for (size_t i = 0; i < len && rc == 0; i++) {
		unsigned char c = (unsigned char)val[i];

		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
			rc |= secbuf_putc(b, (char)c);
		} else {
			char esc[3] = { '%', hex[c >> 4], hex[c & 15] };

			rc |= secbuf_append(b, esc, 3);
		}
	}
	return rc ? -1 : 0;
}

/* ---- stored values ---- */

/* Keys that all make map keys: no NUL bytes, and not just "" (which would
 * read as a single value). */
static bool kit_object_usable(json_t *obj)
{
	const char *key;
	json_t *val;

	if (json_object_size(obj) == 1 && json_object_get(obj, ""))
		return false;
	json_object_foreach(obj, key, val) {
		if (json_object_iter_key_len(json_object_key_to_iter(key)) !=
		    strlen(key))
			return false;
	}
	return true;
}

int kit_value_map(const char *s, size_t len, const char *what,
		  struct kvmap *m, json_t **obj, struct err *e)
{
	json_error_t jerr;
	json_t *j = json_loadb(s, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
			       &jerr);
	int rc;

	/* jerr.text may quote the secret */
	sodium_memzero(&jerr, sizeof(jerr));
	if (json_is_object(j) && kit_object_usable(j)) {
		rc = http_json_to_map(j, m, what, e);
		if (rc == 0 && obj)
			*obj = json_incref(j);
	} else {
		rc = kvmap_set(m, "", s, len) < 0 ? err_oom(e) : 0;
	}
	json_decref(j);
	return rc;
}

/* ---- credential files ---- */

/* Credentials readable by group or others are refused, like ssh does. */
static int kit_perm_check(const char *path, const struct stat *st,
			  unsigned flags, struct err *e)
{
	if (!S_ISREG(st->st_mode))
		return err_set(e, ERR_INVALID, "%s: not a regular file", path);
	if ((flags & KIT_FILE_PRIVATE) && (st->st_mode & 077))
		return err_set(e, ERR_INVALID,
			       "%s: holds a credential but is readable by group or others (mode %04o); chmod 600 it",
			       path, (unsigned)(st->st_mode & 07777));
	return 0;
}

int kit_file_check(const char *opt, const char *path, unsigned flags,
		   struct err *e)
{
	struct stat st;

	if (path[0] != '/')
		return err_set(e, ERR_INVALID,
			       "option %s: %s must be an absolute path", opt,
			       path);
	if (stat(path, &st) < 0)
		return err_set(e, ERR_INVALID, "option %s: %s: %s", opt, path,
			       strerror(errno));
	if (kit_perm_check(path, &st, flags, e) < 0)
		return err_prefix(e, "option %s: ", opt);
	return 0;
}

static int kit_fd_read(int fd, const char *path, unsigned flags, size_t max,
		       struct secbuf *out, struct stat *st, struct err *e)
{
	if (fstat(fd, st) < 0)
		return err_set(e, ERR_ACCESS, "%s: %s", path, strerror(errno));
	if (kit_perm_check(path, st, flags, e) < 0) {
		e->code = ERR_ACCESS;
		return -1;
	}
	if (secbuf_read_fd(out, fd, max) < 0)
		return errno == EFBIG ?
			err_set(e, ERR_ACCESS, "%s: larger than %zu bytes", path, max) :
			err_set(e, ERR_ACCESS, "%s: %s", path, strerror(errno));
	if (flags & KIT_FILE_TRIM)
		secbuf_trim(out);
	if ((flags & KIT_FILE_TRIM) && out->len == 0)
		return err_set(e, ERR_ACCESS, "%s: empty", path);
	return 1;
}

int kit_file_read(const char *path, unsigned flags, size_t max,
		  struct secbuf *out, struct stat *st, struct err *e)
{
	/* O_NONBLOCK: a FIFO named here is refused, not waited on */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	struct stat own;
	int rc;

	secbuf_clear(out);
	if (fd < 0 && errno == ENOENT && (flags & KIT_FILE_OPTIONAL))
		return 0;
	if (fd < 0)
		return err_set(e, ERR_ACCESS, "%s: %s", path, strerror(errno));
	rc = kit_fd_read(fd, path, flags, max, out, st ? st : &own, e);
	close(fd);
	if (rc < 0)
		secbuf_clear(out);
	return rc;
}

/* ---- local folders (file, dir, dotenvx) ---- */

static bool kit_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool kit_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > KIT_NAME_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!kit_name_char(s[i]))
			return false;
	return true;
}

bool kit_temp_name(const char *name, const char *suffix)
{
	size_t len = strlen(name), slen = strlen(suffix);
	const char *hex, *stem = name + 1;

	/* "." STEM SUFFIX "." HEX */
	if (len < 1 + 1 + slen + 1 + KIT_TEMP_HEX || name[0] != '.')
		return false;
	hex = name + len - KIT_TEMP_HEX;
	if (hex[-1] != '.' || memcmp(hex - 1 - slen, suffix, slen))
		return false;
	/* a name the store could have written: never Kubernetes' ..data */
	if (!kit_name_valid(stem, (size_t)(hex - 1 - slen - stem)))
		return false;
	for (const char *c = hex; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

enum err_code kit_io_code(int err)
{
	if (err == ENOSPC)
		return ERR_NOSPACE;
	if (err == EDQUOT)
		return ERR_QUOTA;
	return ERR_IO;
}

int kit_mkdirs(const char *path, struct err *e)
{
	char *buf = strdup(path);
	int rc = 0;

	if (!buf)
		return err_oom(e);
	for (char *s = buf + 1;; s++) {
		char c = *s;

		if (c != '/' && c != '\0')
			continue;
		*s = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
			rc = err_set(e, kit_io_code(errno), "%s: %s", buf,
				     strerror(errno));
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(buf);
	return rc;
}

/* Open folder seg of fd (made first with create), no link followed: the
 * new fd, or -1 with errno (ELOOP for a symbolic link). */
static int kit_subdir(int fd, const char *seg, bool create)
{
	struct stat st;
	int sub, err;

	if (create && mkdirat(fd, seg, 0700) < 0 && errno != EEXIST)
		return -1;
	sub = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	err = errno;
	/* O_DIRECTORY tells a symbolic link by ENOTDIR */
	if (sub < 0 && err == ENOTDIR &&
	    fstatat(fd, seg, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		err = ELOOP;
	errno = err;
	return sub;
}

static int kit_dir_err(const char *dir, const char *rel, int err,
		       struct err *e)
{
	const char *sep = rel[0] ? "/" : "";

	if (err == ENOENT || err == ENOTDIR)
		return err_set(e, ERR_NOTFOUND, "%s%s%s: no such folder", dir,
			       sep, rel);
	if (err == ELOOP)
		return err_set(e, ERR_ACCESS,
			       "%s%s%s: a symbolic link in the store's folder (refused)",
			       dir, sep, rel);
	return err_set(e, kit_io_code(err), "%s%s%s: %s", dir, sep, rel,
		       strerror(err));
}

int kit_dir_beneath(const char *dir, const char *rel, bool create,
		    struct err *e)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char seg[NAME_MAX + 1];

	if (fd < 0 && errno == ENOENT && create) {
		if (kit_mkdirs(dir, e) < 0)
			return -1;
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	for (const char *s = rel; fd >= 0 && *s;) {
		size_t len = strcspn(s, "/");
		int sub, err;

		if (len > NAME_MAX) {
			close(fd);
			errno = ENAMETOOLONG;
			return kit_dir_err(dir, rel, errno, e);
		}
		memcpy(seg, s, len);
		seg[len] = '\0';
		sub = kit_subdir(fd, seg, create);
		err = errno;
		close(fd);
		errno = err;
		fd = sub;
		s += len + (s[len] == '/');
	}
	return fd >= 0 ? fd : kit_dir_err(dir, rel, errno, e);
}

int kit_dir_lock(const char *dir, const char *rel, bool create, int how,
		 struct err *e)
{
	int dfd = kit_dir_beneath(dir, rel, create, e);

	if (dfd >= 0 && kit_flock(dfd, how, dir, e) < 0) {
		close(dfd);
		return -1;
	}
	return dfd;
}

int kit_flock(int fd, int how, const char *path, struct err *e)
{
	while (flock(fd, how) < 0)
		if (errno != EINTR)
			return err_set(e, ERR_IO, "%s: lock: %s", path,
				       strerror(errno));
	return 0;
}

/* Open name in dfd for reading, a regular file and no link: 1 (*fd), 0
 * missing, -1. */
static int kit_entry_open(int dfd, const char *name, const char *path,
			  int *fd, struct err *e)
{
	struct stat st;

	*fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		     O_CLOEXEC | O_NOCTTY);
	if (*fd < 0 && (errno == ENOENT || errno == ENOTDIR))
		return 0;
	if (*fd < 0 && errno == ELOOP)
		return err_set(e, ERR_ACCESS,
			       "%s: a symbolic link in the store's folder (refused)",
			       path);
	if (*fd < 0)
		return err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
	if (fstat(*fd, &st) < 0)
		err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
	else if (S_ISREG(st.st_mode))
		return 1;
	else	/* a FIFO, a device: never a store's file */
		err_set(e, ERR_IO, "%s: not a regular file (refused)", path);
	close(*fd);
	*fd = -1;
	return -1;
}

int kit_entry_read(int dfd, const char *name, const char *path, size_t max,
		   struct secbuf *out, struct err *e)
{
	int fd, rc = kit_entry_open(dfd, name, path, &fd, e);

	secbuf_clear(out);
	if (rc <= 0)
		return rc;
	if (secbuf_read_fd(out, fd, max) < 0) {
		rc = errno == EFBIG ?
			err_set(e, ERR_TOOBIG, "%s: larger than %zu bytes", path, max) :
			err_set(e, errno == ENOMEM ? ERR_NOMEM : ERR_IO, "%s: %s",
				path, strerror(errno));
		secbuf_clear(out);
	}
	close(fd);
	return rc;
}

static int kit_write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		data += n;
		len -= n;
	}
	return 0;
}

/* Create ".NAME.<random>" in dfd; its name goes to tmp. */
static int kit_temp_open(int dfd, const char *path, const char *name,
			 char *tmp, size_t size, struct err *e)
{
	for (int tries = 0; tries < 16; tries++) {
		unsigned char r[KIT_TEMP_HEX / 2];
		char hex[KIT_TEMP_HEX + 1];
		int fd;

		randombytes_buf(r, sizeof(r));
		sodium_bin2hex(hex, sizeof(hex), r, sizeof(r));
		snprintf(tmp, size, ".%s.%s", name, hex);
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			    O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			break;
	}
	return err_set(e, kit_io_code(errno), "%s: temporary file: %s", path,
		       strerror(errno));
}

int kit_file_replace(int dfd, const char *path, const char *name,
		     const char *data, size_t len, struct err *e)
{
	char tmp[NAME_MAX + 1];
	int fd = kit_temp_open(dfd, path, name, tmp, sizeof(tmp), e);

	if (fd < 0)
		return -1;
	/* a full disk may show at write, fsync or close: each is passed on */
	if (kit_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		err_set(e, kit_io_code(errno), "%s/%s: %s", path, tmp,
			strerror(errno));
		close(fd);
		goto fail;
	}
	if (close(fd) < 0) {
		err_set(e, kit_io_code(errno), "%s/%s: %s", path, tmp,
			strerror(errno));
		goto fail;
	}
	if (renameat(dfd, tmp, dfd, name) < 0) {
		err_set(e, kit_io_code(errno), "%s/%s: rename: %s", path, name,
			strerror(errno));
		goto fail;
	}
	if (fsync(dfd) < 0)
		return err_set(e, kit_io_code(errno), "%s: %s", path,
			       strerror(errno));
	return 0;
fail:
	unlinkat(dfd, tmp, 0);
	return -1;
}

/* What a sweep of one store's folder looks for, and how far. */
struct kit_sweep {
	const char *suffix;	/* kit_temp_name's */
	int max_depth;		/* the deepest folder swept, dir being 0 */
	unsigned removed;
};

static void kit_sweep_dir(struct kit_sweep *s, const char *path, int dfd,
			  int depth);

/* One name in a folder being swept (dfd, at path): a temporary of ours
 * is removed, a folder the store may write in is swept in turn, nothing
 * else is touched (no link is followed, nothing is opened but folders). */
static void kit_sweep_name(struct kit_sweep *s, const char *path, int dfd,
			   const struct dirent *de, int depth)
{
	const char *name = de->d_name;
	struct stat st;
	char *sub;
	int fd;

	/* a store holds mostly its own files: no stat for those */
	if (name[0] != '.' && de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
		return;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (S_ISREG(st.st_mode) && kit_temp_name(name, s->suffix)) {
		if (unlinkat(dfd, name, 0) == 0)
			s->removed++;
		else
			log_warn("%s/%s: stale temporary file: %s", path, name,
				 strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode) || depth >= s->max_depth ||
	    !kit_name_valid(name, strlen(name)))
		return;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (asprintf(&sub, "%s/%s", path, name) < 0) {
		close(fd);
		return;
	}
	kit_sweep_dir(s, sub, fd, depth + 1);
	free(sub);
}

/* Sweep folder path (dfd, consumed) and below under its write lock, the
 * one writers hold from temporary to rename: another process's write in
 * flight keeps its temporary. */
static void kit_sweep_dir(struct kit_sweep *s, const char *path, int dfd,
			  int depth)
{
	struct err e = { ERR_OK, "" };
	DIR *d;

	if (kit_flock(dfd, LOCK_EX, path, &e) < 0 || !(d = fdopendir(dfd))) {
		log_warn("%s: not swept for stale temporary files: %s", path,
			 e.code ? e.msg : strerror(errno));
		close(dfd);
		return;
	}
	for (struct dirent *de; (de = readdir(d));)
		kit_sweep_name(s, path, dirfd(d), de, depth);
	closedir(d);	/* and with it the lock */
}

void kit_temp_sweep(const char *provider, const char *dir,
		    const char *suffix, int max_depth)
{
	struct kit_sweep s = { .suffix = suffix, .max_depth = max_depth };
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return;	/* missing: nothing to sweep; else the reads say */
	kit_sweep_dir(&s, dir, dfd, 0);
	if (s.removed)
		log_info("provider %s: removed %u temporary file(s) of interrupted writes under %s",
			 provider, s.removed, dir);
}

int kit_version_check(const char *locator, const char *expect,
		      const char *current, struct err *e)
{
	const char *why = "changed since it was read";

	if (expect == PROVIDER_EXPECT_ANY || !strcmp(expect, current))
		return 0;
	if (!expect[0])
		why = "already exists";
	else if (!current[0])
		why = "removed since it was read";
	return err_set(e, ERR_CONFLICT, "%s: %s", locator, why);
}

int kit_path_make(const char *dir, const char *locator, const char *suffix,
		  struct kit_path *p, struct err *e)
{
	const char *sep = strcmp(dir, "/") ? "/" : "";
	const char *slash;

	p->parent = p->rel = NULL;
	if (asprintf(&p->file, "%s%s%s%s", dir, sep, locator, suffix) < 0) {
		p->file = NULL;
		return err_oom(e);
	}
	slash = strrchr(locator, '/');
	p->rel = slash ? strndup(locator, slash - locator) : strdup("");
	if (!p->rel)
		return err_oom(e);
	slash = strrchr(p->file, '/');
	p->base = slash + 1;
	p->parent = slash == p->file ? strdup("/") :
		strndup(p->file, slash - p->file);
	return p->parent ? 0 : err_oom(e);
}

void kit_path_free(struct kit_path *p)
{
	free(p->file);
	free(p->parent);
	free(p->rel);
	p->file = p->parent = p->rel = NULL;
}

void kit_bytes_version(const struct secbuf *b,
		       char version[PROVIDER_VERSION_MAX])
{
	unsigned char h[16];

	crypto_generichash(h, sizeof(h), (const unsigned char *)b->data,
			   b->len, NULL, 0);
	secmem_stack_wipe();	/* BLAKE2b's frames held the file's bytes */
	sodium_bin2hex(version, PROVIDER_VERSION_MAX, h, sizeof(h));
}

int kit_dotenv_entry(const struct secbuf *text, const char *file,
		     struct entry *out, struct err *e)
{
	if (dotenv_parse(text->data, text->len, &out->map, e) < 0) {
		/* a broken file is the store's fault, not the caller's */
		if (e->code == ERR_INVALID)
			e->code = ERR_PROVIDER;
		err_prefix(e, "%s: ", file);
		return -1;
	}
	kit_bytes_version(text, out->version);
	return 0;
}

int kit_dotenv_check(const char *locator, const struct kvmap *m,
		     struct err *e)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct kv *kv = &m->items[i];

		if (!dotenv_key_valid(kv->key))
			return err_set(e, ERR_INVALID,
				       "%s: key %s is not a valid variable name",
				       locator, kv->key);
		if (memchr(kv->val, '\0', kv->len))
			return err_set(e, ERR_INVALID,
				       "%s: value of %s holds a NUL byte",
				       locator, kv->key);
	}
	return 0;
}

void kit_map_version(const struct kvmap *m, char version[PROVIDER_VERSION_MAX])
{
	crypto_generichash_state st;
	unsigned char h[16];

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	for (size_t i = 0; i < m->n; i++) {
		const struct kv *kv = &m->items[i];
		uint64_t len = kv->len;

		/* key, NUL, length, value: no two maps hash the same input */
		crypto_generichash_update(&st, (const unsigned char *)kv->key,
					  strlen(kv->key) + 1);
		crypto_generichash_update(&st, (const unsigned char *)&len,
					  sizeof(len));
		crypto_generichash_update(&st, (const unsigned char *)kv->val,
					  kv->len);
	}
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_memzero(&st, sizeof(st));
	secmem_stack_wipe();
	sodium_bin2hex(version, PROVIDER_VERSION_MAX, h, sizeof(h));
}

/* ---- reference parameters ---- */

void kit_params_free(struct kit_param *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].value);
		p[i].value = NULL;
	}
}

static struct kit_param *kit_param_find(struct kit_param *p, size_t n,
					const char *key, size_t klen)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(p[i].name) == klen && !strncmp(p[i].name, key, klen))
			return &p[i];
	return NULL;
}

/* One key=value of len bytes at s. */
static int kit_param_one(const char *s, size_t len, struct kit_param *p,
			 size_t n, const char *usage, struct err *e)
{
	size_t klen = strcspn(s, "=");
	struct kit_param *slot;

	if (klen >= len)
		return err_set(e, ERR_INVALID,
			       "parameter '%.*s' has no value (%s)", (int)len,
			       s, usage);
	slot = kit_param_find(p, n, s, klen);
	if (!slot)
		return err_set(e, ERR_INVALID,
			       "unknown parameter '%.*s' (%s)", (int)klen, s,
			       usage);
	if (slot->value)
		return err_set(e, ERR_INVALID, "parameter '%s' given twice",
			       slot->name);
	switch (pct_decode(s + klen + 1, len - klen - 1, &slot->value, NULL)) {
	case PCT_OK:
		return 0;
	case PCT_NOMEM:
		return err_oom(e);
	default:
		return err_set(e, ERR_INVALID, "parameter '%s': bad %% escape",
			       slot->name);
	}
}

int kit_params_parse(const char *params, struct kit_param *p, size_t n,
		     const char *usage, struct err *e)
{
	const char *s = params;

	for (size_t i = 0; i < n; i++)
		p[i].value = NULL;
	while (s && *s) {
		size_t len = strcspn(s, "&");

		if (kit_param_one(s, len, p, n, usage, e) < 0) {
			kit_params_free(p, n);
			return -1;
		}
		s += len;
		if (*s == '&')
			s++;
	}
	return 0;
}

/* ---- OAuth tokens ---- */

void kit_text_clean(const char *s, char *out, size_t size)
{
	size_t n = 0;

	for (; s && *s && *s != '\r' && *s != '\n' && n + 1 < size &&
	     n < KIT_TEXT_MAX; s++)
		if ((unsigned char)*s >= 0x20 && *s != 0x7f)
			out[n++] = *s;
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

time_t kit_refresh_at(time_t now, time_t expires)
{
	time_t left = expires - now;

	if (left <= 0)
		return now;
	if (left > 2 * KIT_REFRESH_MARGIN_S)
		return expires - KIT_REFRESH_MARGIN_S;
	return now + left / 2;
}

/* A JSON number or a string of digits, as seconds; -1 otherwise. */
static long long kit_seconds(json_t *j)
{
	const char *s = json_string_value(j);
	char *end;
	long long v;

	if (json_is_integer(j))
		return json_integer_value(j);
	if (json_is_real(j))
		return (long long)json_real_value(j);
	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	v = strtoll(s, &end, 10);
	return *end ? -1 : v;
}

/* The error of a non-200 token answer. */
static int kit_token_error(const struct http_response *rs, json_t *root,
			   const char *what, struct err *e)
{
	const char *code = json_string_value(json_object_get(root, "error"));
	const char *desc = json_string_value(json_object_get(root,
							     "error_description"));
	enum err_code ec = rs->status == 429 || rs->status >= 500 ?
		ERR_PROVIDER : ERR_ACCESS;
	char c[64], d[KIT_TEXT_MAX + 8];

	if (!desc)
		desc = json_string_value(json_object_get(root, "message"));
	kit_text_clean(code, c, sizeof(c));
	kit_text_clean(desc, d, sizeof(d));
	if (c[0] || d[0])
		return err_set(e, ec, "%s: token request refused (HTTP %ld): %s%s%s",
			       what, rs->status, c, c[0] && d[0] ? ": " : "", d);
	return err_set(e, ec, "%s: token request refused: HTTP %ld (%s)", what,
		       rs->status, http_status_text(rs->status));
}

int kit_token_parse(const struct http_response *rs, const char *what,
		   time_t now, struct secbuf *tok, time_t *expires,
		   struct err *e)
{
	json_t *root = http_json_parse(rs);
	json_t *at = json_object_get(root, "access_token");
	long long in = kit_seconds(json_object_get(root, "expires_in"));
	long long on = kit_seconds(json_object_get(root, "expires_on"));
	int rc = -1;

	secbuf_clear(tok);
	if (rs->status != 200) {
		rc = kit_token_error(rs, root, what, e);
		goto out;
	}
	if (!json_is_object(root) || !json_is_string(at) ||
	    json_string_length(at) == 0 ||
	    json_string_length(at) > KIT_TOKEN_MAX ||
	    kit_has_ctl(json_string_value(at), json_string_length(at)) ||
	    strchr(json_string_value(at), ' ')) {
		err_set(e, ERR_PROVIDER, "garbage from %s: no access_token",
			what);
		goto out;
	}
	if (in < 0 && on <= 0) {
		err_set(e, ERR_PROVIDER,
			"garbage from %s: neither expires_in nor expires_on",
			what);
		goto out;
	}
	*expires = in >= 0 ? now + (time_t)in : (time_t)on;
	if (secbuf_set(tok, json_string_value(at), json_string_length(at)) < 0) {
		err_oom(e);
		goto out;
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

void kit_token_init(struct kit_token *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
}

void kit_token_destroy(struct kit_token *t)
{
	secbuf_free(&t->token);
	pthread_mutex_destroy(&t->lock);
}

/* A new token into the cache (lock held). */
static int kit_token_fetch(struct kit_token *t, const char *key,
			   kit_token_fetch_fn fetch, void *ctx,
			   int64_t deadline, const char *what, struct err *e)
{
	struct secbuf tok = SECBUF_INIT;
	time_t expires = 0, now;

	if (fetch(ctx, deadline, &tok, &expires, e) < 0) {
		secbuf_free(&tok);
		return -1;
	}
	now = time(NULL);
	secbuf_free(&t->token);
	t->token = tok;
	snprintf(t->key, sizeof(t->key), "%s", key);
	t->expires = expires;
	t->refresh_at = kit_refresh_at(now, expires);
	t->gen++;
	t->backoff_ms = 0;
	t->retry_ms = 0;
	log_debug("%s: new token, valid %lld s", what,
		  (long long)(expires - now));
	return 0;
}

/* A fresh token for key in the cache (lock held); a failed refresh of a
 * token still good keeps it. */
static int kit_token_update(struct kit_token *t, const char *key,
			    kit_token_fetch_fn fetch, void *ctx,
			    int64_t deadline, const char *what, struct err *e)
{
	time_t now = time(NULL);
	bool usable = t->token.len && !strcmp(t->key, key) &&
		now < t->expires - KIT_TOKEN_SLACK_S;
	int64_t mono = clock_now_ms();

	if (usable && now < t->refresh_at)
		return 0;
	if (mono < t->retry_ms) {
		if (usable)
			return 0;
		*e = t->last_err;
		return err_prefix(e, "(next attempt in %" PRId64 " s) ",
				  (t->retry_ms - mono + 999) / 1000);
	}
	if (kit_token_fetch(t, key, fetch, ctx, deadline, what, e) == 0)
		return 0;
	t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 :
		KIT_TOKEN_BACKOFF_MIN_MS;
	if (t->backoff_ms > KIT_TOKEN_BACKOFF_MAX_MS)
		t->backoff_ms = KIT_TOKEN_BACKOFF_MAX_MS;
	t->retry_ms = clock_now_ms() + t->backoff_ms;
	t->last_err = *e;
	if (usable) {
		log_warn("%s: refreshing the token failed: %s; using the current one until it expires",
			 what, e->msg);
		err_clear(e);
		return 0;
	}
	return -1;
}

int kit_token_get(struct kit_token *t, const char *key, kit_token_fetch_fn fetch,
		  void *ctx, int64_t deadline, const char *what,
		  struct secbuf *out, uint64_t *gen, struct err *e)
{
	int rc;

	secbuf_clear(out);
	pthread_mutex_lock(&t->lock);
	rc = kit_token_update(t, key, fetch, ctx, deadline, what, e);
	if (rc == 0 && secbuf_set(out, t->token.data, t->token.len) < 0)
		rc = err_oom(e);
	*gen = t->gen;
	pthread_mutex_unlock(&t->lock);
	return rc;
}

bool kit_token_reject(struct kit_token *t, uint64_t gen)
{
	bool retry = true;

	pthread_mutex_lock(&t->lock);
	if (gen == t->gen && t->token.len) {
		secbuf_free(&t->token);
		t->gen++;
		t->retry_ms = 0;
	} else if (gen == t->gen) {
		retry = false;
	}
	pthread_mutex_unlock(&t->lock);
	return retry;
}

/* ---- stores without compare-and-set ---- */

static bool kit_kv_same(const struct kv *a, const struct kv *b)
{
	if (!a || !b)
		return a == b;
	return a->len == b->len && !memcmp(a->val, b->val, a->len);
}

bool kit_changes_kept(const struct kvmap *prev, const struct kvmap *mine,
		      const struct kvmap *now)
{
	for (size_t i = 0; i < mine->n; i++) {
		const struct kv *kv = &mine->items[i];

		if (!kit_kv_same(kvmap_get(prev, kv->key), kv) &&
		    !kit_kv_same(kvmap_get(now, kv->key), kv))
			return false;
	}
	for (size_t i = 0; i < prev->n; i++) {
		const char *key = prev->items[i].key;

		if (!kvmap_get(mine, key) && kvmap_get(now, key))
			return false;
	}
	return true;
}

/* The entry must still be what the caller's change is based on. */
static int kit_expect_check(const char *what, const char *expect, bool exists,
			    const char *version, struct err *e)
{
	if (!expect)
		return 0;
	if (!expect[0] && exists)
		return err_set(e, ERR_CONFLICT, "%s: already exists", what);
	if (expect[0] && (!exists || strcmp(expect, version)))
		return err_set(e, ERR_CONFLICT, "%s: changed since it was read",
			       what);
	return 0;
}

/* Wait a little before reading back: another writer who read the entry
 * before our write and writes after it needs about a round trip (read
 * answer, then its write) to land, and the read-back should see it. Twice
 * what our write took, within bounds, and leaving half the budget for the
 * read-back itself: a narrower window, not a closed one. */
static void kit_settle(const struct kit_nocas *s, int64_t write_ms)
{
	int64_t wait = 2 * write_ms, left;

	if (wait < KIT_SETTLE_MIN_MS)
		wait = KIT_SETTLE_MIN_MS;
	if (wait > KIT_SETTLE_MAX_MS)
		wait = KIT_SETTLE_MAX_MS;
	left = (s->deadline_ms - clock_now_ms()) / 2;
	if (wait > left)
		wait = left;
	if (wait > 0)
		clock_sleep_ms((long)wait);
}

/* Read back after writing version on top of prev. */
static int kit_check_race(const struct kit_nocas *s, const struct kvmap *prev,
			  const struct kvmap *mine, const char *version,
			  struct err *e)
{
	struct entry now = ENTRY_INIT;
	struct err e2;
	int rc = s->read(s->ctx, &now, &e2);
	bool lost = rc == 0 && strcmp(now.version, version) &&
		!kit_changes_kept(prev, mine, &now.map);

	if (rc == 0 && !lost && strcmp(now.version, version))
		log_debug("%s: another writer came after us and kept our change",
			  s->what);
	entry_free(&now);
	if (rc < 0) {
		/* the write itself stands */
		log_debug("%s: reading back after the write failed: %s",
			  s->what, e2.msg);
		return 0;
	}
	if (lost)
		return err_set(e, ERR_CONFLICT,
			       "%s: lost a race with another writer (the store has no compare-and-set)",
			       s->what);
	return 0;
}

/* Update the existing entry; *gone when it was deleted meanwhile and may
 * be created instead. */
static int kit_update(const struct kit_nocas *s, const struct kvmap *prev,
		      const struct kvmap *m, const char *expect,
		      char version[PROVIDER_VERSION_MAX], bool *gone,
		      struct err *e)
{
	int64_t t0 = clock_now_ms();
	int rc = s->write(s->ctx, m, false, version, e);

	*gone = false;
	if (rc < 0 && e->code == ERR_NOTFOUND && !(expect && expect[0])) {
		err_clear(e);
		*gone = true;
		return 0;
	}
	if (rc < 0)
		return -1;
	kit_settle(s, clock_now_ms() - t0);
	return kit_check_race(s, prev, m, version, e);
}

int kit_store_nocas(const struct kit_nocas *s, const struct kvmap *m,
		    const char *expect, char new_version[PROVIDER_VERSION_MAX],
		    struct err *e)
{
	char version[PROVIDER_VERSION_MAX] = "";
	struct entry prev = ENTRY_INIT;
	bool exists = true;
	int rc;

	err_clear(e);
	rc = s->read(s->ctx, &prev, e);
	if (rc < 0 && e->code == ERR_NOTFOUND) {
		err_clear(e);
		exists = false;
		rc = 0;
	}
	if (rc == 0)
		rc = kit_expect_check(s->what, expect, exists, prev.version, e);
	if (rc == 0 && exists) {
		bool gone;

		rc = kit_update(s, &prev.map, m, expect, version, &gone, e);
		exists = !gone;
	}
	if (rc == 0 && !exists)
		rc = s->write(s->ctx, m, true, version, e);
	if (rc == 0 && new_version)
		memcpy(new_version, version, PROVIDER_VERSION_MAX);
	entry_free(&prev);
	return rc;
}
