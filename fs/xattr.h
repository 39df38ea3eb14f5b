/* xattr.h - the user.secretfs.* extended attributes, below the FUSE adapter.
 *
 * A file's attributes say where its value comes from and how fresh it is,
 * never the value (getfattr -d is run without a second thought):
 *   source    the reference (for .env every source, one a line)
 *   version   the provider's version of the primary entry
 *   age       seconds since it was fetched
 *   stale     1 while served past its ttl
 *   error     the last provider error
 * and two control the app (setfattr):
 *   refresh     (a file or the app folder) revalidate at the next read
 *   regenerate  (a generate: key's file) a new value
 * Scratch files come from nowhere: they have none.
 */
#ifndef SECRETFS_XATTR_H
#define SECRETFS_XATTR_H

#include <stddef.h>

#include "../base/err.h"
#include "app.h"
#include "edit.h"

#define XATTR_PREFIX "user.secretfs."

/* The names of a file's attributes: NUL-terminated one after another,
 * *len bytes in all (listxattr's format). */
const char *xattr_names(size_t *len);

/* An attribute's value: text, len bytes (not NUL-terminated). */
struct xattr_value {
	char text[sizeof(struct app_meta)];	/* room for any field of it */
	size_t len;
};

/* Attribute attr of file name of app. ERR_NOATTR when it has no such
 * attribute; else what asking the store failed with. */
int xattr_get(struct edit *ed, size_t app, const char *name, const char *attr,
	      struct xattr_value *out, struct err *e);

/* May attr be set on file name of app (NULL: the app folder)? ERR_NOTSUP
 * for an attribute there is no setting, ERR_INVALID for regenerate on the
 * folder. Asks nothing of the store: a refusal is the caller's doing. */
int xattr_may_set(struct edit *ed, size_t app, const char *name,
		  const char *attr, struct err *e);
/* Set attr (its value does not matter) as xattr_may_set allows. After it
 * every file of app may differ: the caller drops what it cached. */
int xattr_set(struct edit *ed, size_t app, const char *name, const char *attr,
	      struct err *e);

#endif
