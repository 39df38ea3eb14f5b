/* sealed.c - Fernet-encrypted values of a provider section (sealed.h). */
#include "sealed.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../base/fernet.h"

static int sealed_key(const struct conf_fernet *f, const struct secbuf *text,
		      struct fernet_key *k, struct err *e)
{
	char ref[1024];

	if (fernet_key_parse(text->data, text->len, k, e) == 0)
		return 0;
	e->code = ERR_PROVIDER;	/* a read that fails: EIO, not EINVAL */
	ref_format(&f->key, ref, sizeof(ref));
	return err_prefix(e, "fernet_key %s: ", ref);
}

/* "what#key: reason (key from REF)" */
static int sealed_fail(const struct conf_fernet *f, const char *what,
		       const char *key, struct err *e)
{
	char ref[1024], msg[sizeof(e->msg)];

	ref_format(&f->key, ref, sizeof(ref));
	snprintf(msg, sizeof(msg), "%s", e->msg);
	return err_set(e, e->code, "%s%s%s: %s (fernet_key %s)", what,
		       key[0] ? "#" : "", key, msg, ref);
}

static int sealed_open_one(const struct conf_fernet *f,
			   const struct fernet_key *k, struct kvmap *m,
			   const struct kv *kv, const char *what,
			   struct secbuf *plain, struct err *e)
{
	if (fernet_decrypt(k, kv->val, kv->len, time(NULL), f->ttl_s, plain,
			   e) < 0)
		return sealed_fail(f, what, kv->key, e);
	/* same key: replaced in place, the map's order is unchanged */
	if (kvmap_set(m, kv->key, plain->data, plain->len) < 0)
		return err_oom(e);
	return 0;
}

int sealed_open(const struct conf_fernet *f, const struct secbuf *key,
		struct kvmap *m, const char *only, const char *what,
		struct err *e)
{
	struct secbuf plain = SECBUF_INIT;
	struct fernet_key k;
	int rc = 0;

	if (!f || !f->on)
		return 0;
	if (sealed_key(f, key, &k, e) < 0)
		return -1;
	for (size_t i = 0; rc == 0 && i < m->n; i++) {
		const struct kv *kv = &m->items[i];

		if (!only || !strcmp(kv->key, only))
			rc = sealed_open_one(f, &k, m, kv, what, &plain, e);
	}
	fernet_key_wipe(&k);
	secbuf_free(&plain);
	return rc;
}

static bool sealed_same(const struct kv *a, const struct kv *b)
{
	return a && b && a->len == b->len && !memcmp(a->val, b->val, a->len);
}

int sealed_seal(const struct conf_fernet *f, const struct secbuf *key,
		const struct kvmap *plain_cur, const struct kvmap *raw_cur,
		struct kvmap *next, const char *what, struct err *e)
{
	struct secbuf token = SECBUF_INIT;
	struct fernet_key k;
	int rc = 0;

	if (!f || !f->on)
		return 0;
	if (sealed_key(f, key, &k, e) < 0)
		return -1;
	for (size_t i = 0; rc == 0 && i < next->n; i++) {
		const struct kv *kv = &next->items[i];
		const struct kv *old = kvmap_get(raw_cur, kv->key);

		if (old && sealed_same(kv, kvmap_get(plain_cur, kv->key))) {
			if (kvmap_set(next, kv->key, old->val, old->len) < 0)
				rc = err_oom(e);
		} else if (fernet_encrypt(&k, kv->val, kv->len, time(NULL), NULL,
					  &token, e) < 0) {
			rc = sealed_fail(f, what, kv->key, e);
		} else if (kvmap_set(next, kv->key, token.data, token.len) < 0) {
			rc = err_oom(e);
		}
	}
	fernet_key_wipe(&k);
	secbuf_free(&token);
	return rc;
}
