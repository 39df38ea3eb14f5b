/* dotenvx.c - the dotenvx value codec (dotenvx.h): libcrypto for the
 * curve, HKDF and AES-256-GCM, libsodium for hex, base64 and wiping.
 *
 * The curve is done with EC_POINT arithmetic rather than EVP ECDH: ECDH
 * yields the shared x coordinate only, and eciesjs hashes the whole
 * uncompressed point. EC_POINT_mul with one scalar and one point (or the
 * generator) takes OpenSSL's constant-time ladder. Scalars live in
 * secure-heap BIGNUMs with BN_FLG_CONSTTIME, cleared when freed.
 */
#include "dotenvx.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define DX_POINT 65	/* uncompressed point */
#define DX_COMPRESSED 33
#define DX_NONCE 16
#define DX_TAG 16
#define DX_KEY 32
#define DX_HEAD (DX_POINT + DX_NONCE + DX_TAG)
#define DX_PREFIX_LEN (sizeof(DOTENVX_PREFIX) - 1)
/* a value's bytes before base64: at most a 64 KiB value and the head */
#define DX_RAW_MAX (DX_HEAD + 64 * 1024)

/* The curve and a scratch context, for one operation. */
struct dx_curve {
	EC_GROUP *group;
	BN_CTX *ctx;
};

static int dx_curve_open(struct dx_curve *c, struct err *e)
{
	c->group = EC_GROUP_new_by_curve_name(NID_secp256k1);
	c->ctx = BN_CTX_secure_new();
	if (c->group && c->ctx)
		return 0;
	EC_GROUP_free(c->group);
	BN_CTX_free(c->ctx);
	return err_set(e, ERR_PROVIDER, "dotenvx: libcrypto has no secp256k1");
}

static void dx_curve_close(struct dx_curve *c)
{
	EC_GROUP_free(c->group);
	BN_CTX_free(c->ctx);
}

/* 32 big-endian bytes into a constant-time secure BIGNUM; NULL when the
 * scalar is not in 1..n-1 or out of memory. */
static BIGNUM *dx_scalar(const struct dx_curve *c, const unsigned char d[32])
{
	BIGNUM *bn = BN_secure_new();

	if (!bn)
		return NULL;
	BN_set_flags(bn, BN_FLG_CONSTTIME);
	if (!BN_bin2bn(d, 32, bn) || BN_is_zero(bn) ||
	    BN_cmp(bn, EC_GROUP_get0_order(c->group)) >= 0) {
		BN_clear_free(bn);
		return NULL;
	}
	return bn;
}

/* point = scalar * (base, or the generator when base is NULL), written
 * uncompressed or compressed into out (len bytes). */
static int dx_mul(const struct dx_curve *c, const BIGNUM *k,
		  const EC_POINT *base, point_conversion_form_t form,
		  unsigned char *out, size_t len)
{
	EC_POINT *p = EC_POINT_new(c->group);
	int ok = p &&
		 (base ? EC_POINT_mul(c->group, p, NULL, base, k, c->ctx) :
			 EC_POINT_mul(c->group, p, k, NULL, NULL, c->ctx)) &&
		 EC_POINT_point2oct(c->group, p, form, out, len, c->ctx) == len;

	EC_POINT_clear_free(p);
	return ok ? 0 : -1;
}

/* hex (compressed or uncompressed, any case) into a point of the curve. */
static EC_POINT *dx_point_hex(const struct dx_curve *c, const char *hex,
			      size_t len)
{
	unsigned char raw[DX_POINT];
	size_t n = 0;
	EC_POINT *p;

	if (len != 2 * DX_COMPRESSED && len != 2 * DX_POINT)
		return NULL;
	if (sodium_hex2bin(raw, sizeof(raw), hex, len, NULL, &n, NULL) < 0 ||
	    n != len / 2)
		return NULL;
	p = EC_POINT_new(c->group);
	if (p && !EC_POINT_oct2point(c->group, p, raw, n, c->ctx)) {
		EC_POINT_free(p);
		p = NULL;
	}
	return p;
}

static bool dx_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void dx_trim(const char **s, size_t *len)
{
	while (*len && dx_space((*s)[0]))
		(*s)++, (*len)--;
	while (*len && dx_space((*s)[*len - 1]))
		(*len)--;
}

int dotenvx_key_parse(const char *text, size_t len, struct dotenvx_key *k,
		      struct err *e)
{
	struct dx_curve c;
	size_t n = 0;
	BIGNUM *bn = NULL;
	int rc;

	dx_trim(&text, &len);
	rc = len == DOTENVX_PRIVATE_HEX_LEN &&
	     sodium_hex2bin(k->d, sizeof(k->d), text, len, NULL, &n, NULL) == 0 &&
	     n == sizeof(k->d) ? 0 : -1;
	if (rc == 0 && dx_curve_open(&c, e) < 0) {
		dotenvx_key_wipe(k);
		return -1;
	}
	if (rc == 0) {
		bn = dx_scalar(&c, k->d);
		rc = bn ? 0 : -1;
		BN_clear_free(bn);
		dx_curve_close(&c);
	}
	secmem_stack_wipe();
	if (rc < 0) {
		dotenvx_key_wipe(k);
		return err_set(e, ERR_INVALID,
			       "not a dotenvx private key: %d hex digits of a secp256k1 scalar expected",
			       DOTENVX_PRIVATE_HEX_LEN);
	}
	return 0;
}

void dotenvx_key_wipe(struct dotenvx_key *k)
{
	sodium_memzero(k, sizeof(*k));
}

/* A random scalar in 1..n-1 into d. */
static int dx_random_scalar(const struct dx_curve *c, unsigned char d[32])
{
	BIGNUM *bn = BN_secure_new();
	int ok = bn != NULL;

	if (ok)
		BN_set_flags(bn, BN_FLG_CONSTTIME);
	do {
		ok = ok && BN_priv_rand_range(bn, EC_GROUP_get0_order(c->group));
	} while (ok && BN_is_zero(bn));
	ok = ok && BN_bn2binpad(bn, d, 32) == 32;
	BN_clear_free(bn);
	return ok ? 0 : -1;
}

int dotenvx_key_generate(struct secbuf *out, struct err *e)
{
	struct dotenvx_key k;
	struct dx_curve c;
	int rc;

	secbuf_clear(out);
	if (dx_curve_open(&c, e) < 0)
		return -1;
	rc = dx_random_scalar(&c, k.d);
	dx_curve_close(&c);
	if (rc < 0)
		rc = err_set(e, ERR_PROVIDER, "dotenvx: libcrypto failed to make a key");
	else if (secbuf_reserve(out, DOTENVX_PRIVATE_HEX_LEN) < 0)
		rc = err_oom(e);
	if (rc == 0) {
		sodium_bin2hex(out->data, DOTENVX_PRIVATE_HEX_LEN + 1, k.d,
			       sizeof(k.d));
		out->len = DOTENVX_PRIVATE_HEX_LEN;
	}
	dotenvx_key_wipe(&k);
	secmem_stack_wipe();
	return rc;
}

/* k's public point, form form, into out (len bytes). */
static int dx_public(const struct dotenvx_key *k, point_conversion_form_t form,
		     unsigned char *out, size_t len, struct err *e)
{
	struct dx_curve c;
	BIGNUM *bn;
	int rc;

	if (dx_curve_open(&c, e) < 0)
		return -1;
	bn = dx_scalar(&c, k->d);
	rc = bn ? dx_mul(&c, bn, NULL, form, out, len) : -1;
	BN_clear_free(bn);
	dx_curve_close(&c);
	secmem_stack_wipe();
	return rc < 0 ? err_set(e, ERR_INVALID, "dotenvx: not a private key") : 0;
}

int dotenvx_public_of(const struct dotenvx_key *k,
		      char hex[DOTENVX_PUBLIC_HEX_LEN + 1], struct err *e)
{
	unsigned char pub[DX_COMPRESSED];

	if (dx_public(k, POINT_CONVERSION_COMPRESSED, pub, sizeof(pub), e) < 0)
		return -1;
	sodium_bin2hex(hex, DOTENVX_PUBLIC_HEX_LEN + 1, pub, sizeof(pub));
	return 0;
}

bool dotenvx_public_matches(const struct dotenvx_key *k, const char *pub,
			    size_t len)
{
	unsigned char mine[DX_POINT], theirs[DX_POINT];
	struct dx_curve c;
	struct err e;
	EC_POINT *p;
	bool same;

	if (dx_public(k, POINT_CONVERSION_UNCOMPRESSED, mine, sizeof(mine), &e) < 0 ||
	    dx_curve_open(&c, &e) < 0)
		return false;
	p = dx_point_hex(&c, pub, len);
	same = p && EC_POINT_point2oct(c.group, p, POINT_CONVERSION_UNCOMPRESSED,
				       theirs, sizeof(theirs), c.ctx) == DX_POINT &&
	       !memcmp(mine, theirs, DX_POINT);
	EC_POINT_free(p);
	dx_curve_close(&c);
	return same;
}

void dotenvx_key_name(const char *prefix, const char *file, char *out,
		      size_t size)
{
	const char *base = strrchr(file, '/');
	size_t n;

	base = base ? base + 1 : file;
	n = (size_t)snprintf(out, size, "%s", prefix);
	if (strncmp(base, ".env.", 5) || !base[5] || n + 1 >= size)
		return;
	out[n++] = '_';
	for (const char *c = base + 5; *c && n + 1 < size; c++)
		out[n++] = *c == '.' ? '_' : (char)toupper((unsigned char)*c);
	out[n] = '\0';
}

bool dotenvx_is_public_name(const char *key)
{
	return !strncmp(key, "DOTENV_PUBLIC_KEY", 17) &&
	       (key[17] == '\0' || key[17] == '_');
}

bool dotenvx_is_encrypted(const char *val, size_t len)
{
	return len >= DX_PREFIX_LEN && !memcmp(val, DOTENVX_PREFIX, DX_PREFIX_LEN);
}

/* HKDF-SHA256(ephemeral | shared), no salt, no info, 32 bytes. */
static int dx_hkdf(const unsigned char eph[DX_POINT],
		   const unsigned char shared[DX_POINT], unsigned char key[DX_KEY])
{
	unsigned char ikm[2 * DX_POINT];
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[3];
	int ok;

	memcpy(ikm, eph, DX_POINT);
	memcpy(ikm + DX_POINT, shared, DX_POINT);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm,
						      sizeof(ikm));
	params[2] = OSSL_PARAM_construct_end();
	ok = ctx && EVP_KDF_derive(ctx, key, DX_KEY, params) > 0;
	/* freeing the context cleanses its copy of the input */
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	OPENSSL_cleanse(ikm, sizeof(ikm));
	return ok ? 0 : -1;
}

/* AES-256-GCM with a 16-byte nonce: in (len) into out (len), tag out or
 * checked. 0, or -1 (a decryption: the tag does not verify). */
static int dx_gcm(const unsigned char key[DX_KEY],
		  const unsigned char nonce[DX_NONCE], bool encrypt,
		  const unsigned char *in, size_t len, unsigned char *out,
		  unsigned char tag[DX_TAG])
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0, ok;

	ok = ctx && len <= INT32_MAX &&
	     EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, DX_NONCE, NULL) &&
	     EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, encrypt) &&
	     (encrypt || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, DX_TAG, tag)) &&
	     (len == 0 || EVP_CipherUpdate(ctx, out, &n, in, (int)len)) &&
	     EVP_CipherFinal_ex(ctx, out + n, &fin) &&
	     (!encrypt || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, DX_TAG, tag));
	/* freeing cleanses the key schedule */
	EVP_CIPHER_CTX_free(ctx);
	return ok && (size_t)n + (size_t)fin == len ? 0 : -1;
}

/* The symmetric key for an ephemeral point (uncompressed) and a scalar
 * times another point: the sender's (eph scalar, receiver's point) or the
 * receiver's (own scalar, ephemeral point). */
static int dx_shared_key(const struct dx_curve *c, const BIGNUM *k,
			 const EC_POINT *other,
			 const unsigned char eph[DX_POINT],
			 unsigned char key[DX_KEY])
{
	unsigned char shared[DX_POINT];
	int rc = dx_mul(c, k, other, POINT_CONVERSION_UNCOMPRESSED, shared,
			sizeof(shared));

	if (rc == 0)
		rc = dx_hkdf(eph, shared, key);
	OPENSSL_cleanse(shared, sizeof(shared));
	return rc;
}

/* raw (len bytes) as "encrypted:<base64>" into out. */
static int dx_armor(const unsigned char *raw, size_t len, struct secbuf *out,
		    struct err *e)
{
	size_t b64 = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);

	secbuf_clear(out);
	if (secbuf_reserve(out, DX_PREFIX_LEN + b64) < 0)
		return err_oom(e);
	memcpy(out->data, DOTENVX_PREFIX, DX_PREFIX_LEN);
	sodium_bin2base64(out->data + DX_PREFIX_LEN, b64, raw, len,
			  sodium_base64_VARIANT_ORIGINAL);
	out->len = strlen(out->data);
	return 0;
}

/* Fill raw (DX_HEAD + len bytes) with the sealed msg for point q. */
static int dx_seal(const struct dx_curve *c, const EC_POINT *q,
		   const void *msg, size_t len, unsigned char *raw)
{
	unsigned char eph_d[32], key[DX_KEY];
	BIGNUM *eph = NULL;
	int rc = dx_random_scalar(c, eph_d);

	if (rc == 0) {
		eph = dx_scalar(c, eph_d);
		rc = eph ? 0 : -1;
	}
	if (rc == 0)
		rc = dx_mul(c, eph, NULL, POINT_CONVERSION_UNCOMPRESSED, raw, DX_POINT);
	if (rc == 0)
		rc = dx_shared_key(c, eph, q, raw, key);
	if (rc == 0)
		randombytes_buf(raw + DX_POINT, DX_NONCE);
	if (rc == 0)
		rc = dx_gcm(key, raw + DX_POINT, true, msg, len, raw + DX_HEAD,
			    raw + DX_POINT + DX_NONCE);
	BN_clear_free(eph);
	OPENSSL_cleanse(eph_d, sizeof(eph_d));
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

int dotenvx_encrypt(const char *pub, size_t publen, const void *msg,
		    size_t len, struct secbuf *out, struct err *e)
{
	struct secbuf raw = SECBUF_INIT;
	struct dx_curve c;
	EC_POINT *q;
	int rc = -1;

	if (len > DX_RAW_MAX - DX_HEAD)
		return err_set(e, ERR_TOOBIG, "dotenvx: a value holds at most %d bytes",
			       DX_RAW_MAX - DX_HEAD);
	if (dx_curve_open(&c, e) < 0)
		return -1;
	q = dx_point_hex(&c, pub, publen);
	if (!q) {
		err_set(e, ERR_INVALID, "dotenvx: the public key is not a secp256k1 point in hex");
	} else if (secbuf_reserve(&raw, DX_HEAD + len) < 0) {
		err_oom(e);
	} else if (dx_seal(&c, q, msg, len, (unsigned char *)raw.data) < 0) {
		err_set(e, ERR_PROVIDER, "dotenvx: libcrypto failed to encrypt");
	} else {
		rc = dx_armor((unsigned char *)raw.data, DX_HEAD + len, out, e);
	}
	EC_POINT_free(q);
	dx_curve_close(&c);
	secbuf_free(&raw);
	secmem_stack_wipe();
	return rc;
}

/* The value's base64 into raw; *n its bytes. */
static int dx_unarmor(const char *val, size_t len, struct secbuf *raw,
		      size_t *n, struct err *e)
{
	const char *b64 = val + DX_PREFIX_LEN;
	size_t blen = len - DX_PREFIX_LEN;

	if (blen > sodium_base64_ENCODED_LEN(DX_RAW_MAX, sodium_base64_VARIANT_ORIGINAL))
		return err_set(e, ERR_PROVIDER, "dotenvx value too long");
	if (secbuf_reserve(raw, blen) < 0)
		return err_oom(e);
	if (sodium_base642bin((unsigned char *)raw->data, raw->cap, b64, blen,
			      NULL, n, NULL, sodium_base64_VARIANT_ORIGINAL) < 0 &&
	    sodium_base642bin((unsigned char *)raw->data, raw->cap, b64, blen,
			      NULL, n, NULL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) < 0)
		return err_set(e, ERR_PROVIDER, "malformed dotenvx value (not base64)");
	if (*n < DX_HEAD)
		return err_set(e, ERR_PROVIDER, "malformed dotenvx value (too short)");
	return 0;
}

/* The key raw (its first DX_POINT bytes: the ephemeral point) was sealed
 * with, for the holder of k. */
static int dx_open_key(const struct dotenvx_key *k, const unsigned char *raw,
		       unsigned char key[DX_KEY], struct err *e)
{
	struct dx_curve c;
	EC_POINT *eph;
	BIGNUM *d;
	int rc;

	if (dx_curve_open(&c, e) < 0)
		return -1;
	eph = EC_POINT_new(c.group);
	d = dx_scalar(&c, k->d);
	if (!eph || !d || raw[0] != 0x04 ||
	    !EC_POINT_oct2point(c.group, eph, raw, DX_POINT, c.ctx))
		rc = err_set(e, ERR_PROVIDER,
			     "malformed dotenvx value (no ephemeral public key)");
	else if (dx_shared_key(&c, d, eph, raw, key) < 0)
		rc = err_set(e, ERR_PROVIDER, "dotenvx: libcrypto failed to derive the key");
	else
		rc = 0;
	BN_clear_free(d);
	EC_POINT_free(eph);
	dx_curve_close(&c);
	return rc;
}

int dotenvx_decrypt(const struct dotenvx_key *k, const char *val, size_t len,
		    struct secbuf *out, struct err *e)
{
	struct secbuf raw = SECBUF_INIT;
	unsigned char key[DX_KEY];
	unsigned char *p;
	size_t n = 0, ct;
	int rc = -1;

	secbuf_clear(out);
	if (!dotenvx_is_encrypted(val, len))
		return err_set(e, ERR_PROVIDER, "not a dotenvx value (no encrypted: prefix)");
	if (dx_unarmor(val, len, &raw, &n, e) < 0 || dx_open_key(k, (unsigned char *)raw.data, key, e) < 0)
		goto out;
	p = (unsigned char *)raw.data;
	ct = n - DX_HEAD;
	if (secbuf_reserve(out, ct) < 0) {
		err_oom(e);
		goto out;
	}
	if (dx_gcm(key, p + DX_POINT, false, p + DX_HEAD, ct,
		   (unsigned char *)out->data, p + DX_POINT + DX_NONCE) < 0) {
		secbuf_clear(out);
		err_set(e, ERR_PROVIDER,
			"does not decrypt with this private key (a wrong key, or an altered value)");
		goto out;
	}
	out->len = ct;
	out->data[ct] = '\0';
	rc = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	secbuf_free(&raw);
	secmem_stack_wipe();
	return rc;
}
