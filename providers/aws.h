/* aws.h - what the AWS Secrets Manager provider (aws.c) and its
 * credential chain (aws_creds.c) share. Internal to providers/.
 *
 * The chain finds credentials the way botocore does (environment, web
 * identity, shared files, ECS container, EC2 instance metadata), lazily on
 * the first request, and refreshes temporary ones before they expire.
 * Secret parts live in wiped memory and never reach a log line or an
 * error message; only the source ("environment", "profile x in
 * ~/.aws/credentials") is named.
 *
 * aws.c's symbols carry aws_, aws_creds.c's awsc_.
 */
#ifndef SECRETFS_AWS_H
#define SECRETFS_AWS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "../base/err.h"
#include "http.h"

/* Refresh temporary credentials this long before they expire... */
#define AWS_REFRESH_MARGIN_S 300
/* ...and shared-file ones this often (the files may be rotated). */
#define AWS_FILE_REREAD_S 300

enum aws_cred_source {
	AWS_SRC_NONE,
	AWS_SRC_ENV,
	AWS_SRC_WEB_IDENTITY,
	AWS_SRC_FILES,
	AWS_SRC_ECS,
	AWS_SRC_IMDS,
};

struct aws_creds {
	char *key_id;		/* wiped memory, like the rest */
	char *secret;
	char *token;		/* NULL: long-term keys, no session token */
	time_t expire;		/* epoch seconds; 0: does not expire */
	enum aws_cred_source src;
	char source[160];	/* for messages: where they came from */
};

struct aws_chain;

struct aws_chain_conf {
	const char *name;	/* provider name, for log lines */
	const char *profile;	/* the profile option, or NULL */
	const char *region;	/* for the regional STS endpoint */
	struct http_client *http;
};

/* No I/O here: credentials are looked up at the first awsc_chain_get. */
int awsc_chain_new(const struct aws_chain_conf *conf, struct aws_chain **out,
		  struct err *e);
void awsc_chain_free(struct aws_chain *c);

/* A copy of the current credentials into out (free with awsc_creds_free),
 * resolved or refreshed first when due; deadline is on the http_now_ms()
 * clock. *gen identifies them for awsc_chain_reject. */
int awsc_chain_get(struct aws_chain *c, int64_t deadline,
		  struct aws_creds *out, uint64_t *gen, struct err *e);

/* AWS refused credentials of generation gen as unknown, expired or badly
 * signed: forget them when that may help. true when a retry with fresh
 * credentials is worth it. */
bool awsc_chain_reject(struct aws_chain *c, uint64_t gen);

void awsc_creds_free(struct aws_creds *cr);

/* When temporary credentials expiring at expire should be refreshed: 5
 * minutes before, or at half their remaining life when that is shorter.
 * 0 when they do not expire. */
time_t awsc_refresh_at(time_t now, time_t expire);

/* The profile a chain uses: the option, else AWS_PROFILE, else
 * "default". */
const char *awsc_profile_name(const char *option);

/* The region of profile in the shared config file (AWS_CONFIG_FILE or
 * ~/.aws/config), malloc'd; NULL when none. No error: a missing or broken
 * file simply has no region. */
char *awsc_profile_region(const char *profile);

/* https://SERVICE.REGION.amazonaws.com (.com.cn in China), malloc'd. */
char *awsc_regional_url(const char *service, const char *region);

/* A configured endpoint URL: the service's variable (e.g.
 * AWS_ENDPOINT_URL_STS), else AWS_ENDPOINT_URL; NULL when neither is
 * set, or AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true. */
const char *awsc_endpoint_env(const char *var);



#endif
