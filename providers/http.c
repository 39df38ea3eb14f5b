/* http.c - the shared libcurl layer of the providers (see http.h).
 *
 * One request: a fresh easy handle (freed, wiped, after it), then loop over
 * attempts: set every option afresh (curl_easy_reset keeps the shared
 * connection cache), perform, and decide: done, follow the one redirect,
 * or sleep and retry while the budget lasts. Response bodies go straight
 * into a wiped secbuf through the write callback, which refuses to grow
 * past the limit.
 */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../base/clock.h"
#include "../base/log.h"

#ifndef SECRETFS_VERSION
#define SECRETFS_VERSION "dev"
#endif

/* Idle handles kept for reuse; more busy ones are fine. */
/* Not worth another attempt when less than this is left of the budget. */
#define HTTP_MIN_ATTEMPT_MS 50
#define HTTP_BRIEF_MAX 512

struct http_client {
	char *name;
	long timeout_ms;
	long connect_timeout_ms;
	long backoff_base_ms;
	size_t max_response;
	int max_attempts;
	char *ca_file;
	char *ca_path;
	char *client_cert;
	char *client_key;
	bool insecure;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

/* What one attempt collects through the callbacks. */
struct http_attempt {
	struct secbuf *body;
	size_t max;
	bool too_big;
	bool nomem;
	char retry_after[32];
	const char *keep;	/* http_request.keep_header */
	char kept[sizeof(((struct http_response *)0)->header)];
	char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLcode http_global_rc;

/* curl's receive buffers and header copies hold response bodies, that is
 * secrets: every block curl frees is wiped first. */
static void http_wipe_free(void *p)
{
	if (p)
		sodium_memzero(p, malloc_usable_size(p));
	free(p);
}

static void *http_wipe_realloc(void *p, size_t n)
{
	size_t old = p ? malloc_usable_size(p) : 0;
	void *q;

	if (!p)
		return malloc(n);
	if (n == 0) {
		http_wipe_free(p);
		return NULL;
	}
	q = malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	http_wipe_free(p);
	return q;
}

static void http_global_init(void)
{
	http_global_rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc,
					      http_wipe_free, http_wipe_realloc,
					      strdup, calloc);
}
/* ---- headers ---- */

int http_headers_add(struct http_headers *h, const char *name,
		     const char *value, bool secret)
{
	size_t nlen = strlen(name), vlen = strlen(value);
	struct http_header *v = realloc(h->v, (h->n + 1) * sizeof(*v));
	char *line;

	if (!v)
		return -1;
	h->v = v;
	line = malloc(nlen + vlen + 3);
	if (!line)
		return -1;
	memcpy(line, name, nlen);
	memcpy(line + nlen, ": ", 2);
	memcpy(line + nlen + 2, value, vlen + 1);
	h->v[h->n].line = line;
	h->v[h->n].secret = secret;
	h->n++;
	return 0;
}

void http_headers_free(struct http_headers *h)
{
	for (size_t i = 0; i < h->n; i++)
		secmem_free_str(h->v[i].line);
	free(h->v);
	h->v = NULL;
	h->n = 0;
}

/* curl copies header lines into the list: wipe the copies too. */
static void http_slist_free(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		sodium_memzero(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

static struct curl_slist *http_slist_add(struct curl_slist *l,
					 const char *line, bool *ok)
{
	struct curl_slist *n = curl_slist_append(l, line);

	if (!n) {
		*ok = false;
		return l;
	}
	return n;
}

/* The header list of one attempt; secret lines left out when the request
 * goes to another origin than the caller named. NULL on out of memory. */
static struct curl_slist *http_slist_build(const struct http_request *rq,
					   const struct http_auth *auth,
					   bool drop_secret, bool *ok)
{
	struct curl_slist *l = NULL;
	char ctype[128];

	*ok = true;
	/* no "Expect: 100-continue" round trip for larger bodies; but curl
	 * 7.88 would sign the removal line for AWS and never send it */
	if (!auth->sigv4)
		l = http_slist_add(l, "Expect:", ok);
	if (rq->body) {
		snprintf(ctype, sizeof(ctype), "Content-Type: %s",
			 rq->content_type ? rq->content_type : "application/json");
		l = http_slist_add(l, ctype, ok);
	}
	for (size_t i = 0; rq->headers && i < rq->headers->n; i++) {
		if (drop_secret && rq->headers->v[i].secret)
			continue;
		l = http_slist_add(l, rq->headers->v[i].line, ok);
	}
	for (size_t i = 0; !drop_secret && i < auth->headers.n; i++)
		l = http_slist_add(l, auth->headers.v[i].line, ok);
	if (!*ok) {
		http_slist_free(l);
		return NULL;
	}
	return l;
}

/* ---- status codes ---- */

static const struct {
	long status;
	enum err_code code;
	const char *text;
} http_status_table[] = {
	{ 400, ERR_INVALID, "bad request" },
	{ 401, ERR_ACCESS, "unauthorized" },
	{ 403, ERR_ACCESS, "forbidden" },
	{ 404, ERR_NOTFOUND, "not found" },
	{ 405, ERR_PROVIDER, "method not allowed" },
	{ 408, ERR_PROVIDER, "request timeout" },
	{ 409, ERR_CONFLICT, "conflict" },
	{ 412, ERR_CONFLICT, "precondition failed" },
	{ 413, ERR_TOOBIG, "payload too large" },
	{ 429, ERR_PROVIDER, "too many requests (provider busy)" },
	{ 500, ERR_PROVIDER, "internal server error" },
	{ 501, ERR_PROVIDER, "not implemented" },
	{ 502, ERR_PROVIDER, "bad gateway" },
	{ 503, ERR_PROVIDER, "service unavailable" },
	{ 504, ERR_PROVIDER, "gateway timeout" },
};

#define HTTP_NSTATUS (sizeof(http_status_table) / sizeof(http_status_table[0]))

enum err_code http_status_code(long status)
{
	if (status >= 200 && status < 300)
		return ERR_OK;
	for (size_t i = 0; i < HTTP_NSTATUS; i++)
		if (http_status_table[i].status == status)
			return http_status_table[i].code;
	return ERR_PROVIDER;
}

const char *http_status_text(long status)
{
	for (size_t i = 0; i < HTTP_NSTATUS; i++)
		if (http_status_table[i].status == status)
			return http_status_table[i].text;
	if (status >= 200 && status < 300)
		return "success";
	if (status >= 300 && status < 400)
		return "unexpected redirect";
	if (status >= 400 && status < 500)
		return "client error";
	if (status >= 500 && status < 600)
		return "server error";
	return "unexpected status";
}

bool http_status_refused(long status)
{
	return status == 401 || status == 403;
}

enum err_code http_answer_code(long status, enum err_code parsed)
{
	return http_status_refused(status) ? ERR_ACCESS : parsed;
}

int http_status_err(struct err *e, long status, const char *what)
{
	return err_set(e, http_status_code(status), "%s: HTTP %ld (%s)", what,
		       status, http_status_text(status));
}

/* ---- policy ---- */

bool http_status_retryable(long status)
{
	if (status == 429)
		return true;
	return status >= 500 && status < 600 && status != 501;
}

bool http_curl_retryable(int curl_code)
{
	switch (curl_code) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

long http_backoff_ms(int retry, long base_ms, long cap_ms)
{
	long step = base_ms > 0 ? base_ms : 1;

	for (int i = 0; i < retry && step < cap_ms; i++)
		step *= 2;
	if (step > cap_ms)
		step = cap_ms;
	/* equal jitter: never less than half the step, spread over the rest
	 * so that clients failing together do not retry together */
	return step / 2 + (long)randombytes_uniform((uint32_t)(step - step / 2) + 1);
}

long http_retry_after_ms(const char *value, long cap_ms)
{
	long secs = 0;
	const char *p = value;

	if (!p)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		/* anything this large is capped anyway: stop before overflow */
		if (secs < cap_ms / 1000 + 1)
			secs = secs * 10 + (*p - '0');
	}
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (*p)
		return -1;
	return secs * 1000 > cap_ms ? cap_ms : secs * 1000;
}

bool http_redirect_status(long status)
{
	return status == 301 || status == 302 || status == 307 ||
	       status == 308;
}

/* scheme, host and port of an URL; false when it does not parse. */
struct http_origin {
	char *scheme;
	char *host;
	char *port;
};

static void http_origin_free(struct http_origin *o)
{
	curl_free(o->scheme);
	curl_free(o->host);
	curl_free(o->port);
}

static bool http_origin_get(CURLU *u, struct http_origin *o)
{
	o->scheme = o->host = o->port = NULL;
	return curl_url_get(u, CURLUPART_SCHEME, &o->scheme, 0) == CURLUE_OK &&
	       curl_url_get(u, CURLUPART_HOST, &o->host, 0) == CURLUE_OK &&
	       curl_url_get(u, CURLUPART_PORT, &o->port,
			    CURLU_DEFAULT_PORT) == CURLUE_OK;
}

enum http_redirect http_redirect_check(const char *from, const char *to)
{
	enum http_redirect verdict = HTTP_REDIRECT_REFUSE;
	struct http_origin a, b;
	CURLU *ua = curl_url(), *ub = curl_url();
	bool ok;

	if (!ua || !ub)
		goto out;
	/* to may be relative: resolve it against from, like a browser */
	ok = curl_url_set(ua, CURLUPART_URL, from, 0) == CURLUE_OK &&
	     curl_url_set(ub, CURLUPART_URL, from, 0) == CURLUE_OK &&
	     curl_url_set(ub, CURLUPART_URL, to, 0) == CURLUE_OK;
	if (!ok)
		goto out;
	ok = http_origin_get(ua, &a);
	ok = http_origin_get(ub, &b) && ok;
	if (ok && (!strcasecmp(b.scheme, "http") ||
		   !strcasecmp(b.scheme, "https")) &&
	    !(!strcasecmp(a.scheme, "https") && strcasecmp(b.scheme, "https"))) {
		if (!strcasecmp(a.scheme, b.scheme) &&
		    !strcasecmp(a.host, b.host) && !strcmp(a.port, b.port))
			verdict = HTTP_REDIRECT_SAME_ORIGIN;
		else
			verdict = HTTP_REDIRECT_OTHER_ORIGIN;
	}
	http_origin_free(&a);
	http_origin_free(&b);
out:
	curl_url_cleanup(ua);
	curl_url_cleanup(ub);
	return verdict;
}

char *http_path_escape(const char *path)
{
	size_t len = strlen(path), n = 0;
	/* %XX triples at most each byte */
	char *out = malloc(3 * len + 1);
	const char *s = path;

	if (!out)
		return NULL;
	for (;;) {
		size_t seg = strcspn(s, "/");

		if (seg > 0) {
			/* curl_easy_escape ignores its handle since 7.82 */
			char *esc = curl_easy_escape(NULL, s, (int)seg);
			size_t elen;

			if (!esc) {
				free(out);
				return NULL;
			}
			elen = strlen(esc);
			memcpy(out + n, esc, elen);
			n += elen;
			curl_free(esc);
		}
		if (s[seg] == '\0')
			break;
		out[n++] = '/';
		s += seg + 1;
	}
	out[n] = '\0';
	return out;
}

void http_url_brief(const char *url, char *out, size_t size)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	CURLU *u = curl_url();

	snprintf(out, size, "?");
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
		curl_url_get(u, CURLUPART_PORT, &port, 0);
		snprintf(out, size, "%s://%s%s%s%s", scheme, host,
			 port ? ":" : "", port ? port : "", path);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
}

/* ---- JSON ---- */

json_t *http_json_parse(const struct http_response *rs)
{
	json_error_t jerr;
	json_t *j;

	if (!rs->body.data || rs->body.len == 0)
		return NULL;
	j = json_loadb(rs->body.data, rs->body.len,
		       JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	/* jerr.text may quote the body */
	sodium_memzero(&jerr, sizeof(jerr));
	return j;
}

int http_json_dump(const json_t *j, struct secbuf *out)
{
	size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);

	secbuf_clear(out);
	if (n == 0 || secbuf_reserve(out, n) < 0)
		return -1;
	if (json_dumpb(j, out->data, n, JSON_COMPACT) != n) {
		secbuf_clear(out);
		return -1;
	}
	out->len = n;
	out->data[n] = '\0';
	return 0;
}

/* ---- client ---- */

static void http_share_lock(CURL *h, curl_lock_data data,
			    curl_lock_access access, void *ud)
{
	struct http_client *c = ud;

	(void)h;
	(void)access;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_locks[data]);
}

static void http_share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	struct http_client *c = ud;

	(void)h;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_locks[data]);
}

static int http_share_init(struct http_client *c)
{
	c->share = curl_share_init();
	if (!c->share)
		return -1;
	if (curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, http_share_lock) ||
	    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, http_share_unlock) ||
	    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE,
			      CURL_LOCK_DATA_SSL_SESSION) ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT))
		return -1;
	return 0;
}

static bool http_strdup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (!src || !src[0])
		return true;
	*dst = strdup(src);
	return *dst != NULL;
}

int http_client_new(const struct http_client_conf *conf,
		    struct http_client **out, struct err *e)
{
	struct http_client *c;
	bool ok;

	pthread_once(&http_once, http_global_init);
	if (http_global_rc != CURLE_OK)
		return err_set(e, ERR_PROVIDER, "libcurl failed to start: %s",
			       curl_easy_strerror(http_global_rc));
	if (sodium_init() < 0)
		return err_set(e, ERR_PROVIDER, "libsodium failed to start");
	c = calloc(1, sizeof(*c));
	if (!c)
		return err_oom(e);
	c->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms :
		HTTP_TIMEOUT_DEFAULT_MS;
	c->connect_timeout_ms = conf->connect_timeout_ms > 0 ?
		conf->connect_timeout_ms : c->timeout_ms / 3;
	if (c->connect_timeout_ms < 1)
		c->connect_timeout_ms = 1;
	c->backoff_base_ms = conf->backoff_base_ms > 0 ?
		conf->backoff_base_ms : HTTP_BACKOFF_BASE_MS;
	c->max_response = conf->max_response ? conf->max_response :
		HTTP_MAX_RESPONSE_DEFAULT;
	c->max_attempts = conf->max_attempts > 0 ? conf->max_attempts :
		HTTP_ATTEMPTS_DEFAULT;
	c->insecure = conf->insecure;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	ok = http_strdup_opt(&c->name, conf->name ? conf->name : "http");
	ok = http_strdup_opt(&c->ca_file, conf->ca_file) && ok;
	ok = http_strdup_opt(&c->ca_path, conf->ca_path) && ok;
	ok = http_strdup_opt(&c->client_cert, conf->client_cert) && ok;
	ok = http_strdup_opt(&c->client_key, conf->client_key) && ok;
	if (!ok || http_share_init(c) < 0) {
		http_client_free(c);
		return err_oom(e);
	}
	*out = c;
	return 0;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	if (c->share)
		curl_share_cleanup(c->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	free(c->name);
	free(c->ca_file);
	free(c->ca_path);
	free(c->client_cert);
	free(c->client_key);
	free(c);
}

/* A fresh handle per request, freed after it: its receive buffer would
 * still hold the last response. Freeing wipes that (http_wipe_free);
 * keep-alive survives, the connections live in the share. */
static CURL *http_handle_get(struct http_client *c)
{
	(void)c;
	return curl_easy_init();
}

static void http_handle_put(struct http_client *c, CURL *h)
{
	(void)c;
	curl_easy_cleanup(h);
}

/* ---- one attempt ---- */

static size_t http_write_cb(char *p, size_t size, size_t n, void *ud)
{
	struct http_attempt *at = ud;
	size_t len = size * n;

	if (len > at->max - at->body->len) {
		at->too_big = true;
		return 0;
	}
	if (secbuf_append(at->body, p, len) < 0) {
		at->nomem = true;
		return 0;
	}
	return len;
}

/* The value of the header line p (len bytes) when it is name's, trimmed,
 * into out. */
static void http_header_keep(const char *p, size_t len, const char *name,
			     char *out, size_t size)
{
	size_t nlen = strlen(name), vlen;

	if (len <= nlen || strncasecmp(p, name, nlen) || p[nlen] != ':')
		return;
	p += nlen + 1;
	len -= nlen + 1;
	while (len > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == '\n' ||
			   p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	vlen = len < size - 1 ? len : size - 1;
	memcpy(out, p, vlen);
	out[vlen] = '\0';
}

/* Only Retry-After (and keep_header) are kept; every response (1xx,
 * redirects) starts with its status line, which resets them. */
static size_t http_header_cb(char *p, size_t size, size_t n, void *ud)
{
	static const char name[] = "Retry-After:";
	struct http_attempt *at = ud;
	size_t len = size * n, nlen = sizeof(name) - 1;

	if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
		at->retry_after[0] = '\0';
		at->kept[0] = '\0';
	} else if (at->keep) {
		http_header_keep(p, len, at->keep, at->kept, sizeof(at->kept));
	}
	if (len > nlen && !strncasecmp(p, name, nlen)) {
		size_t vlen = len - nlen;

		if (vlen >= sizeof(at->retry_after))
			vlen = sizeof(at->retry_after) - 1;
		memcpy(at->retry_after, p + nlen, vlen);
		at->retry_after[vlen] = '\0';
	}
	return len;
}

static bool http_set_method(CURL *h, const struct http_request *rq)
{
	bool post = !strcmp(rq->method, "POST");
	bool ok = true;

	if (rq->body || post) {
		/* POSTFIELDS points at the caller's buffer: no copy is made */
		ok = curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				      (curl_off_t)(rq->body ? rq->body_len : 0)) == CURLE_OK &&
		     curl_easy_setopt(h, CURLOPT_POSTFIELDS,
				      rq->body ? rq->body : "") == CURLE_OK;
		if (ok && !post)
			ok = curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
					      rq->method) == CURLE_OK;
		return ok;
	}
	if (!strcmp(rq->method, "GET"))
		return curl_easy_setopt(h, CURLOPT_HTTPGET, 1L) == CURLE_OK;
	if (!strcmp(rq->method, "HEAD"))
		return curl_easy_setopt(h, CURLOPT_NOBODY, 1L) == CURLE_OK;
	/* LIST, DELETE...: a GET on the wire with another method name */
	return curl_easy_setopt(h, CURLOPT_HTTPGET, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method) == CURLE_OK;
}

static bool http_set_tls(struct http_client *c, CURL *h)
{
	bool ok = true;

	if (c->ca_file)
		ok = curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file) == CURLE_OK;
	if (ok && c->ca_path)
		ok = curl_easy_setopt(h, CURLOPT_CAPATH, c->ca_path) == CURLE_OK;
	if (ok && c->client_cert)
		ok = curl_easy_setopt(h, CURLOPT_SSLCERT, c->client_cert) == CURLE_OK;
	if (ok && c->client_key)
		ok = curl_easy_setopt(h, CURLOPT_SSLKEY, c->client_key) == CURLE_OK;
	if (ok && c->insecure)
		ok = curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L) == CURLE_OK &&
		     curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L) == CURLE_OK;
	return ok;
}

/* ---- authentication ---- */

int http_auth_header(struct http_auth *a, const char *name, const char *value)
{
	return http_headers_add(&a->headers, name, value, true);
}

void http_auth_sigv4(struct http_auth *a, const char *scope,
		     const char *key_id, const char *secret)
{
	a->sigv4 = scope;
	a->sigv4_user = key_id;
	a->sigv4_password = secret;
}

/* CURLOPT_AWS_SIGV4: curl signs the request with the key id and secret;
 * never for another origin than the caller named. */
static bool http_set_sigv4(CURL *h, const struct http_auth *a,
			   bool drop_secret)
{
	if (!a->sigv4 || drop_secret)
		return true;
	return curl_easy_setopt(h, CURLOPT_AWS_SIGV4, a->sigv4) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_USERNAME,
				a->sigv4_user ? a->sigv4_user : "") == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_PASSWORD,
				a->sigv4_password ? a->sigv4_password : "") == CURLE_OK;
}

static bool http_setup(struct http_client *c, CURL *h,
		       const struct http_request *rq, const char *url,
		       struct curl_slist *hdrs, struct http_attempt *at,
		       long left_ms)
{
	long connect_ms = c->connect_timeout_ms < left_ms ?
		c->connect_timeout_ms : left_ms;

	curl_easy_reset(h);
	return curl_easy_setopt(h, CURLOPT_SHARE, c->share) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_URL, url) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, left_ms) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_USERAGENT,
				"secretfs/" SECRETFS_VERSION) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_write_cb) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_WRITEDATA, at) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http_header_cb) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_HEADERDATA, at) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_ERRORBUFFER, at->errbuf) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
				(curl_off_t)at->max) == CURLE_OK &&
	       http_set_tls(c, h) && http_set_method(h, rq);
}

/* Sleep before the next attempt when one is allowed and fits in the
 * budget; false means give up. retry is the number of retries so far. */
static bool http_retry_wait(struct http_client *c, int retry,
			    long retry_after_ms, int64_t deadline,
			    const char *method, const char *brief,
			    const char *why)
{
	long wait;

	if (retry + 1 >= c->max_attempts)
		return false;
	wait = http_backoff_ms(retry, c->backoff_base_ms, HTTP_BACKOFF_CAP_MS);
	if (retry_after_ms > wait)
		wait = retry_after_ms;
	if (clock_now_ms() + wait + HTTP_MIN_ATTEMPT_MS > deadline)
		return false;
	log_debug("%s: %s %s: %s; retrying in %ld ms (attempt %d of %d)",
		  c->name, method, brief, why, wait, retry + 2,
		  c->max_attempts);
	clock_sleep_ms(wait);
	return true;
}

/* Where the attempt loop stands. */
struct http_run {
	struct http_client *c;
	const struct http_request *rq;
	CURL *h;
	char *url;		/* current target, malloc'd */
	char brief[HTTP_BRIEF_MAX];
	bool drop_secret;	/* redirected to another origin */
	bool redirected;
	bool unanswered;	/* a change went out and got no usable answer */
	int retry;
	int64_t deadline;
};

/* Whether a method changes what the server holds. AWS reads by POST too:
 * for them the flag below is moot, they are never checked for effect. */
static bool http_method_changes(const char *method)
{
	return strcmp(method, "GET") && strcmp(method, "HEAD") &&
	       strcmp(method, "LIST") && strcmp(method, "OPTIONS");
}

/* Note an attempt that failed without a usable answer: when any of the
 * request went out, a change may have taken effect. */
static void http_note_unanswered(struct http_run *run)
{
	long sent = 0;

	if (!http_method_changes(run->rq->method))
		return;
	if (curl_easy_getinfo(run->h, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK &&
	    sent > 0)
		run->unanswered = true;
}

/* The code of a failure that brought no answer: ERR_UNSURE once a change
 * went unanswered, whatever later attempts met (a refused connection
 * does not undo it), else ERR_PROVIDER. */
static enum err_code http_fail_code(const struct http_run *run)
{
	return run->unanswered ? ERR_UNSURE : ERR_PROVIDER;
}

/* A redirect response: 1 to go on with run->url changed, 0 to hand the
 * response back as it is, -1 to fail. */
static int http_follow(struct http_run *run, struct err *e)
{
	enum http_redirect verdict;
	char *loc = NULL, brief[HTTP_BRIEF_MAX];

	if (curl_easy_getinfo(run->h, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK ||
	    !loc)
		return 0;
	http_url_brief(loc, brief, sizeof(brief));
	verdict = http_redirect_check(run->url, loc);
	if (verdict == HTTP_REDIRECT_REFUSE)
		return err_set(e, ERR_PROVIDER,
			       "%s %s: refused redirect to %s (a downgrade to plain http, or not an http URL)",
			       run->rq->method, run->brief, brief);
	if (verdict == HTTP_REDIRECT_OTHER_ORIGIN && run->rq->body_secret)
		return err_set(e, ERR_PROVIDER,
			       "%s %s: refused redirect to %s: the request carries credentials and the target is another host",
			       run->rq->method, run->brief, brief);
	if (verdict == HTTP_REDIRECT_OTHER_ORIGIN) {
		log_debug("%s: redirect to %s, another host: credentials are not forwarded",
			  run->c->name, brief);
		run->drop_secret = true;
	}
	free(run->url);
	run->url = strdup(loc);
	if (!run->url)
		return err_oom(e);
	snprintf(run->brief, sizeof(run->brief), "%s", brief);
	run->redirected = true;
	log_debug("%s: %s %s (redirected)", run->c->name, run->rq->method,
		  run->brief);
	return 1;
}

static int http_transport_err(struct http_run *run, CURLcode code,
			      const struct http_attempt *at, struct err *e)
{
	char attempts[48] = "";

	if (at->nomem)
		return err_oom(e);
	if (at->too_big || code == CURLE_FILESIZE_EXCEEDED)
		return err_set(e, http_fail_code(run),
			       "%s %s: response larger than %zu bytes",
			       run->rq->method, run->brief, at->max);
	if (run->retry > 0)
		snprintf(attempts, sizeof(attempts), " (after %d attempts)",
			 run->retry + 1);
	return err_set(e, http_fail_code(run), "%s %s: %s%s", run->rq->method,
		       run->brief,
		       at->errbuf[0] ? at->errbuf : curl_easy_strerror(code),
		       attempts);
}

/* Whether an answer is retried: the provider's word, else the rule. */
static bool http_answer_retryable(const struct http_request *rq,
				  const struct http_response *rs)
{
	enum http_verdict v = rq->classify ? rq->classify(rq->ctx, rs) :
		HTTP_VERDICT_DEFAULT;

	if (v == HTTP_VERDICT_DEFAULT)
		return http_status_retryable(rs->status);
	return v == HTTP_VERDICT_RETRY;
}

/* Authenticate and set up one attempt's handle; *hdrs is its header list. */
static int http_prepare(struct http_run *run, struct http_attempt *at,
			struct http_auth *auth, struct curl_slist **hdrs,
			long left, struct err *e)
{
	const struct http_request *rq = run->rq;
	bool ok;

	if (rq->auth && rq->auth(rq->ctx, auth, e) < 0)
		return -1;
	*hdrs = http_slist_build(rq, auth, run->drop_secret, &ok);
	if (!ok || !http_setup(run->c, run->h, rq, run->url, *hdrs, at, left) ||
	    !http_set_sigv4(run->h, auth, run->drop_secret))
		return err_oom(e);
	return 0;
}

/* After a transport failure: 1 to retry, else -1 with e. */
static int http_attempt_failed(struct http_run *run, CURLcode code,
			       const struct http_attempt *at,
			       struct http_response *rs, struct err *e)
{
	secbuf_clear(&rs->body);
	http_note_unanswered(run);
	if (!at->too_big && !at->nomem && http_curl_retryable(code) &&
	    http_retry_wait(run->c, run->retry, -1, run->deadline,
			    run->rq->method, run->brief,
			    curl_easy_strerror(code))) {
		run->retry++;
		return 1;
	}
	return http_transport_err(run, code, at, e);
}

/* After an answer: 1 to go on (retry or redirect), 0 done, -1 failed. */
static int http_attempt_answered(struct http_run *run,
				 const struct http_attempt *at,
				 struct http_response *rs, struct err *e)
{
	char why[64];

	curl_easy_getinfo(run->h, CURLINFO_RESPONSE_CODE, &rs->status);
	memcpy(rs->header, at->kept, sizeof(rs->header));
	if (http_redirect_status(rs->status) && !run->redirected)
		return http_follow(run, e);
	snprintf(why, sizeof(why), "HTTP %ld", rs->status);
	if (http_answer_retryable(run->rq, rs) &&
	    http_retry_wait(run->c, run->retry,
			    http_retry_after_ms(at->retry_after,
						HTTP_RETRY_AFTER_CAP_MS),
			    run->deadline, run->rq->method, run->brief, why)) {
		run->retry++;
		return 1;
	}
	return 0;
}

/* One attempt: 1 to go on (retry or redirect), 0 done, -1 failed. */
static int http_attempt_once(struct http_run *run, struct http_response *rs,
			     struct err *e)
{
	struct http_attempt at = { .body = &rs->body, .max = run->c->max_response,
				   .keep = run->rq->keep_header };
	struct http_auth auth = { HTTP_HEADERS_INIT, NULL, NULL, NULL };
	long left = (long)(run->deadline - clock_now_ms());
	struct curl_slist *hdrs = NULL;
	CURLcode code;
	int rc;

	if (left <= 0)
		return err_set(e, http_fail_code(run), "%s %s: timed out",
			       run->rq->method, run->brief);
	secbuf_clear(&rs->body);
	rs->status = 0;
	rs->header[0] = '\0';
	rc = http_prepare(run, &at, &auth, &hdrs, left, e);
	if (rc == 0) {
		code = curl_easy_perform(run->h);
		rc = code != CURLE_OK ? http_attempt_failed(run, code, &at, rs, e) :
			http_attempt_answered(run, &at, rs, e);
	}
	/* the handle must not keep the secret header lines or the key */
	curl_easy_setopt(run->h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(run->h, CURLOPT_PASSWORD, NULL);
	http_slist_free(hdrs);
	http_headers_free(&auth.headers);
	return rc;
}

/* The last answer to a change that went unanswered before: when it is
 * one the layer would have retried (a 5xx, a 429: the budget ran out), it
 * says nothing about the earlier attempt, which may have taken effect. */
static int http_gave_up_unsure(const struct http_run *run,
			       const struct http_response *rs, struct err *e)
{
	if (!run->unanswered || !http_answer_retryable(run->rq, rs))
		return 0;
	return err_set(e, ERR_UNSURE,
		       "%s %s: HTTP %ld after an attempt that got no answer",
		       run->rq->method, run->brief, rs->status);
}

int http_request(struct http_client *c, const struct http_request *rq,
		 struct http_response *rs, struct err *e)
{
	struct http_run run = { .c = c, .rq = rq };
	int rc;

	rs->status = 0;
	rs->header[0] = '\0';
	secbuf_clear(&rs->body);
	run.deadline = rq->deadline_ms ? rq->deadline_ms :
		clock_now_ms() + c->timeout_ms;
	run.url = strdup(rq->url);
	run.h = http_handle_get(c);
	if (!run.url || !run.h) {
		free(run.url);
		if (run.h)
			http_handle_put(c, run.h);
		return err_oom(e);
	}
	http_url_brief(run.url, run.brief, sizeof(run.brief));
	log_debug("%s: %s %s", c->name, rq->method, run.brief);
	do {
		rc = http_attempt_once(&run, rs, e);
	} while (rc > 0);
	if (rc == 0)
		rc = http_gave_up_unsure(&run, rs, e);
	if (rc < 0) {
		rs->status = 0;
		secbuf_clear(&rs->body);
	}
	/* the handle must not keep pointers into this request's memory */
	curl_easy_setopt(run.h, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(run.h, CURLOPT_ERRORBUFFER, NULL);
	http_handle_put(c, run.h);
	free(run.url);
	return rc < 0 ? -1 : 0;
}

void http_response_free(struct http_response *rs)
{
	secbuf_free(&rs->body);
	rs->status = 0;
}

int http_json_to_map(const json_t *obj, struct kvmap *m, const char *what,
		     struct err *e)
{
	const char *key;
	json_t *val;

	if (!json_is_object(obj))
		return err_set(e, ERR_PROVIDER, "%s: garbage: not a JSON object", what);
	json_object_foreach((json_t *)obj, key, val) {
		char *text = NULL;
		const char *s;
		size_t len;
		int rc;

		if (json_object_iter_key_len(json_object_key_to_iter(key)) != strlen(key)) {
			kvmap_free(m);
			return err_set(e, ERR_PROVIDER, "%s: garbage: a key holds a NUL byte",
				       what);
		}
		if (json_is_string(val)) {
			s = json_string_value(val);
			len = json_string_length(val);
		} else {
			text = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
			s = text;
			len = text ? strlen(text) : 0;
		}
		rc = s ? kvmap_set(m, key, s, len) : -1;
		secmem_free_str(text);
		if (rc < 0) {
			kvmap_free(m);
			return err_oom(e);
		}
	}
	return 0;
}

int http_json_from_map(const struct kvmap *m, const json_t *prev,
		       const char *what, json_t **out, struct err *e)
{
	json_t *obj = json_object();

	if (!obj)
		return err_oom(e);
	for (size_t i = 0; i < m->n; i++) {
		const struct kv *kv = &m->items[i];
		json_t *old = json_object_get(prev, kv->key), *val = NULL;
		char *text = NULL;

		if (old && !json_is_string(old))
			text = json_dumps(old, JSON_COMPACT | JSON_ENCODE_ANY);
		if (text && strlen(text) == kv->len && !memcmp(text, kv->val, kv->len))
			val = json_incref(old);
		secmem_free_str(text);
		if (!val)
			val = json_stringn(kv->val, kv->len);
		if (!val || json_object_set_new(obj, kv->key, val) < 0) {
			json_decref(obj);
			return err_set(e, ERR_INVALID,
				       "%s: the value of %s is not UTF-8 text, which JSON cannot hold",
				       what, kv->key);
		}
	}
	*out = obj;
	return 0;
}
