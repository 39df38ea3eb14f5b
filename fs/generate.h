/* generate.h - generated secret values. All randomness comes from
 * libsodium (randombytes_buf, randombytes_uniform: no modulo bias). */
#ifndef SECRETFS_GENERATE_H
#define SECRETFS_GENERATE_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/secmem.h"
#include "../base/err.h"
#include "ref.h"

/* A fresh value for g into out (its old contents replaced). A spec that
 * needs input (gen_needs_input) is ERR_INVALID here: use gen_hash_value. */
int gen_value(const struct gen_spec *g, struct secbuf *out, struct err *e);

/* True when g's value is derived from another key's value (argon2id). */
bool gen_needs_input(const struct gen_spec *g);

/* The value of g (GEN_ARGON2ID) computed from the len bytes at input, the
 * value of key g->source, into out (old contents replaced). Argon2id is
 * salted: each call gives a different string that verifies the same
 * input. Each call allocates 64 MiB for its duration and takes tens of
 * milliseconds of CPU; ERR_NOMEM when that memory cannot be had. */
int gen_hash_value(const struct gen_spec *g, const char *input, size_t len,
		   struct secbuf *out, struct err *e);

#endif
