/* generate.c - fresh random values for generate: references (see generate.h).
 *
 * Each generator writes straight into the caller's secbuf, so the value
 * exists in one place only; the raw random bytes behind an encoded value
 * are wiped before returning. sodium_init() is called here too: it is
 * idempotent and thread-safe, and a caller that forgot it would otherwise
 * get an unseeded generator on some platforms.
 *
 * argon2id is the odd one out: it hashes the value of another key, so it
 * has its own entry point, gen_hash_value.
 */
#include "generate.h"

#include "../base/dotenvx.h"
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#define GEN_UUID_BYTES 16
#define GEN_FERNET_BYTES 32
/* From this length on an alnum+symbols password holds a symbol and a
 * digit (ref.h); shorter ones are taken as drawn. */
#define GEN_POLICY_MIN_LEN 4
/* Rejection rounds before giving up. Even at length 4 a round fails with
 * p < 0.87 (7 symbols, 10 digits of 69), so 1000 failures in a row
 * (p < 1e-60) mean a broken generator, not bad luck. */
#define GEN_POLICY_MAX_ROUNDS 1000

#define GEN_DIGITS "0123456789"
#define GEN_ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" GEN_DIGITS

static const char gen_alnum[] = GEN_ALNUM;
static const char gen_alnum_symbols[] = GEN_ALNUM GEN_SYMBOLS;

/* Empty out and make room for len characters plus the NUL. */
static int gen_prepare(struct secbuf *out, size_t len, struct err *e)
{
	secbuf_clear(out);
	if (secbuf_reserve(out, len) < 0)
		return err_set(e, ERR_NOMEM, "out of memory generating a value");
	return 0;
}

static void gen_fill(char *p, unsigned n, const char *set, size_t setlen)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = set[randombytes_uniform((uint32_t)setlen)];
}

static bool gen_has_any(const char *p, unsigned n, const char *set)
{
	for (unsigned i = 0; i < n; i++)
		if (strchr(set, p[i]))
			return true;
	return false;
}

/* Whether a password meets its charset's promise (see ref.h). */
static bool gen_policy_ok(const struct gen_spec *g, const char *p)
{
	if (g->charset != GEN_CHARSET_ALNUM_SYMBOLS || g->n < GEN_POLICY_MIN_LEN)
		return true;
	return gen_has_any(p, g->n, GEN_SYMBOLS) &&
	       gen_has_any(p, g->n, GEN_DIGITS);
}

/* Rejection (draw the whole password again until it qualifies) keeps
 * every qualifying password equally likely; patching one character in
 * would make some positions predictable. */
static int gen_password(const struct gen_spec *g, struct secbuf *out,
			struct err *e)
{
	bool sym = g->charset == GEN_CHARSET_ALNUM_SYMBOLS;
	const char *set = sym ? gen_alnum_symbols : gen_alnum;
	size_t setlen = sym ? sizeof(gen_alnum_symbols) - 1 : sizeof(gen_alnum) - 1;
	unsigned round = 0;

	if (gen_prepare(out, g->n, e) < 0)
		return -1;
	do {
		if (round++ == GEN_POLICY_MAX_ROUNDS) {
			secbuf_clear(out);
			return err_set(e, ERR_IO,
				       "random generator failed: no qualifying password in %d tries",
				       GEN_POLICY_MAX_ROUNDS);
		}
		gen_fill(out->data, g->n, set, setlen);
	} while (!gen_policy_ok(g, out->data));
	out->data[g->n] = '\0';
	out->len = g->n;
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

/* libsodium's 64-byte secret key is seed || public key, the layout of
 * Go's ed25519.PrivateKey and of most libraries that take 64 bytes. */
static int gen_ed25519(struct secbuf *out, struct err *e)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	int rc;

	if (crypto_sign_keypair(pk, sk) != 0)
		return err_set(e, ERR_IO, "libsodium failed to make an Ed25519 key");
	rc = gen_base64(sk, sizeof(sk), sodium_base64_VARIANT_ORIGINAL, out, e);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(pk, sizeof(pk));
	return rc;
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

/* How many random bytes g encodes; 0 when g is not one of those kinds
 * or not valid. */
static size_t gen_raw_bytes(const struct gen_spec *g)
{
	switch (g->kind) {
	case GEN_HEX:
	case GEN_BASE64:
	case GEN_BASE64URL:
		return g->n >= 1 && g->n <= GEN_MAX_N ? g->n : 0;
	case GEN_UUID:
		return GEN_UUID_BYTES;
	case GEN_FERNET:
		return GEN_FERNET_BYTES;
	default:
		return 0;
	}
}

/* Fields outside what gen_parse produces are refused before any work. */
static bool gen_spec_valid(const struct gen_spec *g)
{
	switch (g->kind) {
	case GEN_PASSWORD:
		return g->n >= 1 && g->n <= GEN_MAX_N &&
		       (g->charset == GEN_CHARSET_ALNUM ||
			g->charset == GEN_CHARSET_ALNUM_SYMBOLS);
	case GEN_ED25519:
	case GEN_DOTENVX:
		return true;
	case GEN_ARGON2ID:
		return g->source && *g->source;
	default:
		return gen_raw_bytes(g) > 0;
	}
}

static int gen_bad_spec(const struct gen_spec *g, struct err *e)
{
	return err_set(e, ERR_INVALID, "bad generator spec (kind %d, count %u)",
		       (int)g->kind, g->n);
}

static int gen_random_encoded(const struct gen_spec *g, struct secbuf *out,
			      struct err *e)
{
	unsigned char raw[GEN_MAX_N];
	size_t n = gen_raw_bytes(g);
	int rc;

	randombytes_buf(raw, n);
	rc = gen_encoded(g, raw, out, e);
	sodium_memzero(raw, n);
	return rc;
}

bool gen_needs_input(const struct gen_spec *g)
{
	return g->kind == GEN_ARGON2ID;
}

int gen_value(const struct gen_spec *g, struct secbuf *out, struct err *e)
{
	if (!gen_spec_valid(g))
		return gen_bad_spec(g, e);
	if (gen_needs_input(g))
		return err_set(e, ERR_INVALID,
			       "generate:argon2id:%s needs the value of %s (use gen_hash_value)",
			       g->source, g->source);
	if (sodium_init() < 0)
		return err_set(e, ERR_IO, "libsodium failed to initialise");
	switch (g->kind) {
	case GEN_PASSWORD:
		return gen_password(g, out, e);
	case GEN_ED25519:
		return gen_ed25519(out, e);
	case GEN_DOTENVX:
		return dotenvx_key_generate(out, e);
	default:
		return gen_random_encoded(g, out, e);
	}
}

/* The INTERACTIVE limits (2 passes over 64 MiB) are libsodium's choice
 * for a hash checked at each login: the app that verifies this hash pays
 * the same cost on every attempt, and the verifier reads the parameters
 * from the string, so stronger limits here would slow the app's logins,
 * not just this one-off generation. The 64 MiB is allocated (and freed)
 * by libsodium for the length of the call. */
int gen_hash_value(const struct gen_spec *g, const char *input, size_t len,
		   struct secbuf *out, struct err *e)
{
	if (!gen_spec_valid(g) || !gen_needs_input(g))
		return gen_bad_spec(g, e);
	if (!input && len)
		return err_set(e, ERR_INVALID, "no input to hash");
	if (sodium_init() < 0)
		return err_set(e, ERR_IO, "libsodium failed to initialise");
	if (len > crypto_pwhash_argon2id_PASSWD_MAX)
		return err_set(e, ERR_INVALID,
			       "the value of %s is too long for argon2id", g->source);
	if (gen_prepare(out, crypto_pwhash_argon2id_STRBYTES - 1, e) < 0)
		return -1;
	/* the argon2id_ names, not the crypto_pwhash_ defaults: the kind
	 * promises argon2id whatever libsodium's default becomes */
	if (crypto_pwhash_argon2id_str(out->data, input ? input : "",
				       (unsigned long long)len,
				       crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE,
				       crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE) != 0) {
		secbuf_clear(out);
		return err_set(e, ERR_NOMEM,
			       "out of memory hashing %s for generate:argon2id (needs %zu MiB)",
			       g->source,
			       (size_t)(crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE >> 20));
	}
	out->len = strlen(out->data);
	return 0;
}
