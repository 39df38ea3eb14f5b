/* registry.c - the table of provider types, and configured providers. */
#include "provider.h"

#include <stdlib.h>
#include <string.h>

#include "../base/secmem.h"

/* The one list of provider types: X(NAME) means NAME_provider_ops, defined
 * in the provider's own file. A new backend adds one line here. */
#define PROVIDER_TYPES(X) \
	X(file) \
	X(vault) \
	X(aws) \
	X(azure) \
	X(gcp) \
	X(onepassword) \
	X(env) \
	X(dir) \
	X(dotenvx)

#define PROVIDER_DECLARE(name) extern const struct provider_ops name##_provider_ops;
#define PROVIDER_ENTRY(name) &name##_provider_ops,
PROVIDER_TYPES(PROVIDER_DECLARE)

static const struct provider_ops *const provider_types[] = {
	PROVIDER_TYPES(PROVIDER_ENTRY)
};

const struct provider_ops *provider_ops_find(const char *type)
{
	for (size_t i = 0; i < sizeof(provider_types) / sizeof(provider_types[0]); i++)
		if (!strcmp(provider_types[i]->type, type))
			return provider_types[i];
	return NULL;
}

int provider_open_all(const struct provider_conf *confs, size_t n,
		      struct provider **out, struct err *e)
{
	struct provider *p = calloc(n ? n : 1, sizeof(*p));

	if (!p)
		return err_oom(e);
	for (size_t i = 0; i < n; i++) {
		const struct provider_conf *pc = &confs[i];

		p[i].name = strdup(pc->name);
		p[i].ops = provider_ops_find(pc->type);
		if (!p[i].name || !p[i].ops ||
		    p[i].ops->create(pc, &p[i].state, e) < 0) {
			if (!p[i].name || !p[i].ops)
				err_oom(e);
			err_prefix(e, "%s:%d: provider %s: ", pc->where.file,
				   pc->where.line, pc->name);
			p[i].ops = NULL;
			provider_close_all(p, i + 1);
			return -1;
		}
	}
	*out = p;
	return 0;
}

struct provider *provider_open(const struct provider_conf *pc, struct err *e)
{
	struct provider *p;

	if (provider_open_all(pc, 1, &p, e) < 0)
		return NULL;
	return p;
}

void provider_close(struct provider *p)
{
	provider_close_all(p, 1);
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

void entry_free(struct entry *en)
{
	kvmap_free(&en->map);
	en->version[0] = '\0';
}

const char *conf_opt_get(const struct provider_conf *p, const char *key)
{
	for (size_t i = 0; i < p->nopts; i++)
		if (!strcmp(p->opts[i].key, key))
			return p->opts[i].value;
	return NULL;
}

bool provider_conf_same(const struct provider_conf *a,
			const struct provider_conf *b)
{
	if (strcmp(a->name, b->name) || strcmp(a->type, b->type) ||
	    a->nopts != b->nopts || a->request_timeout_ms != b->request_timeout_ms)
		return false;
	for (size_t i = 0; i < a->nopts; i++)
		if (strcmp(a->opts[i].key, b->opts[i].key) ||
		    strcmp(a->opts[i].value, b->opts[i].value))
			return false;
	return true;
}
