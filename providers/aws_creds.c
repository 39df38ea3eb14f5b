/* aws_creds.c - the AWS credential chain of the Secrets Manager provider.
 *
 * Resolved lazily at the first request, in botocore's order; the first
 * source that is configured wins (one that is configured but fails is an
 * error, not a reason to try the next):
 *
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 *      AWS_SESSION_TOKEN; skipped when the provider names a profile (an
 *      explicit profile beats the environment, as in botocore);
 *   2. web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (or the
 *      profile's web_identity_token_file and role_arn), exchanged with
 *      STS AssumeRoleWithWebIdentity (unsigned, Query protocol, an XML
 *      answer); the token file is read again at every refresh. STS is
 *      AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL, else
 *      https://sts.REGION.amazonaws.com;
 *   3. shared files: the profile (the option, else AWS_PROFILE, else
 *      default) in AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials), then
 *      in AWS_CONFIG_FILE (~/.aws/config, [profile NAME] sections). A file
 *      that holds the keys must not be readable by group or others. Read
 *      again every 5 minutes, so rotated keys are picked up;
 *   4. ECS container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 *      below http://169.254.170.2 (SECRETFS_ECS_ENDPOINT replaces that
 *      base, for tests), or AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or
 *      http to a loopback or the ECS/EKS agent addresses); Authorization
 *      from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, read at every call, or
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN;
 *   5. EC2 instance metadata, IMDSv2 (token PUT, role, credentials), at
 *      AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254, one
 *      second per request; AWS_EC2_METADATA_DISABLED=true skips it.
 *
 * INI files are parsed with inih, but no value ever passes through it:
 * the line reader hands inih "key=\x01N" and keeps the value's place in
 * our wiped copy of the file (inih's line buffer is 200 bytes on the
 * stack and never wiped; a session token is ~1 KiB). Section names go
 * the same way ("[\x02N]"), since inih cuts them at 49 bytes.
 *
 * Temporary credentials are refreshed 5 minutes before they expire (at
 * half their life when that is shorter). A failed refresh keeps the
 * current credentials while they last; failures back off from 1 s to a
 * minute. One mutex guards the state; the network is used with it held,
 * so concurrent requests wait for one refresh instead of each doing one.
 */
#include "aws.h"
#include "kit.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/secmem.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "kit.h"

#define AWSC_FILE_MAX (1024 * 1024)
#define AWSC_ECS_BASE "http://169.254.170.2"
#define AWSC_IMDS_BASE "http://169.254.169.254"
#define AWSC_IMDS_BASE6 "http://[fd00:ec2::254]"
#define AWSC_IMDS_TIMEOUT_MS 1000
#define AWSC_IMDS_TTL_S "21600"
#define AWSC_STS_VERSION "2011-06-15"
#define AWSC_BACKOFF_MIN_MS 1000L
#define AWSC_BACKOFF_MAX_MS 60000L
/* credentials this young that AWS refuses are refused for real */
#define AWSC_REJECT_AGE_MS 10000
/* never refresh more often than this, even near expiry */
#define AWSC_REFRESH_MIN_S 5
/* credentials closer to expiry than this are no longer used */
#define AWSC_EXPIRY_SLACK_S 10

struct aws_chain {
	char *name;
	char *profile;		/* the option; NULL: AWS_PROFILE or default */
	char *region;
	struct http_client *http;
	pthread_mutex_t lock;
	struct aws_creds cur;	/* key_id NULL: none yet */
	uint64_t gen;		/* bumped whenever cur changes */
	int64_t got_ms;		/* clock_now_ms() when cur was obtained */
	time_t refresh_at;	/* 0: never */
	int64_t retry_ms;	/* after a failure, no attempt before this */
	long backoff_ms;
	struct err last_err;
};

/* ---- small helpers ---- */

static bool awsc_env_true(const char *name)
{
	const char *s = kit_env(name);

	return s && !strcasecmp(s, "true");
}

void awsc_creds_free(struct aws_creds *cr)
{
	secmem_free_str(cr->key_id);
	secmem_free_str(cr->secret);
	secmem_free_str(cr->token);
	memset(cr, 0, sizeof(*cr));
}

/* Fill cr from pieces (token may be NULL), each copied to wiped memory.
 * They end up in HTTP headers: control characters are refused. */
static int awsc_creds_set(struct aws_creds *cr, const char *id, size_t idlen,
			  const char *secret, size_t slen, const char *token,
			  size_t tlen, const char *what, struct err *e)
{
	awsc_creds_free(cr);
	if (!id || !idlen || !secret || !slen)
		return err_set(e, ERR_ACCESS, "%s: no access key id or secret",
			       what);
	if (kit_has_ctl(id, idlen) || kit_has_ctl(secret, slen) ||
	    (token && kit_has_ctl(token, tlen)) || memchr(id, ' ', idlen))
		return err_set(e, ERR_ACCESS,
			       "%s: the credentials hold control characters",
			       what);
	cr->key_id = secmem_dup(id, idlen);
	cr->secret = secmem_dup(secret, slen);
	if (token && tlen)
		cr->token = secmem_dup(token, tlen);
	if (!cr->key_id || !cr->secret || (token && tlen && !cr->token)) {
		awsc_creds_free(cr);
		return err_oom(e);
	}
	return 0;
}

static int awsc_creds_copy(struct aws_creds *dst, const struct aws_creds *src,
			   struct err *e)
{
	if (awsc_creds_set(dst, src->key_id, strlen(src->key_id), src->secret,
			   strlen(src->secret), src->token,
			   src->token ? strlen(src->token) : 0, src->source, e) < 0)
		return -1;
	dst->expire = src->expire;
	dst->src = src->src;
	memcpy(dst->source, src->source, sizeof(dst->source));
	return 0;
}
time_t awsc_refresh_at(time_t now, time_t expire)
{
	time_t left, half;

	if (expire == 0)
		return 0;
	left = expire - now;
	if (left <= 0)
		return now;
	if (left > 2 * AWS_REFRESH_MARGIN_S)
		return expire - AWS_REFRESH_MARGIN_S;
	half = left / 2;
	if (half < AWSC_REFRESH_MIN_S)
		half = left < AWSC_REFRESH_MIN_S ? left : AWSC_REFRESH_MIN_S;
	return now + half;
}

const char *awsc_profile_name(const char *option)
{
	const char *s = option && option[0] ? option : kit_env("AWS_PROFILE");

	if (!s)
		s = kit_env("AWS_DEFAULT_PROFILE");
	return s ? s : "default";
}

char *awsc_regional_url(const char *service, const char *region)
{
	const char *dns = strncmp(region, "cn-", 3) ? "amazonaws.com" :
		"amazonaws.com.cn";
	char *url;

	if (asprintf(&url, "https://%s.%s.%s", service, region, dns) < 0)
		return NULL;
	return url;
}

/* A copy of url without trailing slashes. */
static char *awsc_url_base(const char *url)
{
	char *s = strdup(url);
	size_t len = s ? strlen(s) : 0;

	while (len > 0 && s[len - 1] == '/')
		s[--len] = '\0';
	return s;
}

/* A configured endpoint of a service: its own variable, else
 * AWS_ENDPOINT_URL, unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS. */
const char *awsc_endpoint_env(const char *var)
{
	const char *s;

	if (awsc_env_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"))
		return NULL;
	s = kit_env(var);
	return s ? s : kit_env("AWS_ENDPOINT_URL");
}

/* ---- files ---- */

/* $HOME/rel, or the variable env's path (with ~/ expanded). */
static char *awsc_home_path(const char *env, const char *rel)
{
	const char *s = kit_env(env), *home = getenv("HOME");
	struct passwd pw, *res = NULL;
	char buf[4096], *path = NULL;

	if (s && strncmp(s, "~/", 2))
		return strdup(s);
	if ((!home || !home[0]) &&
	    getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
		home = res->pw_dir;
	if (!home || !home[0])
		return NULL;
	if (asprintf(&path, "%s/%s", home, s ? s + 2 : rel) < 0)
		return NULL;
	return path;
}

/* A token file (web identity, ECS authorization): read at every use,
 * trimmed, one line of text. Not checked for permissions: Kubernetes and
 * ECS mount them 0644, and they are short-lived proof of identity. */
static int awsc_token_file(const char *path, const char *what,
			   struct secbuf *out, struct err *e)
{
	if (kit_file_read(path, 0, AWSC_FILE_MAX, out, NULL, e) < 0)
		return err_prefix(e, "%s: ", what);
	secbuf_trim(out);
	if (out->len == 0 || kit_has_ctl(out->data, out->len)) {
		secbuf_clear(out);
		return err_set(e, ERR_ACCESS, "%s: %s is empty or not one line",
			       what, path);
	}
	return 0;
}

/* ---- shared config and credentials files ---- */

/* What a profile says, as far as secretfs cares. */
struct awsc_profile {
	bool found;
	char *key_id;		/* wiped memory */
	char *secret;
	char *token;
	char *role_arn;
	char *web_token_file;
	char *session_name;
	char *region;
	const char *unsupported;	/* a key naming a source we lack */
};

struct awsc_span {
	size_t off;
	size_t len;
};

struct awsc_ini {
	const struct secbuf *text;
	size_t pos;
	struct awsc_span *spans;
	size_t nspans;
	bool nomem;
	const char *want;	/* the profile */
	bool config;		/* the config file: [profile NAME] */
	struct awsc_profile *prof;
};

static void awsc_profile_free(struct awsc_profile *p)
{
	secmem_free_str(p->key_id);
	secmem_free_str(p->secret);
	secmem_free_str(p->token);
	free(p->role_arn);
	free(p->web_token_file);
	free(p->session_name);
	free(p->region);
	memset(p, 0, sizeof(*p));
}

/* Remember [off, off + len) of the text; its index, or -1. */
static long awsc_span_add(struct awsc_ini *r, size_t off, size_t len)
{
	struct awsc_span *v = realloc(r->spans, (r->nspans + 1) * sizeof(*v));

	if (!v) {
		r->nomem = true;
		return -1;
	}
	r->spans = v;
	v[r->nspans].off = off;
	v[r->nspans].len = len;
	return (long)r->nspans++;
}

static void awsc_skip_ws(const char **s, const char *end)
{
	while (*s < end && (**s == ' ' || **s == '\t'))
		(*s)++;
}

static void awsc_rtrim_ws(const char *start, const char **end)
{
	while (*end > start && ((*end)[-1] == ' ' || (*end)[-1] == '\t'))
		(*end)--;
}

/* inih's reader: one physical line, with section names and values
 * replaced by references into the text (see the top of the file). */
static char *awsc_ini_read(char *buf, int size, void *ud)
{
	struct awsc_ini *r = ud;
	const char *text = r->text->data, *line, *end, *k, *sep, *v;
	size_t n = r->text->len, len;
	long idx;

	if (r->pos >= n || size < 32 || r->nomem)
		return NULL;
	line = text + r->pos;
	end = memchr(line, '\n', n - r->pos);
	len = end ? (size_t)(end - line) : n - r->pos;
	r->pos += len + (end ? 1 : 0);
	end = line + len;
	while (end > line && end[-1] == '\r')
		end--;
	k = line;
	awsc_skip_ws(&k, end);
	if (k < end && *k == '[') {
		sep = memchr(k, ']', (size_t)(end - k));
		if (sep) {
			idx = awsc_span_add(r, (size_t)(k + 1 - text),
					    (size_t)(sep - k - 1));
			snprintf(buf, (size_t)size, "[\x02%ld]\n", idx);
			return idx < 0 ? NULL : buf;
		}
	}
	for (sep = k; sep < end && *sep != '=' && *sep != ':'; sep++)
		;
	if (k == end || *k == '#' || *k == ';' || *k == '[' || sep == end ||
	    sep - line + 24 > size) {
		/* no value here (or a key longer than any we know): a
		 * comment, a blank, an error inih reports; cut to fit */
		len = (size_t)(end - line) < (size_t)size - 2 ?
			(size_t)(end - line) : (size_t)size - 2;
		if (sep < end && sep - line + 24 > size)
			len = 0;
		memcpy(buf, line, len);
		buf[len] = '\n';
		buf[len + 1] = '\0';
		return buf;
	}
	v = sep + 1;
	awsc_skip_ws(&v, end);
	awsc_rtrim_ws(v, &end);
	idx = awsc_span_add(r, (size_t)(v - text), (size_t)(end - v));
	if (idx < 0)
		return NULL;
	snprintf(buf, (size_t)size, "%.*s=\x01%ld\n", (int)(sep - line), line,
		 idx);
	return buf;
}

/* The span a "\x01N" or "\x02N" placeholder names, or NULL. */
static const struct awsc_span *awsc_span_get(const struct awsc_ini *r,
					     const char *s, char mark)
{
	char *endp;
	unsigned long i;

	if (!s || s[0] != mark || !isdigit((unsigned char)s[1]))
		return NULL;
	i = strtoul(s + 1, &endp, 10);
	return *endp || i >= r->nspans ? NULL : &r->spans[i];
}

/* Whether a section (its text) is the profile wanted: [NAME] in the
 * credentials file; [profile NAME] (or [default]) in the config file. */
static bool awsc_section_is(const char *s, size_t n, const char *want,
			    bool config)
{
	const char *end = s + n;
	size_t wl = strlen(want);

	awsc_skip_ws(&s, end);
	awsc_rtrim_ws(s, &end);
	n = (size_t)(end - s);
	if (!config || (n == 7 && !memcmp(s, "default", 7)))
		return n == wl && !memcmp(s, want, wl);
	if (n < 8 || memcmp(s, "profile", 7) || (s[7] != ' ' && s[7] != '\t'))
		return false;
	s += 8;
	awsc_skip_ws(&s, end);
	return (size_t)(end - s) == wl && !memcmp(s, want, wl);
}

/* Where a key's value goes; NULL when it is not one we read. */
static char **awsc_profile_field(struct awsc_profile *p, const char *key,
				 bool *secret)
{
	static const char *const unsupported[] = {
		"source_profile", "credential_source", "credential_process",
		"sso_start_url", "sso_session", "sso_account_id",
	};

	*secret = true;
	if (!strcasecmp(key, "aws_access_key_id"))
		return &p->key_id;
	if (!strcasecmp(key, "aws_secret_access_key"))
		return &p->secret;
	if (!strcasecmp(key, "aws_session_token") ||
	    !strcasecmp(key, "aws_security_token"))
		return &p->token;
	*secret = false;
	if (!strcasecmp(key, "role_arn"))
		return &p->role_arn;
	if (!strcasecmp(key, "web_identity_token_file"))
		return &p->web_token_file;
	if (!strcasecmp(key, "role_session_name"))
		return &p->session_name;
	if (!strcasecmp(key, "region"))
		return &p->region;
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(*unsupported); i++)
		if (!strcasecmp(key, unsupported[i]) && !p->unsupported)
			p->unsupported = unsupported[i];
	return NULL;
}

static int awsc_ini_on(void *ud, const char *section, const char *key,
		       const char *value)
{
	struct awsc_ini *r = ud;
	const struct awsc_span *sec = awsc_span_get(r, section, '\x02');
	const struct awsc_span *val = awsc_span_get(r, value, '\x01');
	const char *text = r->text->data;
	char **field;
	bool secret;

	if (!sec || !awsc_section_is(text + sec->off, sec->len, r->want,
				     r->config))
		return 1;
	r->prof->found = true;
	/* no placeholder: a continuation line, which nothing we read has */
	field = val ? awsc_profile_field(r->prof, key, &secret) : NULL;
	if (!field)
		return 1;
	if (secret)
		secmem_free_str(*field);
	else
		free(*field);
	*field = secret ? secmem_dup(text + val->off, val->len) :
		strndup(text + val->off, val->len);
	if (!*field)
		r->nomem = true;
	return 1;
}

/* The profile named want in the INI text into p. A syntax error is
 * reported with its line. */
static int awsc_ini_parse(const struct secbuf *text, const char *path,
			  const char *want, bool config,
			  struct awsc_profile *p, struct err *e)
{
	struct awsc_ini r = {
		.text = text, .want = want, .config = config, .prof = p,
	};
	int rc;

	if (!text->data)
		return 0;
	rc = ini_parse_stream(awsc_ini_read, &r, awsc_ini_on, &r);
	free(r.spans);
	if (r.nomem || rc == -2)
		return err_oom(e);
	if (rc > 0)
		return err_set(e, ERR_ACCESS, "%s:%d: not INI syntax", path, rc);
	return rc < 0 ? err_set(e, ERR_ACCESS, "%s: cannot parse", path) : 0;
}

/* One of the two shared files, and what it says of the profile. */
struct awsc_file {
	char *path;
	bool exists;
	mode_t mode;
	struct awsc_profile prof;
};

static void awsc_file_free(struct awsc_file *f)
{
	free(f->path);
	awsc_profile_free(&f->prof);
}

static int awsc_file_profile(const char *env, const char *rel, bool config,
			     const char *profile, struct awsc_file *f,
			     struct err *e)
{
	struct secbuf text = SECBUF_INIT;
	struct stat st;
	int rc;

	memset(f, 0, sizeof(*f));
	f->path = awsc_home_path(env, rel);
	if (!f->path)
		return 0;	/* no home: no file */
	rc = kit_file_read(f->path, KIT_FILE_OPTIONAL, AWSC_FILE_MAX, &text,
			   &st, e);
	if (rc > 0) {
		f->mode = st.st_mode & 07777;
		f->exists = true;
		rc = awsc_ini_parse(&text, f->path, profile, config, &f->prof,
				    e);
	}
	secbuf_free(&text);
	return rc < 0 ? -1 : 0;
}

char *awsc_profile_region(const char *profile)
{
	struct awsc_file f;
	struct err e;
	char *region = NULL;

	if (awsc_file_profile("AWS_CONFIG_FILE", ".aws/config", true, profile,
			      &f, &e) == 0 && f.prof.region &&
	    f.prof.region[0]) {
		region = f.prof.region;
		f.prof.region = NULL;
	}
	awsc_file_free(&f);
	return region;
}

/* The profile's keys from one file: 1 found, 0 none there, -1 error. */
static int awsc_file_creds(const struct awsc_file *f, const char *profile,
			   struct aws_creds *out, struct err *e)
{
	const struct awsc_profile *p = &f->prof;
	char what[160];

	if (!p->key_id && !p->secret)
		return 0;
	snprintf(what, sizeof(what), "profile %s in %s", profile, f->path);
	if (!p->key_id || !p->secret)
		return err_set(e, ERR_ACCESS,
			       "%s: has %s but not %s", what,
			       p->key_id ? "aws_access_key_id" : "aws_secret_access_key",
			       p->key_id ? "aws_secret_access_key" : "aws_access_key_id");
	if (f->mode & 077)
		return err_set(e, ERR_ACCESS,
			       "%s: holds a credential but is readable by group or others (mode %04o); chmod 600 it",
			       f->path, (unsigned)f->mode);
	if (awsc_creds_set(out, p->key_id, strlen(p->key_id), p->secret,
			   strlen(p->secret), p->token,
			   p->token ? strlen(p->token) : 0, what, e) < 0)
		return -1;
	out->src = AWS_SRC_FILES;
	snprintf(out->source, sizeof(out->source), "%s", what);
	return 1;
}

/* ---- environment ---- */

/* 1 used, 0 not set, -1 half set. */
static int awsc_from_env(struct aws_creds *out, struct err *e)
{
	const char *id = kit_env("AWS_ACCESS_KEY_ID");
	const char *sk = kit_env("AWS_SECRET_ACCESS_KEY");
	const char *tok = kit_env("AWS_SESSION_TOKEN");

	if (!tok)
		tok = kit_env("AWS_SECURITY_TOKEN");
	if (!id && !sk)
		return 0;
	if (!id || !sk)
		return err_set(e, ERR_ACCESS,
			       "%s is set but %s is not: set both or neither",
			       id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
			       id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
	if (awsc_creds_set(out, id, strlen(id), sk, strlen(sk), tok,
			   tok ? strlen(tok) : 0, "environment", e) < 0)
		return -1;
	out->src = AWS_SRC_ENV;
	snprintf(out->source, sizeof(out->source),
		 "the environment (AWS_ACCESS_KEY_ID)");
	return 1;
}

/* ---- JSON credentials (ECS, IMDS) ---- */

/* {AccessKeyId, SecretAccessKey, Token, Expiration[, Code]}. */
static int awsc_json_creds(const struct http_response *rs, const char *what,
			   struct aws_creds *out, struct err *e)
{
	json_t *root = http_json_parse(rs);
	json_t *id = json_object_get(root, "AccessKeyId");
	json_t *sk = json_object_get(root, "SecretAccessKey");
	json_t *tok = json_object_get(root, "Token");
	const char *exp = json_string_value(json_object_get(root, "Expiration"));
	const char *code = json_string_value(json_object_get(root, "Code"));
	long long t = exp ? clock_rfc3339_parse(exp) : 0;
	int rc = -1;

	if (!json_is_object(root)) {
		err_set(e, ERR_PROVIDER, "%s: the answer is not JSON", what);
		goto out;
	}
	if (code && strcmp(code, "Success")) {
		err_set(e, ERR_ACCESS, "%s: Code is %.40s, not Success", what,
			kit_has_ctl(code, strlen(code)) ? "?" : code);
		goto out;
	}
	if (!json_is_string(id) || !json_is_string(sk) ||
	    (tok && !json_is_string(tok)) || t < 0) {
		err_set(e, ERR_PROVIDER,
			"%s: no AccessKeyId, SecretAccessKey, Token and Expiration in the answer",
			what);
		goto out;
	}
	if (awsc_creds_set(out, json_string_value(id), json_string_length(id),
			   json_string_value(sk), json_string_length(sk),
			   json_string_value(tok), json_string_length(tok),
			   what, e) < 0)
		goto out;
	out->expire = (time_t)t;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* ---- STS AssumeRoleWithWebIdentity ---- */

/* The text of the first <tag>...</tag> inside [doc, doc + len), entities
 * decoded, into out: 1 found, 0 not, -1 out of memory. */
static int awsc_xml_get(const char *doc, size_t len, const char *tag,
			struct secbuf *out)
{
	static const struct {
		const char *ent;
		char ch;
	} ents[] = {
		{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
		{ "&quot;", '"' }, { "&apos;", '\'' },
	};
	char open[64], close[64];
	const char *s, *end;

	secbuf_clear(out);
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	s = memmem(doc, len, open, strlen(open));
	if (!s)
		return 0;
	s += strlen(open);
	end = memmem(s, len - (size_t)(s - doc), close, strlen(close));
	if (!end)
		return 0;
	while (s < end) {
		size_t i, n = 1;
		char ch = *s;

		for (i = 0; *s == '&' && i < sizeof(ents) / sizeof(*ents); i++) {
			size_t el = strlen(ents[i].ent);

			if ((size_t)(end - s) >= el && !memcmp(s, ents[i].ent, el)) {
				ch = ents[i].ch;
				n = el;
				break;
			}
		}
		if (secbuf_putc(out, ch) < 0)
			return -1;
		s += n;
	}
	return 1;
}

/* An AssumeRoleWithWebIdentity answer into out. */
static int awsc_sts_parse(const struct http_response *rs, const char *what,
			  struct aws_creds *out, struct err *e)
{
	const char *doc = rs->body.data ? rs->body.data : "";
	size_t len = rs->body.len;
	struct secbuf id = SECBUF_INIT, sk = SECBUF_INIT, tok = SECBUF_INIT;
	struct secbuf exp = SECBUF_INIT, code = SECBUF_INIT;
	const char *cr;
	long long t;
	int rc = -1;

	if (rs->status != 200) {
		if (awsc_xml_get(doc, len, "Code", &code) > 0 &&
		    code.len < 64 && !kit_has_ctl(code.data, code.len))
			err_set(e, rs->status >= 500 ? ERR_PROVIDER : ERR_ACCESS,
				"%s: STS refused: %s (HTTP %ld)", what, code.data,
				rs->status);
		else
			http_status_err(e, rs->status, what);
		goto out;
	}
	cr = memmem(doc, len, "<Credentials>", 13);
	if (!cr || awsc_xml_get(cr, len - (size_t)(cr - doc), "AccessKeyId", &id) <= 0 ||
	    awsc_xml_get(cr, len - (size_t)(cr - doc), "SecretAccessKey", &sk) <= 0 ||
	    awsc_xml_get(cr, len - (size_t)(cr - doc), "SessionToken", &tok) <= 0 ||
	    awsc_xml_get(cr, len - (size_t)(cr - doc), "Expiration", &exp) <= 0) {
		err_set(e, ERR_PROVIDER, "%s: no Credentials in the STS answer",
			what);
		goto out;
	}
	t = clock_rfc3339_parse(exp.data);
	if (t < 0) {
		err_set(e, ERR_PROVIDER, "%s: bad Expiration in the STS answer",
			what);
		goto out;
	}
	if (awsc_creds_set(out, id.data, id.len, sk.data, sk.len, tok.data,
			   tok.len, what, e) < 0)
		goto out;
	out->expire = (time_t)t;
	rc = 0;
out:
	secbuf_free(&id);
	secbuf_free(&sk);
	secbuf_free(&tok);
	secbuf_free(&exp);
	secbuf_free(&code);
	return rc;
}

static char *awsc_sts_url(const char *region)
{
	const char *s = awsc_endpoint_env("AWS_ENDPOINT_URL_STS");

	if (s)
		return awsc_url_base(s);
	if (region)
		return awsc_regional_url("sts", region);
	return strdup("https://sts.amazonaws.com");
}

static int awsc_web_identity(struct aws_chain *c, const char *token_file,
			     const char *role_arn, const char *session,
			     int64_t deadline, struct aws_creds *out,
			     struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf tok = SECBUF_INIT, body = SECBUF_INIT;
	struct http_request rq = {
		.method = "POST",
		.content_type = "application/x-www-form-urlencoded",
		.body_secret = true,
		.deadline_ms = deadline,
	};
	char *base = awsc_sts_url(c->region), *url = NULL;
	char what[160], name[64];
	int rc = -1;

	snprintf(what, sizeof(what), "web identity (role %.120s)", role_arn);
	if (!session) {
		snprintf(name, sizeof(name), "secretfs-%lld",
			 (long long)time(NULL));
		session = name;
	}
	if (!base || asprintf(&url, "%s/", base) < 0) {
		url = NULL;
		err_oom(e);
		goto out;
	}
	if (awsc_token_file(token_file, what, &tok, e) < 0)
		goto out;
	if (kit_form_add(&body, "Action", "AssumeRoleWithWebIdentity", 25) < 0 ||
	    kit_form_add(&body, "Version", AWSC_STS_VERSION,
			  strlen(AWSC_STS_VERSION)) < 0 ||
	    kit_form_add(&body, "RoleArn", role_arn, strlen(role_arn)) < 0 ||
	    kit_form_add(&body, "RoleSessionName", session, strlen(session)) < 0 ||
	    kit_form_add(&body, "WebIdentityToken", tok.data, tok.len) < 0) {
		err_oom(e);
		goto out;
	}
	rq.url = url;
	rq.body = body.data;
	rq.body_len = body.len;
	if (http_request(c->http, &rq, &rs, e) < 0) {
		err_prefix(e, "%s: ", what);
		goto out;
	}
	rc = awsc_sts_parse(&rs, what, out, e);
	if (rc == 0) {
		out->src = AWS_SRC_WEB_IDENTITY;
		snprintf(out->source, sizeof(out->source), "%s", what);
	}
out:
	http_response_free(&rs);
	secbuf_free(&tok);
	secbuf_free(&body);
	free(base);
	free(url);
	return rc;
}

/* ---- ECS container credentials ---- */

/* FULL_URI: https anywhere; plain http only to a loopback address or the
 * ECS/EKS agents, as botocore allows. */
static bool awsc_ecs_full_ok(const char *url)
{
	static const char *const hosts[] = {
		"localhost", "169.254.170.2", "169.254.170.23",
		"[fd00:ec2::23]", "fd00:ec2::23", "[::1]", "::1",
	};
	char *scheme = NULL, *host = NULL;
	CURLU *u = curl_url();
	bool ok = false;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		bool http = !strcasecmp(scheme, "http");

		ok = !strcasecmp(scheme, "https") ||
		     (http && !strncmp(host, "127.", 4));
		for (size_t i = 0; !ok && http && i < sizeof(hosts) / sizeof(*hosts); i++)
			ok = !strcasecmp(host, hosts[i]);
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/* The container endpoint: 1 with *url set, 0 when not configured. */
static int awsc_ecs_url(char **url, struct err *e)
{
	const char *rel = kit_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = kit_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *base = kit_env("SECRETFS_ECS_ENDPOINT");
	char *b;

	*url = NULL;
	if (rel) {
		if (rel[0] != '/' || kit_has_ctl(rel, strlen(rel)))
			return err_set(e, ERR_ACCESS,
				       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path starting with /");
		b = awsc_url_base(base ? base : AWSC_ECS_BASE);
		if (!b || asprintf(url, "%s%s", b, rel) < 0) {
			*url = NULL;
			free(b);
			return err_oom(e);
		}
		free(b);
		return 1;
	}
	if (!full)
		return 0;
	if (kit_has_ctl(full, strlen(full)) || !awsc_ecs_full_ok(full))
		return err_set(e, ERR_ACCESS,
			       "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback address, 169.254.170.2, 169.254.170.23 or fd00:ec2::23");
	*url = strdup(full);
	return *url ? 1 : err_oom(e);
}

/* The Authorization header of the container endpoint, if any. */
static int awsc_ecs_auth(struct http_headers *h, struct err *e)
{
	const char *file = kit_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *tok = kit_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	struct secbuf b = SECBUF_INIT;
	int rc = 0;

	if (file) {
		if (awsc_token_file(file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
				    &b, e) < 0)
			return -1;
		tok = b.data;
	}
	if (tok && kit_has_ctl(tok, strlen(tok)))
		rc = err_set(e, ERR_ACCESS,
			     "AWS_CONTAINER_AUTHORIZATION_TOKEN holds control characters");
	else if (tok && http_headers_add(h, "Authorization", tok, true) < 0)
		rc = err_oom(e);
	secbuf_free(&b);
	return rc;
}

static int awsc_ecs(struct aws_chain *c, const char *url, int64_t deadline,
		    struct aws_creds *out, struct err *e)
{
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct http_request rq = {
		.method = "GET", .url = url, .headers = &h,
		.deadline_ms = deadline,
	};
	const char *what = "ECS container credentials";
	char brief[256];
	int rc = -1;

	http_url_brief(url, brief, sizeof(brief));
	if (awsc_ecs_auth(&h, e) < 0 || http_request(c->http, &rq, &rs, e) < 0) {
		err_prefix(e, "%s: ", what);
		goto out;
	}
	if (rs.status != 200) {
		err_set(e, rs.status >= 500 ? ERR_PROVIDER : ERR_ACCESS,
			"%s: %s answered HTTP %ld (%s)", what, brief, rs.status,
			http_status_text(rs.status));
		goto out;
	}
	rc = awsc_json_creds(&rs, what, out, e);
	if (rc == 0) {
		out->src = AWS_SRC_ECS;
		snprintf(out->source, sizeof(out->source), "%s (%.120s)", what,
			 brief);
	}
out:
	http_headers_free(&h);
	http_response_free(&rs);
	return rc;
}

/* ---- EC2 instance metadata (IMDSv2) ---- */

static char *awsc_imds_base(void)
{
	const char *s = kit_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	const char *mode = kit_env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");

	if (s)
		return awsc_url_base(s);
	return strdup(mode && !strcasecmp(mode, "IPv6") ? AWSC_IMDS_BASE6 :
		      AWSC_IMDS_BASE);
}

/* One metadata request, at most a second long. */
static int awsc_imds_call(struct aws_chain *c, const char *method,
			  const char *base, const char *path,
			  const char *token, int64_t deadline,
			  struct http_response *rs, struct err *e)
{
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_request rq = { .method = method, .headers = &h };
	int64_t limit = clock_now_ms() + AWSC_IMDS_TIMEOUT_MS;
	char *url = NULL;
	int rc = -1;

	rq.deadline_ms = deadline && deadline < limit ? deadline : limit;
	if (asprintf(&url, "%s%s", base, path) < 0) {
		url = NULL;
		err_oom(e);
		goto out;
	}
	rq.url = url;
	if ((!token && !strcmp(method, "PUT") &&
	     http_headers_add(&h, "X-aws-ec2-metadata-token-ttl-seconds",
			      AWSC_IMDS_TTL_S, false) < 0) ||
	    (token && http_headers_add(&h, "X-aws-ec2-metadata-token", token,
				       true) < 0)) {
		err_oom(e);
		goto out;
	}
	rc = http_request(c->http, &rq, rs, e);
out:
	http_headers_free(&h);
	free(url);
	return rc;
}

/* The session token (wiped memory); NULL with 0 when the service does not
 * do IMDSv2 (403, 404, 405: go on without, as botocore does). */
static int awsc_imds_token(struct aws_chain *c, const char *base,
			   int64_t deadline, char **token, struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	int rc = -1;

	*token = NULL;
	if (awsc_imds_call(c, "PUT", base, "/latest/api/token", NULL,
			   deadline, &rs, e) < 0)
		goto out;
	if (rs.status == 403 || rs.status == 404 || rs.status == 405) {
		log_debug("aws %s: instance metadata has no IMDSv2 token (HTTP %ld); going on without",
			  c->name, rs.status);
		rc = 0;
		goto out;
	}
	if (rs.status != 200) {
		http_status_err(e, rs.status, "token");
		goto out;
	}
	secbuf_trim(&rs.body);
	if (rs.body.len == 0 || kit_has_ctl(rs.body.data, rs.body.len)) {
		err_set(e, ERR_PROVIDER, "token: not a token");
		goto out;
	}
	*token = secmem_dup(rs.body.data, rs.body.len);
	rc = *token ? 0 : err_oom(e);
out:
	http_response_free(&rs);
	return rc;
}

/* The first role name of a security-credentials/ listing, malloc'd. */
static char *awsc_imds_role(const struct http_response *rs)
{
	const char *s = rs->body.data ? rs->body.data : "";
	size_t len = strcspn(s, "\r\n");

	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len == 0 || len > 128 || memchr(s, '/', len) ||
	    len != strnlen(s, len) || kit_has_ctl(s, len))
		return NULL;
	return strndup(s, len);
}

static int awsc_imds(struct aws_chain *c, int64_t deadline,
		     struct aws_creds *out, struct err *e)
{
	static const char creds_path[] = "/latest/meta-data/iam/security-credentials/";
	struct http_response rs = HTTP_RESPONSE_INIT;
	char *base = awsc_imds_base(), *token = NULL, *role = NULL;
	char *esc = NULL, *path = NULL, brief[256], what[200];
	int rc = -1;

	if (!base)
		return err_oom(e);
	http_url_brief(base, brief, sizeof(brief));
	snprintf(what, sizeof(what), "EC2 instance metadata (%.150s)", brief);
	if (awsc_imds_token(c, base, deadline, &token, e) < 0 ||
	    awsc_imds_call(c, "GET", base, creds_path, token, deadline, &rs,
			   e) < 0)
		goto fail;
	if (rs.status == 404) {
		err_set(e, ERR_ACCESS, "no IAM role is attached to the instance");
		goto fail;
	}
	if (rs.status != 200) {
		http_status_err(e, rs.status, "role");
		goto fail;
	}
	role = awsc_imds_role(&rs);
	esc = role ? curl_easy_escape(NULL, role, 0) : NULL;
	if (!role || !esc || asprintf(&path, "%s%s", creds_path, esc) < 0) {
		path = NULL;
		err_set(e, role ? ERR_NOMEM : ERR_PROVIDER,
			role ? "out of memory" : "no role name in the answer");
		goto fail;
	}
	if (awsc_imds_call(c, "GET", base, path, token, deadline, &rs, e) < 0)
		goto fail;
	if (rs.status != 200) {
		http_status_err(e, rs.status, "credentials");
		goto fail;
	}
	if (awsc_json_creds(&rs, "credentials", out, e) < 0)
		goto fail;
	out->src = AWS_SRC_IMDS;
	snprintf(out->source, sizeof(out->source),
		 "EC2 instance metadata (role %.100s)", role);
	rc = 0;
	goto out;
fail:
	err_prefix(e, "%s: ", what);
out:
	http_response_free(&rs);
	secmem_free_str(token);
	curl_free(esc);
	free(role);
	free(path);
	free(base);
	return rc;
}

/* ---- the chain ---- */

/* Shared files, then container, then instance metadata. */
static int awsc_later_sources(struct aws_chain *c, const char *profile,
			      bool explicit, struct awsc_file *cf,
			      struct awsc_file *cfg, int64_t deadline,
			      struct aws_creds *out, struct err *e)
{
	const char *unsupported = cf->prof.unsupported ? cf->prof.unsupported :
		cfg->prof.unsupported;
	char *url = NULL;
	int rc;

	rc = awsc_file_creds(cf, profile, out, e);
	if (rc == 0)
		rc = awsc_file_creds(cfg, profile, out, e);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (unsupported)
		return err_set(e, ERR_ACCESS,
			       "profile %s uses %s, which secretfs does not support (use keys, web identity, a container or instance role)",
			       profile, unsupported);
	if (explicit && !cf->prof.found && !cfg->prof.found)
		return err_set(e, ERR_ACCESS,
			       "profile %s is in neither %s nor %s", profile,
			       cf->path ? cf->path : "~/.aws/credentials",
			       cfg->path ? cfg->path : "~/.aws/config");
	rc = awsc_ecs_url(&url, e);
	if (rc > 0) {
		rc = awsc_ecs(c, url, deadline, out, e);
		free(url);
		return rc;
	}
	if (rc < 0)
		return -1;
	if (awsc_env_true("AWS_EC2_METADATA_DISABLED"))
		return err_set(e, ERR_ACCESS,
			       "none in the environment, no web identity, no keys for profile %s, no container credentials, and instance metadata is disabled (AWS_EC2_METADATA_DISABLED)",
			       profile);
	if (awsc_imds(c, deadline, out, e) < 0)
		return err_prefix(e,
				  "none in the environment, web identity, profile %s or a container; ",
				  profile);
	return 0;
}

/* Walk the chain into out. */
static int awsc_resolve(struct aws_chain *c, int64_t deadline,
			struct aws_creds *out, struct err *e)
{
	const char *profile = awsc_profile_name(c->profile);
	bool explicit = c->profile || kit_env("AWS_PROFILE") ||
		kit_env("AWS_DEFAULT_PROFILE");
	const char *tf = kit_env("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *role = kit_env("AWS_ROLE_ARN");
	const char *session = kit_env("AWS_ROLE_SESSION_NAME");
	struct awsc_file cf, cfg;
	int rc;

	if (!c->profile) {
		rc = awsc_from_env(out, e);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
	}
	memset(&cfg, 0, sizeof(cfg));
	rc = awsc_file_profile("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials",
			       false, profile, &cf, e);
	if (rc == 0)
		rc = awsc_file_profile("AWS_CONFIG_FILE", ".aws/config", true,
				       profile, &cfg, e);
	if (rc < 0)
		goto out;
	if (!tf)
		tf = cfg.prof.web_token_file;
	if (!role)
		role = cfg.prof.role_arn;
	if (!session)
		session = cfg.prof.session_name;
	if (tf && role)
		rc = awsc_web_identity(c, tf, role, session, deadline, out, e);
	else
		rc = awsc_later_sources(c, profile, explicit, &cf, &cfg,
					deadline, out, e);
out:
	awsc_file_free(&cf);
	awsc_file_free(&cfg);
	return rc;
}

/* New credentials in place (lock held). */
static void awsc_install(struct aws_chain *c, struct aws_creds *fresh,
			 time_t now)
{
	bool changed = !c->cur.key_id || c->cur.src != fresh->src ||
		strcmp(c->cur.source, fresh->source);

	awsc_creds_free(&c->cur);
	c->cur = *fresh;
	memset(fresh, 0, sizeof(*fresh));
	c->gen++;
	c->got_ms = clock_now_ms();
	c->backoff_ms = 0;
	c->retry_ms = 0;
	if (c->cur.expire)
		c->refresh_at = awsc_refresh_at(now, c->cur.expire);
	else
		c->refresh_at = c->cur.src == AWS_SRC_ENV ? 0 :
			now + AWS_FILE_REREAD_S;
	if (changed)
		log_info("aws %s: credentials from %s%s", c->name, c->cur.source,
			 c->cur.expire ? " (temporary)" : "");
	else
		log_debug("aws %s: credentials refreshed from %s", c->name,
			  c->cur.source);
}

/* Resolve anew (lock held). A failure while the current credentials are
 * still good keeps them. */
static int awsc_update(struct aws_chain *c, int64_t deadline, time_t now,
		       struct err *e)
{
	struct aws_creds fresh = { 0 };
	bool usable = c->cur.key_id &&
		(!c->cur.expire || now < c->cur.expire - AWSC_EXPIRY_SLACK_S);
	int64_t mono = clock_now_ms();

	if (mono < c->retry_ms) {
		if (usable)
			return 0;
		*e = c->last_err;
		return err_prefix(e, "(next attempt in %" PRId64 " s) ",
				  (c->retry_ms - mono + 999) / 1000);
	}
	if (awsc_resolve(c, deadline, &fresh, e) == 0) {
		awsc_install(c, &fresh, now);
		return 0;
	}
	awsc_creds_free(&fresh);
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : AWSC_BACKOFF_MIN_MS;
	if (c->backoff_ms > AWSC_BACKOFF_MAX_MS)
		c->backoff_ms = AWSC_BACKOFF_MAX_MS;
	c->retry_ms = clock_now_ms() + c->backoff_ms;
	c->last_err = *e;
	if (usable) {
		log_warn("aws %s: refreshing credentials failed: %s; using the current ones until they expire",
			 c->name, e->msg);
		err_clear(e);
		return 0;
	}
	log_warn("aws %s: %s", c->name, e->msg);
	awsc_creds_free(&c->cur);
	c->gen++;
	return -1;
}

int awsc_chain_get(struct aws_chain *c, int64_t deadline,
		  struct aws_creds *out, uint64_t *gen, struct err *e)
{
	time_t now = time(NULL);
	int rc = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&c->lock);
	if (!c->cur.key_id || (c->refresh_at && now >= c->refresh_at))
		rc = awsc_update(c, deadline, now, e);
	if (rc == 0)
		rc = awsc_creds_copy(out, &c->cur, e);
	*gen = c->gen;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

bool awsc_chain_reject(struct aws_chain *c, uint64_t gen)
{
	bool retry = false;

	pthread_mutex_lock(&c->lock);
	if (gen != c->gen) {
		retry = true;	/* another thread already has new ones */
	} else if (c->cur.key_id && c->cur.src != AWS_SRC_ENV &&
		   clock_now_ms() - c->got_ms >= AWSC_REJECT_AGE_MS) {
		log_debug("aws %s: AWS refused the credentials from %s; looking them up again",
			  c->name, c->cur.source);
		awsc_creds_free(&c->cur);
		c->gen++;
		c->retry_ms = 0;
		retry = true;
	}
	pthread_mutex_unlock(&c->lock);
	return retry;
}

int awsc_chain_new(const struct aws_chain_conf *conf, struct aws_chain **out,
		  struct err *e)
{
	struct aws_chain *c = calloc(1, sizeof(*c));

	if (!c)
		return err_oom(e);
	pthread_mutex_init(&c->lock, NULL);
	c->http = conf->http;
	c->name = strdup(conf->name ? conf->name : "aws");
	c->profile = conf->profile ? strdup(conf->profile) : NULL;
	c->region = conf->region ? strdup(conf->region) : NULL;
	if (!c->name || (conf->profile && !c->profile) ||
	    (conf->region && !c->region)) {
		awsc_chain_free(c);
		return err_oom(e);
	}
	*out = c;
	return 0;
}

void awsc_chain_free(struct aws_chain *c)
{
	if (!c)
		return;
	awsc_creds_free(&c->cur);
	pthread_mutex_destroy(&c->lock);
	free(c->name);
	free(c->profile);
	free(c->region);
	free(c);
}
