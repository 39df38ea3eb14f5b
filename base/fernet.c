/* fernet.c - the Fernet token codec (fernet.h): libcrypto for AES-128-CBC
 * and HMAC-SHA256, libsodium for base64, randomness and wiping. */
#include "fernet.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>

#define FERNET_VERSION 0x80
#define FERNET_HEAD (1 + 8 + 16)	/* version, timestamp, IV */
#define FERNET_MAC 32
#define FERNET_BLOCK 16
/* a token's bytes before base64: at most a 64 KiB value and padding */
#define FERNET_RAW_MAX (FERNET_HEAD + 64 * 1024 + FERNET_BLOCK + FERNET_MAC)

static bool fernet_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void fernet_trim(const char **s, size_t *len)
{
	while (*len && fernet_space((*s)[0]))
		(*s)++, (*len)--;
	while (*len && fernet_space((*s)[*len - 1]))
		(*len)--;
}

/* URL-safe base64, padded or not, into at most max bytes at out. */
static int fernet_unbase64(const char *s, size_t len, unsigned char *out,
			   size_t max, size_t *n)
{
	if (sodium_base642bin(out, max, s, len, NULL, n, NULL,
			      sodium_base64_VARIANT_URLSAFE) == 0)
		return 0;
	return sodium_base642bin(out, max, s, len, NULL, n, NULL,
				 sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int fernet_key_parse(const char *text, size_t len, struct fernet_key *k,
		     struct err *e)
{
	unsigned char raw[32];
	size_t n = 0;
	int rc;

	fernet_trim(&text, &len);
	rc = fernet_unbase64(text, len, raw, sizeof(raw), &n);
	if (rc == 0 && n == sizeof(raw)) {
		memcpy(k->sign, raw, 16);
		memcpy(k->enc, raw + 16, 16);
	}
	sodium_memzero(raw, sizeof(raw));
	secmem_stack_wipe();
	if (rc < 0 || n != sizeof(raw))
		return err_set(e, ERR_INVALID,
			       "not a Fernet key: 32 bytes in URL-safe base64 (%d characters) expected",
			       FERNET_KEY_TEXT_LEN);
	return 0;
}

void fernet_key_wipe(struct fernet_key *k)
{
	sodium_memzero(k, sizeof(*k));
}

static int fernet_mac(const struct fernet_key *k, const unsigned char *data,
		      size_t len, unsigned char mac[FERNET_MAC])
{
	unsigned int n = 0;

	return HMAC(EVP_sha256(), k->sign, sizeof(k->sign), data, len, mac,
		    &n) && n == FERNET_MAC ? 0 : -1;
}

/* AES-128-CBC with PKCS#7 of len bytes at in into out (room for len + 16);
 * *outlen gets the bytes written. 0, or -1 (a decryption: bad padding). */
static int fernet_cbc(const struct fernet_key *k, const unsigned char *iv,
		      bool encrypt, const unsigned char *in, size_t len,
		      unsigned char *out, size_t *outlen)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n1 = 0, n2 = 0, ok;

	if (!ctx || len > INT32_MAX)
		ok = 0;
	else
		ok = EVP_CipherInit_ex(ctx, EVP_aes_128_cbc(), NULL, k->enc, iv,
				       encrypt) &&
		     EVP_CipherUpdate(ctx, out, &n1, in, (int)len) &&
		     EVP_CipherFinal_ex(ctx, out + n1, &n2);
	/* freeing cleanses the key schedule and buffered blocks */
	EVP_CIPHER_CTX_free(ctx);
	*outlen = ok ? (size_t)n1 + (size_t)n2 : 0;
	return ok ? 0 : -1;
}

int fernet_encrypt(const struct fernet_key *k, const void *msg, size_t len,
		   int64_t now, const unsigned char *iv, struct secbuf *out,
		   struct err *e)
{
	size_t cap = FERNET_HEAD + len + FERNET_BLOCK + FERNET_MAC, ct = 0;
	struct secbuf raw = SECBUF_INIT;
	unsigned char *p;
	int rc = -1;

	secbuf_clear(out);
	if (secbuf_reserve(&raw, cap) < 0)
		return err_oom(e);
	p = (unsigned char *)raw.data;
	p[0] = FERNET_VERSION;
	for (int i = 0; i < 8; i++)
		p[1 + i] = (unsigned char)((uint64_t)now >> (56 - 8 * i));
	if (iv)
		memcpy(p + 9, iv, 16);
	else
		randombytes_buf(p + 9, 16);
	if (fernet_cbc(k, p + 9, true, msg, len, p + FERNET_HEAD, &ct) < 0 ||
	    fernet_mac(k, p, FERNET_HEAD + ct, p + FERNET_HEAD + ct) < 0) {
		err_set(e, ERR_PROVIDER, "Fernet: libcrypto failed to encrypt");
		goto out;
	}
	raw.len = FERNET_HEAD + ct + FERNET_MAC;
	if (secbuf_reserve(out, sodium_base64_ENCODED_LEN(raw.len,
				sodium_base64_VARIANT_URLSAFE)) < 0) {
		err_oom(e);
		goto out;
	}
	sodium_bin2base64(out->data, out->cap, p, raw.len,
			  sodium_base64_VARIANT_URLSAFE);
	out->len = strlen(out->data);
	rc = 0;
out:
	secbuf_free(&raw);
	secmem_stack_wipe();
	return rc;
}

static uint64_t fernet_time(const unsigned char *p)
{
	uint64_t t = 0;

	for (int i = 0; i < 8; i++)
		t = t << 8 | p[1 + i];
	return t;
}

/* The decoded token's layout, MAC and age. */
static int fernet_verify(const struct fernet_key *k, const unsigned char *p,
			 size_t n, int64_t now, long ttl_s, struct err *e)
{
	unsigned char mac[FERNET_MAC];
	int64_t t;
	int same;

	if (n < FERNET_HEAD + FERNET_BLOCK + FERNET_MAC ||
	    (n - FERNET_HEAD - FERNET_MAC) % FERNET_BLOCK ||
	    p[0] != FERNET_VERSION)
		return err_set(e, ERR_PROVIDER, "not a Fernet token");
	if (fernet_mac(k, p, n - FERNET_MAC, mac) < 0)
		return err_set(e, ERR_PROVIDER, "Fernet: libcrypto failed");
	same = CRYPTO_memcmp(mac, p + n - FERNET_MAC, FERNET_MAC) == 0;
	sodium_memzero(mac, sizeof(mac));
	if (!same)
		return err_set(e, ERR_PROVIDER,
			       "Fernet token does not verify (a wrong key, or an altered token)");
	if (ttl_s <= 0)
		return 0;
	t = fernet_time(p) > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)fernet_time(p);
	if (t < now - ttl_s)
		return err_set(e, ERR_PROVIDER,
			       "Fernet token expired (made %lld s ago; fernet_ttl is %ld s)",
			       (long long)(now - t), ttl_s);
	if (t > now + FERNET_MAX_CLOCK_SKEW)
		return err_set(e, ERR_PROVIDER,
			       "Fernet token is from the future (%lld s ahead of this clock)",
			       (long long)(t - now));
	return 0;
}

int fernet_decrypt(const struct fernet_key *k, const char *token, size_t len,
		   int64_t now, long ttl_s, struct secbuf *out, struct err *e)
{
	struct secbuf raw = SECBUF_INIT;
	size_t n = 0, ct;
	const unsigned char *p;
	int rc = -1;

	secbuf_clear(out);
	fernet_trim(&token, &len);
	if (len > sodium_base64_ENCODED_LEN(FERNET_RAW_MAX,
					    sodium_base64_VARIANT_URLSAFE))
		return err_set(e, ERR_PROVIDER, "Fernet token too long");
	if (secbuf_reserve(&raw, len) < 0)
		return err_oom(e);
	if (fernet_unbase64(token, len, (unsigned char *)raw.data, raw.cap,
			    &n) < 0) {
		err_set(e, ERR_PROVIDER, "not a Fernet token (not URL-safe base64)");
		goto out;
	}
	p = (const unsigned char *)raw.data;
	if (fernet_verify(k, p, n, now, ttl_s, e) < 0)
		goto out;
	ct = n - FERNET_HEAD - FERNET_MAC;
	if (secbuf_reserve(out, ct + FERNET_BLOCK) < 0) {
		err_oom(e);
		goto out;
	}
	/* after a good MAC, bad padding means a token made with a wrong
	 * encryption half: as good as a wrong key */
	if (fernet_cbc(k, p + 9, false, p + FERNET_HEAD, ct,
		       (unsigned char *)out->data, &out->len) < 0) {
		secbuf_clear(out);
		err_set(e, ERR_PROVIDER, "Fernet token does not decrypt (bad padding)");
		goto out;
	}
	out->data[out->len] = '\0';
	rc = 0;
out:
	secbuf_free(&raw);
	secmem_stack_wipe();
	return rc;
}
