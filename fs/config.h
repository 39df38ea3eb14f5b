/* config.h - the INI configuration (docs/secretfs.conf.5).
 *
 * The main file, then the drop-ins conf.d/NAME.conf beside it in name order, parsed with
 * inih. Every error refuses the whole configuration with "file:line: what".
 */
#ifndef SECRETFS_CONFIG_H
#define SECRETFS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../base/err.h"
#include "../base/strv.h"
#include "ref.h"
#include "template.h"
#include "../providers/provider.h"

#define CONFIG_DEFAULT_PATH "/etc/secretfs/secretfs.conf"

/* env.KEY = ref (ref.kind may be REF_GENERATE) or keys.ENV = ref. */
struct conf_mapping {
	char *name;		/* KEY, or ENV for keys.* */
	struct ref ref;
	struct conf_where where;
};

/* file.NAME = TEMPLATE: the folder shows NAME, the template filled in. */
struct conf_template {
	char *name;
	struct tpl tpl;		/* read and parsed by config_load */
	struct conf_where where;
};

struct app_conf {
	char *name;
	uid_t uid;
	gid_t gid;
	mode_t mode;		/* file mode, default 0400; folders get r->rx */
	bool has_store;
	struct ref store;	/* REF_PROVIDER without field */
	struct conf_mapping *env;	/* sorted by name */
	size_t nenv;
	struct conf_mapping *keys;	/* sorted by name; "default" first is not special */
	size_t nkeys;
	/* cache policy in milliseconds: the app's own, else [secretfs]'s */
	long ttl_ms;
	long refresh_ms;
	long max_stale_ms;
	/* views = json sh docker: 1 << FMT_JSON ... (base/formats.h) of the
	 * dialect views .env.json .env.sh .env.docker; -1 until set ([secretfs]'s
	 * applies) */
	int views;
	struct conf_template *tpls;	/* sorted by name */
	size_t ntpls;
	/* on_change = COMMAND (fs/hooks.h): argv, empty when unset */
	struct strv on_change;
	struct conf_where on_change_at;
	bool hook_as_user;	/* on_change_user set */
	uid_t hook_uid;
	gid_t hook_gid;
	long on_change_delay_ms;	/* default 2 s */
	long on_change_timeout_ms;	/* default 60 s */
	struct conf_where where;
};

/* Values a [provider] section keeps encrypted, opened by the fs core
 * (fs/sealed.h) with a key it resolves from another reference:
 * fernet_key = REF (and fernet_ttl) on a section of any type: every value
 * is a Fernet token; private_key = REF on a type with PROVIDER_CAP_DOTENVX:
 * values may be dotenvx "encrypted:..." values (base/dotenvx.h). The key's
 * provider is not itself encrypted. Writes encrypt. */
enum conf_seal {
	SEAL_NONE = 0,
	SEAL_FERNET,
	SEAL_DOTENVX,
};

struct conf_sealed {
	enum conf_seal kind;
	struct ref key;
	long ttl_s;	/* Fernet: 0, tokens never expire */
};

struct config {
	/* durations in milliseconds */
	long ttl_ms;
	long refresh_ms;
	long max_stale_ms;
	long request_timeout_ms;
	size_t cache_bytes;	/* bound on the cache's memory; default 64 MiB */
	int views;		/* every app's views unless it sets its own */
	struct provider_conf *providers;
	size_t nproviders;
	struct conf_sealed *sealed;	/* one per provider, same index */
	struct app_conf *apps;	/* sorted by name */
	size_t napps;
	char **files;		/* every file read, for conf_where */
	size_t nfiles;
};

/* Read path and its conf.d drop-ins into c (freed with config_free, also
 * after a failure). Checks everything that can be checked without a
 * provider: syntax, sections, keys, references, provider names and types
 * and their option names, owners, modes, duplicates. Templates (file.NAME)
 * are read and parsed here, so a reload, which loads a new configuration,
 * re-reads them; a template's errors name the template's file:line. */
int config_load(const char *path, struct config *c, struct err *e);
void config_free(struct config *c);

/* "30s" "5m" "24h" "2d" "250ms", or a bare number of seconds; at most
 * CONFIG_DURATION_MAX_MS, a year. */
#define CONFIG_DURATION_MAX_MS (365L * 24 * 3600 * 1000)
#define CONFIG_DURATION_MAX_TEXT "365d"
int config_parse_duration(const char *s, long *ms, struct err *e);
/* "512K" "64M" "1G", or a bare number of bytes. */
int config_parse_size(const char *s, size_t *bytes, struct err *e);

const struct provider_conf *config_provider(const struct config *c,
					    const char *name);
const struct app_conf *config_app(const struct config *c, const char *name);

/* Does app a of ca show what app b of cb shows: same owner, mode, cache
 * policy and references, through providers configured the same? (A
 * reload leaves such an app's files, and the kernel's view of them, as
 * they are.) */
bool config_app_same(const struct config *ca, const struct app_conf *a,
		     const struct config *cb, const struct app_conf *b);

/* The app's file.NAME, or NULL. */
const struct conf_template *config_template(const struct app_conf *a,
					   const char *name);

/* "json sh docker" (spaces or commas; "" for none) -> 1 << FMT_* bits. */
int config_parse_views(const char *s, int *views, struct err *e);

#endif
