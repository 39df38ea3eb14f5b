/* dotenv.h - the .env dialect secretfs writes and reads (docs/dotenv.md).
 *
 * Rendering picks, per value, the one quoting that most parsers read back
 * exactly: 'single' when the value has no ' and does not end in \,
 * "double" when it has a ' but none of " \ $ ` or newline, else "escaped"
 * double quotes (\\ \" \n \$) with a warning naming the key; a value
 * holding ${ is warned about too (python-dotenv expands it in any quoting).
 * Parsing accepts what people type and rejects, with a line number, what
 * would be ambiguous.
 * Round trip: dotenv_parse(dotenv_render(m)) == m for every map whose keys
 * are valid names and whose values hold no NUL byte.
 */
#ifndef SECRETFS_DOTENV_H
#define SECRETFS_DOTENV_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/secmem.h"
#include "../base/err.h"
#include "../base/kvmap.h"

enum dotenv_quoting {
	DOTENV_SINGLE,	/* KEY='value' */
	DOTENV_DOUBLE,	/* KEY="value" */
	DOTENV_ESCAPED,	/* KEY="va\$lue" - not portable, warned about */
};

/* Called once for every key rendered in the escaped form, holding ${, or
 * left out; why is a short reason. Never passed the value. */
typedef void (*dotenv_warn_fn)(void *ctx, const char *key, const char *why);

/* [A-Za-z_][A-Za-z0-9_]* */
bool dotenv_key_valid(const char *key);

enum dotenv_quoting dotenv_quoting_for(const char *val, size_t len);

/* Append every key of m, sorted, one KEY=... line each, to out. Keys that
 * are not valid names and values holding a NUL byte are left out (warned).
 * warn may be NULL. 0, or -1 out of memory. */
int dotenv_render(const struct kvmap *m, struct secbuf *out,
		  dotenv_warn_fn warn, void *ctx);

/* Parse text into out (which must be empty). On failure returns -1 with
 * ERR_INVALID and "line N: reason" (never a value) and out emptied. */
int dotenv_parse(const char *text, size_t len, struct kvmap *out,
		 struct err *e);

/* Rewrite text (a dotenv file; len bytes) to hold exactly m, appended to
 * out, keeping every byte that need not change: an assignment whose value
 * is unchanged stays as it is; a changed value is written between the
 * quotes it had when they can hold it (else re-quoted as dotenv_render
 * would), the rest of its line (export, spacing, a trailing comment)
 * kept; the assignment of a key m lacks goes, its lines with it; keys
 * only in m are appended as dotenv_render renders them. Comments and
 * blank lines stay. ERR_INVALID with
 * dotenv_parse's message when text does not parse. */
int dotenv_edit(const char *text, size_t len, const struct kvmap *m,
		struct secbuf *out, struct err *e);

#endif
