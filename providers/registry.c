/* registry.c - the table of provider types, and configured providers. */
#include "provider.h"

#include <stdlib.h>
#include <string.h>

#include "../cache/secmem.h"

static const struct provider_ops *const provider_types[] = {
	&file_provider_ops,
	&vault_provider_ops,
	&aws_provider_ops,
};

const struct provider_ops *provider_ops_find(const char *type)
{
	for (size_t i = 0; i < sizeof(provider_types) / sizeof(provider_types[0]); i++)
		if (!strcmp(provider_types[i]->type, type))
			return provider_types[i];
	return NULL;
}

int provider_open_all(const struct config *c, struct provider **out,
		      size_t *n, struct err *e)
{
	struct provider *p = calloc(c->nproviders ? c->nproviders : 1, sizeof(*p));

	if (!p)
		return err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < c->nproviders; i++) {
		const struct provider_conf *pc = &c->providers[i];

		p[i].name = strdup(pc->name);
		p[i].ops = provider_ops_find(pc->type);
		if (!p[i].name || !p[i].ops ||
		    p[i].ops->create(pc, c, &p[i].state, e) < 0) {
			if (!p[i].name || !p[i].ops)
				err_set(e, ERR_NOMEM, "out of memory");
			err_prefix(e, "%s:%d: provider %s: ", pc->where.file,
				   pc->where.line, pc->name);
			p[i].ops = NULL;
			provider_close_all(p, i + 1);
			return -1;
		}
	}
	*out = p;
	*n = c->nproviders;
	return 0;
}

void provider_close_all(struct provider *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++) {
		if (p[i].ops && p[i].ops->destroy)
			p[i].ops->destroy(p[i].state);
		free(p[i].name);
	}
	free(p);
}

struct provider *provider_find(struct provider *p, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(p[i].name, name))
			return &p[i];
	return NULL;
}

void entry_free(struct entry *en)
{
	kvmap_free(&en->map);
	en->version[0] = '\0';
}

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
