/* test_generate.c - every generator: length, alphabet, decoding, freshness. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "fs/generate.h"

static void gen_ok(enum gen_kind kind, unsigned n, struct secbuf *out)
{
	struct gen_spec g = { kind, n };
	struct err e = { 0 };

	if (gen_value(&g, out, &e) != 0)
		fail_msg("gen_value(%d, %u) failed: %s", (int)kind, n, e.msg);
	assert_non_null(out->data);
	assert_int_equal(out->data[out->len], '\0');
}

/* Every byte of b is in the set. */
static void assert_alphabet(const struct secbuf *b, const char *set)
{
	for (size_t i = 0; i < b->len; i++)
		if (!b->data[i] || !strchr(set, b->data[i]))
			fail_msg("byte %zu (0x%02x) outside the alphabet", i,
				 (unsigned char)b->data[i]);
}

/* Two values of the same spec differ (2^-64 or less to collide here). */
static void assert_fresh(enum gen_kind kind, unsigned n)
{
	struct secbuf a = SECBUF_INIT, b = SECBUF_INIT;

	gen_ok(kind, n, &a);
	gen_ok(kind, n, &b);
	assert_int_equal(a.len, b.len);
	assert_memory_not_equal(a.data, b.data, a.len);
	secbuf_free(&a);
	secbuf_free(&b);
}

/* b decodes (variant) back to exactly n bytes. */
static void assert_decodes(const struct secbuf *b, int variant, size_t n)
{
	unsigned char bin[GEN_MAX_N + 8];
	size_t got = 0;

	assert_int_equal(sodium_base642bin(bin, sizeof(bin), b->data, b->len,
					   NULL, &got, NULL, variant), 0);
	assert_int_equal(got, n);
}

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#define B64 ALNUM "+/="
#define B64URL ALNUM "-_"

static void test_password(void **state)
{
	static const unsigned lens[] = { 1, 8, 32, 4096 };
	struct secbuf b = SECBUF_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		gen_ok(GEN_PASSWORD, lens[i], &b);
		assert_int_equal(b.len, lens[i]);
		assert_alphabet(&b, ALNUM);
	}
	secbuf_free(&b);
	assert_fresh(GEN_PASSWORD, 32);
}

/* 4096 * 20 characters: every one of the 62 shows up, none dominates. */
static void test_password_spread(void **state)
{
	unsigned count[256] = { 0 };
	struct secbuf b = SECBUF_INIT;
	unsigned total = 0;

	(void)state;
	for (int round = 0; round < 20; round++) {
		gen_ok(GEN_PASSWORD, GEN_MAX_N, &b);
		for (size_t i = 0; i < b.len; i++)
			count[(unsigned char)b.data[i]]++;
		total += (unsigned)b.len;
	}
	secbuf_free(&b);
	for (const char *c = ALNUM; *c; c++) {
		unsigned k = count[(unsigned char)*c];

		/* expected 1321; these bounds are > 9 sigma away */
		assert_in_range(k, 1000, 1650);
	}
	assert_int_equal(total, 20 * GEN_MAX_N);
}

static void test_hex(void **state)
{
	static const unsigned lens[] = { 1, 16, 32, 4096 };
	struct secbuf b = SECBUF_INIT;
	unsigned char bin[GEN_MAX_N];
	size_t got;

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		gen_ok(GEN_HEX, lens[i], &b);
		assert_int_equal(b.len, 2 * lens[i]);
		assert_alphabet(&b, "0123456789abcdef");
		assert_int_equal(sodium_hex2bin(bin, sizeof(bin), b.data, b.len,
						NULL, &got, NULL), 0);
		assert_int_equal(got, lens[i]);
	}
	secbuf_free(&b);
	assert_fresh(GEN_HEX, 16);
}

static void test_base64(void **state)
{
	static const unsigned lens[] = { 1, 2, 3, 16, 32, 4096 };
	struct secbuf b = SECBUF_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		gen_ok(GEN_BASE64, lens[i], &b);
		assert_int_equal(b.len, (lens[i] + 2) / 3 * 4);	/* padded */
		assert_alphabet(&b, B64);
		assert_decodes(&b, sodium_base64_VARIANT_ORIGINAL, lens[i]);
	}
	gen_ok(GEN_BASE64, 1, &b);
	assert_memory_equal(b.data + 2, "==", 2);
	secbuf_free(&b);
	assert_fresh(GEN_BASE64, 16);
}

static void test_base64url(void **state)
{
	static const unsigned lens[] = { 1, 2, 3, 16, 32, 4096 };
	struct secbuf b = SECBUF_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		gen_ok(GEN_BASE64URL, lens[i], &b);
		assert_int_equal(b.len, (lens[i] * 4 + 2) / 3);	/* unpadded */
		assert_alphabet(&b, B64URL);
		assert_decodes(&b, sodium_base64_VARIANT_URLSAFE_NO_PADDING,
			       lens[i]);
	}
	secbuf_free(&b);
	assert_fresh(GEN_BASE64URL, 16);
}

static void test_uuid(void **state)
{
	struct secbuf b = SECBUF_INIT;

	(void)state;
	for (int round = 0; round < 64; round++) {
		gen_ok(GEN_UUID, 0, &b);
		assert_int_equal(b.len, 36);
		for (size_t i = 0; i < b.len; i++) {
			bool dash = i == 8 || i == 13 || i == 18 || i == 23;

			if (dash)
				assert_int_equal(b.data[i], '-');
			else
				assert_non_null(strchr("0123456789abcdef", b.data[i]));
		}
		assert_int_equal(b.data[14], '4');	/* version */
		assert_non_null(strchr("89ab", b.data[19]));	/* variant 10 */
	}
	secbuf_free(&b);
	assert_fresh(GEN_UUID, 0);
}

static void test_fernet(void **state)
{
	struct secbuf b = SECBUF_INIT;

	(void)state;
	gen_ok(GEN_FERNET, 0, &b);
	assert_int_equal(b.len, 44);
	assert_int_equal(b.data[43], '=');
	assert_alphabet(&b, B64URL "=");
	assert_decodes(&b, sodium_base64_VARIANT_URLSAFE, 32);
	secbuf_free(&b);
	assert_fresh(GEN_FERNET, 0);
}

/* Old contents are replaced, not appended to; the buffer is reused. */
static void test_replaces(void **state)
{
	struct secbuf b = SECBUF_INIT;

	(void)state;
	assert_int_equal(secbuf_puts(&b, "old value that is long"), 0);
	gen_ok(GEN_HEX, 2, &b);
	assert_int_equal(b.len, 4);
	assert_int_equal(strlen(b.data), 4);
	/* the old value's tail is wiped, not left behind the NUL */
	for (size_t i = b.len; i < b.cap; i++)
		assert_int_equal(b.data[i], 0);
	gen_ok(GEN_PASSWORD, 100, &b);
	assert_int_equal(b.len, 100);
	gen_ok(GEN_UUID, 0, &b);
	assert_int_equal(b.len, 36);
	assert_int_equal(strlen(b.data), 36);
	secbuf_free(&b);
}

static void test_bad_spec(void **state)
{
	static const struct gen_spec bad[] = {
		{ GEN_PASSWORD, 0 },
		{ GEN_HEX, 0 },
		{ GEN_BASE64, GEN_MAX_N + 1 },
		{ GEN_BASE64URL, 100000 },
		{ (enum gen_kind)99, 16 },
	};
	struct secbuf b = SECBUF_INIT;

	(void)state;
	assert_int_equal(secbuf_puts(&b, "keep"), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err e = { 0 };

		assert_int_equal(gen_value(&bad[i], &b, &e), -1);
		assert_int_equal(e.code, ERR_INVALID);
		assert_non_null(strstr(e.msg, "bad generator spec"));
	}
	/* rejected before touching the buffer */
	assert_string_equal(b.data, "keep");
	secbuf_free(&b);
}

/* gen_parse output feeds gen_value directly. */
static void test_parse_then_generate(void **state)
{
	static const struct {
		const char *spec;
		size_t len;
	} cases[] = {
		{ "password", 32 }, { "password:20", 20 }, { "hex:32", 64 },
		{ "base64:32", 44 }, { "base64url:32", 43 }, { "uuid", 36 },
		{ "fernet", 44 },
	};
	struct secbuf b = SECBUF_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gen_spec g;
		struct err e = { 0 };

		assert_int_equal(gen_parse(cases[i].spec, &g, &e), 0);
		assert_int_equal(gen_value(&g, &b, &e), 0);
		assert_int_equal(b.len, cases[i].len);
	}
	secbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_password),
		cmocka_unit_test(test_password_spread),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_base64url),
		cmocka_unit_test(test_uuid),
		cmocka_unit_test(test_fernet),
		cmocka_unit_test(test_replaces),
		cmocka_unit_test(test_bad_spec),
		cmocka_unit_test(test_parse_then_generate),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
