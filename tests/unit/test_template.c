/* test_template.c - fs/template.c: placeholders, filters, errors with the
 * template's file:line. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "fs/template.h"

static int value_of(void *ctx, const struct tpl_part *p, struct secbuf *val,
		    struct err *e)
{
	(void)ctx;
	if (p->key && !strcmp(p->key, "PW"))
		return secbuf_set(val, "a\"b'c\\\n$x é\x7f", 13) < 0 ? err_oom(e) : 0;
	if (!p->key)
		return secbuf_set(val, p->ref.field, strlen(p->ref.field)) < 0 ? err_oom(e) : 0;
	return err_set(e, ERR_PROVIDER, "no key %s", p->key);
}

static const char *render(const char *text, struct err *e)
{
	static char buf[1024];
	struct secbuf out = SECBUF_INIT;
	struct tpl t;
	int rc = tpl_parse("t.tpl", text, strlen(text), &t, e);

	if (rc == 0)
		rc = tpl_render(&t, value_of, NULL, &out, e);
	tpl_free(&t);
	if (rc < 0) {
		secbuf_free(&out);
		return NULL;
	}
	memcpy(buf, out.data ? out.data : "", out.len + 1);
	secbuf_free(&out);
	return buf;
}

static void test_filters(void **state)
{
	struct err e = { 0 };

	(void)state;
	assert_string_equal(render("x={{PW}}.", &e), "x=a\"b'c\\\n$x é\x7f.");
	assert_string_equal(render("{{ PW | json }}", &e), "a\\\"b'c\\\\\\n$x é\x7f");
	assert_string_equal(render("{{ PW | yaml }}", &e), "\"a\\\"b'c\\\\\\n$x é\\x7f\"");
	assert_string_equal(render("{{ PW | shell }}", &e), "'a\"b'\\''c\\\n$x é\x7f'");
	assert_string_equal(render("{{ PW | url }}", &e), "a%22b%27c%5C%0A%24x%20%C3%A9%7F");
	assert_string_equal(render("{{ PW | base64 }}", &e), "YSJiJ2NcCiR4IMOpfw==");
	assert_string_equal(render("<a v=\"{{ PW | xml }}\"/>", &e),
			    "<a v=\"a&quot;b&apos;c\\&#10;$x é\x7f\"/>");
	assert_string_equal(render("{{ vault://secret/db#field | yaml }}", &e), "\"field\"");
}

static void test_errors_name_file_and_line(void **state)
{
	struct err e = { 0 };

	(void)state;
	assert_null(render("a\nb {{ PW | rot13 }}", &e));
	assert_string_equal(e.msg, "t.tpl:2: unknown filter 'rot13' (json, yaml, shell, url, base64, xml; one per placeholder)");
	assert_null(render("\n\n{{ PW\n}}", &e));
	assert_non_null(strstr(e.msg, "t.tpl:3: '{{' without '}}'"));
	assert_null(render("{{ not a key }}", &e));
	assert_non_null(strstr(e.msg, "t.tpl:1: 'not a key' is neither"));
	assert_null(render("x\n{{ GONE }}", &e));
	assert_string_equal(e.msg, "t.tpl:2: GONE: no key GONE");
	assert_null(render("{{ PW | json | yaml }}", &e));
}

static void test_refusals(void **state)
{
	struct secbuf out = SECBUF_INIT;
	struct err e = { 0 };

	(void)state;
	assert_int_equal(tpl_filter_apply(TPL_JSON, "\xff", 1, &out, &e), -1);
	assert_int_equal(tpl_filter_apply(TPL_XML, "\x01", 1, &out, &e), -1);
	assert_int_equal(tpl_filter_apply(TPL_SHELL, "a\0b", 3, &out, &e), -1);
	assert_int_equal(tpl_filter_apply(TPL_YAML, "\xe2\x80\xa8", 3, &out, &e), 0);
	assert_memory_equal(out.data, "\"\\u2028\"", 8);
	secbuf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_errors_name_file_and_line),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
