/* pct.c - the one percent-decoder. */
#include "pct.h"

#include <stdlib.h>

static int pct_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

enum pct_result pct_decode(const char *s, size_t n, char **out, size_t *at)
{
	char *d = malloc(n + 1);
	size_t o = 0;

	*out = NULL;
	if (!d)
		return PCT_NOMEM;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] != '%') {
			d[o++] = s[i];
			continue;
		}
		hi = i + 2 < n ? pct_hex(s[i + 1]) : -1;
		lo = i + 2 < n ? pct_hex(s[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (!hi && !lo)) {
			free(d);
			if (at)
				*at = i;
			return hi < 0 || lo < 0 ? PCT_BAD : PCT_NUL;
		}
		d[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	d[o] = '\0';
	*out = d;
	return PCT_OK;
}
