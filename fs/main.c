/* main.c - command line, configuration, mount, daemon.
 *
 *   secretfs [-f] [-d] [-o config=PATH] [-o log=LEVEL] [-o opts] MOUNTPOINT
 *   secretfs check CONFIG [APP...]      (fs/cli.c: no mount)
 *   secretfs render CONFIG APP [--format env|json|sh|docker]
 *
 * Everything that can fail for a reason the user should see (options,
 * configuration, providers, the mount itself) happens before the process
 * daemonizes, so the error reaches the terminal and the command returns only
 * once the mount is live.
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
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "cli.h"
#include "config.h"
#include "../base/log.h"
#include "notify.h"
#include "ops.h"

struct main_opts {
	char *config;
	char *log;
	char *kernel_cache;
	bool ro;
	/* the words that are not options: MOUNTPOINT, or SOURCE MOUNTPOINT
	 * the way mount(8) runs us for an fstab line of type fuse.secretfs */
	const char *words[2];
	int nwords;
};

enum { MAIN_KEY_RO };

static const struct fuse_opt main_opt_table[] = {
	{ "config=%s", offsetof(struct main_opts, config), 0 },
	{ "log=%s", offsetof(struct main_opts, log), 0 },
	{ "kernel_cache=%s", offsetof(struct main_opts, kernel_cache), 0 },
	FUSE_OPT_KEY("ro", MAIN_KEY_RO),
	FUSE_OPT_END
};

/* "ro" is noted and left for the mount; the words are taken aside. */
static int main_opt_proc(void *data, const char *arg, int key,
			 struct fuse_args *outargs)
{
	struct main_opts *o = data;

	if (key == MAIN_KEY_RO)
		o->ro = true;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	if (o->nwords == 2) {
		fprintf(stderr, "secretfs: too many arguments: '%s' (see --help)\n", arg);
		return -1;
	}
	o->words[o->nwords++] = arg;
	return 0;
}

/* Give libfuse its mountpoint back. With two words (mount -t
 * fuse.secretfs SOURCE DIR, or an fstab line), SOURCE is the config file
 * when it names one and no -o config= says otherwise. */
static int main_words(struct main_opts *o, struct fuse_args *args)
{
	struct stat st;

	if (o->nwords == 0)
		return 0;
	if (o->nwords == 2 && !o->config && stat(o->words[0], &st) == 0 &&
	    S_ISREG(st.st_mode)) {
		o->config = strdup(o->words[0]);
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

static void main_usage(const char *prog)
{
	printf("usage: %s [options] [CONFIG] MOUNTPOINT\n"
	       "       %s check CONFIG [APP...]\n"
	       "       %s render CONFIG APP [--format env|json|sh|docker]\n\n"
	       "Shows each application's secrets as files: MOUNTPOINT/APP/.env,\n"
	       "MOUNTPOINT/APP/.env.keys and MOUNTPOINT/APP/KEY.\n\n"
	       "secretfs options:\n"
	       "    -o config=PATH         configuration file (default %s)\n"
	       "    -o log=LEVEL           error, warn, info (default) or debug\n"
	       "    -o kernel_cache=no     serve every read from the daemon (no\n"
	       "                           plaintext in the kernel's page cache)\n"
	       "    -o ro                  read-only: opens never reach the daemon,\n"
	       "                           reads are as fast as a local file\n\n",
	       prog, prog, prog, CONFIG_DEFAULT_PATH);
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

/* The options every secretfs mount has. */
static int main_mount_options(struct fuse_args *args)
{
	if (fuse_opt_add_arg(args, "-odefault_permissions,subtype=secretfs,fsname=secretfs") < 0)
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
	int level = o->log ? log_level_parse(o->log) : LOG_LVL_INFO;
	struct err e = { 0 };

	if (level < 0) {
		fprintf(stderr, "secretfs: unknown log level '%s' (error, warn, info, debug)\n",
			o->log);
		return -1;
	}
	if (o->kernel_cache && strcmp(o->kernel_cache, "yes") &&
	    strcmp(o->kernel_cache, "no")) {
		fprintf(stderr, "secretfs: kernel_cache=%s: say yes or no\n",
			o->kernel_cache);
		return -1;
	}
	*log_level = cmd->debug ? LOG_LVL_DEBUG : level;
	log_init((enum log_level)*log_level, false);
	if (config_load(o->config ? o->config : CONFIG_DEFAULT_PATH, cfg, &e) < 0 ||
	    appfs_open(afs, cfg, &e) < 0) {
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

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = { 0 };
	struct main_opts o = { 0 };
	struct config cfg = { 0 };
	struct appfs afs = { 0 };
	struct ops_fs ofs;
	struct fuse_session *se;
	struct err e = { 0 };
	int log_level, rc = 1;

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
	if (!cmd.mountpoint) {
		fprintf(stderr, "secretfs: no mountpoint given (see --help)\n");
		goto out_args;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "secretfs: libsodium failed to initialize\n");
		goto out_args;
	}
	secmem_init_json();
	if (main_load(&o, &cmd, &cfg, &afs, &log_level) < 0)
		goto out_config;
	if (ops_fs_init(&ofs, &afs, &cfg) < 0 || main_mount_options(&args) < 0) {
		fprintf(stderr, "secretfs: out of memory\n");
		goto out_config;
	}
	ofs.kernel_cache = !o.kernel_cache || !strcmp(o.kernel_cache, "yes");
	ofs.read_only = o.ro;
	se = fuse_session_new(&args, &ops_table, sizeof(ops_table), &ofs);
	if (!se)
		goto out_ops;
	if (fuse_set_signal_handlers(se) < 0)
		goto out_session;
	if (fuse_session_mount(se, cmd.mountpoint) < 0)
		goto out_signals;
	if (fuse_daemonize(cmd.foreground) < 0)
		goto out_unmount;
	if (!cmd.foreground)
		log_init((enum log_level)log_level, true);
	/* threads only now: fuse_daemonize() forks */
	if (ops_start(&ofs, se, &e) < 0) {
		log_error("%s", e.msg);
		goto out_unmount;
	}
	log_info("mounted %zu apps at %s", cfg.napps, cmd.mountpoint);
	main_notify_ready(cfg.napps, cmd.mountpoint);
	/* the loop returns the signal number after SIGTERM/SIGINT/SIGHUP:
	 * a clean stop; negative is a failure */
	rc = main_loop(se, &cmd) < 0 ? 1 : 0;
	notify_stopping();
	log_info("unmounting %s", cmd.mountpoint);
out_unmount:
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
	free(o.log);
	free(o.kernel_cache);
	fuse_opt_free_args(&args);
	return rc;
}
