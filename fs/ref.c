/* ref.c - parse and format references and generate: specs (see ref.h).
 *
 * References are configuration, not secrets, so error messages quote them;
 * they are quoted escaped and cut short, so a stray control byte or a huge
 * string cannot mangle a log line.
 */
#include "ref.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../base/pct.h"

#define REF_MAX_LEN 4096
#define REF_QUOTE_MAX 100	/* bytes of a reference quoted in a message */
#define GEN_PREFIX "generate:"

static const char *const gen_names[] = {
	[GEN_PASSWORD] = "password",
	[GEN_HEX] = "hex",
	[GEN_BASE64] = "base64",
	[GEN_BASE64URL] = "base64url",
	[GEN_UUID] = "uuid",
	[GEN_FERNET] = "fernet",
	[GEN_ED25519] = "ed25519",
	[GEN_ARGON2ID] = "argon2id",
	[GEN_DOTENVX] = "dotenvx",
};
#define GEN_NKINDS (sizeof(gen_names) / sizeof(gen_names[0]))

static const char *const gen_charsets[] = {
	[GEN_CHARSET_ALNUM] = "alnum",
	[GEN_CHARSET_ALNUM_SYMBOLS] = "alnum+symbols",
};
#define GEN_NCHARSETS (sizeof(gen_charsets) / sizeof(gen_charsets[0]))
#define GEN_PASSWORD_DEFAULT 32

/* ------------------------------------------------------------------ */
/* error messages                                                      */

/* s, fit for a log line: bytes outside printable ASCII, '"' and '\' as
 * \xNN, at most REF_QUOTE_MAX input bytes, "..." when cut. */
static const char *ref_quote(const char *s, char *buf, size_t size)
{
	size_t o = 0, i;

	for (i = 0; s[i] && i < REF_QUOTE_MAX && o + 5 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c > 0x20 && c < 0x7f && c != '"' && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
	}
	if (s[i] && o + 4 <= size) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* ERR_INVALID: reference "<s>": <what is wrong>. Returns -1. */
static int ref_fail(struct err *e, const char *prefix, const char *s,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int ref_fail(struct err *e, const char *prefix, const char *s,
		    const char *fmt, ...)
{
	char quoted[REF_QUOTE_MAX * 4 + 8];
	char why[sizeof(e->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return err_set(e, ERR_INVALID, "reference \"%s%s\": %s", prefix,
		       ref_quote(s, quoted, sizeof(quoted)), why);
}

/* ------------------------------------------------------------------ */
/* generate: specs                                                     */

static bool gen_has_count(enum gen_kind k)
{
	return k == GEN_PASSWORD || k == GEN_HEX || k == GEN_BASE64 ||
	       k == GEN_BASE64URL;
}

/* Index of the name of the first len bytes of s in names[count], or -1. */
static int gen_lookup(const char *const *names, size_t count, const char *s,
		      size_t len)
{
	for (size_t i = 0; i < count; i++)
		if (strlen(names[i]) == len && !strncmp(s, names[i], len))
			return (int)i;
	return -1;
}

/* Decimal count 1..GEN_MAX_N in the len bytes at num (after "KIND:"). */
static int gen_parse_count(const char *spec, const char *name,
			   const char *num, size_t len, unsigned *n,
			   struct err *e)
{
	unsigned long v = 0;
	size_t i;

	if (!len)
		return ref_fail(e, GEN_PREFIX, spec,
				"nothing after ':', expected a count, e.g. generate:%s:32",
				name);
	for (i = 0; i < len && num[i] >= '0' && num[i] <= '9'; i++)
		if (v <= GEN_MAX_N)
			v = v * 10 + (unsigned long)(num[i] - '0');
	if (i < len && num[i] == ':')
		return ref_fail(e, GEN_PREFIX, spec,
				"extra text after the count (generate:KIND[:N])");
	if (i < len)
		return ref_fail(e, GEN_PREFIX, spec,
				"the count is not a decimal number");
	if (v == 0)
		return ref_fail(e, GEN_PREFIX, spec, "the count must be at least 1");
	if (v > GEN_MAX_N)
		return ref_fail(e, GEN_PREFIX, spec,
				"the count is more than %d", GEN_MAX_N);
	*n = (unsigned)v;
	return 0;
}

/* password[:LEN[:CHARSET]]; rest is the text after "password:", or NULL. */
static int gen_parse_password(const char *spec, const char *rest,
			      struct gen_spec *g, struct err *e)
{
	const char *colon;
	int cs;

	g->n = GEN_PASSWORD_DEFAULT;
	if (!rest)
		return 0;
	colon = strchr(rest, ':');
	if (colon == rest)
		return ref_fail(e, GEN_PREFIX, spec,
				"no length before the character set, e.g. generate:password:32:alnum+symbols");
	if (gen_parse_count(spec, "password", rest,
			    colon ? (size_t)(colon - rest) : strlen(rest),
			    &g->n, e) < 0)
		return -1;
	if (!colon)
		return 0;
	cs = gen_lookup(gen_charsets, GEN_NCHARSETS, colon + 1,
			strlen(colon + 1));
	if (cs < 0)
		return ref_fail(e, GEN_PREFIX, spec,
				"unknown character set after the length, expected alnum or alnum+symbols");
	g->charset = (enum gen_charset)cs;
	return 0;
}

/* A key name as in .env: [A-Za-z_][A-Za-z0-9_]* */
static bool gen_key_valid(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* argon2id:KEY; rest is the text after "argon2id:", or NULL. */
static int gen_parse_source(const char *spec, const char *rest,
			    struct gen_spec *g, struct err *e)
{
	if (!rest || !*rest)
		return ref_fail(e, GEN_PREFIX, spec,
				"generate:argon2id needs the key whose value it hashes, e.g. generate:argon2id:PASSWORD");
	if (!gen_key_valid(rest))
		return ref_fail(e, GEN_PREFIX, spec,
				"bad key name after argon2id: ([A-Za-z_][A-Za-z0-9_]*)");
	g->source = strdup(rest);
	if (!g->source)
		return err_oom(e);
	return 0;
}

int gen_parse(const char *spec, struct gen_spec *g, struct err *e)
{
	const char *colon = strchr(spec, ':');
	const char *rest = colon ? colon + 1 : NULL;
	size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
	int k = gen_lookup(gen_names, GEN_NKINDS, spec, len);
	const char *name;

	memset(g, 0, sizeof(*g));
	if (k < 0)
		return ref_fail(e, GEN_PREFIX, spec,
				"unknown kind, expected password, hex, base64, base64url, uuid, fernet, ed25519, argon2id or dotenvx");
	name = gen_names[k];
	g->kind = (enum gen_kind)k;
	if (g->kind == GEN_PASSWORD)
		return gen_parse_password(spec, rest, g, e);
	if (g->kind == GEN_ARGON2ID)
		return gen_parse_source(spec, rest, g, e);
	if (!gen_has_count(g->kind)) {
		if (colon)
			return ref_fail(e, GEN_PREFIX, spec,
					"generate:%s takes no count", name);
		return 0;
	}
	if (!colon)
		return ref_fail(e, GEN_PREFIX, spec,
				"generate:%s needs a byte count, e.g. generate:%s:32",
				name, name);
	return gen_parse_count(spec, name, rest, strlen(rest), &g->n, e);
}

void gen_spec_free(struct gen_spec *g)
{
	free(g->source);
	memset(g, 0, sizeof(*g));
}

/* ------------------------------------------------------------------ */
/* formatting: an snprintf-like writer that counts what it cannot store */

struct ref_out {
	char *p;
	size_t size;
	size_t len;
};

static void ref_putc(struct ref_out *o, char c)
{
	if (o->len + 1 < o->size)
		o->p[o->len] = c;
	o->len++;
}

static void ref_puts(struct ref_out *o, const char *s)
{
	while (*s)
		ref_putc(o, *s++);
}

static int ref_finish(struct ref_out *o)
{
	if (o->size)
		o->p[o->len < o->size ? o->len : o->size - 1] = '\0';
	return o->len > INT_MAX ? -1 : (int)o->len;
}

/* What ref_parse splits on, or could not read back raw. */
static bool ref_needs_pct(unsigned char c)
{
	return c <= 0x20 || c >= 0x7f || c == '%' || c == '?' || c == '#';
}

static void ref_put_encoded(struct ref_out *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (!ref_needs_pct(c)) {
			ref_putc(o, (char)c);
			continue;
		}
		ref_putc(o, '%');
		ref_putc(o, hex[c >> 4]);
		ref_putc(o, hex[c & 15]);
	}
}

static int gen_write(struct ref_out *o, const struct gen_spec *g)
{
	char num[16];

	if ((unsigned)g->kind >= GEN_NKINDS ||
	    (unsigned)g->charset >= GEN_NCHARSETS ||
	    (g->kind == GEN_ARGON2ID && (!g->source || !gen_key_valid(g->source))))
		return -1;
	ref_puts(o, gen_names[g->kind]);
	if (gen_has_count(g->kind)) {
		snprintf(num, sizeof(num), ":%u", g->n);
		ref_puts(o, num);
	}
	if (g->kind == GEN_PASSWORD && g->charset != GEN_CHARSET_ALNUM) {
		ref_putc(o, ':');
		ref_puts(o, gen_charsets[g->charset]);
	}
	if (g->kind == GEN_ARGON2ID) {
		ref_putc(o, ':');
		ref_puts(o, g->source);
	}
	return 0;
}

int gen_format(const struct gen_spec *g, char *out, size_t size)
{
	struct ref_out o = { out, size, 0 };

	if (gen_write(&o, g) < 0)
		return -1;
	return ref_finish(&o);
}

int ref_format(const struct ref *r, char *out, size_t size)
{
	struct ref_out o = { out, size, 0 };

	if (r->kind == REF_GENERATE) {
		ref_puts(&o, GEN_PREFIX);
		if (gen_write(&o, &r->gen) < 0)
			return -1;
		return ref_finish(&o);
	}
	if (!r->provider || !r->locator)
		return -1;
	ref_puts(&o, r->provider);
	ref_puts(&o, "://");
	ref_put_encoded(&o, r->locator);
	if (r->params && *r->params) {
		ref_putc(&o, '?');
		ref_puts(&o, r->params);
	}
	if (r->field) {
		ref_putc(&o, '#');
		ref_put_encoded(&o, r->field);
	}
	return ref_finish(&o);
}

/* ------------------------------------------------------------------ */
/* parsing                                                             */

static bool ref_scheme_valid_n(const char *s, size_t n)
{
	if (!n || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
			return false;
	}
	/* any case: "Generate://x" next to generate:KIND only confuses */
	return !(n == 8 && !strncasecmp(s, "generate", 8));
}

bool ref_scheme_valid(const char *name)
{
	return name && ref_scheme_valid_n(name, strlen(name));
}

/* Percent-decode the n bytes at p (inside reference s) into *out. */
static int ref_decode(const char *s, const char *p, size_t n, const char *what,
		      char **out, struct err *e)
{
	size_t at = 0;

	switch (pct_decode(p, n, out, &at)) {
	case PCT_OK:
		return 0;
	case PCT_NOMEM:
		return err_oom(e);
	case PCT_NUL:
		return ref_fail(e, "", s, "%%00 (a NUL byte) in the %s", what);
	default:
		return ref_fail(e, "", s,
				"'%%' at byte %zu of the %s is not followed by two hex digits (write %%25 for a literal '%%')",
				at + 1, what);
	}
}

/* Checks that hold for every reference, generate: ones included. */
static int ref_check_text(const char *s, struct err *e)
{
	size_t len;

	if (!s || !*s)
		return err_set(e, ERR_INVALID, "empty reference");
	len = strnlen(s, REF_MAX_LEN + 1);
	if (len > REF_MAX_LEN)
		return ref_fail(e, "", s, "longer than %d bytes", REF_MAX_LEN);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c == 0x7f)
			return ref_fail(e, "", s,
					"whitespace or control character at byte %zu (encode it, e.g. %%20 for a space)",
					i + 1);
	}
	return 0;
}

/* The scheme of s, ending at sep (its "://"). */
static int ref_check_scheme(const char *s, const char *sep, struct err *e)
{
	size_t n = (size_t)(sep - s);

	if (!n)
		return ref_fail(e, "", s, "no provider name before \"://\"");
	if (n == 8 && !strncasecmp(s, "generate", 8))
		return ref_fail(e, "", s,
				"\"generate\" is not a provider; write generate:KIND[:N]");
	if (!ref_scheme_valid_n(s, n))
		return ref_fail(e, "", s,
				"bad provider name \"%.*s\" (a letter, then letters, digits, '+', '-' or '.')",
				(int)(n < 64 ? n : 64), s);
	return 0;
}

/* NAME://locator[?params][#field]; r is zeroed, and freed on failure. */
static int ref_parse_provider(const char *s, struct ref *r, struct err *e)
{
	const char *sep = strstr(s, "://");
	const char *rest, *hash, *end, *q, *loc_end;

	if (!sep)
		return ref_fail(e, "", s,
				"expected NAME://locator[?params][#field] or generate:KIND[:N]");
	if (ref_check_scheme(s, sep, e) < 0)
		return -1;
	rest = sep + 3;
	hash = strchr(rest, '#');
	end = hash ? hash : rest + strlen(rest);
	q = memchr(rest, '?', (size_t)(end - rest));
	loc_end = q ? q : end;
	/* an empty locator is the provider's to judge (its check()): a
	 * whole folder (secrets://), every variable (environ://), Azure's
	 * per-secret layout (azure://?prefix=billing-) */
	if (hash && !hash[1])
		return ref_fail(e, "", s,
				"empty field after '#' (leave out the '#' to mean the whole entry)");

	r->kind = REF_PROVIDER;
	r->provider = strndup(s, (size_t)(sep - s));
	if (q && q + 1 < end)
		r->params = strndup(q + 1, (size_t)(end - q - 1));
	if (!r->provider || (q && q + 1 < end && !r->params)) {
		ref_free(r);
		return err_oom(e);
	}
	if (ref_decode(s, rest, (size_t)(loc_end - rest), "locator",
		       &r->locator, e) < 0 ||
	    (hash && ref_decode(s, hash + 1, strlen(hash + 1), "field",
				&r->field, e) < 0)) {
		ref_free(r);
		return -1;
	}
	return 0;
}

int ref_parse(const char *s, struct ref *r, struct err *e)
{
	size_t plen = strlen(GEN_PREFIX);

	memset(r, 0, sizeof(*r));
	if (ref_check_text(s, e) < 0)
		return -1;
	/* "generate://x" is a provider-style mistake: say so there */
	if (!strncmp(s, GEN_PREFIX, plen) && strncmp(s, GEN_PREFIX "//", plen + 2)) {
		r->kind = REF_GENERATE;
		return gen_parse(s + plen, &r->gen, e);
	}
	return ref_parse_provider(s, r, e);
}

/* ------------------------------------------------------------------ */
/* comparing and freeing                                               */

/* params: NULL and "" both mean none */
static bool ref_params_equal(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

bool ref_same_entry(const struct ref *a, const struct ref *b)
{
	if (a->kind != REF_PROVIDER || b->kind != REF_PROVIDER)
		return false;
	if (!a->provider || !b->provider || !a->locator || !b->locator)
		return false;
	return !strcmp(a->provider, b->provider) &&
	       !strcmp(a->locator, b->locator) &&
	       ref_params_equal(a->params, b->params);
}

void ref_free(struct ref *r)
{
	free(r->provider);
	free(r->locator);
	free(r->params);
	free(r->field);
	gen_spec_free(&r->gen);
	memset(r, 0, sizeof(*r));
}
