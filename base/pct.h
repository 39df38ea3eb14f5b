/* pct.h - percent-decoding of URL parts and reference text. */
#ifndef SECRETFS_PCT_H
#define SECRETFS_PCT_H

#include <stddef.h>

enum pct_result {
	PCT_OK = 0,
	PCT_BAD = -1,	/* '%' not followed by two hex digits */
	PCT_NUL = -2,	/* %00: a NUL byte cannot be part of a C string */
	PCT_NOMEM = -3,
};

/* Decode the n bytes at s into a malloc'd NUL-terminated *out. On
 * PCT_BAD or PCT_NUL, *at is the offset of the offending '%'. */
enum pct_result pct_decode(const char *s, size_t n, char **out, size_t *at);

#endif
