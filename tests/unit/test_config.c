/* test_config.c - fs/config.c: loading, drop-ins, every error class with
 * its file:line, owners, modes and durations.
 *
 * Each test writes its files into a fresh mkdtemp directory:
 * DIR/secretfs.conf and DIR/conf.d/NAME.conf.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/config.h"
#include "base/formats.h"

/* a valid provider section: 3 lines */
#define PROV "[provider local]\ntype = file\ndirectory = /tmp/store\n"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test_config.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int teardown(void **state)
{
	(void)state;
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* DIR/rel; a few calls' results stay valid at once. */
static const char *path(const char *rel)
{
	static char buf[4][256];
	static int next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", dir, rel);
	return p;
}

static void put(const char *rel, const char *text)
{
	FILE *f;

	if (!strncmp(rel, "conf.d/", 7))
		mkdir(path("conf.d"), 0755);
	f = fopen(path(rel), "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static const char *main_path(void)
{
	return path("secretfs.conf");
}

static void load_ok(struct config *c)
{
	struct err e;

	if (config_load(main_path(), c, &e) < 0)
		fail_msg("config_load: %s", e.msg);
}

/* Loading fails with "DIR/rel:line: ..." holding needle. */
static void expect_error(const char *rel, int line, const char *needle)
{
	struct config c;
	struct err e;
	char prefix[300];

	assert_int_equal(config_load(main_path(), &c, &e), -1);
	snprintf(prefix, sizeof(prefix), "%s:%d: ", path(rel), line);
	if (strncmp(e.msg, prefix, strlen(prefix)) || !strstr(e.msg, needle))
		fail_msg("got \"%s\"\nwant \"%s...%s...\"", e.msg, prefix,
			 needle);
	/* safe after a failure, and twice */
	config_free(&c);
	config_free(&c);
}

/* The main file alone fails at line with needle. */
static void main_error(const char *text, int line, const char *needle)
{
	put("secretfs.conf", text);
	expect_error("secretfs.conf", line, needle);
}

/* ---- valid configurations ---- */

static void test_full(void **state)
{
	struct config c;
	const struct provider_conf *p;
	const struct app_conf *a;

	(void)state;
	put("secretfs.conf",
	    "# secretfs test config\n"			/* 1 */
	    "[secretfs]\n"
	    "ttl = 30s\n"
	    "refresh = 250ms   ; inline comment\n"
	    "max_stale = 2d\n"				/* 5 */
	    "request_timeout = 5\n"
	    "\n"
	    "[provider local]\n"
	    "directory = /var/lib/secretfs/store\n"	/* type after it */
	    "type = file\n"				/* 10 */
	    "\n"
	    "[app billing]\n"
	    "owner = 0:0\n"
	    "mode = 0440\n"
	    "store = local://billing\n"			/* 15 */
	    "env.SECRET_KEY = generate:base64:32\n"
	    "env.DB_PASSWORD = local://shared/db#password\n"
	    "keys.production = other://dotenvx#private_key\n"
	    "keys.default = local://dotenvx#default\n"
	    "   ; an indented comment is a comment\n");	/* 20 */
	/* read after 10-api.conf although written first */
	put("conf.d/20-other.conf",
	    "[provider other]\ntype = file\ndirectory = /srv/other\n");
	put("conf.d/10-api.conf",
	    "[app api]\nstore = other://api\n\n[app empty]\n");
	put("conf.d/README", "not a drop-in\n");
	put("conf.d/.hidden.conf", "not = ini ]\n");
	load_ok(&c);

	assert_int_equal(c.ttl_ms, 30000);
	assert_int_equal(c.refresh_ms, 250);
	assert_int_equal(c.max_stale_ms, 2 * 86400000L);
	assert_int_equal(c.request_timeout_ms, 5000);

	assert_int_equal(c.nfiles, 3);
	assert_string_equal(c.files[0], main_path());
	assert_string_equal(c.files[1], path("conf.d/10-api.conf"));
	assert_string_equal(c.files[2], path("conf.d/20-other.conf"));

	assert_int_equal(c.nproviders, 2);
	p = config_provider(&c, "local");
	assert_non_null(p);
	assert_string_equal(p->type, "file");
	assert_int_equal(p->where.line, 8);
	assert_int_equal(p->nopts, 1);
	assert_int_equal(p->opts[0].where.line, 9);
	assert_string_equal(conf_opt_get(p, "directory"),
			    "/var/lib/secretfs/store");
	assert_null(conf_opt_get(p, "type"));
	assert_null(conf_opt_get(p, "nope"));
	p = config_provider(&c, "other");
	assert_non_null(p);
	assert_ptr_equal(p->where.file, c.files[2]);
	assert_null(config_provider(&c, "nope"));

	/* sorted by name */
	assert_int_equal(c.napps, 3);
	assert_string_equal(c.apps[0].name, "api");
	assert_string_equal(c.apps[1].name, "billing");
	assert_string_equal(c.apps[2].name, "empty");

	a = config_app(&c, "billing");
	assert_ptr_equal(a, &c.apps[1]);
	assert_int_equal(a->uid, 0);
	assert_int_equal(a->gid, 0);
	assert_int_equal(a->mode, 0440);
	assert_true(a->has_store);
	assert_string_equal(a->store.provider, "local");
	assert_string_equal(a->store.locator, "billing");
	assert_null(a->store.field);
	assert_int_equal(a->nenv, 2);
	assert_string_equal(a->env[0].name, "DB_PASSWORD");
	assert_int_equal(a->env[0].ref.kind, REF_PROVIDER);
	assert_string_equal(a->env[0].ref.field, "password");
	assert_int_equal(a->env[0].where.line, 17);
	assert_string_equal(a->env[1].name, "SECRET_KEY");
	assert_int_equal(a->env[1].ref.kind, REF_GENERATE);
	assert_int_equal(a->env[1].ref.gen.kind, GEN_BASE64);
	assert_int_equal(a->env[1].ref.gen.n, 32);
	assert_int_equal(a->env[1].where.line, 16);
	assert_int_equal(a->nkeys, 2);
	assert_string_equal(a->keys[0].name, "default");
	assert_string_equal(a->keys[1].name, "production");
	assert_string_equal(a->keys[1].ref.provider, "other");
	assert_ptr_equal(a->where.file, c.files[0]);
	assert_int_equal(a->where.line, 12);

	a = config_app(&c, "api");
	assert_non_null(a);
	assert_ptr_equal(a->where.file, c.files[1]);
	assert_int_equal(a->where.line, 1);
	assert_int_equal(a->mode, 0400);
	assert_int_equal(a->uid, 0);
	assert_int_equal(a->gid, 0);

	/* an app with nothing is an empty folder */
	a = config_app(&c, "empty");
	assert_non_null(a);
	assert_false(a->has_store);
	assert_int_equal(a->nenv + a->nkeys, 0);
	assert_int_equal(a->where.line, 4);
	assert_null(config_app(&c, "nope"));

	config_free(&c);
	assert_int_equal(c.napps, 0);
	config_free(&c);
}

static void test_defaults_and_no_confd(void **state)
{
	struct config c;

	(void)state;
	put("secretfs.conf", "");
	load_ok(&c);
	assert_int_equal(c.ttl_ms, 5 * 60000);
	assert_int_equal(c.refresh_ms, 60000);
	assert_int_equal(c.max_stale_ms, 24 * 3600000L);
	assert_int_equal(c.request_timeout_ms, 10000);
	assert_int_equal(c.nfiles, 1);
	assert_int_equal(c.napps + c.nproviders, 0);
	config_free(&c);
}

/* A drop-in may tune [secretfs]; within one file a setting is given once. */
static void test_global_override(void **state)
{
	struct config c;

	(void)state;
	put("secretfs.conf", "[secretfs]\nttl = 1m\nrefresh = 10s\n");
	put("conf.d/ttl.conf", "[secretfs]\nttl = 2m\n");
	load_ok(&c);
	assert_int_equal(c.ttl_ms, 120000);
	assert_int_equal(c.refresh_ms, 10000);
	config_free(&c);

	put("conf.d/ttl.conf", "[secretfs]\nttl = 2m\n[secretfs]\nttl = 3m\n");
	expect_error("conf.d/ttl.conf", 4, "'ttl' already set at");
}

static void test_line_length(void **state)
{
	char text[400];
	struct config c;

	(void)state;
	/* 199 characters and a newline fit, and count as one line */
	snprintf(text, sizeof(text), "#%198s\nbogus\n", "x");
	main_error(text, 2, "syntax error: expected [section] or key = value");

	/* 199 characters without a final newline fit */
	snprintf(text, sizeof(text), "#%198s", "x");
	put("secretfs.conf", text);
	load_ok(&c);
	config_free(&c);

	snprintf(text, sizeof(text), "[secretfs]\n#%199s\n", "x");
	main_error(text, 2, "line too long (at most 199 characters)");
	snprintf(text, sizeof(text), "[secretfs]\nttl = 5m\n#%300s", "x");
	main_error(text, 3, "line too long (at most 199 characters)");
}

/* ---- errors, each with its file:line ---- */

static void test_syntax_errors(void **state)
{
	(void)state;
	main_error("[secretfs]\nttl 5m\n", 2,
		   "syntax error: expected [section] or key = value");
	main_error("\n[app x\n", 2, "syntax error: missing ']'");
	main_error("[app x ; comment]\n", 1, "syntax error: missing ']'");
	main_error("[app x] junk\n", 1, "syntax error: text after ']'");
	main_error("[secretfs]\n= 5m\n", 2, "syntax error: no key before '='");
	main_error("ttl = 5m\n", 1, "'ttl' is outside any section");
	/* inih would read the second line as more of owner's value */
	main_error("[app a]\n  owner = 0:0\n  mode = 0400\n", 3,
		   "indented line continues the value of 'owner'");
}

static void test_section_errors(void **state)
{
	(void)state;
	main_error("# x\n[foo]\n", 2, "unknown section [foo]");
	main_error("[secretfs x]\n", 1, "[secretfs] takes no name");
	main_error("[app]\n", 1, "[app] needs a name");
	main_error("[provider]\n", 1, "[provider] needs a name");
	main_error("[app .hidden]\n", 1, "app name '.hidden' is not valid");
	main_error("[app ..]\n", 1, "app name '..' is not valid");
	main_error("[app a/b]\n", 1, "app name 'a/b' is not valid");
	main_error("[app a b]\n", 1, "app name 'a b' is not valid");
	main_error("[provider 9x]\n", 1, "provider name '9x' is not valid");
	main_error("[provider generate]\n", 1,
		   "provider name 'generate' is not valid");
}

static void test_unknown_keys(void **state)
{
	(void)state;
	main_error(PROV "[app a]\nowner = 0:0\ncolour = red\n", 6,
		   "app a has no setting 'colour'");
	main_error("[secretfs]\nttll = 5m\n", 2,
		   "[secretfs] has no setting 'ttll'");
	main_error("[app a]\nenv.1X = generate:uuid\n", 2,
		   "'1X' is not a valid variable name");
	main_error("[app a]\nkeys.pro-d = local://k\n", 2,
		   "'pro-d' is not a valid environment name");
}

static void test_views(void **state)
{
	struct config c;
	struct err e;

	(void)state;
	put("secretfs.conf", "[secretfs]\nviews = sh\n[app a]\n[app b]\nviews = json,docker\n[app c]\nviews =\n");
	load_ok(&c);
	assert_int_equal(config_app(&c, "a")->views, 1 << FMT_SH);
	assert_int_equal(config_app(&c, "b")->views, (1 << FMT_JSON) | (1 << FMT_DOCKER));
	assert_int_equal(config_app(&c, "c")->views, 0);
	config_free(&c);
	main_error("[app a]\nviews = json yaml\n", 2, "views: unknown view 'yaml' (json, sh, docker)");
	main_error("[app a]\nviews = env\n", 2, "unknown view 'env'");
	main_error("[app a]\nviews = sh\nviews = json\n", 3, "'views' already set at");
	assert_int_equal(config_parse_views("", &c.views, &e), 0);
}

static void test_bad_duration(void **state)
{
	(void)state;
	main_error("[secretfs]\nttl = 5m\nrefresh = 5 minutes\n", 3,
		   "refresh: bad duration '5 minutes'");
	main_error("[secretfs]\nmax_stale = -1h\n", 2, "must not be negative");
	main_error("[secretfs]\nrequest_timeout = 0\n", 2,
		   "request_timeout must be more than 0");
	/* every duration option is bounded, at its file:line */
	main_error("[secretfs]\nttl = 9223372036854775807ms\n", 2,
		   "ttl: bad duration '9223372036854775807ms': more than the maximum, 365d");
	main_error("[app a]\nrefresh = 366d\n", 2, "refresh: bad duration");
	main_error("[app a]\nmax_stale = 366d\n", 2, "max_stale: bad duration");
	main_error("[app a]\non_change = /bin/true\non_change_delay = 366d\n", 3,
		   "on_change_delay: bad duration");
	main_error("[app a]\non_change = /bin/true\non_change_timeout = 366d\n", 3,
		   "on_change_timeout: bad duration");
}

static void test_bad_mode(void **state)
{
	(void)state;
	main_error("[app a]\nmode = 0004\n", 2, "owner must be able to read");
	main_error("[app a]\nmode = 4755\n", 2, "within 0777");
	main_error("[app a]\nmode = 0x400\n", 2, "expected octal");
	main_error("[app a]\nmode = 0489\n", 2, "expected octal");
	main_error("[app a]\nmode =\n", 2, "expected octal");
}

static void test_bad_owner(void **state)
{
	(void)state;
	main_error("[app a]\nowner = no-such-user-xq\n", 2,
		   "unknown user 'no-such-user-xq'");
	main_error("[app a]\nowner = root:no-such-group-xq\n", 2,
		   "unknown group 'no-such-group-xq'");
	main_error("[app a]\nowner = root:\n", 2, "expected user[:group]");
	main_error("[app a]\nowner = :0\n", 2, "expected user[:group]");
	main_error("[app a]\nowner = 1:2:3\n", 2, "expected user[:group]");
	main_error("[app a]\nowner = 4294967295:0\n", 2, "unknown user");
	if (!getpwuid(4242))
		main_error("[app a]\nowner = 4242\n", 2,
			   "uid 4242 has no passwd entry");
}

/* A locator climbing out of a local store's folder, or absolute, is a
 * file:line error when the configuration loads, for every local store
 * type, not a failed read later. */
static void test_local_locators_outside(void **state)
{
	static const char *const sections[] = {
		"[provider local]\ntype = file\ndirectory = /tmp/store\n",
		"[provider local]\ntype = dir\ndirectory = /tmp/store\n",
		"[provider k]\ntype = env\n"
		"[provider local]\ntype = dotenvx\ndirectory = /tmp/store\n"
		"private_key = k://KEY\n",
	};
	static const char *const refs[] = {
		"local://../../etc/shadow#x", "local:///etc/shadow#x",
		"local://team/../../../etc/shadow#x", "local://./a#x",
		"local://a//b#x",
	};
	char text[512], needle[128];

	(void)state;
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		int line = 2;

		for (const char *c = sections[i]; *c; c++)
			line += *c == '\n';
		for (size_t j = 0; j < sizeof(refs) / sizeof(refs[0]); j++) {
			snprintf(text, sizeof(text), "%s[app a]\nenv.X = %s\n",
				 sections[i], refs[j]);
			snprintf(needle, sizeof(needle), "reference '%.*s",
				 (int)(strchr(refs[j], '#') - refs[j]), refs[j]);
			main_error(text, line, needle);
		}
	}
}

static void test_bad_references(void **state)
{
	(void)state;
	main_error(PROV "[app a]\nstore = local://a\nenv.X = local:/nope\n", 6,
		   "env.X: ");
	main_error(PROV "[app a]\nstore = local://a\nenv.X = vaultt://s/x#y\n",
		   6, "unknown provider 'vaultt' in reference");
	/* the first bad reference in file order, store included */
	main_error(PROV "[app a]\nenv.A = nope://x\nstore = nope://a\n", 5,
		   "unknown provider 'nope'");
	main_error(PROV "[app a]\nstore = nope://a\nenv.A = nope://x\n", 5,
		   "unknown provider 'nope' in reference 'nope://a'");
	main_error(PROV "[app a]\nkeys.prod = gone://k#key\n", 5,
		   "unknown provider 'gone'");
	/* an empty locator: the file store needs one */
	main_error(PROV "[app a]\nstore = local://\n", 5,
		   "reference 'local://': empty locator (provider type file needs one)");
	main_error(PROV "[app a]\nstore = local://a#field\n", 5,
		   "store 'local://a#field': expected a whole provider entry");
	/* a reference its provider type refuses (provider_ops.check), the
	 * first in file order */
#define AZ "[provider az]\ntype = azure-keyvault\nvault = v-1\n"
	main_error(AZ "[app a]\nstore = az://billing-env\nenv.X = az://db_password\nenv.Y = az://a/b\n",
		   6, "reference 'az://db_password': 'db_password' is not a Key Vault secret name");
	main_error(AZ "[app a]\nkeys.prod = az://k?prefix=a-\n", 5,
		   "reference 'az://k?prefix=a-': ?prefix= is the per-secret layout");
	main_error(AZ "[app a]\nstore = az://?prefix=b_\n", 5, "?prefix=");
	main_error(AZ "[app a]\nenv.X = az://x?versoin=1\n", 5,
		   "unknown parameter 'versoin'");
#undef AZ
	main_error(PROV "[app a]\nstore = generate:uuid\n", 5,
		   "expected a whole provider entry");
	main_error(PROV "[app a]\nstore = local://a\nkeys.prod = generate:hex:32\n",
		   6, "keys.prod: expected a provider reference");
}

static void test_provider_errors(void **state)
{
	(void)state;
	main_error("[provider v]\ntype = vaultt\n", 2,
		   "provider v: unknown type 'vaultt'");
	main_error("[provider local]\ntype = file\ndirectory = /x\ndirectroy = /y\n",
		   4, "provider local (type file) has no option 'directroy'");
	/* the type may come last: the option is still checked */
	main_error("[provider local]\nbogus = 1\ntype = file\n[app a]\n", 2,
		   "has no option 'bogus'");
	main_error("# x\n[provider local]\ndirectory = /x\n[app a]\n", 2,
		   "provider local has no type");
	/* at the end of the file too */
	main_error("[provider local]\ndirectory = /x\n", 1,
		   "provider local has no type");
}

static void test_fernet_options(void **state)
{
#define ENVP "[provider environ]\ntype = env\n"
	(void)state;
	main_error(PROV "fernet_key = nope://K\n", 4,
		   "provider local: fernet_key: unknown provider 'nope'");
	main_error(PROV "fernet_key = generate:fernet\n", 4,
		   "fernet_key: expected a reference to where the key is kept");
	main_error(PROV "fernet_key = local://keys#K\n", 4,
		   "the key's provider local is encrypted itself");
	main_error(PROV "fernet_ttl = 1h\n", 4, "fernet_ttl needs a fernet_key");
	main_error(ENVP PROV "fernet_key = environ://K\nfernet_ttl = 10ms\n", 7,
		   "fernet_ttl: at least one second");
	main_error(ENVP PROV "fernet_key = environ://A=B\n", 6,
		   "fernet_key: A=B: not an environment variable name");
#undef ENVP
}

static void test_duplicates(void **state)
{
	char want[300];

	(void)state;
	put("secretfs.conf", "[app a]\n");
	put("conf.d/10-x.conf", "\n[app a]\n");
	snprintf(want, sizeof(want), "app a already defined at %s:1",
		 main_path());
	expect_error("conf.d/10-x.conf", 2, want);

	/* drop-ins are read in name order */
	put("conf.d/10-x.conf", "# first\n[app z]\n");
	put("conf.d/20-y.conf", "[app z]\n");
	snprintf(want, sizeof(want), "app z already defined at %s:2",
		 path("conf.d/10-x.conf"));
	expect_error("conf.d/20-y.conf", 1, want);
	unlink(path("conf.d/20-y.conf"));
	unlink(path("conf.d/10-x.conf"));

	snprintf(want, sizeof(want), "provider local already defined at %s:1",
		 main_path());
	main_error(PROV "[provider local]\n", 4, want);

	snprintf(want, sizeof(want), "'mode' already set at %s:2", main_path());
	main_error("[app a]\nmode = 0400\nmode = 0440\n", 3, want);
	main_error("[app a]\nowner = 0\nowner = 0\n", 3, "'owner' already set");
	main_error(PROV "[app a]\nstore = local://a\nstore = local://b\n", 6,
		   "'store' already set");
	main_error(PROV "[app a]\nenv.X = local://a#x\nenv.X = local://b#x\n",
		   6, "'env.X' already set");
	/* both would be DOTENV_PRIVATE_KEY_PROD */
	main_error(PROV "[app a]\nkeys.prod = local://a#k\nkeys.PROD = local://b#k\n",
		   6, "'keys.PROD' already set");
	main_error("[provider local]\ntype = file\ntype = file\n", 3,
		   "'type' already set");
	main_error("[provider local]\ntype = file\ndirectory = /a\ndirectory = /b\n",
		   4, "'directory' already set");
}

static void test_generate_needs_store(void **state)
{
	struct config c;

	(void)state;
	main_error(PROV "[app a]\nenv.X = local://e#x\nenv.S = generate:hex:16\n"
		   "env.T = generate:uuid\n",
		   6, "app a: generate: needs a store = ...");
	/* store after the generate mapping is fine */
	put("secretfs.conf",
	    PROV "[app a]\nenv.S = generate:hex:16\nstore = local://a\n");
	load_ok(&c);
	assert_int_equal(c.apps[0].nenv, 1);
	config_free(&c);
}

static void test_argon2id_source(void **state)
{
	struct config c;

	(void)state;
	main_error(PROV "[app a]\nstore = local://a\nenv.HASH = generate:argon2id:HASH\n",
		   6, "env.HASH: generate:argon2id:HASH would hash its own value");
	/* the source may be another env key or a store key */
	put("secretfs.conf",
	    PROV "[app a]\nstore = local://a\n"
	    "env.PW = generate:password:24:alnum+symbols\n"
	    "env.PW_HASH = generate:argon2id:PW\n"
	    "env.ADMIN_HASH = generate:argon2id:ADMIN_PASSWORD\n");
	load_ok(&c);
	assert_int_equal(c.apps[0].nenv, 3);
	/* sorted: ADMIN_HASH, PW, PW_HASH */
	assert_int_equal(c.apps[0].env[0].ref.gen.kind, GEN_ARGON2ID);
	assert_string_equal(c.apps[0].env[0].ref.gen.source, "ADMIN_PASSWORD");
	assert_int_equal(c.apps[0].env[1].ref.gen.charset,
			 GEN_CHARSET_ALNUM_SYMBOLS);
	assert_string_equal(c.apps[0].env[2].ref.gen.source, "PW");
	config_free(&c);
}

static void test_dropin_errors(void **state)
{
	(void)state;
	put("secretfs.conf", PROV);
	put("conf.d/app.conf", "[app a]\nstore = local://a\nmode = 777\nbad\n");
	expect_error("conf.d/app.conf", 4, "syntax error");
}

static void test_unreadable(void **state)
{
	struct config c;
	struct err e;
	char want[300];

	(void)state;
	assert_int_equal(config_load(main_path(), &c, &e), -1);
	snprintf(want, sizeof(want), "%s: cannot read: No such file or directory",
		 main_path());
	assert_string_equal(e.msg, want);
	config_free(&c);

	put("secretfs.conf", "");
	mkdir(path("conf.d"), 0755);
	mkdir(path("conf.d/dir.conf"), 0755);
	assert_int_equal(config_load(main_path(), &c, &e), -1);
	snprintf(want, sizeof(want), "%s: cannot read: ",
		 path("conf.d/dir.conf"));
	assert_memory_equal(e.msg, want, strlen(want));
	config_free(&c);
}

/* ---- owners ---- */

static void owner_is(const char *owner, uid_t uid, gid_t gid)
{
	char text[300];
	struct config c;

	snprintf(text, sizeof(text), "[app a]\nowner = %s\n", owner);
	put("secretfs.conf", text);
	load_ok(&c);
	assert_int_equal(c.apps[0].uid, uid);
	assert_int_equal(c.apps[0].gid, gid);
	config_free(&c);
}

static void test_owner(void **state)
{
	struct passwd *pw;
	struct group *gr;

	(void)state;
	pw = getpwnam("root");
	assert_non_null(pw);
	owner_is("root", 0, pw->pw_gid);
	owner_is("0", 0, pw->pw_gid);
	owner_is("0:0", 0, 0);
	owner_is("1234:5678", 1234, 5678);
	owner_is("root:5678", 0, 5678);
	pw = getpwnam("nobody");
	if (pw) {
		uid_t uid = pw->pw_uid;
		gid_t gid = pw->pw_gid;

		owner_is("nobody", uid, gid);
		owner_is("nobody:0", uid, 0);
	}
	gr = getgrnam("nogroup");
	if (gr) {
		gid_t gid = gr->gr_gid;

		owner_is("1234:nogroup", 1234, gid);
	}
}

/* ---- durations ---- */

static void test_durations(void **state)
{
	static const struct {
		const char *s;
		long ms;
	} good[] = {
		{ "0", 0 }, { "7", 7000 }, { "007s", 7000 }, { "250ms", 250 },
		{ "30s", 30000 }, { "5m", 300000 }, { "24h", 86400000 },
		{ "2d", 172800000 }, { "0ms", 0 },
	};
	static const char *const bad[] = {
		"", "-5s", "5 s", " 5s", "5s ", "1.5h", "5M", "5mss", "s", "+5",
		"5w", "99999999999999999999", "9223372036854775807s",
		"106751991167301d",
	};
	struct err e;
	long ms;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = -1;
		if (config_parse_duration(good[i].s, &ms, &e) < 0)
			fail_msg("'%s': %s", good[i].s, e.msg);
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 42;
		if (config_parse_duration(bad[i], &ms, &e) == 0)
			fail_msg("'%s' accepted as %ld", bad[i], ms);
		assert_int_equal(e.code, ERR_INVALID);
		assert_non_null(strstr(e.msg, "bad duration"));
		assert_int_equal(ms, 42);
	}
	/* past a year is refused, however it is spelled */
	assert_int_equal(config_parse_duration("365d", &ms, &e), 0);
	assert_int_equal(ms, CONFIG_DURATION_MAX_MS);
	assert_int_equal(config_parse_duration("31536000001ms", &ms, &e), -1);
	assert_non_null(strstr(e.msg, "more than the maximum, 365d"));
	assert_int_equal(config_parse_duration("9223372036854775807ms", &ms, &e), -1);
	assert_int_equal(config_parse_duration("8761h", &ms, &e), -1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* ---- config_app_same: what a reload leaves alone ---- */

static void load_app_a(struct config *c, const char *prov, const char *app)
{
	char text[1024];

	snprintf(text, sizeof(text), "%s[app a]\n%s", prov, app);
	put("secretfs.conf", text);
	load_ok(c);
}

static void test_app_same_across_reload(void **state)
{
	static const char *a = "store = local://x\nenv.K = local://y#K\n";
	static const char *changed[] = {
		"store = local://x\nenv.K = local://y#K\nmode = 0440\n",
		"store = local://x\nenv.K = local://y#K\nttl = 7s\n",
		"store = local://z\nenv.K = local://y#K\n",
		"store = local://x\nenv.K = local://y#L\n",
		"store = local://x\n",
	};
	struct config c1 = { 0 }, c2 = { 0 };

	(void)state;
	load_app_a(&c1, PROV, a);
	load_app_a(&c2, PROV "[app other]\nstore = local://o\n", a);
	assert_true(config_app_same(&c1, config_app(&c1, "a"), &c2, config_app(&c2, "a")));
	config_free(&c2);
	/* the same text through a provider configured otherwise */
	memset(&c2, 0, sizeof(c2));
	load_app_a(&c2, "[provider local]\ntype = file\ndirectory = /tmp/other\n", a);
	assert_false(config_app_same(&c1, config_app(&c1, "a"), &c2, config_app(&c2, "a")));
	config_free(&c2);
	for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
		memset(&c2, 0, sizeof(c2));
		load_app_a(&c2, PROV, changed[i]);
		assert_false(config_app_same(&c1, config_app(&c1, "a"), &c2,
					     config_app(&c2, "a")));
		config_free(&c2);
	}
	config_free(&c1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_full),
		T(test_app_same_across_reload),
		T(test_defaults_and_no_confd),
		T(test_global_override),
		T(test_line_length),
		T(test_syntax_errors),
		T(test_section_errors),
		T(test_unknown_keys),
		T(test_views),
		T(test_bad_duration),
		T(test_bad_mode),
		T(test_bad_owner),
		T(test_local_locators_outside),
		T(test_bad_references),
		T(test_provider_errors),
		T(test_fernet_options),
		T(test_duplicates),
		T(test_generate_needs_store),
		T(test_argon2id_source),
		T(test_dropin_errors),
		T(test_unreadable),
		T(test_owner),
		T(test_durations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
