/* formats.c - JSON, sh and docker renderings of a value set: see formats.h. */
#include "formats.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "dotenv.h"

/* docker reads an env file with Go's bufio.Scanner: a line and its
 * newline must fit in 64 KiB */
#define FMT_DOCKER_LINE_MAX (64 * 1024 - 1)

static const char *const fmt_names[FMT_COUNT] = { "env", "json", "sh", "docker" };

int fmt_parse(const char *name, enum fmt_kind *f)
{
	for (int i = 0; i < FMT_COUNT; i++)
		if (!strcmp(name, fmt_names[i])) {
			*f = (enum fmt_kind)i;
			return 0;
		}
	return -1;
}

const char *fmt_name(enum fmt_kind f)
{
	return f < FMT_COUNT ? fmt_names[f] : "?";
}

/* jansson checks UTF-8 when it makes a string (and wipes what it frees,
 * secmem_init_json), so it is the one UTF-8 check we have. */
static bool fmt_utf8(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);

	json_decref(j);
	return j != NULL;
}

/* Why format f cannot carry kv; NULL when it can. */
static const char *fmt_refusal(enum fmt_kind f, const struct kv *kv)
{
	if (memchr(kv->val, 0, kv->len))
		return "the value holds a NUL byte, which no environment variable can";
	if (f == FMT_JSON) {
		if (!fmt_utf8(kv->key, strlen(kv->key)))
			return "the key name is not UTF-8 text, which JSON cannot hold";
		return fmt_utf8(kv->val, kv->len) ? NULL :
			"the value is not UTF-8 text, which JSON cannot hold";
	}
	if (!dotenv_key_valid(kv->key))
		return f == FMT_SH ? "not a variable name ([A-Za-z_][A-Za-z0-9_]*), which sh cannot export" :
			"not a variable name ([A-Za-z_][A-Za-z0-9_]*), which docker's --env-file cannot carry";
	if (f != FMT_DOCKER)
		return NULL;
	if (memchr(kv->val, '\n', kv->len))
		return "the value holds a newline, which docker's --env-file cannot carry (json and sh can)";
	if (kv->len && kv->val[kv->len - 1] == '\r')
		return "the value ends in a carriage return, which docker's --env-file drops";
	if (!fmt_utf8(kv->val, kv->len))
		return "the value is not UTF-8 text, which docker's --env-file refuses";
	if (strlen(kv->key) + 1 + kv->len > FMT_DOCKER_LINE_MAX)
		return "the line would be longer than docker reads (64 KiB)";
	return NULL;
}

static int fmt_json(const struct kvmap *vals, const bool *left_out,
		    struct secbuf *out)
{
	json_t *obj = json_object();
	char *text = NULL;
	int rc = obj ? 0 : -1;

	for (size_t i = 0; rc == 0 && i < vals->n; i++) {
		const struct kv *kv = &vals->items[i];

		if (!left_out[i])
			rc = json_object_set_new(obj, kv->key, json_stringn(kv->val, kv->len));
	}
	if (rc == 0)
		text = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (rc == 0 && (!text || secbuf_puts(out, text) < 0 || secbuf_putc(out, '\n') < 0))
		rc = -1;
	secmem_free_str(text);
	json_decref(obj);
	return rc;
}

/* export KEY='...', a ' written as '\'' : POSIX sh takes everything
 * between single quotes literally, newlines included. docker: KEY=VALUE,
 * the value verbatim to the end of the line (no quotes, no escapes). */
static int fmt_line(enum fmt_kind f, const struct kv *kv, struct secbuf *out)
{
	int rc = 0;

	if (f == FMT_DOCKER) {
		rc |= secbuf_puts(out, kv->key);
		rc |= secbuf_putc(out, '=');
		rc |= secbuf_append(out, kv->val, kv->len);
		return rc | secbuf_putc(out, '\n');
	}
	rc |= secbuf_puts(out, "export ");
	rc |= secbuf_puts(out, kv->key);
	rc |= secbuf_puts(out, "='");
	for (size_t j = 0; rc == 0 && j < kv->len; j++)
		rc = kv->val[j] == '\'' ? secbuf_puts(out, "'\\''") :
					  secbuf_putc(out, kv->val[j]);
	return rc | secbuf_puts(out, "'\n");
}

/* The comment naming a key left out; a name that could break the line
 * (a newline in it) is not repeated. */
static int fmt_comment(const char *key, const char *why, struct secbuf *out)
{
	int rc = secbuf_puts(out, "# ");

	rc |= secbuf_puts(out, strpbrk(key, "\r\n") ? "a key" : key);
	rc |= secbuf_puts(out, " left out: ");
	rc |= secbuf_puts(out, why);
	return rc | secbuf_putc(out, '\n');
}

static int fmt_lines(enum fmt_kind f, const struct kvmap *vals,
		     const bool *left_out, struct secbuf *out)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < vals->n; i++)
		if (left_out[i])
			rc = fmt_comment(vals->items[i].key,
					 fmt_refusal(f, &vals->items[i]), out);
	for (size_t i = 0; rc == 0 && i < vals->n; i++)
		if (!left_out[i])
			rc = fmt_line(f, &vals->items[i], out);
	return rc;
}

int fmt_render(enum fmt_kind f, const struct kvmap *vals, struct secbuf *out,
	       fmt_skip_fn skip, void *ctx, struct err *e)
{
	bool *left_out = calloc(vals->n + 1, sizeof(*left_out));
	size_t start = out->len;
	int rc = left_out ? 0 : err_oom(e);

	if (rc == 0 && (f == FMT_ENV || f >= FMT_COUNT))
		rc = err_set(e, ERR_INVALID, "format %s is not rendered here", fmt_name(f));
	for (size_t i = 0; rc == 0 && i < vals->n; i++) {
		const char *why = fmt_refusal(f, &vals->items[i]);

		if (why && !skip)
			rc = err_set(e, ERR_INVALID, "%s: %s", vals->items[i].key, why);
		else if (why)
			skip(ctx, vals->items[i].key, why);
		if (left_out)
			left_out[i] = why != NULL;
	}
	if (rc == 0 && (f == FMT_JSON ? fmt_json(vals, left_out, out) :
					fmt_lines(f, vals, left_out, out)) < 0)
		rc = err_oom(e);
	if (rc < 0)
		secbuf_truncate(out, start);
	free(left_out);
	return rc;
}
