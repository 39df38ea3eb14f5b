/* kit.h - what provider backends share, so a new backend is its own logic
 * and nothing else: options with environment fallbacks, TLS options,
 * credential files, ?key=value parameters, and the store of backends that
 * have no compare-and-set.
 *
 * Everything here reports failure as -1 with a struct err naming the
 * option, file or parameter, never a value.
 */
#ifndef SECRETFS_KIT_H
#define SECRETFS_KIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "../base/err.h"
#include "../base/kvmap.h"
#include "../base/secmem.h"
#include "http.h"
#include "provider.h"

/* ---- options ---- */

/* An environment variable when set and not empty, else NULL. */
const char *kit_env(const char *name);
/* Option key, else the environment variable env (NULL: none), else def.
 * An empty value counts as unset. */
const char *kit_opt(const struct provider_conf *conf, const char *key,
		    const char *env, const char *def);
/* "true" or "false"; def when unset. */
int kit_opt_bool(const struct provider_conf *conf, const char *key, bool def,
		 bool *out, struct err *e);
/* An http:// or https:// URL without query or fragment, trailing slashes
 * cut, into a malloc'd *out. Plain http to another host than loopback is
 * warned about: what: "vault NAME". */
int kit_opt_url(const char *opt, const char *s, const char *what, char **out,
		struct err *e);

/* Environment variables the TLS options fall back to (any may be NULL). */
struct kit_tls_env {
	const char *ca_file;
	const char *ca_path;
	const char *client_cert;
	const char *client_key;
};

/* ca_file, ca_path, client_cert, client_key (files that must be readable
 * now) and tls_skip_verify (warned about) into hc. The strings point into
 * conf or the environment. what: "vault NAME", for the warning. */
int kit_opt_tls(const struct provider_conf *conf, const struct kit_tls_env *env,
		const char *what, struct http_client_conf *hc, struct err *e);

/* Control characters (C0 and DEL) in the len bytes at s. */
bool kit_has_ctl(const char *s, size_t len);

/* ---- what a server says, in log lines ---- */

/* At most max bytes of a server's text s (an error message, a label) up
 * to its first line break, other control characters dropped, trailing
 * spaces cut, into out (size bytes). NULL s gives "". */
void kit_text_clean(const char *s, size_t max, char *out, size_t size);

/* Whether a line rate-limited through *last_ms (0: never logged) is due
 * at now: the first one, then one per interval_ms. Claims the slot
 * atomically, so of many threads one logs. */
bool kit_log_due(int64_t *last_ms, int64_t interval_ms, int64_t now);
/* log_warn the formatted line when kit_log_due at clock_now_ms(): a
 * refusal that every read repeats, and a stale value would hide, is
 * logged once per interval. */
void kit_log_every(int64_t *last_ms, int64_t interval_ms, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- form bodies ---- */

/* Append "key=<value percent-encoded>" to an
 * application/x-www-form-urlencoded body in wiped memory, with a '&'
 * before it unless b is empty. Everything but A-Z a-z 0-9 - _ . ~ is
 * escaped. 0, or -1 when out of memory. */
int kit_form_add(struct secbuf *b, const char *key, const char *val,
		 size_t len);

/* ---- stored values ---- */

/* A value as a store holds it (an AWS SecretString, an Azure secret, a GCP
 * payload) as an entry's map: a JSON object's keys (strings as they are,
 * other JSON values as compact JSON text), else the whole value as the
 * single key "". An object with NUL bytes in keys, or only the key "",
 * is a single value too. *obj (obj may be NULL) gets the object, for
 * writes that keep the JSON types. what names the store in messages. */
int kit_value_map(const char *s, size_t len, const char *what,
		  struct kvmap *m, json_t **obj, struct err *e);

/* ---- credential files ---- */

enum kit_file_flags {
	KIT_FILE_PRIVATE = 1 << 0,	/* refuse group/other permission bits */
	KIT_FILE_TRIM = 1 << 1,		/* one token: trimmed, not empty */
	KIT_FILE_OPTIONAL = 1 << 2,	/* a missing file is not an error */
};

/* At create(): path is absolute and a regular file, and with
 * KIT_FILE_PRIVATE readable by its owner alone, like ssh wants its keys.
 * opt names the option in the message. */
int kit_file_check(const char *opt, const char *path, unsigned flags,
		   struct err *e);
/* Read path (at most max bytes) into wiped memory. 1 read, 0 missing
 * (KIT_FILE_OPTIONAL), -1 ERR_ACCESS. st (may be NULL) gets the file's
 * identity and mode. */
int kit_file_read(const char *path, unsigned flags, size_t max,
		  struct secbuf *out, struct stat *st, struct err *e);

/* ---- reference parameters ---- */

/* One parameter a provider accepts; value is malloc'd, NULL when absent. */
struct kit_param {
	const char *name;
	char *value;
};

/* Parse a reference's raw "?a=1&b=2" text (params, may be NULL) into the
 * n named slots: percent-decoded, each at most once, none unknown, none
 * without a value. usage ("version=N, mount=M") goes into messages. On
 * failure every slot is freed. */
int kit_params_parse(const char *params, struct kit_param *p, size_t n,
		     const char *usage, struct err *e);
void kit_params_free(struct kit_param *p, size_t n);

/* ---- stores without compare-and-set ---- */

/* What a backend without compare-and-set (AWS, Azure, GCP) gives
 * kit_store_nocas. */
struct kit_nocas {
	void *ctx;
	const char *what;	/* the locator, for messages */
	int64_t deadline_ms;	/* clock_now_ms() clock */
	/* The entry as the store has it now into out; ERR_NOTFOUND when
	 * absent. */
	int (*read)(void *ctx, struct entry *out, struct err *e);
	/* Write m as a new version (create: the entry was absent) and put
	 * its version in version. ERR_NOTFOUND from an update means it was
	 * deleted meanwhile. */
	int (*write)(void *ctx, const struct kvmap *m, bool create,
		     char version[PROVIDER_VERSION_MAX], struct err *e);
};

/* store() for such a backend: read; check the entry is still expect
 * (provider.h's meaning); write; then, after a pause sized to the write's
 * round trip, read back: another writer's version there without our
 * change in it means ours was overwritten, ERR_CONFLICT, so the caller
 * redoes its change on top instead of losing it. A window of about one
 * round trip stays open; no such backend can close it. */
int kit_store_nocas(const struct kit_nocas *s, const struct kvmap *m,
		    const char *expect, char new_version[PROVIDER_VERSION_MAX],
		    struct err *e);

/* Whether every change from prev to mine (keys set, changed, removed) is
 * also in now. */
bool kit_changes_kept(const struct kvmap *prev, const struct kvmap *mine,
		      const struct kvmap *now);

#endif
