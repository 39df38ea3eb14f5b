/* test_dotenvx.c - unit tests for the dotenvx value codec (base/dotenvx.c),
 * with a value and key pair the dotenvx CLI 2.38 made (`dotenvx encrypt`).
 * The integration tests (test_dotenvx.py) take the CLI both ways.
 * Run: build/tests/test_dotenvx
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "base/dotenvx.h"

/* .env.keys and .env.production of one `dotenvx encrypt` run */
#define CLI_PRIVATE "321a41610cecfc390e19c42dd0b9b92b12c70bc40f6f04aab0ee6e4e014a5996"
#define CLI_PUBLIC "02ccd56d34afdfed99db51215b6b07bc2c70ebe0d92ce50bad780ee91323ad804f"
#define CLI_HELLO "encrypted:BPbSdqVQcJMdsYbVF0D2BFgnZhBCx7MdikQm5bo6hSr27Ts3pvtR1EFbkKvx51L6TamiB5As6of6gtezJMR8vHBcGlBPOQMA2RO9vOuumDS8XBTvHPzOvFQ8JjH8PVXdjvIxfO1I"
#define CLI_MULTI "encrypted:BCU+g8Vb64xhXx6+vrXWxLESE7CGUd03rxlxbTnyYu+ti+MDzJ/6g8ndbSY4dIn9QDR7pHAI22Rzws3Qiy3KjwD4LhAJdHIpVb4n3vNLnAMqsyxWiUJw98VY+WlfPg/plmD8sQ=="
/* another key pair of the same run (.env) */
#define OTHER_PRIVATE "55c98de0daef3c56454c2e360f3b3c6197d21221a343f84e990ed27313f86369"
#define OTHER_PUBLIC "0375b39309fc9a6e8278388ee325d8b00873529c5a70b4a16a1d03eb7a1b474827"

static struct dotenvx_key key_of(const char *hex)
{
	struct dotenvx_key k;
	struct err e;

	assert_int_equal(dotenvx_key_parse(hex, strlen(hex), &k, &e), 0);
	return k;
}

static void test_cli_vector(void **state)
{
	struct dotenvx_key k = key_of(CLI_PRIVATE);
	struct secbuf out = SECBUF_INIT;
	struct err e;

	(void)state;
	assert_int_equal(dotenvx_decrypt(&k, CLI_HELLO, strlen(CLI_HELLO), &out, &e), 0);
	assert_string_equal(out.data, "world");
	assert_int_equal(dotenvx_decrypt(&k, CLI_MULTI, strlen(CLI_MULTI), &out, &e), 0);
	assert_int_equal(out.len, 3);
	assert_memory_equal(out.data, "a\nb", 3);
	secbuf_free(&out);
	dotenvx_key_wipe(&k);
}

static void test_public_keys(void **state)
{
	struct dotenvx_key k = key_of(CLI_PRIVATE), o = key_of(OTHER_PRIVATE);
	char hex[DOTENVX_PUBLIC_HEX_LEN + 1];
	struct err e;

	(void)state;
	assert_int_equal(dotenvx_public_of(&k, hex, &e), 0);
	assert_string_equal(hex, CLI_PUBLIC);
	assert_int_equal(dotenvx_public_of(&o, hex, &e), 0);
	assert_string_equal(hex, OTHER_PUBLIC);	/* 03: odd y */
	assert_true(dotenvx_public_matches(&k, CLI_PUBLIC, strlen(CLI_PUBLIC)));
	assert_false(dotenvx_public_matches(&k, OTHER_PUBLIC, strlen(OTHER_PUBLIC)));
	assert_false(dotenvx_public_matches(&k, "02zz", 4));
	/* upper case is the same key */
	assert_true(dotenvx_public_matches(&k, "02CCD56D34AFDFED99DB51215B6B07BC2C70EBE0D92CE50BAD780EE91323AD804F", 66));
	dotenvx_key_wipe(&k);
	dotenvx_key_wipe(&o);
}

static void test_round_trip(void **state)
{
	static char big[64 * 1024];
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 1000, sizeof(big) };
	struct dotenvx_key k = key_of(OTHER_PRIVATE);
	struct secbuf ct = SECBUF_INIT, ct2 = SECBUF_INIT, out = SECBUF_INIT;
	struct err e;

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		assert_int_equal(dotenvx_encrypt(OTHER_PUBLIC, strlen(OTHER_PUBLIC),
						 big, sizes[i], &ct, &e), 0);
		assert_true(dotenvx_is_encrypted(ct.data, ct.len));
		assert_int_equal(dotenvx_decrypt(&k, ct.data, ct.len, &out, &e), 0);
		assert_int_equal(out.len, sizes[i]);
		assert_memory_equal(out.data, big, sizes[i]);
	}
	/* a fresh ephemeral key and nonce each time */
	assert_int_equal(dotenvx_encrypt(OTHER_PUBLIC, 66, "x", 1, &ct, &e), 0);
	assert_int_equal(dotenvx_encrypt(OTHER_PUBLIC, 66, "x", 1, &ct2, &e), 0);
	assert_string_not_equal(ct.data, ct2.data);
	/* too big */
	assert_int_equal(dotenvx_encrypt(OTHER_PUBLIC, 66, big, sizeof(big) + 1, &ct, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	/* not a point */
	assert_int_equal(dotenvx_encrypt("02ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
					 66, "x", 1, &ct, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	secbuf_free(&ct);
	secbuf_free(&ct2);
	secbuf_free(&out);
	dotenvx_key_wipe(&k);
}

static void test_refused(void **state)
{
	struct dotenvx_key k = key_of(CLI_PRIVATE), o = key_of(OTHER_PRIVATE);
	struct secbuf out = SECBUF_INIT;
	char bad[sizeof(CLI_HELLO)];
	size_t n = strlen(CLI_HELLO);
	struct err e;

	(void)state;
	/* the wrong key */
	assert_int_equal(dotenvx_decrypt(&o, CLI_HELLO, n, &out, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_null(strstr(e.msg, "world"));
	assert_int_equal(out.len, 0);
	/* a tampered tag (bytes 81..96: base64 characters 108..128) */
	memcpy(bad, CLI_HELLO, sizeof(bad));
	bad[10 + 112] = bad[10 + 112] == 'A' ? 'B' : 'A';
	assert_int_equal(dotenvx_decrypt(&k, bad, n, &out, &e), -1);
	assert_non_null(strstr(e.msg, "does not decrypt"));
	/* a tampered ciphertext (the last bytes) */
	memcpy(bad, CLI_HELLO, sizeof(bad));
	bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
	assert_int_equal(dotenvx_decrypt(&k, bad, n, &out, &e), -1);
	/* no prefix, not base64, too short, not a point */
	assert_int_equal(dotenvx_decrypt(&k, "world", 5, &out, &e), -1);
	assert_int_equal(dotenvx_decrypt(&k, "encrypted:!!!!", 14, &out, &e), -1);
	assert_non_null(strstr(e.msg, "malformed"));
	assert_int_equal(dotenvx_decrypt(&k, "encrypted:AAAA", 14, &out, &e), -1);
	assert_non_null(strstr(e.msg, "malformed"));
	memcpy(bad, CLI_HELLO, sizeof(bad));
	bad[10 + 4] = bad[10 + 4] == 'A' ? 'B' : 'A';	/* inside the point */
	assert_int_equal(dotenvx_decrypt(&k, bad, n, &out, &e), -1);
	secbuf_free(&out);
	dotenvx_key_wipe(&k);
	dotenvx_key_wipe(&o);
}

static void test_keys(void **state)
{
	struct secbuf hex = SECBUF_INIT, ct = SECBUF_INIT, out = SECBUF_INIT;
	char pub[DOTENVX_PUBLIC_HEX_LEN + 1];
	struct dotenvx_key k;
	struct err e;

	(void)state;
	/* wrong lengths, not hex, zero, the group order */
	assert_int_equal(dotenvx_key_parse("abc", 3, &k, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(dotenvx_key_parse(CLI_PRIVATE "0", 65, &k, &e), -1);
	assert_int_equal(dotenvx_key_parse("zz1a41610cecfc390e19c42dd0b9b92b12c70bc40f6f04aab0ee6e4e014a5996", 64, &k, &e), -1);
	assert_int_equal(dotenvx_key_parse("0000000000000000000000000000000000000000000000000000000000000000", 64, &k, &e), -1);
	assert_int_equal(dotenvx_key_parse("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 64, &k, &e), -1);
	/* surrounding whitespace, a key file's newline */
	assert_int_equal(dotenvx_key_parse(" " CLI_PRIVATE "\n", 66, &k, &e), 0);
	/* generated keys are keys, and differ */
	assert_int_equal(dotenvx_key_generate(&hex, &e), 0);
	assert_int_equal(hex.len, DOTENVX_PRIVATE_HEX_LEN);
	assert_int_equal(dotenvx_key_parse(hex.data, hex.len, &k, &e), 0);
	assert_int_equal(dotenvx_public_of(&k, pub, &e), 0);
	assert_true(pub[0] == '0' && (pub[1] == '2' || pub[1] == '3'));
	assert_int_equal(dotenvx_encrypt(pub, strlen(pub), "v", 1, &ct, &e), 0);
	assert_int_equal(dotenvx_decrypt(&k, ct.data, ct.len, &out, &e), 0);
	assert_string_equal(out.data, "v");
	assert_int_equal(dotenvx_key_generate(&out, &e), 0);
	assert_string_not_equal(out.data, hex.data);
	secbuf_free(&hex);
	secbuf_free(&ct);
	secbuf_free(&out);
	dotenvx_key_wipe(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_vector),
		cmocka_unit_test(test_public_keys),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
