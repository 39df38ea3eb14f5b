/* dotenvx.h - dotenvx's encrypted values (docs/dotenvx.md), as the
 * dotenvx CLI (eciesjs, secp256k1) makes and reads them.
 *
 * A private key is 32 bytes written as 64 hex digits (.env.keys'
 * DOTENV_PRIVATE_KEY[_ENV]=...); its public key is the compressed point,
 * 66 hex digits starting 02 or 03 (a file's DOTENV_PUBLIC_KEY[_ENV]=...).
 * A value is "encrypted:" and standard base64 (padded) of
 *   ephemeral public key (65 bytes, uncompressed) | nonce (16)
 *   | AES-256-GCM tag (16) | ciphertext
 * under the key HKDF-SHA256(ephemeral public key | shared point, both
 * uncompressed; no salt, no info; 32 bytes). The tag is checked before a
 * byte of plaintext is given out. Messages never hold a key, a value or a
 * ciphertext.
 */
#ifndef SECRETFS_DOTENVX_H
#define SECRETFS_DOTENVX_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "secmem.h"

#define DOTENVX_PREFIX "encrypted:"
#define DOTENVX_PRIVATE_HEX_LEN 64
#define DOTENVX_PUBLIC_HEX_LEN 66	/* compressed */

struct dotenvx_key {
	unsigned char d[32];	/* the private scalar, big-endian */
};

/* len bytes of text (surrounding whitespace ignored): 64 hex digits of a
 * scalar in 1..n-1 of secp256k1. ERR_INVALID otherwise. Wipe k with
 * dotenvx_key_wipe. */
int dotenvx_key_parse(const char *text, size_t len, struct dotenvx_key *k,
		      struct err *e);
void dotenvx_key_wipe(struct dotenvx_key *k);

/* A new private key, as 64 lowercase hex digits, into out (replaced). */
int dotenvx_key_generate(struct secbuf *out, struct err *e);

/* k's public key: 66 lowercase hex digits of the compressed point. */
int dotenvx_public_of(const struct dotenvx_key *k,
		      char hex[DOTENVX_PUBLIC_HEX_LEN + 1], struct err *e);

/* Does pub (len bytes of hex: a compressed or uncompressed point, any
 * case) name the public key of k? false too when pub is no point. */
bool dotenvx_public_matches(const struct dotenvx_key *k, const char *pub,
			    size_t len);

/* The name dotenvx gives the key of a file: prefix ("DOTENV_PUBLIC_KEY"
 * or "DOTENV_PRIVATE_KEY"), then for a file named .env.NAME "_" and NAME
 * upper-cased with '.' and '-' kept as dotenvx keeps them except '.' made
 * '_' (.env.ci.local: _CI_LOCAL); nothing more for any other name. file
 * may be a path. Cut to size. */
void dotenvx_key_name(const char *prefix, const char *file, char *out,
		      size_t size);

/* Whether key is a DOTENV_PUBLIC_KEY[_ENV] line's. */
bool dotenvx_is_public_name(const char *key);

/* Whether a stored value is one of ours: it starts with "encrypted:". */
bool dotenvx_is_encrypted(const char *val, size_t len);

/* "encrypted:..." of the len bytes at msg to the public key pub (len
 * publen: hex of a compressed or uncompressed point) into out (replaced).
 * ERR_INVALID when pub is no point of the curve. */
int dotenvx_encrypt(const char *pub, size_t publen, const void *msg,
		    size_t len, struct secbuf *out, struct err *e);

/* The plaintext of an "encrypted:..." value (len bytes) into out
 * (replaced, wiped memory). ERR_PROVIDER when it is malformed or does not
 * open with k (a wrong key, or altered). */
int dotenvx_decrypt(const struct dotenvx_key *k, const char *val, size_t len,
		    struct secbuf *out, struct err *e);

#endif
