/* template.c - config-file templates: see template.h. */
#include "template.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/dotenv.h"
#include "../base/trust.h"

static const char *const tpl_filter_names[] = {
	"", "json", "yaml", "shell", "url", "base64", "xml",
};

/* ---- parsing ---- */

static int tpl_add(struct tpl *t, struct tpl_part *p, struct err *e)
{
	struct tpl_part *v = realloc(t->parts, (t->n + 1) * sizeof(*v));

	if (!v)
		return err_oom(e);
	t->parts = v;
	v[t->n++] = *p;
	return 0;
}

static int tpl_add_text(struct tpl *t, const char *s, size_t n, struct err *e)
{
	struct tpl_part p = { .len = n };

	if (n == 0)
		return 0;
	p.text = malloc(n);
	if (!p.text)
		return err_oom(e);
	memcpy(p.text, s, n);
	if (tpl_add(t, &p, e) < 0) {
		free(p.text);
		return -1;
	}
	return 0;
}

/* s[0..n) without blanks at either end, NUL-terminated in buf. */
static const char *tpl_trim(const char *s, size_t n, char *buf, size_t size)
{
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n >= size)
		n = size - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return buf;
}

static int tpl_filter_parse(const char *name, enum tpl_filter *f)
{
	for (size_t i = 1; i < sizeof(tpl_filter_names) / sizeof(*tpl_filter_names); i++)
		if (!strcmp(name, tpl_filter_names[i])) {
			*f = (enum tpl_filter)i;
			return 0;
		}
	return -1;
}

/* The inside of {{ ... }} into p. */
static int tpl_placeholder(const char *path, int line, const char *s, size_t n,
			   struct tpl_part *p, struct err *e)
{
	const char *bar = memchr(s, '|', n);
	char what[1024], filter[64];
	struct err why;

	p->line = line;
	tpl_trim(s, bar ? (size_t)(bar - s) : n, what, sizeof(what));
	if (bar && (memchr(bar + 1, '|', n - (size_t)(bar + 1 - s)) ||
		    tpl_filter_parse(tpl_trim(bar + 1, n - (size_t)(bar + 1 - s), filter,
					      sizeof(filter)), &p->filter) < 0))
		return err_set(e, ERR_INVALID, "%s:%d: unknown filter '%s' (json, yaml, shell, url, base64, xml; one per placeholder)",
			       path, line, tpl_trim(bar + 1, n - (size_t)(bar + 1 - s), filter,
						    sizeof(filter)));
	if (strstr(what, "://")) {
		if (ref_parse(what, &p->ref, &why) < 0)
			return err_set(e, ERR_INVALID, "%s:%d: %s", path, line, why.msg);
		if (p->ref.kind != REF_PROVIDER)
			return err_set(e, ERR_INVALID, "%s:%d: expected a key or a provider reference",
				       path, line);
		return 0;
	}
	if (!dotenv_key_valid(what))
		return err_set(e, ERR_INVALID, "%s:%d: '%s' is neither a key name nor a reference (NAME://locator#field)",
			       path, line, what);
	p->key = strdup(what);
	return p->key ? 0 : err_oom(e);
}

static int tpl_lines(const char *s, size_t n)
{
	int lines = 0;

	for (size_t i = 0; i < n; i++)
		lines += s[i] == '\n';
	return lines;
}

int tpl_parse(const char *path, const char *text, size_t len, struct tpl *t,
	      struct err *e)
{
	size_t pos = 0;
	int line = 1;

	memset(t, 0, sizeof(*t));
	t->path = strdup(path);
	if (!t->path)
		return err_oom(e);
	while (pos < len) {
		const char *open = memmem(text + pos, len - pos, "{{", 2);
		const char *close;
		struct tpl_part p = { 0 };
		size_t lit = open ? (size_t)(open - text) - pos : len - pos;

		if (tpl_add_text(t, text + pos, lit, e) < 0)
			return -1;
		line += tpl_lines(text + pos, lit);
		pos += lit;
		if (!open)
			break;
		close = memmem(open + 2, len - pos - 2, "}}", 2);
		if (!close || memchr(open + 2, '\n', (size_t)(close - open - 2)))
			return err_set(e, ERR_INVALID, "%s:%d: '{{' without '}}' on its line",
				       path, line);
		if (tpl_placeholder(path, line, open + 2, (size_t)(close - open - 2), &p, e) < 0 ||
		    tpl_add(t, &p, e) < 0) {
			free(p.key);
			ref_free(&p.ref);
			return -1;
		}
		pos = (size_t)(close + 2 - text);
	}
	return 0;
}

int tpl_load(const char *path, struct tpl *t, struct err *e)
{
	struct secbuf buf = SECBUF_INIT;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;

	memset(t, 0, sizeof(*t));
	if (fd < 0)
		return err_set(e, ERR_INVALID, "template %s: %s", path, strerror(errno));
	/* whoever can write it decides what the app's readers get, from any
	 * store the daemon reaches: checked on what is read */
	if (trust_fd(fd, path, "put any secret the daemon can fetch into the app's folder",
		     e) < 0) {
		close(fd);
		return err_prefix(e, "template ");
	}
	rc = secbuf_read_fd(&buf, fd, TPL_FILE_MAX);
	close(fd);
	if (rc < 0)
		rc = err_set(e, ERR_INVALID, "template %s: cannot read it, or it is over %d bytes",
			     path, TPL_FILE_MAX);
	else
		rc = tpl_parse(path, buf.data ? buf.data : "", buf.len, t, e);
	secbuf_free(&buf);
	return rc;
}

void tpl_free(struct tpl *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->parts[i].text);
		free(t->parts[i].key);
		ref_free(&t->parts[i].ref);
	}
	free(t->parts);
	free(t->path);
	memset(t, 0, sizeof(*t));
}

/* ---- filters ---- */

/* The code point at s[*i] (advancing *i), or -1 when s is not UTF-8 there. */
static long tpl_utf8_next(const unsigned char *s, size_t n, size_t *i)
{
	unsigned char c = s[*i];
	int more = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 :
		   (c & 0xf8) == 0xf0 ? 3 : -1;
	static const long min[] = { 0, 0x80, 0x800, 0x10000 };
	long cp = more == 0 ? c : more == 1 ? c & 0x1f : more == 2 ? c & 0x0f : c & 0x07;

	if (more < 0 || *i + (size_t)more >= n + (more == 0))
		return -1;
	for (int k = 1; k <= more; k++) {
		if ((s[*i + k] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[*i + k] & 0x3f);
	}
	if (cp < min[more] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*i += (size_t)more + 1;
	return cp;
}

/* \xHH (width 2) or \uHHHH (width 4) */
static int tpl_put_escape(struct secbuf *out, char kind, int width, long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "\\%c%0*lx", kind, width, v);
	return secbuf_puts(out, buf);
}

/* JSON string contents: " \ and controls escaped, the rest as is. */
static int tpl_json_char(long cp, const char *raw, size_t rawlen, struct secbuf *out)
{
	static const char *const named[] = { ['\b'] = "\\b", ['\f'] = "\\f",
		['\n'] = "\\n", ['\r'] = "\\r", ['\t'] = "\\t" };

	if (cp == '"' || cp == '\\')
		return secbuf_putc(out, '\\') | secbuf_putc(out, (char)cp);
	if (cp < 0x20 && cp < (long)(sizeof(named) / sizeof(*named)) && named[cp])
		return secbuf_puts(out, named[cp]);
	if (cp < 0x20 || cp == 0x2028 || cp == 0x2029)
		return tpl_put_escape(out, 'u', 4, cp);
	return secbuf_append(out, raw, rawlen);
}

/* Inside YAML double quotes: what PyYAML and YAML 1.1/1.2 read as
 * printable passes, everything else (C0, DEL, C1, NEL, LS, PS, the
 * non-characters) is escaped. */
static int tpl_yaml_char(long cp, const char *raw, size_t rawlen, struct secbuf *out)
{
	bool printable = (cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xd7ff) ||
			 (cp >= 0xe000 && cp <= 0xfffd && cp != 0xfeff) || cp >= 0x10000;

	/* LS and PS are line breaks to YAML 1.1, folded inside quotes */
	printable &= cp != 0x2028 && cp != 0x2029;

	if (cp == '"' || cp == '\\')
		return secbuf_putc(out, '\\') | secbuf_putc(out, (char)cp);
	if (cp == '\n')
		return secbuf_puts(out, "\\n");
	if (cp == '\t')
		return secbuf_puts(out, "\\t");
	if (printable)
		return secbuf_append(out, raw, rawlen);
	if (cp <= 0xff)
		return tpl_put_escape(out, 'x', 2, cp);
	return tpl_put_escape(out, 'u', 4, cp);
}

/* XML 1.0 text or attribute value: markup and quotes as entities, and
 * the whitespace an attribute would normalize as character references. */
static int tpl_xml_char(long cp, const char *raw, size_t rawlen, struct secbuf *out)
{
	switch (cp) {
	case '&': return secbuf_puts(out, "&amp;");
	case '<': return secbuf_puts(out, "&lt;");
	case '>': return secbuf_puts(out, "&gt;");
	case '"': return secbuf_puts(out, "&quot;");
	case '\'': return secbuf_puts(out, "&apos;");
	case '\t': return secbuf_puts(out, "&#9;");
	case '\n': return secbuf_puts(out, "&#10;");
	case '\r': return secbuf_puts(out, "&#13;");
	default: return secbuf_append(out, raw, rawlen);
	}
}

static bool tpl_xml_allowed(long cp)
{
	return cp == 0x9 || cp == 0xa || cp == 0xd || (cp >= 0x20 && cp <= 0xd7ff) ||
	       (cp >= 0xe000 && cp <= 0xfffd) || cp >= 0x10000;
}

typedef int (*tpl_char_fn)(long cp, const char *raw, size_t rawlen, struct secbuf *out);

static int tpl_text_filter(enum tpl_filter f, const char *v, size_t n,
			   struct secbuf *out, struct err *e)
{
	tpl_char_fn fn = f == TPL_JSON ? tpl_json_char : f == TPL_YAML ? tpl_yaml_char :
			 tpl_xml_char;
	int rc = f == TPL_YAML ? secbuf_putc(out, '"') : 0;

	for (size_t i = 0; rc == 0 && i < n;) {
		size_t at = i;
		long cp = tpl_utf8_next((const unsigned char *)v, n, &i);

		if (cp < 0)
			return err_set(e, ERR_INVALID, "the value is not UTF-8 text, which the %s filter cannot carry",
				       tpl_filter_names[f]);
		if (f == TPL_XML && !tpl_xml_allowed(cp))
			return err_set(e, ERR_INVALID, "the value holds a character XML 1.0 cannot carry (U+%04lX)",
				       cp);
		rc = fn(cp, v + at, i - at, out);
	}
	if (rc == 0 && f == TPL_YAML)
		rc = secbuf_putc(out, '"');
	return rc < 0 ? err_oom(e) : 0;
}

static int tpl_shell(const char *v, size_t n, struct secbuf *out, struct err *e)
{
	int rc = secbuf_putc(out, '\'');

	if (memchr(v, 0, n))
		return err_set(e, ERR_INVALID, "the value holds a NUL byte, which no shell word can");
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = v[i] == '\'' ? secbuf_puts(out, "'\\''") : secbuf_putc(out, v[i]);
	rc |= secbuf_putc(out, '\'');
	return rc < 0 ? err_oom(e) : 0;
}

static int tpl_url(const char *v, size_t n, struct secbuf *out, struct err *e)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || (c && strchr("-._~", c)))
			rc = secbuf_putc(out, (char)c);
		else
			rc = secbuf_putc(out, '%') | secbuf_putc(out, hex[c >> 4]) |
			     secbuf_putc(out, hex[c & 15]);
	}
	return rc < 0 ? err_oom(e) : 0;
}

static int tpl_base64(const char *v, size_t n, struct secbuf *out, struct err *e)
{
	size_t size = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
	size_t start = out->len;

	if (secbuf_reserve(out, size) < 0)
		return err_oom(e);
	sodium_bin2base64(out->data + start, size, (const unsigned char *)v, n,
			  sodium_base64_VARIANT_ORIGINAL);
	out->len = start + size - 1;
	out->data[out->len] = '\0';
	return 0;
}

static int tpl_filter_to(enum tpl_filter f, const char *v, size_t n,
			 struct secbuf *out, struct err *e)
{
	switch (f) {
	case TPL_RAW:
		return secbuf_append(out, v, n) < 0 ? err_oom(e) : 0;
	case TPL_SHELL:
		return tpl_shell(v, n, out, e);
	case TPL_URL:
		return tpl_url(v, n, out, e);
	case TPL_BASE64:
		return tpl_base64(v, n, out, e);
	default:
		return tpl_text_filter(f, v, n, out, e);
	}
}

int tpl_filter_apply(enum tpl_filter f, const char *v, size_t n,
		     struct secbuf *out, struct err *e)
{
	size_t start = out->len;

	if (tpl_filter_to(f, v, n, out, e) == 0)
		return 0;
	secbuf_truncate(out, start);
	return -1;
}

/* ---- rendering ---- */

static const char *tpl_what(const struct tpl_part *p, char *buf, size_t size)
{
	if (p->key)
		return p->key;
	ref_format(&p->ref, buf, size);
	return buf;
}

int tpl_render(const struct tpl *t, tpl_value_fn value, void *ctx,
	       struct secbuf *out, struct err *e)
{
	struct secbuf val = SECBUF_INIT;
	char what[1024];
	int rc = 0;

	secbuf_clear(out);
	for (size_t i = 0; rc == 0 && i < t->n; i++) {
		const struct tpl_part *p = &t->parts[i];

		if (p->text) {
			rc = secbuf_append(out, p->text, p->len) < 0 ? err_oom(e) : 0;
			continue;
		}
		rc = value(ctx, p, &val, e);
		if (rc == 0)
			rc = tpl_filter_apply(p->filter, val.data ? val.data : "", val.len, out, e);
		if (rc < 0)
			err_prefix(e, "%s:%d: %s: ", t->path, p->line,
				   tpl_what(p, what, sizeof(what)));
	}
	secbuf_free(&val);
	if (rc < 0)
		secbuf_clear(out);
	return rc;
}
