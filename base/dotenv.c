/* dotenv.c - render and parse the .env dialect (docs/dotenv.md).
 *
 * The escaped double-quoted form also escapes ` (so a shell sourcing the
 * file runs nothing) and a carriage return as \r (so no bare CR sits in a
 * line that CRLF-normalising tools might eat); the parser reads both back,
 * which keeps parse(render(m)) == m.
 */
#include "dotenv.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* classification                                                      */

static bool dotenv_is_namestart(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool dotenv_is_namechar(unsigned char c)
{
	return dotenv_is_namestart(c) || (c >= '0' && c <= '9');
}

bool dotenv_key_valid(const char *key)
{
	if (!key || !dotenv_is_namestart((unsigned char)key[0]))
		return false;
	for (const char *p = key + 1; *p; p++)
		if (!dotenv_is_namechar((unsigned char)*p))
			return false;
	return true;
}

/* What no parser reads the same inside plain double quotes. */
static bool dotenv_needs_escape(char c)
{
	return c == '"' || c == '\\' || c == '$' || c == '`' || c == '\n';
}

/* A closing ' after a \ is an escaped quote to python-dotenv, which then
 * reads on into the next line's value (docs/dotenv.md rule 2). */
static bool dotenv_single_ok(const char *val, size_t len)
{
	return !len || (!memchr(val, '\'', len) && val[len - 1] != '\\');
}

enum dotenv_quoting dotenv_quoting_for(const char *val, size_t len)
{
	if (dotenv_single_ok(val, len))
		return DOTENV_SINGLE;
	for (size_t i = 0; i < len; i++)
		if (dotenv_needs_escape(val[i]))
			return DOTENV_ESCAPED;
	return DOTENV_DOUBLE;
}

/* ------------------------------------------------------------------ */
/* rendering                                                           */

static int dotenv_put_escaped(struct secbuf *out, const char *val, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		const char *rep = NULL;

		switch (val[i]) {
		case '\\': rep = "\\\\"; break;
		case '"': rep = "\\\""; break;
		case '$': rep = "\\$"; break;
		case '`': rep = "\\`"; break;
		case '\n': rep = "\\n"; break;
		case '\r': rep = "\\r"; break;
		}
		if (rep ? secbuf_puts(out, rep) : secbuf_putc(out, val[i]))
			return -1;
	}
	return 0;
}

/* The value in quoting q, quotes included. */
static int dotenv_put_value(struct secbuf *out, const char *val, size_t len,
			    enum dotenv_quoting q)
{
	char quote = q == DOTENV_SINGLE ? '\'' : '"';

	if (secbuf_putc(out, quote))
		return -1;
	if (q == DOTENV_ESCAPED) {
		if (dotenv_put_escaped(out, val, len))
			return -1;
	} else if (secbuf_append(out, val, len)) {
		return -1;
	}
	return secbuf_putc(out, quote);
}

static int dotenv_put_line(struct secbuf *out, const struct kv *kv,
			   enum dotenv_quoting q)
{
	if (secbuf_puts(out, kv->key) || secbuf_putc(out, '=') ||
	    dotenv_put_value(out, kv->val, kv->len, q) || secbuf_putc(out, '\n'))
		return -1;
	return 0;
}

static void dotenv_warn(dotenv_warn_fn warn, void *ctx, const char *key,
			const char *why)
{
	if (warn)
		warn(ctx, key, why);
}

static bool dotenv_has_brace(const char *val, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++)
		if (val[i] == '$' && val[i + 1] == '{')
			return true;
	return false;
}

/* Why a rendered value is not read back exactly by every parser, or NULL.
 * One reason per key: callers may log only the first warning for a key.
 * python-dotenv's default interpolation expands ${...} in every quoting,
 * \${ included, so a ${ is a hazard whatever the form. */
static const char *dotenv_hazard(const struct kv *kv, enum dotenv_quoting q)
{
	bool brace = dotenv_has_brace(kv->val, kv->len);

	if (q == DOTENV_ESCAPED && brace)
		return "value needs escapes that not every .env parser reads, and holds ${ which python-dotenv expands unless interpolation is off; the per-key file has the exact bytes";
	if (q == DOTENV_ESCAPED)
		return "value needs escapes that not every .env parser reads; the per-key file has the exact bytes";
	if (brace)
		return "value holds ${ which python-dotenv expands unless interpolation is off; the per-key file has the exact bytes";
	return NULL;
}

/* One key's line, or its warning when it cannot have one. -1 out of memory. */
static int dotenv_render_kv(const struct kv *kv, struct secbuf *out,
			    dotenv_warn_fn warn, void *ctx)
{
	enum dotenv_quoting q;
	const char *why;

	if (!dotenv_key_valid(kv->key)) {
		dotenv_warn(warn, ctx, kv->key,
			    "not a valid environment variable name; only in its own file");
		return 0;
	}
	if (memchr(kv->val, '\0', kv->len)) {
		dotenv_warn(warn, ctx, kv->key,
			    "value holds a NUL byte; only in its own file");
		return 0;
	}
	q = dotenv_quoting_for(kv->val, kv->len);
	if (dotenv_put_line(out, kv, q) < 0)
		return -1;
	why = dotenv_hazard(kv, q);
	if (why)
		dotenv_warn(warn, ctx, kv->key, why);
	return 0;
}

int dotenv_render(const struct kvmap *m, struct secbuf *out,
		  dotenv_warn_fn warn, void *ctx)
{
	size_t start = out->len;

	for (size_t i = 0; i < m->n; i++) {
		if (dotenv_render_kv(&m->items[i], out, warn, ctx) < 0) {
			/* leave no half-written file behind */
			secbuf_truncate(out, start);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* parsing                                                             */

/* One KEY=value of a parsed text, for dotenv_edit. */
struct dotenv_span {
	size_t start;	/* the line's first byte */
	size_t kstart, kend;	/* the key */
	size_t vstart;	/* the value's first byte, inside any quotes */
	size_t vend;	/* one past its last */
	size_t end;	/* one past the assignment's newline */
	char quote;
};

struct dotenv_parser {
	const char *s;
	size_t len;
	size_t pos;
	int line;		/* 1-based line of s[pos] */
	struct secbuf key;	/* not secret, but a secbuf is at hand */
	struct secbuf val;
	struct kvmap *out;
	struct err *e;
	/* dotenv_edit: where each assignment's line and value are */
	size_t line_start;	/* of the assignment being parsed */
	size_t kstart, kend;	/* its key */
	size_t vstart, vend;	/* its value's bytes (inside any quotes) */
	char quote;		/* ', " or 0 */
	struct dotenv_span *spans;	/* NULL: not recorded */
	size_t nspans;
};


static bool dotenv_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int dotenv_peek(const struct dotenv_parser *p)
{
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static void dotenv_skip_blanks(struct dotenv_parser *p)
{
	while (p->pos < p->len && dotenv_is_blank(p->s[p->pos]))
		p->pos++;
}

/* At the end of the text, a newline, or a CR that ends the line. */
static bool dotenv_at_eol(const struct dotenv_parser *p)
{
	if (p->pos >= p->len || p->s[p->pos] == '\n')
		return true;
	return p->s[p->pos] == '\r' &&
	       (p->pos + 1 >= p->len || p->s[p->pos + 1] == '\n');
}

/* Move past the rest of this line and its newline. */
static void dotenv_next_line(struct dotenv_parser *p)
{
	const char *nl = memchr(p->s + p->pos, '\n', p->len - p->pos);

	if (!nl) {
		p->pos = p->len;
		return;
	}
	p->pos = (size_t)(nl - p->s) + 1;
	p->line++;
}

static int dotenv_fail(struct dotenv_parser *p, int line, const char *why)
{
	return err_set(p->e, ERR_INVALID, "line %d: %s", line, why);
}

static int dotenv_nomem(struct dotenv_parser *p)
{
	return err_oom(p->e);
}

/* "NUL byte anywhere": checked up front so no other rule has to care. */
static int dotenv_check_nul(struct dotenv_parser *p)
{
	const char *nul;
	int line = 1;

	if (!p->len)	/* text may then be NULL, which memchr must not see */
		return 0;
	nul = memchr(p->s, '\0', p->len);
	if (!nul)
		return 0;
	for (const char *c = p->s; c < nul; c++)
		line += *c == '\n';
	return dotenv_fail(p, line, "NUL byte");
}

/* `export ` before a key, unless "export" is itself the key. */
static void dotenv_skip_export(struct dotenv_parser *p)
{
	size_t save = p->pos;

	if (p->len - p->pos < 7 || memcmp(p->s + p->pos, "export", 6) ||
	    !dotenv_is_blank(p->s[p->pos + 6]))
		return;
	p->pos += 6;
	dotenv_skip_blanks(p);
	if (dotenv_peek(p) == '=')
		p->pos = save;
}

/* KEY, blanks, '=' -> p->key; leaves pos after the '='. */
static int dotenv_parse_key(struct dotenv_parser *p)
{
	size_t start = p->pos;

	while (p->pos < p->len && !strchr("= \t\r\n", p->s[p->pos]))
		p->pos++;
	/* the key text may be a pasted secret: never echo an invalid one */
	if (p->pos == start && dotenv_peek(p) == '=')
		return dotenv_fail(p, p->line, "missing key before '='");
	if (secbuf_set(&p->key, p->s + start, p->pos - start) < 0)
		return dotenv_nomem(p);
	p->kstart = start;
	p->kend = p->pos;
	if (!dotenv_key_valid(p->key.data))
		return dotenv_fail(p, p->line, "key is not a valid name ([A-Za-z_][A-Za-z0-9_]*)");
	dotenv_skip_blanks(p);
	if (dotenv_peek(p) != '=')
		return dotenv_fail(p, p->line, "missing '=' after the key");
	p->pos++;
	return 0;
}

/* After a closing quote: blanks, then the end of the line or a comment. */
static int dotenv_parse_tail(struct dotenv_parser *p)
{
	dotenv_skip_blanks(p);
	if (!dotenv_at_eol(p) && dotenv_peek(p) != '#')
		return dotenv_fail(p, p->line, "unexpected text after the closing quote");
	dotenv_next_line(p);
	return 0;
}

static int dotenv_parse_single(struct dotenv_parser *p)
{
	int line = p->line;
	size_t start = ++p->pos;
	const char *end = memchr(p->s + start, '\'', p->len - start);

	if (!end)
		return dotenv_fail(p, line, "unterminated single quote");
	p->pos = (size_t)(end - p->s);
	p->vstart = start;
	p->vend = p->pos;
	p->quote = '\'';
	if (secbuf_set(&p->val, p->s + start, p->pos - start) < 0)
		return dotenv_nomem(p);
	for (size_t i = start; i < p->pos; i++)
		p->line += p->s[i] == '\n';
	p->pos++;
	return dotenv_parse_tail(p);
}

/* The byte a backslash escape stands for, or -1 when it is no escape. */
static int dotenv_unescape(char c)
{
	switch (c) {
	case '\\': case '"': case '$': case '`':
		return c;
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	}
	return -1;
}

static int dotenv_parse_double(struct dotenv_parser *p)
{
	int line = p->line;

	if (secbuf_set(&p->val, "", 0) < 0)
		return dotenv_nomem(p);
	p->vstart = p->pos + 1;
	p->quote = '"';
	for (p->pos++; p->pos < p->len; p->pos++) {
		char c = p->s[p->pos];
		int u;

		if (c == '"') {
			p->vend = p->pos;
			p->pos++;
			return dotenv_parse_tail(p);
		}
		if (c == '\n')
			p->line++;
		u = c == '\\' && p->pos + 1 < p->len ?
		    dotenv_unescape(p->s[p->pos + 1]) : -1;
		if (u >= 0) {
			c = (char)u;
			p->pos++;
		}
		/* any other backslash stays, and so does the byte after it */
		if (secbuf_putc(&p->val, c) < 0)
			return dotenv_nomem(p);
	}
	return dotenv_fail(p, line, "unterminated double quote");
}

/* Unquoted: to the end of the line, blank-then-# starts a comment,
 * surrounding blanks (and the CR of a CRLF) are not part of the value. */
static int dotenv_parse_raw(struct dotenv_parser *p, bool blank_before)
{
	size_t start = p->pos, end;

	while (p->pos < p->len && p->s[p->pos] != '\n') {
		if (p->s[p->pos] == '#' &&
		    (p->pos == start ? blank_before : dotenv_is_blank(p->s[p->pos - 1])))
			break;
		p->pos++;
	}
	end = p->pos;
	while (end > start && strchr(" \t\r", p->s[end - 1]))
		end--;
	p->vstart = start;
	p->vend = end;
	p->quote = 0;
	if (secbuf_set(&p->val, p->s + start, end - start) < 0)
		return dotenv_nomem(p);
	dotenv_next_line(p);
	return 0;
}

static int dotenv_parse_value(struct dotenv_parser *p)
{
	size_t eq = p->pos;

	dotenv_skip_blanks(p);
	switch (dotenv_peek(p)) {
	case '\'':
		return dotenv_parse_single(p);
	case '"':
		return dotenv_parse_double(p);
	}
	return dotenv_parse_raw(p, p->pos > eq);
}

/* One KEY=value assignment starting at pos (blanks already skipped). */
static int dotenv_parse_assignment(struct dotenv_parser *p)
{
	int line = p->line;

	dotenv_skip_export(p);
	if (dotenv_parse_key(p) < 0 || dotenv_parse_value(p) < 0)
		return -1;
	if (kvmap_get(p->out, p->key.data))
		return err_set(p->e, ERR_INVALID, "line %d: duplicate key %s",
			       line, p->key.data);
	if (kvmap_set(p->out, p->key.data, p->val.data, p->val.len) < 0)
		return dotenv_nomem(p);
	if (p->spans)
		p->spans[p->nspans++] = (struct dotenv_span){
			p->line_start, p->kstart, p->kend, p->vstart, p->vend,
			p->pos, p->quote };
	return 0;
}

static int dotenv_parse_all(struct dotenv_parser *p)
{
	if (dotenv_check_nul(p) < 0)
		return -1;
	while (p->pos < p->len) {
		p->line_start = p->pos;
		dotenv_skip_blanks(p);
		if (dotenv_at_eol(p) || dotenv_peek(p) == '#') {
			dotenv_next_line(p);
			continue;
		}
		if (dotenv_parse_assignment(p) < 0)
			return -1;
	}
	return 0;
}

static int dotenv_parse_spans(const char *text, size_t len, struct kvmap *out,
			      struct dotenv_span *spans, size_t *nspans,
			      struct err *e)
{
	struct dotenv_parser p = {
		.s = text, .len = len, .line = 1,
		.key = SECBUF_INIT, .val = SECBUF_INIT,
		.out = out, .e = e, .spans = spans,
	};
	int rc = dotenv_parse_all(&p);

	if (nspans)
		*nspans = p.nspans;
	secbuf_free(&p.key);
	secbuf_free(&p.val);
	if (rc < 0)
		kvmap_free(out);
	return rc;
}

int dotenv_parse(const char *text, size_t len, struct kvmap *out,
		 struct err *e)
{
	return dotenv_parse_spans(text, len, out, NULL, NULL, e);
}

/* ------------------------------------------------------------------ */
/* editing in place                                                    */

/* Can the value sit between the quotes it had (0: none) and read back
 * as it is? */
static bool dotenv_fits(char quote, const char *val, size_t len)
{
	if (quote == '\'')
		return dotenv_single_ok(val, len) && !memchr(val, '\n', len);
	if (quote == '"')
		return dotenv_quoting_for(val, len) != DOTENV_ESCAPED &&
		       !memchr(val, '\'', len) && !memchr(val, '\r', len);
	if (!len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (strchr(" \t\r\n#'\"\\$`", val[i]))
			return false;
	return true;
}

/* The assignment at sp, changed to value kv: its own quotes when they
 * fit, else the quoting dotenv_render would give it. */
static int dotenv_edit_value(const char *text, const struct dotenv_span *sp,
			     const struct kv *kv, struct secbuf *out)
{
	size_t q = sp->quote ? 1 : 0;

	if (dotenv_fits(sp->quote, kv->val, kv->len))
		return secbuf_append(out, text + sp->start, sp->vstart - sp->start) ||
		       secbuf_append(out, kv->val, kv->len) ||
		       secbuf_append(out, text + sp->vend, sp->end - sp->vend);
	return secbuf_append(out, text + sp->start, sp->vstart - q - sp->start) ||
	       dotenv_put_value(out, kv->val, kv->len,
				dotenv_quoting_for(kv->val, kv->len)) ||
	       secbuf_append(out, text + sp->vend + q, sp->end - sp->vend - q);
}

/* Keys of m the text does not have, appended as dotenv_render writes
 * them: single-quoted where that reads back exactly, which is also where
 * dotenvx expands no $VAR and runs no $(cmd) in what a value decrypts to
 * (it appends KEY="encrypted:..." itself, and does). */
static int dotenv_edit_append(const struct kvmap *m, const struct kvmap *had,
			      struct secbuf *out)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct kv *kv = &m->items[i];
		enum dotenv_quoting q = dotenv_quoting_for(kv->val, kv->len);

		if (kvmap_get(had, kv->key))
			continue;
		if (out->len && out->data[out->len - 1] != '\n' &&
		    secbuf_putc(out, '\n'))
			return -1;
		if (dotenv_put_line(out, kv, q))
			return -1;
	}
	return 0;
}

static int dotenv_edit_spans(const char *text, size_t len,
			     const struct dotenv_span *sp, size_t n,
			     const struct kvmap *had, const struct kvmap *m,
			     struct secbuf *key, struct secbuf *out)
{
	size_t at = 0;

	for (size_t i = 0; i < n; i++) {
		const struct kv *old, *want;

		if (secbuf_append(out, text + at, sp[i].start - at) ||
		    secbuf_set(key, text + sp[i].kstart, sp[i].kend - sp[i].kstart))
			return -1;
		at = sp[i].end;
		old = kvmap_get(had, key->data);
		want = kvmap_get(m, key->data);
		if (!want)
			continue;	/* removed, line and all */
		if (want->len == old->len && !memcmp(want->val, old->val, old->len)) {
			if (secbuf_append(out, text + sp[i].start, sp[i].end - sp[i].start))
				return -1;
		} else if (dotenv_edit_value(text, &sp[i], want, out)) {
			return -1;
		}
	}
	if (secbuf_append(out, text + at, len - at))
		return -1;
	return dotenv_edit_append(m, had, out);
}

int dotenv_edit(const char *text, size_t len, const struct kvmap *m,
		struct secbuf *out, struct err *e)
{
	struct secbuf key = SECBUF_INIT;
	struct kvmap had = KVMAP_INIT;
	struct dotenv_span *sp;
	size_t n = 1, start = out->len;
	int rc;

	for (size_t i = 0; i < len; i++)
		n += text[i] == '\n';
	sp = calloc(n, sizeof(*sp));
	if (!sp)
		return err_oom(e);
	rc = dotenv_parse_spans(text, len, &had, sp, &n, e);
	if (rc == 0 && dotenv_edit_spans(text, len, sp, n, &had, m, &key, out) < 0) {
		secbuf_truncate(out, start);
		rc = err_oom(e);
	}
	free(sp);
	secbuf_free(&key);
	kvmap_free(&had);
	return rc;
}
