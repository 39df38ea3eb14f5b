/* fernet.h - Fernet tokens (github.com/fernet/spec), as Python's
 * cryptography.fernet makes and reads them.
 *
 * A key is 32 bytes in URL-safe base64: a 16-byte signing key, then a
 * 16-byte AES-128 key. A token is URL-safe base64 (padded) of
 *   0x80 | timestamp (8 bytes, big-endian seconds) | IV (16)
 *   | AES-128-CBC ciphertext (PKCS#7) | HMAC-SHA256 of all before (32).
 * The HMAC is checked in constant time before anything is decrypted.
 * Messages never hold a key, a token's bytes or a plaintext.
 */
#ifndef SECRETFS_FERNET_H
#define SECRETFS_FERNET_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "secmem.h"

#define FERNET_KEY_TEXT_LEN 44	/* base64 of 32 bytes, padded */
/* Tokens newer than now by more than this are refused when a ttl is set
 * (cryptography.fernet's allowance for clock skew). */
#define FERNET_MAX_CLOCK_SKEW 60

struct fernet_key {
	unsigned char sign[16];
	unsigned char enc[16];
};

/* len bytes of key text (leading and trailing whitespace ignored, padding
 * optional) into k. ERR_INVALID when it is not 32 bytes of URL-safe
 * base64. Wipe k with fernet_key_wipe. */
int fernet_key_parse(const char *text, size_t len, struct fernet_key *k,
		     struct err *e);
void fernet_key_wipe(struct fernet_key *k);

/* The token of len bytes at msg, made at now (Unix seconds) with iv (16
 * bytes; NULL: random), into out (replaced). -1 only when out of memory or
 * when libcrypto fails. */
int fernet_encrypt(const struct fernet_key *k, const void *msg, size_t len,
		   int64_t now, const unsigned char *iv, struct secbuf *out,
		   struct err *e);

/* The plaintext of token (len bytes, surrounding whitespace ignored) into
 * out (replaced, wiped memory). ttl_s > 0: refuse a token older than ttl_s
 * seconds at now, or more than FERNET_MAX_CLOCK_SKEW in its future.
 * ERR_PROVIDER when the token is malformed, does not verify under k (a
 * wrong key or an altered token) or has expired. */
int fernet_decrypt(const struct fernet_key *k, const char *token, size_t len,
		   int64_t now, long ttl_s, struct secbuf *out, struct err *e);

#endif
