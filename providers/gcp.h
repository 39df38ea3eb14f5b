/* gcp.h - what the GCP Secret Manager provider (gcp.c) and its
 * Application Default Credentials (gcp_auth.c) share. Internal to
 * providers/.
 *
 * gcp_auth.c finds the credentials the way Google's client libraries do
 * (a credentials file of type service_account, authorized_user,
 * external_account or impersonated_service_account, else the metadata
 * server), caches one access token per provider and refreshes it before
 * it expires. Tokens, private keys, refresh tokens and subject tokens live
 * in wiped memory and never reach a log line or an error message; only
 * the identity ("service account X", "metadata server") is named.
 */
#ifndef SECRETFS_GCP_H
#define SECRETFS_GCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"
#include "../base/secmem.h"
#include "http.h"
#include "provider.h"

#define GCP_SCOPE "https://www.googleapis.com/auth/cloud-platform"
#define GCP_PROJECT_MAX 100

struct gcp_auth;

/* The credential options of conf (credentials_file, token_uri,
 * sts_endpoint, metadata_host) and GOOGLE_APPLICATION_CREDENTIALS,
 * CLOUDSDK_CONFIG, HOME, GCE_METADATA_HOST: the credentials file is read
 * and checked now; no network. */
int gcp_auth_new(const struct provider_conf *conf, struct http_client *http,
		 struct gcp_auth **out, struct err *e);
void gcp_auth_free(struct gcp_auth *a);

/* An access token into tok (wiped memory): the cached one while fresh,
 * else a new one (one request at a time per provider). deadline is on the
 * clock_now_ms() clock; *gen names the token for gcp_auth_reject. */
int gcp_auth_token(struct gcp_auth *a, int64_t deadline, struct secbuf *tok,
		   uint64_t *gen, struct err *e);
/* Secret Manager refused the token of generation gen (401): forget it.
 * true when a retry with another token is worth it. */
bool gcp_auth_reject(struct gcp_auth *a, uint64_t gen);

/* Who the tokens speak for, for messages: "service account X", "metadata
 * server (default service account)"... */
const char *gcp_auth_identity(const struct gcp_auth *a);

/* The project of the credentials (a service account key's project_id),
 * else the metadata server's (asked once, then kept), into out. -1 with
 * ERR_INVALID when neither has one. */
int gcp_auth_project(struct gcp_auth *a, int64_t deadline, char *out,
		     size_t size, struct err *e);

/* The error of a Google API answer other than 200, from its envelope
 * {"error":{"code","message","status"}}: NOT_FOUND is ERR_NOTFOUND,
 * PERMISSION_DENIED / UNAUTHENTICATED and any 401/403 ERR_ACCESS naming
 * identity, FAILED_PRECONDITION (a disabled or destroyed version)
 * ERR_ACCESS, ALREADY_EXISTS ERR_EXISTS, INVALID_ARGUMENT ERR_INVALID,
 * 429/5xx and anything that is not the envelope ERR_PROVIDER. what names
 * the secret; service names the API ("Secret Manager"). */
int gcp_error_map(const struct http_response *rs, const char *service,
		  const char *what, const char *identity, struct err *e);

#endif
