/* secmem.h - memory that held a secret is wiped before it is freed.
 *
 * struct secbuf is the growable byte buffer every module uses for values,
 * rendered files and parsed text. Growing never leaves an unwiped copy
 * behind (no realloc: allocate, copy, wipe, free). The data is always
 * NUL-terminated one byte past len, for convenience; len is the truth,
 * values may contain NUL bytes.
 */
#ifndef SECRETFS_SECMEM_H
#define SECRETFS_SECMEM_H

#include <stddef.h>

struct secbuf {
	char *data;
	size_t len;
	size_t cap;
};

#define SECBUF_INIT { NULL, 0, 0 }

/* 0 on success, -1 when memory is exhausted (the buffer is unchanged). */
int secbuf_reserve(struct secbuf *b, size_t extra);
int secbuf_append(struct secbuf *b, const void *p, size_t n);
int secbuf_puts(struct secbuf *b, const char *s);
int secbuf_putc(struct secbuf *b, char c);
/* Replace the contents with n bytes of p. */
int secbuf_set(struct secbuf *b, const void *p, size_t n);
/* Wipe the contents, keep the allocation. */
void secbuf_clear(struct secbuf *b);
/* Wipe and release. */
void secbuf_free(struct secbuf *b);
/* Cut to n bytes (n <= len), wiping what is cut. */
void secbuf_truncate(struct secbuf *b, size_t n);

/* Strip leading and trailing whitespace (a token file's newline), wiping
 * what moves. */
void secbuf_trim(struct secbuf *b);

/* Append what fd holds, to its end, to b (EINTR retried). 0, or -1 with
 * errno: EFBIG once b would hold more than max bytes, ENOMEM, or read's. */
int secbuf_read_fd(struct secbuf *b, int fd, size_t max);

/* malloc'd NUL-terminated copy of n bytes; NULL when out of memory. */
char *secmem_dup(const void *p, size_t n);
/* Wipe n bytes at p, then free(p). NULL is fine. */
void secmem_free(void *p, size_t n);
/* Wipe a NUL-terminated string, then free it. */
void secmem_free_str(char *s);

/* Wipe the stack below the caller: hashing and cipher code leaves copies
 * of its input in the stack frames it used (BLAKE2b's message words).
 * Call it right after hashing or sealing a secret. */
void secmem_stack_wipe(void);
/* The same, 16 KiB deep: after rendering or writing a file, whose callees
 * (the stores', libc's file and formatting code) reach further down. */
void secmem_stack_wipe_deep(void);

/* Make jansson wipe every block it frees: its copies of parsed and dumped
 * documents hold secret values. Call once, before any thread starts. */
void secmem_init_json(void);

#endif
