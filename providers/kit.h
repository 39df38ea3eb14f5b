/* kit.h - what provider backends share, so a new backend is its own logic
 * and nothing else: options with environment fallbacks, TLS options,
 * credential files, ?key=value parameters, stored values as maps, OAuth
 * token answers and a token cache, and the store of backends that have
 * no compare-and-set.
 *
 * Everything here reports failure as -1 with a struct err naming the
 * option, file or parameter, never a value.
 */
#ifndef SECRETFS_KIT_H
#define SECRETFS_KIT_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

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

/* The required option "directory" of a local store: an absolute path
 * leaving room for a locator of up to locator_max bytes, trailing slashes
 * cut, into a malloc'd *out. */
int kit_opt_directory(const struct provider_conf *conf, size_t locator_max,
		      char **out, struct err *e);

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

/* Rate limit: true at most once per every_ms (on the clock_now_ms()
 * clock) for one *last, whatever the threads; the first call is true. For
 * log lines a cache serving stale values would otherwise hide, or repeat
 * at every read. */
bool kit_once_per(int64_t *last, int64_t every_ms);

/* Control characters (C0 and DEL) in the len bytes at s. */
bool kit_has_ctl(const char *s, size_t len);

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

/* ---- OAuth tokens ---- */

/* Longest text of a server's taken into a message. */
#define KIT_TEXT_MAX 120
/* Refresh a token this long before it expires (at half its life when
 * that is shorter). */
#define KIT_REFRESH_MARGIN_S 300

/* At most KIT_TEXT_MAX bytes of a server's text s (may be NULL), up to its
 * first line break, other control characters dropped, into out. */
void kit_text_clean(const char *s, char *out, size_t size);

/* When a token expiring at expires should be refreshed. */
time_t kit_refresh_at(time_t now, time_t expires);

/* An OAuth token endpoint's answer (Entra ID, IMDS, App Service, Google's
 * token and STS endpoints, the GCE metadata server): 200 with
 * access_token and expires_in (seconds, a number or a string) or
 * expires_on (epoch seconds, likewise), into tok and *expires; else the
 * error it names: {"error","error_description"} or {"statusCode",
 * "message"}. ERR_ACCESS for a refusal, ERR_PROVIDER for 429/5xx or
 * garbage. what names the endpoint in messages. */
int kit_token_parse(const struct http_response *rs, const char *what,
		    time_t now, struct secbuf *tok, time_t *expires,
		    struct err *e);

/* One provider's cached bearer token, refreshed before it expires (at
 * kit_refresh_at), one request at a time: the lock is held across the
 * fetch, so concurrent readers wait for one request instead of each
 * making one. A failed refresh keeps a token still good (with a warning);
 * failures back off from 1 s to a minute, and meanwhile the last error is
 * given again. */
struct kit_token {
	pthread_mutex_t lock;
	struct secbuf token;	/* len 0: none */
	char key[512];		/* what the token is for (kit_token_get) */
	time_t expires;
	time_t refresh_at;
	uint64_t gen;
	int64_t retry_ms;	/* after a failure, no attempt before this */
	long backoff_ms;
	struct err last_err;
};

/* Get a new token into tok (wiped memory) and its expiry (epoch s). */
typedef int (*kit_token_fetch_fn)(void *ctx, int64_t deadline,
				  struct secbuf *tok, time_t *expires,
				  struct err *e);

void kit_token_init(struct kit_token *t);
void kit_token_destroy(struct kit_token *t);
/* The token for key (a token cached for another key is not used) into
 * out: the cached one while fresh, else fetch's. what names the provider
 * and identity in log lines ("gcp NAME: client_email X"). *gen names the
 * token for kit_token_reject. */
int kit_token_get(struct kit_token *t, const char *key, kit_token_fetch_fn fetch,
		  void *ctx, int64_t deadline, const char *what,
		  struct secbuf *out, uint64_t *gen, struct err *e);
/* The server refused the token of generation gen: forget it. true when
 * a retry with another token is worth it (false: that was already a
 * fresh one). */
bool kit_token_reject(struct kit_token *t, uint64_t gen);

/* ---- local folders (file, dir, dotenvx) ---- */

/* Room for a temporary name ".NAME.<16 hex>" within NAME_MAX. */
#define KIT_NAME_MAX 200
/* The random part of a temporary name: 16 lowercase hex digits. */
#define KIT_TEMP_HEX 16

/* A name a local store keeps a file or folder under: non-empty, at most
 * KIT_NAME_MAX bytes of A-Z a-z 0-9 . _ -, not starting with '.' (which
 * rules out ".", "..", temporary files and Kubernetes' ..data). */
bool kit_name_valid(const char *s, size_t len);
/* Is name what kit_file_replace calls its temporary for a file STEM
 * SUFFIX, STEM a kit_name_valid name: ".STEM SUFFIX.<KIT_TEMP_HEX
 * lowercase hex>"? (So not Kubernetes' ..data or ..TIMESTAMP, nor a
 * dotenvx store's "..env.NAME.<hex>".) */
bool kit_temp_name(const char *name, const char *suffix);
/* The err code of a failed local I/O call's errno: a full disk or quota
 * (ERR_NOSPACE, ERR_QUOTA) is told apart, so the writer gets ENOSPC or
 * EDQUOT instead of EIO; everything else is ERR_IO. */
enum err_code kit_io_code(int err);
/* mkdir -p path; what is created gets mode 0700. */
int kit_mkdirs(const char *path, struct err *e);
/* Open the folder rel ("" the store's folder itself, else "a/b") below a
 * store's folder dir, following no symbolic link below dir: a link there
 * could lead reads and writes out of the store (dir itself, the
 * configuration's choice, may be one). With create, missing folders are
 * made 0700. The folder's fd; -1 with ERR_NOTFOUND when missing,
 * ERR_ACCESS for a symbolic link, else ERR_IO (or kit_io_code's). */
int kit_dir_beneath(const char *dir, const char *rel, bool create,
		    struct err *e);
/* kit_dir_beneath, then flock the folder (how: LOCK_EX for writers,
 * LOCK_SH for readers that want no writer in the middle), across threads
 * and processes. Closing the fd releases the lock. */
int kit_dir_lock(const char *dir, const char *rel, bool create, int how,
		 struct err *e);
/* flock(fd, how), EINTR retried; path names it in the message. */
int kit_flock(int fd, int how, const char *path, struct err *e);
/* Read name in folder dfd (path: the file, for messages), at most max
 * bytes, into wiped memory: never through a symbolic link (ERR_ACCESS),
 * and only a regular file (anything else is ERR_IO, found without
 * blocking: a FIFO is opened O_NONBLOCK, then refused). 1 read, 0
 * missing, -1 (ERR_TOOBIG above max). */
int kit_entry_read(int dfd, const char *name, const char *path, size_t max,
		   struct secbuf *out, struct err *e);
/* Replace name in folder dfd (path: the folder, for messages) with len
 * bytes of data: a temporary ".NAME.<random hex>" (0600, beside it) is
 * written and fsync'd, renamed over name, and the folder fsync'd, so a
 * crash leaves the old or the new file, never a mix (and perhaps the
 * temporary, which the store may remove at start: kit_temp_name). A full
 * disk is ERR_NOSPACE (ERR_QUOTA), and leaves name as it was. */
int kit_file_replace(int dfd, const char *path, const char *name,
		     const char *data, size_t len, struct err *e);
/* Remove the temporaries a crash or kill -9 left in the middle of
 * kit_file_replace, each a whole file in plaintext, from a local store's
 * folder dir and its folders (kit_name_valid ones, at most max_depth
 * below dir): regular files kit_temp_name(name, suffix) calls ours,
 * nothing else, no link followed. Each folder is swept under its
 * exclusive flock, the lock writers hold from temporary to rename, so a
 * write in flight in another process keeps its own. Nothing fails: what
 * cannot be removed is a warning, and the count removed is logged under
 * provider's name. For a store's create(). */
void kit_temp_sweep(const char *provider, const char *dir,
		    const char *suffix, int max_depth);
/* ERR_CONFLICT unless expect (provider.h's meaning) matches current, the
 * version on disk ("" when absent). */
int kit_version_check(const char *locator, const char *expect,
		      const char *current, struct err *e);

/* A file of a local store: DIR/LOCATOR[SUFFIX]. */
struct kit_path {
	char *file;		/* DIR/a/b.env, for messages */
	char *parent;		/* DIR/a, for messages */
	char *rel;		/* a: the folder below DIR ("" for DIR) */
	const char *base;	/* b.env, inside file */
};
#define KIT_PATH_INIT { NULL, NULL, NULL, NULL }

/* dir (no trailing slash but "/" itself) + "/" + locator + suffix. */
int kit_path_make(const char *dir, const char *locator, const char *suffix,
		  struct kit_path *p, struct err *e);
void kit_path_free(struct kit_path *p);

/* The version of a file's bytes: a hash, hex. */
void kit_bytes_version(const struct secbuf *b,
		       char version[PROVIDER_VERSION_MAX]);

/* A dotenv file's bytes (text, read from file) as an entry: its keys and
 * the version of its bytes. A file that does not parse is the store's
 * fault (ERR_PROVIDER), named by file. */
int kit_dotenv_entry(const struct secbuf *text, const char *file,
		     struct entry *out, struct err *e);
/* Refuse what a dotenv file cannot hold (a key that is no variable name,
 * a NUL in a value) rather than drop it. */
int kit_dotenv_check(const char *locator, const struct kvmap *m,
		     struct err *e);

/* A version for stores that keep no version of their own (env, dir): a
 * hash of every key and value of m, hex. */
void kit_map_version(const struct kvmap *m, char version[PROVIDER_VERSION_MAX]);

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
