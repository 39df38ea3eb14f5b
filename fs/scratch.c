/* scratch.c - see scratch.h */
#include "scratch.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../base/dotenv.h"

static bool scratch_all(const char *s, int (*pred)(int))
{
	for (; *s; s++)
		if (!pred((unsigned char)*s))
			return false;
	return true;
}

static int scratch_is_tmpchar(int c)
{
	return islower(c) || isdigit(c) || c == '_';
}

/* sed -i: "sed" + 6 of [A-Za-z0-9]; tempfile: "tmp" + 8 of [a-z0-9_] */
static bool scratch_is_tool_temp(const char *name)
{
	size_t len = strlen(name);

	if (len == 9 && !strncmp(name, "sed", 3))
		return scratch_all(name + 3, isalnum);
	if (len == 11 && !strncmp(name, "tmp", 3))
		return scratch_all(name + 3, scratch_is_tmpchar);
	return false;
}

/* .env.encrypted, .env.ENV.encrypted (fs/app.h's encrypted views) */
static bool scratch_is_view(const char *name, size_t len)
{
	static const char suffix[] = ".encrypted";
	size_t n = sizeof(suffix) - 1;

	return !strcmp(name, ".env.encrypted") ||
	       (len > 5 + n && !strncmp(name, ".env.", 5) &&
		!strcmp(name + len - n, suffix));
}

enum scratch_name_kind scratch_name_kind(const char *name)
{
	size_t len = strlen(name);

	if (len > NAME_MAX)
		return SCRATCH_NAME_TOOLONG;
	if (!strcmp(name, ".env"))
		return SCRATCH_NAME_ENV;
	if (!strcmp(name, ".env.keys") || scratch_is_view(name, len))
		return SCRATCH_NAME_KEYS;
	if (scratch_is_tool_temp(name))
		return SCRATCH_NAME_TEMP;
	if (dotenv_key_valid(name))
		return SCRATCH_NAME_KEY;
	if (len == 0 || strchr(name, '/') ||
	    !strcmp(name, ".") || !strcmp(name, ".."))
		return SCRATCH_NAME_INVALID;
	if (name[0] == '.' || name[len - 1] == '~' || scratch_all(name, isdigit) ||
	    (name[0] == '#' && name[len - 1] == '#'))
		return SCRATCH_NAME_TEMP;
	return SCRATCH_NAME_INVALID;
}

void scratch_dir_init(struct scratch_dir *d)
{
	pthread_mutex_init(&d->lock, NULL);
	d->v = NULL;
	d->n = 0;
}

void scratch_dir_destroy(struct scratch_dir *d)
{
	while (d->n)
		scratch_unlink(d, d->v[0]);
	free(d->v);
	pthread_mutex_destroy(&d->lock);
}

struct scratch *scratch_find(struct scratch_dir *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->v[i]->name, name))
			return d->v[i];
	return NULL;
}

int scratch_create(struct scratch_dir *d, const char *name, uid_t uid,
		   gid_t gid, unsigned mode, const struct kvmap *base,
		   struct scratch **out, struct err *e)
{
	struct scratch **v, *s;

	if (d->n >= SCRATCH_MAX_FILES)
		return err_set(e, ERR_TOOBIG, "too many temporary files (at most %d)",
			       SCRATCH_MAX_FILES);
	v = realloc(d->v, (d->n + 1) * sizeof(*v));
	if (!v)
		return err_oom(e);
	d->v = v;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->name = strdup(name)) ||
	    (base && kvmap_copy(&s->base, base) < 0)) {
		if (s)
			free(s->name);
		free(s);
		return err_oom(e);
	}
	s->uid = uid;
	s->gid = gid;
	s->mode = mode & 0600;
	s->mtime = time(NULL);
	s->refs = 1;
	d->v[d->n++] = s;
	*out = s;
	return 0;
}

void scratch_unlink(struct scratch_dir *d, struct scratch *s)
{
	for (size_t i = 0; i < d->n; i++) {
		if (d->v[i] != s)
			continue;
		d->v[i] = d->v[--d->n];
		scratch_release(s);
		return;
	}
}

int scratch_rename(struct scratch_dir *d, struct scratch *s, const char *name,
		   struct err *e)
{
	struct scratch *old = scratch_find(d, name);
	char *n;

	if (old == s)
		return 0;
	n = strdup(name);
	if (!n)
		return err_oom(e);
	if (old)
		scratch_unlink(d, old);
	free(s->name);
	s->name = n;
	return 0;
}

void scratch_hold(struct scratch *s)
{
	s->refs++;
}

void scratch_release(struct scratch *s)
{
	if (--s->refs > 0)
		return;
	secbuf_free(&s->data);
	kvmap_free(&s->base);
	free(s->name);
	free(s);
}
