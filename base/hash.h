/* hash.h - FNV-1a, for hash tables and lock striping (not for secrets:
 * anything keyed by a secret uses libsodium's keyed BLAKE2b). */
#ifndef SECRETFS_HASH_H
#define SECRETFS_HASH_H

#include <stdint.h>

#define HASH_FNV1A_INIT 0xcbf29ce484222325ULL

/* Continue the 64-bit FNV-1a hash h over the string s. */
static inline uint64_t hash_fnv1a(uint64_t h, const char *s)
{
	for (const unsigned char *u = (const unsigned char *)s; *u; u++)
		h = (h ^ *u) * 0x100000001b3ULL;
	return h;
}

#endif
