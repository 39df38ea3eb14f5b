/* formats.h - an app's value set in the formats its consumers read:
 * JSON, POSIX sh exports, docker's --env-file. One renderer per format,
 * shared by `secretfs render --format` (fs/cli.c, which refuses what a
 * format cannot carry) and the folder's dialect views .env.json, .env.sh
 * and .env.docker (fs/app.c, which leave such a key out with a warning).
 * .env itself is base/dotenv.c.
 *
 * Try it:
 *   secretfs render CONFIG billing --format sh > env.sh && sh -c '. ./env.sh'
 *   docker run --env-file /run/secretfs/billing/.env.docker IMAGE
 */
#ifndef SECRETFS_FORMATS_H
#define SECRETFS_FORMATS_H

#include "err.h"
#include "kvmap.h"
#include "secmem.h"

enum fmt_kind {
	FMT_ENV,	/* .env (base/dotenv.c): not rendered here */
	FMT_JSON,	/* {"KEY": "value", ...}, keys sorted, exact for UTF-8 text */
	FMT_SH,		/* export KEY='value' lines, ' as '\'' */
	FMT_DOCKER,	/* KEY=value lines, verbatim: docker run --env-file */
	FMT_COUNT
};

/* "env" "json" "sh" "docker" -> *f; -1 when unknown. */
int fmt_parse(const char *name, enum fmt_kind *f);
const char *fmt_name(enum fmt_kind f);

/* Called for a key the format cannot carry exactly; why says what (never
 * the value). */
typedef void (*fmt_skip_fn)(void *ctx, const char *key, const char *why);

/* vals in format f, appended to out. A key the format cannot carry
 * (a NUL byte; for sh and docker a name that is no variable name; for
 * json and docker a value that is not UTF-8; for docker a newline, a
 * trailing CR, a line over 64 KiB):
 *   skip == NULL  ERR_INVALID "KEY: why", nothing appended (all or nothing)
 *   skip != NULL  left out, skip() called, and for sh and docker a
 *                 "# KEY left out: why" line written first (json has no
 *                 comments).
 * -1 with ERR_NOMEM out of memory. */
int fmt_render(enum fmt_kind f, const struct kvmap *vals, struct secbuf *out,
	       fmt_skip_fn skip, void *ctx, struct err *e);

#endif
