/* coldfloor.c - the cold floor of scale.py: the least a FUSE daemon can do
 * to serve N app folders of one small .env each.
 *
 *   coldfloor -o dirs=N,size=BYTES [-o ro] [-o dir_timeout=S] [-s] [-f]
 *	      MOUNTPOINT
 *
 * Folders app00000..app{N-1} under the root, each holding one file .env
 * of BYTES bytes ('x's and a newline), answered from memory: no fetch, no
 * seal, no render, no lock. What is left is the FUSE path itself, so a
 * cold read of every .env here costs what the kernel and libfuse cost.
 *
 * Everything the kernel sees is what secretfs shows it (fs/ops.c, fs/main.c
 * at the time of writing), so the round trips are the same in number and
 * kind: the mount options (default_permissions, allow_other as root), the
 * init (no READDIRPLUS_AUTO, no writeback cache, ATOMIC_O_TRUNC,
 * max_background 65535), entry and attribute timeouts (1 s for folders,
 * 3600 s for files), st_blksize covering the file, READDIRPLUS of the root
 * carrying the folders' attributes, opens that reply keep_cache and
 * noflush, no ioctl handler (Python's isatty() still costs a round trip),
 * and libfuse's multithreaded loop with up to 64 threads (-s: the
 * single-threaded one). With -o ro the mount is read-only and, as secretfs
 * does there, the first open answers ENOSYS so the kernel sends no more
 * opens or releases (FUSE_CAP_NO_OPEN_SUPPORT). -o dir_timeout=S changes
 * the folders' timeouts from secretfs's 1 s, to see what the app folder's
 * LOOKUP costs.
 *
 * Our own code, shaped like libfuse's example hello_ll.c. Built by
 * tests/bench/benchlib.py at bench time: cc -O2 coldfloor.c $(pkg-config
 * --cflags --libs fuse3).
 */
#define FUSE_USE_VERSION 312	/* secretfs's: the loop config API */

#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FLOOR_DIR_TIMEOUT 1.0
#define FLOOR_FILE_TIMEOUT 3600.0
#define FLOOR_MAX_BACKGROUND 65535u
#define FLOOR_MAX_THREADS 64
#define FLOOR_FILE ".env"

struct floor_opts {
	unsigned dirs;
	unsigned size;
	int ro;
	double dir_timeout;	/* -o dir_timeout=S, for experiments */
};

struct floor {
	struct floor_opts o;
	char *text;		/* the one content every .env has */
	int no_open;
};

static const struct fuse_opt floor_opt_table[] = {
	{ "dirs=%u", offsetof(struct floor_opts, dirs), 0 },
	{ "size=%u", offsetof(struct floor_opts, size), 0 },
	{ "dir_timeout=%lf", offsetof(struct floor_opts, dir_timeout), 0 },
	/* noticed here and kept for the mount: it makes the mount read-only */
	{ "ro", offsetof(struct floor_opts, ro), 1 },
	FUSE_OPT_KEY("ro", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_END
};

/* Inodes: 1 the root, 2 + 2i folder i, 3 + 2i its .env. */
static int floor_is_dir(const struct floor *fl, fuse_ino_t ino, unsigned *i)
{
	if (ino < 2 || (ino - 2) / 2 >= fl->o.dirs || ino % 2)
		return 0;
	*i = (unsigned)((ino - 2) / 2);
	return 1;
}

static int floor_is_file(const struct floor *fl, fuse_ino_t ino)
{
	return ino >= 3 && ino % 2 && (ino - 3) / 2 < fl->o.dirs;
}

static void floor_stat(const struct floor *fl, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (floor_is_file(fl, ino)) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = fl->o.size;
		st->st_blocks = (fl->o.size + 511) / 512;
		/* secretfs's: a power of two covering the file, 4 KiB at least */
		st->st_blksize = 4096;
		while ((unsigned)st->st_blksize < fl->o.size)
			st->st_blksize <<= 1;
	} else {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	}
}

/* Folder i's name, "app%05u" as scale.py names its apps, into buf. */
static void floor_dir_name(unsigned i, char buf[16])
{
	snprintf(buf, 16, "app%05u", i);
}

/* The folder index name stands for; -1 when none. */
static long floor_dir_of(const struct floor *fl, const char *name)
{
	char *end;
	unsigned long i;

	if (strncmp(name, "app", 3) || strlen(name) != 8)
		return -1;
	i = strtoul(name + 3, &end, 10);
	return *end || i >= fl->o.dirs ? -1 : (long)i;
}

static void floor_init(void *userdata, struct fuse_conn_info *conn)
{
	struct floor *fl = userdata;

	if (fl->o.ro && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) &&
	    (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)) {
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT | FUSE_CAP_AUTO_INVAL_DATA;
		fl->no_open = 1;
	}
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->max_background = FLOOR_MAX_BACKGROUND;
	conn->congestion_threshold = FLOOR_MAX_BACKGROUND - FLOOR_MAX_BACKGROUND / 4;
}

static void floor_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct floor *fl = fuse_req_userdata(req);
	struct fuse_entry_param ep = { 0 };
	long i = parent == FUSE_ROOT_ID ? floor_dir_of(fl, name) : -1;
	unsigned d;

	if (i >= 0) {
		ep.ino = 2 + 2 * (fuse_ino_t)i;
		ep.attr_timeout = ep.entry_timeout = fl->o.dir_timeout;
	} else if (floor_is_dir(fl, parent, &d) && !strcmp(name, FLOOR_FILE)) {
		ep.ino = parent + 1;
		ep.attr_timeout = ep.entry_timeout = FLOOR_FILE_TIMEOUT;
	} else {
		fuse_reply_err(req, ENOENT);
		return;
	}
	floor_stat(fl, ep.ino, &ep.attr);
	fuse_reply_entry(req, &ep);
}

static void floor_getattr(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct floor *fl = fuse_req_userdata(req);
	struct stat st;
	unsigned d;

	(void)fi;
	if (ino != FUSE_ROOT_ID && !floor_is_dir(fl, ino, &d) &&
	    !floor_is_file(fl, ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	floor_stat(fl, ino, &st);
	fuse_reply_attr(req, &st, floor_is_file(fl, ino) ?
			FLOOR_FILE_TIMEOUT : fl->o.dir_timeout);
}

/* Entry i (0 ".", 1 "..", then the folder's entries) of folder ino into
 * buf; 0 when it does not fit, (size_t)-1 past the end. As secretfs does,
 * only the root's entries carry attributes in READDIRPLUS. */
static size_t floor_dirent(fuse_req_t req, struct floor *fl, fuse_ino_t ino,
			   size_t i, char *buf, size_t room, int plus)
{
	struct fuse_entry_param ep = { 0 };
	size_t n = ino == FUSE_ROOT_ID ? fl->o.dirs : 1;
	char name[16];
	size_t len;

	if (i >= n + 2)
		return (size_t)-1;
	ep.attr.st_mode = ino == FUSE_ROOT_ID || i < 2 ? S_IFDIR : S_IFREG;
	if (i < 2) {
		strcpy(name, i ? ".." : ".");
		ep.attr.st_ino = i ? FUSE_ROOT_ID : ino;
	} else if (ino == FUSE_ROOT_ID) {
		floor_dir_name((unsigned)(i - 2), name);
		ep.attr.st_ino = 2 + 2 * (i - 2);
		if (plus) {
			ep.ino = ep.attr.st_ino;
			ep.attr_timeout = ep.entry_timeout = fl->o.dir_timeout;
			floor_stat(fl, ep.ino, &ep.attr);
		}
	} else {
		strcpy(name, FLOOR_FILE);
		ep.attr.st_ino = ino + 1;
	}
	len = plus ? fuse_add_direntry_plus(req, buf, room, name, &ep, (off_t)i + 1)
		   : fuse_add_direntry(req, buf, room, name, &ep.attr, (off_t)i + 1);
	return len > room ? 0 : len;
}

static void floor_readdir_any(fuse_req_t req, fuse_ino_t ino, size_t size,
			      off_t off, int plus)
{
	struct floor *fl = fuse_req_userdata(req);
	char *buf = malloc(size);
	size_t used = 0, len;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off;; i++) {
		len = floor_dirent(req, fl, ino, i, buf + used, size - used, plus);
		if (len == 0 || len == (size_t)-1)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void floor_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	floor_readdir_any(req, ino, size, off, 0);
}

static void floor_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			      off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	floor_readdir_any(req, ino, size, off, 1);
}

static void floor_opendir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct floor *fl = fuse_req_userdata(req);
	unsigned d;

	if (ino != FUSE_ROOT_ID && !floor_is_dir(fl, ino, &d)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

static void floor_open(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct floor *fl = fuse_req_userdata(req);

	if (!floor_is_file(fl, ino))
		fuse_reply_err(req, EISDIR);
	else if (fl->no_open)
		fuse_reply_err(req, ENOSYS);	/* no opens from now on */
	else if ((fi->flags & O_ACCMODE) != O_RDONLY)
		fuse_reply_err(req, EACCES);
	else {
		fi->keep_cache = 1;
		fi->noflush = 1;
		fuse_reply_open(req, fi);
	}
}

static void floor_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct floor *fl = fuse_req_userdata(req);
	size_t start = (size_t)off < fl->o.size ? (size_t)off : fl->o.size;

	(void)ino;
	(void)fi;
	if (size > fl->o.size - start)
		size = fl->o.size - start;
	fuse_reply_buf(req, fl->text + start, size);
}

/* secretfs has one, so the kernel's RELEASE is answered the same way */
static void floor_release(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops floor_ops = {
	.init = floor_init,
	.lookup = floor_lookup,
	.getattr = floor_getattr,
	.opendir = floor_opendir,
	.readdir = floor_readdir,
	.readdirplus = floor_readdirplus,
	.open = floor_open,
	.read = floor_read,
	.release = floor_release,
};

/* secretfs's mount options (fs/main.c: main_mount_options). */
static int floor_mount_options(struct fuse_args *args)
{
	if (fuse_opt_add_arg(args, "-odefault_permissions,subtype=coldfloor,"
			     "fsname=coldfloor") < 0)
		return -1;
	if (geteuid() == 0 && fuse_opt_add_arg(args, "-oallow_other") < 0)
		return -1;
	return 0;
}

static int floor_loop(struct fuse_session *se,
		      const struct fuse_cmdline_opts *cmd)
{
	struct fuse_loop_config *lc;
	int rc;

	if (cmd->singlethread)
		return fuse_session_loop(se);
	lc = fuse_loop_cfg_create();
	if (!lc)
		return -1;
	fuse_loop_cfg_set_max_threads(lc, FLOOR_MAX_THREADS);
	rc = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	return rc;
}

/* The session, mounted and looping until unmounted; the exit status. */
static int floor_serve(struct fuse_args *args, struct fuse_cmdline_opts *cmd,
		       struct floor *fl)
{
	struct fuse_session *se = fuse_session_new(args, &floor_ops,
						   sizeof(floor_ops), fl);
	int rc = 1;

	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, cmd->mountpoint) == 0) {
			if (fuse_daemonize(cmd->foreground) == 0)
				rc = floor_loop(se, cmd) < 0 ? 1 : 0;
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	return rc;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = { 0 };
	struct floor fl = { .o.dir_timeout = FLOOR_DIR_TIMEOUT };
	int rc = 1;

	if (fuse_opt_parse(&args, &fl.o, floor_opt_table, NULL) < 0 ||
	    fuse_parse_cmdline(&args, &cmd) < 0)
		goto out;
	if (!cmd.mountpoint || !fl.o.dirs || !fl.o.size) {
		fprintf(stderr, "usage: coldfloor -o dirs=N,size=BYTES [-o ro] "
			"[-s] [-f] MOUNTPOINT\n");
		goto out;
	}
	fl.text = malloc(fl.o.size);
	if (!fl.text || floor_mount_options(&args) < 0)
		goto out;
	memset(fl.text, 'x', fl.o.size - 1);
	fl.text[fl.o.size - 1] = '\n';
	rc = floor_serve(&args, &cmd, &fl);
out:
	free(fl.text);
	free(cmd.mountpoint);
	fuse_opt_free_args(&args);
	return rc;
}
