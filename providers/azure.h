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
/* Refresh a token this long before it expires (at half its life when
 * that is shorter). */
#define AZ_REFRESH_MARGIN_S 300
/* Longest text of Azure's taken into a message. */
#define AZ_TEXT_MAX 120

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

/* ---- pure helpers (unit-tested) ---- */

/* At most AZ_TEXT_MAX bytes of Azure's text s, up to its first line
 * break, other control characters dropped, into out. */
void az_text_clean(const char *s, char *out, size_t size);

/* When a token expiring at expires should be refreshed. */
time_t az_refresh_at(time_t now, time_t expires);

/* An answer of a token endpoint (Entra ID, IMDS, App Service): 200 with
 * access_token and expires_in (seconds, a number or a string) or
 * expires_on (epoch seconds, likewise), into tok and *expires; else the
 * error it names: {"error","error_description"} (Entra, IMDS) or
 * {"statusCode","message"} (App Service). ERR_ACCESS for a refusal,
 * ERR_PROVIDER for 429/5xx or garbage. */
int az_token_parse(const struct http_response *rs, const char *what,
		   time_t now, struct secbuf *tok, time_t *expires,
		   struct err *e);

#endif
