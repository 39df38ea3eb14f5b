/* dotenvx.c - a folder of dotenvx files as a store (docs/dotenvx.md).
 *
 *   [provider repo]
 *   type = dotenvx
 *   directory = /srv/checkout
 *   private_key = vault://secret/myapp#DOTENV_PRIVATE_KEY_PRODUCTION
 *
 * The locator services/myapp/.env.production is that file under
 * directory; the entry's keys are its variables, as the file has them:
 * "encrypted:..." values and the DOTENV_PUBLIC_KEY* line included. This
 * provider never sees a key or a plaintext: private_key is a reference,
 * which the fs core resolves and opens the values with (fs/sealed.h), as
 * it does for fernet_key. The version is a hash of the file's bytes.
 *
 * store() edits the file in place (dotenv_edit): only the assignments whose
 * value changed are rewritten, every other byte (header, comments, order,
 * quoting, export) stays, so `git diff` shows the changed ciphertexts and
 * nothing else. Writers hold the folder's flock, compare the version and
 * replace the file atomically (providers/kit.h), as the file store does.
 * As there, no symbolic link below the directory is followed and only
 * regular files are read (kit_dir_beneath, kit_entry_read).
 */
#include "provider.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../base/dotenv.h"
#include "../base/dotenvx.h"
#include "../base/secmem.h"
#include "kit.h"

#define DX_FILE_MAX ((size_t)1024 * 1024 + 256 * 1024)
#define DX_LOCATOR_MAX 1024
#define DX_DEPTH_MAX 32

/* What dotenvx writes atop a file it encrypts (its prependPublicKey). */
#define DX_HEADER \
	"#/-------------------[DOTENV_PUBLIC_KEY]--------------------/\n" \
	"#/            public-key encryption for .env files          /\n" \
	"#/       [how it works](https://dotenvx.com/encryption)     /\n" \
	"#/----------------------------------------------------------/\n"

struct dx_store {
	char *dir;	/* absolute, no trailing '/' unless it is "/" */
};

/* A segment: A-Z a-z 0-9 . _ -, not "." and not starting "..", which
 * rules out ".." and kit_file_replace's temporary ".NAME.<hex>" files of
 * dot-files. A dot-file such as .env.production is a good name. */
static bool dx_segment_valid(const char *s, size_t len)
{
	if (len == 0 || len > KIT_NAME_MAX || (len == 1 && s[0] == '.') ||
	    (len >= 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !(c >= '0' && c <= '9') && c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

static int dx_locator_check(const char *locator, const char *params,
			    struct err *e)
{
	const char *s = locator;
	int depth = 0;

	if (params)
		return err_set(e, ERR_INVALID, "locator %s: takes no ?parameters",
			       locator);
	if (strlen(locator) > DX_LOCATOR_MAX)
		return err_set(e, ERR_INVALID, "locator %.64s...: too long", locator);
	for (;;) {
		size_t len = strcspn(s, "/");

		if (!dx_segment_valid(s, len))
			return err_set(e, ERR_INVALID,
				       "locator %s: a path of the file under directory; segments of A-Z a-z 0-9 . _ -, not '.' or '..'",
				       locator);
		if (++depth > DX_DEPTH_MAX)
			return err_set(e, ERR_INVALID, "locator %s: more than %d levels",
				       locator, DX_DEPTH_MAX);
		if (s[len] == '\0')
			return 0;
		s += len + 1;
	}
}

static int dx_check(const char *locator, const char *params, struct err *e)
{
	return dx_locator_check(locator, params, e);
}

/* The file p in folder dfd (-1: open it, read-only) into text; *absent
 * when it (or its folder) is missing. No symbolic link below the
 * directory is followed, and only a regular file is read. */
static int dx_read(const struct dx_store *st, int dfd, const struct kit_path *p,
		   struct secbuf *text, bool *absent, struct err *e)
{
	int fd = dfd >= 0 ? dfd : kit_dir_beneath(st->dir, p->rel, false, e);
	int rc;

	*absent = false;
	if (fd < 0 && e->code == ERR_NOTFOUND) {
		err_clear(e);
		*absent = true;
		return 0;
	}
	if (fd < 0)
		return -1;
	rc = kit_entry_read(fd, p->base, p->file, DX_FILE_MAX, text, e);
	if (fd != dfd)
		close(fd);
	*absent = rc == 0;
	return rc < 0 ? -1 : 0;
}

static int dx_create(const struct provider_conf *conf, void **state,
		     struct err *e)
{
	struct dx_store *st;
	char *dir;

	if (kit_opt_directory(conf, DX_LOCATOR_MAX, &dir, e) < 0)
		return -1;
	if (sodium_init() < 0) {
		free(dir);
		return err_set(e, ERR_PROVIDER, "libsodium failed to start");
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		free(dir);
		return err_oom(e);
	}
	st->dir = dir;
	*state = st;
	return 0;
}

static void dx_destroy(void *state)
{
	struct dx_store *st = state;

	if (!st)
		return;
	free(st->dir);
	free(st);
}

static int dx_fetch(void *state, const char *locator, const char *params,
		    struct entry *out, struct err *e)
{
	const struct dx_store *st = state;
	struct secbuf text = SECBUF_INIT;
	struct kit_path p = KIT_PATH_INIT;
	bool absent;
	int rc = -1;

	if (dx_locator_check(locator, params, e) < 0)
		return -1;
	if (kit_path_make(st->dir, locator, "", &p, e) < 0 ||
	    dx_read(st, -1, &p, &text, &absent, e) < 0)
		goto out;
	if (absent) {
		err_set(e, ERR_NOTFOUND, "%s: no such file (%s)", locator, p.file);
		goto out;
	}
	rc = kit_dotenv_entry(&text, p.file, out, e);
out:
	secbuf_free(&text);
	kit_path_free(&p);
	return rc;
}

/* A new file as dotenvx starts one: the public key header, the file's
 * name as a comment, then the values. */
static int dx_new_file(const char *base, const struct kvmap *m,
		       struct secbuf *out, struct err *e)
{
	struct kvmap pubs = KVMAP_INIT, rest = KVMAP_INIT;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < m->n; i++) {
		const struct kv *kv = &m->items[i];

		rc = kvmap_set(dotenvx_is_public_name(kv->key) ? &pubs : &rest,
			       kv->key, kv->val, kv->len);
	}
	if (rc == 0 && pubs.n)
		rc = secbuf_puts(out, DX_HEADER);
	if (rc == 0 && pubs.n && dotenv_edit("", 0, &pubs, out, e) < 0)
		rc = -1;
	else if (rc == 0 && pubs.n)
		rc = secbuf_puts(out, "\n# ") || secbuf_puts(out, base) ||
		     secbuf_putc(out, '\n');
	if (rc == 0 && dotenv_edit("", 0, &rest, out, e) < 0)
		rc = -1;
	if (rc < 0 && e->code != ERR_INVALID)
		err_oom(e);
	kvmap_free(&pubs);
	kvmap_free(&rest);
	return rc;
}

/* With the folder locked: compare, edit, replace. */
static int dx_store_locked(const struct dx_store *st, int dfd,
			   const struct kit_path *p,
			   const char *locator, const struct kvmap *m,
			   const char *expect,
			   char new_version[PROVIDER_VERSION_MAX], struct err *e)
{
	struct secbuf cur = SECBUF_INIT, next = SECBUF_INIT;
	char current[PROVIDER_VERSION_MAX] = "";
	bool absent;
	int rc = -1;

	if (dx_read(st, dfd, p, &cur, &absent, e) < 0)
		goto out;
	if (!absent)
		kit_bytes_version(&cur, current);
	if (kit_version_check(locator, expect, current, e) < 0)
		goto out;
	if (absent ? dx_new_file(p->base, m, &next, e) < 0 :
		     dotenv_edit(cur.data, cur.len, m, &next, e) < 0) {
		err_prefix(e, "%s: ", p->file);
		goto out;
	}
	if (next.len > DX_FILE_MAX) {
		err_set(e, ERR_TOOBIG, "%s: larger than %zu bytes", locator, DX_FILE_MAX);
		goto out;
	}
	kit_bytes_version(&next, new_version);
	if (strcmp(current, new_version) &&
	    kit_file_replace(dfd, p->parent, p->base, next.data, next.len, e) < 0)
		goto out;
	rc = 0;
out:
	secbuf_free(&cur);
	secbuf_free(&next);
	return rc;
}

static int dx_store(void *state, const char *locator, const char *params,
		    const struct kvmap *m, const char *expect,
		    char new_version[PROVIDER_VERSION_MAX], struct err *e)
{
	const struct dx_store *st = state;
	char version[PROVIDER_VERSION_MAX];
	struct kit_path p = KIT_PATH_INIT;
	int dfd, rc = -1;

	if (dx_locator_check(locator, params, e) < 0 || kit_dotenv_check(locator, m, e) < 0)
		return -1;
	if (kit_path_make(st->dir, locator, "", &p, e) < 0)
		goto out;
	dfd = kit_dir_lock(st->dir, p.rel, true, LOCK_EX, e);
	if (dfd < 0)
		goto out;
	rc = dx_store_locked(st, dfd, &p, locator, m, expect, version, e);
	close(dfd);
	if (rc == 0 && new_version)
		memcpy(new_version, version, PROVIDER_VERSION_MAX);
out:
	kit_path_free(&p);
	return rc;
}

/* private_key is the fs core's (PROVIDER_CAP_DOTENVX), listed so the
 * configuration takes it. */
static const char *const dx_options[] = { "directory", "private_key", NULL };

const struct provider_ops dotenvx_provider_ops = {
	.type = "dotenvx",
	.options = dx_options,
	.caps = PROVIDER_CAP_CAS | PROVIDER_CAP_WRITE | PROVIDER_CAP_DOTENVX,
	.create = dx_create,
	.destroy = dx_destroy,
	.check = dx_check,
	.fetch = dx_fetch,
	.store = dx_store,
};
