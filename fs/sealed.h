/* sealed.h - values a provider section keeps encrypted: Fernet tokens
 * (fernet_key on any section), or dotenvx files (type dotenvx,
 * private_key; docs/dotenvx.md).
 *
 *   [provider vault]
 *   type = vault
 *   fernet_key = environ://FERNET_KEY    ; any reference to the key
 *   fernet_ttl = 30d                     ; optional: refuse older tokens
 *
 * fs/app.c resolves the key through the cache and calls these on the
 * entries it reads and writes: the cache and the store hold tokens, only
 * the value served is plaintext. A token that does not open fails the
 * whole read with a message naming the key and both references, never a
 * value. Writes encrypt changed values and keep the tokens of unchanged
 * ones, so a write does not rewrite every key's token.
 *
 * dotenvx: the file's DOTENV_PUBLIC_KEY* lines must be the private key's
 * public key (else the read fails naming file, line and both keys: the
 * file and the vault drifted apart); they are taken out of the map, every
 * "encrypted:" value is opened (all or nothing, naming file, key and key
 * pair on failure), plaintext values pass. Writes encrypt changed values
 * to the file's public key, keep unchanged ones' ciphertexts and plaintext
 * keys plaintext, and put the DOTENV_PUBLIC_KEY* lines back (a new file
 * gets the one dotenvx would name for it).
 */
#ifndef SECRETFS_SEALED_H
#define SECRETFS_SEALED_H

#include "../base/err.h"
#include "../base/kvmap.h"
#include "../base/secmem.h"
#include "config.h"

/* Replace the tokens of m by their plaintext: every key, or only the key
 * only (not NULL; absent: nothing to do). key: the key's text as its
 * reference gave it; what: the entry's reference text, for messages. */
int sealed_open(const struct conf_sealed *f, const struct secbuf *key,
		struct kvmap *m, const char *only, const char *what,
		struct err *e);

/* Make next (plaintext) a map to store: a value equal to the one in
 * plain_cur keeps its token from raw_cur, the others are encrypted now. */
int sealed_seal(const struct conf_sealed *f, const struct secbuf *key,
		const struct kvmap *plain_cur, const struct kvmap *raw_cur,
		struct kvmap *next, const char *what, struct err *e);

#endif
