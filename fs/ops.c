/* ops.c - the FUSE low-level adapter.
 *
 * Inodes: 1 is the root, 2..napps+1 the app folders (apps are fixed at
 * mount), then one inode per (app, file name) ever looked up, kept for the
 * life of the mount so a name always has the same inode. Everything a file
 * shows comes from fs/app.c; this file only maps it to FUSE replies and
 * struct err codes to errno.
 *
 * Reads: open() takes a snapshot of the file, so a reader sees one version
 * from open to close; files are direct_io, so the kernel never serves a
 * size or page it cached from an older version.
 * Writes: buffered per open file, committed on flush (close) or fsync, so
 * close() reports whether the store took the change.
 */
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

#define OPS_ROOT_INO FUSE_ROOT_ID
#define OPS_DIR_TIMEOUT 1.0	/* the tree of apps never changes under a mount */

struct ops_node {
	fuse_ino_t ino;
	size_t app;
	struct ops_node *next;	/* in the same app */
	char name[];
};

/* An open file: the snapshot it reads, and what a writer wrote. */
struct ops_handle {
	size_t app;
	const char *name;	/* the node's */
	pthread_mutex_t lock;
	struct secbuf data;
	struct kvmap base;	/* .env: the values the snapshot showed */
	bool dirty;	/* written to: flush commits */
	bool truncated;	/* opened with O_TRUNC and not written: release commits */
	bool append;
	int failed;	/* errno of a failed write: the commit fails with it */
};

/* ---- inodes ---- */

static struct ops_fs *ops_fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static fuse_ino_t ops_first_file_ino(const struct ops_fs *ofs)
{
	return OPS_ROOT_INO + 1 + ofs->cfg->napps;
}

static bool ops_is_app(const struct ops_fs *ofs, fuse_ino_t ino)
{
	return ino > OPS_ROOT_INO && ino < ops_first_file_ino(ofs);
}

static const struct app_conf *ops_app(const struct ops_fs *ofs, fuse_ino_t ino)
{
	return &ofs->cfg->apps[ino - OPS_ROOT_INO - 1];
}

static struct ops_node *ops_node(struct ops_fs *ofs, fuse_ino_t ino)
{
	struct ops_node *n = NULL;

	pthread_mutex_lock(&ofs->lock);
	if (ino >= ops_first_file_ino(ofs) &&
	    ino - ops_first_file_ino(ofs) < ofs->nnodes)
		n = ofs->nodes[ino - ops_first_file_ino(ofs)];
	pthread_mutex_unlock(&ofs->lock);
	return n;
}

/* The inode of (app, name), made on first use. 0 when out of memory. */
static fuse_ino_t ops_node_ino(struct ops_fs *ofs, size_t app, const char *name)
{
	struct ops_node *n;
	fuse_ino_t ino = 0;

	pthread_mutex_lock(&ofs->lock);
	for (n = ofs->heads[app]; n && !ino; n = n->next)
		if (!strcmp(n->name, name))
			ino = n->ino;
	if (!ino && ofs->nnodes == ofs->cap) {
		size_t cap = ofs->cap ? ofs->cap * 2 : 64;
		struct ops_node **nodes = realloc(ofs->nodes, cap * sizeof(*nodes));

		if (nodes) {
			ofs->nodes = nodes;
			ofs->cap = cap;
		}
	}
	n = ino || ofs->nnodes == ofs->cap ? NULL :
	    malloc(sizeof(*n) + strlen(name) + 1);
	if (n) {
		n->app = app;
		n->ino = ino = ops_first_file_ino(ofs) + ofs->nnodes;
		strcpy(n->name, name);
		n->next = ofs->heads[app];
		ofs->heads[app] = n;
		ofs->nodes[ofs->nnodes++] = n;
	}
	pthread_mutex_unlock(&ofs->lock);
	return ino;
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
	};

	if ((unsigned)e->code >= sizeof(map) / sizeof(map[0]) || !map[e->code])
		return EIO;
	return map[e->code];
}

/* Reply with the error, logged with its reason (which names the app). */
static void ops_reply_err(fuse_req_t req, const struct err *e)
{
	if (e->code == ERR_NOTFOUND)
		log_debug("%s", e->msg);
	else
		log_error("%s", e->msg);
	fuse_reply_err(req, ops_errno(e));
}

static void ops_dir_attr(struct ops_fs *ofs, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_nlink = 2;
	st->st_mtime = st->st_ctime = st->st_atime = ofs->mounted;
	if (ino == OPS_ROOT_INO) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink += ofs->cfg->napps;
		return;
	}
	st->st_mode = S_IFDIR | app_dir_mode(ops_app(ofs, ino)->mode);
	st->st_uid = ops_app(ofs, ino)->uid;
	st->st_gid = ops_app(ofs, ino)->gid;
}

static void ops_file_attr(struct ops_fs *ofs, fuse_ino_t ino, size_t app,
			  size_t size, struct stat *st)
{
	const struct app_conf *a = &ofs->cfg->apps[app];

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_nlink = 1;
	st->st_mode = S_IFREG | a->mode;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_mtime = st->st_ctime = st->st_atime = ofs->mounted;
}

/* The attributes of a file: its size is what a read returns right now. */
static int ops_stat_file(struct ops_fs *ofs, fuse_ino_t ino,
			 const struct ops_node *n, struct stat *st, struct err *e)
{
	struct secbuf data = SECBUF_INIT;
	int rc = app_read(ofs->appfs, &ofs->cfg->apps[n->app], n->name, &data,
			  NULL, e);

	if (rc == 0)
		ops_file_attr(ofs, ino, n->app, data.len, st);
	secbuf_free(&data);
	return rc;
}

/* ---- lookup and attributes ---- */

static void ops_lookup_app(fuse_req_t req, struct ops_fs *ofs, const char *name)
{
	const struct app_conf *a = config_app(ofs->cfg, name);
	struct fuse_entry_param ep = { .attr_timeout = OPS_DIR_TIMEOUT,
				       .entry_timeout = OPS_DIR_TIMEOUT };

	if (!a) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	ep.ino = OPS_ROOT_INO + 1 + (fuse_ino_t)(a - ofs->cfg->apps);
	ops_dir_attr(ofs, ep.ino, &ep.attr);
	fuse_reply_entry(req, &ep);
}

static void ops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct fuse_entry_param ep = { 0 };
	struct ops_node *n;
	struct err e = { 0 };
	size_t app;

	if (parent == OPS_ROOT_INO) {
		ops_lookup_app(req, ofs, name);
		return;
	}
	if (!ops_is_app(ofs, parent)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	app = parent - OPS_ROOT_INO - 1;
	if (app_lookup(ofs->appfs, &ofs->cfg->apps[app], name, &e) < 0) {
		ops_reply_err(req, &e);
		return;
	}
	ep.ino = ops_node_ino(ofs, app, name);
	n = ep.ino ? ops_node(ofs, ep.ino) : NULL;
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (ops_stat_file(ofs, ep.ino, n, &ep.attr, &e) < 0) {
		ops_reply_err(req, &e);
		return;
	}
	fuse_reply_entry(req, &ep);
}

static void ops_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct ops_node *n;
	struct stat st;
	struct err e = { 0 };

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
		struct ops_handle *h = (struct ops_handle *)(uintptr_t)fi->fh;

		pthread_mutex_lock(&h->lock);
		ops_file_attr(ofs, ino, n->app, h->data.len, &st);
		pthread_mutex_unlock(&h->lock);
	} else if (ops_stat_file(ofs, ino, n, &st, &e) < 0) {
		ops_reply_err(req, &e);
		return;
	}
	fuse_reply_attr(req, &st, 0);
}

/* ---- folders ---- */

static void ops_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct strv *names = calloc(1, sizeof(*names));
	struct err e = { 0 };
	int rc = names ? 0 : err_set(&e, ERR_NOMEM, "out of memory");

	/* the listing is taken once, so readdir's offsets stay valid */
	for (size_t i = 0; rc == 0 && ino == OPS_ROOT_INO && i < ofs->cfg->napps; i++)
		if (strv_push(names, ofs->cfg->apps[i].name) < 0)
			rc = err_set(&e, ERR_NOMEM, "out of memory");
	if (rc == 0 && ino != OPS_ROOT_INO)
		rc = app_list(ofs->appfs, ops_app(ofs, ino), names, &e);
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

static void ops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
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
		if (i == 0)
			st.st_ino = ino;
		else if (i == 1)
			st.st_ino = OPS_ROOT_INO;
		else if (ino == OPS_ROOT_INO)
			st.st_ino = OPS_ROOT_INO + 1 + (i - 2);
		else
			st.st_ino = ops_node_ino(ofs, ino - OPS_ROOT_INO - 1, name);
		len = fuse_add_direntry(req, buf + used, size - used, name, &st,
					(off_t)i + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void ops_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct strv *names = (struct strv *)(uintptr_t)fi->fh;

	strv_free(names);
	free(names);
	fuse_reply_err(req, 0);
}

/* ---- files ---- */

static void ops_handle_free(struct ops_handle *h)
{
	secbuf_free(&h->data);
	kvmap_free(&h->base);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Commit what was written, once. Caller holds h->lock. */
static int ops_commit(struct ops_fs *ofs, struct ops_handle *h, struct err *e)
{
	const struct app_conf *a = &ofs->cfg->apps[h->app];
	struct secbuf unused = SECBUF_INIT;
	int rc;

	if (!h->dirty && !h->truncated)
		return 0;
	if (h->failed) {
		/* part of what the writer meant is missing: commit none of it */
		h->dirty = h->truncated = false;
		return err_set(e, h->failed == EFBIG ? ERR_TOOBIG : ERR_NOMEM,
			       "app %s: %s: a write failed (%s); nothing was committed",
			       a->name, h->name, strerror(h->failed));
	}
	rc = app_write(ofs->appfs, a, h->name, &h->base, h->data.data,
		       h->data.len, e);
	/* a failure is reported once, to this close(); release does not retry */
	h->dirty = h->truncated = false;
	if (rc < 0)
		return -1;
	log_info("app %s: %s written", a->name, h->name);
	/* later writes through this handle change what was just committed */
	kvmap_free(&h->base);
	if (app_read(ofs->appfs, a, h->name, &unused, &h->base, e) < 0)
		log_warn("%s", e->msg);
	secbuf_free(&unused);
	return 0;
}

static struct ops_handle *ops_handle_open(struct ops_fs *ofs,
					  const struct ops_node *n,
					  struct err *e)
{
	struct ops_handle *h = calloc(1, sizeof(*h));

	if (!h) {
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	h->app = n->app;
	h->name = n->name;
	pthread_mutex_init(&h->lock, NULL);
	if (app_read(ofs->appfs, &ofs->cfg->apps[n->app], n->name, &h->data,
		     &h->base, e) < 0) {
		ops_handle_free(h);
		return NULL;
	}
	return h;
}

static void ops_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct ops_node *n = ops_node(ofs, ino);
	struct ops_handle *h;
	struct err e = { 0 };

	if (!n) {
		fuse_reply_err(req, ops_is_app(ofs, ino) || ino == OPS_ROOT_INO ? EISDIR : ENOENT);
		return;
	}
	h = ops_handle_open(ofs, n, &e);
	if (!h) {
		ops_reply_err(req, &e);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		h->append = fi->flags & O_APPEND;
		/* `> file` opens, dup2()s and closes the first descriptor before
		 * it writes: that flush must not commit an empty file. */
		if (fi->flags & O_TRUNC) {
			secbuf_clear(&h->data);
			h->truncated = true;
		}
	}
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	fuse_reply_open(req, fi);
}

static void ops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct ops_handle *h = (struct ops_handle *)(uintptr_t)fi->fh;
	size_t start;

	pthread_mutex_lock(&h->lock);
	start = (size_t)off < h->data.len ? (size_t)off : h->data.len;
	if (size > h->data.len - start)
		size = h->data.len - start;
	fuse_reply_buf(req, h->data.data + start, size);
	pthread_mutex_unlock(&h->lock);
}

/* Resize the buffer to len, zero-filling growth. Caller holds h->lock. */
static int ops_resize(struct ops_handle *h, size_t len)
{
	if (len > APP_FILE_MAX)
		return EFBIG;
	if (len <= h->data.len) {
		secbuf_truncate(&h->data, len);
	} else {
		if (secbuf_reserve(&h->data, len - h->data.len) < 0)
			return ENOMEM;
		memset(h->data.data + h->data.len, 0, len - h->data.len + 1);
		h->data.len = len;
	}
	h->dirty = true;
	return 0;
}

static void ops_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		      size_t size, off_t off, struct fuse_file_info *fi)
{
	struct ops_handle *h = (struct ops_handle *)(uintptr_t)fi->fh;
	size_t pos;
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	pos = h->append ? h->data.len : (size_t)off;
	if (pos > APP_FILE_MAX || size > APP_FILE_MAX - pos)
		rc = EFBIG;
	else if (pos + size > h->data.len)
		rc = ops_resize(h, pos + size);
	if (rc == 0) {
		memcpy(h->data.data + pos, buf, size);
		h->dirty = true;
	} else {
		h->failed = rc;
		h->dirty = true;
	}
	pthread_mutex_unlock(&h->lock);
	if (rc)
		fuse_reply_err(req, rc);
	else
		fuse_reply_write(req, size);
}

static void ops_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct ops_handle *h = (struct ops_handle *)(uintptr_t)fi->fh;
	struct err e = { 0 };
	int rc;

	pthread_mutex_lock(&h->lock);
	rc = h->dirty ? ops_commit(ofs, h, &e) : 0;
	pthread_mutex_unlock(&h->lock);
	if (rc < 0)
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
	struct ops_handle *h = (struct ops_handle *)(uintptr_t)fi->fh;
	struct err e = { 0 };

	/* flush normally committed already; this catches a lost one */
	if (ops_commit(ofs, h, &e) < 0)
		log_error("%s", e.msg);
	ops_handle_free(h);
	fuse_reply_err(req, 0);
}

/* truncate(2) without an open file: read, resize, commit at once. */
static int ops_truncate_path(struct ops_fs *ofs, const struct ops_node *n,
			     size_t len, struct err *e)
{
	struct ops_handle *h = ops_handle_open(ofs, n, e);
	int rc;

	if (!h)
		return -1;
	rc = ops_resize(h, len);
	if (rc)
		rc = err_set(e, rc == EFBIG ? ERR_TOOBIG : ERR_NOMEM,
			     "cannot resize to %zu bytes", len);
	else
		rc = ops_commit(ofs, h, e);
	ops_handle_free(h);
	return rc;
}

static void ops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	struct ops_fs *ofs = ops_fs_of(req);
	struct ops_node *n = ops_node(ofs, ino);
	struct err e = { 0 };
	int rc = 0;

	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		/* owner and mode come from the config */
		fuse_reply_err(req, EPERM);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && !n) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && fi && fi->fh) {
		struct ops_handle *h = (struct ops_handle *)(uintptr_t)fi->fh;

		pthread_mutex_lock(&h->lock);
		rc = ops_resize(h, (size_t)attr->st_size);
		pthread_mutex_unlock(&h->lock);
		if (rc) {
			fuse_reply_err(req, rc);
			return;
		}
	} else if ((to_set & FUSE_SET_ATTR_SIZE) &&
		   ops_truncate_path(ofs, n, (size_t)attr->st_size, &e) < 0) {
		ops_reply_err(req, &e);
		return;
	}
	/* times are accepted and not kept: tools that set them must not fail */
	ops_getattr(req, ino, fi);
}

static void ops_init(void *userdata, struct fuse_conn_info *conn)
{
	/* O_TRUNC arrives with open(), so `> file` is one operation */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* writes must reach the store at close, never later */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

const struct fuse_lowlevel_ops ops_table = {
	.init = ops_init,
	.lookup = ops_lookup,
	.getattr = ops_getattr,
	.setattr = ops_setattr,
	.opendir = ops_opendir,
	.readdir = ops_readdir,
	.releasedir = ops_releasedir,
	.open = ops_open,
	.read = ops_read,
	.write = ops_write,
	.flush = ops_flush,
	.fsync = ops_fsync,
	.release = ops_release,
};

int ops_fs_init(struct ops_fs *ofs, struct appfs *appfs, const struct config *cfg)
{
	memset(ofs, 0, sizeof(*ofs));
	ofs->appfs = appfs;
	ofs->cfg = cfg;
	ofs->mounted = time(NULL);
	ofs->heads = calloc(cfg->napps ? cfg->napps : 1, sizeof(*ofs->heads));
	if (!ofs->heads)
		return -1;
	pthread_mutex_init(&ofs->lock, NULL);
	return 0;
}

void ops_fs_destroy(struct ops_fs *ofs)
{
	for (size_t i = 0; i < ofs->nnodes; i++)
		free(ofs->nodes[i]);
	free(ofs->nodes);
	free(ofs->heads);
	pthread_mutex_destroy(&ofs->lock);
}
