/* snap.c - see snap.h */
#include "snap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define SNAP_KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES

static pthread_once_t snap_once = PTHREAD_ONCE_INIT;
static unsigned char *snap_key;	/* guarded, read-only once made */

static void snap_key_make(void)
{
	unsigned char *k;

	if (sodium_init() < 0)	/* done already by main; unit tests too */
		return;
	k = sodium_malloc(SNAP_KEY_LEN);
	if (!k)
		return;
	randombytes_buf(k, SNAP_KEY_LEN);
	sodium_mprotect_readonly(k);
	snap_key = k;
}

static const unsigned char *snap_key_get(void)
{
	pthread_once(&snap_once, snap_key_make);
	return snap_key;
}

void snap_hash(const struct secbuf *data, unsigned char h[SNAP_HASH_LEN])
{
	crypto_generichash(h, SNAP_HASH_LEN, (const unsigned char *)data->data,
			   data->len, NULL, 0);
	secmem_stack_wipe();
}

struct snap *snap_seal(const struct secbuf *data, const struct kvmap *base,
		       const void *conf, uint64_t changes, struct err *e)
{
	const unsigned char *key = snap_key_get();
	size_t ctlen = data->len + crypto_aead_xchacha20poly1305_ietf_ABYTES;
	struct snap *s = key ? malloc(sizeof(*s) + ctlen) : NULL;
	unsigned long long got;

	if (!s) {
		err_oom(e);
		return NULL;
	}
	s->base = (struct kvmap)KVMAP_INIT;
	if (base && kvmap_copy(&s->base, base) < 0) {
		free(s);
		err_oom(e);
		return NULL;
	}
	s->based = base != NULL;
	s->refs = 1;
	s->conf = conf;
	s->changes = changes;
	s->len = data->len;
	s->ctlen = ctlen;
	snap_hash(data, s->hash);
	randombytes_buf(s->nonce, sizeof(s->nonce));
	crypto_aead_xchacha20poly1305_ietf_encrypt(s->ct, &got,
		(const unsigned char *)data->data, data->len, NULL, 0, NULL,
		s->nonce, key);
	secmem_stack_wipe();
	return s;
}

int snap_open(const struct snap *s, struct secbuf *out, struct err *e)
{
	unsigned long long got;
	int rc;

	secbuf_clear(out);
	if (secbuf_reserve(out, s->len) < 0)
		return err_oom(e);
	rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
		(unsigned char *)out->data, &got, NULL, s->ct, s->ctlen, NULL, 0,
		s->nonce, snap_key_get());
	secmem_stack_wipe();
	if (rc < 0)
		return err_set(e, ERR_IO, "a kept snapshot does not open");
	out->len = (size_t)got;
	out->data[out->len] = '\0';
	return 0;
}

struct snap *snap_hold(struct snap *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void snap_put(struct snap *s)
{
	if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		kvmap_free(&s->base);
		free(s);
	}
}
