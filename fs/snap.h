/* snap.h - a file's bytes as made at one change, kept encrypted.
 *
 * Rendering .env from the cache costs a decryption, a parse and a render
 * per open, and a deep stack wipe after them. What a warm open needs of it
 * is only its hash and size (to keep the kernel's page cache right) and,
 * should the kernel ask for pages, the bytes themselves: so the bytes are
 * made once per change and kept sealed (XChaCha20-Poly1305 under a random
 * per-process key in guarded memory; no plaintext stays), shared by every
 * open file of that version, and opened only by a READ.
 */
#ifndef SECRETFS_SNAP_H
#define SECRETFS_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"
#include "../base/kvmap.h"
#include "../base/secmem.h"

#define SNAP_HASH_LEN 16

/* Sealed bytes, counted references; the fields are read-only once made. */
struct snap {
	unsigned refs;		/* atomic */
	/* what it was made from: the app's config and app_changes before */
	const void *conf;
	uint64_t changes;
	/* a .env's, when the read that made it took them: the fingerprints
	 * of the values it shows (keyed hashes, no plaintext), a new
	 * reader's merge base (fs/edit.h) */
	bool based;
	struct kvmap base;
	unsigned char hash[SNAP_HASH_LEN];	/* of the plaintext */
	size_t len;		/* of the plaintext */
	size_t ctlen;
	unsigned char nonce[24];
	unsigned char ct[];
};

/* The hash of data a snapshot of it keeps (BLAKE2b, unkeyed: what the
 * node table compares). */
void snap_hash(const struct secbuf *data, unsigned char h[SNAP_HASH_LEN]);
/* data sealed, with base copied (NULL: none) and one reference; NULL
 * when out of memory (e says so). */
struct snap *snap_seal(const struct secbuf *data, const struct kvmap *base,
		       const void *conf, uint64_t changes, struct err *e);
/* The plaintext of s into out (replacing it). */
int snap_open(const struct snap *s, struct secbuf *out, struct err *e);
struct snap *snap_hold(struct snap *s);
/* Drop a reference; NULL is fine. */
void snap_put(struct snap *s);

#endif
