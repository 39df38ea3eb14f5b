/* xattr.c - see xattr.h */
#include "xattr.h"

#include <stdio.h>
#include <string.h>

#include "../base/log.h"

#define XATTR_PREFIX_LEN (sizeof(XATTR_PREFIX) - 1)

static const char xattr_list[] =
	XATTR_PREFIX "source\0" XATTR_PREFIX "version\0" XATTR_PREFIX "age\0"
	XATTR_PREFIX "stale\0" XATTR_PREFIX "error\0";

const char *xattr_names(size_t *len)
{
	*len = sizeof(xattr_list) - 1;	/* the literal's own NUL is extra */
	return xattr_list;
}

static int xattr_none(const char *attr, struct err *e)
{
	return err_set(e, ERR_NOATTR, "%s: no such attribute", attr);
}

/* The text of field (attr without the prefix) of meta; NULL when there is
 * no such field. age is written into buf. */
static const char *xattr_field(const struct app_meta *meta, const char *field,
			       char *buf, size_t size)
{
	if (!strcmp(field, "source"))
		return meta->source;
	if (!strcmp(field, "version"))
		return meta->version;
	if (!strcmp(field, "error"))
		return meta->error;
	if (!strcmp(field, "stale"))
		return meta->stale ? "1" : "0";
	if (!strcmp(field, "age") && snprintf(buf, size, "%ld", meta->age_s) > 0)
		return buf;
	return NULL;
}

int xattr_get(struct edit *ed, size_t app, const char *name, const char *attr,
	      struct xattr_value *out, struct err *e)
{
	struct app_meta meta;
	char age[32];
	const char *v;

	/* a scratch file's name may be a key's too: it is the scratch file */
	if (strncmp(attr, XATTR_PREFIX, XATTR_PREFIX_LEN) ||
	    edit_scratch_stat(ed, app, name, NULL))
		return xattr_none(attr, e);
	if (app_meta(ed->appfs, edit_app(ed, app), name, &meta, e) < 0)
		return -1;
	v = xattr_field(&meta, attr + XATTR_PREFIX_LEN, age, sizeof(age));
	if (!v)
		return xattr_none(attr, e);
	out->len = strlen(v);
	if (out->len && v[out->len - 1] == '\n')
		out->len--;	/* the last of the source lines */
	memcpy(out->text, v, out->len);
	return 0;
}

int xattr_may_set(struct edit *ed, size_t app, const char *name,
		  const char *attr, struct err *e)
{
	const char *app_name = ed->slot_names[app];

	if (!strcmp(attr, XATTR_PREFIX "refresh"))
		return 0;
	if (strcmp(attr, XATTR_PREFIX "regenerate"))
		return err_set(e, ERR_NOTSUP, "app %s: %s cannot be set", app_name,
			       attr);
	if (!name)
		return err_set(e, ERR_INVALID,
			       "app %s: regenerate takes a key's file, not the folder",
			       app_name);
	return 0;
}

int xattr_set(struct edit *ed, size_t app, const char *name, const char *attr,
	      struct err *e)
{
	const struct app_conf *conf = edit_app(ed, app);

	if (xattr_may_set(ed, app, name, attr, e) < 0)
		return -1;
	if (!strcmp(attr, XATTR_PREFIX "refresh")) {
		app_expire(ed->appfs, conf);
		return 0;
	}
	if (app_regenerate(ed->appfs, conf, name, e) < 0)
		return -1;
	log_info("app %s: %s regenerated", conf->name, name);
	return 0;
}
