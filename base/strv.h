/* strv.h - a growable, NULL-terminated vector of malloc'd strings. */
#ifndef SECRETFS_STRV_H
#define SECRETFS_STRV_H

#include <stddef.h>

struct strv {
	char **v;	/* NULL-terminated once anything was pushed */
	size_t n;
};

/* Append a copy of str. 0, or -1 out of memory. */
int strv_push(struct strv *s, const char *str);
/* Sort by strcmp and drop duplicates: what a provider's list() returns. */
void strv_sort_unique(struct strv *s);
void strv_free(struct strv *s);

#endif
