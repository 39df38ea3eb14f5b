/* ref.h - references to secret values, and generated-value specs.
 *
 *   NAME://locator[?params][#field]   NAME is a [provider NAME] section
 *   generate:KIND[:N]                 password[:len[:charset]] hex:BYTES
 *                                     base64:BYTES base64url:BYTES uuid
 *                                     fernet ed25519 argon2id:KEY dotenvx
 *
 * The string is split first, then locator and field are percent-decoded
 * (a literal '#', '?' or '%' in a name must be written %23 %3F %25).
 * params stay raw; each provider reads its own. An empty params ("x://a?",
 * "x://a?#f") means none: params is NULL. The field is everything after
 * the first '#'; an empty field ("x://a#") is an error. Whitespace and
 * control characters are errors anywhere (encode them: %20); a reference
 * is at most 4096 bytes. The counts N of generate: are 1..GEN_MAX_N.
 *
 * generate:password's charset is "alnum" (A-Z a-z 0-9, the default) or
 * "alnum+symbols": alnum plus the 7 symbols GEN_SYMBOLS, + , - . : = _
 * Each is safe unquoted inside a URL's password (postgres://u:PASS@h, RFC
 * 3986 userinfo), in shell single or double quotes, and in .env single
 * quotes; left out on purpose: quotes \ $ ` space & ; | < > ( ) { } *
 * (shell and .env), @ / ? # % ^ (URLs), ! (bash history expansion in
 * double quotes) and ~ (tilde expansion after '=' or ':'). With LEN >= 4
 * an alnum+symbols password holds at least one symbol and one digit.
 *
 * generate:argon2id:KEY is the Argon2id hash (a PHC string) of the value
 * of the app's key KEY, [A-Za-z_][A-Za-z0-9_]*; see gen_hash_value.
 */
#ifndef SECRETFS_REF_H
#define SECRETFS_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/secmem.h"
#include "../base/err.h"

enum gen_kind {
	GEN_PASSWORD,	/* alphanumeric, n = length, default 32 */
	GEN_HEX,	/* n random bytes, lowercase hex */
	GEN_BASE64,	/* n random bytes, standard base64 with padding */
	GEN_BASE64URL,	/* n random bytes, URL-safe base64 without padding */
	GEN_UUID,	/* random (version 4) UUID */
	GEN_FERNET,	/* Fernet key: 32 random bytes, URL-safe base64, padded */
	GEN_ED25519,	/* Ed25519 secret key (seed || public key, 64 bytes),
			 * standard base64 with padding */
	GEN_ARGON2ID,	/* Argon2id hash of the value of key source */
	GEN_DOTENVX,	/* dotenvx private key: a secp256k1 scalar, 64 hex
			 * digits (keys.ENV only) */
};

enum gen_charset {
	GEN_CHARSET_ALNUM,		/* the default */
	GEN_CHARSET_ALNUM_SYMBOLS,	/* alnum and GEN_SYMBOLS */
};

#define GEN_SYMBOLS "+,-.:=_"

#define GEN_MAX_N 4096

/* source is owned: a gen_spec is moved, never copied, and freed with
 * gen_spec_free (ref_free does it for a struct ref). */
struct gen_spec {
	enum gen_kind kind;
	unsigned n;	/* length or bytes; 0 for uuid, fernet, ed25519, argon2id */
	enum gen_charset charset;	/* GEN_PASSWORD; ALNUM for the others */
	char *source;	/* GEN_ARGON2ID: the key whose value is hashed; else NULL */
};

enum ref_kind {
	REF_PROVIDER,
	REF_GENERATE,
};

struct ref {
	enum ref_kind kind;
	char *provider;	/* REF_PROVIDER: scheme = provider section name */
	char *locator;	/* decoded; may be empty (the provider's check says) */
	char *params;	/* raw text after '?', or NULL */
	char *field;	/* decoded text after '#', or NULL for the whole entry */
	struct gen_spec gen;	/* REF_GENERATE */
};

/* Parse s into r (which the caller later passes to ref_free). Checks
 * syntax only; whether the provider exists is the config's business. */
int ref_parse(const char *s, struct ref *r, struct err *e);
/* Canonical text of r, re-encoded; returns what snprintf would. */
int ref_format(const struct ref *r, char *out, size_t size);
/* Same provider, locator and params: the same provider entry. */
bool ref_same_entry(const struct ref *a, const struct ref *b);
void ref_free(struct ref *r);

/* Provider section names double as schemes: [A-Za-z][A-Za-z0-9+.-]*, and
 * "generate" is reserved, in any letter case. */
bool ref_scheme_valid(const char *name);

/* spec is the text after "generate:". g is overwritten (not freed) first;
 * on failure nothing is left allocated in it. */
int gen_parse(const char *spec, struct gen_spec *g, struct err *e);
/* Canonical text (password:LEN, password:LEN:alnum+symbols, argon2id:KEY,
 * ...); returns what snprintf would, or -1 for an invalid g. */
int gen_format(const struct gen_spec *g, char *out, size_t size);
/* Free what g owns and zero it; fine on a zeroed or failed-to-parse g. */
void gen_spec_free(struct gen_spec *g);
#endif
