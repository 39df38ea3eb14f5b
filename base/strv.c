/* strv.c - NULL-terminated vectors of strings (provider listings, names). */
#include "strv.h"

#include <stdlib.h>
#include <string.h>

int strv_push(struct strv *s, const char *str)
{
	char **v = realloc(s->v, (s->n + 2) * sizeof(*v));

	if (!v)
		return -1;
	s->v = v;
	v[s->n] = strdup(str);
	if (!v[s->n])
		return -1;
	v[++s->n] = NULL;
	return 0;
}

static int strv_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

void strv_sort_unique(struct strv *s)
{
	size_t j = 0;

	if (s->n < 2)
		return;
	qsort(s->v, s->n, sizeof(*s->v), strv_cmp);
	for (size_t i = 1; i < s->n; i++) {
		if (!strcmp(s->v[i], s->v[j]))
			free(s->v[i]);
		else
			s->v[++j] = s->v[i];
	}
	s->n = j + 1;
	s->v[s->n] = NULL;
}

void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}
