/* crc32c.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum GCP Secret Manager keeps beside every payload. Not zlib's
 * crc32: "123456789" gives 0xE3069283 here, 0xCBF43926 there. */
#ifndef SECRETFS_CRC32C_H
#define SECRETFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue crc (0 to start) over the n bytes at p. */
uint32_t crc32c_update(uint32_t crc, const void *p, size_t n);

#endif
