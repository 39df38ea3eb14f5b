/* crc32c.c - CRC-32C, byte at a time from a table built once. Payloads
 * are at most 64 KiB, so slicing or SSE4.2 would buy nothing worth the
 * code. */
#include "crc32c.h"

#include <pthread.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc32c_table[256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc32c_table[i] = c;
	}
}

uint32_t crc32c_update(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *b = p;

	pthread_once(&crc32c_once, crc32c_init);
	crc = ~crc;
	for (size_t i = 0; i < n; i++)
		crc = crc32c_table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}
