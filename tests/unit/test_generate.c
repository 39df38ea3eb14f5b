/* test_generate.c - every generator: length, alphabet, decoding, freshness. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "fs/generate.h"

static void gen_spec_ok(const struct gen_spec *g, struct secbuf *out)
{
	struct err e = { 0 };

	if (gen_value(g, out, &e) != 0)
		fail_msg("gen_value(%d, %u) failed: %s", (int)g->kind, g->n,
			 e.msg);
	assert_non_null(out->data);
	assert_int_equal(out->data[out->len], '\0');
}

static void gen_ok(enum gen_kind kind, unsigned n, struct secbuf *out)
{
	struct gen_spec g = { .kind = kind, .n = n };

	gen_spec_ok(&g, out);
}

static void gen_symbols_ok(unsigned n, struct secbuf *out)
{
	struct gen_spec g = { .kind = GEN_PASSWORD, .n = n,
			      .charset = GEN_CHARSET_ALNUM_SYMBOLS };

	gen_spec_ok(&g, out);
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
#define SYMBOLS "+,-.:=_"
#define DIGITS "0123456789"

static bool has_any(const struct secbuf *b, const char *set)
{
	for (size_t i = 0; i < b->len; i++)
		if (strchr(set, b->data[i]))
			return true;
	return false;
}

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
		{ .kind = GEN_PASSWORD, .n = 0 },
		{ .kind = GEN_PASSWORD, .n = 8, .charset = (enum gen_charset)7 },
		{ .kind = GEN_PASSWORD, .n = GEN_MAX_N + 1,
		  .charset = GEN_CHARSET_ALNUM_SYMBOLS },
		{ .kind = GEN_HEX, .n = 0 },
		{ .kind = GEN_BASE64, .n = GEN_MAX_N + 1 },
		{ .kind = GEN_BASE64URL, .n = 100000 },
		{ .kind = GEN_ARGON2ID, .source = NULL },
		{ .kind = (enum gen_kind)99, .n = 16 },
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
		{ "fernet", 44 }, { "password:20:alnum+symbols", 20 },
		{ "password:20:alnum", 20 }, { "ed25519", 88 },
	};
	struct secbuf b = SECBUF_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gen_spec g;
		struct err e = { 0 };

		assert_int_equal(gen_parse(cases[i].spec, &g, &e), 0);
		assert_false(gen_needs_input(&g));
		assert_int_equal(gen_value(&g, &b, &e), 0);
		assert_int_equal(b.len, cases[i].len);
		gen_spec_free(&g);
	}
	secbuf_free(&b);
}

static void test_password_symbols(void **state)
{
	static const unsigned lens[] = { 1, 2, 3, 4, 5, 8, 32, 4096 };
	struct secbuf b = SECBUF_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		gen_symbols_ok(lens[i], &b);
		assert_int_equal(b.len, lens[i]);
		assert_alphabet(&b, ALNUM SYMBOLS);
		if (lens[i] >= 4) {
			assert_true(has_any(&b, SYMBOLS));
			assert_true(has_any(&b, DIGITS));
		}
	}
	/* the shortest length that promises both, where rejection works hardest */
	for (int round = 0; round < 500; round++) {
		gen_symbols_ok(4, &b);
		assert_int_equal(b.len, 4);
		assert_alphabet(&b, ALNUM SYMBOLS);
		assert_true(has_any(&b, SYMBOLS));
		assert_true(has_any(&b, DIGITS));
	}
	secbuf_free(&b);
}

/* The set is the documented one, and none of it needs quoting care. */
static void test_symbols_documented(void **state)
{
	(void)state;
	assert_string_equal(GEN_SYMBOLS, SYMBOLS);
	for (const char *c = GEN_SYMBOLS; *c; c++)
		assert_null(strchr("'\"\\$` &;|<>(){}*@/?#%!^~", *c));
}

/* 4096 * 20 characters over 69: every one shows up, none dominates. */
static void test_password_symbols_spread(void **state)
{
	unsigned count[256] = { 0 };
	struct secbuf b = SECBUF_INIT;

	(void)state;
	for (int round = 0; round < 20; round++) {
		gen_symbols_ok(GEN_MAX_N, &b);
		for (size_t i = 0; i < b.len; i++)
			count[(unsigned char)b.data[i]]++;
	}
	secbuf_free(&b);
	for (const char *c = ALNUM SYMBOLS; *c; c++) {
		unsigned k = count[(unsigned char)*c];

		/* expected 1187, sigma 34; these bounds are > 8 sigma away */
		assert_in_range(k, 900, 1480);
	}
}

/* Rejection, not patching: a symbol and a digit can be anywhere, and
 * letters too. */
static void test_password_symbols_positions(void **state)
{
	bool sym[8] = { 0 }, digit[8] = { 0 }, letter[8] = { 0 };
	struct secbuf b = SECBUF_INIT;

	(void)state;
	for (int round = 0; round < 2000; round++) {
		gen_symbols_ok(8, &b);
		for (size_t i = 0; i < 8; i++) {
			sym[i] |= strchr(SYMBOLS, b.data[i]) != NULL;
			digit[i] |= strchr(DIGITS, b.data[i]) != NULL;
			letter[i] |= !strchr(SYMBOLS DIGITS, b.data[i]);
		}
	}
	secbuf_free(&b);
	for (size_t i = 0; i < 8; i++) {
		assert_true(sym[i]);
		assert_true(digit[i]);
		assert_true(letter[i]);
	}
}

static void test_ed25519(void **state)
{
	unsigned char sk[GEN_MAX_N], pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char pk2[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk2[crypto_sign_SECRETKEYBYTES];
	unsigned char sig[crypto_sign_BYTES];
	static const unsigned char msg[] = "signed by a generated key";
	struct secbuf b = SECBUF_INIT;
	size_t got = 0;

	(void)state;
	gen_ok(GEN_ED25519, 0, &b);
	assert_int_equal(b.len, 88);
	assert_memory_equal(b.data + 86, "==", 2);
	assert_alphabet(&b, B64);
	assert_int_equal(sodium_base642bin(sk, sizeof(sk), b.data, b.len, NULL,
					   &got, NULL,
					   sodium_base64_VARIANT_ORIGINAL), 0);
	assert_int_equal(got, 64);
	/* seed || public key */
	assert_int_equal(crypto_sign_ed25519_sk_to_pk(pk, sk), 0);
	assert_memory_equal(pk, sk + 32, 32);
	assert_int_equal(crypto_sign_seed_keypair(pk2, sk2, sk), 0);
	assert_memory_equal(sk2, sk, 64);
	/* and it signs */
	assert_int_equal(crypto_sign_detached(sig, NULL, msg, sizeof(msg), sk), 0);
	assert_int_equal(crypto_sign_verify_detached(sig, msg, sizeof(msg), pk), 0);
	secbuf_free(&b);
	assert_fresh(GEN_ED25519, 0);
}

static void parse_spec(const char *s, struct gen_spec *g)
{
	struct err e = { 0 };

	if (gen_parse(s, g, &e) != 0)
		fail_msg("gen_parse(\"%s\") failed: %s", s, e.msg);
}

static void hash_ok(const struct gen_spec *g, const char *in, size_t len,
		    struct secbuf *out)
{
	struct err e = { 0 };

	if (gen_hash_value(g, in, len, out, &e) != 0)
		fail_msg("gen_hash_value failed: %s", e.msg);
	assert_int_equal(out->len, strlen(out->data));
}

static void test_argon2id(void **state)
{
	static const char pw[] = "correct horse battery staple";
	struct secbuf a = SECBUF_INIT, b = SECBUF_INIT;
	struct gen_spec g;

	(void)state;
	parse_spec("argon2id:DB_PASSWORD", &g);
	assert_true(gen_needs_input(&g));
	hash_ok(&g, pw, strlen(pw), &a);
	assert_true(!strncmp(a.data, "$argon2id$v=19$m=65536,t=2,p=1$", 31));
	assert_int_equal(crypto_pwhash_str_verify(a.data, pw, strlen(pw)), 0);
	assert_int_equal(crypto_pwhash_str_verify(a.data, "correct horse", 13), -1);
	assert_int_equal(crypto_pwhash_str_verify(a.data, pw, strlen(pw) - 1), -1);
	/* salted: a second hash differs, and verifies the same input */
	hash_ok(&g, pw, strlen(pw), &b);
	assert_string_not_equal(a.data, b.data);
	assert_int_equal(crypto_pwhash_str_verify(b.data, pw, strlen(pw)), 0);
	/* len is the truth: a NUL byte is part of the input */
	hash_ok(&g, "a\0b", 3, &a);
	assert_int_equal(crypto_pwhash_str_verify(a.data, "a\0b", 3), 0);
	assert_int_equal(crypto_pwhash_str_verify(a.data, "a", 1), -1);
	/* an empty value hashes too */
	hash_ok(&g, NULL, 0, &a);
	assert_int_equal(crypto_pwhash_str_verify(a.data, "", 0), 0);
	secbuf_free(&a);
	secbuf_free(&b);
	gen_spec_free(&g);
	assert_null(g.source);
}

static void test_argon2id_misuse(void **state)
{
	struct gen_spec g, hex = { .kind = GEN_HEX, .n = 16 };
	struct secbuf b = SECBUF_INIT;
	struct err e = { 0 };

	(void)state;
	parse_spec("argon2id:API_TOKEN", &g);
	assert_int_equal(secbuf_puts(&b, "keep"), 0);
	/* gen_value cannot make it up */
	assert_int_equal(gen_value(&g, &b, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "needs the value of API_TOKEN"));
	/* gen_hash_value is for argon2id only */
	err_clear(&e);
	assert_false(gen_needs_input(&hex));
	assert_int_equal(gen_hash_value(&hex, "x", 1, &b, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "bad generator spec"));
	err_clear(&e);
	assert_int_equal(gen_hash_value(&g, NULL, 3, &b, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_string_equal(b.data, "keep");
	secbuf_free(&b);
	gen_spec_free(&g);
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
		cmocka_unit_test(test_password_symbols),
		cmocka_unit_test(test_symbols_documented),
		cmocka_unit_test(test_password_symbols_spread),
		cmocka_unit_test(test_password_symbols_positions),
		cmocka_unit_test(test_ed25519),
		cmocka_unit_test(test_argon2id),
		cmocka_unit_test(test_argon2id_misuse),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
