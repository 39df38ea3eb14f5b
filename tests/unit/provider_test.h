/* provider_test.h - what the provider unit tests (test_aws.c,
 * test_vault.c, test_azure.c, ...) share: canned HTTP answers, entry
 * lookups, provider sections made of key/value pairs, and credential
 * files with a given mode.
 *
 * Include it after the provider's .c, with PROVIDER_TEST_NAME and
 * PROVIDER_TEST_TYPE defined (the section's name and type).
 */
#ifndef SECRETFS_PROVIDER_TEST_H
#define SECRETFS_PROVIDER_TEST_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define PT_UNUSED __attribute__((unused))

/* An answer as the HTTP layer hands it back. */
static PT_UNUSED struct http_response resp(long status, const char *body)
{
	struct http_response rs = HTTP_RESPONSE_INIT;

	rs.status = status;
	if (body)
		assert_int_equal(secbuf_set(&rs.body, body, strlen(body)), 0);
	return rs;
}

static PT_UNUSED const struct kv *get(const struct entry *en, const char *key)
{
	const struct kv *kv = kvmap_get(&en->map, key);

	assert_non_null(kv);
	return kv;
}

static PT_UNUSED void assert_val(const struct entry *en, const char *key,
				 const void *val, size_t len)
{
	const struct kv *kv = get(en, key);

	assert_int_equal(kv->len, len);
	assert_memory_equal(kv->val, val, len);
}

/* A provider_conf of key, value pairs (NULL-terminated). */
struct conf {
	struct conf_opt opts[16];
	struct provider_conf pc;
};

static PT_UNUSED void conf_make(struct conf *c, ...)
{
	va_list ap;
	const char *k;
	size_t n = 0;

	va_start(ap, c);
	while ((k = va_arg(ap, const char *)) && n < 16) {
		c->opts[n].key = (char *)k;
		c->opts[n].value = va_arg(ap, char *);
		c->opts[n].where = (struct conf_where){ "test.conf", (int)n + 2 };
		n++;
	}
	va_end(ap);
	c->pc = (struct provider_conf){ .name = (char *)PROVIDER_TEST_NAME,
					.type = (char *)PROVIDER_TEST_TYPE,
					.opts = c->opts, .nopts = n,
					.where = { "test.conf", 1 } };
}

/* The test's scratch folder (made by its group setup). */
static char tmpdir[64];

/* tmpdir/name holding text with mode; the path stays valid for the next
 * seven calls. */
static PT_UNUSED char *tmpfile_mode(const char *name, const char *text,
				    mode_t mode)
{
	static char path[8][128];
	static int slot;
	char *p = path[slot++ % 8];
	FILE *f;

	snprintf(p, 128, "%s/%s", tmpdir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(p, mode), 0);
	return p;
}

#endif
