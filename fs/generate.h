/* generate.h - generated secret values. All randomness comes from
 * libsodium (randombytes_buf, randombytes_uniform: no modulo bias). */
#ifndef SECRETFS_GENERATE_H
#define SECRETFS_GENERATE_H

#include "../cache/secmem.h"
#include "err.h"
#include "ref.h"

/* A fresh value for g into out (its old contents replaced). */
int gen_value(const struct gen_spec *g, struct secbuf *out, struct err *e);

#endif
