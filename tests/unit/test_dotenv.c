/* test_dotenv.c - unit tests for fs/dotenv.c: the quoting classes, exact
 * rendered bytes, warnings that never see a value, every accepted and
 * rejected parse form, and a seeded random round trip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dotenv.h"

/* ------------------------------------------------------------------ */
/* helpers                                                             */

/* Render a one-key map and compare the bytes with want. */
static void check_render1(const char *key, const char *val, size_t len,
			  const char *want)
{
	struct kvmap m = KVMAP_INIT;
	struct secbuf out = SECBUF_INIT;

	assert_int_equal(kvmap_set(&m, key, val, len), 0);
	assert_int_equal(dotenv_render(&m, &out, NULL, NULL), 0);
	if (out.len != strlen(want) || memcmp(out.data, want, out.len))
		fail_msg("rendered [%s], want [%s]", out.data, want);
	secbuf_free(&out);
	kvmap_free(&m);
}

#define RENDER1(key, lit, want) check_render1(key, lit, sizeof(lit) - 1, want)

/* Parse text (a literal, NULs allowed) into a fresh map, expecting success. */
static void parse_ok(const char *text, size_t len, struct kvmap *m)
{
	struct err e = { 0 };

	*m = (struct kvmap)KVMAP_INIT;
	if (dotenv_parse(text, len, m, &e) < 0)
		fail_msg("parse of [%s] failed: %s", text, e.msg);
}

/* Parse, expect exactly one key with the given value. */
static void check_parse1(const char *text, size_t tlen, const char *key,
			 const char *val, size_t vlen)
{
	struct kvmap m;
	const struct kv *kv;

	parse_ok(text, tlen, &m);
	if (m.n != 1)
		fail_msg("[%s]: %zu keys, want 1", text, m.n);
	kv = kvmap_get(&m, key);
	if (!kv)
		fail_msg("[%s]: key %s missing (got %s)", text, key, m.items[0].key);
	if (kv->len != vlen || memcmp(kv->val, val, vlen))
		fail_msg("[%s]: value [%s], want [%s]", text, kv->val, val);
	kvmap_free(&m);
}

#define PARSE1(text, key, val) \
	check_parse1(text, sizeof(text) - 1, key, val, sizeof(val) - 1)

/* Parse, expect ERR_INVALID with "line N:", an emptied map, and no trace
 * of the marker string (a stand-in for a secret value) in the message. */
static void check_reject(const char *text, size_t len, int line,
			 const char *secret)
{
	struct kvmap m = KVMAP_INIT;
	struct err e = { 0 };
	char prefix[32];

	snprintf(prefix, sizeof(prefix), "line %d:", line);
	if (dotenv_parse(text, len, &m, &e) == 0)
		fail_msg("[%s] parsed, want an error on line %d", text, line);
	assert_int_equal(e.code, ERR_INVALID);
	if (strncmp(e.msg, prefix, strlen(prefix)))
		fail_msg("[%s]: message \"%s\", want \"%s ...\"", text, e.msg, prefix);
	if (secret && strstr(e.msg, secret))
		fail_msg("[%s]: message \"%s\" holds the value", text, e.msg);
	assert_int_equal(m.n, 0);
	assert_null(m.items);
}

#define REJECT(text, line, secret) \
	check_reject(text, sizeof(text) - 1, line, secret)

/* ------------------------------------------------------------------ */
/* names and quoting classes                                           */

static void test_key_valid(void **state)
{
	(void)state;
	assert_true(dotenv_key_valid("A"));
	assert_true(dotenv_key_valid("_"));
	assert_true(dotenv_key_valid("DB_PASSWORD_2"));
	assert_true(dotenv_key_valid("lower_case"));
	assert_false(dotenv_key_valid(""));
	assert_false(dotenv_key_valid("2FA"));
	assert_false(dotenv_key_valid("has-dash"));
	assert_false(dotenv_key_valid("has.dot"));
	assert_false(dotenv_key_valid("has space"));
	assert_false(dotenv_key_valid("caf\xc3\xa9"));
	assert_false(dotenv_key_valid("A="));
}

static void test_quoting_for(void **state)
{
	static const struct {
		const char *val;
		enum dotenv_quoting q;
	} cases[] = {
		{ "", DOTENV_SINGLE },
		{ "hello world", DOTENV_SINGLE },
		{ "say \"hi\" $HOME `x` \\ \n", DOTENV_SINGLE },
		{ "\\a", DOTENV_SINGLE },
		{ "abc\\", DOTENV_ESCAPED },
		{ "\\", DOTENV_ESCAPED },
		{ "C:\\dir\\", DOTENV_ESCAPED },
		{ "it's", DOTENV_DOUBLE },
		{ "it's # = \t \r caf\xc3\xa9", DOTENV_DOUBLE },
		{ "it's \"x\"", DOTENV_ESCAPED },
		{ "it's \\", DOTENV_ESCAPED },
		{ "it's $5", DOTENV_ESCAPED },
		{ "it's `x`", DOTENV_ESCAPED },
		{ "it's\nx", DOTENV_ESCAPED },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(dotenv_quoting_for(cases[i].val, strlen(cases[i].val)),
				 cases[i].q);
}

/* ------------------------------------------------------------------ */
/* rendering                                                           */

static void test_render_single(void **state)
{
	(void)state;
	RENDER1("K", "hello world", "K='hello world'\n");
	RENDER1("K", "", "K=''\n");
	RENDER1("K", "  padded  ", "K='  padded  '\n");
	RENDER1("K", "say \"hi\"", "K='say \"hi\"'\n");
	RENDER1("K", "$HOME pa$$word ${X} $(echo hi)",
		"K='$HOME pa$$word ${X} $(echo hi)'\n");
	RENDER1("K", "a\nb", "K='a\nb'\n");
	RENDER1("K", "C:\\path\\to", "K='C:\\path\\to'\n");
	RENDER1("K", "a #b", "K='a #b'\n");
	RENDER1("K", "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x94\x91",
		"K='h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x94\x91'\n");
}

static void test_render_double(void **state)
{
	(void)state;
	RENDER1("K", "it's", "K=\"it's\"\n");
	RENDER1("K", "l'\xc3\xa9t\xc3\xa9", "K=\"l'\xc3\xa9t\xc3\xa9\"\n");
	RENDER1("K", "'#= x'", "K=\"'#= x'\"\n");
}

static void test_render_escaped(void **state)
{
	(void)state;
	RENDER1("K", "say \"it's\"", "K=\"say \\\"it's\\\"\"\n");
	RENDER1("K", "it's $5", "K=\"it's \\$5\"\n");
	RENDER1("K", "it's\nnext", "K=\"it's\\nnext\"\n");
	RENDER1("K", "it's C:\\x", "K=\"it's C:\\\\x\"\n");
	RENDER1("K", "it's `id`", "K=\"it's \\`id\\`\"\n");
	RENDER1("K", "it's\r\n", "K=\"it's\\r\\n\"\n");
}

/* A value ending in \ is never single-quoted: python-dotenv would read the
 * closing \' as an escaped quote and run on into the next value. */
static void test_render_trailing_backslash(void **state)
{
	(void)state;
	RENDER1("K", "abc\\", "K=\"abc\\\\\"\n");
	RENDER1("K", "\\", "K=\"\\\\\"\n");
	RENDER1("K", "C:\\dir\\", "K=\"C:\\\\dir\\\\\"\n");
	RENDER1("K", "a\\b", "K='a\\b'\n");
}

/* The measured failure: A='abc\' followed by a quoted B lost both. */
static void test_render_backslash_neighbours(void **state)
{
	struct kvmap m = KVMAP_INIT;
	struct secbuf out = SECBUF_INIT;
	const char *want = "A=\"abc\\\\\"\nB='x y'\nC=\"it's\"\nD='say \"hi\"'\n";

	(void)state;
	assert_int_equal(kvmap_set(&m, "A", "abc\\", 4), 0);
	assert_int_equal(kvmap_set(&m, "B", "x y", 3), 0);
	assert_int_equal(kvmap_set(&m, "C", "it's", 4), 0);
	assert_int_equal(kvmap_set(&m, "D", "say \"hi\"", 8), 0);
	assert_int_equal(dotenv_render(&m, &out, NULL, NULL), 0);
	assert_string_equal(out.data, want);
	secbuf_free(&out);
	kvmap_free(&m);
}

static void test_render_sorted_lines(void **state)
{
	struct kvmap m = KVMAP_INIT;
	struct secbuf out = SECBUF_INIT;
	const char *want = "A='1'\nB_2=\"b's\"\nZ=''\n_x='x'\nlow='y'\n";

	(void)state;
	assert_int_equal(kvmap_set(&m, "low", "y", 1), 0);
	assert_int_equal(kvmap_set(&m, "Z", "", 0), 0);
	assert_int_equal(kvmap_set(&m, "_x", "x", 1), 0);
	assert_int_equal(kvmap_set(&m, "A", "1", 1), 0);
	assert_int_equal(kvmap_set(&m, "B_2", "b's", 3), 0);
	assert_int_equal(dotenv_render(&m, &out, NULL, NULL), 0);
	assert_string_equal(out.data, want);
	assert_int_equal(out.len, strlen(want));
	secbuf_free(&out);
	kvmap_free(&m);
}

static void test_render_appends(void **state)
{
	struct kvmap m = KVMAP_INIT;
	struct secbuf out = SECBUF_INIT;

	(void)state;
	assert_int_equal(secbuf_puts(&out, "# head\n"), 0);
	assert_int_equal(kvmap_set(&m, "K", "v", 1), 0);
	assert_int_equal(dotenv_render(&m, &out, NULL, NULL), 0);
	assert_string_equal(out.data, "# head\nK='v'\n");
	secbuf_free(&out);
	kvmap_free(&m);
}

/* ------------------------------------------------------------------ */
/* warnings                                                            */

struct warns {
	int n;
	char keys[8][64];
	char why[8][256];
};

static void record_warn(void *ctx, const char *key, const char *why)
{
	struct warns *w = ctx;

	assert_true(w->n < 8);
	snprintf(w->keys[w->n], sizeof(w->keys[0]), "%s", key);
	snprintf(w->why[w->n], sizeof(w->why[0]), "%s", why);
	w->n++;
}

static int warned_for(const struct warns *w, const char *key)
{
	for (int i = 0; i < w->n; i++)
		if (!strcmp(w->keys[i], key))
			return i;
	return -1;
}

static void test_render_warnings(void **state)
{
	static const char nulval[] = "sec\0ret-nul";
	struct kvmap m = KVMAP_INIT;
	struct secbuf out = SECBUF_INIT;
	struct warns w = { 0 };
	const char *secrets[] = { "secret-bad1", "secret-bad2", "sec", "secret-esc",
				  "secret-trail", "secret-both", "HOME" };
	const char *want =
		"BOTH=\"it's \\${secret-both}\"\n"
		"BRACE='${HOME}x'\n"
		"ESC=\"it's \\$secret-esc\"\n"
		"OK='fine'\n"
		"QUOTE=\"it's\"\n"
		"TRAIL=\"secret-trail\\\\\"\n";

	(void)state;
	assert_int_equal(kvmap_set(&m, "1BAD", "secret-bad1", 11), 0);
	assert_int_equal(kvmap_set(&m, "has-dash", "secret-bad2", 11), 0);
	assert_int_equal(kvmap_set(&m, "NULVAL", nulval, sizeof(nulval) - 1), 0);
	assert_int_equal(kvmap_set(&m, "ESC", "it's $secret-esc", 16), 0);
	assert_int_equal(kvmap_set(&m, "OK", "fine", 4), 0);
	assert_int_equal(kvmap_set(&m, "QUOTE", "it's", 4), 0);
	assert_int_equal(kvmap_set(&m, "BRACE", "${HOME}x", 8), 0);
	assert_int_equal(kvmap_set(&m, "TRAIL", "secret-trail\\", 13), 0);
	assert_int_equal(kvmap_set(&m, "BOTH", "it's ${secret-both}", 19), 0);
	assert_int_equal(dotenv_render(&m, &out, record_warn, &w), 0);

	assert_string_equal(out.data, want);
	/* one warning per key, even when a value has two hazards */
	assert_int_equal(w.n, 7);
	assert_true(warned_for(&w, "BRACE") >= 0);
	assert_true(warned_for(&w, "TRAIL") >= 0);
	assert_true(warned_for(&w, "BOTH") >= 0);
	assert_non_null(strstr(w.why[warned_for(&w, "BRACE")], "${"));
	assert_non_null(strstr(w.why[warned_for(&w, "BOTH")], "${"));
	assert_non_null(strstr(w.why[warned_for(&w, "BOTH")], "escapes"));
	assert_true(warned_for(&w, "1BAD") >= 0);
	assert_true(warned_for(&w, "has-dash") >= 0);
	assert_true(warned_for(&w, "NULVAL") >= 0);
	assert_true(warned_for(&w, "ESC") >= 0);
	assert_int_equal(warned_for(&w, "OK"), -1);
	assert_int_equal(warned_for(&w, "QUOTE"), -1);
	assert_non_null(strstr(w.why[warned_for(&w, "NULVAL")], "NUL"));
	for (int i = 0; i < w.n; i++) {
		assert_true(strlen(w.why[i]) > 0);
		for (size_t j = 0; j < sizeof(secrets) / sizeof(secrets[0]); j++)
			if (strstr(w.why[i], secrets[j]))
				fail_msg("warning for %s holds a value: %s",
					 w.keys[i], w.why[i]);
	}

	/* the same map with no callback renders the same bytes */
	secbuf_clear(&out);
	assert_int_equal(dotenv_render(&m, &out, NULL, NULL), 0);
	assert_string_equal(out.data, want);
	secbuf_free(&out);
	kvmap_free(&m);
}

/* ------------------------------------------------------------------ */
/* parsing: accepted forms                                             */

static void test_parse_raw(void **state)
{
	(void)state;
	PARSE1("K=v", "K", "v");
	PARSE1("K=v\n", "K", "v");
	PARSE1("K=hello world\n", "K", "hello world");
	PARSE1("K=", "K", "");
	PARSE1("K=\n", "K", "");
	PARSE1("K=   \t\n", "K", "");
	PARSE1("K=  padded  \t\n", "K", "padded");
	PARSE1("K=a #comment\n", "K", "a");
	PARSE1("K=a\t# comment\n", "K", "a");
	PARSE1("K=a#b\n", "K", "a#b");
	PARSE1("K=#b\n", "K", "#b");
	PARSE1("K= #b\n", "K", "");
	PARSE1("K=a=b=c\n", "K", "a=b=c");
	PARSE1("K=it's \"x\" \\n $HOME\n", "K", "it's \"x\" \\n $HOME");
	PARSE1("K=caf\xc3\xa9\n", "K", "caf\xc3\xa9");
	PARSE1("K=v\r\n", "K", "v");
	PARSE1("K=a b \r\n", "K", "a b");
	PARSE1("K=a\rb\n", "K", "a\rb");
}

static void test_parse_layout(void **state)
{
	(void)state;
	PARSE1("export K=v\n", "K", "v");
	PARSE1("export\tK=v\n", "K", "v");
	PARSE1("  export   K=v\n", "K", "v");
	PARSE1("export=v\n", "export", "v");
	PARSE1("export = v\n", "export", "v");
	PARSE1("exportK=v\n", "exportK", "v");
	PARSE1("  \tK=v\n", "K", "v");
	PARSE1("K = v\n", "K", "v");
	PARSE1("K\t=\tv\n", "K", "v");
	PARSE1("K= 'v'\n", "K", "v");
	PARSE1("\n\n# comment\n  # indented comment\n\nK=v\n\n", "K", "v");
	PARSE1("# c\r\n\r\nK=v\r\n\r\n", "K", "v");
	PARSE1("   \t\n K=v", "K", "v");
}

static void test_parse_single(void **state)
{
	(void)state;
	PARSE1("K='v'\n", "K", "v");
	PARSE1("K=''\n", "K", "");
	PARSE1("K='  padded  '\n", "K", "  padded  ");
	PARSE1("K='a #b'\n", "K", "a #b");
	PARSE1("K='$HOME \\n \"x\" `y`'\n", "K", "$HOME \\n \"x\" `y`");
	PARSE1("K='line1\nline2'\n", "K", "line1\nline2");
	PARSE1("K='line1\r\nline2'\r\n", "K", "line1\r\nline2");
	PARSE1("K='v'   \n", "K", "v");
	PARSE1("K='v' # comment\n", "K", "v");
	PARSE1("K='v'# comment\n", "K", "v");
	PARSE1("K='v'\r\n", "K", "v");
	PARSE1("K='v'", "K", "v");
}

static void test_parse_double(void **state)
{
	(void)state;
	PARSE1("K=\"v\"\n", "K", "v");
	PARSE1("K=\"\"\n", "K", "");
	PARSE1("K=\"it's\"\n", "K", "it's");
	PARSE1("K=\"a\\\\b\"\n", "K", "a\\b");
	PARSE1("K=\"say \\\"hi\\\"\"\n", "K", "say \"hi\"");
	PARSE1("K=\"a\\nb\"\n", "K", "a\nb");
	PARSE1("K=\"a\\rb\"\n", "K", "a\rb");
	PARSE1("K=\"\\$HOME\"\n", "K", "$HOME");
	PARSE1("K=\"\\`id\\`\"\n", "K", "`id`");
	PARSE1("K=\"C:\\path\\to\"\n", "K", "C:\\path\\to");
	PARSE1("K=\"a\\'b\"\n", "K", "a\\'b");
	PARSE1("K=\"x\\\\\"\n", "K", "x\\");
	PARSE1("K=\"$HOME\"\n", "K", "$HOME");
	PARSE1("K=\"line1\nline2\"\n", "K", "line1\nline2");
	PARSE1("K=\"a #b\" # comment\n", "K", "a #b");
	PARSE1("K=\"v\" \t\r\n", "K", "v");
}

static void test_parse_several(void **state)
{
	static const char text[] =
		"# app config\n"
		"export A=1\n"
		"B='two\nlines'\n"
		"C=\"th\\\"ree\"\n"
		"\n"
		"D = four # note\n"
		"E=\n";
	struct kvmap m;

	(void)state;
	parse_ok(text, sizeof(text) - 1, &m);
	assert_int_equal(m.n, 5);
	assert_string_equal(kvmap_get(&m, "A")->val, "1");
	assert_string_equal(kvmap_get(&m, "B")->val, "two\nlines");
	assert_string_equal(kvmap_get(&m, "C")->val, "th\"ree");
	assert_string_equal(kvmap_get(&m, "D")->val, "four");
	assert_int_equal(kvmap_get(&m, "E")->len, 0);
	kvmap_free(&m);

	parse_ok("", 0, &m);
	assert_int_equal(m.n, 0);
	parse_ok("\n# only comments\n\n", 18, &m);
	assert_int_equal(m.n, 0);
}

/* An empty map renders to nothing, and nothing (even a NULL buffer, as an
 * unused secbuf has) parses to an empty map. */
static void test_empty(void **state)
{
	struct kvmap m = KVMAP_INIT;
	struct secbuf out = SECBUF_INIT;
	struct err e = { 0 };

	(void)state;
	assert_int_equal(dotenv_render(&m, &out, NULL, NULL), 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(dotenv_parse(out.data, out.len, &m, &e), 0);
	assert_int_equal(m.n, 0);
	assert_int_equal(dotenv_parse(NULL, 0, &m, &e), 0);
	assert_int_equal(m.n, 0);
	secbuf_free(&out);
}

/* ------------------------------------------------------------------ */
/* parsing: rejected forms                                             */

static void test_parse_reject_keys(void **state)
{
	(void)state;
	REJECT("1BAD=v\n", 1, NULL);
	REJECT("A=1\nhas-dash=secretval\n", 2, "secretval");
	REJECT("A=1\n\n=secretval\n", 3, "secretval");
	REJECT("K.x=v\n", 1, NULL);
	REJECT("caf\xc3\xa9=v\n", 1, NULL);
	REJECT("export 9K=v\n", 1, NULL);
	/* a secret pasted on a line of its own is never echoed */
	REJECT("A=1\nsk-live-secretval\n", 2, "secretval");
}

static void test_parse_reject_missing_eq(void **state)
{
	(void)state;
	REJECT("K\n", 1, NULL);
	REJECT("A=1\nB=2\nKEY value\n", 3, NULL);
	REJECT("export K\n", 1, NULL);
	REJECT("K:v\n", 1, NULL);
	REJECT("K\r\n", 1, NULL);
	REJECT("# c\nK", 2, NULL);
}

static void test_parse_reject_quotes(void **state)
{
	(void)state;
	REJECT("K='secretval\n", 1, "secretval");
	REJECT("A=1\nK=\"secretval\n\n", 2, "secretval");
	REJECT("A=1\nK=\"secretval\\\"\n", 2, "secretval");
	REJECT("K=\"secretval\\", 1, "secretval");
	REJECT("A='x\ny'\nB='secretval\nmore\n", 3, "secretval");
	REJECT("K='a'secretval\n", 1, "secretval");
	REJECT("K='a' secretval\n", 1, "secretval");
	REJECT("K=\"a\"b\n", 1, NULL);
	REJECT("K='a\nb'x\n", 2, NULL);
	REJECT("K=\"a\nb\nc\" x\n", 3, NULL);
	REJECT("K='a' 'b'\n", 1, NULL);
}

static void test_parse_reject_nul(void **state)
{
	(void)state;
	REJECT("K=a\0b\n", 1, NULL);
	REJECT("A=1\nB=2\nK='x\0'\n", 3, NULL);
	REJECT("A=1\n# com\0ment\n", 2, NULL);
	REJECT("A='1\n\n\0'\n", 3, NULL);
}

static void test_parse_reject_duplicate(void **state)
{
	struct kvmap m = KVMAP_INIT;
	struct err e = { 0 };
	static const char text[] = "K=secretval1\nA=2\nexport K=secretval2\n";

	(void)state;
	REJECT("K=1\nK=1\n", 2, NULL);
	REJECT("K='a\nb'\nK=c\n", 3, NULL);
	assert_int_equal(dotenv_parse(text, sizeof(text) - 1, &m, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	/* the key is named, the value is not */
	assert_non_null(strstr(e.msg, "K"));
	assert_null(strstr(e.msg, "secretval"));
	assert_int_equal(m.n, 0);
}

/* ------------------------------------------------------------------ */
/* round trip                                                          */

/* Heavy in what breaks .env parsers, plus multi-byte UTF-8. */
static const char *const rt_alphabet[] = {
	"'", "\"", "\\", "$", "`", "#", "=", "\n", "\r", " ", "\t",
	"a", "Z", "0", "{", "}", "(", "\\n", "${", "'\"",
	"\xc3\xa9", "\xe2\x9c\x93", "\xf0\x9f\x94\x91",
};

static void rt_value(unsigned *seed, char *buf, size_t *len)
{
	size_t want = (size_t)rand_r(seed) % 41;
	size_t n = 0, na = sizeof(rt_alphabet) / sizeof(rt_alphabet[0]);

	while (n < want) {
		const char *a = rt_alphabet[rand_r(seed) % na];
		size_t l = strlen(a);

		if (n + l > want)
			break;
		memcpy(buf + n, a, l);
		n += l;
	}
	*len = n;
}

static void rt_key(unsigned *seed, char *key)
{
	static const char first[] = "ABCXYZabcxyz_";
	static const char rest[] = "ABCXYZabcxyz_0189";
	int n = 1 + rand_r(seed) % 6;

	key[0] = first[rand_r(seed) % (sizeof(first) - 1)];
	for (int i = 1; i < n; i++)
		key[i] = rest[rand_r(seed) % (sizeof(rest) - 1)];
	key[n] = '\0';
}

/* Values with quotes, set beside the random ones: a line that runs on into
 * its neighbour (python-dotenv with a closing \') shows only there. */
static const char *const rt_neighbours[] = {
	"x y", "say \"hi\"", "it's", "'quoted'", "{\"a\":\"b c\"}",
};

static void rt_add_neighbours(unsigned *seed, struct kvmap *m)
{
	size_t nn = sizeof(rt_neighbours) / sizeof(rt_neighbours[0]);

	for (int k = rand_r(seed) % 4; k > 0; k--) {
		const char *v = rt_neighbours[rand_r(seed) % nn];
		char key[8];

		rt_key(seed, key);
		assert_int_equal(kvmap_set(m, key, v, strlen(v)), 0);
	}
}

/* python-dotenv reads \' as an escaped quote even in single quotes, so no
 * rendered single-quoted value may end in a backslash. Only such a value
 * puts \' at a line's end: every other form ends in " or has no '. */
static void rt_check_python_dotenv(const struct secbuf *out, unsigned seed0,
				   int iter)
{
	for (size_t i = 1; i + 1 < out->len; i++)
		if (out->data[i] == '\'' && out->data[i + 1] == '\n' &&
		    out->data[i - 1] == '\\')
			fail_msg("seed %u iteration %d: a single-quoted value ends in \\\n%s",
				 seed0, iter, out->data);
}

static void test_round_trip_random(void **state)
{
	const unsigned seed0 = 20240611;
	unsigned seed = seed0;
	int classes[3] = { 0 };

	(void)state;
	for (int iter = 0; iter < 5000; iter++) {
		struct kvmap m = KVMAP_INIT, back = KVMAP_INIT;
		struct secbuf out = SECBUF_INIT;
		struct err e = { 0 };
		int nkeys = 1 + rand_r(&seed) % 8;

		for (int k = 0; k < nkeys; k++) {
			char key[8], val[48];
			size_t len;

			rt_key(&seed, key);
			rt_value(&seed, val, &len);
			classes[dotenv_quoting_for(val, len)]++;
			assert_int_equal(kvmap_set(&m, key, val, len), 0);
		}
		rt_add_neighbours(&seed, &m);
		assert_int_equal(dotenv_render(&m, &out, NULL, NULL), 0);
		rt_check_python_dotenv(&out, seed0, iter);
		if (dotenv_parse(out.data, out.len, &back, &e) < 0)
			fail_msg("seed %u iteration %d: parse failed: %s\n%s",
				 seed0, iter, e.msg, out.data);
		if (!kvmap_equal(&m, &back))
			fail_msg("seed %u iteration %d: round trip differs\n%s",
				 seed0, iter, out.data);
		kvmap_free(&back);
		kvmap_free(&m);
		secbuf_free(&out);
	}
	/* the generator must exercise every quoting class */
	assert_true(classes[DOTENV_SINGLE] > 100);
	assert_true(classes[DOTENV_DOUBLE] > 100);
	assert_true(classes[DOTENV_ESCAPED] > 100);
}

/* Whatever a user wrote and we accepted survives a render/parse cycle. */
static void test_round_trip_parsed(void **state)
{
	static const char text[] =
		"export A = raw value # c\r\n"
		"B=\"it's \\$x \\`y\\` \\\\ \\n\"\n"
		"C='multi\nline $HOME'\n"
		"D=\"C:\\path\"\n";
	struct kvmap m, back;
	struct secbuf out = SECBUF_INIT;

	(void)state;
	parse_ok(text, sizeof(text) - 1, &m);
	assert_int_equal(m.n, 4);
	assert_int_equal(dotenv_render(&m, &out, NULL, NULL), 0);
	parse_ok(out.data, out.len, &back);
	assert_true(kvmap_equal(&m, &back));
	kvmap_free(&m);
	kvmap_free(&back);
	secbuf_free(&out);
}

/* dotenv_edit keeps every byte it need not change */
static void edit_check(const char *text, const char *sets, const char *want)
{
	struct kvmap m = KVMAP_INIT;
	struct secbuf out = SECBUF_INIT;
	struct err e;

	assert_int_equal(dotenv_parse(sets, strlen(sets), &m, &e), 0);
	assert_int_equal(dotenv_edit(text, strlen(text), &m, &out, &e), 0);
	assert_string_equal(out.data, want);
	kvmap_free(&m);
	secbuf_free(&out);
}

static void test_edit(void **state)
{
	const char *file = "#/--header--/\nDOTENV_PUBLIC_KEY=\"02ab\"\n\n# .env\n"
			   "export A=encrypted:AAA # note\r\nB='encrypted:BBB'\n"
			   "C=\"encrypted:CCC\"\nD=plain\n";
	struct kvmap m = KVMAP_INIT;
	struct secbuf out = SECBUF_INIT;
	struct err e;

	(void)state;
	/* nothing changed: the same bytes */
	edit_check(file, "DOTENV_PUBLIC_KEY=02ab\nA=encrypted:AAA\nB=encrypted:BBB\nC=encrypted:CCC\nD=plain\n",
		   file);
	/* changed values in their own quotes, the rest of the line kept */
	edit_check(file, "DOTENV_PUBLIC_KEY=02ab\nA=encrypted:A2\nB=encrypted:B2\nC=encrypted:C2\nD=plain\n",
		   "#/--header--/\nDOTENV_PUBLIC_KEY=\"02ab\"\n\n# .env\n"
		   "export A=encrypted:A2 # note\r\nB='encrypted:B2'\n"
		   "C=\"encrypted:C2\"\nD=plain\n");
	/* removed keys lose their line; new ones are appended as rendered */
	edit_check(file, "DOTENV_PUBLIC_KEY=02ab\nA=encrypted:AAA\nD=plain\nE=encrypted:E\n",
		   "#/--header--/\nDOTENV_PUBLIC_KEY=\"02ab\"\n\n# .env\n"
		   "export A=encrypted:AAA # note\r\nD=plain\nE='encrypted:E'\n");
	/* a value its quotes cannot hold is re-quoted; a last line without
	 * newline gets one before an appended key */
	edit_check("A=x\nB='y'", "A='a b'\nB=\"it's\"\nC=z\n",
		   "A='a b'\nB=\"it's\"\nC='z'\n");
	/* text that does not parse */
	assert_int_equal(dotenv_edit("A='x", 4, &m, &out, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(out.len, 0);
	secbuf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_valid),
		cmocka_unit_test(test_quoting_for),
		cmocka_unit_test(test_render_single),
		cmocka_unit_test(test_render_double),
		cmocka_unit_test(test_render_escaped),
		cmocka_unit_test(test_render_trailing_backslash),
		cmocka_unit_test(test_render_backslash_neighbours),
		cmocka_unit_test(test_render_sorted_lines),
		cmocka_unit_test(test_render_appends),
		cmocka_unit_test(test_render_warnings),
		cmocka_unit_test(test_parse_raw),
		cmocka_unit_test(test_parse_layout),
		cmocka_unit_test(test_parse_single),
		cmocka_unit_test(test_parse_double),
		cmocka_unit_test(test_parse_several),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_parse_reject_keys),
		cmocka_unit_test(test_parse_reject_missing_eq),
		cmocka_unit_test(test_parse_reject_quotes),
		cmocka_unit_test(test_parse_reject_nul),
		cmocka_unit_test(test_parse_reject_duplicate),
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_round_trip_parsed),
		cmocka_unit_test(test_edit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
