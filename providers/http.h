/* http.h - the one HTTP layer every provider uses (libcurl).
 *
 * A struct http_client belongs to one provider. Each request has an easy
 * handle of its own (never one handle in two threads), freed after it so
 * no response lingers in its buffers; the handles share DNS, TLS sessions
 * and connections through a CURLSH, so requests reuse kept-alive
 * connections. Every request:
 *
 *   - is bounded by a total deadline (the [secretfs] request_timeout),
 *     retries and backoff included;
 *   - is retried on connection errors, 429, 5xx except 501, and (opt-in)
 *     412, with jittered exponential backoff honouring Retry-After, at most
 *     max_attempts times;
 *   - follows at most one 301/302/307/308 redirect by hand, re-sending the
 *     method and body, never https -> http, and never sending headers
 *     marked secret (or a body marked secret) to another origin;
 *   - collects the response body into wiped memory, refusing one larger
 *     than max_response instead of allocating it;
 *   - verifies TLS unless the provider asks for insecure mode.
 *
 * Nothing about a request is logged but method, host and path, at debug
 * level; never headers or bodies. CURLOPT_VERBOSE is never enabled.
 *
 * curl_global_init runs once, from the first http_client_new (pthread_once).
 * Providers are created by main before any thread starts, and libcurl 7.88
 * initializes thread-safely anyway. curl_global_cleanup is left to exit.
 */
#ifndef SECRETFS_HTTP_H
#define SECRETFS_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/secmem.h"
#include "../base/clock.h"
#include "../base/err.h"
#include "../base/kvmap.h"

#define HTTP_MAX_RESPONSE_DEFAULT ((size_t)1024 * 1024)
#define HTTP_TIMEOUT_DEFAULT_MS 10000L
#define HTTP_ATTEMPTS_DEFAULT 3
#define HTTP_BACKOFF_BASE_MS 250L
#define HTTP_BACKOFF_CAP_MS 5000L
/* A server asking for a longer pause is not waited for. */
#define HTTP_RETRY_AFTER_CAP_MS 10000L

struct http_client;
struct http_response;

struct http_client_conf {
	const char *name;	/* provider name, for log lines */
	long timeout_ms;	/* budget of one request, retries included; 0: 10 s */
	long connect_timeout_ms;	/* per attempt; 0: a third of timeout_ms */
	size_t max_response;	/* body limit; 0: HTTP_MAX_RESPONSE_DEFAULT */
	int max_attempts;	/* 0: HTTP_ATTEMPTS_DEFAULT */
	long backoff_base_ms;	/* first retry waits ~this; 0: HTTP_BACKOFF_BASE_MS */
	const char *ca_file;	/* CURLOPT_CAINFO */
	const char *ca_path;	/* CURLOPT_CAPATH (a hashed directory) */
	const char *client_cert;	/* PEM */
	const char *client_key;	/* PEM */
	bool insecure;		/* skip TLS verification; the provider warns */
};

/* Request headers. Each is kept as one "Name: value" line in wiped memory;
 * secret ones (tokens, Authorization) are dropped on a cross-origin
 * redirect. */
struct http_header {
	char *line;
	bool secret;
};

struct http_headers {
	struct http_header *v;
	size_t n;
};

#define HTTP_HEADERS_INIT { NULL, 0 }

/* 0, or -1 when out of memory. */
int http_headers_add(struct http_headers *h, const char *name,
		     const char *value, bool secret);
/* Wipe and free every line. */
void http_headers_free(struct http_headers *h);

/* What a provider's auth hook adds to one attempt: secret headers (a
 * bearer token, a session token) and/or curl's signature. */
struct http_auth {
	struct http_headers headers;	/* all secret: never sent cross-origin */
	const char *sigv4;	/* see http_auth_sigv4 */
	const char *sigv4_user;
	const char *sigv4_password;
};

/* Add a secret header line to this attempt. 0, or -1 out of memory. */
int http_auth_header(struct http_auth *a, const char *name, const char *value);
/* Sign this attempt with AWS Signature Version 4 by libcurl:
 * CURLOPT_AWS_SIGV4 (the full "aws:amz:REGION:SERVICE") with the key id
 * and secret as CURLOPT_USERNAME/PASSWORD. curl 7.88 signs every
 * CURLOPT_HTTPHEADER line, even a removal line that is never sent, so a
 * signed request carries no "Expect:" line; docs/aws.md has the rules
 * callers follow. The strings must live until the attempt ends. */
void http_auth_sigv4(struct http_auth *a, const char *scope,
		     const char *key_id, const char *secret);

/* A provider's word on an answer (http_request.classify). */
enum http_verdict {
	HTTP_VERDICT_DEFAULT,	/* the layer's rule: 429, 5xx except 501 */
	HTTP_VERDICT_RETRY,	/* retry it (backoff and budget as ever) */
	HTTP_VERDICT_FINAL,	/* hand it back */
};

struct http_request {
	const char *method;	/* "GET", "POST", "LIST", "PUT", "DELETE"... */
	const char *url;	/* absolute; path segments already escaped */
	const struct http_headers *headers;	/* may be NULL */
	/* The body is sent from the caller's memory, never copied by us: a
	 * secret body lives in the caller's secbuf, which the caller wipes. */
	const void *body;	/* NULL: none */
	size_t body_len;
	const char *content_type;	/* with a body; NULL: application/json */
	bool body_secret;	/* never re-send the body to another origin */
	int64_t deadline_ms;	/* clock_now_ms() clock; 0: now + timeout_ms */
	/* One response header to keep (name without ':'), e.g.
	 * "x-amzn-errortype"; its value lands in http_response.header. */
	const char *keep_header;
	/* Called before every attempt, so retries carry fresh credentials;
	 * -1 fails the request with e. NULL: no authentication. */
	int (*auth)(void *ctx, struct http_auth *a, struct err *e);
	/* Called on every answer but a redirect. NULL: the default rule. */
	enum http_verdict (*classify)(void *ctx,
				      const struct http_response *rs);
	void *ctx;		/* of auth and classify */
};

struct http_response {
	long status;
	struct secbuf body;	/* wiped on free */
	/* keep_header's value, trimmed; "" if none. Room for a Key Vault
	 * challenge (WWW-Authenticate) with a long authority. */
	char header[1024];
};

#define HTTP_RESPONSE_INIT { 0, SECBUF_INIT, "" }

int http_client_new(const struct http_client_conf *conf,
		    struct http_client **out, struct err *e);
void http_client_free(struct http_client *c);

/* Perform rq, retrying as described above. Returns 0 when a response
 * arrived, whatever its status (the last one, when retries ran out), and
 * -1 with ERR_PROVIDER when none did (connection failure, timeout, body
 * over the limit, refused redirect) or ERR_NOMEM. rs is reset first.
 *
 * A request whose method changes things (any but GET, HEAD, LIST,
 * OPTIONS) that was sent at least once without a usable answer (the
 * connection dropped, the time ran out, the body was over the limit) may
 * have taken effect: unless a later attempt got a final answer, it fails
 * with ERR_UNSURE instead, and so does one whose last answer is a 5xx or
 * 429 the budget left no retry for. (Retrying a write is safe: a retry
 * either stores the same value again or is refused by compare-and-set.)
 * The caller may then read back what the server holds. */
int http_request(struct http_client *c, const struct http_request *rq,
		 struct http_response *rs, struct err *e);
void http_response_free(struct http_response *rs);

/* ---- status codes ---- */

/* The generic mapping, for providers with no better knowledge:
 * 400 invalid, 401/403 access, 404 not found, 409/412 conflict, 413 too
 * big, 429 provider busy, 5xx provider failure, other statuses provider
 * failure. 2xx is ERR_OK. */
enum err_code http_status_code(long status);
/* Short text for a status ("not found", "service unavailable"). */
const char *http_status_text(long status);
/* 401 and 403: the server (or a proxy before it) refused the request,
 * whatever its body says or however it is written (a provider's JSON, an
 * HTML or XML page). */
bool http_status_refused(long status);
/* The code of an error answer, for every provider's error mapping: the
 * code it read from the body (parsed), except that a refusal is always
 * ERR_ACCESS. A refusal read as ERR_PROVIDER would count as transient and
 * be papered over with a stale value (the cache's stale-if-error). */
enum err_code http_answer_code(long status, enum err_code parsed);
/* err_set(e, http_status_code(status), "WHAT: HTTP STATUS TEXT"). */
int http_status_err(struct err *e, long status, const char *what);

/* ---- pure policy helpers (unit-tested) ---- */

/* The default rule: 429, and 5xx except 501. */
bool http_status_retryable(long status);
/* A CURLcode worth retrying: connection refused, timeouts, dropped
 * connections, empty replies, send/receive errors. */
bool http_curl_retryable(int curl_code);
/* Wait before retry number retry (0 for the first): the exponential step
 * min(base << retry, cap) with "equal jitter", uniform in [step/2, step]. */
long http_backoff_ms(int retry, long base_ms, long cap_ms);
/* A Retry-After value in its delta-seconds form, as milliseconds capped at
 * cap_ms; -1 when absent or not delta-seconds (an HTTP date is ignored:
 * the normal backoff applies). */
long http_retry_after_ms(const char *value, long cap_ms);

enum http_redirect {
	HTTP_REDIRECT_REFUSE,		/* https -> http, bad URL, other scheme */
	HTTP_REDIRECT_SAME_ORIGIN,	/* scheme, host and port unchanged */
	HTTP_REDIRECT_OTHER_ORIGIN,	/* follow without secret headers/body */
};

/* Whether a status is a redirect we follow (301, 302, 307, 308). */
bool http_redirect_status(long status);
/* What to do about a redirect from the URL from to the absolute URL to. */
enum http_redirect http_redirect_check(const char *from, const char *to);

/* Escape each '/'-separated segment of path with curl_easy_escape, keeping
 * the slashes. malloc'd; NULL when out of memory. Dot segments are not
 * special here (curl is told never to squash them); refuse them before. */
char *http_path_escape(const char *path);

/* "scheme://host:port/path" of url without query or credentials, for log
 * lines and messages; "?" when url does not parse. */
void http_url_brief(const char *url, char *out, size_t size);

/* ---- JSON bodies ---- */

/* Parse a response body (JSON_ALLOW_NUL, duplicate keys refused). NULL
 * when it is not JSON. Never put jansson's error text in a message: it
 * quotes the input, which may be a secret. */
json_t *http_json_parse(const struct http_response *rs);
/* Compact text of j into out (cleared first), with no intermediate copy:
 * the way to build a request body that holds secrets. 0, or -1 when out of
 * memory or j cannot be encoded. */
int http_json_dump(const json_t *j, struct secbuf *out);

/* A JSON object (Vault's data, an AWS SecretString) as a map: strings as
 * they are (NUL bytes kept: json_string_length), other values as their
 * compact JSON text. -1 with ERR_PROVIDER ("WHAT: garbage: ...") when
 * obj is not an object or a key holds a NUL byte, or ERR_NOMEM; m is
 * then emptied. */
int http_json_to_map(const json_t *obj, struct kvmap *m, const char *what,
		     struct err *e);

/* The JSON object of a map. A key whose value in prev was a number, bool,
 * null, object or array, and whose text is unchanged, keeps that JSON
 * value: a write through secretfs must not turn {"port":5432} into
 * {"port":"5432"} behind the back of other clients. -1 with ERR_INVALID
 * naming the key whose value is not UTF-8 text. */
int http_json_from_map(const struct kvmap *m, const json_t *prev,
		       const char *what, json_t **out, struct err *e);

#endif
