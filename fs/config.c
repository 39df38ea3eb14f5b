/* config.c - load secretfs.conf and its conf.d drop-ins (see config.h).
 *
 * inih splits key = value lines; it is fed through our own line reader,
 * which counts lines (Debian's inih passes no line number to the handler),
 * refuses overlong lines, and classifies each line the way inih will, so
 * that section headers (which inih does not report) and syntax errors get
 * their own line and a specific message. The first error stops loading.
 *
 * Sections never span files: a provider or app section is checked when it
 * ends (next header or end of file); which provider a reference names is
 * checked once every file is read, since drop-ins may define it later.
 * [secretfs] settings from a later file override earlier ones, so a
 * drop-in can tune the daemon; an app or provider is defined only once.
 *
 * Whoever can write a configuration file can grant themselves any app, so
 * the file, its conf.d folder and every drop-in must belong to root or to
 * the daemon's user and be writable by nobody else (like credential files
 * in providers/kit.c); anything else is refused before it is read.
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <libgen.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/hash.h"
#include "../base/log.h"
#include "../base/secmem.h"
#include "../base/trust.h"
#include "../providers/provider.h"
#include "../base/dotenv.h"
#include "../base/formats.h"
#include "hooks.h"

#define APP_NAME_MAX 255

enum sect_kind {
	SECT_NONE,	/* before the first header */
	SECT_SECRETFS,
	SECT_PROVIDER,
	SECT_APP,
};

/* State of one config_load call. */
/* App names seen so far, to find a duplicate without a scan per app:
 * open addressing over indices into c->apps (0 = empty, else index + 1). */
struct name_index {
	size_t *slot;
	size_t cap;	/* a power of two, at least twice the entries */
	size_t n;
};

struct loader {
	struct config *c;
	struct err *e;
	struct name_index apps_seen;
	size_t apps_cap;	/* allocated c->apps and store_at */
	FILE *f;
	const char *file;	/* c->files[...] being read */
	int line;		/* line last handed to inih */
	bool failed;		/* e holds the first error; stop reading */
	/* inih treats an indented line after a key line as a continuation */
	bool in_key;
	char prev_key[64];
	enum sect_kind sect;
	size_t idx;		/* c->providers or c->apps index of the section */
	/* where the open section set its single-valued keys (line 0: unset) */
	struct conf_where type_at, owner_at, mode_at;
	/* where each app set store, by definition order (c->apps unsorted) */
	struct conf_where *store_at;
	/* where each [secretfs] setting was last set */
	struct conf_where global_at[4];
	struct conf_where views_at;	/* of [secretfs], or of the open app */
};

static const struct {
	const char *key;
	size_t off;	/* of the long in struct config */
	long min_ms;
} global_keys[] = {
	{ "ttl", offsetof(struct config, ttl_ms), 0 },
	{ "refresh", offsetof(struct config, refresh_ms), 0 },
	{ "max_stale", offsetof(struct config, max_stale_ms), 0 },
	{ "request_timeout", offsetof(struct config, request_timeout_ms), 1 },
};

static int config_vfail_at(struct loader *ld, const char *file, int line,
		    const char *fmt, va_list ap)
{
	char msg[sizeof(ld->e->msg)];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	ld->failed = true;
	return err_set(ld->e, ERR_INVALID, "%s:%d: %s", file, line, msg);
}

/* An ERR_INVALID error at the line being read. */
__attribute__((format(printf, 2, 3)))
static int config_fail(struct loader *ld, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vfail_at(ld, ld->file, ld->line, fmt, ap);
	va_end(ap);
	return -1;
}

__attribute__((format(printf, 3, 4)))
static int config_fail_at(struct loader *ld, const struct conf_where *w,
		   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vfail_at(ld, w->file, w->line, fmt, ap);
	va_end(ap);
	return -1;
}

/* Put "file:line: " before the message a parser left in e. */
static int config_fail_prefixed(struct loader *ld, const char *what)
{
	ld->failed = true;
	return err_prefix(ld->e, "%s:%d: %s: ", ld->file, ld->line, what);
}

static int config_oom(struct loader *ld)
{
	ld->failed = true;
	return err_oom(ld->e);
}

static struct conf_where config_here(const struct loader *ld)
{
	return (struct conf_where){ ld->file, ld->line };
}

/* ---- durations, modes, owners, names ---- */

struct config_unit {
	const char *unit;
	long scale;
};

/* A number followed by one of units ("" for a bare number). what and
 * units_text name the kind in messages. */
static int config_parse_scaled(const char *s, const struct config_unit *units,
			       size_t nunits, const char *what,
			       const char *units_text, long *out, struct err *e)
{
	const char *p = s;
	long n = 0;

	if (*p == '-')
		return err_set(e, ERR_INVALID, "bad %s '%s': must not be negative",
			       what, s);
	if (!isdigit((unsigned char)*p))
		return err_set(e, ERR_INVALID, "bad %s '%s': expected a number and a unit (%s)",
			       what, s, units_text);
	for (; isdigit((unsigned char)*p); p++)
		if (__builtin_mul_overflow(n, 10, &n) ||
		    __builtin_add_overflow(n, *p - '0', &n))
			return err_set(e, ERR_INVALID, "bad %s '%s': too large", what, s);
	for (size_t i = 0; i < nunits; i++) {
		if (strcmp(p, units[i].unit))
			continue;
		if (__builtin_mul_overflow(n, units[i].scale, &n))
			return err_set(e, ERR_INVALID, "bad %s '%s': too large", what, s);
		*out = n;
		return 0;
	}
	return err_set(e, ERR_INVALID, "bad %s '%s': unknown unit '%s' (%s)",
		       what, s, p, units_text);
}

int config_parse_duration(const char *s, long *ms, struct err *e)
{
	static const struct config_unit units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 },
	};
	long n;

	if (config_parse_scaled(s, units, sizeof(units) / sizeof(units[0]),
				"duration", "250ms, 30s, 5m, 24h, 2d", &n, e) < 0)
		return -1;
	/* the cache and hooks add and multiply durations: keep them far
	 * from overflowing */
	if (n > CONFIG_DURATION_MAX_MS)
		return err_set(e, ERR_INVALID,
			       "bad duration '%s': more than the maximum, %s",
			       s, CONFIG_DURATION_MAX_TEXT);
	*ms = n;
	return 0;
}

int config_parse_size(const char *s, size_t *bytes, struct err *e)
{
	static const struct config_unit units[] = {
		{ "", 1 }, { "K", 1L << 10 }, { "M", 1L << 20 }, { "G", 1L << 30 },
	};
	long n;

	if (config_parse_scaled(s, units, sizeof(units) / sizeof(units[0]),
				"size", "512K, 64M, 1G", &n, e) < 0)
		return -1;
	*bytes = (size_t)n;
	return 0;
}

static int config_mode_parse(struct loader *ld, const char *s, mode_t *mode)
{
	size_t len = strlen(s);
	unsigned long v;

	if (len == 0 || len > 4 || strspn(s, "01234567") != len)
		return config_fail(ld, "mode '%s': expected octal permissions like 0400 or 0640",
			    s);
	v = strtoul(s, NULL, 8);
	if (v & ~0777UL)
		return config_fail(ld, "mode '%s': only permission bits (within 0777) are allowed",
			    s);
	if (!(v & 0400))
		return config_fail(ld, "mode '%s': the owner must be able to read (0400)",
			    s);
	*mode = (mode_t)v;
	return 0;
}

/* Decimal id; (uid_t)-1 is "no change" to chown, never an owner. */
static bool config_id_parse(const char *s, unsigned *id)
{
	unsigned long v;
	char *end;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || v >= (unsigned)-1)
		return false;
	*id = (unsigned)v;
	return true;
}

static size_t config_nss_bufsize(int name)
{
	long n = sysconf(name);

	return n > 0 ? (size_t)n : 16384;
}

/* The *_r lookups report "not found" as 0 or one of these. */
static bool config_nss_notfound(int rc)
{
	return rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF ||
	       rc == EPERM;
}

/* 1 found, 0 no such user, -1 error (in ld). name or, when NULL, uid. */
static int config_user_lookup(struct loader *ld, const char *name, uid_t uid,
		       struct passwd *out)
{
	size_t size = config_nss_bufsize(_SC_GETPW_R_SIZE_MAX);
	struct passwd pw, *res = NULL;
	int rc;

	for (;;) {
		char *buf = malloc(size);

		if (!buf)
			return config_oom(ld);
		if (name)
			rc = getpwnam_r(name, &pw, buf, size, &res);
		else
			rc = getpwuid_r(uid, &pw, buf, size, &res);
		if (res)
			*out = (struct passwd){ .pw_uid = pw.pw_uid,
						.pw_gid = pw.pw_gid };
		free(buf);
		if (rc != ERANGE)
			break;
		size *= 2;
	}
	if (res)
		return 1;
	if (config_nss_notfound(rc))
		return 0;
	return config_fail(ld, "cannot look up user '%s': %s", name ? name : "",
		    strerror(rc));
}

static int config_group_lookup(struct loader *ld, const char *name, gid_t *gid)
{
	size_t size = config_nss_bufsize(_SC_GETGR_R_SIZE_MAX);
	struct group gr, *res = NULL;
	int rc;

	for (;;) {
		char *buf = malloc(size);

		if (!buf)
			return config_oom(ld);
		rc = getgrnam_r(name, &gr, buf, size, &res);
		if (res)
			*gid = gr.gr_gid;
		free(buf);
		if (rc != ERANGE)
			break;
		size *= 2;
	}
	if (res)
		return 1;
	if (config_nss_notfound(rc))
		return 0;
	return config_fail(ld, "cannot look up group '%s': %s", name, strerror(rc));
}

/* user[:group] or uid[:gid]; a user alone brings its primary group. */
static int config_owner_parse(struct loader *ld, const char *s, uid_t *uid,
		       gid_t *gid)
{
	const char *colon = strchr(s, ':');
	size_t ulen = colon ? (size_t)(colon - s) : strlen(s);
	char user[256];
	struct passwd pw = { 0 };
	unsigned id;
	int rc;

	if (ulen == 0 || ulen >= sizeof(user) || (colon && !colon[1]) ||
	    (colon && strchr(colon + 1, ':')))
		return config_fail(ld, "owner '%s': expected user[:group] or uid[:gid]",
			    s);
	memcpy(user, s, ulen);
	user[ulen] = '\0';
	if (config_id_parse(user, &id)) {
		*uid = id;
		rc = colon ? 1 : config_user_lookup(ld, NULL, id, &pw);
		if (rc == 0)
			return config_fail(ld, "owner '%s': uid %u has no passwd entry to take a group from; write %s:GID",
				    s, id, s);
	} else {
		rc = config_user_lookup(ld, user, 0, &pw);
		if (rc == 0)
			return config_fail(ld, "owner '%s': unknown user '%s'", s,
				    user);
		*uid = pw.pw_uid;
	}
	if (rc < 0)
		return -1;
	if (!colon) {
		*gid = pw.pw_gid;
		return 0;
	}
	if (config_id_parse(colon + 1, &id)) {
		*gid = id;
		return 0;
	}
	rc = config_group_lookup(ld, colon + 1, gid);
	if (rc == 0)
		return config_fail(ld, "owner '%s': unknown group '%s'", s, colon + 1);
	return rc < 0 ? -1 : 0;
}

#define WORD_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"

/* A file name in the mount: [A-Za-z0-9_][A-Za-z0-9_.-]*, so never . or .. */
static bool config_app_name_valid(const char *s)
{
	size_t len = strlen(s);

	return len > 0 && len <= APP_NAME_MAX && strchr(WORD_CHARS, s[0]) &&
	       strspn(s, WORD_CHARS ".-") == len;
}

static bool config_env_name_valid(const char *s)
{
	return *s && s[strspn(s, WORD_CHARS)] == '\0';
}

/* ---- sections ---- */

static struct app_conf *config_cur_app(struct loader *ld)
{
	return &ld->c->apps[ld->idx];
}

static struct provider_conf *config_cur_provider(struct loader *ld)
{
	return &ld->c->providers[ld->idx];
}

static void config_section_reset(struct loader *ld, enum sect_kind kind)
{
	static const struct conf_where none;

	ld->sect = kind;
	ld->type_at = ld->owner_at = ld->mode_at = none;
	if (kind != SECT_SECRETFS)
		ld->views_at = none;
}

static int config_provider_open(struct loader *ld, const char *name)
{
	struct config *c = ld->c;
	const struct provider_conf *old = config_provider(c, name);
	struct provider_conf *p;

	if (!*name)
		return config_fail(ld, "[provider] needs a name: [provider NAME]");
	if (!ref_scheme_valid(name))
		return config_fail(ld, "provider name '%s' is not valid: it is the scheme of references, [A-Za-z][A-Za-z0-9+.-]*, not 'generate'",
			    name);
	if (old)
		return config_fail(ld, "provider %s already defined at %s:%d", name,
			    old->where.file, old->where.line);
	p = realloc(c->providers, (c->nproviders + 1) * sizeof(*p));
	if (!p)
		return config_oom(ld);
	c->providers = p;
	p = &p[c->nproviders];
	*p = (struct provider_conf){ .name = strdup(name), .where = config_here(ld) };
	if (!p->name)
		return config_oom(ld);
	config_section_reset(ld, SECT_PROVIDER);
	ld->idx = c->nproviders++;
	return 0;
}

static size_t config_name_hash(const char *s)
{
	return (size_t)hash_fnv1a(HASH_FNV1A_INIT, s);
}

/* The slot of name: where it is, or where it would go. */
static size_t *config_name_slot(struct name_index *x, const struct app_conf *apps,
			 const char *name)
{
	size_t i = config_name_hash(name) & (x->cap - 1);

	while (x->slot[i] && strcmp(apps[x->slot[i] - 1].name, name))
		i = (i + 1) & (x->cap - 1);
	return &x->slot[i];
}

static int config_name_grow(struct name_index *x, const struct app_conf *apps)
{
	struct name_index bigger = { NULL, x->cap ? x->cap * 2 : 64, x->n };

	if (x->cap && (x->n + 1) * 2 <= x->cap)
		return 0;
	bigger.slot = calloc(bigger.cap, sizeof(*bigger.slot));
	if (!bigger.slot)
		return -1;
	for (size_t i = 0; i < x->cap; i++)
		if (x->slot[i])
			*config_name_slot(&bigger, apps, apps[x->slot[i] - 1].name) = x->slot[i];
	free(x->slot);
	*x = bigger;
	return 0;
}

/* Room for one more app (doubling, not one at a time: 10,000 apps). */
static int config_apps_reserve(struct loader *ld)
{
	struct config *c = ld->c;
	size_t cap = ld->apps_cap ? ld->apps_cap * 2 : 16;
	struct conf_where *w;
	struct app_conf *a;

	if (c->napps < ld->apps_cap)
		return 0;
	w = realloc(ld->store_at, cap * sizeof(*w));
	if (w)
		ld->store_at = w;
	a = w ? realloc(c->apps, cap * sizeof(*a)) : NULL;
	if (!a)
		return -1;
	c->apps = a;
	ld->apps_cap = cap;
	return 0;
}

static int config_app_open(struct loader *ld, const char *name)
{
	struct config *c = ld->c;
	const struct app_conf *old;
	size_t *slot;
	struct app_conf *a;

	if (!*name)
		return config_fail(ld, "[app] needs a name: [app NAME]");
	if (!config_app_name_valid(name))
		return config_fail(ld, "app name '%s' is not valid: [A-Za-z0-9_][A-Za-z0-9_.-]*, at most %d characters",
			    name, APP_NAME_MAX);
	if (config_name_grow(&ld->apps_seen, c->apps) < 0 || config_apps_reserve(ld) < 0)
		return config_oom(ld);
	slot = config_name_slot(&ld->apps_seen, c->apps, name);
	old = *slot ? &c->apps[*slot - 1] : NULL;
	if (old)
		return config_fail(ld, "app %s already defined at %s:%d", name,
			    old->where.file, old->where.line);
	ld->store_at[c->napps] = (struct conf_where){ NULL, 0 };
	a = &c->apps[c->napps];
	*a = (struct app_conf){ .name = strdup(name), .mode = 0400,
				.ttl_ms = -1, .refresh_ms = -1, .max_stale_ms = -1,
				.views = -1, .on_change_delay_ms = 2000,
				.on_change_timeout_ms = 60000,
				.where = config_here(ld) };
	if (!a->name)
		return config_oom(ld);
	config_section_reset(ld, SECT_APP);
	*slot = c->napps + 1;
	ld->apps_seen.n++;
	ld->idx = c->napps++;
	return 0;
}

/* Options every provider type takes: secretfs acts on them, not the
 * provider. */
static const char *const config_generic_options[] = { "fernet_key",
						      "fernet_ttl", NULL };

static bool config_has_option(const struct provider_ops *ops, const char *key)
{
	for (const char *const *o = config_generic_options; *o; o++)
		if (!strcmp(*o, key))
			return true;
	for (const char *const *o = ops->options; o && *o; o++)
		if (!strcmp(*o, key))
			return true;
	return false;
}

/* The type may follow the options, so they are checked here. */
static int config_provider_close(struct loader *ld)
{
	const struct provider_conf *p = config_cur_provider(ld);
	const struct provider_ops *ops;

	if (!p->type)
		return config_fail_at(ld, &p->where,
			       "provider %s has no type = ... (e.g. type = file)",
			       p->name);
	ops = provider_ops_find(p->type);
	if (!ops)
		return config_fail_at(ld, &ld->type_at,
			       "provider %s: unknown type '%s'", p->name,
			       p->type);
	for (size_t i = 0; i < p->nopts; i++)
		if (!config_has_option(ops, p->opts[i].key))
			return config_fail_at(ld, &p->opts[i].where,
				       "provider %s (type %s) has no option '%s'",
				       p->name, p->type, p->opts[i].key);
	return 0;
}

static const struct conf_mapping *config_first_generate(const struct app_conf *a)
{
	for (size_t i = 0; i < a->nenv; i++)
		if (a->env[i].ref.kind == REF_GENERATE)
			return &a->env[i];
	for (size_t i = 0; i < a->nkeys; i++)
		if (a->keys[i].ref.kind == REF_GENERATE)
			return &a->keys[i];
	return NULL;
}

static int config_app_close(struct loader *ld)
{
	const struct app_conf *a = config_cur_app(ld);
	const struct conf_mapping *gen = config_first_generate(a);

	if (gen && !a->has_store)
		return config_fail_at(ld, &gen->where,
			       "app %s: generate: needs a store = ... to keep generated values",
			       a->name);
	return 0;
}

static int config_section_close(struct loader *ld)
{
	int rc = 0;

	if (ld->sect == SECT_PROVIDER)
		rc = config_provider_close(ld);
	else if (ld->sect == SECT_APP)
		rc = config_app_close(ld);
	config_section_reset(ld, SECT_NONE);
	return rc;
}

/* text: what stood between '[' and ']'. */
static int config_section_open(struct loader *ld, const char *text, size_t len)
{
	char buf[256], whole[256];
	char *type, *name, *end;

	if (config_section_close(ld) < 0)
		return -1;
	len = len < sizeof(buf) ? len : sizeof(buf) - 1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	type = buf + strspn(buf, " \t\r\f\v");
	end = type + strlen(type);
	while (end > type && isspace((unsigned char)end[-1]))
		*--end = '\0';
	snprintf(whole, sizeof(whole), "%s", type);
	name = type + strcspn(type, " \t\r\f\v");
	if (*name)
		*name++ = '\0';
	name += strspn(name, " \t\r\f\v");

	if (!strcmp(type, "secretfs")) {
		if (*name)
			return config_fail(ld, "[secretfs] takes no name");
		config_section_reset(ld, SECT_SECRETFS);
		return 0;
	}
	if (!strcmp(type, "provider"))
		return config_provider_open(ld, name);
	if (!strcmp(type, "app"))
		return config_app_open(ld, name);
	return config_fail(ld, "unknown section [%s]: expected [secretfs], [provider NAME] or [app NAME]",
		    whole);
}

/* ---- settings ---- */

static int config_already_set(struct loader *ld, const char *key,
		       const struct conf_where *old)
{
	return config_fail(ld, "'%s' already set at %s:%d", key, old->file,
		    old->line);
}

int config_parse_views(const char *s, int *views, struct err *e)
{
	char word[16];

	*views = 0;
	while (*s) {
		size_t n = strcspn(s, " \t,");
		enum fmt_kind f;

		if (n && (n >= sizeof(word) ||
			  (memcpy(word, s, n), word[n] = '\0', fmt_parse(word, &f) < 0) ||
			  f == FMT_ENV))
			return err_set(e, ERR_INVALID, "unknown view '%.*s' (json, sh, docker)",
				       (int)n, s);
		if (n)
			*views |= 1 << f;
		s += n;
		s += strspn(s, " \t,");
	}
	return 0;
}

/* views = ... of [secretfs] or of the open app, once per section and file. */
static int config_views_set(struct loader *ld, const char *value, int *views)
{
	if (ld->views_at.line && ld->views_at.file == ld->file)
		return config_already_set(ld, "views", &ld->views_at);
	if (config_parse_views(value, views, ld->e) < 0)
		return config_fail_prefixed(ld, "views");
	ld->views_at = config_here(ld);
	return 0;
}

static int config_global_set(struct loader *ld, const char *key, const char *value)
{
	for (size_t i = 0; i < sizeof(global_keys) / sizeof(global_keys[0]); i++) {
		struct conf_where *at = &ld->global_at[i];
		long ms;

		if (strcmp(key, global_keys[i].key))
			continue;
		/* a later file may override; one file says it once */
		if (at->line && at->file == ld->file)
			return config_already_set(ld, key, at);
		if (config_parse_duration(value, &ms, ld->e) < 0)
			return config_fail_prefixed(ld, key);
		if (ms < global_keys[i].min_ms)
			return config_fail(ld, "%s must be more than 0", key);
		*(long *)((char *)ld->c + global_keys[i].off) = ms;
		*at = config_here(ld);
		return 0;
	}
	if (!strcmp(key, "views"))
		return config_views_set(ld, value, &ld->c->views);
	if (!strcmp(key, "cache_size")) {
		if (config_parse_size(value, &ld->c->cache_bytes, ld->e) < 0)
			return config_fail_prefixed(ld, key);
		return 0;
	}
	return config_fail(ld, "[secretfs] has no setting '%s' (ttl, refresh, max_stale, request_timeout, cache_size, views)",
		    key);
}

static int config_provider_set(struct loader *ld, const char *key, const char *value)
{
	struct provider_conf *p = config_cur_provider(ld);
	struct conf_opt *o;

	if (!strcmp(key, "type")) {
		if (p->type)
			return config_already_set(ld, key, &ld->type_at);
		p->type = strdup(value);
		if (!p->type)
			return config_oom(ld);
		ld->type_at = config_here(ld);
		return 0;
	}
	for (size_t i = 0; i < p->nopts; i++)
		if (!strcmp(p->opts[i].key, key))
			return config_already_set(ld, key, &p->opts[i].where);
	o = realloc(p->opts, (p->nopts + 1) * sizeof(*o));
	if (!o)
		return config_oom(ld);
	p->opts = o;
	o = &o[p->nopts];
	*o = (struct conf_opt){ .key = strdup(key), .value = strdup(value),
				.where = config_here(ld) };
	p->nopts++;
	if (!o->key || !o->value)
		return config_oom(ld);
	return 0;
}

/* Parse value into r; what names the setting in an error. */
static int config_ref_read(struct loader *ld, const char *what, const char *value,
		    struct ref *r)
{
	memset(r, 0, sizeof(*r));
	if (ref_parse(value, r, ld->e) < 0) {
		ref_free(r);
		return config_fail_prefixed(ld, what);
	}
	return 0;
}

static int config_app_store(struct loader *ld, const char *value)
{
	struct app_conf *a = config_cur_app(ld);
	struct ref r;

	if (a->has_store)
		return config_already_set(ld, "store", &ld->store_at[ld->idx]);
	if (config_ref_read(ld, "store", value, &r) < 0)
		return -1;
	if (r.kind != REF_PROVIDER || r.field) {
		ref_free(&r);
		return config_fail(ld, "store '%s': expected a whole provider entry, NAME://locator (no generate:, no #field)",
			    value);
	}
	a->store = r;
	a->has_store = true;
	ld->store_at[ld->idx] = config_here(ld);
	return 0;
}

static int config_mapping_add(struct loader *ld, struct conf_mapping **v, size_t *n,
		       const char *name, struct ref *r)
{
	struct conf_mapping *m = realloc(*v, (*n + 1) * sizeof(*m));

	if (!m) {
		ref_free(r);
		return config_oom(ld);
	}
	*v = m;
	m = &m[*n];
	*m = (struct conf_mapping){ .name = strdup(name), .ref = *r,
				    .where = config_here(ld) };
	(*n)++;
	return m->name ? 0 : config_oom(ld);
}

static int config_app_env(struct loader *ld, const char *key, const char *value)
{
	struct app_conf *a = config_cur_app(ld);
	const char *name = key + strlen("env.");
	struct ref r;

	if (!dotenv_key_valid(name))
		return config_fail(ld, "%s: '%s' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)",
			    key, name);
	for (size_t i = 0; i < a->nenv; i++)
		if (!strcmp(a->env[i].name, name))
			return config_already_set(ld, key, &a->env[i].where);
	if (config_ref_read(ld, key, value, &r) < 0)
		return -1;
	if (r.kind == REF_GENERATE && r.gen.kind == GEN_ARGON2ID &&
	    !strcmp(r.gen.source, name)) {
		ref_free(&r);
		return config_fail(ld, "%s: generate:argon2id:%s would hash its own value; name the key that holds the password",
			    key, name);
	}
	return config_mapping_add(ld, &a->env, &a->nenv, name, &r);
}

static int config_app_keys(struct loader *ld, const char *key, const char *value)
{
	struct app_conf *a = config_cur_app(ld);
	const char *name = key + strlen("keys.");
	struct ref r;

	if (!config_env_name_valid(name))
		return config_fail(ld, "%s: '%s' is not a valid environment name ([A-Za-z0-9_]+)",
			    key, name);
	/* keys.prod and keys.PROD would both be DOTENV_PRIVATE_KEY_PROD */
	for (size_t i = 0; i < a->nkeys; i++)
		if (!strcasecmp(a->keys[i].name, name))
			return config_already_set(ld, key, &a->keys[i].where);
	if (config_ref_read(ld, key, value, &r) < 0)
		return -1;
	if (r.kind == REF_GENERATE && r.gen.kind != GEN_DOTENVX) {
		ref_free(&r);
		return config_fail(ld, "%s: expected a provider reference or generate:dotenvx",
			    key);
	}
	return config_mapping_add(ld, &a->keys, &a->nkeys, name, &r);
}

/* A file name a template may take: one the folder shows nothing else as. */
static bool config_file_name_valid(const char *s)
{
	return config_app_name_valid(s) && strcmp(s, ".env") &&
	       strncmp(s, ".env.", 5) && s[0] != '.';
}

/* A relative template path is relative to the folder of the file naming it. */
static char *config_template_path(const struct loader *ld, const char *value)
{
	const char *slash = strrchr(ld->file, '/');
	char *p;

	if (value[0] == '/' || !slash)
		return strdup(value);
	p = malloc((size_t)(slash - ld->file) + strlen(value) + 2);
	if (p)
		sprintf(p, "%.*s/%s", (int)(slash - ld->file), ld->file, value);
	return p;
}

static int config_app_file(struct loader *ld, const char *key, const char *value)
{
	struct app_conf *a = config_cur_app(ld);
	const char *name = key + strlen("file.");
	struct conf_template *t;
	char *path;
	int rc;

	if (!config_file_name_valid(name))
		return config_fail(ld, "%s: '%s' is not a file name a template can take ([A-Za-z0-9_][A-Za-z0-9_.-]*, not .env*)",
				   key, name);
	for (size_t i = 0; i < a->ntpls; i++)
		if (!strcmp(a->tpls[i].name, name))
			return config_already_set(ld, key, &a->tpls[i].where);
	t = realloc(a->tpls, (a->ntpls + 1) * sizeof(*t));
	if (!t)
		return config_oom(ld);
	a->tpls = t;
	t = &t[a->ntpls++];
	*t = (struct conf_template){ .name = strdup(name), .where = config_here(ld) };
	path = config_template_path(ld, value);
	if (!t->name || !path) {
		free(path);
		return config_oom(ld);
	}
	rc = tpl_load(path, &t->tpl, ld->e);
	free(path);
	if (rc < 0 && strncmp(ld->e->msg, "template ", 9))
		ld->failed = true;	/* the template's own file:line */
	else if (rc < 0)
		config_fail_prefixed(ld, key);
	return rc;
}

/* on_change, on_change_user, on_change_delay, on_change_timeout */
static int config_app_hook(struct loader *ld, struct app_conf *a, const char *key,
			   const char *value)
{
	long *ms = !strcmp(key, "on_change_delay") ? &a->on_change_delay_ms :
		   &a->on_change_timeout_ms;

	if (!strcmp(key, "on_change")) {
		if (a->on_change.n)
			return config_fail(ld, "'on_change' is set twice in app %s", a->name);
		a->on_change_at = config_here(ld);
		return hooks_split(value, &a->on_change, ld->e) < 0 ?
			config_fail_prefixed(ld, key) : 0;
	}
	if (!strcmp(key, "on_change_user")) {
		if (a->hook_as_user)
			return config_fail(ld, "'on_change_user' is set twice in app %s", a->name);
		a->hook_as_user = true;
		return config_owner_parse(ld, value, &a->hook_uid, &a->hook_gid);
	}
	if (config_parse_duration(value, ms, ld->e) < 0)
		return config_fail_prefixed(ld, key);
	if (ms == &a->on_change_timeout_ms && *ms < 1)
		return config_fail(ld, "on_change_timeout must be more than 0");
	return 0;
}

/* ttl, refresh, max_stale of one app (-1 until set: [secretfs]'s apply). */
static int config_app_policy(struct loader *ld, struct app_conf *a, const char *key,
		      const char *value)
{
	long *field = !strcmp(key, "ttl") ? &a->ttl_ms :
		      !strcmp(key, "refresh") ? &a->refresh_ms : &a->max_stale_ms;

	if (*field >= 0)
		return config_fail(ld, "'%s' is set twice in app %s", key, a->name);
	if (config_parse_duration(value, field, ld->e) < 0)
		return config_fail_prefixed(ld, key);
	return 0;
}

static int config_app_set(struct loader *ld, const char *key, const char *value)
{
	struct app_conf *a = config_cur_app(ld);

	if (!strcmp(key, "owner")) {
		if (ld->owner_at.line)
			return config_already_set(ld, key, &ld->owner_at);
		ld->owner_at = config_here(ld);
		return config_owner_parse(ld, value, &a->uid, &a->gid);
	}
	if (!strcmp(key, "mode")) {
		if (ld->mode_at.line)
			return config_already_set(ld, key, &ld->mode_at);
		ld->mode_at = config_here(ld);
		if (config_mode_parse(ld, value, &a->mode) < 0)
			return -1;
		/* allowed, but rarely meant: warn, naming the app */
		if (a->mode & S_IWOTH)
			log_warn("%s:%d: app %s: mode %s lets every user write its secrets",
				 ld->file, ld->line, a->name, value);
		return 0;
	}
	if (!strcmp(key, "store"))
		return config_app_store(ld, value);
	if (!strcmp(key, "ttl") || !strcmp(key, "refresh") || !strcmp(key, "max_stale"))
		return config_app_policy(ld, a, key, value);
	if (!strcmp(key, "views"))
		return config_views_set(ld, value, &a->views);
	if (!strncmp(key, "env.", 4))
		return config_app_env(ld, key, value);
	if (!strncmp(key, "file.", 5))
		return config_app_file(ld, key, value);
	if (!strcmp(key, "on_change") || !strcmp(key, "on_change_user") ||
	    !strcmp(key, "on_change_delay") || !strcmp(key, "on_change_timeout"))
		return config_app_hook(ld, a, key, value);
	if (!strncmp(key, "keys.", 5))
		return config_app_keys(ld, key, value);
	return config_fail(ld, "app %s has no setting '%s' (owner, mode, store, env.KEY, keys.ENV, file.NAME, ttl, refresh, max_stale, views, on_change, on_change_user, on_change_delay, on_change_timeout)",
		    a->name, key);
}

/* inih's handler. section is ignored: ours is whole, inih's is cut at 49
 * characters. Called for the line config_read_line just returned. */
static int config_on_setting(void *user, const char *section, const char *key,
		      const char *value)
{
	struct loader *ld = user;
	int rc;

	(void)section;
	switch (ld->sect) {
	case SECT_SECRETFS:
		rc = config_global_set(ld, key, value);
		break;
	case SECT_PROVIDER:
		rc = config_provider_set(ld, key, value);
		break;
	case SECT_APP:
		rc = config_app_set(ld, key, value);
		break;
	default:
		rc = config_fail(ld, "'%s' is outside any section", key);
		break;
	}
	return rc == 0;
}

/* ---- reading lines ---- */

/* inih's rule: the first of chars, or a ';' after whitespace. */
static const char *config_find_chars_or_comment(const char *s, const char *chars)
{
	bool was_space = false;

	while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

static const char *config_skip_space(const char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	return s;
}

/* Classify line as inih will: comment, continuation, [section] or key. */
static int config_scan_line(struct loader *ld, const char *line)
{
	const char *start = line, *end;

	if (ld->line == 1 && !strncmp(start, "\xEF\xBB\xBF", 3))
		start += 3;
	start = config_skip_space(start);
	if (!*start || *start == ';' || *start == '#')
		return 0;
	if (ld->in_key && start > line)
		return config_fail(ld, "indented line continues the value of '%s' above; each setting is one line: remove the indentation",
			    ld->prev_key);
	if (*start == '[') {
		const char *rest;

		end = config_find_chars_or_comment(start + 1, "]");
		if (*end != ']')
			return config_fail(ld, "syntax error: missing ']' in section header");
		rest = config_skip_space(end + 1);
		if (*rest && !(rest > end + 1 && *rest == ';'))
			return config_fail(ld, "syntax error: text after ']'");
		ld->in_key = false;
		return config_section_open(ld, start + 1, (size_t)(end - start - 1));
	}
	end = config_find_chars_or_comment(start, "=:");
	if (*end != '=' && *end != ':')
		return config_fail(ld, "syntax error: expected [section] or key = value");
	if (end == start)
		return config_fail(ld, "syntax error: no key before '%c'", *end);
	ld->in_key = true;
	snprintf(ld->prev_key, sizeof(ld->prev_key), "%.*s",
		 (int)strcspn(start, " \t=:"), start);
	return 0;
}

/* buf holds a line without its newline: the last line, or too long. */
static int config_check_unterminated(struct loader *ld, const char *buf, int size)
{
	int ch;

	if (feof(ld->f))
		return 0;
	if (strlen(buf) + 1 < (size_t)size)
		return config_fail(ld, "NUL byte in line");
	ch = getc(ld->f);
	if (ch == '\n')
		return 0;
	if (ch == EOF && ferror(ld->f))
		return -1;	/* config_read_line reports it */
	if (ch == EOF)
		return 0;
	return config_fail(ld, "line too long (at most %d characters)", size - 1);
}

/* inih's reader: fgets that counts lines and stops at the first error. */
static char *config_read_line(char *buf, int size, void *user)
{
	struct loader *ld = user;
	size_t len;

	if (ld->failed)
		return NULL;
	if (!fgets(buf, size, ld->f))
		goto eof;
	ld->line++;
	len = strlen(buf);
	if ((!len || buf[len - 1] != '\n') &&
	    config_check_unterminated(ld, buf, size) < 0)
		goto eof;
	if (config_scan_line(ld, buf) < 0)
		return NULL;
	return buf;
eof:
	if (!ld->failed && ferror(ld->f)) {
		ld->failed = true;
		err_set(ld->e, ERR_IO, "%s: cannot read: %s", ld->file,
			strerror(errno));
	}
	return NULL;
}

/* ---- files ---- */

static int config_file_add(struct loader *ld, const char *path)
{
	struct config *c = ld->c;
	char **v = realloc(c->files, (c->nfiles + 1) * sizeof(*v));

	if (!v)
		return config_oom(ld);
	c->files = v;
	v[c->nfiles] = strdup(path);
	if (!v[c->nfiles])
		return config_oom(ld);
	ld->file = v[c->nfiles++];
	return 0;
}

/* path (opened as fd) is trusted (base/trust.h); the error says how to
 * make it so. */
static int config_trust_check(struct loader *ld, const char *path, int fd)
{
	ld->failed = trust_fd(fd, path, "grant themselves any app", ld->e) < 0;
	return ld->failed ? -1 : 0;
}

static int config_file_load(struct loader *ld, const char *path)
{
	int rc;

	if (config_file_add(ld, path) < 0)
		return -1;
	ld->f = fopen(path, "re");
	if (!ld->f)
		return err_set(ld->e, ERR_IO, "%s: cannot read: %s", path,
			       strerror(errno));
	if (config_trust_check(ld, path, fileno(ld->f)) < 0) {
		fclose(ld->f);
		ld->f = NULL;
		return -1;
	}
	ld->line = 0;
	ld->in_key = false;
	config_section_reset(ld, SECT_NONE);
	rc = ini_parse_stream(config_read_line, ld, config_on_setting, ld);
	fclose(ld->f);
	ld->f = NULL;
	if (ld->failed)
		return -1;
	if (rc == -2)
		return config_oom(ld);
	if (rc) {
		/* config_scan_line should have caught it first */
		ld->line = rc;
		return config_fail(ld, "syntax error");
	}
	return config_section_close(ld);
}

static int config_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool config_is_dropin(const char *name)
{
	size_t len = strlen(name);

	return name[0] != '.' && len > 5 && !strcmp(name + len - 5, ".conf");
}

/* dir/conf.d/NAME.conf, sorted by strcmp. A missing conf.d is fine. */
static int config_dropins_list(struct loader *ld, const char *path, struct strv *out)
{
	char *copy = strdup(path), *confd = NULL;
	const char *dir;
	struct dirent *d;
	DIR *dh;
	int rc = -1;

	if (!copy)
		return config_oom(ld);
	dir = dirname(copy);
	if (asprintf(&confd, "%s%sconf.d", dir,
		     dir[strlen(dir) - 1] == '/' ? "" : "/") < 0) {
		free(copy);
		return config_oom(ld);
	}
	dh = opendir(confd);
	if (!dh) {
		rc = errno == ENOENT ? 0 :
		     err_set(ld->e, ERR_IO, "%s: cannot read: %s", confd,
			     strerror(errno));
		goto out;
	}
	if (config_trust_check(ld, confd, dirfd(dh)) < 0)
		goto out_dir;
	errno = 0;
	while ((d = readdir(dh))) {
		char *full;

		if (!config_is_dropin(d->d_name))
			continue;
		if (asprintf(&full, "%s/%s", confd, d->d_name) < 0) {
			config_oom(ld);
			goto out_dir;
		}
		rc = strv_push(out, full);
		free(full);
		if (rc < 0) {
			config_oom(ld);
			goto out_dir;
		}
	}
	rc = 0;
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), config_name_cmp);
out_dir:
	closedir(dh);
out:
	free(confd);
	free(copy);
	return rc;
}

/* ---- after every file ---- */

/* The earliest reference found so far that names no configured provider. */
struct bad_ref {
	const struct ref *ref;
	const struct conf_where *at;
};

static void config_bad_ref_note(const struct config *c, struct bad_ref *bad,
			 const struct ref *r, const struct conf_where *at)
{
	if (r->kind != REF_PROVIDER || config_provider(c, r->provider))
		return;
	if (!bad->at || at->line < bad->at->line)
		*bad = (struct bad_ref){ r, at };
}

/* An app's section is in one file, so the lowest line is the first. */
static int config_app_refs_check(struct loader *ld, size_t idx)
{
	const struct app_conf *a = &ld->c->apps[idx];
	struct bad_ref bad = { NULL, NULL };
	char text[256];

	if (a->has_store)
		config_bad_ref_note(ld->c, &bad, &a->store, &ld->store_at[idx]);
	for (size_t i = 0; i < a->nenv; i++)
		config_bad_ref_note(ld->c, &bad, &a->env[i].ref, &a->env[i].where);
	for (size_t i = 0; i < a->nkeys; i++)
		config_bad_ref_note(ld->c, &bad, &a->keys[i].ref, &a->keys[i].where);
	if (!bad.ref)
		return 0;
	ref_format(bad.ref, text, sizeof(text));
	return config_fail_at(ld, bad.at, "unknown provider '%s' in reference '%s' (no [provider %s] section)",
		       bad.ref->provider, text, bad.ref->provider);
}

/* The earliest reference its provider type refuses (provider_ops.check:
 * a secret name Azure cannot hold, a bad ?param), with the reason. */
struct refused_ref {
	const struct ref *ref;
	const struct conf_where *at;
	struct err why;
};

static void config_ref_check_one(const struct config *c, struct refused_ref *bad,
				 const struct ref *r, const struct conf_where *at)
{
	const struct provider_conf *p;
	const struct provider_ops *ops;
	struct err e;

	if (r->kind != REF_PROVIDER || (bad->at && at->line >= bad->at->line))
		return;
	p = config_provider(c, r->provider);
	ops = p ? provider_ops_find(p->type) : NULL;
	if (!ops)
		return;
	/* a type without check() needs a locator, as references once did */
	if (ops->check ? ops->check(r->locator, r->params, &e) == 0 :
			 r->locator[0] != '\0')
		return;
	if (!ops->check)
		err_set(&e, ERR_INVALID, "empty locator (provider type %s needs one)",
			p->type);
	bad->ref = r;
	bad->at = at;
	bad->why = e;
}

static int config_app_refs_valid(struct loader *ld, size_t idx)
{
	const struct app_conf *a = &ld->c->apps[idx];
	struct refused_ref bad = { NULL, NULL, { ERR_OK, "" } };
	char text[256];

	if (a->has_store)
		config_ref_check_one(ld->c, &bad, &a->store, &ld->store_at[idx]);
	for (size_t i = 0; i < a->nenv; i++)
		config_ref_check_one(ld->c, &bad, &a->env[i].ref, &a->env[i].where);
	for (size_t i = 0; i < a->nkeys; i++)
		config_ref_check_one(ld->c, &bad, &a->keys[i].ref, &a->keys[i].where);
	if (!bad.ref)
		return 0;
	ref_format(bad.ref, text, sizeof(text));
	return config_fail_at(ld, bad.at, "reference '%s': %s", text,
			      bad.why.msg);
}

/* A template's reference its provider type refuses (provider_ops.check),
 * with the template's file:line. */
static int config_tpl_ref_check(struct loader *ld, const struct tpl *t,
				const struct tpl_part *p)
{
	const struct provider_conf *pc = config_provider(ld->c, p->ref.provider);
	const struct provider_ops *ops = provider_ops_find(pc->type);
	char text[256];
	struct err why;

	if (!ops || !ops->check || ops->check(p->ref.locator, p->ref.params, &why) == 0)
		return 0;
	ref_format(&p->ref, text, sizeof(text));
	return err_set(ld->e, ERR_INVALID, "%s:%d: reference '%s': %s", t->path,
		       p->line, text, why.msg);
}

/* Every {{ KEY }} of a template is a key the app has: an env.KEY, or one
 * its store may hold (checked when the file is read); every reference's
 * provider exists. Errors name the template's file:line. */
static int config_app_templates_check(struct loader *ld, const struct app_conf *a)
{
	for (size_t i = 0; i < a->ntpls; i++) {
		const struct tpl *t = &a->tpls[i].tpl;

		for (size_t j = 0; j < t->n; j++) {
			const struct tpl_part *p = &t->parts[j];
			bool mapped = false;

			for (size_t k = 0; p->key && k < a->nenv; k++)
				mapped |= !strcmp(a->env[k].name, p->key);
			if (p->key && !mapped && !a->has_store)
				return err_set(ld->e, ERR_INVALID, "%s:%d: app %s has no key %s (no env.%s, no store)",
					       t->path, p->line, a->name, p->key, p->key);
			if (!p->key && !p->text && !config_provider(ld->c, p->ref.provider))
				return err_set(ld->e, ERR_INVALID, "%s:%d: unknown provider '%s' (no [provider %s] section)",
					       t->path, p->line, p->ref.provider, p->ref.provider);
			if (!p->key && !p->text && config_tpl_ref_check(ld, t, p) < 0)
				return -1;
		}
	}
	return 0;
}

/* The program on_change runs as root (or on_change_user) is one only they
 * can change: checked once on_change_user, which may come later, is known. */
static int config_app_hook_check(struct loader *ld, const struct app_conf *a)
{
	if (!a->on_change.n || hooks_trust_check(a, ld->e) == 0)
		return 0;
	ld->failed = true;
	return err_prefix(ld->e, "%s:%d: on_change: ", a->on_change_at.file,
			  a->on_change_at.line);
}

/* A writable store for apps that generate values. */
static int config_app_store_check(struct loader *ld, const struct app_conf *a)
{
	const struct conf_mapping *gen = config_first_generate(a);
	const struct provider_conf *p;
	const struct provider_ops *ops;

	if (!gen || !a->has_store)
		return 0;
	p = config_provider(ld->c, a->store.provider);
	ops = p ? provider_ops_find(p->type) : NULL;
	if (!ops || (ops->caps & PROVIDER_CAP_WRITE))
		return 0;
	return config_fail_at(ld, &gen->where,
		       "app %s: generate: needs a writable store; provider %s (type %s) is read-only",
		       a->name, p->name, p->type);
}

static int config_mapping_cmp(const void *a, const void *b)
{
	return strcmp(((const struct conf_mapping *)a)->name,
		      ((const struct conf_mapping *)b)->name);
}

static int config_template_cmp(const void *a, const void *b)
{
	return strcmp(((const struct conf_template *)a)->name,
		      ((const struct conf_template *)b)->name);
}

static int config_app_cmp(const void *a, const void *b)
{
	return strcmp(((const struct app_conf *)a)->name,
		      ((const struct app_conf *)b)->name);
}

static const struct conf_opt *config_opt(const struct provider_conf *p,
					 const char *key)
{
	for (size_t i = 0; i < p->nopts; i++)
		if (!strcmp(p->opts[i].key, key))
			return &p->opts[i];
	return NULL;
}

/* Is the section's data encrypted itself (fernet_key, or private_key on a
 * dotenvx type)? */
static bool config_provider_sealed(const struct provider_conf *p)
{
	const struct provider_ops *ops = provider_ops_find(p->type);

	return config_opt(p, "fernet_key") ||
	       (ops && (ops->caps & PROVIDER_CAP_DOTENVX) &&
		config_opt(p, "private_key"));
}

/* The key's reference (option o, fernet_key or private_key): a provider
 * entry (no generate:) of a provider that is not itself encrypted, which
 * its type accepts. */
static int config_sealed_key(struct loader *ld, const struct provider_conf *p,
			     const struct conf_opt *o, struct conf_sealed *f)
{
	const struct provider_conf *kp;
	const struct provider_ops *ops;
	struct err why;

	if (ref_parse(o->value, &f->key, &why) < 0)
		return config_fail_at(ld, &o->where, "provider %s: %s: %s",
				      p->name, o->key, why.msg);
	if (f->key.kind != REF_PROVIDER)
		return config_fail_at(ld, &o->where,
				      "provider %s: %s: expected a reference to where the key is kept, not generate:",
				      p->name, o->key);
	kp = config_provider(ld->c, f->key.provider);
	if (!kp)
		return config_fail_at(ld, &o->where,
				      "provider %s: %s: unknown provider '%s'",
				      p->name, o->key, f->key.provider);
	if (config_provider_sealed(kp))
		return config_fail_at(ld, &o->where,
				      "provider %s: %s: the key's provider %s is encrypted itself; keep the key where it is not encrypted",
				      p->name, o->key, kp->name);
	ops = provider_ops_find(kp->type);
	if (ops && ops->check && ops->check(f->key.locator, f->key.params, &why) < 0)
		return config_fail_at(ld, &o->where, "provider %s: %s: %s",
				      p->name, o->key, why.msg);
	return 0;
}

/* private_key on a dotenvx type: required, and not with fernet_key. */
static int config_dotenvx(struct loader *ld, size_t i)
{
	const struct provider_conf *p = &ld->c->providers[i];
	const struct conf_opt *key = config_opt(p, "private_key");
	const struct conf_opt *fk = config_opt(p, "fernet_key");
	struct conf_sealed *f = &ld->c->sealed[i];

	if (fk)
		return config_fail_at(ld, &fk->where,
				      "provider %s: a dotenvx store takes private_key, not fernet_key",
				      p->name);
	if (!key)
		return config_fail_at(ld, &p->where,
				      "provider %s: type %s needs private_key = <reference to the DOTENV_PRIVATE_KEY>",
				      p->name, p->type);
	f->kind = SEAL_DOTENVX;
	return config_sealed_key(ld, p, key, f);
}

static int config_fernet(struct loader *ld, size_t i)
{
	const struct provider_conf *p = &ld->c->providers[i];
	const struct provider_ops *ops = provider_ops_find(p->type);
	const struct conf_opt *key = config_opt(p, "fernet_key");
	const struct conf_opt *ttl = config_opt(p, "fernet_ttl");
	struct conf_sealed *f = &ld->c->sealed[i];
	struct err why;
	long ms;

	if (ops && (ops->caps & PROVIDER_CAP_DOTENVX))
		return config_dotenvx(ld, i);
	if (ttl && !key)
		return config_fail_at(ld, &ttl->where,
				      "provider %s: fernet_ttl needs a fernet_key",
				      p->name);
	if (!key)
		return 0;
	f->kind = SEAL_FERNET;
	if (config_sealed_key(ld, p, key, f) < 0)
		return -1;
	if (!ttl)
		return 0;
	if (config_parse_duration(ttl->value, &ms, &why) < 0)
		return config_fail_at(ld, &ttl->where, "fernet_ttl: %s", why.msg);
	if (ms < 1000)
		return config_fail_at(ld, &ttl->where,
				      "fernet_ttl: at least one second");
	f->ttl_s = ms / 1000;
	return 0;
}

static int config_finish(struct loader *ld)
{
	struct config *c = ld->c;

	c->sealed = calloc(c->nproviders ? c->nproviders : 1, sizeof(*c->sealed));
	if (!c->sealed)
		return config_oom(ld);
	for (size_t i = 0; i < c->nproviders; i++)
		if (config_fernet(ld, i) < 0)
			return -1;

	/* in definition order, so the first error in the files is reported */
	for (size_t i = 0; i < c->napps; i++)
		if (config_app_refs_check(ld, i) < 0 ||
		    config_app_refs_valid(ld, i) < 0 ||
		    config_app_store_check(ld, &c->apps[i]) < 0 ||
		    config_app_templates_check(ld, &c->apps[i]) < 0 ||
		    config_app_hook_check(ld, &c->apps[i]) < 0)
			return -1;
	for (size_t i = 0; i < c->napps; i++) {
		struct app_conf *a = &c->apps[i];

		if (a->ttl_ms < 0)
			a->ttl_ms = c->ttl_ms;
		if (a->refresh_ms < 0)
			a->refresh_ms = c->refresh_ms;
		if (a->max_stale_ms < 0)
			a->max_stale_ms = c->max_stale_ms;
		if (a->views < 0)
			a->views = c->views;
		if (a->nenv)
			qsort(a->env, a->nenv, sizeof(*a->env), config_mapping_cmp);
		if (a->nkeys)
			qsort(a->keys, a->nkeys, sizeof(*a->keys), config_mapping_cmp);
		if (a->ntpls)
			qsort(a->tpls, a->ntpls, sizeof(*a->tpls), config_template_cmp);
	}
	if (c->napps)
		qsort(c->apps, c->napps, sizeof(*c->apps), config_app_cmp);
	/* providers see the global settings they need through their section */
	for (size_t i = 0; i < c->nproviders; i++)
		c->providers[i].request_timeout_ms = c->request_timeout_ms;
	return 0;
}

/* An app with no store, env or keys is allowed: an empty folder, e.g. one
 * being set up. */
int config_load(const char *path, struct config *c, struct err *e)
{
	struct loader ld = { .c = c, .e = e };
	struct strv dropins = { NULL, 0 };
	int rc = -1;

	memset(c, 0, sizeof(*c));
	c->ttl_ms = 5 * 60 * 1000;
	c->refresh_ms = 60 * 1000;
	c->max_stale_ms = 24L * 3600 * 1000;
	c->request_timeout_ms = 10 * 1000;
	c->cache_bytes = 64 * 1024 * 1024;
	err_clear(e);

	if (config_file_load(&ld, path) < 0 || config_dropins_list(&ld, path, &dropins) < 0)
		goto out;
	for (size_t i = 0; i < dropins.n; i++)
		if (config_file_load(&ld, dropins.v[i]) < 0)
			goto out;
	rc = config_finish(&ld);
out:
	strv_free(&dropins);
	free(ld.store_at);
	free(ld.apps_seen.slot);
	return rc;
}

static void config_mappings_free(struct conf_mapping *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].name);
		ref_free(&m[i].ref);
	}
	free(m);
}

void config_free(struct config *c)
{
	for (size_t i = 0; i < c->nproviders; i++) {
		struct provider_conf *p = &c->providers[i];

		for (size_t j = 0; j < p->nopts; j++) {
			free(p->opts[j].key);
			/* options may hold credentials */
			if (p->opts[j].value)
				secmem_free_str(p->opts[j].value);
		}
		free(p->opts);
		free(p->name);
		free(p->type);
	}
	for (size_t i = 0; c->sealed && i < c->nproviders; i++)
		ref_free(&c->sealed[i].key);
	free(c->sealed);
	free(c->providers);
	for (size_t i = 0; i < c->napps; i++) {
		struct app_conf *a = &c->apps[i];

		free(a->name);
		if (a->has_store)
			ref_free(&a->store);
		config_mappings_free(a->env, a->nenv);
		config_mappings_free(a->keys, a->nkeys);
		for (size_t j = 0; j < a->ntpls; j++) {
			free(a->tpls[j].name);
			tpl_free(&a->tpls[j].tpl);
		}
		free(a->tpls);
		strv_free(&a->on_change);
	}
	free(c->apps);
	for (size_t i = 0; i < c->nfiles; i++)
		free(c->files[i]);
	free(c->files);
	memset(c, 0, sizeof(*c));
}

const struct provider_conf *config_provider(const struct config *c,
					    const char *name)
{
	for (size_t i = 0; i < c->nproviders; i++)
		if (!strcmp(c->providers[i].name, name))
			return &c->providers[i];
	return NULL;
}

/* Linear: also used while loading, before apps are sorted. */
const struct app_conf *config_app(const struct config *c, const char *name)
{
	struct app_conf key = { .name = (char *)name };

	/* apps are sorted once loaded */
	return bsearch(&key, c->apps, c->napps, sizeof(*c->apps), config_app_cmp);
}


/* ---- comparing apps across a reload ---- */

static bool config_ref_same(const struct config *ca, const struct ref *a,
			    const struct config *cb, const struct ref *b)
{
	char ta[2048], tb[2048];
	const struct provider_conf *pa, *pb;

	ref_format(a, ta, sizeof(ta));
	ref_format(b, tb, sizeof(tb));
	if (a->kind != b->kind || strcmp(ta, tb))
		return false;
	if (a->kind != REF_PROVIDER)
		return true;
	pa = config_provider(ca, a->provider);
	pb = config_provider(cb, b->provider);
	return pa && pb && provider_conf_same(pa, pb);
}

static bool config_mappings_same(const struct config *ca,
				 const struct conf_mapping *a, size_t na,
				 const struct config *cb,
				 const struct conf_mapping *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].name, b[i].name) ||
		    !config_ref_same(ca, &a[i].ref, cb, &b[i].ref))
			return false;
	return true;
}

bool config_app_same(const struct config *ca, const struct app_conf *a,
		     const struct config *cb, const struct app_conf *b)
{
	if (strcmp(a->name, b->name) || a->uid != b->uid || a->gid != b->gid ||
	    a->mode != b->mode || a->ttl_ms != b->ttl_ms ||
	    a->refresh_ms != b->refresh_ms || a->max_stale_ms != b->max_stale_ms ||
	    a->has_store != b->has_store || a->views != b->views)
		return false;
	/* a template file may have changed on disk: its app counts as
	 * changed (what that costs is the kernel rereading its files) */
	if (a->ntpls || b->ntpls)
		return false;
	if (a->has_store && !config_ref_same(ca, &a->store, cb, &b->store))
		return false;
	return config_mappings_same(ca, a->env, a->nenv, cb, b->env, b->nenv) &&
	       config_mappings_same(ca, a->keys, a->nkeys, cb, b->keys, b->nkeys);
}

const struct conf_template *config_template(const struct app_conf *a,
					   const char *name)
{
	for (size_t i = 0; i < a->ntpls; i++)
		if (!strcmp(a->tpls[i].name, name))
			return &a->tpls[i];
	return NULL;
}
