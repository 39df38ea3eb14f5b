/* kvmap.h - a key -> value map of secrets, kept sorted by key.
 *
 * The shape every provider entry, app view and parsed .env takes. Keys are
 * plain C strings; values are byte strings (len is the truth, a NUL is
 * appended for convenience) and are wiped when replaced or freed.
 */
#ifndef SECRETFS_KVMAP_H
#define SECRETFS_KVMAP_H

#include <stdbool.h>
#include <stddef.h>

struct kv {
	char *key;
	char *val;
	size_t len;
};

struct kvmap {
	struct kv *items;	/* sorted by strcmp(key) */
	size_t n;
	size_t cap;
};

#define KVMAP_INIT { NULL, 0, 0 }

/* Copy key and value in, replacing any old value. 0, or -1 out of memory. */
int kvmap_set(struct kvmap *m, const char *key, const void *val, size_t len);
const struct kv *kvmap_get(const struct kvmap *m, const char *key);
/* true when the key was there. */
bool kvmap_del(struct kvmap *m, const char *key);
/* dst is freed first. 0, or -1 out of memory. */
int kvmap_copy(struct kvmap *dst, const struct kvmap *src);
bool kvmap_equal(const struct kvmap *a, const struct kvmap *b);
void kvmap_free(struct kvmap *m);

#endif
