/* test_ref.c - reference and generate: spec parsing, formatting, comparing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/ref.h"

/* Parse s, which must succeed. */
static void parse_ok(const char *s, struct ref *r)
{
	struct err e = { 0 };

	if (ref_parse(s, r, &e) != 0)
		fail_msg("ref_parse(\"%s\") failed: %s", s, e.msg);
}

static void assert_streq_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void check_provider(const char *s, const char *prov, const char *loc,
			   const char *params, const char *field)
{
	struct ref r;

	parse_ok(s, &r);
	assert_int_equal(r.kind, REF_PROVIDER);
	assert_string_equal(r.provider, prov);
	assert_string_equal(r.locator, loc);
	assert_streq_or_null(r.params, params);
	assert_streq_or_null(r.field, field);
	ref_free(&r);
}

static void test_good_refs(void **state)
{
	(void)state;
	check_provider("vault://secret/app/db", "vault", "secret/app/db", NULL, NULL);
	check_provider("vault://secret/db#password", "vault", "secret/db", NULL,
		       "password");
	check_provider("vault://secret/db?mount=kv/team&kv=2#user", "vault",
		       "secret/db", "mount=kv/team&kv=2", "user");
	check_provider("awssm://arn:aws:secretsmanager:eu-west-1:1:secret:x-AbC?stage=AWSCURRENT",
		       "awssm", "arn:aws:secretsmanager:eu-west-1:1:secret:x-AbC",
		       "stage=AWSCURRENT", NULL);
	check_provider("op://Private/item/section/field", "op",
		       "Private/item/section/field", NULL, NULL);
	check_provider("my-vault.2+x://a", "my-vault.2+x", "a", NULL, NULL);
	/* split at the first "://", '#', then '?' before the '#' */
	check_provider("x://a://b", "x", "a://b", NULL, NULL);
	check_provider("x://a?p=1?q=2", "x", "a", "p=1?q=2", NULL);
	check_provider("x://a#b?c", "x", "a", NULL, "b?c");
	check_provider("x://a#b#c", "x", "a", NULL, "b#c");
	check_provider("x://a#/data/key~1x", "x", "a", NULL, "/data/key~1x");
	/* empty params mean none */
	check_provider("x://a?", "x", "a", NULL, NULL);
	check_provider("x://a?#f", "x", "a", NULL, "f");
	/* an empty locator with params: the provider says what it means
	 * (Azure's per-secret layout) */
	check_provider("azure://?prefix=billing-", "azure", "", "prefix=billing-", NULL);
	check_provider("x://?p=1#k", "x", "", "p=1", "k");
	/* and without: the whole store (secrets://, environ://); a type
	 * without check() refuses it when the config loads */
	check_provider("x://", "x", "", NULL, NULL);
	check_provider("x://?", "x", "", NULL, NULL);
	check_provider("x://#f", "x", "", NULL, "f");
	check_provider("environ://DB_PASSWORD", "environ", "DB_PASSWORD", NULL, NULL);
	/* non-ASCII bytes are taken as they are */
	check_provider("x://caf\xc3\xa9", "x", "caf\xc3\xa9", NULL, NULL);
}

static void test_percent_decoding(void **state)
{
	(void)state;
	check_provider("x://a%23b%3Fc%25d", "x", "a#b?c%d", NULL, NULL);
	check_provider("x://a%2fb%2Fc", "x", "a/b/c", NULL, NULL);
	check_provider("x://my%20secret#my%20key", "x", "my secret", NULL, "my key");
	check_provider("x://%e2%82%AC#%C3%a9", "x", "\xe2\x82\xac", NULL, "\xc3\xa9");
	/* params stay raw */
	check_provider("x://a?v=%41#%41", "x", "a", "v=%41", "A");
	/* a decoded '#' in the field is just a byte */
	check_provider("x://a#k%23v", "x", "a", NULL, "k#v");
}

static void check_bad(const char *s, const char *substr)
{
	struct ref r;
	struct err e = { 0 };

	if (ref_parse(s, &r, &e) == 0)
		fail_msg("ref_parse(\"%s\") succeeded", s ? s : "(null)");
	assert_int_equal(e.code, ERR_INVALID);
	if (!strstr(e.msg, substr))
		fail_msg("ref_parse(\"%s\"): message \"%s\" lacks \"%s\"",
			 s ? s : "(null)", e.msg, substr);
	/* nothing is left allocated, and freeing is still fine */
	assert_null(r.provider);
	assert_null(r.locator);
	assert_null(r.params);
	assert_null(r.field);
	assert_null(r.gen.source);
	ref_free(&r);
}

static void test_bad_refs(void **state)
{
	char *huge;

	(void)state;
	check_bad(NULL, "empty reference");
	check_bad("", "empty reference");
	check_bad("secret/db", "expected NAME://locator");
	check_bad("vault:/secret/db", "\"vault:/secret/db\"");
	check_bad("://secret", "no provider name");
	check_bad("1vault://a", "bad provider name \"1vault\"");
	check_bad("va_ult://a", "bad provider name");
	check_bad("generate://a", "\"generate\" is not a provider");
	check_bad("GENERATE://a", "generate:KIND");
	check_bad("vault://a#", "empty field");
	check_bad("vault://a?k=v#", "empty field");
	check_bad("vault://a b", "whitespace or control character at byte 10");
	check_bad(" vault://a", "whitespace");
	check_bad("vault://a\t", "whitespace");
	check_bad("vault://a\n", "control character");
	check_bad("vault://a#b\x7f", "control character");
	check_bad("vault://a%", "not followed by two hex digits");
	check_bad("vault://a%4", "'%' at byte 2 of the locator");
	check_bad("vault://a%zz", "write %25 for a literal '%'");
	check_bad("vault://a#b%g0", "of the field");
	check_bad("vault://a%00b", "%00 (a NUL byte) in the locator");
	check_bad("vault://a#%00", "NUL byte) in the field");

	huge = malloc(5000);
	assert_non_null(huge);
	memcpy(huge, "vault://", 8);
	memset(huge + 8, 'a', 5000 - 9);
	huge[4999] = '\0';
	check_bad(huge, "longer than 4096 bytes");
	/* the quote is cut short */
	{
		struct ref r;
		struct err e = { 0 };

		assert_int_equal(ref_parse(huge, &r, &e), -1);
		assert_non_null(strstr(e.msg, "...\""));
		assert_true(strlen(e.msg) < 300);
	}
	free(huge);
}

static void test_bad_quote_escaped(void **state)
{
	struct ref r;
	struct err e = { 0 };

	(void)state;
	/* a control byte is quoted escaped, never raw */
	assert_int_equal(ref_parse("x://a\nb\"", &r, &e), -1);
	assert_null(strchr(e.msg, '\n'));
	assert_non_null(strstr(e.msg, "x://a\\x0ab\\x22"));
}

static void check_gen(const char *s, enum gen_kind kind, unsigned n)
{
	struct ref r;

	parse_ok(s, &r);
	assert_int_equal(r.kind, REF_GENERATE);
	assert_int_equal(r.gen.kind, kind);
	assert_int_equal(r.gen.n, n);
	assert_null(r.provider);
	ref_free(&r);
}

static void test_generate_refs(void **state)
{
	(void)state;
	check_gen("generate:password", GEN_PASSWORD, 32);
	check_gen("generate:password:12", GEN_PASSWORD, 12);
	check_gen("generate:password:1", GEN_PASSWORD, 1);
	check_gen("generate:password:4096", GEN_PASSWORD, 4096);
	check_gen("generate:hex:32", GEN_HEX, 32);
	check_gen("generate:base64:16", GEN_BASE64, 16);
	check_gen("generate:base64url:24", GEN_BASE64URL, 24);
	check_gen("generate:uuid", GEN_UUID, 0);
	check_gen("generate:fernet", GEN_FERNET, 0);
	check_gen("generate:ed25519", GEN_ED25519, 0);
}

static void check_password(const char *s, unsigned n, enum gen_charset cs)
{
	struct ref r;

	parse_ok(s, &r);
	assert_int_equal(r.kind, REF_GENERATE);
	assert_int_equal(r.gen.kind, GEN_PASSWORD);
	assert_int_equal(r.gen.n, n);
	assert_int_equal(r.gen.charset, cs);
	assert_null(r.gen.source);
	ref_free(&r);
}

static void check_argon2id(const char *s, const char *source)
{
	struct ref r;

	parse_ok(s, &r);
	assert_int_equal(r.kind, REF_GENERATE);
	assert_int_equal(r.gen.kind, GEN_ARGON2ID);
	assert_int_equal(r.gen.n, 0);
	assert_string_equal(r.gen.source, source);
	ref_free(&r);
	assert_null(r.gen.source);
}

static void test_generate_new_kinds(void **state)
{
	(void)state;
	check_password("generate:password", 32, GEN_CHARSET_ALNUM);
	check_password("generate:password:12", 12, GEN_CHARSET_ALNUM);
	check_password("generate:password:12:alnum", 12, GEN_CHARSET_ALNUM);
	check_password("generate:password:24:alnum+symbols", 24,
		       GEN_CHARSET_ALNUM_SYMBOLS);
	check_password("generate:password:1:alnum+symbols", 1,
		       GEN_CHARSET_ALNUM_SYMBOLS);
	check_password("generate:password:4096:alnum+symbols", 4096,
		       GEN_CHARSET_ALNUM_SYMBOLS);
	check_argon2id("generate:argon2id:DB_PASSWORD", "DB_PASSWORD");
	check_argon2id("generate:argon2id:_", "_");
	check_argon2id("generate:argon2id:a9_Z", "a9_Z");
}

static void check_bad_gen(const char *spec, const char *substr)
{
	struct gen_spec g;
	struct err e = { 0 };
	char full[256];
	struct ref r;

	g.source = (char *)"not freed, only overwritten";
	if (gen_parse(spec, &g, &e) == 0)
		fail_msg("gen_parse(\"%s\") succeeded", spec);
	assert_null(g.source);	/* nothing left allocated */
	gen_spec_free(&g);
	assert_int_equal(e.code, ERR_INVALID);
	if (!strstr(e.msg, substr))
		fail_msg("gen_parse(\"%s\"): message \"%s\" lacks \"%s\"", spec,
			 e.msg, substr);
	/* the same through ref_parse */
	snprintf(full, sizeof(full), "generate:%s", spec);
	err_clear(&e);
	assert_int_equal(ref_parse(full, &r, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, substr));
	ref_free(&r);
}

static void test_bad_generate(void **state)
{
	(void)state;
	check_bad_gen("", "unknown kind");
	check_bad_gen("pasword", "\"generate:pasword\": unknown kind");
	check_bad_gen("Password", "unknown kind");
	check_bad_gen("hex", "generate:hex needs a byte count, e.g. generate:hex:32");
	check_bad_gen("base64", "generate:base64 needs a byte count");
	check_bad_gen("base64url", "generate:base64url needs a byte count");
	check_bad_gen("hex:", "nothing after ':'");
	check_bad_gen("password:", "expected a count");
	check_bad_gen("hex:0", "at least 1");
	check_bad_gen("hex:000", "at least 1");
	check_bad_gen("hex:4097", "more than 4096");
	check_bad_gen("password:99999999999999999999999", "more than 4096");
	check_bad_gen("hex:18446744073709551621", "more than 4096");	/* 2^64+5 */
	check_bad_gen("hex:-1", "not a decimal number");
	check_bad_gen("hex:+1", "not a decimal number");
	check_bad_gen("hex:1x", "not a decimal number");
	check_bad_gen("hex:0x10", "not a decimal number");
	check_bad_gen("hex:16:2", "extra text after the count");
	check_bad_gen("uuid:4", "generate:uuid takes no count");
	check_bad_gen("fernet:32", "generate:fernet takes no count");
	check_bad_gen("uuid:", "takes no count");
	/* password charsets */
	check_bad_gen("password:16:", "unknown character set after the length, expected alnum or alnum+symbols");
	check_bad_gen("password:16:symbols", "unknown character set");
	check_bad_gen("password:16:ALNUM", "unknown character set");
	check_bad_gen("password:16:alnum+", "unknown character set");
	check_bad_gen("password:16:alnum+symbols:x", "unknown character set");
	check_bad_gen("password::alnum+symbols", "no length before the character set");
	check_bad_gen("password:alnum+symbols", "not a decimal number");
	check_bad_gen("password:0:alnum+symbols", "at least 1");
	check_bad_gen("password:4097:alnum", "more than 4096");
	check_bad_gen("password:1x:alnum", "not a decimal number");
	check_bad_gen("hex:16:alnum", "extra text after the count");
	/* ed25519 */
	check_bad_gen("ed25519:32", "generate:ed25519 takes no count");
	check_bad_gen("ed25519:", "takes no count");
	check_bad_gen("Ed25519", "unknown kind, expected password, hex, base64, base64url, uuid, fernet, ed25519, argon2id or dotenvx");
	/* argon2id */
	check_bad_gen("argon2id", "generate:argon2id needs the key whose value it hashes, e.g. generate:argon2id:PASSWORD");
	check_bad_gen("argon2id:", "needs the key whose value it hashes");
	check_bad_gen("argon2id:1KEY", "bad key name after argon2id: ([A-Za-z_][A-Za-z0-9_]*)");
	check_bad_gen("argon2id:A:B", "bad key name");
	check_bad_gen("argon2id:A-B", "bad key name");
	check_bad_gen("argon2id:A%42", "bad key name");
	check_bad_gen("argon2id:caf\xc3\xa9", "bad key name");
	check_bad_gen("argon2:KEY", "unknown kind");
}

/* ref_parse(ref_format(r)) == r, and the text is canonical. */
static void check_round_trip(const char *in, const char *canonical)
{
	struct ref a, b;
	char buf[512], small[8];
	int n;

	parse_ok(in, &a);
	n = ref_format(&a, buf, sizeof(buf));
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	assert_int_equal((size_t)n, strlen(buf));
	assert_string_equal(buf, canonical);
	/* snprintf-like: a short buffer gets a cut, terminated prefix */
	assert_int_equal(ref_format(&a, small, sizeof(small)), n);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, canonical, sizeof(small) - 1);
	assert_int_equal(ref_format(&a, NULL, 0), n);

	parse_ok(buf, &b);
	assert_int_equal(a.kind, b.kind);
	if (a.kind == REF_GENERATE) {
		assert_int_equal(a.gen.kind, b.gen.kind);
		assert_int_equal(a.gen.n, b.gen.n);
		assert_int_equal(a.gen.charset, b.gen.charset);
		assert_streq_or_null(a.gen.source, b.gen.source);
	} else {
		assert_string_equal(a.provider, b.provider);
		assert_string_equal(a.locator, b.locator);
		assert_streq_or_null(a.params, b.params);
		assert_streq_or_null(a.field, b.field);
		assert_true(ref_same_entry(&a, &b));
	}
	ref_free(&a);
	ref_free(&b);
}

static void test_format_round_trip(void **state)
{
	(void)state;
	check_round_trip("vault://secret/app/db", "vault://secret/app/db");
	check_round_trip("vault://secret/db?kv=2#password",
			 "vault://secret/db?kv=2#password");
	check_round_trip("x://a%23b%3fc%25d#k%23%3F%25", "x://a%23b%3Fc%25d#k%23%3F%25");
	check_round_trip("x://a%2Fb", "x://a/b");
	check_round_trip("x://%41%62c", "x://Abc");
	check_round_trip("x://my%20secret%09x#f%0a", "x://my%20secret%09x#f%0A");
	check_round_trip("x://caf\xc3\xa9#\xc3\xa9", "x://caf%C3%A9#%C3%A9");
	check_round_trip("x://a?#f", "x://a#f");
	check_round_trip("x://a#b#c?d", "x://a#b%23c%3Fd");
	check_round_trip("x://a?p=%41&q", "x://a?p=%41&q");
	check_round_trip("generate:password", "generate:password:32");
	check_round_trip("generate:password:8", "generate:password:8");
	check_round_trip("generate:hex:32", "generate:hex:32");
	check_round_trip("generate:hex:007", "generate:hex:7");
	check_round_trip("generate:base64:16", "generate:base64:16");
	check_round_trip("generate:base64url:4096", "generate:base64url:4096");
	check_round_trip("generate:uuid", "generate:uuid");
	check_round_trip("generate:fernet", "generate:fernet");
	check_round_trip("generate:password:16:alnum", "generate:password:16");
	check_round_trip("generate:password:016:alnum+symbols",
			 "generate:password:16:alnum+symbols");
	check_round_trip("generate:password:4096:alnum+symbols",
			 "generate:password:4096:alnum+symbols");
	check_round_trip("generate:ed25519", "generate:ed25519");
	check_round_trip("generate:argon2id:DB_PASSWORD",
			 "generate:argon2id:DB_PASSWORD");
}

static void test_format_built_ref(void **state)
{
	char prov[] = "x", loc[] = "a b%c?d#e/f\x01", field[] = "k?#";
	struct ref r = { 0 };
	char buf[128];
	int n;

	(void)state;
	r.kind = REF_PROVIDER;
	r.provider = prov;
	r.locator = loc;
	r.field = field;
	n = ref_format(&r, buf, sizeof(buf));
	assert_int_equal(n, (int)strlen(buf));
	assert_string_equal(buf, "x://a%20b%25c%3Fd%23e/f%01#k%3F%23");
	r.locator = NULL;
	assert_int_equal(ref_format(&r, buf, sizeof(buf)), -1);
}

static void test_gen_format(void **state)
{
	struct gen_spec g = { .kind = GEN_PASSWORD, .n = 32 };
	char buf[32], src[] = "SOURCE_KEY", bad[] = "a-b";

	(void)state;
	assert_int_equal(gen_format(&g, buf, sizeof(buf)), 11);
	assert_string_equal(buf, "password:32");
	g.charset = GEN_CHARSET_ALNUM_SYMBOLS;
	assert_int_equal(gen_format(&g, buf, sizeof(buf)), 25);
	assert_string_equal(buf, "password:32:alnum+symbols");
	g.charset = (enum gen_charset)5;
	assert_int_equal(gen_format(&g, buf, sizeof(buf)), -1);
	g = (struct gen_spec){ .kind = GEN_UUID };
	assert_int_equal(gen_format(&g, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "uuid");
	g = (struct gen_spec){ .kind = GEN_BASE64URL, .n = 7 };
	assert_int_equal(gen_format(&g, buf, sizeof(buf)), 11);
	assert_string_equal(buf, "base64url:7");
	g = (struct gen_spec){ .kind = GEN_ED25519 };
	assert_int_equal(gen_format(&g, buf, sizeof(buf)), 7);
	assert_string_equal(buf, "ed25519");
	g = (struct gen_spec){ .kind = GEN_ARGON2ID, .source = src };
	assert_int_equal(gen_format(&g, buf, sizeof(buf)), 19);
	assert_string_equal(buf, "argon2id:SOURCE_KEY");
	g.source = bad;		/* would not parse back */
	assert_int_equal(gen_format(&g, buf, sizeof(buf)), -1);
	g.source = NULL;
	assert_int_equal(gen_format(&g, buf, sizeof(buf)), -1);
	g.kind = (enum gen_kind)42;
	assert_int_equal(gen_format(&g, buf, sizeof(buf)), -1);
}

static void test_same_entry(void **state)
{
	struct ref a, b, c, d, f, g, p;

	(void)state;
	parse_ok("vault://secret/db#user", &a);
	parse_ok("vault://secret/db#password", &b);
	parse_ok("vault://secret/db?kv=2#user", &c);
	parse_ok("vault2://secret/db", &d);
	parse_ok("vault://secret/other", &f);
	parse_ok("generate:password", &g);
	parse_ok("vault://secret%2Fdb?", &p);

	assert_true(ref_same_entry(&a, &b));	/* field does not matter */
	assert_true(ref_same_entry(&a, &p));	/* decoded, empty params */
	assert_true(ref_same_entry(&a, &a));
	assert_false(ref_same_entry(&a, &c));	/* params differ */
	assert_false(ref_same_entry(&c, &a));
	assert_false(ref_same_entry(&a, &d));	/* provider differs */
	assert_false(ref_same_entry(&a, &f));	/* locator differs */
	assert_false(ref_same_entry(&a, &g));
	assert_false(ref_same_entry(&g, &g));	/* generated: no entry */

	ref_free(&a);
	ref_free(&b);
	ref_free(&c);
	ref_free(&d);
	ref_free(&f);
	ref_free(&g);
	ref_free(&p);
}

static void test_free_twice(void **state)
{
	struct ref r = { 0 };
	struct ref zero = { 0 };

	(void)state;
	ref_free(&r);
	parse_ok("x://a?b#c", &r);
	ref_free(&r);
	assert_memory_equal(&r, &zero, sizeof(r));
	ref_free(&r);
	assert_memory_equal(&r, &zero, sizeof(r));
	parse_ok("generate:argon2id:KEY", &r);
	ref_free(&r);
	assert_memory_equal(&r, &zero, sizeof(r));
	ref_free(&r);
}

static void test_gen_spec_free(void **state)
{
	struct gen_spec g = { 0 }, zero = { 0 };
	struct err e = { 0 };

	(void)state;
	gen_spec_free(&g);
	assert_memory_equal(&g, &zero, sizeof(g));
	assert_int_equal(gen_parse("argon2id:K", &g, &e), 0);
	assert_non_null(g.source);
	gen_spec_free(&g);
	assert_memory_equal(&g, &zero, sizeof(g));
	assert_int_equal(gen_parse("argon2id:-", &g, &e), -1);
	gen_spec_free(&g);
	assert_memory_equal(&g, &zero, sizeof(g));
}

static void test_scheme_valid(void **state)
{
	(void)state;
	assert_true(ref_scheme_valid("vault"));
	assert_true(ref_scheme_valid("V"));
	assert_true(ref_scheme_valid("aws-sm.eu+1"));
	assert_true(ref_scheme_valid("generated"));
	assert_true(ref_scheme_valid("gen"));
	assert_false(ref_scheme_valid(NULL));
	assert_false(ref_scheme_valid(""));
	assert_false(ref_scheme_valid("1vault"));
	assert_false(ref_scheme_valid("-x"));
	assert_false(ref_scheme_valid("a_b"));
	assert_false(ref_scheme_valid("a b"));
	assert_false(ref_scheme_valid("a:b"));
	assert_false(ref_scheme_valid("caf\xc3\xa9"));
	assert_false(ref_scheme_valid("generate"));
	assert_false(ref_scheme_valid("Generate"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_refs),
		cmocka_unit_test(test_percent_decoding),
		cmocka_unit_test(test_bad_refs),
		cmocka_unit_test(test_bad_quote_escaped),
		cmocka_unit_test(test_generate_refs),
		cmocka_unit_test(test_generate_new_kinds),
		cmocka_unit_test(test_bad_generate),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_format_built_ref),
		cmocka_unit_test(test_gen_format),
		cmocka_unit_test(test_same_entry),
		cmocka_unit_test(test_free_twice),
		cmocka_unit_test(test_gen_spec_free),
		cmocka_unit_test(test_scheme_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
