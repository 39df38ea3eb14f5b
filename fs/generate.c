/* generate.c - fresh random values for generate: references (see generate.h).
 *
 * Each generator writes straight into the caller's secbuf, so the value
 * exists in one place only; the raw random bytes behind an encoded value
 * are wiped before returning. sodium_init() is called here too: it is
 * idempotent and thread-safe, and a caller that forgot it would otherwise
 * get an unseeded generator on some platforms.
 */
#include "generate.h"

#include <sodium.h>
#include <string.h>

#define GEN_UUID_BYTES 16
#define GEN_FERNET_BYTES 32

static const char gen_alnum[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* Empty out and make room for len characters plus the NUL. */
static int gen_prepare(struct secbuf *out, size_t len, struct err *e)
{
	secbuf_clear(out);
	if (secbuf_reserve(out, len) < 0)
		return err_set(e, ERR_NOMEM, "out of memory generating a value");
	return 0;
}

static int gen_password(unsigned n, struct secbuf *out, struct err *e)
{
	if (gen_prepare(out, n, e) < 0)
		return -1;
	for (unsigned i = 0; i < n; i++)
		out->data[i] = gen_alnum[randombytes_uniform(sizeof(gen_alnum) - 1)];
	out->data[n] = '\0';
	out->len = n;
	return 0;
}

static int gen_hex(const unsigned char *raw, size_t n, struct secbuf *out,
		   struct err *e)
{
	if (gen_prepare(out, n * 2, e) < 0)
		return -1;
	sodium_bin2hex(out->data, n * 2 + 1, raw, n);
	out->len = n * 2;
	return 0;
}

static int gen_base64(const unsigned char *raw, size_t n, int variant,
		      struct secbuf *out, struct err *e)
{
	size_t size = sodium_base64_ENCODED_LEN(n, variant);

	if (gen_prepare(out, size - 1, e) < 0)
		return -1;
	sodium_bin2base64(out->data, size, raw, n, variant);
	out->len = strlen(out->data);
	return 0;
}

/* 8-4-4-4-12 lowercase hex, version 4, RFC 4122 variant (binary 10). */
static int gen_uuid(unsigned char *raw, struct secbuf *out, struct err *e)
{
	static const int dash_after[] = { 4, 6, 8, 10 };
	char hex[GEN_UUID_BYTES * 2 + 1];
	size_t o = 0, d = 0;

	raw[6] = (unsigned char)((raw[6] & 0x0f) | 0x40);
	raw[8] = (unsigned char)((raw[8] & 0x3f) | 0x80);
	if (gen_prepare(out, GEN_UUID_BYTES * 2 + 4, e) < 0)
		return -1;
	sodium_bin2hex(hex, sizeof(hex), raw, GEN_UUID_BYTES);
	for (int i = 0; i < GEN_UUID_BYTES; i++) {
		if (d < 4 && i == dash_after[d]) {
			out->data[o++] = '-';
			d++;
		}
		out->data[o++] = hex[2 * i];
		out->data[o++] = hex[2 * i + 1];
	}
	out->data[o] = '\0';
	out->len = o;
	sodium_memzero(hex, sizeof(hex));
	return 0;
}

/* Random bytes in, encoded text out. */
static int gen_encoded(const struct gen_spec *g, unsigned char *raw,
		       struct secbuf *out, struct err *e)
{
	switch (g->kind) {
	case GEN_HEX:
		return gen_hex(raw, g->n, out, e);
	case GEN_BASE64:
		return gen_base64(raw, g->n, sodium_base64_VARIANT_ORIGINAL, out, e);
	case GEN_BASE64URL:
		return gen_base64(raw, g->n,
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING, out, e);
	case GEN_UUID:
		return gen_uuid(raw, out, e);
	case GEN_FERNET:
		return gen_base64(raw, GEN_FERNET_BYTES,
				  sodium_base64_VARIANT_URLSAFE, out, e);
	default:
		return err_set(e, ERR_INVALID, "unknown generator kind %d",
			       (int)g->kind);
	}
}

/* How many random bytes g encodes; 0 when g is not valid. */
static size_t gen_raw_bytes(const struct gen_spec *g)
{
	switch (g->kind) {
	case GEN_PASSWORD:
	case GEN_HEX:
	case GEN_BASE64:
	case GEN_BASE64URL:
		return g->n >= 1 && g->n <= GEN_MAX_N ? g->n : 0;
	case GEN_UUID:
		return GEN_UUID_BYTES;
	case GEN_FERNET:
		return GEN_FERNET_BYTES;
	}
	return 0;
}

int gen_value(const struct gen_spec *g, struct secbuf *out, struct err *e)
{
	unsigned char raw[GEN_MAX_N];
	size_t n = gen_raw_bytes(g);
	int rc;

	if (!n)
		return err_set(e, ERR_INVALID,
			       "bad generator spec (kind %d, count %u)",
			       (int)g->kind, g->n);
	if (sodium_init() < 0)
		return err_set(e, ERR_IO, "libsodium failed to initialise");
	if (g->kind == GEN_PASSWORD)
		return gen_password(g->n, out, e);
	randombytes_buf(raw, n);
	rc = gen_encoded(g, raw, out, e);
	sodium_memzero(raw, n);
	return rc;
}
