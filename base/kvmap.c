/* kvmap.c - see kvmap.h */
#include "kvmap.h"

#include <stdlib.h>
#include <string.h>

#include "secmem.h"

/* Index of key, or of where it would go; *found tells which. */
static size_t kvmap_find(const struct kvmap *m, const char *key, bool *found)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->items[mid].key, key);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static int kvmap_grow(struct kvmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 8;
	struct kv *items;

	if (m->n < m->cap)
		return 0;
	/* the array holds pointers only, realloc leaves no secret behind */
	items = realloc(m->items, cap * sizeof(*items));
	if (!items)
		return -1;
	m->items = items;
	m->cap = cap;
	return 0;
}

int kvmap_set(struct kvmap *m, const char *key, const void *val, size_t len)
{
	bool found;
	size_t i = kvmap_find(m, key, &found);
	char *v = secmem_dup(val, len);
	char *k;

	if (!v)
		return -1;
	if (found) {
		secmem_free(m->items[i].val, m->items[i].len);
		m->items[i].val = v;
		m->items[i].len = len;
		return 0;
	}
	k = strdup(key);
	if (!k || kvmap_grow(m) < 0) {
		free(k);
		secmem_free(v, len);
		return -1;
	}
	memmove(&m->items[i + 1], &m->items[i], (m->n - i) * sizeof(*m->items));
	m->items[i] = (struct kv){ .key = k, .val = v, .len = len };
	m->n++;
	return 0;
}

const struct kv *kvmap_get(const struct kvmap *m, const char *key)
{
	bool found;
	size_t i = kvmap_find(m, key, &found);

	return found ? &m->items[i] : NULL;
}

bool kvmap_del(struct kvmap *m, const char *key)
{
	bool found;
	size_t i = kvmap_find(m, key, &found);

	if (!found)
		return false;
	free(m->items[i].key);
	secmem_free(m->items[i].val, m->items[i].len);
	m->n--;
	memmove(&m->items[i], &m->items[i + 1], (m->n - i) * sizeof(*m->items));
	return true;
}

int kvmap_copy(struct kvmap *dst, const struct kvmap *src)
{
	kvmap_free(dst);
	for (size_t i = 0; i < src->n; i++) {
		const struct kv *kv = &src->items[i];

		if (kvmap_set(dst, kv->key, kv->val, kv->len) < 0) {
			kvmap_free(dst);
			return -1;
		}
	}
	return 0;
}

bool kvmap_equal(const struct kvmap *a, const struct kvmap *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct kv *x = &a->items[i], *y = &b->items[i];

		if (strcmp(x->key, y->key) || x->len != y->len ||
		    memcmp(x->val, y->val, x->len))
			return false;
	}
	return true;
}

void kvmap_free(struct kvmap *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->items[i].key);
		secmem_free(m->items[i].val, m->items[i].len);
	}
	free(m->items);
	*m = (struct kvmap)KVMAP_INIT;
}
