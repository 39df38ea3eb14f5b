/* cli.c - secretfs check and render: see cli.h.
 *
 * Try it:
 *   secretfs check /etc/secretfs/secretfs.conf && systemctl reload secretfs
 *   docker run --env-file <(secretfs render CONFIG billing --format docker) IMAGE
 *   eval "$(secretfs render CONFIG billing --format sh)"
 */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/dotenv.h"
#include "../base/formats.h"
#include "../base/log.h"
#include "app.h"
#include "config.h"

bool cli_is_command(const char *word)
{
	return word && (!strcmp(word, "check") || !strcmp(word, "render"));
}

int cli_format_parse(const char *name, enum cli_format *f)
{
	enum fmt_kind k;

	if (fmt_parse(name, &k) < 0)
		return -1;
	*f = (enum cli_format)k;
	return 0;
}

/* ---- formats: base/formats.c, shared with the folder's views ---- */

int cli_format(enum cli_format f, const struct kvmap *vals,
	       struct secbuf *out, struct err *e)
{
	if (f == CLI_FORMAT_ENV)
		return err_set(e, ERR_INVALID, ".env is rendered by app_read");
	/* render is all or nothing: what a format cannot carry is refused */
	return fmt_render((enum fmt_kind)f, vals, out, NULL, NULL, e);
}

/* ---- shared ---- */

/* What check and render print besides render's values (which are data)
 * may hold a name from a store or an argument: a key with a newline or an
 * ESC byte must neither forge a line nor drive the terminal, so it is
 * escaped as the log escapes it (base/log.h). */
__attribute__((format(printf, 2, 3)))
static void cli_say(FILE *f, const char *fmt, ...)
{
	char line[2048], safe[sizeof(line) * 4];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_escape(safe, sizeof(safe), line);
	fprintf(f, "%s\n", safe);
}

/* s escaped (log_escape), on the heap; NULL when out of memory. */
static char *cli_escaped(const char *s)
{
	size_t size = strlen(s) * 4 + 1;
	char *out = malloc(size);

	if (out)
		log_escape(out, size, s);
	return out;
}

static int cli_open(const char *path, struct config *cfg, struct appfs *fs)
{
	struct err e = { 0 };

	if (config_load(path, cfg, &e) < 0 || appfs_open(fs, cfg, &e) < 0) {
		cli_say(stderr, "secretfs: %s", e.msg);
		return -1;
	}
	return 0;
}

static const struct app_conf *cli_app(const struct config *cfg,
				      const char *name, const char *path)
{
	const struct app_conf *app = config_app(cfg, name);

	if (!app)
		cli_say(stderr, "secretfs: %s has no [app %s]", path, name);
	return app;
}

static int cli_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- check ---- */

struct cli_row {
	char *cols[5];	/* key, file, source, version, status */
};

struct cli_table {
	struct cli_row *rows;
	size_t n;
	bool oom;
};

static void cli_check_row(void *ctx, const struct app_check_key *k)
{
	static const char *const prefix[] = { "ok", "", "FAILED: " };
	struct cli_table *t = ctx;
	struct cli_row *rows = realloc(t->rows, (t->n + 1) * sizeof(*rows));
	char status[1200];

	if (!rows) {
		t->oom = true;
		return;
	}
	t->rows = rows;
	snprintf(status, sizeof(status), "%s%s%s", prefix[k->state],
		 k->state == APP_CHECK_OK && k->note[0] ? "; " : "", k->note);
	rows[t->n] = (struct cli_row){ { cli_escaped(k->key), cli_escaped(k->file),
		cli_escaped(k->source), cli_escaped(k->version[0] ? k->version : "-"),
		cli_escaped(status) } };
	for (int c = 0; c < 5; c++)
		t->oom |= !rows[t->n].cols[c];
	t->n++;
}

static void cli_table_print(const struct cli_table *t)
{
	static const char *const head[] = { "KEY", "FILE", "SOURCE", "VERSION", "STATUS" };
	int w[4];

	for (int c = 0; c < 4; c++) {
		w[c] = (int)strlen(head[c]);
		for (size_t i = 0; i < t->n; i++)
			if (t->rows[i].cols[c] && (int)strlen(t->rows[i].cols[c]) > w[c])
				w[c] = (int)strlen(t->rows[i].cols[c]);
	}
	printf("  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], head[0], w[1], head[1],
	       w[2], head[2], w[3], head[3], head[4]);
	for (size_t i = 0; i < t->n; i++) {
		char *const *r = t->rows[i].cols;

		printf("  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], r[0] ? r[0] : "?",
		       w[1], r[1] ? r[1] : "?", w[2], r[2] ? r[2] : "?",
		       w[3], r[3] ? r[3] : "?", r[4] ? r[4] : "?");
	}
	if (!t->n)
		printf("  (no keys)\n");
}

static void cli_table_free(struct cli_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		for (int c = 0; c < 5; c++)
			free(t->rows[i].cols[c]);
	free(t->rows);
}

/* One app's table; -1 when anything fails (said on stderr too). */
static int cli_check_app(struct appfs *fs, const struct app_conf *app)
{
	struct cli_table t = { 0 };
	struct err e = { 0 };
	int rc = app_check(fs, app, cli_check_row, &t, &e);

	cli_say(stdout, "app %s  owner %u:%u  mode %04o  (%s:%d)", app->name,
		(unsigned)app->uid, (unsigned)app->gid, (unsigned)app->mode,
		app->where.file, app->where.line);
	cli_table_print(&t);
	fflush(stdout);
	if (t.oom && rc == 0)
		rc = err_oom(&e);
	if (rc < 0)
		cli_say(stderr, "secretfs: check: %s", e.msg);
	cli_table_free(&t);
	return rc;
}

static void cli_check_providers(const struct config *cfg, const char *path)
{
	char *safe = cli_escaped(path);

	printf("%s: %zu provider%s created", safe ? safe : "?", cfg->nproviders,
	       cfg->nproviders == 1 ? "" : "s");
	free(safe);
	for (size_t i = 0; i < cfg->nproviders; i++) {
		char *name = cli_escaped(cfg->providers[i].name);
		char *type = cli_escaped(cfg->providers[i].type);

		printf("%s%s (%s)", i ? ", " : ": ", name ? name : "?", type ? type : "?");
		free(name);
		free(type);
	}
	printf("\n\n");
}

static int cli_check(const char *path, const char *const *names, int n)
{
	struct config cfg = { 0 };
	struct appfs fs = { 0 };
	int failed = 0, checked = 0, rc = 1;

	if (cli_open(path, &cfg, &fs) < 0)
		goto out;
	for (int i = 0; i < n; i++)
		if (!cli_app(&cfg, names[i], path))
			goto out;
	cli_check_providers(&cfg, path);
	for (size_t i = 0; i < (n ? (size_t)n : cfg.napps); i++) {
		const struct app_conf *app = n ? config_app(&cfg, names[i]) : &cfg.apps[i];

		failed += cli_check_app(&fs, app) < 0;
		checked++;
		printf("\n");
	}
	if (failed)
		printf("check: %d of %d apps failed\n", failed, checked);
	else
		printf("check: ok, %d app%s resolve%s\n", checked,
		       checked == 1 ? "" : "s", checked == 1 ? "s" : "");
	rc = failed ? 1 : 0;
out:
	fflush(stdout);
	appfs_close(&fs);
	config_free(&cfg);
	return rc;
}

/* ---- render ---- */

static int cli_render_app(struct appfs *fs, const struct app_conf *app,
			  enum cli_format f, struct secbuf *out, struct err *e)
{
	struct kvmap vals = KVMAP_INIT;
	int rc;

	if (f == CLI_FORMAT_ENV)
		return app_read(fs, app, APP_ENV_NAME, out, NULL, e);
	rc = app_value_set(fs, app, &vals, e);
	if (rc == 0 && cli_format(f, &vals, out, e) < 0)
		rc = err_prefix(e, "app %s: ", app->name);
	kvmap_free(&vals);
	return rc;
}

static int cli_render(const char *path, const char *name, enum cli_format f)
{
	struct secbuf out = SECBUF_INIT;
	struct config cfg = { 0 };
	struct appfs fs = { 0 };
	const struct app_conf *app;
	struct err e = { 0 };
	int rc = 1;

	if (cli_open(path, &cfg, &fs) < 0)
		goto out;
	app = cli_app(&cfg, name, path);
	if (!app)
		goto out;
	if (cli_render_app(&fs, app, f, &out, &e) < 0)
		cli_say(stderr, "secretfs: render: %s", e.msg);
	else if (cli_write_all(STDOUT_FILENO, out.data ? out.data : "", out.len) < 0)
		cli_say(stderr, "secretfs: render: stdout: %s", strerror(errno));
	else
		rc = 0;
out:
	secbuf_free(&out);
	secmem_stack_wipe_deep();
	appfs_close(&fs);
	config_free(&cfg);
	return rc;
}

/* ---- command line ---- */

static void cli_usage(FILE *f)
{
	fprintf(f, "usage: secretfs check CONFIG [APP...]\n"
		"       secretfs render CONFIG APP [--format env|json|sh|docker]\n\n"
		"check   resolves every reference of every app (or of the apps named)\n"
		"        and prints where each key comes from; writes nothing; exit 1\n"
		"        when anything fails. Never prints a value.\n"
		"render  prints the app's .env (or json, sh exports, a docker\n"
		"        --env-file) to stdout, as the mount reads it: generate: keys\n"
		"        missing from the store are generated and stored. Nothing is\n"
		"        printed unless every source resolves.\n");
}

struct cli_args {
	const char **words;
	int nwords;
	const char *format;
	bool help;
};

static int cli_option(struct cli_args *a, int argc, char **argv, int *i)
{
	const char *arg = argv[*i];

	if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
		a->help = true;
	} else if (!strncmp(arg, "--format=", 9)) {
		a->format = arg + 9;
	} else if (!strcmp(arg, "--format") && *i + 1 < argc) {
		a->format = argv[++*i];
	} else {
		cli_say(stderr, "secretfs %s: unknown option %s (see --help)",
			argv[0], arg);
		return -1;
	}
	return 0;
}

static int cli_parse(int argc, char **argv, struct cli_args *a)
{
	bool options = true;

	a->words = calloc((size_t)argc, sizeof(*a->words));
	if (!a->words)
		return -1;
	for (int i = 1; i < argc; i++) {
		bool option = options && argv[i][0] == '-' && argv[i][1];

		if (option && !strcmp(argv[i], "--"))
			options = false;
		else if (option && cli_option(a, argc, argv, &i) < 0)
			return -1;
		else if (!option)
			a->words[a->nwords++] = argv[i];
	}
	return 0;
}

static int cli_run(const char *cmd, const struct cli_args *a)
{
	enum cli_format f = CLI_FORMAT_ENV;

	if (!strcmp(cmd, "check")) {
		if (a->nwords < 1 || a->format) {
			fprintf(stderr, "secretfs check: %s (see --help)\n",
				a->format ? "--format is for render" : "no CONFIG given");
			return 1;
		}
		log_init(LOG_LVL_WARN, false);
		return cli_check(a->words[0], a->words + 1, a->nwords - 1);
	}
	if (a->nwords != 2) {
		fprintf(stderr, "secretfs render: give CONFIG and one APP (see --help)\n");
		return 1;
	}
	if (a->format && cli_format_parse(a->format, &f) < 0) {
		cli_say(stderr, "secretfs render: unknown format '%s' (env, json, sh, docker)",
			a->format);
		return 1;
	}
	/* info: a generated key is worth a line */
	log_init(LOG_LVL_INFO, false);
	return cli_render(a->words[0], a->words[1], f);
}

int cli_main(int argc, char **argv)
{
	struct cli_args a = { 0 };
	int rc = 1;

	if (cli_parse(argc, argv, &a) < 0)
		goto out;
	if (a.help) {
		cli_usage(stdout);
		rc = 0;
		goto out;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "secretfs: libsodium failed to initialize\n");
		goto out;
	}
	secmem_init_json();
	rc = cli_run(argv[0], &a);
out:
	free(a.words);
	return rc;
}

_Static_assert((int)CLI_FORMAT_JSON == (int)FMT_JSON && (int)CLI_FORMAT_SH == (int)FMT_SH &&
	       (int)CLI_FORMAT_DOCKER == (int)FMT_DOCKER, "enum cli_format follows enum fmt_kind");
