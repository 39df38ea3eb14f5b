/* test_base.c - the base layer's one copy of each helper: time parsing,
 * percent-decoding, hashing, CRC-32C, string vectors, the out-of-memory error,
 * log lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/pct.h"
#include "base/strv.h"
#include "base/trust.h"

static void test_rfc3339(void **state)
{
	(void)state;
	assert_int_equal(clock_rfc3339_parse("1970-01-01T00:00:10Z"), 10);
	assert_int_equal(clock_rfc3339_parse("1970-01-01T00:00:10.999999999Z"), 10);
	assert_int_equal(clock_rfc3339_parse("1970-01-01T01:00:10+01:00"), 10);
	assert_int_equal(clock_rfc3339_parse("2024-05-01T10:00:00Z"), 1714557600);
	assert_int_equal(clock_rfc3339_parse("2023-11-14T22:13:20z"), 1700000000);
	assert_int_equal(clock_rfc3339_parse("2023-11-14T22:13:20.123456Z"), 1700000000);
	assert_int_equal(clock_rfc3339_parse("2023-11-14T21:13:20-01:00"), 1700000000);
	/* no zone: UTC, as Vault and AWS metadata servers write it */
	assert_int_equal(clock_rfc3339_parse("2023-11-14T22:13:20"), 1700000000);
	assert_int_equal(clock_rfc3339_parse("2023-11-14"), -1);
	assert_int_equal(clock_rfc3339_parse("yesterday"), -1);
	assert_int_equal(clock_rfc3339_parse("2024-05-01T10:00:00Zjunk"), -1);
	assert_int_equal(clock_rfc3339_parse("2024-05-01T10:00:00+1:00"), -1);
	assert_int_equal(clock_rfc3339_parse("2024-05-01T10:00:00+01:0x"), -1);
	assert_int_equal(clock_rfc3339_parse(NULL), -1);
}

static void test_clock(void **state)
{
	int64_t t0 = clock_now_ms();

	(void)state;
	clock_sleep_ms(20);
	assert_true(clock_now_ms() - t0 >= 20);
	/* a deadline carries whole seconds out of tv_nsec */
	for (int64_t ms = 0; ms <= 3999; ms += 333) {
		int64_t before = clock_now_ms();
		struct timespec d = clock_deadline(CLOCK_MONOTONIC, ms);
		int64_t at = (int64_t)d.tv_sec * 1000 + d.tv_nsec / 1000000;

		assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
		assert_true(at >= before + ms && at <= clock_now_ms() + ms);
	}
}

static void test_pct_decode(void **state)
{
	char *out = NULL;
	size_t at = 99;

	(void)state;
	assert_int_equal(pct_decode("a%2Fb%2fc", 9, &out, &at), PCT_OK);
	assert_string_equal(out, "a/b/c");
	free(out);
	/* only n bytes are read */
	assert_int_equal(pct_decode("ab%41", 2, &out, NULL), PCT_OK);
	assert_string_equal(out, "ab");
	free(out);
	assert_int_equal(pct_decode("", 0, &out, NULL), PCT_OK);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(pct_decode("x%4", 3, &out, &at), PCT_BAD);
	assert_null(out);
	assert_int_equal(at, 1);
	assert_int_equal(pct_decode("%zz", 3, &out, &at), PCT_BAD);
	assert_int_equal(at, 0);
	/* the escape must lie within the n bytes */
	assert_int_equal(pct_decode("%41", 2, &out, &at), PCT_BAD);
	assert_int_equal(pct_decode("ab%00", 5, &out, &at), PCT_NUL);
	assert_int_equal(at, 2);
}

static void test_hash(void **state)
{
	(void)state;
	/* the published FNV-1a 64 test vectors */
	assert_true(hash_fnv1a(HASH_FNV1A_INIT, "") == 0xcbf29ce484222325ULL);
	assert_true(hash_fnv1a(HASH_FNV1A_INIT, "a") == 0xaf63dc4c8601ec8cULL);
	assert_true(hash_fnv1a(HASH_FNV1A_INIT, "foobar") == 0x85944171f73967e8ULL);
	/* chaining is hashing the concatenation */
	assert_true(hash_fnv1a(hash_fnv1a(HASH_FNV1A_INIT, "foo"), "bar") ==
		    hash_fnv1a(HASH_FNV1A_INIT, "foobar"));
}

static void test_strv(void **state)
{
	struct strv s = { NULL, 0 };

	(void)state;
	assert_int_equal(strv_push(&s, "b"), 0);
	assert_int_equal(strv_push(&s, "a"), 0);
	assert_int_equal(strv_push(&s, "b"), 0);
	assert_int_equal(strv_push(&s, "c"), 0);
	strv_sort_unique(&s);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.v[0], "a");
	assert_string_equal(s.v[1], "b");
	assert_string_equal(s.v[2], "c");
	assert_null(s.v[3]);
	strv_free(&s);
	assert_int_equal(s.n, 0);
	assert_null(s.v);
}

static void test_err_oom(void **state)
{
	struct err e;

	(void)state;
	assert_int_equal(err_oom(&e), -1);
	assert_int_equal(e.code, ERR_NOMEM);
	assert_string_equal(e.msg, "out of memory");
}

/* the vector of the Secret Manager brief, and RFC 3720's (iSCSI) B.4 */
/* A name with a newline must not forge a log line: every line is escaped
 * once, in log.c, whoever logs it. */
static void test_log_escaped(void **state)
{
	char buf[4096], cut[7];
	int fds[2];
	ssize_t n;

	(void)state;
	assert_int_equal(log_escape(buf, sizeof(buf), "a\\b\nc\rd\te\x1b[31m\x7f\xc3\xa4"), 27);
	assert_string_equal(buf, "a\\\\b\\nc\\rd\\te\\x1b[31m\\x7f\xc3\xa4");
	/* a C1 control in UTF-8 is escaped; a character beside it is not */
	assert_int_equal(log_escape(buf, sizeof(buf), "\xc2\x9b""31m\xc2\xa0"), 13);
	assert_string_equal(buf, "\\xc2\\x9b""31m\xc2\xa0");
	/* cut to fit, never inside an escape */
	assert_int_equal(log_escape(cut, sizeof(cut), "abcde\nf"), 5);
	assert_string_equal(cut, "abcde");
	assert_int_equal(log_escape(cut, 1, "x"), 0);

	assert_int_equal(pipe(fds), 0);
	log_init_fd(LOG_LVL_INFO, fds[1]);
	log_warn("app %s: key %s: bad", "web", "K\nsecretfs: error: forged");
	log_limited(LOG_LVL_ERROR, "key %s", "L\n");
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	log_init_fd(LOG_LVL_INFO, 2);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf,
			    "secretfs: warn: app web: key K\\nsecretfs: error: forged: bad\n"
			    "secretfs: error: key L\\n\n");
}

/* Owned by root, us or the one more uid named; written by the owner alone,
 * or a sticky folder when the caller allows it. */
static void test_trust(void **state)
{
	struct stat st = { .st_uid = 0, .st_mode = S_IFREG | 0644 };
	uid_t other = geteuid() + 4242;
	struct err e;

	(void)state;
	assert_int_equal(trust_stat(&st, "/f", TRUST_NOBODY_ELSE, false, "p", &e), 0);
	st.st_mode = S_IFREG | 0664;
	assert_int_equal(trust_stat(&st, "/f", TRUST_NOBODY_ELSE, false, "do X", &e), -1);
	assert_string_equal(e.msg, "/f: writable by group or others (mode 0664), so they could do X: chmod go-w /f");
	st.st_mode = S_IFDIR | 01777;
	assert_int_equal(trust_stat(&st, "/d", TRUST_NOBODY_ELSE, true, "p", &e), 0);
	assert_int_equal(trust_stat(&st, "/d", TRUST_NOBODY_ELSE, false, "p", &e), -1);
	st.st_mode = S_IFREG | 01777;	/* sticky means nothing on a file */
	assert_int_equal(trust_stat(&st, "/f", TRUST_NOBODY_ELSE, true, "p", &e), -1);
	st.st_mode = S_IFREG | 0755;
	st.st_uid = other;
	assert_int_equal(trust_stat(&st, "/f", TRUST_NOBODY_ELSE, false, "p", &e), -1);
	assert_non_null(strstr(e.msg, "so its owner could p: chown root /f"));
	assert_int_equal(trust_stat(&st, "/f", other, false, "p", &e), 0);
	st.st_uid = geteuid();
	assert_int_equal(trust_stat(&st, "/f", TRUST_NOBODY_ELSE, false, "p", &e), 0);
}

static void test_crc32c(void **state)
{
	unsigned char zeros[32] = { 0 }, ones[32];

	(void)state;
	memset(ones, 0xff, sizeof(ones));
	assert_int_equal(crc32c_update(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c_update(0, "", 0), 0);
	assert_int_equal(crc32c_update(crc32c_update(0, "1234", 4), "56789", 5),
			 0xE3069283u);
	assert_int_equal(crc32c_update(0, zeros, 32), 0x8A9136AAu);
	assert_int_equal(crc32c_update(0, ones, 32), 0x62A8AB43u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_clock),
		cmocka_unit_test(test_pct_decode),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_strv),
		cmocka_unit_test(test_err_oom),
		cmocka_unit_test(test_log_escaped),
		cmocka_unit_test(test_trust),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
