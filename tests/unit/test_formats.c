/* test_formats.c - base/formats.c: json, sh and docker renderings, what
 * each refuses, and the left-out mode the folder's views use. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "base/formats.h"

struct skipped {
	char keys[256];
};

static void on_skip(void *ctx, const char *key, const char *why)
{
	struct skipped *s = ctx;

	assert_non_null(why);
	strcat(s->keys, key);
	strcat(s->keys, " ");
}

static void render(enum fmt_kind f, const struct kvmap *m, const char *want,
		   const char *want_skipped)
{
	struct secbuf out = SECBUF_INIT;
	struct skipped s = { "" };
	struct err e = { 0 };

	assert_int_equal(fmt_render(f, m, &out, on_skip, &s, &e), 0);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.data, want, out.len);
	assert_string_equal(s.keys, want_skipped);
	secbuf_free(&out);
}

static void test_names(void **state)
{
	enum fmt_kind f;

	(void)state;
	assert_int_equal(fmt_parse("docker", &f), 0);
	assert_int_equal(f, FMT_DOCKER);
	assert_string_equal(fmt_name(FMT_SH), "sh");
	assert_int_equal(fmt_parse("yaml", &f), -1);
}

static void test_left_out(void **state)
{
	struct kvmap m = KVMAP_INIT;

	(void)state;
	kvmap_set(&m, "A", "x'y", 3);
	kvmap_set(&m, "NL", "a\nb", 3);
	kvmap_set(&m, "CR", "a\r", 2);
	kvmap_set(&m, "NUL", "a\0b", 3);
	kvmap_set(&m, "BIN", "\xff", 1);
	kvmap_set(&m, "not-a-name", "v", 1);
	render(FMT_DOCKER, &m,
	       "# BIN left out: the value is not UTF-8 text, which docker's --env-file refuses\n"
	       "# CR left out: the value ends in a carriage return, which docker's --env-file drops\n"
	       "# NL left out: the value holds a newline, which docker's --env-file cannot carry (json and sh can)\n"
	       "# NUL left out: the value holds a NUL byte, which no environment variable can\n"
	       "# not-a-name left out: not a variable name ([A-Za-z_][A-Za-z0-9_]*), which docker's --env-file cannot carry\n"
	       "A=x'y\n", "BIN CR NL NUL not-a-name ");
	render(FMT_SH, &m,
	       "# NUL left out: the value holds a NUL byte, which no environment variable can\n"
	       "# not-a-name left out: not a variable name ([A-Za-z_][A-Za-z0-9_]*), which sh cannot export\n"
	       "export A='x'\\''y'\nexport BIN='\xff'\nexport CR='a\r'\nexport NL='a\nb'\n",
	       "NUL not-a-name ");
	render(FMT_JSON, &m,
	       "{\n  \"A\": \"x'y\",\n  \"CR\": \"a\\r\",\n  \"NL\": \"a\\nb\",\n  \"not-a-name\": \"v\"\n}\n",
	       "BIN NUL ");
	kvmap_free(&m);
}

/* Without a skip callback a format is all or nothing (secretfs render). */
static void test_refused(void **state)
{
	struct kvmap m = KVMAP_INIT;
	struct secbuf out = SECBUF_INIT;
	struct err e = { 0 };

	(void)state;
	kvmap_set(&m, "A", "ok", 2);
	kvmap_set(&m, "B", "a\nb", 3);
	secbuf_puts(&out, "kept");
	assert_int_equal(fmt_render(FMT_DOCKER, &m, &out, NULL, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_string_equal(e.msg, "B: the value holds a newline, which docker's --env-file cannot carry (json and sh can)");
	assert_int_equal(out.len, 4);
	assert_int_equal(fmt_render(FMT_ENV, &m, &out, NULL, NULL, &e), -1);
	secbuf_free(&out);
	kvmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_left_out),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
