/* test_http.c - unit tests for the shared HTTP layer (providers/http.c).
 *
 * The pure policy functions are tested directly. The request path is
 * tested against a tiny HTTP/1.1 server run in a forked child on
 * 127.0.0.1 (port 0, loopback only), which follows a script of answers
 * and reports every request it sees through a pipe.
 * Run: build/tests/test_http
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/secmem.h"
#include "providers/http.h"

/* ---- the scripted server ---- */

enum srv_action {
	SRV_REPLY,	/* answer status, headers, body */
	SRV_DROP,	/* close the connection without an answer */
	SRV_HANG,	/* never answer */
};

struct srv_step {
	enum srv_action action;
	int status;
	const char *headers;	/* extra header lines, each ending \r\n */
	size_t body_len;	/* a body of this many 'x' */
	bool chunked;
};

#define SRV_STEPS_MAX 8
#define SRV_CONNS_MAX 16

struct srv {
	pid_t pid;
	int port;
	int rec;		/* read end: one struct srv_rec per request */
	struct srv_step steps[SRV_STEPS_MAX];
	size_t nsteps;
};

struct srv_rec {
	int conn;		/* which accepted connection, from 0 */
	char method[16];
	char path[128];
	int has_secret;		/* an X-Test-Secret header came */
	int has_plain;		/* an X-Test-Plain header came */
	long body_len;
};

struct srv_conn {
	int fd;
	int id;
	char buf[8192];
	size_t len;
};

static void srv_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			return;
		p += w;
		n -= w;
	}
}

static void srv_reply(int fd, const struct srv_step *st)
{
	char head[1024];
	char *body = malloc(st->body_len + 1);
	int n;

	memset(body, 'x', st->body_len);
	if (st->chunked) {
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n%s\r\n%zx\r\n",
			     st->status, st->headers ? st->headers : "",
			     st->body_len);
		srv_write_all(fd, head, n);
		srv_write_all(fd, body, st->body_len);
		srv_write_all(fd, "\r\n0\r\n\r\n", 7);
	} else {
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n",
			     st->status, st->body_len,
			     st->headers ? st->headers : "");
		srv_write_all(fd, head, n);
		srv_write_all(fd, body, st->body_len);
	}
	free(body);
}

/* A whole request in c->buf: record it and act; false to close. */
static bool srv_handle(struct srv *s, struct srv_conn *c, int rec,
		       size_t *count)
{
	static const struct srv_step ok = { SRV_REPLY, 200, NULL, 2, false };
	char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
	struct srv_rec r = { .conn = c->id };
	const struct srv_step *st;
	size_t hlen, total;
	char *cl;

	if (!end)
		return true;
	hlen = end - c->buf + 4;
	c->buf[hlen - 1] = '\0';
	cl = strcasestr(c->buf, "\r\nContent-Length:");
	r.body_len = cl ? strtol(cl + 17, NULL, 10) : 0;
	total = hlen + r.body_len;
	if (c->len < total) {
		c->buf[hlen - 1] = '\n';
		return true;
	}
	sscanf(c->buf, "%15s %127s", r.method, r.path);
	r.has_secret = strcasestr(c->buf, "\r\nX-Test-Secret:") != NULL;
	r.has_plain = strcasestr(c->buf, "\r\nX-Test-Plain:") != NULL;
	srv_write_all(rec, (const char *)&r, sizeof(r));
	memmove(c->buf, c->buf + total, c->len - total);
	c->len -= total;
	st = *count < s->nsteps ? &s->steps[*count] : &ok;
	(*count)++;
	if (st->action == SRV_DROP)
		return false;
	if (st->action == SRV_REPLY)
		srv_reply(c->fd, st);
	return true;
}

static void srv_child(struct srv *s, int lfd, int rec)
{
	struct srv_conn conns[SRV_CONNS_MAX];
	size_t nconns = 0, count = 0;
	int next_id = 0;

	for (;;) {
		struct pollfd pfd[SRV_CONNS_MAX + 1];

		pfd[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (size_t i = 0; i < nconns; i++)
			pfd[i + 1] = (struct pollfd){ .fd = conns[i].fd,
						      .events = POLLIN };
		if (poll(pfd, nconns + 1, -1) < 0)
			continue;
		for (size_t i = nconns; i-- > 0;) {
			struct srv_conn *c = &conns[i];
			ssize_t n;

			if (!(pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len - 1);
			if (n > 0) {
				c->len += n;
				if (srv_handle(s, c, rec, &count))
					continue;
			}
			close(c->fd);
			*c = conns[--nconns];
		}
		if ((pfd[0].revents & POLLIN) && nconns < SRV_CONNS_MAX) {
			int fd = accept(lfd, NULL, NULL);

			if (fd >= 0)
				conns[nconns++] = (struct srv_conn){ .fd = fd,
								     .id = next_id++ };
		}
	}
}

static void srv_start(struct srv *s)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), p[2];

	assert_true(lfd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 16), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	s->port = ntohs(sa.sin_port);
	assert_int_equal(pipe(p), 0);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		close(p[0]);
		srv_child(s, lfd, p[1]);
		_exit(0);
	}
	close(lfd);
	close(p[1]);
	s->rec = p[0];
	fcntl(s->rec, F_SETFL, O_NONBLOCK);
}

static void srv_stop(struct srv *s)
{
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	close(s->rec);
}

/* The requests the server has seen so far, up to max. */
static size_t srv_records(struct srv *s, struct srv_rec *out, size_t max)
{
	size_t n = 0;

	while (n < max) {
		ssize_t r = read(s->rec, &out[n], sizeof(out[n]));

		if (r != (ssize_t)sizeof(out[n]))
			break;
		n++;
	}
	return n;
}

static void srv_step(struct srv *s, enum srv_action a, int status,
		     const char *headers, size_t body_len, bool chunked)
{
	assert_true(s->nsteps < SRV_STEPS_MAX);
	s->steps[s->nsteps++] = (struct srv_step){ a, status, headers,
						   body_len, chunked };
}

/* ---- client helpers ---- */

static struct http_client *client_new(long timeout_ms, size_t max_response)
{
	struct http_client_conf conf = {
		.name = "test",
		.timeout_ms = timeout_ms,
		.max_response = max_response,
		.backoff_base_ms = 10,
	};
	struct http_client *c = NULL;
	struct err e;

	assert_int_equal(http_client_new(&conf, &c, &e), 0);
	return c;
}

static char *url_of(const struct srv *s, const char *path)
{
	static char url[256];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
	return url;
}

static int get(struct http_client *c, const char *url,
	       struct http_response *rs, struct err *e)
{
	struct http_request rq = { .method = "GET", .url = url };

	return http_request(c, &rq, rs, e);
}

/* ---- pure functions ---- */

static void test_status_table(void **state)
{
	struct err e;

	(void)state;
	assert_int_equal(http_status_code(200), ERR_OK);
	assert_int_equal(http_status_code(204), ERR_OK);
	assert_int_equal(http_status_code(400), ERR_INVALID);
	assert_int_equal(http_status_code(401), ERR_ACCESS);
	assert_int_equal(http_status_code(403), ERR_ACCESS);
	assert_int_equal(http_status_code(404), ERR_NOTFOUND);
	assert_int_equal(http_status_code(409), ERR_CONFLICT);
	assert_int_equal(http_status_code(412), ERR_CONFLICT);
	assert_int_equal(http_status_code(413), ERR_TOOBIG);
	assert_int_equal(http_status_code(429), ERR_PROVIDER);
	assert_int_equal(http_status_code(500), ERR_PROVIDER);
	assert_int_equal(http_status_code(503), ERR_PROVIDER);
	assert_int_equal(http_status_code(418), ERR_PROVIDER);
	assert_int_equal(http_status_code(302), ERR_PROVIDER);
	assert_string_equal(http_status_text(404), "not found");
	assert_string_equal(http_status_text(599), "server error");
	assert_int_equal(http_status_err(&e, 403, "GET x"), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_string_equal(e.msg, "GET x: HTTP 403 (forbidden)");
}

/* Every provider's error mapping passes its reading of the body through
 * http_answer_code: a refusal is ERR_ACCESS whatever the body was. */
static void test_answer_code(void **state)
{
	(void)state;
	assert_true(http_status_refused(401));
	assert_true(http_status_refused(403));
	assert_false(http_status_refused(400));
	assert_false(http_status_refused(404));
	assert_false(http_status_refused(407));
	assert_false(http_status_refused(500));
	assert_int_equal(http_answer_code(403, ERR_PROVIDER), ERR_ACCESS);
	assert_int_equal(http_answer_code(401, ERR_PROVIDER), ERR_ACCESS);
	assert_int_equal(http_answer_code(401, ERR_INVALID), ERR_ACCESS);
	assert_int_equal(http_answer_code(403, ERR_NOTFOUND), ERR_ACCESS);
	assert_int_equal(http_answer_code(400, ERR_PROVIDER), ERR_PROVIDER);
	assert_int_equal(http_answer_code(400, ERR_ACCESS), ERR_ACCESS);
	assert_int_equal(http_answer_code(502, ERR_PROVIDER), ERR_PROVIDER);
}

static void test_retryable(void **state)
{
	(void)state;
	assert_true(http_status_retryable(429));
	assert_true(http_status_retryable(500));
	assert_true(http_status_retryable(502));
	assert_true(http_status_retryable(503));
	assert_true(http_status_retryable(504));
	assert_false(http_status_retryable(501));
	assert_false(http_status_retryable(412));
	assert_false(http_status_retryable(400));
	assert_false(http_status_retryable(404));
	assert_false(http_status_retryable(200));
	assert_true(http_curl_retryable(CURLE_COULDNT_CONNECT));
	assert_true(http_curl_retryable(CURLE_OPERATION_TIMEDOUT));
	assert_true(http_curl_retryable(CURLE_GOT_NOTHING));
	assert_true(http_curl_retryable(CURLE_RECV_ERROR));
	assert_false(http_curl_retryable(CURLE_SSL_CACERT_BADFILE));
	assert_false(http_curl_retryable(CURLE_PEER_FAILED_VERIFICATION));
	assert_false(http_curl_retryable(CURLE_URL_MALFORMAT));
}

static void test_backoff_bounds(void **state)
{
	(void)state;
	for (int retry = 0; retry < 12; retry++) {
		long step = 100L << retry, lo = LONG_MAX, hi = 0;

		if (step > 3000)
			step = 3000;
		for (int i = 0; i < 500; i++) {
			long d = http_backoff_ms(retry, 100, 3000);

			assert_true(d >= step / 2);
			assert_true(d <= step);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		/* jitter: 500 draws are not all the same */
		assert_true(hi > lo);
	}
	/* a huge retry count neither overflows nor passes the cap */
	assert_true(http_backoff_ms(1000, 250, 5000) <= 5000);
	assert_true(http_backoff_ms(1000, 250, 5000) >= 2500);
}

static void test_retry_after(void **state)
{
	(void)state;
	assert_int_equal(http_retry_after_ms("5", 10000), 5000);
	assert_int_equal(http_retry_after_ms(" 2\r\n", 10000), 2000);
	assert_int_equal(http_retry_after_ms("0", 10000), 0);
	assert_int_equal(http_retry_after_ms("100", 10000), 10000);
	assert_int_equal(http_retry_after_ms("99999999999999999999999", 10000),
			 10000);
	assert_int_equal(http_retry_after_ms(NULL, 10000), -1);
	assert_int_equal(http_retry_after_ms("", 10000), -1);
	assert_int_equal(http_retry_after_ms("-1", 10000), -1);
	assert_int_equal(http_retry_after_ms("1.5", 10000), -1);
	assert_int_equal(http_retry_after_ms("3 s", 10000), -1);
	assert_int_equal(http_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT",
					     10000), -1);
}

static void test_path_escape(void **state)
{
	char *s;

	(void)state;
	s = http_path_escape("secret/my app/x?y#z%");
	assert_string_equal(s, "secret/my%20app/x%3Fy%23z%25");
	free(s);
	s = http_path_escape("a//b/");
	assert_string_equal(s, "a//b/");
	free(s);
	s = http_path_escape("kv/team/\xc3\xbc-._~");
	assert_string_equal(s, "kv/team/%C3%BC-._~");
	free(s);
	s = http_path_escape("");
	assert_string_equal(s, "");
	free(s);
	s = http_path_escape("/lead");
	assert_string_equal(s, "/lead");
	free(s);
}

static void test_redirect_policy(void **state)
{
	const char *from = "https://vault.example:8200/v1/secret/data/x";

	(void)state;
	assert_true(http_redirect_status(301));
	assert_true(http_redirect_status(302));
	assert_true(http_redirect_status(307));
	assert_true(http_redirect_status(308));
	assert_false(http_redirect_status(303));
	assert_false(http_redirect_status(200));
	assert_int_equal(http_redirect_check(from, "/v1/other"),
			 HTTP_REDIRECT_SAME_ORIGIN);
	assert_int_equal(http_redirect_check(from,
					     "https://VAULT.example:8200/v1/y"),
			 HTTP_REDIRECT_SAME_ORIGIN);
	assert_int_equal(http_redirect_check("https://h/x", "https://h:443/y"),
			 HTTP_REDIRECT_SAME_ORIGIN);
	assert_int_equal(http_redirect_check(from, "https://other:8200/v1/x"),
			 HTTP_REDIRECT_OTHER_ORIGIN);
	assert_int_equal(http_redirect_check(from,
					     "https://vault.example:8201/v1/x"),
			 HTTP_REDIRECT_OTHER_ORIGIN);
	assert_int_equal(http_redirect_check("http://h/x", "https://h/x"),
			 HTTP_REDIRECT_OTHER_ORIGIN);
	assert_int_equal(http_redirect_check(from,
					     "http://vault.example:8200/v1/x"),
			 HTTP_REDIRECT_REFUSE);
	assert_int_equal(http_redirect_check(from, "ftp://vault.example/x"),
			 HTTP_REDIRECT_REFUSE);
	assert_int_equal(http_redirect_check(from, "file:///etc/passwd"),
			 HTTP_REDIRECT_REFUSE);
	assert_int_equal(http_redirect_check("not a url", "/x"),
			 HTTP_REDIRECT_REFUSE);
}

static void test_url_brief(void **state)
{
	char out[128];

	(void)state;
	http_url_brief("http://user:pw@h.example:81/v1/a%20b?version=2&x=y",
		       out, sizeof(out));
	assert_string_equal(out, "http://h.example:81/v1/a%20b");
	http_url_brief("https://h.example/", out, sizeof(out));
	assert_string_equal(out, "https://h.example/");
	http_url_brief("::", out, sizeof(out));
	assert_string_equal(out, "?");
}

static void test_headers(void **state)
{
	struct http_headers h = HTTP_HEADERS_INIT;

	(void)state;
	assert_int_equal(http_headers_add(&h, "X-Vault-Request", "true", false), 0);
	assert_int_equal(http_headers_add(&h, "X-Vault-Token", "tok", true), 0);
	assert_int_equal(h.n, 2);
	assert_string_equal(h.v[0].line, "X-Vault-Request: true");
	assert_false(h.v[0].secret);
	assert_string_equal(h.v[1].line, "X-Vault-Token: tok");
	assert_true(h.v[1].secret);
	http_headers_free(&h);
	assert_int_equal(h.n, 0);
	assert_null(h.v);
}

static void test_json_helpers(void **state)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf out = SECBUF_INIT;
	json_t *j;

	(void)state;
	assert_int_equal(secbuf_set(&rs.body, "{\"a\":\"x\\u0000y\"}", 16), 0);
	j = http_json_parse(&rs);
	assert_non_null(j);
	assert_int_equal(json_string_length(json_object_get(j, "a")), 3);
	assert_int_equal(http_json_dump(j, &out), 0);
	assert_int_equal(out.len, 16);
	assert_memory_equal(out.data, "{\"a\":\"x\\u0000y\"}", 16);
	json_decref(j);
	/* garbage, duplicate keys and an empty body are not JSON */
	secbuf_set(&rs.body, "{\"a\":", 5);
	assert_null(http_json_parse(&rs));
	secbuf_set(&rs.body, "{\"a\":1,\"a\":2}", 13);
	assert_null(http_json_parse(&rs));
	secbuf_clear(&rs.body);
	assert_null(http_json_parse(&rs));
	http_response_free(&rs);
	secbuf_free(&out);
}

/* ---- requests against the scripted server ---- */

static void test_keepalive_reuse(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct srv_rec r[8];
	struct http_client *c;
	struct err e;

	(void)state;
	srv_start(&s);
	c = client_new(5000, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(get(c, url_of(&s, "/v1/a"), &rs, &e), 0);
		assert_int_equal(rs.status, 200);
		assert_int_equal(rs.body.len, 2);
		assert_memory_equal(rs.body.data, "xx", 2);
	}
	assert_int_equal(srv_records(&s, r, 8), 3);
	/* one connection served all three */
	assert_int_equal(r[0].conn, 0);
	assert_int_equal(r[1].conn, 0);
	assert_int_equal(r[2].conn, 0);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

static void test_retry_503_then_200(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct srv_rec r[8];
	struct http_client *c;
	struct err e;

	(void)state;
	srv_step(&s, SRV_REPLY, 503, NULL, 5, false);
	srv_step(&s, SRV_REPLY, 200, NULL, 3, false);
	srv_start(&s);
	c = client_new(5000, 0);
	assert_int_equal(get(c, url_of(&s, "/x"), &rs, &e), 0);
	assert_int_equal(rs.status, 200);
	assert_int_equal(rs.body.len, 3);
	assert_int_equal(srv_records(&s, r, 8), 2);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

static void test_retries_run_out(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct srv_rec r[8];
	struct http_client *c;
	struct err e;

	(void)state;
	for (int i = 0; i < 5; i++)
		srv_step(&s, SRV_REPLY, 502, NULL, 0, false);
	srv_start(&s);
	c = client_new(5000, 0);
	/* the last answer comes back after HTTP_ATTEMPTS_DEFAULT tries */
	assert_int_equal(get(c, url_of(&s, "/x"), &rs, &e), 0);
	assert_int_equal(rs.status, 502);
	assert_int_equal(srv_records(&s, r, 8), HTTP_ATTEMPTS_DEFAULT);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

static enum http_verdict classify_412(void *ctx, const struct http_response *rs)
{
	(void)ctx;
	return rs->status == 412 ? HTTP_VERDICT_RETRY : HTTP_VERDICT_DEFAULT;
}

/* An auth hook that counts its calls and adds the secret test header. */
static int auth_count(void *ctx, struct http_auth *a, struct err *e)
{
	int *calls = ctx;

	(*calls)++;
	if (*calls > 10)
		return err_set(e, ERR_ACCESS, "no more credentials");
	return http_auth_header(a, "X-Test-Secret", "tok");
}

static enum http_verdict classify_final(void *ctx, const struct http_response *rs)
{
	(void)ctx;
	(void)rs;
	return HTTP_VERDICT_FINAL;
}

/* The auth hook runs before every attempt, so a retry carries fresh
 * credentials; its headers are secret (dropped cross-origin); a
 * classifier can stop the default retries; a failing hook fails the
 * request without sending it. */
static void test_auth_hook_and_classifier(void **state)
{
	struct srv s = { 0 }, b = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	int calls = 0;
	struct http_request rq = { .method = "GET", .auth = auth_count,
				   .ctx = &calls };
	struct srv_rec r[8];
	struct http_client *c;
	char loc[128];
	struct err e;

	(void)state;
	srv_start(&b);
	snprintf(loc, sizeof(loc), "Location: http://127.0.0.1:%d/v1/b\r\n",
		 b.port);
	srv_step(&s, SRV_REPLY, 503, NULL, 0, false);
	srv_step(&s, SRV_REPLY, 200, NULL, 0, false);
	srv_step(&s, SRV_REPLY, 503, NULL, 0, false);
	srv_step(&s, SRV_REPLY, 302, loc, 0, false);
	srv_start(&s);
	c = client_new(5000, 0);
	rq.url = url_of(&s, "/a");
	assert_int_equal(http_request(c, &rq, &rs, &e), 0);
	assert_int_equal(rs.status, 200);
	assert_int_equal(calls, 2);
	assert_int_equal(srv_records(&s, r, 8), 2);
	assert_int_equal(r[0].has_secret, 1);
	assert_int_equal(r[1].has_secret, 1);
	/* FINAL: the 503 comes back as it is, one attempt */
	rq.classify = classify_final;
	assert_int_equal(http_request(c, &rq, &rs, &e), 0);
	assert_int_equal(rs.status, 503);
	assert_int_equal(srv_records(&s, r, 8), 1);
	/* the hook's header stays home on a cross-origin redirect */
	rq.classify = NULL;
	assert_int_equal(http_request(c, &rq, &rs, &e), 0);
	assert_int_equal(srv_records(&b, r, 8), 1);
	assert_int_equal(r[0].has_secret, 0);
	assert_int_equal(srv_records(&s, r, 8), 1);
	assert_int_equal(r[0].has_secret, 1);
	/* a failing hook: nothing sent */
	calls = 10;
	assert_int_equal(http_request(c, &rq, &rs, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_int_equal(srv_records(&s, r, 8), 0);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
	srv_stop(&b);
}

static void test_no_retry_501_and_412(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_request rq = { .method = "GET" };
	struct srv_rec r[8];
	struct http_client *c;
	struct err e;

	(void)state;
	srv_step(&s, SRV_REPLY, 501, NULL, 0, false);
	srv_step(&s, SRV_REPLY, 412, NULL, 0, false);
	srv_step(&s, SRV_REPLY, 412, NULL, 0, false);
	srv_step(&s, SRV_REPLY, 200, NULL, 0, false);
	srv_start(&s);
	c = client_new(5000, 0);
	assert_int_equal(get(c, url_of(&s, "/a"), &rs, &e), 0);
	assert_int_equal(rs.status, 501);
	assert_int_equal(get(c, url_of(&s, "/b"), &rs, &e), 0);
	assert_int_equal(rs.status, 412);
	/* the provider's classifier makes 412 retryable (Vault Enterprise) */
	rq.url = url_of(&s, "/c");
	rq.classify = classify_412;
	assert_int_equal(http_request(c, &rq, &rs, &e), 0);
	assert_int_equal(rs.status, 200);
	assert_int_equal(srv_records(&s, r, 8), 4);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

static void test_dropped_connection(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct srv_rec r[8];
	struct http_client *c;
	struct err e;

	(void)state;
	srv_step(&s, SRV_DROP, 0, NULL, 0, false);
	srv_step(&s, SRV_REPLY, 200, NULL, 4, false);
	srv_start(&s);
	c = client_new(5000, 0);
	assert_int_equal(get(c, url_of(&s, "/x"), &rs, &e), 0);
	assert_int_equal(rs.status, 200);
	assert_int_equal(rs.body.len, 4);
	assert_int_equal(srv_records(&s, r, 8), 2);
	/* the second try came on a new connection */
	assert_int_equal(r[1].conn, 1);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

static void test_retry_after_honoured(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_client *c;
	struct err e;
	int64_t t0;

	(void)state;
	srv_step(&s, SRV_REPLY, 429, "Retry-After: 1\r\n", 0, false);
	srv_step(&s, SRV_REPLY, 200, NULL, 0, false);
	srv_start(&s);
	c = client_new(5000, 0);
	t0 = clock_now_ms();
	assert_int_equal(get(c, url_of(&s, "/x"), &rs, &e), 0);
	assert_int_equal(rs.status, 200);
	/* the backoff alone would be ~10 ms */
	assert_true(clock_now_ms() - t0 >= 950);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

static void test_retry_after_past_budget(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_client *c;
	struct err e;
	int64_t t0;

	(void)state;
	srv_step(&s, SRV_REPLY, 429, "Retry-After: 5\r\n", 0, false);
	srv_start(&s);
	c = client_new(1000, 0);
	t0 = clock_now_ms();
	/* waiting would pass the budget: the 429 comes back at once */
	assert_int_equal(get(c, url_of(&s, "/x"), &rs, &e), 0);
	assert_int_equal(rs.status, 429);
	assert_true(clock_now_ms() - t0 < 900);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

static void test_body_cap(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_client *c;
	struct err e;

	(void)state;
	srv_step(&s, SRV_REPLY, 200, NULL, 1000, false);
	srv_step(&s, SRV_REPLY, 200, NULL, 1001, false);
	srv_step(&s, SRV_REPLY, 200, NULL, 5000, true);
	srv_step(&s, SRV_REPLY, 200, NULL, 1000, true);
	srv_start(&s);
	c = client_new(5000, 1000);
	assert_int_equal(get(c, url_of(&s, "/a"), &rs, &e), 0);
	assert_int_equal(rs.body.len, 1000);
	/* announced by Content-Length */
	assert_int_equal(get(c, url_of(&s, "/b"), &rs, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "larger than 1000 bytes"));
	assert_int_equal(rs.body.len, 0);
	/* found while reading a chunked body */
	assert_int_equal(get(c, url_of(&s, "/c"), &rs, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "larger than 1000 bytes"));
	assert_int_equal(get(c, url_of(&s, "/d"), &rs, &e), 0);
	assert_int_equal(rs.body.len, 1000);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

static void test_timeout(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_client *c;
	struct err e;
	int64_t t0, took;

	(void)state;
	srv_step(&s, SRV_HANG, 0, NULL, 0, false);
	srv_step(&s, SRV_HANG, 0, NULL, 0, false);
	srv_step(&s, SRV_HANG, 0, NULL, 0, false);
	srv_start(&s);
	c = client_new(400, 0);
	t0 = clock_now_ms();
	assert_int_equal(get(c, url_of(&s, "/x"), &rs, &e), -1);
	took = clock_now_ms() - t0;
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "GET http://127.0.0.1:"));
	/* the whole budget, retries included, is 400 ms */
	assert_true(took >= 350);
	assert_true(took < 1500);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

static void test_connection_refused(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct http_response rs = HTTP_RESPONSE_INIT;
	socklen_t len = sizeof(sa);
	struct http_client *c;
	char url[64];
	struct err e;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	/* a port that was just free: nobody listens there */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/x?q=secretish",
		 ntohs(sa.sin_port));
	c = client_new(3000, 0);
	assert_int_equal(get(c, url, &rs, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "after 3 attempts"));
	/* the query string stays out of messages */
	assert_null(strstr(e.msg, "secretish"));
	http_response_free(&rs);
	http_client_free(c);
}

static int post(struct http_client *c, const char *url,
		struct http_response *rs, struct err *e)
{
	struct http_request rq = { .method = "POST", .url = url, .body = "{}",
				   .body_len = 2 };

	return http_request(c, &rq, rs, e);
}

/* A change sent without an answer back may have taken effect: its
 * failure says so (ERR_UNSURE), so the caller can read back. */
static void test_unanswered_change_is_unsure(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct srv_rec r[8];
	struct http_client *c;
	struct err e;

	(void)state;
	for (int i = 0; i < 3; i++)
		srv_step(&s, SRV_DROP, 0, NULL, 0, false);
	/* the next request: dropped once, then answered */
	srv_step(&s, SRV_DROP, 0, NULL, 0, false);
	srv_step(&s, SRV_REPLY, 200, NULL, 2, false);
	srv_start(&s);
	c = client_new(5000, 0);
	assert_int_equal(post(c, url_of(&s, "/w"), &rs, &e), -1);
	assert_int_equal(e.code, ERR_UNSURE);
	assert_non_null(strstr(e.msg, "after 3 attempts"));
	assert_int_equal(srv_records(&s, r, 8), 3);
	/* a later final answer settles it */
	assert_int_equal(post(c, url_of(&s, "/w"), &rs, &e), 0);
	assert_int_equal(rs.status, 200);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

/* A 5xx given up on says nothing of the unanswered attempt before it. */
static void test_unanswered_change_then_5xx_is_unsure(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_client *c;
	struct err e;

	(void)state;
	/* a fresh server: the first attempt opens its own connection, so
	 * curl does not quietly resend on a reused one that died */
	srv_step(&s, SRV_DROP, 0, NULL, 0, false);
	srv_step(&s, SRV_REPLY, 503, NULL, 0, false);
	srv_step(&s, SRV_REPLY, 503, NULL, 0, false);
	srv_start(&s);
	c = client_new(5000, 0);
	assert_int_equal(post(c, url_of(&s, "/w"), &rs, &e), -1);
	assert_int_equal(e.code, ERR_UNSURE);
	assert_non_null(strstr(e.msg, "HTTP 503 after an attempt that got no answer"));
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

/* What cannot have changed anything stays a plain provider failure: a
 * read without an answer, a change that never reached the server, and a
 * change answered with an error status. */
static void test_unsent_change_and_reads_are_not_unsure(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct http_response rs = HTTP_RESPONSE_INIT;
	socklen_t len = sizeof(sa);
	struct srv s = { 0 };
	struct http_client *c;
	char url[64];
	struct err e;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/w", ntohs(sa.sin_port));
	c = client_new(3000, 0);
	assert_int_equal(post(c, url, &rs, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	http_client_free(c);

	for (int i = 0; i < 3; i++)
		srv_step(&s, SRV_DROP, 0, NULL, 0, false);
	for (int i = 0; i < 3; i++)
		srv_step(&s, SRV_REPLY, 500, NULL, 0, false);
	srv_start(&s);
	c = client_new(5000, 0);
	assert_int_equal(get(c, url_of(&s, "/r"), &rs, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_int_equal(post(c, url_of(&s, "/w"), &rs, &e), 0);
	assert_int_equal(rs.status, 500);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

static void test_redirect_same_origin(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_request rq = { .method = "POST", .body = "{\"a\":1}",
				   .body_len = 7, .body_secret = true };
	struct srv_rec r[8];
	struct http_client *c;
	struct err e;

	(void)state;
	srv_step(&s, SRV_REPLY, 307, "Location: /v1/there\r\n", 0, false);
	srv_step(&s, SRV_REPLY, 200, NULL, 1, false);
	srv_start(&s);
	c = client_new(5000, 0);
	http_headers_add(&h, "X-Test-Secret", "tok", true);
	rq.headers = &h;
	rq.url = url_of(&s, "/v1/here");
	assert_int_equal(http_request(c, &rq, &rs, &e), 0);
	assert_int_equal(rs.status, 200);
	assert_int_equal(srv_records(&s, r, 8), 2);
	assert_string_equal(r[1].method, "POST");
	assert_string_equal(r[1].path, "/v1/there");
	assert_int_equal(r[1].body_len, 7);
	assert_int_equal(r[1].has_secret, 1);
	http_headers_free(&h);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

static void test_redirect_other_origin(void **state)
{
	struct srv a = { 0 }, b = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_request rq = { .method = "GET" };
	struct srv_rec r[8];
	struct http_client *c;
	char loc[128];
	struct err e;

	(void)state;
	srv_start(&b);
	snprintf(loc, sizeof(loc), "Location: http://127.0.0.1:%d/v1/b\r\n",
		 b.port);
	srv_step(&a, SRV_REPLY, 302, loc, 0, false);
	srv_step(&a, SRV_REPLY, 308, loc, 0, false);
	srv_start(&a);
	c = client_new(5000, 0);
	http_headers_add(&h, "X-Test-Secret", "tok", true);
	http_headers_add(&h, "X-Test-Plain", "1", false);
	rq.headers = &h;
	rq.url = url_of(&a, "/v1/a");
	assert_int_equal(http_request(c, &rq, &rs, &e), 0);
	assert_int_equal(rs.status, 200);
	assert_int_equal(srv_records(&b, r, 8), 1);
	/* the token stayed home; the rest went along */
	assert_int_equal(r[0].has_secret, 0);
	assert_int_equal(r[0].has_plain, 1);
	/* a secret body is never sent to another host */
	rq.method = "POST";
	rq.body = "{}";
	rq.body_len = 2;
	rq.body_secret = true;
	assert_int_equal(http_request(c, &rq, &rs, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "refused redirect"));
	assert_int_equal(srv_records(&b, r, 8), 0);
	http_headers_free(&h);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&a);
	srv_stop(&b);
}

static void test_redirect_once_only(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct srv_rec r[8];
	struct http_client *c;
	struct err e;

	(void)state;
	srv_step(&s, SRV_REPLY, 307, "Location: /b\r\n", 0, false);
	srv_step(&s, SRV_REPLY, 307, "Location: /c\r\n", 0, false);
	srv_start(&s);
	c = client_new(5000, 0);
	assert_int_equal(get(c, url_of(&s, "/a"), &rs, &e), 0);
	assert_int_equal(rs.status, 307);
	assert_int_equal(srv_records(&s, r, 8), 2);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

static void test_methods(void **state)
{
	struct srv s = { 0 };
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_request rq = { .method = "LIST" };
	struct srv_rec r[8];
	struct http_client *c;
	struct err e;

	(void)state;
	srv_start(&s);
	c = client_new(5000, 0);
	rq.url = url_of(&s, "/v1/secret/metadata/");
	assert_int_equal(http_request(c, &rq, &rs, &e), 0);
	rq.method = "PUT";
	rq.body = "abc";
	rq.body_len = 3;
	assert_int_equal(http_request(c, &rq, &rs, &e), 0);
	rq.method = "POST";
	rq.body = NULL;
	rq.body_len = 0;
	assert_int_equal(http_request(c, &rq, &rs, &e), 0);
	assert_int_equal(srv_records(&s, r, 8), 3);
	assert_string_equal(r[0].method, "LIST");
	assert_string_equal(r[0].path, "/v1/secret/metadata/");
	assert_int_equal(r[0].body_len, 0);
	assert_string_equal(r[1].method, "PUT");
	assert_int_equal(r[1].body_len, 3);
	assert_string_equal(r[2].method, "POST");
	assert_int_equal(r[2].body_len, 0);
	http_response_free(&rs);
	http_client_free(c);
	srv_stop(&s);
}

struct hammer {
	struct http_client *c;
	const char *url;
	int ok;
};

static void *hammer_run(void *arg)
{
	struct hammer *hm = arg;
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct err e;

	for (int i = 0; i < 25; i++)
		if (get(hm->c, hm->url, &rs, &e) == 0 && rs.status == 200 &&
		    rs.body.len == 2)
			hm->ok++;
	http_response_free(&rs);
	return NULL;
}

static void test_threads_share_client(void **state)
{
	struct srv s = { 0 };
	struct hammer hm[4];
	pthread_t t[4];
	struct http_client *c;

	(void)state;
	srv_start(&s);
	c = client_new(5000, 0);
	for (int i = 0; i < 4; i++) {
		hm[i] = (struct hammer){ c, url_of(&s, "/x"), 0 };
		assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &hm[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(hm[i].ok, 25);
	}
	http_client_free(c);
	srv_stop(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_table),
		cmocka_unit_test(test_answer_code),
		cmocka_unit_test(test_retryable),
		cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_path_escape),
		cmocka_unit_test(test_redirect_policy),
		cmocka_unit_test(test_url_brief),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_json_helpers),
		cmocka_unit_test(test_keepalive_reuse),
		cmocka_unit_test(test_retry_503_then_200),
		cmocka_unit_test(test_retries_run_out),
		cmocka_unit_test(test_no_retry_501_and_412),
		cmocka_unit_test(test_auth_hook_and_classifier),
		cmocka_unit_test(test_dropped_connection),
		cmocka_unit_test(test_retry_after_honoured),
		cmocka_unit_test(test_retry_after_past_budget),
		cmocka_unit_test(test_body_cap),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_unanswered_change_is_unsure),
		cmocka_unit_test(test_unanswered_change_then_5xx_is_unsure),
		cmocka_unit_test(test_unsent_change_and_reads_are_not_unsure),
		cmocka_unit_test(test_redirect_same_origin),
		cmocka_unit_test(test_redirect_other_origin),
		cmocka_unit_test(test_redirect_once_only),
		cmocka_unit_test(test_methods),
		cmocka_unit_test(test_threads_share_client),
	};

	if (sodium_init() < 0)
		return 1;
	secmem_init_json();
	/* a child killed mid-write must not kill us */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
