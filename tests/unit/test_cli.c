/* test_cli.c - render's formats (fs/cli.c): what each can carry exactly,
 * and refusals that leave nothing half-written. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/cli.h"

static const char *fmt(enum cli_format f, const struct kvmap *m, struct err *e)
{
	static char text[4096];
	struct secbuf out = SECBUF_INIT;
	int rc = cli_format(f, m, &out, e);

	if (rc < 0) {
		assert_int_equal(out.len, 0);	/* nothing, not a part */
		secbuf_free(&out);
		return NULL;
	}
	assert_true(out.len < sizeof(text));
	memcpy(text, out.data ? out.data : "", out.len);
	text[out.len] = '\0';
	secbuf_free(&out);
	return text;
}

static void set(struct kvmap *m, const char *k, const char *v)
{
	assert_int_equal(kvmap_set(m, k, v, strlen(v)), 0);
}

static void test_sh_quotes_everything(void **state)
{
	struct kvmap m = KVMAP_INIT;
	struct err e = { 0 };

	set(&m, "A", "it's $HOME `x` \\");
	set(&m, "B", "two\nlines");
	assert_string_equal(fmt(CLI_FORMAT_SH, &m, &e),
			    "export A='it'\\''s $HOME `x` \\'\n"
			    "export B='two\nlines'\n");
	set(&m, "not-a-name", "x");
	assert_null(fmt(CLI_FORMAT_SH, &m, &e));
	assert_non_null(strstr(e.msg, "not-a-name"));
	kvmap_free(&m);
}

static void test_docker_verbatim_or_refused(void **state)
{
	struct kvmap m = KVMAP_INIT;
	struct err e = { 0 };

	set(&m, "A", " 'quoted' \"too\" #not a comment ");
	set(&m, "B", "");
	assert_string_equal(fmt(CLI_FORMAT_DOCKER, &m, &e),
			    "A= 'quoted' \"too\" #not a comment \nB=\n");
	set(&m, "C", "two\nlines");
	assert_null(fmt(CLI_FORMAT_DOCKER, &m, &e));
	assert_string_equal(e.msg, "C: the value holds a newline, which docker's --env-file cannot carry (json and sh can)");
	set(&m, "C", "crlf\r");
	assert_null(fmt(CLI_FORMAT_DOCKER, &m, &e));
	assert_non_null(strstr(e.msg, "carriage return"));
	set(&m, "C", "\xff\xfe");
	assert_null(fmt(CLI_FORMAT_DOCKER, &m, &e));
	assert_non_null(strstr(e.msg, "UTF-8"));
	assert_int_equal(kvmap_set(&m, "C", "a\0b", 3), 0);
	assert_null(fmt(CLI_FORMAT_DOCKER, &m, &e));
	assert_non_null(strstr(e.msg, "NUL"));
	kvmap_free(&m);
}

static void test_json_object(void **state)
{
	struct kvmap m = KVMAP_INIT;
	struct err e = { 0 };

	assert_string_equal(fmt(CLI_FORMAT_JSON, &m, &e), "{}\n");
	set(&m, "b", "x\"y\n");
	set(&m, "a-1", "1");
	assert_string_equal(fmt(CLI_FORMAT_JSON, &m, &e),
			    "{\n  \"a-1\": \"1\",\n  \"b\": \"x\\\"y\\n\"\n}\n");
	set(&m, "c", "\xff");
	assert_null(fmt(CLI_FORMAT_JSON, &m, &e));
	assert_non_null(strstr(e.msg, "c: the value is not UTF-8"));
	kvmap_free(&m);
}

static void test_format_names(void **state)
{
	enum cli_format f;

	assert_int_equal(cli_format_parse("docker", &f), 0);
	assert_int_equal(f, CLI_FORMAT_DOCKER);
	assert_int_equal(cli_format_parse("yaml", &f), -1);
	assert_true(cli_is_command("check"));
	assert_true(cli_is_command("render"));
	assert_false(cli_is_command("/run/secrets"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sh_quotes_everything),
		cmocka_unit_test(test_docker_verbatim_or_refused),
		cmocka_unit_test(test_json_object),
		cmocka_unit_test(test_format_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
