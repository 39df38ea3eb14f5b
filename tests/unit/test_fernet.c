/* test_fernet.c - unit tests for the Fernet codec (base/fernet.c), with
 * the spec's vector (github.com/fernet/spec generate.json / verify.json).
 * Run: build/tests/test_fernet
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "base/fernet.h"

#define SPEC_KEY "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
#define SPEC_TOKEN "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="
#define SPEC_NOW 499162800	/* 1985-10-26T01:20:00-07:00 */

static const unsigned char spec_iv[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
					   10, 11, 12, 13, 14, 15 };

static struct fernet_key key_of(const char *text)
{
	struct fernet_key k;
	struct err e;

	assert_int_equal(fernet_key_parse(text, strlen(text), &k, &e), 0);
	return k;
}

static void test_spec_generate(void **state)
{
	struct fernet_key k = key_of(SPEC_KEY);
	struct secbuf tok = SECBUF_INIT;
	struct err e;

	(void)state;
	assert_int_equal(fernet_encrypt(&k, "hello", 5, SPEC_NOW, spec_iv, &tok,
					&e), 0);
	assert_string_equal(tok.data, SPEC_TOKEN);
	secbuf_free(&tok);
}

static int decrypt(const char *key, const char *token, int64_t now, long ttl,
		   struct secbuf *out, struct err *e)
{
	struct fernet_key k = key_of(key);
	int rc = fernet_decrypt(&k, token, strlen(token), now, ttl, out, e);

	fernet_key_wipe(&k);
	return rc;
}

static void test_spec_verify_and_ttl(void **state)
{
	struct secbuf out = SECBUF_INIT;
	struct err e;

	(void)state;
	assert_int_equal(decrypt(SPEC_KEY, SPEC_TOKEN, SPEC_NOW + 1, 60, &out, &e), 0);
	assert_int_equal(out.len, 5);
	assert_memory_equal(out.data, "hello", 5);
	/* expired, from the future, and no ttl at all */
	assert_int_equal(decrypt(SPEC_KEY, SPEC_TOKEN, SPEC_NOW + 61, 60, &out, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "expired"));
	assert_int_equal(out.len, 0);
	assert_int_equal(decrypt(SPEC_KEY, SPEC_TOKEN, SPEC_NOW - 61, 60, &out, &e), -1);
	assert_non_null(strstr(e.msg, "future"));
	assert_int_equal(decrypt(SPEC_KEY, SPEC_TOKEN, SPEC_NOW + 99999999, 0, &out, &e), 0);
	/* whitespace around it (a file's newline) */
	assert_int_equal(decrypt(SPEC_KEY, SPEC_TOKEN "\n", 0, 0, &out, &e), 0);
	secbuf_free(&out);
}

static void test_refused_tokens(void **state)
{
	struct secbuf out = SECBUF_INIT;
	char bad[sizeof(SPEC_TOKEN)];
	struct err e;

	(void)state;
	/* one ciphertext character changed */
	strcpy(bad, SPEC_TOKEN);
	bad[60] = bad[60] == 'A' ? 'B' : 'A';
	assert_int_equal(decrypt(SPEC_KEY, bad, 0, 0, &out, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "does not verify"));
	assert_null(strstr(e.msg, "hello"));
	/* another key */
	assert_int_equal(decrypt("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
				 SPEC_TOKEN, 0, 0, &out, &e), -1);
	assert_non_null(strstr(e.msg, "does not verify"));
	/* cut short, not base64, another version byte */
	assert_int_equal(decrypt(SPEC_KEY, "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEw",
				 0, 0, &out, &e), -1);
	assert_non_null(strstr(e.msg, "not a Fernet token"));
	assert_int_equal(decrypt(SPEC_KEY, "%%%%", 0, 0, &out, &e), -1);
	assert_non_null(strstr(e.msg, "not a Fernet token"));
	strcpy(bad, SPEC_TOKEN);
	bad[0] = 'g' + 1;
	assert_int_equal(decrypt(SPEC_KEY, bad, 0, 0, &out, &e), -1);
	assert_int_equal(decrypt(SPEC_KEY, "", 0, 0, &out, &e), -1);
	assert_int_equal(out.len, 0);
	secbuf_free(&out);
}

static void test_keys(void **state)
{
	struct fernet_key k;
	struct err e;

	(void)state;
	/* padding optional, whitespace around ignored */
	assert_int_equal(fernet_key_parse(" cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4\n", 45,
					  &k, &e), 0);
	assert_int_equal(k.sign[0], 0x73);
	/* 31 bytes, 33 bytes, standard base64's '+' and '/' */
	assert_int_equal(fernet_key_parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", 44,
					  &k, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "not a Fernet key: 32 bytes"));
	assert_int_equal(fernet_key_parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", 48,
					  &k, &e), -1);
	assert_int_equal(fernet_key_parse("cw/0x689RpI+jtRR7oE8h/eQsKImvJapLeSbXpwF4e4=", 44,
					  &k, &e), -1);
	assert_int_equal(fernet_key_parse("", 0, &k, &e), -1);
	fernet_key_wipe(&k);
}

static void test_round_trip(void **state)
{
	struct fernet_key k = key_of(SPEC_KEY);
	struct secbuf tok = SECBUF_INIT, out = SECBUF_INIT, tok2 = SECBUF_INIT;
	static char big[64 * 1024];
	struct err e;
	size_t sizes[] = { 0, 1, 15, 16, 17, sizeof(big) };

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		assert_int_equal(fernet_encrypt(&k, big, sizes[i], 1700000000, NULL,
						&tok, &e), 0);
		assert_int_equal(fernet_decrypt(&k, tok.data, tok.len, 1700000001, 60,
						&out, &e), 0);
		assert_int_equal(out.len, sizes[i]);
		assert_memory_equal(out.data, big, sizes[i]);
	}
	/* a random IV each time */
	assert_int_equal(fernet_encrypt(&k, "x", 1, 1700000000, NULL, &tok2, &e), 0);
	assert_int_equal(fernet_encrypt(&k, "x", 1, 1700000000, NULL, &tok, &e), 0);
	assert_string_not_equal(tok.data, tok2.data);
	secbuf_free(&tok);
	secbuf_free(&tok2);
	secbuf_free(&out);
	fernet_key_wipe(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_generate),
		cmocka_unit_test(test_spec_verify_and_ttl),
		cmocka_unit_test(test_refused_tokens),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
