/* sealed.c - encrypted values of a provider section (sealed.h): Fernet
 * tokens, and dotenvx files (a store of type dotenvx). */
#include "sealed.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../base/dotenvx.h"
#include "../base/fernet.h"
#include "../base/log.h"

static bool sealed_same(const struct kv *a, const struct kv *b)
{
	return a && b && a->len == b->len && !memcmp(a->val, b->val, a->len);
}

/* ---- Fernet ---- */

static int sealed_key(const struct conf_sealed *f, const struct secbuf *text,
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
static int sealed_fail(const struct conf_sealed *f, const char *what,
		       const char *key, struct err *e)
{
	char ref[1024], msg[sizeof(e->msg)];

	ref_format(&f->key, ref, sizeof(ref));
	snprintf(msg, sizeof(msg), "%s", e->msg);
	return err_set(e, e->code, "%s%s%s: %s (fernet_key %s)", what,
		       key[0] ? "#" : "", key, msg, ref);
}

static int sealed_open_one(const struct conf_sealed *f,
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

static int sealed_fernet_open(const struct conf_sealed *f,
			      const struct secbuf *key, struct kvmap *m,
			      const char *only, const char *what, struct err *e)
{
	struct secbuf plain = SECBUF_INIT;
	struct fernet_key k;
	int rc = 0;

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

static int sealed_fernet_seal(const struct conf_sealed *f,
			      const struct secbuf *key,
			      const struct kvmap *plain_cur,
			      const struct kvmap *raw_cur, struct kvmap *next,
			      const char *what, struct err *e)
{
	struct secbuf token = SECBUF_INIT;
	struct fernet_key k;
	int rc = 0;

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

/* ---- dotenvx ---- */

static int sealed_dotenvx_key(const struct conf_sealed *f,
			      const struct secbuf *text, struct dotenvx_key *k,
			      char pub[DOTENVX_PUBLIC_HEX_LEN + 1], struct err *e)
{
	char ref[1024];

	if (dotenvx_key_parse(text->data, text->len, k, e) == 0 &&
	    dotenvx_public_of(k, pub, e) == 0)
		return 0;
	e->code = ERR_PROVIDER;	/* a read that fails: EIO, not EINVAL */
	ref_format(&f->key, ref, sizeof(ref));
	return err_prefix(e, "private_key %s: ", ref);
}

/* A public key as a message may show it: hex only, else a placeholder. */
static const char *sealed_pub_shown(const struct kv *kv)
{
	if (kv->len == 0 || kv->len > 2 * 65 ||
	    strspn(kv->val, "0123456789abcdefABCDEF") != kv->len)
		return "(not a public key)";
	return kv->val;
}

/* Every DOTENV_PUBLIC_KEY* of the file is k's, else the key pair drifted. */
static int sealed_dotenvx_verify(const struct conf_sealed *f,
				 const struct dotenvx_key *k, const char *pub,
				 const struct kvmap *m, const char *what,
				 struct err *e)
{
	char ref[1024];

	for (size_t i = 0; i < m->n; i++) {
		const struct kv *kv = &m->items[i];

		if (!dotenvx_is_public_name(kv->key) ||
		    dotenvx_public_matches(k, kv->val, kv->len))
			continue;
		ref_format(&f->key, ref, sizeof(ref));
		return err_set(e, ERR_PROVIDER,
			       "%s: %s is %s, but private_key %s is the key of %s: the file and the key are not one key pair",
			       what, kv->key, sealed_pub_shown(kv), ref, pub);
	}
	return 0;
}

static int sealed_dotenvx_open_one(const struct conf_sealed *f,
				   const struct dotenvx_key *k, const char *pub,
				   struct kvmap *m, const struct kv *kv,
				   const char *what, struct secbuf *plain,
				   struct err *e)
{
	char ref[1024], msg[sizeof(e->msg)];

	if (!dotenvx_is_encrypted(kv->val, kv->len))
		return 0;	/* plaintext in the file: read as it stands */
	if (dotenvx_decrypt(k, kv->val, kv->len, plain, e) < 0) {
		ref_format(&f->key, ref, sizeof(ref));
		snprintf(msg, sizeof(msg), "%s", e->msg);
		return err_set(e, e->code, "%s#%s: %s (private_key %s, public key %s)",
			       what, kv->key, msg, ref, pub);
	}
	if (kvmap_set(m, kv->key, plain->data, plain->len) < 0)
		return err_oom(e);
	return 0;
}

/* Drop the DOTENV_PUBLIC_KEY* lines: they name the key pair, they are no
 * value of the app. */
static void sealed_dotenvx_strip(struct kvmap *m)
{
	for (size_t i = m->n; i-- > 0;)
		if (dotenvx_is_public_name(m->items[i].key))
			kvmap_del(m, m->items[i].key);
}

static int sealed_dotenvx_open(const struct conf_sealed *f,
			       const struct secbuf *key, struct kvmap *m,
			       const char *only, const char *what,
			       struct err *e)
{
	char pub[DOTENVX_PUBLIC_HEX_LEN + 1];
	struct secbuf plain = SECBUF_INIT;
	struct dotenvx_key k;
	int rc;

	if (sealed_dotenvx_key(f, key, &k, pub, e) < 0)
		return -1;
	rc = sealed_dotenvx_verify(f, &k, pub, m, what, e);
	if (rc == 0)
		sealed_dotenvx_strip(m);
	for (size_t i = 0; rc == 0 && i < m->n; i++) {
		const struct kv *kv = &m->items[i];

		if (!only || !strcmp(kv->key, only))
			rc = sealed_dotenvx_open_one(f, &k, pub, m, kv, what,
						     &plain, e);
	}
	dotenvx_key_wipe(&k);
	secbuf_free(&plain);
	return rc;
}

/* The file's public key (its first DOTENV_PUBLIC_KEY*), else k's under
 * the name dotenvx gives a file named as what's last segment. */
static int sealed_dotenvx_pub(const struct kvmap *raw_cur, const char *mine,
			      const char *what, struct kvmap *pubs,
			      struct err *e)
{
	char name[256];

	for (size_t i = 0; i < raw_cur->n; i++)
		if (dotenvx_is_public_name(raw_cur->items[i].key) &&
		    kvmap_set(pubs, raw_cur->items[i].key, raw_cur->items[i].val,
			      raw_cur->items[i].len) < 0)
			return err_oom(e);
	if (pubs->n)
		return 0;
	dotenvx_key_name("DOTENV_PUBLIC_KEY", what, name, sizeof(name));
	return kvmap_set(pubs, name, mine, strlen(mine)) < 0 ? err_oom(e) : 0;
}

/* One value of next, as the file will hold it: unchanged ones keep their
 * ciphertext, changed ones are encrypted to pub, except where the file
 * kept the key in plaintext, which it goes on doing. */
static int sealed_dotenvx_seal_one(const struct kvmap *plain_cur,
				   const struct kvmap *raw_cur,
				   struct kvmap *next, const struct kv *kv,
				   const struct kv *pub, struct secbuf *ct,
				   struct err *e)
{
	const struct kv *old = kvmap_get(raw_cur, kv->key);

	if (old && sealed_same(kv, kvmap_get(plain_cur, kv->key)))
		return kvmap_set(next, kv->key, old->val, old->len) < 0 ? err_oom(e) : 0;
	if (old && !dotenvx_is_encrypted(old->val, old->len))
		return 0;
	if (dotenvx_encrypt(pub->val, pub->len, kv->val, kv->len, ct, e) < 0)
		return err_prefix(e, "%s: ", kv->key);
	return kvmap_set(next, kv->key, ct->data, ct->len) < 0 ? err_oom(e) : 0;
}

static int sealed_dotenvx_seal(const struct conf_sealed *f,
			       const struct secbuf *key,
			       const struct kvmap *plain_cur,
			       const struct kvmap *raw_cur, struct kvmap *next,
			       const char *what, struct err *e)
{
	char mine[DOTENVX_PUBLIC_HEX_LEN + 1];
	struct kvmap pubs = KVMAP_INIT;
	struct secbuf ct = SECBUF_INIT;
	struct dotenvx_key k;
	int rc;

	if (sealed_dotenvx_key(f, key, &k, mine, e) < 0)
		return -1;
	dotenvx_key_wipe(&k);
	rc = sealed_dotenvx_pub(raw_cur, mine, what, &pubs, e);
	sealed_dotenvx_strip(next);
	for (size_t i = 0; rc == 0 && i < next->n; i++)
		rc = sealed_dotenvx_seal_one(plain_cur, raw_cur, next,
					     &next->items[i], &pubs.items[0],
					     &ct, e);
	for (size_t i = 0; rc == 0 && i < pubs.n; i++)
		if (kvmap_set(next, pubs.items[i].key, pubs.items[i].val,
			      pubs.items[i].len) < 0)
			rc = err_oom(e);
	if (rc < 0)
		err_prefix(e, "%s: ", what);
	kvmap_free(&pubs);
	secbuf_free(&ct);
	return rc;
}

/* ---- either ---- */

int sealed_open(const struct conf_sealed *f, const struct secbuf *key,
		struct kvmap *m, const char *only, const char *what,
		struct err *e)
{
	if (!f || f->kind == SEAL_NONE)
		return 0;
	if (f->kind == SEAL_DOTENVX)
		return sealed_dotenvx_open(f, key, m, only, what, e);
	return sealed_fernet_open(f, key, m, only, what, e);
}

int sealed_seal(const struct conf_sealed *f, const struct secbuf *key,
		const struct kvmap *plain_cur, const struct kvmap *raw_cur,
		struct kvmap *next, const char *what, struct err *e)
{
	if (!f || f->kind == SEAL_NONE)
		return 0;
	if (f->kind == SEAL_DOTENVX)
		return sealed_dotenvx_seal(f, key, plain_cur, raw_cur, next, what, e);
	return sealed_fernet_seal(f, key, plain_cur, raw_cur, next, what, e);
}

