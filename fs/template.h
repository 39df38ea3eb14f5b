/* template.h - config-file templates: file.NAME = TEMPLATE shows NAME in
 * the app folder, TEMPLATE with its placeholders filled in.
 *
 *   {{ KEY }}                      the app's value of KEY, verbatim
 *   {{ KEY | FILTER }}             escaped for where it stands
 *   {{ NAME://locator#field | FILTER }}
 *                                  a reference (NAME a provider section):
 *                                  fetched with the app's sources
 * FILTER: json (the inside of a JSON string), yaml (a double-quoted YAML
 * scalar, quotes included), shell (a single-quoted word, quotes
 * included), url (percent-encoding of all but A-Za-z0-9-._~), base64
 * (standard, padded), xml (text or attribute value, quotes included in
 * neither). There is nothing else: no code, no conditions, no file access.
 * A value a filter cannot carry (not UTF-8 for json, yaml, xml; a NUL for
 * shell; a control character XML 1.0 forbids) fails the file.
 *
 * Try it: printf 'password: {{ DB_PASSWORD | yaml }}\n' > /etc/secretfs/db.yaml.tpl
 * and file.db.yaml = /etc/secretfs/db.yaml.tpl in [app billing].
 */
#ifndef SECRETFS_TEMPLATE_H
#define SECRETFS_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/err.h"
#include "../base/secmem.h"
#include "ref.h"

#define TPL_FILE_MAX (1024 * 1024)

enum tpl_filter {
	TPL_RAW,
	TPL_JSON,
	TPL_YAML,
	TPL_SHELL,
	TPL_URL,
	TPL_BASE64,
	TPL_XML,
};

/* A literal run of text, or a placeholder (key or ref). */
struct tpl_part {
	char *text;		/* literal: the bytes; NULL for a placeholder */
	size_t len;
	char *key;		/* {{ KEY }}: the key; NULL for a reference */
	struct ref ref;		/* {{ NAME://... }}: REF_PROVIDER */
	enum tpl_filter filter;
	int line;		/* of the placeholder in the template */
};

struct tpl {
	char *path;
	struct tpl_part *parts;
	size_t n;
};

/* Read and parse the template at path, once: renders use what was read.
 * Errors are ERR_INVALID "path:line: what" (a bad placeholder, an unknown
 * filter) or "template path: ..." saying why the file cannot be read or
 * is not trusted (base/trust.h: owned by root or the daemon's user, not
 * writable by group or others). t is freed with tpl_free, also after a
 * failure. */
int tpl_load(const char *path, struct tpl *t, struct err *e);
int tpl_parse(const char *path, const char *text, size_t len, struct tpl *t,
	      struct err *e);
void tpl_free(struct tpl *t);

/* The value of placeholder p into val (set, not appended). */
typedef int (*tpl_value_fn)(void *ctx, const struct tpl_part *p,
			    struct secbuf *val, struct err *e);

/* Fill t in: out is set to the result. A failure names the template's
 * path:line, never a value. */
int tpl_render(const struct tpl *t, tpl_value_fn value, void *ctx,
	       struct secbuf *out, struct err *e);

/* v escaped by filter f, appended to out. ERR_INVALID (no value in the
 * message) when f cannot carry it. */
int tpl_filter_apply(enum tpl_filter f, const char *v, size_t n,
		     struct secbuf *out, struct err *e);

#endif
