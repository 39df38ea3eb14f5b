/* secmem.c - see secmem.h */
#include "secmem.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int secbuf_reserve(struct secbuf *b, size_t extra)
{
	size_t want, cap;
	char *p;

	if (extra > (size_t)-1 / 2 - b->len)
		return -1;
	want = b->len + extra + 1;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap *= 2;
	p = malloc(cap);
	if (!p)
		return -1;
	if (b->data) {
		memcpy(p, b->data, b->len);
		sodium_memzero(b->data, b->cap);
		free(b->data);
	}
	p[b->len] = '\0';
	b->data = p;
	b->cap = cap;
	return 0;
}

int secbuf_append(struct secbuf *b, const void *p, size_t n)
{
	if (secbuf_reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int secbuf_puts(struct secbuf *b, const char *s)
{
	return secbuf_append(b, s, strlen(s));
}

int secbuf_putc(struct secbuf *b, char c)
{
	return secbuf_append(b, &c, 1);
}

int secbuf_set(struct secbuf *b, const void *p, size_t n)
{
	secbuf_clear(b);
	return secbuf_append(b, p, n);
}

void secbuf_clear(struct secbuf *b)
{
	if (b->data)
		sodium_memzero(b->data, b->cap);
	b->len = 0;
}

void secbuf_truncate(struct secbuf *b, size_t n)
{
	if (n >= b->len)
		return;
	sodium_memzero(b->data + n, b->len - n);
	b->len = n;
}

void secbuf_free(struct secbuf *b)
{
	secmem_free(b->data, b->cap);
	b->data = NULL;
	b->len = b->cap = 0;
}

void secbuf_trim(struct secbuf *b)
{
	size_t start = 0, end = b->len;

	while (end > 0 && isspace((unsigned char)b->data[end - 1]))
		end--;
	while (start < end && isspace((unsigned char)b->data[start]))
		start++;
	if (start > 0) {
		memmove(b->data, b->data + start, end - start);
		sodium_memzero(b->data + end - start, start);
	}
	secbuf_truncate(b, end - start);
}

int secbuf_read_fd(struct secbuf *b, int fd, size_t max)
{
	for (;;) {
		ssize_t n;

		/* the file may grow while it is read: read to EOF */
		if (b->cap - b->len < 2 && secbuf_reserve(b, 4096) < 0) {
			errno = ENOMEM;
			return -1;
		}
		n = read(fd, b->data + b->len, b->cap - b->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		b->len += (size_t)n;
		b->data[b->len] = '\0';
		if (b->len > max) {
			errno = EFBIG;
			return -1;
		}
	}
}

char *secmem_dup(const void *p, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

void secmem_free(void *p, size_t n)
{
	if (!p)
		return;
	sodium_memzero(p, n);
	free(p);
}

void secmem_free_str(char *s)
{
	if (s)
		secmem_free(s, strlen(s));
}

void secmem_stack_wipe(void)
{
	/* BLAKE2b's and ChaCha20's frames are a few hundred bytes deep */
	sodium_stackzero(4096);
}

void secmem_stack_wipe_deep(void)
{
	sodium_stackzero(16 * 1024);
}

static void secmem_json_free(void *p)
{
	/* jansson does not pass sizes; the allocator knows the block's */
	if (p)
		sodium_memzero(p, malloc_usable_size(p));
	free(p);
}

void secmem_init_json(void)
{
	json_set_alloc_funcs(malloc, secmem_json_free);
}
