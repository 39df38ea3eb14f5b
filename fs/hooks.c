/* hooks.c - change hooks: see hooks.h. */
#include "hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/log.h"
#include "../base/trust.h"

#define HOOKS_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define HOOKS_TICK_MS 100	/* how often a running command is looked at */
#define HOOKS_POLL_DEFAULT_MS 60000	/* when refresh is 0 */

struct hook_app {
	const struct app_conf *app;
	struct kvmap digest;	/* name -> hash, as last seen */
	bool known;		/* digest holds a first sight */
	bool poked;
	int64_t next_poll;
	int64_t due;		/* run at; 0: nothing pending */
	struct strv changed;	/* names gathered for the next run */
	pid_t pid;		/* running: the command (its process group) */
	int64_t started;
	bool killed;
	unsigned runs;
};

struct hooks {
	hooks_digest_fn digest;
	hooks_expire_fn expire;
	void *ctx;
	struct hook_app *apps;
	size_t n;
	pthread_t thread;
	pthread_mutex_t lock;	/* poked, stop, runs */
	pthread_cond_t cond;
	bool stop;
};

/* ---- argv ---- */

struct hooks_word {
	char *buf;
	size_t len;
	bool any;	/* a word started (even an empty '') */
};

static int hooks_word_put(struct hooks_word *w, char c)
{
	w->buf[w->len++] = c;
	w->any = true;
	return 0;
}

static int hooks_word_end(struct hooks_word *w, struct strv *argv)
{
	int rc = 0;

	if (w->any) {
		w->buf[w->len] = '\0';
		rc = strv_push(argv, w->buf);
	}
	w->len = 0;
	w->any = false;
	return rc;
}

int hooks_split(const char *cmd, struct strv *argv, struct err *e)
{
	struct hooks_word w = { malloc(strlen(cmd) + 1), 0, false };
	char quote = 0;
	int rc = w.buf ? 0 : err_oom(e);

	for (const char *p = cmd; rc == 0 && *p; p++) {
		if (quote == '\'') {
			if (*p == '\'')
				quote = 0;
			else
				hooks_word_put(&w, *p);
		} else if (quote == '"') {
			if (*p == '"')
				quote = 0;
			else if (*p == '\\' && p[1] && strchr("$`\"\\\n", p[1]))
				hooks_word_put(&w, *++p);
			else
				hooks_word_put(&w, *p);
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
			w.any = true;
		} else if (*p == '\\' && p[1]) {
			hooks_word_put(&w, *++p);
		} else if (*p == ' ' || *p == '\t' || *p == '\n') {
			rc = hooks_word_end(&w, argv) < 0 ? err_oom(e) : 0;
		} else {
			hooks_word_put(&w, *p);
		}
	}
	if (rc == 0 && quote)
		rc = err_set(e, ERR_INVALID, "unterminated %c quote", quote);
	if (rc == 0 && hooks_word_end(&w, argv) < 0)
		rc = err_oom(e);
	if (rc == 0 && argv->n == 0)
		rc = err_set(e, ERR_INVALID, "an empty command");
	free(w.buf);
	if (rc < 0)
		strv_free(argv);
	return rc;
}

/* ---- running the command ---- */

/* argv[0] as execve needs it: a name without / is looked up in PATH now,
 * in the parent (nothing in the child but async-signal-safe calls); a
 * relative path is from /, where the child runs it. */
static char *hooks_resolve(const char *name)
{
	char path[4096];
	const char *dir = HOOKS_PATH;

	if (name[0] == '/')
		return strdup(name);
	if (strchr(name, '/')) {
		snprintf(path, sizeof(path), "/%s", name);
		return strdup(path);
	}
	while (*dir) {
		size_t n = strcspn(dir, ":");

		snprintf(path, sizeof(path), "%.*s/%s", (int)n, dir, name);
		if (access(path, X_OK) == 0)
			return strdup(path);
		dir += n + (dir[n] == ':');
	}
	return NULL;
}

/* ---- trust ---- */

/* path, and every folder above its real path, trusted (base/trust.h):
 * whoever could change one could run anything as the hook's user. */
static int hooks_trust_path(const char *path, uid_t also, const char *power,
			    struct err *e)
{
	char *real = realpath(path, NULL);
	struct stat st;
	int rc;

	if (!real)
		return err_set(e, ERR_INVALID, "%s: %s", path, strerror(errno));
	rc = stat(real, &st) < 0 ? err_set(e, ERR_IO, "%s: %s", real, strerror(errno)) :
	     trust_stat(&st, real, also, false, power, e);
	for (char *slash; rc == 0 && (slash = strrchr(real, '/'));) {
		bool root = slash == real;

		slash[root] = '\0';	/* "/usr/bin" -> "/usr" -> "/" */
		if (stat(real, &st) < 0)
			rc = err_set(e, ERR_IO, "%s: %s", real, strerror(errno));
		else	/* a sticky folder (/tmp) lets no one replace what is ours */
			rc = trust_stat(&st, real, also, true, power, e);
		if (root)
			break;
	}
	free(real);
	return rc;
}

/* argv runs a shell's -c script: the script, else NULL. */
static const char *hooks_shell_script(char *const *argv, size_t n)
{
	static const char *const shells[] = { "sh", "bash", "dash", "ash", "ksh",
					      "mksh", "zsh" };
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	bool shell = false, c = false;
	size_t i = 1;

	for (size_t k = 0; k < sizeof(shells) / sizeof(*shells); k++)
		shell |= !strcmp(base, shells[k]);
	for (; shell && i < n && argv[i][0] == '-' && strcmp(argv[i], "--"); i++)
		c |= argv[i][1] != '-' && strchr(argv[i], 'c');
	i += i < n && !strcmp(argv[i], "--");
	return shell && c && i < n ? argv[i] : NULL;
}

int hooks_trust_check(const struct app_conf *app, struct err *e)
{
	const char *word = app->on_change.v[0];
	const char *script = hooks_shell_script(app->on_change.v, app->on_change.n);
	char *file = hooks_resolve(word);
	uid_t also = app->hook_as_user ? app->hook_uid : TRUST_NOBODY_ELSE;
	uid_t runs_as = app->hook_as_user ? app->hook_uid : geteuid();
	struct strv words = { NULL, 0 };
	char power[64];
	int rc;

	if (runs_as)
		snprintf(power, sizeof(power), "run any command as uid %u",
			 (unsigned)runs_as);
	else
		snprintf(power, sizeof(power), "run any command as root");
	if (!file)
		return err_set(e, ERR_INVALID, "%s: not found in %s", word, HOOKS_PATH);
	rc = hooks_trust_path(file, also, power, e);
	free(file);
	if (rc < 0)
		return err_prefix(e, "program %s: ", word);
	/* sh -c '/usr/local/bin/reload billing': what the shell runs first,
	 * when it is named by an absolute path (a name the shell looks up,
	 * or anything later in the script, is not checked) */
	if (!script || hooks_split(script, &words, &(struct err){ 0 }) < 0 ||
	    words.v[0][0] != '/')
		goto out;
	if (hooks_trust_path(words.v[0], also, power, e) < 0)
		rc = err_prefix(e, "program %s (run by %s -c): ", words.v[0], word);
out:
	strv_free(&words);
	return rc;
}

static char *hooks_env_join(const char *name, const struct strv *v)
{
	size_t len = strlen(name) + 2;
	char *s;

	for (size_t i = 0; i < v->n; i++)
		len += strlen(v->v[i]) + 1;
	s = malloc(len);
	if (!s)
		return NULL;
	strcpy(s, name);
	strcat(s, "=");
	for (size_t i = 0; i < v->n; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, v->v[i]);
	}
	return s;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void hooks_child(const struct app_conf *app, const char *file,
			char *const argv[], char *const envp[])
{
	sigset_t none;
	int null = open("/dev/null", O_RDONLY);

	setpgid(0, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (null < 0 || dup2(null, 0) < 0 || dup2(2, 1) < 0)
		_exit(126);
	close_range(3, ~0U, 0);
	if (chdir("/") < 0)
		_exit(126);
	if (app->hook_as_user &&
	    (setgroups(0, NULL) < 0 || setgid(app->hook_gid) < 0 ||
	     setuid(app->hook_uid) < 0))
		_exit(126);
	execve(file, argv, envp);
	_exit(127);
}

static void hooks_spawn(struct hook_app *a)
{
	const struct app_conf *app = a->app;
	char *file = hooks_resolve(app->on_change.v[0]);
	char app_env[300];
	char *changed = hooks_env_join("SECRETFS_CHANGED", &a->changed);
	char *envp[] = { "PATH=" HOOKS_PATH, app_env, changed, "LANG=C.UTF-8", NULL };
	pid_t pid;

	snprintf(app_env, sizeof(app_env), "SECRETFS_APP=%s", app->name);
	if (!file || !changed) {
		log_error("app %s: on_change: %s: %s", app->name, app->on_change.v[0],
			  file ? "out of memory" : "not found in " HOOKS_PATH);
		goto out;
	}
	pid = fork();
	if (pid == 0)
		hooks_child(app, file, app->on_change.v, envp);
	if (pid < 0) {
		log_error("app %s: on_change: cannot start it: %s", app->name, strerror(errno));
		goto out;
	}
	setpgid(pid, pid);	/* either side may get there first */
	log_info("app %s: on_change started (pid %d) for %s", app->name, (int)pid,
		 changed + strlen("SECRETFS_CHANGED="));
	a->pid = pid;
	a->started = clock_now_ms();
	a->killed = false;
out:
	strv_free(&a->changed);
	free(changed);
	free(file);
}

/* Has the running command ended (or run too long)? */
static void hooks_reap(struct hooks *h, struct hook_app *a, int64_t now)
{
	int status;
	pid_t r = waitpid(a->pid, &status, WNOHANG);
	long ms = (long)(now - a->started);

	if (r == 0) {
		if (!a->killed && now - a->started >= a->app->on_change_timeout_ms) {
			log_warn("app %s: on_change ran over %ld ms: killing its process group",
				 a->app->name, a->app->on_change_timeout_ms);
			kill(-a->pid, SIGKILL);
			a->killed = true;
		}
		return;
	}
	if (r < 0)
		log_error("app %s: on_change: waitpid: %s", a->app->name, strerror(errno));
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		log_info("app %s: on_change exited 0 after %ld ms", a->app->name, ms);
	else if (WIFEXITED(status))
		log_warn("app %s: on_change exited %d after %ld ms", a->app->name,
			 WEXITSTATUS(status), ms);
	else
		log_warn("app %s: on_change killed by signal %d after %ld ms%s", a->app->name,
			 WTERMSIG(status), ms, a->killed ? " (timeout)" : "");
	/* the group may outlive its leader: a timeout takes it all */
	if (a->killed)
		kill(-a->pid, SIGKILL);
	a->pid = 0;
	pthread_mutex_lock(&h->lock);
	a->runs++;
	pthread_mutex_unlock(&h->lock);
}

/* ---- watching ---- */

/* Names whose digest differs between old and cur, into a->changed. */
static void hooks_diff(struct hook_app *a, const struct kvmap *cur)
{
	const struct kvmap *maps[2] = { &a->digest, cur };

	for (int m = 0; m < 2; m++)
		for (size_t i = 0; i < maps[m]->n; i++) {
			const struct kv *x = &maps[m]->items[i];
			const struct kv *y = kvmap_get(maps[1 - m], x->key);

			if (!y || y->len != x->len || memcmp(x->val, y->val, x->len))
				strv_push(&a->changed, x->key);
		}
	strv_sort_unique(&a->changed);
}

static void hooks_check(struct hooks *h, struct hook_app *a, bool poll, int64_t now)
{
	struct kvmap cur = KVMAP_INIT;
	struct err e = { 0 };
	size_t before = a->changed.n;

	if (poll && h->expire)
		h->expire(h->ctx, a->app);
	if (h->digest(h->ctx, a->app, &cur, &e) < 0) {
		log_debug("app %s: on_change: cannot compare now: %s", a->app->name, e.msg);
		kvmap_free(&cur);
		return;
	}
	if (a->known)
		hooks_diff(a, &cur);
	kvmap_free(&a->digest);
	a->digest = cur;
	a->known = true;
	if (a->changed.n > before) {
		/* debounce: the delay counts from the last change of a burst */
		a->due = now + a->app->on_change_delay_ms;
		log_debug("app %s: changed; on_change in %ld ms", a->app->name,
			  a->app->on_change_delay_ms);
	}
}

static long hooks_poll_ms(const struct app_conf *app)
{
	return app->refresh_ms > 0 ? app->refresh_ms : HOOKS_POLL_DEFAULT_MS;
}

/* One pass over every app; returns how long to wait for the next. */
static int64_t hooks_pass(struct hooks *h)
{
	int64_t now = clock_now_ms(), wait = HOOKS_POLL_DEFAULT_MS;

	for (size_t i = 0; i < h->n; i++) {
		struct hook_app *a = &h->apps[i];
		bool poll = now >= a->next_poll, poked;

		pthread_mutex_lock(&h->lock);
		poked = a->poked;
		a->poked = false;
		pthread_mutex_unlock(&h->lock);
		if (poll || poked)
			hooks_check(h, a, poll, now);
		if (poll)
			a->next_poll = now + hooks_poll_ms(a->app);
		if (a->pid)
			hooks_reap(h, a, clock_now_ms());
		if (!a->pid && a->due && clock_now_ms() >= a->due) {
			a->due = 0;
			hooks_spawn(a);
		}
		if (a->pid)
			wait = wait < HOOKS_TICK_MS ? wait : HOOKS_TICK_MS;
		if (a->due && a->due - now < wait)
			wait = a->due - now;
		if (a->next_poll - now < wait)
			wait = a->next_poll - now;
	}
	return wait > 0 ? wait : 1;
}

static void *hooks_thread(void *arg)
{
	struct hooks *h = arg;

	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		struct timespec ts;
		int64_t wait;

		pthread_mutex_unlock(&h->lock);
		wait = hooks_pass(h);
		ts = clock_deadline(CLOCK_MONOTONIC, wait);
		pthread_mutex_lock(&h->lock);
		if (!h->stop)
			pthread_cond_timedwait(&h->cond, &h->lock, &ts);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* ---- the interface ---- */

struct hooks *hooks_start(const struct config *cfg, hooks_digest_fn digest,
			  hooks_expire_fn expire, void *ctx, struct err *e)
{
	struct hooks *h;
	pthread_condattr_t ca;

	for (size_t i = 0; i < cfg->napps; i++)
		if (cfg->apps[i].on_change.n)
			break;
		else if (i + 1 == cfg->napps)
			return NULL;
	if (!cfg->napps)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (h)
		h->apps = calloc(cfg->napps, sizeof(*h->apps));
	if (!h || !h->apps) {
		free(h);
		err_oom(e);
		return NULL;
	}
	h->digest = digest;
	h->expire = expire;
	h->ctx = ctx;
	for (size_t i = 0; i < cfg->napps; i++)
		if (cfg->apps[i].on_change.n)
			h->apps[h->n++] = (struct hook_app){ .app = &cfg->apps[i],
							     .digest = KVMAP_INIT };
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&h->thread, NULL, hooks_thread, h) != 0) {
		err_set(e, ERR_NOMEM, "cannot start the on_change thread");
		free(h->apps);
		free(h);
		return NULL;
	}
	return h;
}

void hooks_stop(struct hooks *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	for (size_t i = 0; i < h->n; i++) {
		if (h->apps[i].pid)
			log_info("app %s: on_change (pid %d) still running at stop; left to finish",
				 h->apps[i].app->name, (int)h->apps[i].pid);
		kvmap_free(&h->apps[i].digest);
		strv_free(&h->apps[i].changed);
	}
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h->apps);
	free(h);
}

void hooks_poke(struct hooks *h, const char *app)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->apps[i].app->name, app)) {
			h->apps[i].poked = true;
			pthread_cond_signal(&h->cond);
		}
	pthread_mutex_unlock(&h->lock);
}

unsigned hooks_runs(struct hooks *h, const char *app)
{
	unsigned n = 0;

	if (!h)
		return 0;
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->apps[i].app->name, app))
			n = h->apps[i].runs;
	pthread_mutex_unlock(&h->lock);
	return n;
}
