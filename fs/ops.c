/* ops.c - the FUSE low-level adapter: decode a request, call the core,
 * map its struct err to an errno, reply. Nothing here needs more than
 * that, but keeping the kernel's caches right (the invalidation thread),
 * building struct stat, and wiping worker stacks after requests that
 * touched values.
 *
 * The core it calls: fs/node.c (inode numbers: 1 the root, then the app
 * folders, then one per (app, file name) ever looked up, kept for the
 * life of the mount), fs/edit.c (open files, writes and their commit,
 * renames, editors' scratch files), fs/reader.c (read-only opens and
 * the page cache), fs/xattr.c (user.secretfs.*), and
 * fs/app.c (what a file shows). Apps are named by slot (fs/edit.h): a
 * reload (ops_reload, at the end) swaps the configuration while every
 * request is held off by reload_lock, which each table entry takes.
 *
 * Reads: open() takes a snapshot of the file, so a reader sees one version
 * from open to close. A .env's is built once per change and kept sealed
 * per inode (fs/snap.h): a read-only open while its sources stay cached
 * fresh and unchanged takes that one (fs/reader.c). With the kernel
 * cache (the default) a read-only open reads through the page cache,
 * which the open files reading through it fill from their snapshots:
 * fs/node.h lets only opens of one version at a time share it, and an
 * open of another version is direct_io until they are closed. Writers,
 * scratch files and every file under -o kernel_cache=no are direct_io.
 * A read-only mount with the kernel cache gets no opens at all
 * (ops_init): a read(2) there is one version, and st_blksize covers the
 * file so that stdio reads it in one.
 * Writes: buffered per open file, committed on flush (close) or fsync, so
 * close() reports whether the store took the change.
 */
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>	/* RENAME_* */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "../base/clock.h"
#include "../base/log.h"
#include "reader.h"
#include "xattr.h"

#define OPS_ROOT_INO FUSE_ROOT_ID
#define OPS_DIR_TIMEOUT 1.0	/* apps change only by a reload, which invalidates */

_Static_assert(FUSE_ROOT_ID == NODE_ROOT_INO, "fs/node.h numbers FUSE's root");

/* ---- inodes ---- */

static struct ops_fs *ops_fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Is ino the folder of a configured app? Its slot into *slot when it is
 * (a folder a reload removed is no folder any more). */
static bool ops_slot(const struct ops_fs *ofs, fuse_ino_t ino, size_t *slot)
{
	return node_app_dir(&ofs->nodes, ino, slot) && edit_app(&ofs->edit, *slot);
}

/* The config of app folder ino; NULL when ino is no app folder. */
static const struct app_conf *ops_app(const struct ops_fs *ofs, fuse_ino_t ino)
{
	size_t slot;

	return ops_slot(ofs, ino, &slot) ? edit_app(&ofs->edit, slot) : NULL;
}

static bool ops_is_app(const struct ops_fs *ofs, fuse_ino_t ino)
{
	return ops_app(ofs, ino) != NULL;
}

/* The config of slot's app; the slot is one a request found configured,
 * which it stays until the request ends (reloads wait for requests). */
static const struct app_conf *ops_conf(const struct ops_fs *ofs, size_t slot)
{
	return edit_app(&ofs->edit, slot);
}

/* The file node of ino, while its app is configured. */
static struct node *ops_node(struct ops_fs *ofs, fuse_ino_t ino)
{
	struct node *n = node_find(&ofs->nodes, ino);

	return n && ops_conf(ofs, n->app) ? n : NULL;
}

/* ---- keeping the kernel's cache right ----
 *
 * With kernel_cache (the default) the kernel keeps file pages across opens
 * and attributes for OPS_CACHE_TIMEOUT; the daemon keeps them right: every
 * open and getattr compares what it serves with what the kernel was shown
 * (a hash), and a change - found there, by the cache's refresher, or made
 * by a write - updates mtime and is invalidated by a separate thread
 * (never inside a request handler: the kernel may hold the inode's lock).
 * Nothing changed: nothing is touched. */

#define OPS_CACHE_TIMEOUT 3600.0

/* How long the kernel may keep a file's attributes: long, since every
 * change we learn of invalidates them (with kernel_cache=no too: sizes
 * must stay exact, pages are not kept anyway). Without opens (a read-only
 * mount), the kernel asks again after the app's ttl, and that getattr is
 * what revalidates the value (FUSE_CAP_AUTO_INVAL_DATA drops the pages
 * when it changed) and keeps the refresher interested. */
static double ops_attr_timeout(const struct ops_fs *ofs, size_t app)
{
	if (ofs->no_open)
		return ops_conf(ofs, app)->ttl_ms / 1000.0;
	return OPS_CACHE_TIMEOUT;
}

/* A queue longer than this means the thread is far behind: invalidating
 * every file is then as good, and costs no memory. */
#define OPS_INVAL_MAX ((size_t)1 << 20)

/* Double the queue; false, with the old queue and cap kept, when it
 * cannot grow. */
static bool ops_inval_grow(struct ops_inval *iv)
{
	size_t cap = iv->cap ? iv->cap * 2 : 64;
	fuse_ino_t *q;

	if (cap > OPS_INVAL_MAX)
		return false;
	q = realloc(iv->q, cap * sizeof(*q));
	if (!q)
		return false;
	iv->q = q;
	iv->cap = cap;
	return true;
}

/* Queue ino for the invalidation thread. An invalidation is never dropped:
 * the kernel would go on serving the old pages and size. When the queue
 * cannot take it, every file is invalidated instead (iv->all), which needs
 * no memory and only costs the kernel some rereads. */
static void ops_inval_queue(struct ops_fs *ofs, fuse_ino_t ino)
{
	struct ops_inval *iv = &ofs->inval;
	size_t overflow = 0;

	pthread_mutex_lock(&iv->lock);
	if (!iv->all) {
		if (iv->n < iv->cap || ops_inval_grow(iv)) {
			iv->q[iv->n++] = ino;
		} else {
			iv->all = true;
			overflow = iv->n;
			iv->n = 0;	/* all covers them */
		}
	}
	pthread_cond_broadcast(&iv->cond);	/* the thread, or a drain waiter */
	pthread_mutex_unlock(&iv->lock);
	if (overflow)
		log_warn("the invalidation queue cannot grow past %zu inodes: invalidating every file instead",
			 overflow);
}

static void ops_inval_ino(void *ctx, uint64_t ino)
{
	ops_inval_queue(ctx, (fuse_ino_t)ino);
}

/* Every file of the app, after its values changed. */
static void ops_inval_app(struct ops_fs *ofs, size_t app)
{
	node_each(&ofs->nodes, app, ops_inval_ino, ofs);
}

/* Drop the kernel's attributes and pages of ino; node.c learns of it,
 * since opens read through the cache only once the kernel's size is the
 * one of the last change. */
static void ops_inval_one(struct ops_fs *ofs, fuse_ino_t ino)
{
	uint64_t changes = node_inval_begin(&ofs->nodes, ino);
	/* ENOENT: never looked up; EBADF, ENODEV: the session is going */
	int rc = fuse_lowlevel_notify_inval_inode(ofs->se, ino, 0, 0);

	if (rc < 0 && rc != -ENOENT && rc != -EBADF && rc != -ENODEV)
		log_debug("invalidating inode %lu: %s", (unsigned long)ino,
			  strerror(-rc));
	else
		node_inval_done(&ofs->nodes, ino, changes);
}

static void ops_inval_one_ino(void *ctx, uint64_t ino)
{
	ops_inval_one(ctx, (fuse_ino_t)ino);
}

/* Every file inode ever handed out. */
static void ops_inval_every(struct ops_fs *ofs)
{
	node_each_file(&ofs->nodes, ops_inval_one_ino, ofs);
}

/* Takes one piece of work at a time, iv->lock released around it; stops
 * when told (checked when idle and between pieces, so ops_stop never
 * waits on a signal the thread missed while busy). */
static void *ops_inval_thread(void *arg)
{
	struct ops_fs *ofs = arg;
	struct ops_inval *iv = &ofs->inval;

	pthread_mutex_lock(&iv->lock);
	while (!iv->stop) {
		bool all = iv->all;
		fuse_ino_t ino = 0;

		if (!all && !iv->n) {
			/* drained: wake ops_inval_drain, then sleep */
			pthread_cond_broadcast(&iv->cond);
			pthread_cond_wait(&iv->cond, &iv->lock);
			continue;
		}
		if (all)
			iv->all = false;
		else
			ino = iv->q[--iv->n];
		iv->busy = true;
		pthread_mutex_unlock(&iv->lock);
		if (all)
			ops_inval_every(ofs);
		else
			ops_inval_one(ofs, ino);
		pthread_mutex_lock(&iv->lock);
		iv->busy = false;
	}
	pthread_mutex_unlock(&iv->lock);
	return NULL;
}

/* Wait (at most limit_ms) until the thread has invalidated everything
 * queued so far: a reload is done only when the kernel has dropped what
 * it held of the apps it changed. Never from a request handler. */
static void ops_inval_drain(struct ops_inval *iv, long limit_ms)
{
	struct timespec until = clock_deadline(CLOCK_REALTIME, limit_ms);

	pthread_mutex_lock(&iv->lock);
	while (iv->running && !iv->stop && (iv->n || iv->all || iv->busy))
		if (pthread_cond_timedwait(&iv->cond, &iv->lock, &until) != 0)
			break;
	pthread_mutex_unlock(&iv->lock);
}

/* From the cache's refresher: an entry changed in its store. */
static void ops_on_changed(void *ctx, const struct provider *p,
			   const char *locator, const char *params)
{
	struct ops_fs *ofs = ctx;

	const struct config *cfg;

	pthread_rwlock_rdlock(&ofs->reload_lock);
	cfg = ofs->edit.cfg;
	for (size_t i = 0; i < cfg->napps; i++)
		if (app_uses(&cfg->apps[i], p->name, locator)) {
			ops_inval_app(ofs, edit_app_slot(&ofs->edit, &cfg->apps[i]));
			hooks_poke(ofs->hooks, cfg->apps[i].name);
		}
	pthread_rwlock_unlock(&ofs->reload_lock);
}

/* ---- errors and attributes ---- */

static int ops_errno(const struct err *e)
{
	static const int map[] = {
		[ERR_OK] = 0,
		[ERR_NOTFOUND] = ENOENT,
		[ERR_ACCESS] = EACCES,
		[ERR_CONFLICT] = EBUSY,
		[ERR_INVALID] = EINVAL,
		[ERR_PROVIDER] = EIO,
		[ERR_READONLY] = EROFS,
		[ERR_PERM] = EPERM,
		[ERR_TOOBIG] = EFBIG,
		[ERR_BUSY] = EBUSY,
		[ERR_NOMEM] = ENOMEM,
		[ERR_IO] = EIO,
		[ERR_EXISTS] = EEXIST,
		[ERR_NOATTR] = ENODATA,
		[ERR_NOTSUP] = ENOTSUP,
		[ERR_NAMETOOLONG] = ENAMETOOLONG,
		[ERR_NOSPACE] = ENOSPC,
		[ERR_QUOTA] = EDQUOT,
		[ERR_UNSURE] = EIO,
	};

	if ((unsigned)e->code >= sizeof(map) / sizeof(map[0]) || !map[e->code])
		return EIO;
	return map[e->code];
}

/* Reply with the error, logged with its reason (which names the app and
 * the reference): once per reason every LOG_LIMIT_S, however often a
 * reader retries. */
static void ops_reply_err(fuse_req_t req, const struct err *e)
{
	if (e->code == ERR_NOTFOUND)
		log_debug("%s", e->msg);
	else
		log_limited(LOG_LVL_ERROR, "%s", e->msg);
	fuse_reply_err(req, ops_errno(e));
}

/* Reply with a refusal the caller's request earned (a name that cannot be
 * made or removed): an answer, not a failure of ours, so not an error in
 * the log. */
static void ops_reply_refusal(fuse_req_t req, const struct err *e)
{
	log_debug("%s", e->msg);
	fuse_reply_err(req, ops_errno(e));
}

static void ops_dir_attr(struct ops_fs *ofs, fuse_ino_t ino, struct stat *st)
{
	const struct app_conf *a;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_nlink = 2;
	st->st_mtime = st->st_ctime = st->st_atime = ofs->mounted;
	if (ino == OPS_ROOT_INO) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink += ofs->edit.cfg->napps;
		return;
	}
	a = ops_app(ofs, ino);
	st->st_mode = S_IFDIR | app_dir_mode(a->mode);
	st->st_uid = a->uid;
	st->st_gid = a->gid;
}

/* Readers that size their reads by st_blksize (stdio, Python's open())
 * read a file of up to OPS_BLKSIZE_MAX bytes in one read(2): without opens
 * (a read-only mount) that one read is what makes them see one version.
 * A power of two, as the kernel keeps it (i_blkbits). */
#define OPS_BLKSIZE_MIN ((size_t)4096)
#define OPS_BLKSIZE_MAX ((size_t)1 << 20)

static blksize_t ops_blksize(size_t size)
{
	size_t b = OPS_BLKSIZE_MIN;

	while (b < size && b < OPS_BLKSIZE_MAX)
		b <<= 1;
	return (blksize_t)b;
}

static void ops_file_attr(struct ops_fs *ofs, struct node *n, size_t size,
			  struct stat *st)
{
	const struct app_conf *a = ops_conf(ofs, n->app);
	time_t mtime = node_mtime(&ofs->nodes, n);

	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_nlink = 1;
	st->st_mode = S_IFREG | a->mode;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_blksize = ops_blksize(size);
	st->st_mtime = st->st_ctime = st->st_atime = mtime;
}

/* The attributes of scratch file (app, name); false when there is none. */
static bool ops_stat_scratch(struct ops_fs *ofs, fuse_ino_t ino, size_t app,
			     const char *name, struct stat *st)
{
	if (!edit_scratch_stat(&ofs->edit, app, name, st))
		return false;
	st->st_ino = ino;
	return true;
}

/* The attributes of a file: its size is what a read returns right now.
 * A file whose value cannot be had now still exists (its name is
 * declared, or its store listed it): it shows size 0, *failed is set,
 * and the failure is logged - so ls -l and getfattr (user.secretfs.error)
 * work on it while reads fail with the reason in the log. *fleeting is
 * set when the kernel must not keep the attributes: a failure's, or a
 * size other than the one open files of an older version read by. */
static void ops_stat_file(struct ops_fs *ofs, fuse_ino_t ino,
			  struct node *n, struct stat *st, bool *failed,
			  bool *fleeting)
{
	struct secbuf data = SECBUF_INIT;
	struct err e = { 0 };
	int rc;

	*failed = *fleeting = false;
	if (ops_stat_scratch(ofs, ino, n->app, n->name, st))
		return;
	rc = app_read(ofs->appfs, ops_conf(ofs, n->app), n->name, &data,
		      NULL, &e);
	if (rc == 0 && node_observe(&ofs->nodes, n, &data))
		ops_inval_queue(ofs, ino);	/* pages from before */
	*failed = rc < 0;
	/* the kernel keeps one size per inode: while opens of an older
	 * version read through its page cache, each of their reads asks for
	 * theirs (FUSE_CAP_AUTO_INVAL_DATA, attributes never kept), and the
	 * current one must not stick either */
	*fleeting = *failed || node_pages_mixed(&ofs->nodes, n);
	if (rc < 0)
		log_limited(LOG_LVL_ERROR, "%s", e.msg);
	ops_file_attr(ofs, n, rc == 0 ? data.len : 0, st);
	secbuf_free(&data);
}

/* ---- debug: which request, on what (names, never values) ---- */

/* "app/file", "app" or "/" for ino, into buf. */
static const char *ops_path(struct ops_fs *ofs, fuse_ino_t ino, char *buf,
			    size_t size)
{
	struct node *n = ops_node(ofs, ino);
	const struct app_conf *a = n ? ops_conf(ofs, n->app) : ops_app(ofs, ino);

	if (n)
		snprintf(buf, size, "%s/%s", a->name, n->name);
	else
		snprintf(buf, size, "%s", a ? a->name : "/");
	return buf;
}

/* One debug line per request that names something: who, what, on what. */
static void ops_debug(fuse_req_t req, const char *op, fuse_ino_t ino,
		      const char *name)
{
	char path[512];

	if (!log_debug_on())
		return;
	log_debug("pid %d: %s %s%s%s", (int)fuse_req_ctx(req)->pid, op,
		  ops_path(ops_fs_of(req), ino, path, sizeof(path)),
		  name ? " " : "", name ? name : "");
}

/* ---- lookup and attributes ---- */

static void ops_lookup_app(fuse_req_t req, struct ops_fs *ofs, const char *name)
{
	const struct app_conf *a = config_app(ofs->edit.cfg, name);
	struct fuse_entry_param ep = { .attr_timeout = OPS_DIR_TIMEOUT,
				       .entry_timeout = OPS_DIR_TIMEOUT };

	if (!a) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	ep.ino = node_app_ino(edit_app_slot(&ofs->edit, a));
	ops_dir_attr(ofs, ep.ino, &ep.attr);
	fuse_reply_entry(req, &ep);
}

static void ops_lookup_scratch(fuse_req_t req, struct ops_fs *ofs, size_t app,
			       const char *name)
{
	struct fuse_entry_param ep = { 0 };
	struct err e = { 0 };
	struct node *n = node_get(&ofs->nodes, app, name, &e);

	ep.ino = n ? n->ino : 0;
	if (!n)
		fuse_reply_err(req, ops_errno(&e));
	else if (!ops_stat_scratch(ofs, ep.ino, app, name, &ep.attr))
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_entry(req, &ep);
}

static void ops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct fuse_entry_param ep = { 0 };
	struct node *n;
	struct err e = { 0 };
	size_t app;
	bool failed, fleeting;

	ops_debug(req, "lookup", parent, name);
	if (parent == OPS_ROOT_INO) {
		ops_lookup_app(req, ofs, name);
		return;
	}
	if (!ops_slot(ofs, parent, &app)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (edit_is_scratch_name(&ofs->edit, app, name)) {
		ops_lookup_scratch(req, ofs, app, name);
		return;
	}
	if (app_lookup(ofs->appfs, ops_conf(ofs, app), name, &e) < 0) {
		ops_reply_err(req, &e);
		return;
	}
	n = node_get(&ofs->nodes, app, name, &e);
	if (!n) {
		fuse_reply_err(req, ops_errno(&e));
		return;
	}
	ep.ino = n->ino;
	ops_stat_file(ofs, ep.ino, n, &ep.attr, &failed, &fleeting);
	/* names only change by our own renames, which move the nodes; a
	 * failed file's size 0 must not outlive the failure */
	ep.entry_timeout = failed ? 0 : OPS_CACHE_TIMEOUT;
	ep.attr_timeout = fleeting ? 0 : ops_attr_timeout(ofs, app);
	fuse_reply_entry(req, &ep);
}

static void ops_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct node *n;
	struct stat st;
	size_t size;
	bool failed = false, fleeting = false;

	if (ino == OPS_ROOT_INO || ops_is_app(ofs, ino)) {
		ops_dir_attr(ofs, ino, &st);
		fuse_reply_attr(req, &st, OPS_DIR_TIMEOUT);
		return;
	}
	n = ops_node(ofs, ino);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (fi && fi->fh) {
		/* an open file's size is its own buffer's */
		reader_dropped(&ofs->nodes, ino, (struct edit_handle *)(uintptr_t)fi->fh);
		if (edit_handle_stat((struct edit_handle *)(uintptr_t)fi->fh, &st, &size))
			st.st_ino = ino;
		else
			ops_file_attr(ofs, n, size, &st);
	} else {
		ops_stat_file(ofs, ino, n, &st, &failed, &fleeting);
	}
	fuse_reply_attr(req, &st, (fi && fi->fh) || fleeting ? 0 :
			ops_attr_timeout(ofs, n->app));
}

/* ---- folders ---- */

static void ops_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct strv *names = calloc(1, sizeof(*names));
	struct err e = { 0 };
	int rc = names ? 0 : err_oom(&e);
	size_t app;
	bool is_app = ops_slot(ofs, ino, &app);

	ops_debug(req, "opendir", ino, NULL);
	/* the listing is taken once, so readdir's offsets stay valid */
	for (size_t i = 0; rc == 0 && ino == OPS_ROOT_INO && i < ofs->edit.cfg->napps; i++)
		if (strv_push(names, ofs->edit.cfg->apps[i].name) < 0)
			rc = err_oom(&e);
	if (rc == 0 && is_app)
		rc = app_list(ofs->appfs, ops_conf(ofs, app), names, &e);
	if (rc == 0 && is_app)
		rc = edit_list_scratch(&ofs->edit, app, names, &e);
	if (rc < 0) {
		if (names)
			strv_free(names);
		free(names);
		ops_reply_err(req, &e);
		return;
	}
	fi->fh = (uintptr_t)names;
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

/* The inode of app folder name, for a root listing taken before a reload
 * (which may have removed it: its slot still names it). */
static fuse_ino_t ops_app_dir_ino(struct ops_fs *ofs, const char *name)
{
	const struct app_conf *a = config_app(ofs->edit.cfg, name);
	size_t app;

	if (a)
		return node_app_ino(edit_app_slot(&ofs->edit, a));
	return edit_slot_find(&ofs->edit, name, &app) ? node_app_ino(app) : 0;
}

/* The inode of entry i of folder ino's listing, name; 0 when out of
 * memory. */
static fuse_ino_t ops_dirent_ino(struct ops_fs *ofs, fuse_ino_t ino, size_t i,
				 const char *name)
{
	struct err e = { 0 };
	struct node *n;
	size_t app;

	if (i == 0)
		return ino;
	if (i == 1)
		return OPS_ROOT_INO;
	if (!node_app_dir(&ofs->nodes, ino, &app))	/* the root */
		return ops_app_dir_ino(ofs, name);
	n = node_get(&ofs->nodes, app, name, &e);
	return n ? n->ino : 0;
}

/* Entry i of a READDIRPLUS reply, at buf. The root's app folders come
 * with their attributes, as a LOOKUP would answer (so `ls -l` of the root
 * asks nothing more); anything else goes without (ep->ino 0: the kernel
 * links nothing and looks the name up when it is used), since a file's
 * size costs a render. */
static size_t ops_add_direntry_plus(fuse_req_t req, struct ops_fs *ofs,
				    fuse_ino_t ino, size_t i, char *buf,
				    size_t room, const char *name,
				    const struct stat *st)
{
	struct fuse_entry_param ep = { .attr = *st };

	if (ino == OPS_ROOT_INO && i >= 2 && ops_app(ofs, st->st_ino)) {
		ep.ino = st->st_ino;
		ep.attr_timeout = ep.entry_timeout = OPS_DIR_TIMEOUT;
		ops_dir_attr(ofs, ep.ino, &ep.attr);
	}
	return fuse_add_direntry_plus(req, buf, room, name, &ep, (off_t)i + 1);
}

static void ops_readdir_any(fuse_req_t req, fuse_ino_t ino, size_t size,
			    off_t off, struct fuse_file_info *fi, bool plus)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct strv *names = (struct strv *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < names->n + 2; i++) {
		struct stat st = { 0 };
		const char *name = i == 0 ? "." : i == 1 ? ".." : names->v[i - 2];
		size_t len;

		/* readdir(3) hides entries whose inode is 0 */
		st.st_mode = (ino == OPS_ROOT_INO || i < 2) ? S_IFDIR : S_IFREG;
		st.st_ino = ops_dirent_ino(ofs, ino, i, name);
		if (!st.st_ino)
			break;	/* out of memory: a short listing, not a lie */
		if (plus)
			len = ops_add_direntry_plus(req, ofs, ino, i, buf + used,
						    size - used, name, &st);
		else
			len = fuse_add_direntry(req, buf + used, size - used,
						name, &st, (off_t)i + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void ops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	ops_readdir_any(req, ino, size, off, fi, false);
}

static void ops_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			    off_t off, struct fuse_file_info *fi)
{
	ops_readdir_any(req, ino, size, off, fi, true);
}

static void ops_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct strv *names = (struct strv *)(uintptr_t)fi->fh;

	strv_free(names);
	free(names);
	fuse_reply_err(req, 0);
}

/* ---- files ---- */

static struct edit_who ops_who(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	return (struct edit_who){ .pid = ctx->pid, .uid = ctx->uid, .gid = ctx->gid };
}

/* Open; false when no value touched the stack (a kept snapshot's open),
 * which then needs no wipe. */
/* A read-only open: what fs/reader.c decides, told the kernel. */
static void ops_open_reader(struct ops_fs *ofs, struct node *n,
			    struct edit_handle *h, uint64_t changes,
			    struct fuse_file_info *fi)
{
	struct reader_open ro;

	reader_open(&ofs->nodes, n, ops_conf(ofs, n->app), h, changes,
		    ofs->kernel_cache, &ro);
	if (ro.inval)
		ops_inval_queue(ofs, n->ino);
	if (ro.cached) {
		fi->direct_io = 0;
		/* without keep_cache the kernel drops the inode's pages */
		fi->keep_cache = ro.keep;
	}
}

static bool ops_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct node *n = ops_node(ofs, ino);
	struct edit_who who = ops_who(req);
	struct edit_handle *h = NULL;
	struct err e = { 0 };
	uint64_t changes = 0;
	bool plain;

	ops_debug(req, fi->flags & O_ACCMODE ? "open for writing" : "open", ino, NULL);
	if (ofs->no_open && n) {
		/* the kernel stops sending opens: reads come straight from its
		 * page cache, kept right by invalidation */
		fuse_reply_err(req, ENOSYS);
		return false;
	}
	if (!n) {
		fuse_reply_err(req, ops_is_app(ofs, ino) || ino == OPS_ROOT_INO ? EISDIR : ENOENT);
		return false;
	}
	h = reader_open_kept(&ofs->nodes, &ofs->edit, ofs->appfs, n,
			     ops_conf(ofs, n->app), &who, fi->flags);
	if (!h) {
		changes = app_changes(ofs->appfs);	/* before the read */
		if (edit_open(&ofs->edit, n->app, n->name, &who, fi->flags, &h, &e) < 0) {
			/* a write open of a read-only file is the caller's mistake */
			if (e.code == ERR_READONLY)
				ops_reply_refusal(req, &e);
			else
				ops_reply_err(req, &e);
			return true;
		}
	}
	plain = !h->snap;
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	if ((fi->flags & O_ACCMODE) == O_RDONLY && !h->sc) {
		/* nothing to commit at close: skip the flush round trip */
		fi->noflush = 1;
		ops_open_reader(ofs, n, h, changes, fi);
	}
	if (fuse_reply_open(req, fi) != 0 && edit_handle_reads_only(h)) {
		/* the opener is gone (interrupted): no release will come */
		reader_release(&ofs->nodes, &ofs->edit, ino, h, &e);
	}
	return plain;
}


/* Reply with size bytes of data at off. */
static void ops_reply_slice(fuse_req_t req, const struct secbuf *data,
			    size_t size, off_t off)
{
	size_t start = (size_t)off < data->len ? (size_t)off : data->len;

	if (size > data->len - start)
		size = data->len - start;
	fuse_reply_buf(req, data->data + start, size);
}

/* A read without an open (read-only mounts): the kernel's page cache
 * missed, so the file as it is now. */
static void ops_read_unopened(fuse_req_t req, fuse_ino_t ino, size_t size,
			      off_t off)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct node *n = ops_node(ofs, ino);
	struct secbuf data = SECBUF_INIT;
	struct err e = { 0 };

	if (!n) {
		fuse_reply_err(req, ENOENT);
	} else if (app_read(ofs->appfs, ops_conf(ofs, n->app), n->name, &data,
			    NULL, &e) < 0) {
		ops_reply_err(req, &e);
	} else {
		if (node_observe(&ofs->nodes, n, &data))
			ops_inval_queue(ofs, ino);
		ops_reply_slice(req, &data, size, off);
	}
	secbuf_free(&data);
}

/* A read of a kept snapshot's open: opened for the bytes it asks for
 * (none at the end, where a whole-file reader's last read lands). */
static void ops_read_snap(fuse_req_t req, const struct snap *s, size_t size,
			  off_t off)
{
	struct secbuf data = SECBUF_INIT;
	struct err e = { 0 };

	if ((size_t)off >= s->len || !size)
		fuse_reply_buf(req, NULL, 0);
	else if (snap_open(s, &data, &e) < 0)
		ops_reply_err(req, &e);
	else
		ops_reply_slice(req, &data, size, off);
	secbuf_free(&data);
}

static void ops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct edit_handle *h = (struct edit_handle *)(uintptr_t)fi->fh;

	if (!h) {
		ops_read_unopened(req, ino, size, off);
		return;
	}
	reader_dropped(&ops_fs_of(req)->nodes, ino, h);
	if (h->snap) {
		ops_read_snap(req, h->snap, size, off);
		return;
	}
	ops_reply_slice(req, edit_lock(h), size, off);
	edit_unlock(h);
}

static void ops_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		      size_t size, off_t off, struct fuse_file_info *fi)
{
	struct edit_handle *h = (struct edit_handle *)(uintptr_t)fi->fh;
	struct err e = { 0 };
	int rc = edit_write(h, buf, size, off, &e);

	/* the bytes sit in libfuse's request buffer until its next request:
	 * this was their last use */
	sodium_memzero((void *)buf, size);
	if (rc < 0)
		fuse_reply_err(req, ops_errno(&e));
	else
		fuse_reply_write(req, size);
}

static void ops_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct edit_handle *h = (struct edit_handle *)(uintptr_t)fi->fh;
	struct err e = { 0 };

	if (!h) {
		/* no opens (read-only mount): nothing to flush, ever */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (edit_flush(&ofs->edit, h, &e) < 0)
		ops_reply_err(req, &e);
	else
		fuse_reply_err(req, 0);
}

static void ops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi)
{
	ops_flush(req, ino, fi);
}

static void ops_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct edit_handle *h = (struct edit_handle *)(uintptr_t)fi->fh;
	struct err e = { 0 };

	/* the close() that could report a failure has returned: log it */
	if (h && reader_release(&ofs->nodes, &ofs->edit, ino, h, &e) < 0)
		log_error("%s", e.msg);
	fuse_reply_err(req, 0);
}

/* chmod and chown: a scratch file takes modes within 0600; anything else
 * keeps the owner and mode of its config, but saying so again is fine
 * (editors and sed -i copy them onto what they write). */
static int ops_set_owner_mode(struct ops_fs *ofs, fuse_ino_t ino,
			      const struct stat *attr, int to_set)
{
	struct stat cur;
	struct node *n = ops_node(ofs, ino);
	struct err e = { 0 };

	if (!(to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		return 0;
	if (ino == OPS_ROOT_INO || ops_is_app(ofs, ino))
		ops_dir_attr(ofs, ino, &cur);
	else if (!n)
		return ENOENT;	/* the kernel never sends one it was not given */
	else if (!ops_stat_scratch(ofs, ino, n->app, n->name, &cur))
		ops_file_attr(ofs, n, 0, &cur);
	if (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != cur.st_uid) ||
	    ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != cur.st_gid))
		return EPERM;
	if (!(to_set & FUSE_SET_ATTR_MODE) || (attr->st_mode & 07777) == (cur.st_mode & 07777))
		return 0;
	if (!n || edit_scratch_chmod(&ofs->edit, n->app, n->name,
				     attr->st_mode & 07777, &e) < 0)
		return EPERM;
	return 0;
}

static void ops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct node *n = ops_node(ofs, ino);
	struct edit_handle *h = fi && fi->fh ? (struct edit_handle *)(uintptr_t)fi->fh : NULL;
	struct err e = { 0 };
	int rc = ops_set_owner_mode(ofs, ino, attr, to_set);

	if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE) && !n)
		rc = EISDIR;
	if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE) && h) {
		if (edit_truncate(h, (size_t)attr->st_size, &e) < 0)
			rc = ops_errno(&e);
	} else if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE) &&
		   edit_truncate_name(&ofs->edit, n->app, n->name,
				      (size_t)attr->st_size, &e) < 0) {
		ops_reply_err(req, &e);
		return;
	}
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	/* times are accepted and not kept: tools that set them must not fail */
	ops_getattr(req, ino, fi);
}

/* ---- names: create, unlink, rename ---- */

static void ops_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct edit_who who = ops_who(req);
	struct fuse_entry_param ep = { 0 };
	struct edit_handle *h;
	struct node *n;
	struct err e = { 0 };
	size_t app;

	ops_debug(req, "create", parent, name);
	if (!ops_slot(ofs, parent, &app)) {
		fuse_reply_err(req, parent == OPS_ROOT_INO ? EPERM : ENOTDIR);
		return;
	}
	/* refused names get no inode; an app without a store is the
	 * config's doing, worth an error in the log */
	if (edit_may_create(&ofs->edit, app, name, &e) < 0) {
		if (e.code == ERR_READONLY)
			ops_reply_err(req, &e);
		else
			ops_reply_refusal(req, &e);
		return;
	}
	n = node_get(&ofs->nodes, app, name, &e);
	if (!n) {
		fuse_reply_err(req, ops_errno(&e));
		return;
	}
	if (edit_create(&ofs->edit, app, name, &who, mode, &h, &e) < 0) {
		ops_reply_err(req, &e);
		return;
	}
	ep.ino = n->ino;
	ops_stat_scratch(ofs, ep.ino, app, name, &ep.attr);
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	fuse_reply_create(req, &ep, fi);
}

static void ops_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct err e = { 0 };
	size_t app;

	ops_debug(req, "unlink", parent, name);
	if (!ops_slot(ofs, parent, &app))
		fuse_reply_err(req, parent == OPS_ROOT_INO ? EPERM : ENOTDIR);
	else if (edit_may_unlink(&ofs->edit, app, name, &e) < 0)
		ops_reply_refusal(req, &e);
	else if (edit_unlink(&ofs->edit, app, name, &e) < 0)
		ops_reply_err(req, &e);
	else
		fuse_reply_err(req, 0);
}

static void ops_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname,
		       unsigned int flags)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct edit_who who = ops_who(req);
	struct err e = { 0 };
	struct node *n;
	size_t app;

	ops_debug(req, "rename", parent, name);
	if (!ops_slot(ofs, parent, &app) || newparent != parent) {
		fuse_reply_err(req, EXDEV);	/* mv copies and unlinks instead */
		return;
	}
	if (flags & RENAME_EXCHANGE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (edit_rename(&ofs->edit, app, name, newname, flags & RENAME_NOREPLACE,
			&who, &e) == 0) {
		node_rename(&ofs->nodes, app, name, newname);
		/* the inode the kernel moved shows another file now */
		n = node_get(&ofs->nodes, app, newname, &e);
		if (n)
			ops_inval_queue(ofs, n->ino);
		fuse_reply_err(req, 0);
	} else if (e.code == ERR_NOTSUP) {
		log_debug("%s", e.msg);	/* not ours to do: mv copies and unlinks */
		fuse_reply_err(req, EXDEV);
	} else {
		ops_reply_err(req, &e);
	}
}

/* ---- extended attributes: metadata and control (fs/xattr.h) ---- */

/* Reply with value (size 0: its length; too small: ERANGE). */
static void ops_reply_xattr(fuse_req_t req, const char *value, size_t len,
			    size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

static void ops_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct ops_fs *ofs = ops_fs_of(req);
	const char *names = "";
	size_t len = 0;

	if (ops_node(ofs, ino))
		names = xattr_names(&len);
	ops_reply_xattr(req, names, len, size);
}

static void ops_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 size_t size)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct node *n = ops_node(ofs, ino);
	struct xattr_value v;
	struct err e = { 0 };

	ops_debug(req, "getxattr", ino, name);
	if (!n) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	/* no such attribute: an answer to a probe (every write asks for
	 * security.capability), not worth a log line */
	if (xattr_get(&ofs->edit, n->app, n->name, name, &v, &e) == 0)
		ops_reply_xattr(req, v.text, v.len, size);
	else if (e.code == ERR_NOATTR)
		fuse_reply_err(req, ops_errno(&e));
	else
		ops_reply_err(req, &e);
}

static void ops_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 const char *value, size_t size, int flags)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct node *n = ops_node(ofs, ino);
	const char *file = n ? n->name : NULL;
	size_t app = n ? n->app : 0;
	struct err e = { 0 };

	ops_debug(req, "setxattr", ino, name);
	if (!n && !ops_slot(ofs, ino, &app)) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (xattr_may_set(&ofs->edit, app, file, name, &e) < 0) {
		ops_reply_refusal(req, &e);
		return;
	}
	if (xattr_set(&ofs->edit, app, file, name, &e) < 0) {
		ops_reply_err(req, &e);
		return;
	}
	ops_inval_app(ofs, app);
	fuse_reply_err(req, 0);
}

/* RELEASE is a background request: the kernel sends at most
 * max_background of those at a time (12 unless told) and queues the
 * rest, while opens go straight to the daemon. Readers that outnumber
 * twice that open faster than their releases are let through, and every
 * open file waiting for its release holds its snapshot here: 200 readers
 * for 60 s took the daemon to 989 MB (issue 10). With the protocol's
 * largest limit the kernel holds no release back, releases queue behind
 * the opens of the same readers, and open files stay about as many as
 * the readers. Nothing else the kernel sends in the background (reads
 * ahead, which kernel_cache makes rare) needs a tighter bound. A mount
 * by a user other than root gets at most the kernel's max_user_bgreq. */
static void ops_init_background(const struct ops_fs *ofs,
				struct fuse_conn_info *conn)
{
	/* -o max_background=N: the kernel's own default is 12 */
	unsigned n = ofs->max_background ? ofs->max_background : OPS_MAX_BACKGROUND;

	conn->max_background = n;
	conn->congestion_threshold = n - n / 4;	/* the kernel's 3/4 */
}

static void ops_init(void *userdata, struct fuse_conn_info *conn)
{
	struct ops_fs *ofs = userdata;

	/* a read-only mount with the kernel cache needs no per-open state:
	 * open+read+close never leaves the kernel (README.md's benchmarks:
	 * about 5 us, where an open that reaches the daemon costs 33-47 us) */
	if (ofs->read_only && ofs->kernel_cache &&
	    (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) &&
	    (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)) {
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT | FUSE_CAP_AUTO_INVAL_DATA;
		ofs->no_open = true;
	}
	/* O_TRUNC arrives with open(), so `> file` is one operation */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* every listing as READDIRPLUS, not only its first batch: the
	 * root's entries then carry their attributes (ops_readdirplus) and
	 * others cost what a READDIR does */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* writes must reach the store at close, never later */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	ops_init_background(ofs, conn);
}

/* Requests that render, parse or write values leave copies in the frames
 * their callees used below the handler: libc's formatting and file code,
 * the parser, the stores. A worker thread's stack outlives the request,
 * and glibc hands an ended thread's stack to the next thread it starts,
 * so each such request wipes what lies below it before the worker takes
 * another (a memory scan found values there otherwise). */
#define OPS_WIPED(op, params, args)		\
	static void op##_wiped params		\
	{					\
		struct ops_fs *ofs_ = ops_fs_of(req);	\
		pthread_rwlock_rdlock(&ofs_->reload_lock);	\
		op args;			\
		pthread_rwlock_unlock(&ofs_->reload_lock);	\
		secmem_stack_wipe_deep();	\
	}

/* Requests that touch no value but read the configuration: held off
 * while a reload swaps it, as the wiped ones are. */
#define OPS_LOCKED(op, params, args)		\
	static void op##_locked params		\
	{					\
		struct ops_fs *ofs_ = ops_fs_of(req);	\
		pthread_rwlock_rdlock(&ofs_->reload_lock);	\
		op args;			\
		pthread_rwlock_unlock(&ofs_->reload_lock);	\
	}

OPS_LOCKED(ops_opendir, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
	   (req, ino, fi))
OPS_LOCKED(ops_readdir, (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi),
	   (req, ino, size, off, fi))
OPS_LOCKED(ops_readdirplus, (fuse_req_t req, fuse_ino_t ino, size_t size,
			     off_t off, struct fuse_file_info *fi),
	   (req, ino, size, off, fi))
OPS_LOCKED(ops_unlink, (fuse_req_t req, fuse_ino_t parent, const char *name),
	   (req, parent, name))
OPS_LOCKED(ops_getxattr, (fuse_req_t req, fuse_ino_t ino, const char *name,
			  size_t size),
	   (req, ino, name, size))
OPS_LOCKED(ops_listxattr, (fuse_req_t req, fuse_ino_t ino, size_t size),
	   (req, ino, size))

OPS_WIPED(ops_lookup, (fuse_req_t req, fuse_ino_t parent, const char *name),
	  (req, parent, name))
OPS_WIPED(ops_getattr, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
	  (req, ino, fi))
OPS_WIPED(ops_setattr, (fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi),
	  (req, ino, attr, to_set, fi))
OPS_WIPED(ops_read, (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi),
	  (req, ino, size, off, fi))
OPS_WIPED(ops_flush, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
	  (req, ino, fi))
OPS_WIPED(ops_fsync, (fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi),
	  (req, ino, datasync, fi))
OPS_WIPED(ops_create, (fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi),
	  (req, parent, name, mode, fi))
OPS_WIPED(ops_rename, (fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname,
		       unsigned int flags),
	  (req, parent, name, newparent, newname, flags))
OPS_WIPED(ops_setxattr, (fuse_req_t req, fuse_ino_t ino, const char *name,
			 const char *value, size_t size, int flags),
	  (req, ino, name, value, size, flags))

/* An open of a kept snapshot touches no value: no wipe (ops_open). */
static void ops_open_wiped(fuse_req_t req, fuse_ino_t ino,
			   struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	bool plain;

	pthread_rwlock_rdlock(&ofs->reload_lock);
	plain = ops_open(req, ino, fi);
	pthread_rwlock_unlock(&ofs->reload_lock);
	if (plain)
		secmem_stack_wipe_deep();
}

/* RELEASE follows every close: a read-only open of an app file commits
 * nothing there, and freeing its snapshot wipes heap memory, not the
 * stack, so only a handle that may commit pays for the deep wipe. */
static void ops_release_wiped(fuse_req_t req, fuse_ino_t ino,
			      struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct edit_handle *h = (struct edit_handle *)(uintptr_t)fi->fh;
	bool deep = h && !edit_handle_reads_only(h);

	pthread_rwlock_rdlock(&ofs->reload_lock);
	ops_release(req, ino, fi);
	pthread_rwlock_unlock(&ofs->reload_lock);
	if (deep)
		secmem_stack_wipe_deep();
}

const struct fuse_lowlevel_ops ops_table = {
	.init = ops_init,
	.lookup = ops_lookup_wiped,
	.getattr = ops_getattr_wiped,
	.setattr = ops_setattr_wiped,
	.opendir = ops_opendir_locked,
	.readdir = ops_readdir_locked,
	.readdirplus = ops_readdirplus_locked,
	.releasedir = ops_releasedir,
	.open = ops_open_wiped,
	.read = ops_read_wiped,
	.write = ops_write,
	.flush = ops_flush_wiped,
	.fsync = ops_fsync_wiped,
	.release = ops_release_wiped,
	.create = ops_create_wiped,
	.unlink = ops_unlink_locked,
	.rename = ops_rename_wiped,
	.getxattr = ops_getxattr_locked,
	.listxattr = ops_listxattr_locked,
	.setxattr = ops_setxattr_wiped,
};

/* A write reached the store: every file of the app may show it. */
static void ops_on_edit(void *ctx, size_t app)
{
	struct ops_fs *ofs = ctx;

	const struct app_conf *a = edit_app(&ofs->edit, app);

	ops_inval_app(ofs, app);
	/* a write through the mount is a change too (the request holds the
	 * reload lock: the configuration and hooks stay) */
	if (a)
		hooks_poke(ofs->hooks, a->name);
}

int ops_fs_init(struct ops_fs *ofs, struct appfs *appfs, const struct config *cfg)
{
	struct err e = { 0 };

	pthread_rwlockattr_t attr;

	memset(ofs, 0, sizeof(*ofs));
	ofs->appfs = appfs;
	ofs->mounted = time(NULL);
	/* readers never stop arriving: a reload waiting for them must hold
	 * new ones off, or it would wait for ever (requests never take the
	 * lock twice, so this cannot deadlock one) */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
		PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&ofs->reload_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (node_init(&ofs->nodes, cfg->napps, ofs->mounted, &e) < 0)
		return -1;
	return edit_init(&ofs->edit, appfs, cfg, ops_on_edit, ofs);
}

/* The hooks thread's view of an app, under the reload lock like a
 * request's: a reload frees the provider table both read (appfs_commit)
 * while the hooks it is about to replace still run. */
static int ops_hook_digest(void *ctx, const struct app_conf *app,
			   struct kvmap *out, struct err *e)
{
	struct ops_fs *ofs = ctx;
	int rc;

	pthread_rwlock_rdlock(&ofs->reload_lock);
	rc = app_digest(ofs->appfs, app, out, e);
	pthread_rwlock_unlock(&ofs->reload_lock);
	return rc;
}

static void ops_hook_expire(void *ctx, const struct app_conf *app)
{
	struct ops_fs *ofs = ctx;

	pthread_rwlock_rdlock(&ofs->reload_lock);
	app_expire(ofs->appfs, app);
	pthread_rwlock_unlock(&ofs->reload_lock);
}

int ops_start(struct ops_fs *ofs, struct fuse_session *se, struct err *e)
{
	struct ops_inval *iv = &ofs->inval;

	ofs->se = se;
	pthread_mutex_init(&iv->lock, NULL);
	pthread_cond_init(&iv->cond, NULL);
	if (pthread_create(&iv->thread, NULL, ops_inval_thread, ofs) != 0)
		return err_set(e, ERR_NOMEM, "cannot start the invalidation thread");
	iv->running = true;
	ofs->hooks = hooks_start(ofs->edit.cfg, ops_hook_digest,
				 ops_hook_expire, ofs, e);
	if (!ofs->hooks && e->code != ERR_OK)
		return -1;
	return cache_start_refresher(ofs->appfs->cache, ops_on_changed, ofs, e);
}

void ops_stop(struct ops_fs *ofs)
{
	struct ops_inval *iv = &ofs->inval;
	struct hooks *h;

	/* the cache's refresher runs on until the appfs closes and pokes the
	 * hooks under the reload lock: take them away under it, as a reload
	 * does, before they are freed */
	pthread_rwlock_wrlock(&ofs->reload_lock);
	h = ofs->hooks;
	ofs->hooks = NULL;
	pthread_rwlock_unlock(&ofs->reload_lock);
	hooks_stop(h);
	if (!iv->running)
		return;
	pthread_mutex_lock(&iv->lock);
	iv->stop = true;
	pthread_cond_broadcast(&iv->cond);
	pthread_mutex_unlock(&iv->lock);
	pthread_join(iv->thread, NULL);
	iv->running = false;
}

void ops_fs_destroy(struct ops_fs *ofs)
{
	ops_stop(ofs);
	free(ofs->inval.q);
	node_destroy(&ofs->nodes);
	edit_destroy(&ofs->edit);
	for (size_t i = 0; i < ofs->ncfgs; i++) {
		config_free(ofs->cfgs[i]);
		free(ofs->cfgs[i]);
	}
	free(ofs->cfgs);
	pthread_rwlock_destroy(&ofs->reload_lock);
}

/* ---- reload ---- */

/* The configuration at path, kept until unmount. */
static struct config *ops_reload_read(struct ops_fs *ofs, const char *path,
				      struct err *e)
{
	struct config *c = calloc(1, sizeof(*c));
	struct config **v = realloc(ofs->cfgs, (ofs->ncfgs + 1) * sizeof(*v));

	if (v)
		ofs->cfgs = v;
	if (!c || !v) {
		free(c);
		err_oom(e);
		return NULL;
	}
	if (config_load(path, c, e) < 0) {
		config_free(c);
		free(c);
		return NULL;
	}
	v[ofs->ncfgs++] = c;
	return c;
}

/* Swap next in, with every request held off; its providers are made
 * before, while requests run. */
static int ops_reload_swap(struct ops_fs *ofs, const struct config *next,
			   struct err *e)
{
	struct appfs_next an;
	int rc = appfs_prepare(ofs->appfs, next, &an, e);

	if (rc < 0)
		return -1;
	pthread_rwlock_wrlock(&ofs->reload_lock);
	/* what can fail must fail before anything changed */
	rc = node_grow(&ofs->nodes, ofs->edit.nslots + next->napps, e);
	if (rc == 0)
		rc = edit_set_config(&ofs->edit, next, e);
	if (rc == 0)
		appfs_commit(ofs->appfs, &an);
	pthread_rwlock_unlock(&ofs->reload_lock);
	if (rc < 0)
		appfs_abort(&an);
	return rc;
}

/* What the kernel holds of apps that changed: their folders, files and
 * names. Outside the lock: the kernel may wait for a request that waits
 * for it. */
static size_t ops_reload_inval(struct ops_fs *ofs, const struct config *prev)
{
	const struct config *next = ofs->edit.cfg;
	size_t changed = 0;

	for (size_t slot = 0; slot < ofs->edit.nslots; slot++) {
		const char *name = ofs->edit.slot_names[slot];
		const struct app_conf *a = config_app(prev, name);
		const struct app_conf *b = edit_app(&ofs->edit, slot);

		if (!a && !b)
			continue;
		if (a && b && config_app_same(prev, a, next, b))
			continue;
		changed++;
		ops_inval_app(ofs, slot);
		ops_inval_queue(ofs, (fuse_ino_t)node_app_ino(slot));
		if (!b && ofs->se)
			fuse_lowlevel_notify_inval_entry(ofs->se, OPS_ROOT_INO,
							 name, strlen(name));
	}
	ops_inval_queue(ofs, OPS_ROOT_INO);
	return changed;
}

/* The hooks of next in place of the running ones (which point into the
 * configuration before). Swapped under the lock every poke holds; the old
 * runner is stopped after it, since a hook it runs may take a while. */
static void ops_reload_hooks(struct ops_fs *ofs, const struct config *next)
{
	struct err e = { 0 };
	struct hooks *old, *nh = hooks_start(next, ops_hook_digest,
					     ops_hook_expire, ofs, &e);

	if (!nh && e.code != ERR_OK)
		log_error("reload: on_change hooks not started: %s", e.msg);
	pthread_rwlock_wrlock(&ofs->reload_lock);
	old = ofs->hooks;
	ofs->hooks = nh;
	pthread_rwlock_unlock(&ofs->reload_lock);
	hooks_stop(old);
}

int ops_reload(struct ops_fs *ofs, const char *path, struct err *e)
{
	const struct config *prev = ofs->edit.cfg;
	struct config *next = ops_reload_read(ofs, path, e);
	size_t changed;

	if (!next)
		return -1;
	if (next->cache_bytes != prev->cache_bytes)
		log_warn("%s: cache_size takes effect at the next mount", path);
	if (ops_reload_swap(ofs, next, e) < 0)
		return -1;
	changed = ops_reload_inval(ofs, prev);
	ops_inval_drain(&ofs->inval, 5000);
	ops_reload_hooks(ofs, next);
	log_info("reloaded %s: %zu apps, %zu of them added, removed or changed",
		 path, next->napps, changed);
	return 0;
}
