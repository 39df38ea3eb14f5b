/* edit.c - see edit.h */
#include "edit.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/log.h"

/* ---- what each process last read of .env ---- */

#define EDIT_READERS 64
#define EDIT_READER_MAX_AGE 3600	/* seconds: an edit session */

struct edit_reader {
	size_t app;
	pid_t pid;
	time_t when;
	struct kvmap base;
};

/* Caller holds ed->lock. */
static struct edit_reader *edit_reader_find(struct edit *ed, size_t app,
					    pid_t pid)
{
	for (size_t i = 0; i < EDIT_READERS; i++) {
		struct edit_reader *r = &ed->readers[i];

		if (r->pid == pid && r->app == app && r->when &&
		    time(NULL) - r->when < EDIT_READER_MAX_AGE)
			return r;
	}
	return NULL;
}

/* Note what pid read (replace: or wrote). A read keeps an earlier one:
 * vim reads the file again to back it up just before it saves, and the
 * base must stay what the user edited. */
static void edit_reader_note(struct edit *ed, size_t app, pid_t pid,
			     const struct kvmap *base, bool replace)
{
	struct edit_reader *r;

	pthread_mutex_lock(&ed->lock);
	r = edit_reader_find(ed, app, pid);
	if (r && !replace) {
		pthread_mutex_unlock(&ed->lock);
		return;
	}
	if (!r) {
		/* else the oldest (or an unused) slot */
		r = &ed->readers[0];
		for (size_t i = 1; i < EDIT_READERS; i++)
			if (ed->readers[i].when < r->when)
				r = &ed->readers[i];
	}
	if (kvmap_copy(&r->base, base) == 0) {
		r->app = app;
		r->pid = pid;
		r->when = time(NULL);
	} else {
		r->when = 0;
	}
	pthread_mutex_unlock(&ed->lock);
}

static bool edit_reader_known(struct edit *ed, size_t app, pid_t pid)
{
	bool known;

	pthread_mutex_lock(&ed->lock);
	known = edit_reader_find(ed, app, pid) != NULL;
	pthread_mutex_unlock(&ed->lock);
	return known;
}

/* The base pid read, into base (replacing it); false if none is known. */
static bool edit_reader_base(struct edit *ed, size_t app, pid_t pid,
			     struct kvmap *base)
{
	struct edit_reader *r;
	bool found = false;

	pthread_mutex_lock(&ed->lock);
	r = edit_reader_find(ed, app, pid);
	if (r && kvmap_copy(base, &r->base) == 0)
		found = true;
	pthread_mutex_unlock(&ed->lock);
	return found;
}

/* ---- the mount's editing state ---- */

int edit_init(struct edit *ed, struct appfs *appfs, const struct config *cfg,
	      edit_changed_fn *changed, void *ctx)
{
	struct err e = { 0 };

	memset(ed, 0, sizeof(*ed));
	ed->appfs = appfs;
	ed->changed = changed;
	ed->ctx = ctx;
	pthread_mutex_init(&ed->lock, NULL);
	ed->readers = calloc(EDIT_READERS, sizeof(*ed->readers));
	if (!ed->readers || edit_set_config(ed, cfg, &e) < 0) {
		edit_destroy(ed);
		return -1;
	}
	return 0;
}

bool edit_slot_find(const struct edit *ed, const char *name, size_t *slot)
{
	for (size_t i = 0; i < ed->nslots; i++)
		if (!strcmp(ed->slot_names[i], name)) {
			*slot = i;
			return true;
		}
	return false;
}

/* The slot of app name, made when it is new. */
static int edit_slot(struct edit *ed, const char *name, size_t *slot)
{
	struct scratch_dir **sd;
	char **names;
	size_t n = ed->nslots;

	if (edit_slot_find(ed, name, slot))
		return 0;
	names = realloc(ed->slot_names, (n + 1) * sizeof(*names));
	if (names)
		ed->slot_names = names;
	sd = realloc(ed->scratch, (n + 1) * sizeof(*sd));
	if (sd)
		ed->scratch = sd;
	if (!names || !sd || !(names[n] = strdup(name)))
		return -1;
	sd[n] = calloc(1, sizeof(**sd));
	if (!sd[n]) {
		free(names[n]);
		return -1;
	}
	scratch_dir_init(sd[n]);
	*slot = ed->nslots++;
	return 0;
}

int edit_set_config(struct edit *ed, const struct config *cfg, struct err *e)
{
	size_t *slot_of = calloc(cfg->napps ? cfg->napps : 1, sizeof(*slot_of));
	const struct app_conf **by_slot;

	for (size_t i = 0; slot_of && i < cfg->napps; i++)
		if (edit_slot(ed, cfg->apps[i].name, &slot_of[i]) < 0) {
			free(slot_of);
			return err_oom(e);
		}
	by_slot = slot_of ? calloc(ed->nslots ? ed->nslots : 1, sizeof(*by_slot)) : NULL;
	if (!by_slot) {
		free(slot_of);
		return err_oom(e);
	}
	for (size_t i = 0; i < cfg->napps; i++)
		by_slot[slot_of[i]] = &cfg->apps[i];
	free(ed->slot_of);
	free(ed->by_slot);
	ed->slot_of = slot_of;
	ed->by_slot = by_slot;
	ed->cfg = cfg;
	return 0;
}

const struct app_conf *edit_app(const struct edit *ed, size_t slot)
{
	return slot < ed->nslots ? ed->by_slot[slot] : NULL;
}

size_t edit_app_slot(const struct edit *ed, const struct app_conf *a)
{
	return ed->slot_of[a - ed->cfg->apps];
}

/* The config of slot app, or ERR_NOTFOUND: a reload removed it (from
 * under a file still open). */
static const struct app_conf *edit_conf(struct edit *ed, size_t app,
					struct err *e)
{
	const struct app_conf *a = edit_app(ed, app);

	if (!a)
		err_set(e, ERR_NOTFOUND, "app %s is no longer configured",
			app < ed->nslots ? ed->slot_names[app] : "?");
	return a;
}

static void edit_changed(struct edit *ed, size_t app)
{
	if (ed->changed)
		ed->changed(ed->ctx, app);
}

/* ---- handles ---- */

static void edit_handle_free(struct edit *ed, struct edit_handle *h)
{
	pthread_mutex_lock(&ed->lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		ed->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&ed->lock);
	if (h->sc) {
		pthread_mutex_lock(h->lk);
		scratch_release(h->sc);
		pthread_mutex_unlock(h->lk);
	}
	secbuf_free(&h->data);
	snap_put(h->snap);
	kvmap_free(&h->base);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->commit_lock);
	free(h->name);
	free(h);
}

void edit_destroy(struct edit *ed)
{
	while (ed->handles)
		edit_handle_free(ed, ed->handles);
	for (size_t i = 0; i < ed->nslots; i++) {
		scratch_dir_destroy(ed->scratch[i]);
		free(ed->scratch[i]);
		free(ed->slot_names[i]);
	}
	free(ed->scratch);
	free(ed->slot_names);
	free(ed->slot_of);
	free(ed->by_slot);
	for (size_t i = 0; ed->readers && i < EDIT_READERS; i++)
		kvmap_free(&ed->readers[i].base);
	free(ed->readers);
	pthread_mutex_destroy(&ed->lock);
	memset(ed, 0, sizeof(*ed));
}

/* A handle, on the list of open handles so that an unmount with files
 * still open frees them too. */
static struct edit_handle *edit_handle_new(struct edit *ed, size_t app,
					   const char *name)
{
	struct edit_handle *h = calloc(1, sizeof(*h));

	if (!h || !(h->name = strdup(name))) {
		free(h);
		return NULL;
	}
	pthread_mutex_lock(&ed->lock);
	h->next = ed->handles;
	if (h->next)
		h->next->prev = h;
	ed->handles = h;
	pthread_mutex_unlock(&ed->lock);
	h->app = app;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->commit_lock, NULL);
	h->lk = &h->lock;
	h->buf = &h->data;
	return h;
}

/* A handle on scratch file name, if there is one (*h stays NULL if not). */
static int edit_handle_scratch(struct edit *ed, size_t app, const char *name,
			       struct edit_handle **h, struct err *e)
{
	struct scratch_dir *sd = ed->scratch[app];
	struct scratch *s;
	int rc = 0;

	*h = NULL;
	pthread_mutex_lock(&sd->lock);
	s = scratch_find(sd, name);
	if (s) {
		*h = edit_handle_new(ed, app, name);
		if (*h) {
			scratch_hold(s);
			(*h)->sc = s;
			(*h)->lk = &sd->lock;
			(*h)->buf = &s->data;
		} else {
			rc = err_oom(e);
		}
	}
	pthread_mutex_unlock(&sd->lock);
	return rc;
}

/* A handle on name: its scratch file, or a snapshot of the app file.
 * base: also take the .env's fingerprints, the base of a later write. */
static struct edit_handle *edit_handle_open(struct edit *ed, size_t app,
					    const char *name, bool base,
					    struct err *e)
{
	struct edit_handle *h;

	if (edit_handle_scratch(ed, app, name, &h, e) < 0 || h)
		return h;
	h = edit_handle_new(ed, app, name);
	if (!h) {
		err_oom(e);
		return NULL;
	}
	if (app_read(ed->appfs, edit_app(ed, app), name, &h->data,
		     base ? &h->base : NULL, e) < 0) {
		edit_handle_free(ed, h);
		return NULL;
	}
	h->based = base;
	return h;
}

int edit_open(struct edit *ed, size_t app, const char *name,
	      const struct edit_who *who, int flags, struct edit_handle **out,
	      struct err *e)
{
	int mode = flags & O_ACCMODE;
	struct edit_handle *h;

	*out = NULL;
	if (mode != O_RDONLY && app_read_only(edit_app(ed, app), name))
		return err_set(e, ERR_READONLY, "%s is made from the other files; write .env or a key's file",
			       name);
	/* a reader's base is only kept when its process has none yet: the
	 * fingerprints cost a hash per value */
	h = edit_handle_open(ed, app, name, mode != O_RDONLY ||
			     !edit_reader_known(ed, app, who->pid), e);
	*out = h;
	if (!h)
		return -1;
	h->pid = who->pid;
	h->read_only = mode == O_RDONLY;
	if (!h->sc && !strcmp(name, APP_ENV_NAME)) {
		/* a writer that reads through this very open has read this
		 * snapshot; one that does not, what its process read before */
		if (mode == O_RDONLY)
			edit_reader_note(ed, app, h->pid, &h->base, false);
		else if (mode == O_WRONLY || (flags & O_TRUNC))
			edit_reader_base(ed, app, h->pid, &h->base);
	}
	if (mode != O_RDONLY) {
		h->append = flags & O_APPEND;
		/* `> file` opens, dup2()s and closes the first descriptor before
		 * it writes: that flush must not commit an empty file. */
		if (flags & O_TRUNC) {
			pthread_mutex_lock(h->lk);
			secbuf_clear(h->buf);
			pthread_mutex_unlock(h->lk);
			h->truncated = true;
		}
	}
	return 0;
}

int edit_open_snap(struct edit *ed, size_t app, const char *name,
		   const struct edit_who *who, struct snap *s,
		   struct edit_handle **out, struct err *e)
{
	struct edit_handle *h;

	*out = NULL;
	if (edit_scratch_stat(ed, app, name, NULL))
		return 0;
	/* a reader's first read of .env is its merge base: the snapshot's,
	 * if the read that made it took one */
	if (!strcmp(name, APP_ENV_NAME) && !s->based &&
	    !edit_reader_known(ed, app, who->pid))
		return 0;
	h = edit_handle_new(ed, app, name);
	if (!h)
		return err_oom(e);
	if (!strcmp(name, APP_ENV_NAME) && s->based)
		edit_reader_note(ed, app, who->pid, &s->base, false);
	h->snap = snap_hold(s);
	h->pid = who->pid;
	h->read_only = true;
	*out = h;
	return 0;
}

void edit_handle_seal(struct edit_handle *h, struct snap *s)
{
	h->snap = snap_hold(s);
	secbuf_free(&h->data);
}

/* ---- reading and writing ---- */

const struct secbuf *edit_lock(struct edit_handle *h)
{
	pthread_mutex_lock(h->lk);
	return h->buf;
}

void edit_unlock(struct edit_handle *h)
{
	pthread_mutex_unlock(h->lk);
}

/* Resize the file to len, zero-filling growth: ERR_OK, ERR_TOOBIG or
 * ERR_NOMEM. Caller holds h->lk. */
static enum err_code edit_resize(struct edit_handle *h, size_t len)
{
	struct secbuf *b = h->buf;

	if (len > APP_FILE_MAX)
		return ERR_TOOBIG;
	if (len <= b->len) {
		secbuf_truncate(b, len);
	} else {
		if (secbuf_reserve(b, len - b->len) < 0)
			return ERR_NOMEM;
		memset(b->data + b->len, 0, len - b->len + 1);
		b->len = len;
	}
	h->dirty = true;
	if (h->sc)
		h->sc->mtime = time(NULL);
	return ERR_OK;
}

static int edit_size_err(struct edit_handle *h, enum err_code code,
			 size_t len, struct err *e)
{
	if (code == ERR_TOOBIG)
		return err_set(e, code, "%s: %zu bytes is over the limit of %d",
			       h->name, len, APP_FILE_MAX);
	return err_oom(e);
}

int edit_write(struct edit_handle *h, const char *buf, size_t size, off_t off,
	       struct err *e)
{
	enum err_code code = ERR_OK;
	size_t pos;

	pthread_mutex_lock(h->lk);
	pos = h->append ? h->buf->len : (size_t)off;
	if (pos > APP_FILE_MAX || size > APP_FILE_MAX - pos)
		code = ERR_TOOBIG;
	else if (pos + size > h->buf->len)
		code = edit_resize(h, pos + size);
	if (code != ERR_OK)
		h->failed = code;
	else if (size)	/* an empty file may have no bytes at all */
		memcpy(h->buf->data + pos, buf, size);
	h->dirty = true;
	if (h->sc)
		h->sc->mtime = time(NULL);
	pthread_mutex_unlock(h->lk);
	return code == ERR_OK ? 0 : edit_size_err(h, code, pos + size, e);
}

int edit_truncate(struct edit_handle *h, size_t len, struct err *e)
{
	enum err_code code;

	pthread_mutex_lock(h->lk);
	code = edit_resize(h, len);
	pthread_mutex_unlock(h->lk);
	return code == ERR_OK ? 0 : edit_size_err(h, code, len, e);
}

/* ---- commits ---- */

/* Take what a handle wrote, if it is to be committed now: a flush commits
 * what was written, and a new key even when nothing was (`touch NEW`);
 * the release also a bare truncation, which a flush must not commit:
 * `> file` closes a dup()ed descriptor before it writes, and that flush
 * would store an empty value first. Clears the flags: a failure is
 * reported once, to that close(). */
static bool edit_take_commit(struct edit_handle *h, bool release,
			     struct secbuf *data, enum err_code *failed)
{
	bool take = false;

	pthread_mutex_lock(h->lk);
	if (h->dirty || (h->truncated && (release || (h->sc && h->sc->new_key)))) {
		take = true;
		*failed = h->failed;
		if (secbuf_set(data, h->buf->data, h->buf->len) < 0)
			*failed = ERR_NOMEM;
		h->dirty = h->truncated = false;
		h->failed = ERR_OK;
	}
	pthread_mutex_unlock(h->lk);
	return take;
}

/* Commit what was written through h to the store. Caller holds
 * h->commit_lock. */
static int edit_commit(struct edit *ed, struct edit_handle *h, bool release,
		       struct err *e)
{
	const struct app_conf *a = edit_app(ed, h->app);
	struct scratch_dir *sd = ed->scratch[h->app];
	struct secbuf data = SECBUF_INIT, unused = SECBUF_INIT;
	enum err_code failed = ERR_OK;
	int rc;

	/* a scratch file is committed by a rename, a new key by its close */
	if ((h->sc && !h->sc->new_key) || !edit_take_commit(h, release, &data, &failed))
		return 0;
	if (failed != ERR_OK) {
		/* part of what the writer meant is missing: commit none of it */
		secbuf_free(&data);
		return err_set(e, failed, "app %s: %s: a write failed (%s); nothing was committed",
			       ed->slot_names[h->app], h->name, err_code_name(failed));
	}
	if (!a) {
		/* a reload removed the app while the file was open */
		secbuf_free(&data);
		return edit_conf(ed, h->app, e) ? 0 : -1;
	}
	rc = app_write(ed->appfs, a, h->name, &h->base, data.data, data.len, e);
	secbuf_free(&data);
	if (rc == 0) {
		log_info("app %s: %s written", a->name, h->name);
		edit_changed(ed, h->app);
	}
	if (h->sc) {
		/* the new key is the store's now, or it failed: either way the
		 * name no longer shows the scratch file */
		pthread_mutex_lock(&sd->lock);
		if (scratch_find(sd, h->name) == h->sc)
			scratch_unlink(sd, h->sc);
		pthread_mutex_unlock(&sd->lock);
		return rc;
	}
	if (rc < 0)
		return -1;
	/* later writes through this handle, or this process, change what was
	 * just committed */
	kvmap_free(&h->base);
	if (app_read(ed->appfs, a, h->name, &unused, &h->base, e) < 0)
		log_warn("%s", e->msg);
	else if (!strcmp(h->name, APP_ENV_NAME))
		edit_reader_note(ed, h->app, h->pid, &h->base, true);
	secbuf_free(&unused);
	return 0;
}

int edit_flush(struct edit *ed, struct edit_handle *h, struct err *e)
{
	int rc;

	pthread_mutex_lock(&h->commit_lock);
	rc = edit_commit(ed, h, false, e);
	pthread_mutex_unlock(&h->commit_lock);
	return rc;
}

int edit_release(struct edit *ed, struct edit_handle *h, struct err *e)
{
	/* flush normally committed already; this catches a lost one */
	int rc = edit_commit(ed, h, true, e);

	edit_handle_free(ed, h);
	return rc;
}

int edit_truncate_name(struct edit *ed, size_t app, const char *name,
		       size_t len, struct err *e)
{
	struct edit_handle *h = edit_handle_open(ed, app, name, true, e);
	int rc;

	if (!h)
		return -1;
	rc = edit_truncate(h, len, e);
	if (rc == 0)
		rc = edit_commit(ed, h, true, e);
	edit_handle_free(ed, h);
	return rc;
}

/* ---- names: create, unlink, rename ---- */

/* A key with a longer name would reach the store, and then no file could
 * show it: refused before anything is created. */
static int edit_name_too_long(const char *app, const char *name, struct err *e)
{
	return err_set(e, ERR_NAMETOOLONG,
		       "app %s: %.40s... (%zu bytes): a name is at most %d bytes",
		       app, name, strlen(name), NAME_MAX);
}

int edit_may_create(struct edit *ed, size_t app, const char *name,
		    struct err *e)
{
	const struct app_conf *a = edit_app(ed, app);

	switch (scratch_name_kind(name)) {
	case SCRATCH_NAME_INVALID:
		return err_set(e, ERR_INVALID, "app %s: %s is neither a key name nor an editor's temporary file",
			       a->name, name);
	case SCRATCH_NAME_TOOLONG:
		return edit_name_too_long(a->name, name, e);
	case SCRATCH_NAME_ENV:
	case SCRATCH_NAME_KEYS:
		/* they always exist: a create() means a lookup missed */
		return err_set(e, ERR_EXISTS, "app %s: %s exists", a->name, name);
	case SCRATCH_NAME_KEY:
		if (!a->has_store)
			return err_set(e, ERR_READONLY, "app %s: %s: the app has no store to write to",
				       a->name, name);
		return 0;
	default:
		return 0;
	}
}

/* A new scratch file, its creator its owner; base is the app's .env as of
 * now (or as its process read it), for a later rename over .env. A new
 * key's scratch file has the owner and mode of the app's files instead. */
static int edit_create_scratch(struct edit *ed, size_t app, const char *name,
			       const struct edit_who *who, unsigned mode,
			       bool new_key, struct err *e)
{
	const struct app_conf *a = edit_app(ed, app);
	struct scratch_dir *sd = ed->scratch[app];
	struct secbuf text = SECBUF_INIT;
	struct kvmap base = KVMAP_INIT;
	struct err ignored = { 0 };
	struct scratch *s;
	int rc;

	if (!edit_reader_base(ed, app, who->pid, &base))
		app_read(ed->appfs, a, APP_ENV_NAME, &text, &base, &ignored);
	secbuf_free(&text);
	pthread_mutex_lock(&sd->lock);
	if (scratch_find(sd, name))
		rc = err_set(e, ERR_EXISTS, "%s exists", name);
	else if (new_key)	/* looks like the key file it will be */
		rc = scratch_create(sd, name, a->uid, a->gid, a->mode, NULL, &s, e);
	else
		rc = scratch_create(sd, name, who->uid, who->gid, mode, &base, &s, e);
	if (rc == 0)
		s->new_key = new_key;
	pthread_mutex_unlock(&sd->lock);
	kvmap_free(&base);
	return rc;
}

int edit_create(struct edit *ed, size_t app, const char *name,
		const struct edit_who *who, unsigned mode,
		struct edit_handle **out, struct err *e)
{
	bool new_key = scratch_name_kind(name) == SCRATCH_NAME_KEY;
	struct edit_handle *h = NULL;
	int rc = edit_may_create(ed, app, name, e);

	/* a scratch file; or a new key, a scratch file until it is committed
	 * at close (even when nothing was written) */
	if (rc == 0)
		rc = edit_create_scratch(ed, app, name, who, mode, new_key, e);
	if (rc == 0)
		rc = edit_handle_scratch(ed, app, name, &h, e);
	if (rc == 0 && !h)	/* removed between the two */
		rc = err_set(e, ERR_IO, "app %s: %s vanished as it was created",
			     ed->slot_names[app], name);
	if (rc == 0) {
		h->pid = who->pid;
		h->truncated = new_key;
	}
	*out = h;
	return rc;
}

int edit_may_unlink(struct edit *ed, size_t app, const char *name,
		    struct err *e)
{
	enum scratch_name_kind kind = scratch_name_kind(name);

	if (kind == SCRATCH_NAME_ENV || kind == SCRATCH_NAME_KEYS)
		return err_set(e, ERR_PERM, "app %s: %s cannot be removed: removing keys is writing .env without them",
			       ed->slot_names[app], name);
	return 0;
}

int edit_unlink(struct edit *ed, size_t app, const char *name, struct err *e)
{
	const struct app_conf *a = edit_app(ed, app);
	enum scratch_name_kind kind = scratch_name_kind(name);
	struct scratch_dir *sd = ed->scratch[app];
	struct scratch *s;

	if (edit_may_unlink(ed, app, name, e) < 0)
		return -1;
	pthread_mutex_lock(&sd->lock);
	s = scratch_find(sd, name);
	if (s)
		scratch_unlink(sd, s);
	pthread_mutex_unlock(&sd->lock);
	if (s)
		return 0;
	if (kind == SCRATCH_NAME_TEMP)
		return err_set(e, ERR_NOTFOUND, "app %s: %s: no such file", a->name, name);
	if (app_remove_key(ed->appfs, a, name, e) < 0)
		return -1;
	log_info("app %s: %s removed", a->name, name);
	edit_changed(ed, app);
	return 0;
}

/* rename(scratch, .env or KEY): commit the scratch file's bytes there,
 * then drop it - how sed -i and vim save. */
static int edit_rename_commit(struct edit *ed, size_t app, struct scratch *s,
			      const char *to, pid_t pid, struct err *e)
{
	struct scratch_dir *sd = ed->scratch[app];
	const struct app_conf *a = edit_app(ed, app);
	struct secbuf data = SECBUF_INIT;
	struct kvmap base = KVMAP_INIT;
	int rc = 0;

	pthread_mutex_lock(&sd->lock);
	if (secbuf_set(&data, s->data.data, s->data.len) < 0 ||
	    kvmap_copy(&base, &s->base) < 0)
		rc = err_oom(e);
	pthread_mutex_unlock(&sd->lock);
	if (rc == 0)
		rc = app_write(ed->appfs, a, to, &base, data.data, data.len, e);
	if (rc == 0) {
		pthread_mutex_lock(&sd->lock);
		scratch_unlink(sd, s);
		pthread_mutex_unlock(&sd->lock);
		log_info("app %s: %s written", a->name, to);
		edit_changed(ed, app);
	}
	/* the saving process's next edit merges against what it saved */
	kvmap_free(&base);
	if (rc == 0 && !strcmp(to, APP_ENV_NAME)) {
		if (app_read(ed->appfs, a, to, &data, &base, e) == 0)
			edit_reader_note(ed, app, pid, &base, true);
		err_clear(e);
	}
	secbuf_free(&data);
	kvmap_free(&base);
	return rc;
}

/* rename(.env or KEY, scratch): the scratch file gets a copy, the file
 * stays - vim moving the original aside as its backup. */
static int edit_rename_backup(struct edit *ed, size_t app, const char *from,
			      const char *to, const struct edit_who *who,
			      struct err *e)
{
	struct scratch_dir *sd = ed->scratch[app];
	const struct app_conf *a = edit_app(ed, app);
	struct secbuf data = SECBUF_INIT;
	struct scratch *s;
	int rc = app_read(ed->appfs, a, from, &data, NULL, e);

	pthread_mutex_lock(&sd->lock);
	s = rc == 0 ? scratch_find(sd, to) : NULL;
	if (s)
		scratch_unlink(sd, s);
	if (rc == 0)
		rc = scratch_create(sd, to, who->uid, who->gid, a->mode, NULL, &s, e);
	if (rc == 0 && secbuf_set(&s->data, data.data, data.len) < 0)
		rc = err_oom(e);
	pthread_mutex_unlock(&sd->lock);
	secbuf_free(&data);
	return rc;
}

/* rename(KEY, .env) - `printf ... > tmp && mv tmp .env`: the key's value
 * is the new .env, applied against the current one, which holds KEY: so
 * the same store update that applies the text removes KEY. */
static int edit_rename_key_to_env(struct edit *ed, size_t app, const char *key,
				  struct err *e)
{
	const struct app_conf *a = edit_app(ed, app);
	struct secbuf text = SECBUF_INIT, unused = SECBUF_INIT;
	struct kvmap base = KVMAP_INIT;
	int rc = app_read(ed->appfs, a, key, &text, NULL, e);

	if (rc == 0)
		rc = app_read(ed->appfs, a, APP_ENV_NAME, &unused, &base, e);
	if (rc == 0)
		rc = app_write(ed->appfs, a, APP_ENV_NAME, &base, text.data, text.len, e);
	if (rc == 0) {
		log_info("app %s: .env written from %s", a->name, key);
		edit_changed(ed, app);
	}
	secbuf_free(&text);
	secbuf_free(&unused);
	kvmap_free(&base);
	return rc;
}

/* The rename once the scratch folder has had its say: s is the scratch
 * file renamed (held), or NULL; dst whether to named a scratch file. */
static int edit_rename_app(struct edit *ed, size_t app, struct scratch *s,
			   bool dst, const char *from, const char *to,
			   const struct edit_who *who, struct err *e)
{
	enum scratch_name_kind kind = scratch_name_kind(to);

	if (s && !dst && kind != SCRATCH_NAME_TEMP)
		return kind == SCRATCH_NAME_INVALID ?
		       err_set(e, ERR_INVALID, "%s is not a key name", to) :
		       edit_rename_commit(ed, app, s, to, who->pid, e);
	if (s)
		return 0;	/* scratch to scratch: done */
	if (dst || kind == SCRATCH_NAME_TEMP)
		return edit_rename_backup(ed, app, from, to, who, e);
	if (kind == SCRATCH_NAME_ENV && scratch_name_kind(from) == SCRATCH_NAME_KEY)
		return edit_rename_key_to_env(ed, app, from, e);
	return err_set(e, ERR_NOTSUP, "app %s: renaming %s to %s: keys are renamed by writing the new one and removing the old",
		       ed->slot_names[app], from, to);
}

/* May who rename scratch file s? Its owner or root only, as in a sticky
 * folder: in an app folder its group may write, a member must not make
 * another's 0600 draft readable by renaming it over a key or .env. A new
 * key's file is the app's (owner and mode), not its creator's: anyone who
 * may write the folder may move it. */
static bool edit_may_move(const struct scratch *s, const struct edit_who *who)
{
	return s->new_key || who->uid == 0 || who->uid == s->uid;
}

int edit_rename(struct edit *ed, size_t app, const char *from, const char *to,
		bool noreplace, const struct edit_who *who, struct err *e)
{
	enum scratch_name_kind kind = scratch_name_kind(to);
	struct scratch_dir *sd = ed->scratch[app];
	struct scratch *s, *dst;
	int rc = 0;

	if (kind == SCRATCH_NAME_TOOLONG)
		return edit_name_too_long(ed->slot_names[app], to, e);
	pthread_mutex_lock(&sd->lock);
	s = scratch_find(sd, from);
	dst = scratch_find(sd, to);
	if (s)
		scratch_hold(s);
	if (s && !edit_may_move(s, who))
		rc = err_set(e, ERR_PERM, "app %s: %s is another user's file: only its owner may rename it",
			     ed->slot_names[app], from);
	else if (noreplace && (dst || kind == SCRATCH_NAME_ENV || kind == SCRATCH_NAME_KEYS))
		rc = err_set(e, ERR_EXISTS, "%s exists", to);
	else if (s && (dst || kind == SCRATCH_NAME_TEMP))
		rc = scratch_rename(sd, s, to, e);
	pthread_mutex_unlock(&sd->lock);
	if (rc == 0)
		rc = edit_rename_app(ed, app, s, dst != NULL, from, to, who, e);
	if (s) {
		pthread_mutex_lock(&sd->lock);
		scratch_release(s);
		pthread_mutex_unlock(&sd->lock);
	}
	return rc;
}

/* ---- scratch files' attributes and listing ---- */

bool edit_is_scratch_name(struct edit *ed, size_t app, const char *name)
{
	struct scratch_dir *sd = ed->scratch[app];
	bool found;

	/* a dot name the app itself shows (.env.json) is no editor's */
	if (scratch_name_kind(name) == SCRATCH_NAME_TEMP)
		return !app_shows(edit_app(ed, app), name);
	pthread_mutex_lock(&sd->lock);
	found = scratch_find(sd, name) != NULL;
	pthread_mutex_unlock(&sd->lock);
	return found;
}

/* Caller holds the scratch lock. */
static void edit_scratch_attr(const struct scratch *s, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_nlink = 1;
	st->st_mode = S_IFREG | s->mode;
	st->st_uid = s->uid;
	st->st_gid = s->gid;
	st->st_size = (off_t)s->data.len;
	st->st_blocks = (blkcnt_t)((s->data.len + 511) / 512);
	st->st_mtime = st->st_ctime = st->st_atime = s->mtime;
}

bool edit_scratch_stat(struct edit *ed, size_t app, const char *name,
		       struct stat *st)
{
	struct scratch_dir *sd = ed->scratch[app];
	struct scratch *s;

	pthread_mutex_lock(&sd->lock);
	s = scratch_find(sd, name);
	if (s && st)
		edit_scratch_attr(s, st);
	pthread_mutex_unlock(&sd->lock);
	return s != NULL;
}

bool edit_handle_reads_only(const struct edit_handle *h)
{
	return h->read_only && !h->sc;
}

bool edit_handle_stat(struct edit_handle *h, struct stat *st, size_t *size)
{
	pthread_mutex_lock(h->lk);
	if (h->sc)
		edit_scratch_attr(h->sc, st);
	*size = h->snap ? h->snap->len : h->buf->len;
	pthread_mutex_unlock(h->lk);
	return h->sc != NULL;
}

int edit_scratch_chmod(struct edit *ed, size_t app, const char *name,
		       unsigned mode, struct err *e)
{
	struct scratch_dir *sd = ed->scratch[app];
	struct scratch *s;
	int rc = 0;

	pthread_mutex_lock(&sd->lock);
	s = scratch_find(sd, name);
	if (s && !(mode & 07177))
		s->mode = mode & 0600;
	else
		rc = err_set(e, ERR_PERM, "app %s: %s: mode %o: only a temporary file takes a mode, within 0600",
			     ed->slot_names[app], name, mode);
	pthread_mutex_unlock(&sd->lock);
	return rc;
}

int edit_list_scratch(struct edit *ed, size_t app, struct strv *names,
		      struct err *e)
{
	struct scratch_dir *sd = ed->scratch[app];
	int rc = 0;

	pthread_mutex_lock(&sd->lock);
	for (size_t i = 0; rc == 0 && i < sd->n; i++)
		if (strv_push(names, sd->v[i]->name) < 0)
			rc = err_oom(e);
	pthread_mutex_unlock(&sd->lock);
	return rc;
}
