/* main.c - command line, configuration, mount, daemon, reload.
 *
 *   secretfs [-f] [-d] [-o config=PATH] [-o log=LEVEL|DEST] [-o opts] [CONFIG] MOUNTPOINT
 *   secretfs check CONFIG [APP...]      (fs/cli.c: no mount)
 *   secretfs render CONFIG APP [--format env|json|sh|docker]
 *
 * Everything that can fail for a reason the user should see (options,
 * configuration, providers, a live secretfs already at the mountpoint,
 * the mount itself) happens before the process daemonizes, so the error
 * reaches the terminal and the command returns only once the mount is live.
 * SIGHUP reloads the configuration (main_reload), mounted as it is.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "cli.h"
#include "config.h"
#include "../base/log.h"
#include "notify.h"
#include "mountpoint.h"
#include "ops.h"

struct main_opts {
	char *config;
	char *level;	/* -o log=LEVEL */
	char *dest;	/* -o log=stderr|syslog|FILE */
	char *kernel_cache;
	unsigned max_background;	/* 0: ops.c's */
	bool ro;
	/* the words that are not options: MOUNTPOINT, or SOURCE MOUNTPOINT
	 * the way mount(8) runs us for an fstab line of type fuse.secretfs */
	const char *words[2];
	int nwords;
};

enum { MAIN_KEY_RO, MAIN_KEY_LOG };

static const struct fuse_opt main_opt_table[] = {
	{ "config=%s", offsetof(struct main_opts, config), 0 },
	FUSE_OPT_KEY("log=", MAIN_KEY_LOG),
	{ "kernel_cache=%s", offsetof(struct main_opts, kernel_cache), 0 },
	{ "max_background=%u", offsetof(struct main_opts, max_background), 0 },
	FUSE_OPT_KEY("ro", MAIN_KEY_RO),
	FUSE_OPT_END
};

/* log= is a level (error, warn, info, debug) or where lines go (stderr,
 * syslog, or a file by its absolute path); both may be given. */
static int main_opt_log(struct main_opts *o, const char *v)
{
	char **to = NULL;

	if (log_level_parse(v) >= 0)
		to = &o->level;
	else if (!strcmp(v, "stderr") || !strcmp(v, "syslog") || v[0] == '/')
		to = &o->dest;
	if (to) {
		free(*to);
		*to = strdup(v);
		return *to ? 0 : -1;
	}
	fprintf(stderr, "secretfs: log=%s: a level (error, warn, info, debug) or stderr, syslog or /path/of/file\n", v);
	return -1;
}

/* "ro" is noted and left for the mount; the words are taken aside. */
static int main_opt_proc(void *data, const char *arg, int key,
			 struct fuse_args *outargs)
{
	struct main_opts *o = data;

	if (key == MAIN_KEY_RO)
		o->ro = true;
	if (key == MAIN_KEY_LOG)
		return main_opt_log(o, arg + strlen("log="));
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	if (o->nwords == 2) {
		fprintf(stderr, "secretfs: too many arguments: '%s' (see --help)\n", arg);
		return -1;
	}
	o->words[o->nwords++] = arg;
	return 0;
}

/* Give libfuse its mountpoint back. With two words (secretfs CONFIG DIR,
 * mount -t fuse.secretfs CONFIG DIR, or an fstab line), the first is the
 * config file unless -o config= names one; "secretfs" or "none" there
 * means the default (older fstab lines). A file that is not there is an
 * error, never a reason to read another. */
static int main_words(struct main_opts *o, struct fuse_args *args)
{
	const char *src = o->words[0];

	if (o->nwords == 0)
		return 0;
	if (o->nwords == 2 && !o->config && strcmp(src, "secretfs") &&
	    strcmp(src, "none")) {
		o->config = strdup(src);
		if (!o->config)
			return -1;
	}
	return fuse_opt_add_arg(args, o->words[o->nwords - 1]);
}

/* Worker threads: libfuse's 10 all block behind one slow provider fetch
 * while requests for other apps wait; 64 idle threads cost little. */
#define MAIN_MAX_THREADS 64

/* fuse_cmdline_help()'s text, with the defaults secretfs uses (its own
 * states libfuse's max_threads default, 10) */
static void main_cmdline_help(void)
{
	printf("    -h   --help            print help\n"
	       "    -V   --version         print version\n"
	       "    -d   -o debug          enable debug output (implies -f)\n"
	       "    -f                     foreground operation\n"
	       "    -s                     disable multi-threaded operation\n"
	       "    -o clone_fd            use separate fuse device fd for each thread\n"
	       "                           (may improve performance)\n"
	       "    -o max_idle_threads    the maximum number of idle worker threads\n"
	       "                           allowed (default: no limit, idle threads stay)\n"
	       "    -o max_threads         the maximum number of worker threads\n"
	       "                           allowed (default: %d)\n", MAIN_MAX_THREADS);
}

/* The config path as one absolute name: the daemon leaves its working
 * directory, reloads read it again, and the mount table shows it. */
static int main_config_path(struct main_opts *o)
{
	const char *path = o->config ? o->config : CONFIG_DEFAULT_PATH;
	char *abs = realpath(path, NULL);

	if (!abs) {
		fprintf(stderr, "secretfs: configuration %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (path[0] == '/') {
		/* as given, so an fstab line's source matches the mount table's
		 * and mount -a sees the mount as done */
		free(abs);
		abs = strdup(path);
		if (!abs)
			return -1;
	}
	free(o->config);
	o->config = abs;
	return 0;
}

static void main_usage(const char *prog)
{
	printf("usage: %s [options] [CONFIG] MOUNTPOINT\n"
	       "       %s check CONFIG [APP...]\n"
	       "       %s render CONFIG APP [--format env|json|sh|docker]\n\n"
	       "Shows each application's secrets as files: MOUNTPOINT/APP/.env,\n"
	       "MOUNTPOINT/APP/.env.keys and MOUNTPOINT/APP/KEY.\n\n"
	       "secretfs options:\n"
	       "    -o config=PATH         configuration file (default %s; or\n"
	       "                           give it before MOUNTPOINT)\n"
	       "    -o log=LEVEL           error, warn, info (default) or debug\n"
	       "    -o log=DEST            stderr, syslog or /path/to/file (default:\n"
	       "                           stderr in the foreground or under journald,\n"
	       "                           else syslog)\n"
	       "    -o kernel_cache=no     serve every read from the daemon (no\n"
	       "                           plaintext in the kernel's page cache)\n"
	       "    -o ro                  read-only: opens never reach the daemon,\n"
	       "                           reads are as fast as a local file\n"
	       "    -o max_background=N    requests the kernel sends without waiting\n"
	       "                           (closes among them; default %u, at most\n"
	       "                           65535)\n\n",
	       prog, prog, prog, CONFIG_DEFAULT_PATH, OPS_MAX_BACKGROUND);
	main_cmdline_help();
	fuse_lowlevel_help();
}

/* No core dump, no ptrace by other users, no /proc/PID/mem for them:
 * the process holds secrets in memory. */
static void main_harden(void)
{
	struct rlimit none = { 0, 0 };

	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0);
}

/* The options every secretfs mount has. The mount table's source is the
 * config file (commas escaped for libfuse's option parser). */
static int main_mount_options(struct fuse_args *args, const char *config)
{
	char opt[PATH_MAX * 2 + 64];
	size_t n = (size_t)snprintf(opt, sizeof(opt),
				    "-odefault_permissions,subtype=secretfs,fsname=");

	for (const char *c = config; *c && n + 3 < sizeof(opt); c++) {
		if (*c == ',' || *c == '\\')
			opt[n++] = '\\';
		opt[n++] = *c;
	}
	opt[n] = '\0';
	if (fuse_opt_add_arg(args, opt) < 0)
		return -1;
	/* containers and service users must reach their own folders */
	if (geteuid() == 0 && fuse_opt_add_arg(args, "-oallow_other") < 0)
		return -1;
	return 0;
}

static bool main_user_set_threads(int argc, char *argv[])
{
	for (int i = 1; i < argc; i++)
		if (strstr(argv[i], "max_threads="))
			return true;
	return false;
}

static int main_loop(struct fuse_session *se, const struct fuse_cmdline_opts *cmd)
{
	struct fuse_loop_config *lc;
	int rc;

	if (cmd->singlethread)
		return fuse_session_loop(se);
	lc = fuse_loop_cfg_create();
	if (!lc)
		return -1;
	fuse_loop_cfg_set_clone_fd(lc, (unsigned)cmd->clone_fd);
	/* UINT_MAX means "not given": keep libfuse's defaults */
	if (cmd->max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(lc, cmd->max_idle_threads);
	if (cmd->max_threads != UINT_MAX)
		fuse_loop_cfg_set_max_threads(lc, cmd->max_threads);
	rc = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	return rc;
}

static int main_load(const struct main_opts *o, const struct fuse_cmdline_opts *cmd,
		     struct config *cfg, struct appfs *afs, int *log_level)
{
	int level = o->level ? log_level_parse(o->level) : LOG_LVL_INFO;
	struct err e = { 0 };

	if (o->kernel_cache && strcmp(o->kernel_cache, "yes") &&
	    strcmp(o->kernel_cache, "no")) {
		fprintf(stderr, "secretfs: kernel_cache=%s: say yes or no\n",
			o->kernel_cache);
		return -1;
	}
	*log_level = cmd->debug ? LOG_LVL_DEBUG : level;
	log_init((enum log_level)*log_level, false);
	if (config_load(o->config, cfg, &e) < 0 || appfs_open(afs, cfg, &e) < 0) {
		log_error("%s", e.msg);
		return -1;
	}
	return 0;
}

/* Type=notify: systemd counts the service started only now. */
static void main_notify_ready(size_t napps, const char *mountpoint)
{
	char status[300];

	snprintf(status, sizeof(status), "%zu apps mounted at %.200s", napps,
		 mountpoint);
	notify_ready(status);
}

/* Where the daemon's lines go, opened before it daemonizes (which points
 * stderr at /dev/null): a descriptor, or -1 for syslog. In the foreground,
 * stderr; under systemd (JOURNAL_STREAM set, stderr no terminal), stderr,
 * which journald keeps even where no syslog daemon runs; else syslog. */
static int main_log_fd(const struct main_opts *o, bool foreground)
{
	const char *dest = o->dest;
	int fd;

	if (!dest)
		dest = foreground || (getenv("JOURNAL_STREAM") && !isatty(STDERR_FILENO)) ?
			"stderr" : "syslog";
	if (!strcmp(dest, "syslog"))
		return -1;
	if (!strcmp(dest, "stderr"))
		fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	else
		fd = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		fprintf(stderr, "secretfs: log=%s: %s\n", dest, strerror(errno));
	return fd < 0 ? -2 : fd;
}

/* ---- reload ---- */

/* The thread SIGHUP is for: blocked in every other thread, taken here. */
struct main_reloader {
	pthread_t thread;
	struct ops_fs *ofs;
	const char *config;
	/* set by the main thread, read by the reloader: no signal handler
	 * sets it (the reloader sigwait()s), so it needs an atomic, not
	 * volatile sig_atomic_t, which orders nothing between threads */
	atomic_bool stop;
	bool running;
};

/* One SIGHUP (systemctl reload) re-reads the config and applies it,
 * mounted as it is (fs/ops.h: ops_reload), between RELOADING=1 and
 * READY=1 to systemd. */
static void main_reload(struct ops_fs *ofs, const char *config)
{
	struct err e = { 0 };

	log_info("SIGHUP: reloading %s", config);
	notify_reloading();
	if (ops_reload(ofs, config, &e) < 0)
		log_error("reload refused, still serving the configuration loaded before: %s",
			  e.msg);
	/* after a refusal too: systemd would otherwise stay "reloading" */
	notify_ready(NULL);
}

static void *main_reloader_main(void *arg)
{
	struct main_reloader *r = arg;
	sigset_t hup;
	int sig;

	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	while (!atomic_load(&r->stop)) {
		if (sigwait(&hup, &sig) != 0 || atomic_load(&r->stop))
			continue;
		main_reload(r->ofs, r->config);
	}
	return NULL;
}

/* Take SIGHUP from libfuse (which would end the mount on it) before any
 * thread exists: every thread inherits the mask, so only the reloader's
 * sigwait() sees it. */
static int main_reloader_start(struct main_reloader *r, struct ops_fs *ofs,
			       const char *config)
{
	sigset_t hup;

	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	r->ofs = ofs;
	r->config = config;
	if (pthread_sigmask(SIG_BLOCK, &hup, NULL) != 0 ||
	    pthread_create(&r->thread, NULL, main_reloader_main, r) != 0)
		return -1;
	r->running = true;
	return 0;
}

static void main_reloader_stop(struct main_reloader *r)
{
	if (!r->running)
		return;
	atomic_store(&r->stop, true);
	pthread_kill(r->thread, SIGHUP);
	pthread_join(r->thread, NULL);
	r->running = false;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = { 0 };
	struct main_opts o = { 0 };
	struct config cfg = { 0 };
	struct appfs afs = { 0 };
	struct ops_fs ofs;
	struct main_reloader reloader = { 0 };
	struct fuse_session *se;
	struct err e = { 0 };
	int log_level, log_fd = -1, rc = 1;

	main_harden();
	/* check and render: no FUSE, their own arguments */
	if (argc > 1 && cli_is_command(argv[1]))
		return cli_main(argc - 1, argv + 1);
	if (fuse_opt_parse(&args, &o, main_opt_table, main_opt_proc) < 0 ||
	    main_words(&o, &args) < 0 || fuse_parse_cmdline(&args, &cmd) < 0)
		goto out_args;
	if (cmd.show_help) {
		main_usage(argv[0]);
		rc = 0;
		goto out_args;
	}
	if (cmd.show_version) {
		printf("secretfs %s\n", SECRETFS_VERSION);
		fflush(stdout);	/* fuse_lowlevel_version() runs fusermount3 -V */
		fuse_lowlevel_version();
		rc = 0;
		goto out_args;
	}
	if (!main_user_set_threads(argc, argv))
		cmd.max_threads = MAIN_MAX_THREADS;
	if (o.max_background > OPS_MAX_BACKGROUND) {
		fprintf(stderr, "secretfs: max_background=%u: at most %u\n",
			o.max_background, OPS_MAX_BACKGROUND);
		goto out_args;
	}
	if (!cmd.mountpoint) {
		fprintf(stderr, "secretfs: no mountpoint given (see --help)\n");
		goto out_args;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "secretfs: libsodium failed to initialize\n");
		goto out_args;
	}
	secmem_init_json();
	if (main_config_path(&o) < 0 || main_load(&o, &cmd, &cfg, &afs, &log_level) < 0)
		goto out_config;
	log_fd = main_log_fd(&o, cmd.foreground);
	if (log_fd == -2)
		goto out_config;
	if (mountpoint_prepare(cmd.mountpoint, &e) < 0) {
		fprintf(stderr, "secretfs: %s\n", e.msg);
		goto out_config;
	}
	if (ops_fs_init(&ofs, &afs, &cfg) < 0 || main_mount_options(&args, o.config) < 0) {
		fprintf(stderr, "secretfs: out of memory\n");
		goto out_config;
	}
	ofs.kernel_cache = !o.kernel_cache || !strcmp(o.kernel_cache, "yes");
	ofs.read_only = o.ro;
	ofs.max_background = o.max_background;
	se = fuse_session_new(&args, &ops_table, sizeof(ops_table), &ofs);
	if (!se)
		goto out_ops;
	if (fuse_set_signal_handlers(se) < 0)
		goto out_session;
	if (fuse_session_mount(se, cmd.mountpoint) < 0)
		goto out_signals;
	if (fuse_daemonize(cmd.foreground) < 0)
		goto out_unmount;
	if (log_fd >= 0)
		log_init_fd((enum log_level)log_level, log_fd);
	else
		log_init((enum log_level)log_level, true);
	/* threads only now: fuse_daemonize() forks */
	if (main_reloader_start(&reloader, &ofs, o.config) < 0 ||
	    ops_start(&ofs, se, &e) < 0) {
		log_error("%s", reloader.running ? e.msg : "cannot start the reload thread");
		goto out_unmount;
	}
	log_info("mounted %zu apps of %s at %s", cfg.napps, o.config, cmd.mountpoint);
	main_notify_ready(cfg.napps, cmd.mountpoint);
	/* the loop returns the signal number after SIGTERM/SIGINT: a clean
	 * stop; negative is a failure */
	rc = main_loop(se, &cmd) < 0 ? 1 : 0;
	notify_stopping();
	log_info("unmounting %s", cmd.mountpoint);
out_unmount:
	main_reloader_stop(&reloader);
	ops_stop(&ofs);
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_ops:
	/* the cache's refresher calls into ops: it stops with the appfs */
	appfs_close(&afs);
	ops_fs_destroy(&ofs);
	config_free(&cfg);
	goto out_args;
out_config:
	appfs_close(&afs);
	config_free(&cfg);
out_args:
	free(cmd.mountpoint);
	free(o.config);
	free(o.level);
	free(o.dest);
	free(o.kernel_cache);
	if (log_fd >= 0)
		close(log_fd);
	fuse_opt_free_args(&args);
	return rc;
}
