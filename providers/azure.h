/* azure.h - what the Azure Key Vault provider (azure.c) and its
 * credentials (azure_auth.c) share. Internal to providers/.
 *
 * Key Vault says which tenant and scope a token must be for in the 401
 * challenge of a request without one (azure.c parses it); azure_auth.c
 * gets such tokens from the configured source (client secret, workload
 * identity, managed identity), caches one per provider and refreshes it
 * before it expires. Tokens live in wiped memory and never reach a log
 * line or an error message; only the identity ("client id X", "managed
 * identity") is named.
 */
#ifndef SECRETFS_AZURE_H
#define SECRETFS_AZURE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "../base/err.h"
#include "../base/secmem.h"
#include "http.h"
#include "provider.h"

#define AZ_TENANT_MAX 128
#define AZ_SCOPE_MAX 256

/* What a 401 challenge asks for. */
struct az_challenge {
	char tenant[AZ_TENANT_MAX];	/* from authorization=".../TENANT" */
	char scope[AZ_SCOPE_MAX];	/* scope, else resource; ends in /.default */
};

struct az_auth;

/* The auth options of conf (credential, tenant_id, client_id,
 * client_secret_file, authority_host, imds_endpoint) and the AZURE_*
 * variables, checked; no I/O but stat() of the files. */
int az_auth_new(const struct provider_conf *conf, struct http_client *http,
		struct az_auth **out, struct err *e);
void az_auth_free(struct az_auth *a);

/* A bearer token for ch into tok (wiped memory): the cached one while it
 * is fresh, else a new one (one request at a time per provider).
 * deadline is on the clock_now_ms() clock; *gen names the token for
 * az_auth_reject. */
int az_auth_token(struct az_auth *a, const struct az_challenge *ch,
		  int64_t deadline, struct secbuf *tok, uint64_t *gen,
		  struct err *e);

/* Key Vault refused the token of generation gen: forget it. true when a
 * retry with another token is worth it. */
bool az_auth_reject(struct az_auth *a, uint64_t gen);

/* Who the tokens speak for, for messages: "client id X (client secret)",
 * "managed identity (IMDS)"... */
const char *az_auth_identity(const struct az_auth *a);

#endif
