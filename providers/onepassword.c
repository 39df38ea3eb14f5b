/* onepassword.c - 1Password Connect, with 1Password's own op:// references.
 *
 *   [provider op]                ; name it op: references read as op read's
 *   type = 1password-connect
 *   host = https://connect.example.com:8080   ; else OP_CONNECT_HOST
 *   token_file = /etc/secretfs/op-token       ; else OP_CONNECT_TOKEN (chmod 600)
 *   category = SECURE_NOTE       ; of the items secretfs creates
 *   ca_file, ca_path, client_cert, client_key, tls_skip_verify
 *
 *   store = op://Team/billing                 ; an item: its fields are keys
 *   env.DB = op://Shared/postgres/password    ; one field
 *   env.HOST = op://Shared/postgres/prod/host ; a field in a section
 *   env.TLS = op://Shared/tls/cert.pem        ; an attachment's bytes
 *   env.ID = op://Shared/postgres/password?attribute=id
 *
 * References (docs/1password.md): op://VAULT/ITEM[/[SECTION/]FIELD], each
 * segment a name (matched without regard to ASCII case) or a 26-character
 * ID, percent-decoded by fs/ref.c first, so a space is %20. Two segments
 * are the item as an entry of keys: each field whose label is an
 * environment name ([A-Za-z_][A-Za-z0-9_]*) is a key, in a section or not;
 * each attachment whose name is a file name is a key holding its bytes.
 * Labels that are not names, and labels two fields (or attachments) share,
 * give no key and are logged (once per item version), never guessed.
 * Three or four segments are one value (the key ""): a field matched by ID
 * or label (in that section, when one is named), else an attachment by ID
 * or name; ?attribute= picks value (the default), id, label, type or
 * purpose of a field, content (the default), id, name or size of a file.
 *
 * The wire: GET /v1/vaults?filter=title eq "NAME" and GET
 * /v1/vaults/V/items?filter=title eq "NAME" resolve names (when the filter
 * finds none, the unfiltered list is searched without regard to case);
 * the ids are cached, and a cached id that 404s, or an item whose title no
 * longer matches, is resolved again. A title two items share is an error
 * naming both IDs. GET /v1/vaults/V/items/I is the item, GET
 * .../files/F/content an attachment's bytes.
 *
 * Writes (store = an item): a PATCH (JSON Patch, RFC 6902) that replaces
 * the values of changed fields, removes the fields of removed keys and
 * adds CONCEALED fields for new keys, addressing fields by ID; nothing
 * else is sent, so every other field, section, attachment and the
 * metadata stay as the server has them, even when another client changed
 * them since our read (a PUT of the whole item as read would undo that).
 * An item that does not exist is created (POST, category as configured).
 * Connect has no compare-and-set: kit_store_nocas reads before and after;
 * a patch refused (400) because the item moved on since the read (a field
 * it names was removed) is ERR_CONFLICT, redone on top. Attachments cannot
 * be written through Connect: changing or removing one is ERR_READONLY.
 *
 * Errors: {"status","message"}; 401/403 are ERR_ACCESS, logged once a
 * minute naming where the token came from (never the token) and the item.
 *
 * Try it: tests/emulators/opconnect.py.
 */
#include "provider.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../base/clock.h"
#include "../base/dotenv.h"
#include "../base/log.h"
#include "../base/secmem.h"
#include "http.h"
#include "kit.h"

#define OP_ID_LEN 26
#define OP_SEG_MAX 255
#define OP_TOKEN_MAX 16384
#define OP_AUTH_LOG_MS 60000
#define OP_LIST_MAX 20000
#define OP_CATEGORY_DEFAULT "SECURE_NOTE"
#define OP_NEW_FIELD_TYPE "CONCEALED"
#define OP_PREFIX "/v1/vaults"

struct onepassword {
	char *name;
	char *host;		/* base URL, no trailing '/' */
	char *token_file;	/* NULL: the token is env_token */
	struct secbuf env_token;	/* OP_CONNECT_TOKEN at create() */
	char token_src[300];	/* where the token comes from, for messages */
	char *category;
	long timeout_ms;
	struct http_client *http;
	pthread_mutex_t lock;	/* guards ids and reported */
	/* "v/TITLE" -> vault id, "i/VAULTID/TITLE" -> item id (lowercase) */
	struct kvmap ids;
	struct kvmap reported;	/* item id -> version whose labels were logged */
	int64_t auth_logged_ms;	/* kit_once_per */
};

/* One provider operation: its requests share one deadline. */
struct op_call {
	struct onepassword *op;
	int64_t deadline;
	const char *what;	/* the locator, for messages */
};

/* ---- references (pure) ---- */

enum op_attr {
	OP_ATTR_DEFAULT,	/* a field's value, a file's content */
	OP_ATTR_VALUE,
	OP_ATTR_ID,
	OP_ATTR_LABEL,
	OP_ATTR_TYPE,
	OP_ATTR_PURPOSE,
	OP_ATTR_CONTENT,
	OP_ATTR_NAME,
	OP_ATTR_SIZE,
};

static const char *const op_attr_names[] = {
	[OP_ATTR_VALUE] = "value", [OP_ATTR_ID] = "id",
	[OP_ATTR_LABEL] = "label", [OP_ATTR_TYPE] = "type",
	[OP_ATTR_PURPOSE] = "purpose", [OP_ATTR_CONTENT] = "content",
	[OP_ATTR_NAME] = "name", [OP_ATTR_SIZE] = "size",
};
#define OP_NATTRS (sizeof(op_attr_names) / sizeof(op_attr_names[0]))

struct op_ref {
	char *vault;
	char *item;
	char *section;	/* NULL: any */
	char *field;	/* NULL: the whole item */
	enum op_attr attr;
};

static void op_ref_free(struct op_ref *r)
{
	free(r->vault);
	free(r->item);
	free(r->section);
	free(r->field);
	memset(r, 0, sizeof(*r));
}

/* A 1Password ID: 26 of [a-z0-9]. */
static bool op_id_valid(const char *s)
{
	size_t n = strlen(s);

	return n == OP_ID_LEN && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789") == n;
}

/* One segment of a locator: not empty, no control characters; a vault or
 * item name (title) goes into a filter in double quotes, so it holds no
 * '"' or '\' (use the ID). */
static int op_seg_check(const char *s, size_t len, const char *what,
			bool title, struct err *e)
{
	if (len == 0)
		return err_set(e, ERR_INVALID,
			       "op://VAULT/ITEM[/[SECTION/]FIELD]: the %s is empty",
			       what);
	if (len > OP_SEG_MAX || kit_has_ctl(s, len))
		return err_set(e, ERR_INVALID,
			       "the %s is longer than %d bytes or holds control characters",
			       what, OP_SEG_MAX);
	if (title && (memchr(s, '"', len) || memchr(s, '\\', len)))
		return err_set(e, ERR_INVALID,
			       "the %s name holds '\"' or '\\': use its ID instead",
			       what);
	return 0;
}

static int op_attr_parse(const char *s, enum op_attr *out, struct err *e)
{
	*out = OP_ATTR_DEFAULT;
	if (!s)
		return 0;
	for (size_t i = 1; i < OP_NATTRS; i++) {
		if (!strcasecmp(s, op_attr_names[i])) {
			*out = (enum op_attr)i;
			return 0;
		}
	}
	if (!strcasecmp(s, "otp") || !strcasecmp(s, "totp"))
		return err_set(e, ERR_INVALID,
			       "?attribute=otp: secretfs does not compute one-time passwords");
	return err_set(e, ERR_INVALID,
		       "?attribute= is one of value, id, label, type, purpose (fields) or content, id, name, size (files)");
}

/* The '/'-separated segments of locator into seg (malloc'd), at most 4. */
static int op_split(const char *locator, char *seg[4], size_t *n,
		    struct err *e)
{
	const char *s = locator, *slash;

	*n = 0;
	do {
		slash = strchr(s, '/');
		if (*n == 4)
			return err_set(e, ERR_INVALID,
				       "op://VAULT/ITEM[/[SECTION/]FIELD] has at most 4 segments (a name with '/' is written as its ID)");
		seg[*n] = strndup(s, slash ? (size_t)(slash - s) : strlen(s));
		if (!seg[*n])
			return err_oom(e);
		(*n)++;
		s = slash ? slash + 1 : s;
	} while (slash);
	if (*n < 2)
		return err_set(e, ERR_INVALID,
			       "expected op://VAULT/ITEM (the item's fields as keys) or op://VAULT/ITEM/[SECTION/]FIELD");
	return 0;
}

/* locator (percent-decoded) and params into r. */
static int op_ref_parse(const char *locator, const char *params,
			struct op_ref *r, struct err *e)
{
	static const char *const what[] = { "vault", "item", "section", "field" };
	struct kit_param p[] = { { "attribute", NULL }, { "attr", NULL } };
	char *seg[4] = { NULL };
	size_t n = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	if (kit_params_parse(params, p, 2, "attribute=NAME", e) < 0)
		return -1;
	rc = op_split(locator, seg, &n, e);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = op_seg_check(seg[i], strlen(seg[i]),
				  n == 3 && i == 2 ? "field" : what[i], i < 2, e);
	if (rc == 0 && p[0].value && p[1].value)
		rc = err_set(e, ERR_INVALID, "?attribute= and ?attr= are one parameter: give one");
	if (rc == 0)
		rc = op_attr_parse(p[0].value ? p[0].value : p[1].value, &r->attr, e);
	if (rc == 0 && n == 2 && r->attr != OP_ATTR_DEFAULT)
		rc = err_set(e, ERR_INVALID,
			     "?attribute= names a part of one field or file: op://VAULT/ITEM/FIELD?attribute=...");
	kit_params_free(p, 2);
	if (rc < 0) {
		for (size_t i = 0; i < 4; i++)
			free(seg[i]);
		return -1;
	}
	r->vault = seg[0];
	r->item = seg[1];
	r->section = n == 4 ? seg[2] : NULL;
	r->field = n == 4 ? seg[3] : n == 3 ? seg[2] : NULL;
	return 0;
}

/* provider_ops.check: references are checked when the config loads. */
static int op_check(const char *locator, const char *params, struct err *e)
{
	struct op_ref r;

	if (op_ref_parse(locator, params, &r, e) < 0)
		return -1;
	op_ref_free(&r);
	return 0;
}

/* ---- errors (pure) ---- */

static int op_garbage(struct err *e, const char *what, const char *why)
{
	return err_set(e, ERR_PROVIDER, "%s: garbage from 1Password Connect: %s",
		       what, why);
}

/* The error of an answer other than 200/201: Connect's
 * {"status":N,"message":"..."}, or whatever a proxy sent. Connect's
 * messages name tokens' problems and ids, never values: they are shown,
 * cleaned. token_src says where the token came from (401/403). */
static int op_error_map(const struct http_response *rs, const char *what,
			const char *token_src, struct err *e)
{
	json_t *root = http_json_parse(rs);
	const char *m = json_string_value(json_object_get(root, "message"));
	long st = rs->status;
	char msg[KIT_TEXT_MAX + 8];
	enum err_code code;

	kit_text_clean(m, msg, sizeof(msg));
	json_decref(root);
	switch (st) {
	case 401:
		return err_set(e, ERR_ACCESS,
			       "%s: 1Password Connect refused the token (HTTP 401%s%s); token from %s",
			       what, msg[0] ? ": " : "", msg, token_src);
	case 403:
		return err_set(e, ERR_ACCESS,
			       "%s: access denied by 1Password Connect (HTTP 403%s%s): the token (from %s) lacks access to this vault or operation",
			       what, msg[0] ? ": " : "", msg, token_src);
	case 404:
		return err_set(e, ERR_NOTFOUND, "%s: not found in 1Password%s%s",
			       what, msg[0] ? ": " : "", msg);
	case 400:
		return err_set(e, ERR_INVALID,
			       "%s: 1Password Connect refused the request%s%s", what,
			       msg[0] ? ": " : "", msg);
	case 409:
		return err_set(e, ERR_CONFLICT,
			       "%s: the item changed meanwhile (HTTP 409%s%s)", what,
			       msg[0] ? ": " : "", msg);
	default:
		break;
	}
	code = http_answer_code(st, st == 413 ? ERR_TOOBIG : ERR_PROVIDER);
	return err_set(e, code, "%s: HTTP %ld (%s) from 1Password Connect%s%s",
		       what, st, http_status_text(st), msg[0] ? ": " : "", msg);
}

/* ---- items (pure) ---- */

/* A string member of obj, or NULL. */
static const char *op_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* The section id of a field or file, or NULL. */
static const char *op_section_of(const json_t *x)
{
	return op_str(json_object_get(x, "section"), "id");
}

/* An attachment's name as a key: a file name (no '/', not . or ..). */
static bool op_file_key_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n > 0 && n <= OP_SEG_MAX && !kit_has_ctl(s, n) && !strchr(s, '/') &&
	       strcmp(s, ".") && strcmp(s, "..");
}

/* One key of an item: a field or an attachment. */
struct op_key {
	const char *key;	/* points into the item */
	json_t *field;		/* borrowed */
	json_t *file;		/* borrowed */
};

/* What an item gives as keys, and what it cannot. */
struct op_layout {
	struct op_key *v;
	size_t n;
	struct strv unnamed;	/* labels that are not key names */
	struct strv twice;	/* labels more than one field or file has */
};

static void op_layout_free(struct op_layout *l)
{
	free(l->v);
	strv_free(&l->unnamed);
	strv_free(&l->twice);
	memset(l, 0, sizeof(*l));
}

static int op_key_cmp(const void *a, const void *b)
{
	return strcmp(((const struct op_key *)a)->key,
		      ((const struct op_key *)b)->key);
}

static int op_layout_add(struct op_layout *l, const char *key, json_t *field,
			 json_t *file)
{
	struct op_key *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return -1;
	l->v = v;
	v[l->n++] = (struct op_key){ key, field, file };
	return 0;
}

/* A label that gives no key, for the log line: cleaned, or the field's
 * ID when it has no label. */
static int op_unnamed_add(struct op_layout *l, const char *label,
			  const json_t *x)
{
	char text[KIT_TEXT_MAX + 8];
	const char *id = op_str(x, "id");

	if (label && label[0]) {
		kit_text_clean(label, text, sizeof(text));
	} else {
		snprintf(text, sizeof(text), "(no label, id %.40s)", id ? id : "?");
	}
	return strv_push(&l->unnamed, text);
}

/* Drop every key more than one field or file gives, noting it. */
static int op_layout_dedupe(struct op_layout *l)
{
	size_t o = 0;

	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), op_key_cmp);
	for (size_t i = 0; i < l->n;) {
		size_t j = i + 1;

		while (j < l->n && !strcmp(l->v[j].key, l->v[i].key))
			j++;
		if (j - i > 1) {
			if (strv_push(&l->twice, l->v[i].key) < 0)
				return -1;
		} else {
			l->v[o++] = l->v[i];
		}
		i = j;
	}
	l->n = o;
	return 0;
}

/* The keys of an item (a parsed FullItem): sorted, unique. */
static int op_layout_build(json_t *item, struct op_layout *l, const char *what,
			   struct err *e)
{
	json_t *fields = json_object_get(item, "fields");
	json_t *files = json_object_get(item, "files");
	json_t *x;
	size_t i;
	int rc = 0;

	memset(l, 0, sizeof(*l));
	if ((fields && !json_is_array(fields)) || (files && !json_is_array(files)))
		return op_garbage(e, what, "fields or files is not a list");
	json_array_foreach(fields, i, x) {
		const char *label = op_str(x, "label");

		if (!json_is_object(x)) {
			rc = op_garbage(e, what, "a field is not an object");
			break;
		}
		if (label && dotenv_key_valid(label))
			rc = op_layout_add(l, label, x, NULL);
		else
			rc = op_unnamed_add(l, label, x);
		if (rc < 0) {
			err_oom(e);
			break;
		}
	}
	json_array_foreach(files, i, x) {
		const char *name = op_str(x, "name");

		if (rc < 0)
			break;
		if (!json_is_object(x) || !op_str(x, "id")) {
			rc = op_garbage(e, what, "a file has no id");
			break;
		}
		if (op_file_key_valid(name))
			rc = op_layout_add(l, name, NULL, x);
		else
			rc = op_unnamed_add(l, name, x);
		if (rc < 0)
			err_oom(e);
	}
	if (rc == 0 && op_layout_dedupe(l) < 0)
		rc = err_oom(e);
	if (rc < 0)
		op_layout_free(l);
	return rc;
}

static const struct op_key *op_layout_get(const struct op_layout *l,
					  const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].key, key))
			return &l->v[i];
	return NULL;
}

static bool op_strv_has(const struct strv *s, const char *str)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], str))
			return true;
	return false;
}

/* "a, b, c" of s into out. */
static void op_strv_join(const struct strv *s, char *out, size_t size)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < s->n && o + 1 < size; i++)
		o += (size_t)snprintf(out + o, size - o, "%s'%s'", i ? ", " : "",
				      s->v[i]);
}

/* The item's "ID:VERSION": the entry version. */
static int op_item_version(const json_t *item, const char *what,
			   char out[PROVIDER_VERSION_MAX], struct err *e)
{
	const char *id = op_str(item, "id");
	json_t *v = json_object_get(item, "version");

	if (!id || !op_id_valid(id))
		return op_garbage(e, what, "the item has no ID");
	if (json_is_integer(v))
		snprintf(out, PROVIDER_VERSION_MAX, "%s:%lld", id,
			 (long long)json_integer_value(v));
	else
		snprintf(out, PROVIDER_VERSION_MAX, "%s:", id);
	return 0;
}

/* A field's value as text ("" when it has none). */
static int op_field_value(const json_t *field, const char *what,
			  const char **val, size_t *len, struct err *e)
{
	json_t *v = json_object_get(field, "value");

	*val = "";
	*len = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return op_garbage(e, what, "a field's value is not text");
	*val = json_string_value(v);
	*len = json_string_length(v);
	return 0;
}

/* The fields (not files) of the layout into m. */
static int op_layout_fields(const struct op_layout *l, const char *what,
			    struct kvmap *m, struct err *e)
{
	for (size_t i = 0; i < l->n; i++) {
		const char *val;
		size_t len;

		if (!l->v[i].field)
			continue;
		if (op_field_value(l->v[i].field, what, &val, &len, e) < 0)
			return -1;
		if (kvmap_set(m, l->v[i].key, val, len) < 0)
			return err_oom(e);
	}
	return 0;
}

/* ---- one field of an item (pure) ---- */

/* Whether x (a field, file or section) is named s: its ID, or its label
 * (name for files) without regard to ASCII case. */
static bool op_named(const json_t *x, const char *label_key, const char *s)
{
	const char *id = op_str(x, "id"), *label = op_str(x, label_key);

	return (id && !strcmp(id, s)) || (label && !strcasecmp(label, s));
}

/* The id of the section named s, or NULL with e. */
static const char *op_section_find(json_t *item, const char *s,
				   const char *what, struct err *e)
{
	json_t *secs = json_object_get(item, "sections"), *x;
	const char *found = NULL, *id;
	size_t i;

	json_array_foreach(secs, i, x) {
		id = op_str(x, "id");
		if (!id || !op_named(x, "label", s))
			continue;
		if (found && strcmp(found, id)) {
			err_set(e, ERR_PROVIDER,
				"%s: sections %s and %s are both named '%s': use the section's ID",
				what, found, id, s);
			return NULL;
		}
		found = id;
	}
	if (!found)
		err_set(e, ERR_NOTFOUND, "%s: the item has no section '%s'", what, s);
	return found;
}

/* Among the fields (label_key "label") or files ("name") of arr, the one
 * named s (in section sid unless NULL): an ID match wins; two label
 * matches are an error naming both IDs. */
static int op_pick(json_t *arr, const char *label_key, const char *s,
		   const char *sid, const char *what, json_t **out,
		   struct err *e)
{
	json_t *x;
	size_t i;

	*out = NULL;
	json_array_foreach(arr, i, x) {
		const char *id = op_str(x, "id"), *xs = op_section_of(x);

		if (sid && (!xs || strcmp(xs, sid)))
			continue;
		if (id && !strcmp(id, s)) {
			*out = x;
			return 0;
		}
	}
	json_array_foreach(arr, i, x) {
		const char *xs = op_section_of(x);

		if ((sid && (!xs || strcmp(xs, sid))) || !op_named(x, label_key, s))
			continue;
		if (*out)
			return err_set(e, ERR_PROVIDER,
				       "%s: '%s' names two %s, %s and %s: add the section or use the ID",
				       what, s, label_key[0] == 'l' ? "fields" : "files",
				       op_str(*out, "id") ? op_str(*out, "id") : "?",
				       op_str(x, "id") ? op_str(x, "id") : "?");
		*out = x;
	}
	return 0;
}

/* The field (or else the file) r names in item. */
static int op_field_find(json_t *item, const struct op_ref *r,
			 const char *what, json_t **field, json_t **file,
			 struct err *e)
{
	const char *sid = NULL;

	*field = *file = NULL;
	if (r->section) {
		sid = op_section_find(item, r->section, what, e);
		if (!sid)
			return -1;
	}
	if (op_pick(json_object_get(item, "fields"), "label", r->field, sid,
		    what, field, e) < 0)
		return -1;
	if (*field)
		return 0;
	if (op_pick(json_object_get(item, "files"), "name", r->field, sid, what,
		    file, e) < 0)
		return -1;
	if (!*file)
		return err_set(e, ERR_NOTFOUND, "%s: the item has no field or file '%s'",
			       what, r->field);
	return 0;
}

/* The attribute a of a field as text into out. */
static int op_field_attr(const json_t *field, enum op_attr a, const char *what,
			 struct secbuf *out, struct err *e)
{
	const char *val = NULL, *key = NULL;
	size_t len = 0;

	switch (a) {
	case OP_ATTR_DEFAULT:
	case OP_ATTR_VALUE:
		if (op_field_value(field, what, &val, &len, e) < 0)
			return -1;
		break;
	case OP_ATTR_ID: key = "id"; break;
	case OP_ATTR_LABEL: key = "label"; break;
	case OP_ATTR_TYPE: key = "type"; break;
	case OP_ATTR_PURPOSE: key = "purpose"; break;
	default:
		return err_set(e, ERR_INVALID,
			       "%s: ?attribute=%s is one of a file's; a field has value, id, label, type, purpose",
			       what, op_attr_names[a]);
	}
	if (key) {
		val = op_str(field, key);
		val = val ? val : "";
		len = strlen(val);
	}
	return secbuf_set(out, val, len) < 0 ? err_oom(e) : 0;
}

/* The attribute a of a file other than its content as text into out. */
static int op_file_attr(const json_t *file, enum op_attr a, const char *what,
			struct secbuf *out, struct err *e)
{
	char num[32];
	const char *val = "";

	switch (a) {
	case OP_ATTR_ID: val = op_str(file, "id"); break;
	case OP_ATTR_NAME: val = op_str(file, "name"); break;
	case OP_ATTR_SIZE:
		snprintf(num, sizeof(num), "%lld",
			 (long long)json_integer_value(json_object_get(file, "size")));
		val = num;
		break;
	default:
		return err_set(e, ERR_INVALID,
			       "%s: ?attribute=%s is one of a field's; a file has content, id, name, size",
			       what, op_attr_names[a]);
	}
	val = val ? val : "";
	return secbuf_set(out, val, strlen(val)) < 0 ? err_oom(e) : 0;
}

/* ---- building writes (pure) ---- */

/* A new field for key (CONCEALED, outside any section) as an object. */
static json_t *op_field_new(const char *key, const struct kv *kv,
			    const char *what, struct err *e)
{
	json_t *f = json_object(), *v = json_stringn(kv->val, kv->len);

	if (!v) {
		json_decref(f);
		err_set(e, ERR_INVALID,
			"%s: key %s: a 1Password field holds UTF-8 text only",
			what, key);
		return NULL;
	}
	if (!f || json_object_set_new(f, "type", json_string(OP_NEW_FIELD_TYPE)) < 0 ||
	    json_object_set_new(f, "purpose", json_string("")) < 0 ||
	    json_object_set_new(f, "label", json_string(key)) < 0 ||
	    json_object_set_new(f, "value", v) < 0) {
		json_decref(f);
		err_oom(e);
		return NULL;
	}
	return f;
}

/* Append {"op","path"[,"value"]} to ops; value (may be NULL) is taken. */
static int op_patch_op(json_t *ops, const char *op, const char *path,
		       json_t *value, struct err *e)
{
	json_t *o = json_object();
	int rc = 0;

	if (!o || json_object_set_new(o, "op", json_string(op)) < 0 ||
	    json_object_set_new(o, "path", json_string(path)) < 0 ||
	    (value && json_object_set(o, "value", value) < 0) ||
	    json_array_append(ops, o) < 0)
		rc = err_oom(e);
	json_decref(o);
	json_decref(value);
	return rc;
}

/* "/fields/ID" + tail, the ID escaped as a JSON Pointer segment (RFC 6901:
 * '~' is "~0", '/' is "~1"). */
static void op_field_path(const char *id, const char *tail, char *out,
			  size_t size)
{
	size_t o = (size_t)snprintf(out, size, "/fields/");

	for (; *id && o + 3 < size; id++) {
		if (*id == '~' || *id == '/') {
			out[o++] = '~';
			out[o++] = *id == '~' ? '0' : '1';
		} else {
			out[o++] = *id;
		}
	}
	out[o] = '\0';
	snprintf(out + o, size - o, "%s", tail);
}

/* A new key no field has yet may become one when reading it back gives
 * the same key: an environment name no other field or file shares. */
static int op_key_addable(const struct op_layout *l, const char *key,
			  const char *what, struct err *e)
{
	if (op_strv_has(&l->twice, key))
		return err_set(e, ERR_INVALID,
			       "%s: key %s: two fields or files of the item are labeled %s; set it in 1Password",
			       what, key, key);
	if (!dotenv_key_valid(key))
		return err_set(e, ERR_INVALID,
			       "%s: key %s: new fields get keys that are environment names ([A-Za-z_][A-Za-z0-9_]*)",
			       what, key);
	return 0;
}

/* The operations m asks of the layout's key k: a changed field's value is
 * replaced, a removed key's field removed; an attachment must stay as it
 * was in prev (Connect cannot upload files). */
static int op_key_ops(const struct op_key *k, const struct kvmap *prev,
		      const struct kvmap *m, const char *what, json_t *ops,
		      struct err *e)
{
	const struct kv *now = kvmap_get(m, k->key), *was = kvmap_get(prev, k->key);
	const char *val, *id = op_str(k->field, "id");
	char path[OP_SEG_MAX * 2 + 32];
	size_t len;
	json_t *v;

	if (k->file) {
		if (now && was && now->len == was->len &&
		    !memcmp(now->val, was->val, now->len))
			return 0;
		return err_set(e, ERR_READONLY,
			       "%s: %s is a file attached to the item; 1Password Connect cannot %s attachments",
			       what, k->key, now ? "change" : "remove");
	}
	if (op_field_value(k->field, what, &val, &len, e) < 0)
		return -1;
	if (now && len == now->len && !memcmp(val, now->val, len))
		return 0;
	if (!id || strlen(id) > OP_SEG_MAX)
		return op_garbage(e, what, "a field has no ID");
	if (!now) {
		op_field_path(id, "", path, sizeof(path));
		return op_patch_op(ops, "remove", path, NULL, e);
	}
	v = json_stringn(now->val, now->len);
	if (!v)
		return err_set(e, ERR_INVALID,
			       "%s: key %s: a 1Password field holds UTF-8 text only",
			       what, k->key);
	op_field_path(id, "/value", path, sizeof(path));
	/* a field without a value has no member to replace */
	return op_patch_op(ops, json_object_get(k->field, "value") ? "replace" : "add",
			   path, v, e);
}

/* The JSON Patch (RFC 6902, as Connect takes it) that makes item, as read,
 * hold m: only the fields of changed, removed and new keys are touched, so
 * every other field, the sections, files and metadata stay as the server
 * has them, even when someone else changed them since the read. prev: the
 * entry as read, for attachments. *out is [] when nothing changes. */
static int op_item_patch(json_t *item, const struct kvmap *prev,
			 const struct kvmap *m, const char *what, json_t **out,
			 struct err *e)
{
	json_t *ops = json_array();
	struct op_layout l;
	int rc;

	*out = NULL;
	if (!ops)
		return err_oom(e);
	rc = op_layout_build(item, &l, what, e);
	for (size_t i = 0; rc == 0 && i < l.n; i++)
		rc = op_key_ops(&l.v[i], prev, m, what, ops, e);
	for (size_t i = 0; rc == 0 && i < m->n; i++) {
		json_t *f;

		if (op_layout_get(&l, m->items[i].key))
			continue;
		rc = op_key_addable(&l, m->items[i].key, what, e);
		f = rc == 0 ? op_field_new(m->items[i].key, &m->items[i], what, e) : NULL;
		if (rc == 0 && !f)
			rc = -1;
		if (rc == 0)
			rc = op_patch_op(ops, "add", "/fields", f, e);
	}
	op_layout_free(&l);
	if (rc < 0) {
		json_decref(ops);
		return -1;
	}
	*out = ops;
	return 0;
}

/* A new item titled title in vault vid holding m as fields. */
static int op_item_new(const char *vid, const char *title, const char *category,
		       const struct kvmap *m, const char *what, json_t **out,
		       struct err *e)
{
	json_t *item = json_object(), *vault = json_object(), *fields = json_array();
	int rc = 0;

	*out = NULL;
	if (!item || !vault || !fields ||
	    json_object_set_new(vault, "id", json_string(vid)) < 0 ||
	    json_object_set(item, "vault", vault) < 0 ||
	    json_object_set_new(item, "title", json_string(title)) < 0 ||
	    json_object_set_new(item, "category", json_string(category)) < 0 ||
	    json_object_set(item, "fields", fields) < 0)
		rc = err_oom(e);
	for (size_t i = 0; rc == 0 && i < m->n; i++) {
		json_t *f;

		if (!dotenv_key_valid(m->items[i].key)) {
			rc = err_set(e, ERR_INVALID,
				     "%s: key %s: new fields get keys that are environment names ([A-Za-z_][A-Za-z0-9_]*)",
				     what, m->items[i].key);
			break;
		}
		f = op_field_new(m->items[i].key, &m->items[i], what, e);
		if (!f || json_array_append_new(fields, f) < 0)
			rc = f ? err_oom(e) : -1;
	}
	json_decref(vault);
	json_decref(fields);
	if (rc < 0) {
		json_decref(item);
		return -1;
	}
	*out = item;
	return 0;
}

/* ---- requests ---- */

static void op_call_start(struct op_call *c, struct onepassword *op,
			  const char *what)
{
	c->op = op;
	c->what = what;
	c->deadline = clock_now_ms() + op->timeout_ms;
}

/* The auth hook: the token, read afresh from token_file (so a rotated
 * file is used at once), as a bearer header. */
static int op_auth(void *ctx, struct http_auth *a, struct err *e)
{
	struct onepassword *op = ctx;
	struct secbuf tok = SECBUF_INIT, line = SECBUF_INIT;
	int rc = 0;

	if (op->token_file)
		rc = kit_file_read(op->token_file, KIT_FILE_PRIVATE | KIT_FILE_TRIM,
				   OP_TOKEN_MAX, &tok, NULL, e) < 0 ? -1 : 0;
	else if (secbuf_set(&tok, op->env_token.data, op->env_token.len) < 0)
		rc = err_oom(e);
	if (rc == 0 && (secbuf_puts(&line, "Bearer ") < 0 ||
			secbuf_append(&line, tok.data, tok.len) < 0 ||
			http_auth_header(a, "Authorization", line.data) < 0))
		rc = err_oom(e);
	secbuf_free(&tok);
	secbuf_free(&line);
	return rc;
}

/* One request to host + path; rs gets the answer, whatever its status. */
static int op_request(struct op_call *c, const char *method, const char *path,
		      const struct secbuf *body, struct http_response *rs,
		      struct err *e)
{
	struct http_request rq = {
		.method = method, .body_secret = true,
		.deadline_ms = c->deadline, .auth = op_auth, .ctx = c->op,
	};
	char *url = NULL;
	int rc;

	if (asprintf(&url, "%s%s", c->op->host, path) < 0)
		return err_oom(e);
	rq.url = url;
	if (body) {
		rq.body = body->data ? body->data : "";
		rq.body_len = body->len;
	}
	rc = http_request(c->op->http, &rq, rs, e);
	if (rc < 0)
		err_prefix(e, "%s: ", c->what);
	free(url);
	return rc;
}

/* op_request, then the error of any answer but 200/201; a refusal is
 * logged too (once a minute), since a stale value would hide it. */
static int op_call_ok(struct op_call *c, const char *method, const char *path,
		      const struct secbuf *body, struct http_response *rs,
		      struct err *e)
{
	if (op_request(c, method, path, body, rs, e) < 0)
		return -1;
	if (rs->status == 200 || rs->status == 201)
		return 0;
	op_error_map(rs, c->what, c->op->token_src, e);
	if (e->code == ERR_ACCESS && kit_once_per(&c->op->auth_logged_ms,
						  OP_AUTH_LOG_MS))
		log_warn("1password %s: %s", c->op->name, e->msg);
	return -1;
}

/* GET path as JSON into *out. */
static int op_get_json(struct op_call *c, const char *path, json_t **out,
		       struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	int rc = op_call_ok(c, "GET", path, NULL, &rs, e);

	*out = NULL;
	if (rc == 0) {
		*out = http_json_parse(&rs);
		if (!*out)
			rc = op_garbage(e, c->what, "the answer is not JSON");
	}
	http_response_free(&rs);
	return rc;
}

/* ---- names to IDs ---- */

static void op_cache_key(char *out, size_t size, const char *vid,
			 const char *title)
{
	size_t o = (size_t)snprintf(out, size, vid ? "i/%s/" : "v/",
				    vid ? vid : "");

	for (; *title && o + 1 < size; title++)
		out[o++] = (char)((*title >= 'A' && *title <= 'Z') ?
				  *title + 32 : *title);
	out[o < size ? o : size - 1] = '\0';
}

static bool op_cache_get(struct onepassword *op, const char *key,
			 char id[OP_ID_LEN + 1])
{
	const struct kv *kv;
	bool hit;

	pthread_mutex_lock(&op->lock);
	kv = kvmap_get(&op->ids, key);
	hit = kv && kv->len == OP_ID_LEN;
	if (hit)
		memcpy(id, kv->val, OP_ID_LEN + 1);
	pthread_mutex_unlock(&op->lock);
	return hit;
}

static void op_cache_put(struct onepassword *op, const char *key,
			 const char *id)
{
	pthread_mutex_lock(&op->lock);
	/* out of memory: the name is looked up again next time */
	(void)kvmap_set(&op->ids, key, id, strlen(id));
	pthread_mutex_unlock(&op->lock);
}

static void op_cache_drop(struct onepassword *op, const char *key)
{
	pthread_mutex_lock(&op->lock);
	kvmap_del(&op->ids, key);
	pthread_mutex_unlock(&op->lock);
}

/* Among the objects of a list answer, the IDs of those whose title_key
 * equals title without regard to ASCII case (trashed items left out):
 * the first into id, *n the count, the second into other. */
static int op_match(json_t *list, const char *title_key, const char *title,
		    const char *what, char id[OP_ID_LEN + 1],
		    char other[OP_ID_LEN + 1], size_t *n, struct err *e)
{
	json_t *x;
	size_t i;

	*n = 0;
	if (!json_is_array(list) || json_array_size(list) > OP_LIST_MAX)
		return op_garbage(e, what, "not a list");
	json_array_foreach(list, i, x) {
		const char *t = op_str(x, title_key), *xid = op_str(x, "id");

		if (!t || strcasecmp(t, title) || json_is_true(json_object_get(x, "trashed")))
			continue;
		if (!xid || !op_id_valid(xid))
			return op_garbage(e, what, "a listed object has no ID");
		memcpy(*n == 0 ? id : other, xid, OP_ID_LEN + 1);
		if (++*n == 2)
			break;
	}
	return 0;
}

/* GET base?filter=title eq "TITLE" (and, when that finds nothing, base
 * unfiltered, since names match without regard to case) into the one ID
 * whose title_key is title. */
static int op_find(struct op_call *c, const char *base, const char *kind,
		   const char *title_key, const char *title,
		   char id[OP_ID_LEN + 1], struct err *e)
{
	char other[OP_ID_LEN + 1], *filter = NULL, *esc = NULL, *path = NULL;
	json_t *list = NULL;
	size_t n = 0;
	int rc = asprintf(&filter, "title eq \"%s\"", title) < 0 ? err_oom(e) : 0;

	if (rc == 0 && !(esc = curl_easy_escape(NULL, filter, 0)))
		rc = err_oom(e);
	if (rc == 0 && asprintf(&path, "%s?filter=%s", base, esc) < 0)
		rc = err_oom(e);
	if (rc == 0)
		rc = op_get_json(c, path, &list, e);
	if (rc == 0)
		rc = op_match(list, title_key, title, c->what, id, other, &n, e);
	json_decref(list);
	list = NULL;
	if (rc == 0 && n == 0) {
		rc = op_get_json(c, base, &list, e);
		if (rc == 0)
			rc = op_match(list, title_key, title, c->what, id, other,
				      &n, e);
	}
	if (rc == 0 && n == 0)
		rc = err_set(e, ERR_NOTFOUND, "%s: no %s named '%s' that the token can see",
			     c->what, kind, title);
	if (rc == 0 && n > 1)
		rc = err_set(e, ERR_PROVIDER,
			     "%s: two %ss are named '%s': %s and %s; rename one or use its ID",
			     c->what, kind, title, id, other);
	json_decref(list);
	curl_free(esc);
	free(filter);
	free(path);
	return rc;
}

/* The vault's ID: name itself when it is one, else cached or looked up.
 * *cached: it came from the cache. */
static int op_vault_id(struct op_call *c, const char *name,
		       char id[OP_ID_LEN + 1], bool *cached, struct err *e)
{
	char key[OP_SEG_MAX + 8];

	*cached = false;
	if (op_id_valid(name)) {
		memcpy(id, name, OP_ID_LEN + 1);
		return 0;
	}
	op_cache_key(key, sizeof(key), NULL, name);
	if (op_cache_get(c->op, key, id)) {
		*cached = true;
		return 0;
	}
	/* a vault's title is its "name" */
	if (op_find(c, OP_PREFIX, "vault", "name", name, id, e) < 0)
		return -1;
	op_cache_put(c->op, key, id);
	return 0;
}

/* The item's ID in vault vid, likewise. */
static int op_item_id(struct op_call *c, const char *vid, const char *name,
		      char id[OP_ID_LEN + 1], bool *cached, struct err *e)
{
	char key[OP_SEG_MAX + OP_ID_LEN + 8], base[64];

	*cached = false;
	if (op_id_valid(name)) {
		memcpy(id, name, OP_ID_LEN + 1);
		return 0;
	}
	op_cache_key(key, sizeof(key), vid, name);
	if (op_cache_get(c->op, key, id)) {
		*cached = true;
		return 0;
	}
	snprintf(base, sizeof(base), OP_PREFIX "/%s/items", vid);
	if (op_find(c, base, "item", "title", name, id, e) < 0)
		return -1;
	op_cache_put(c->op, key, id);
	return 0;
}

/* Forget the cached IDs of r's names. */
static void op_forget(struct onepassword *op, const struct op_ref *r,
		      const char *vid)
{
	char key[OP_SEG_MAX + OP_ID_LEN + 8];

	op_cache_key(key, sizeof(key), NULL, r->vault);
	op_cache_drop(op, key);
	op_cache_key(key, sizeof(key), vid, r->item);
	op_cache_drop(op, key);
}

/* Whether item is the one r->item names: its ID, or its title. */
static bool op_item_is(const json_t *item, const char *name)
{
	return op_named(item, "title", name);
}

/* A FullItem's shape: an object with an ID and a title, and lists where
 * lists belong. Garbage is ERR_PROVIDER, not a missing item. */
static int op_item_check(const json_t *item, const char *what, struct err *e)
{
	static const char *const lists[] = { "fields", "sections", "files" };
	const char *id = op_str(item, "id");

	if (!json_is_object(item) || !id || !op_id_valid(id) ||
	    !json_is_string(json_object_get(item, "title")))
		return op_garbage(e, what, "not an item with an ID and a title");
	for (size_t i = 0; i < 3; i++) {
		json_t *l = json_object_get(item, lists[i]);

		if (l && !json_is_array(l) && !json_is_null(l))
			return op_garbage(e, what, "an item's fields, sections or files are not a list");
	}
	return 0;
}

/* The item r names (a FullItem) into *item, and its vault's ID into vid.
 * A cached ID that 404s, or an item renamed since, is looked up again. */
static int op_item_get(struct op_call *c, const struct op_ref *r,
		       json_t **item, char vid[OP_ID_LEN + 1], struct err *e)
{
	char iid[OP_ID_LEN + 1], path[128];
	bool vcached, icached;

	*item = NULL;
	for (int pass = 0; pass < 2; pass++) {
		int rc = op_vault_id(c, r->vault, vid, &vcached, e);

		if (rc == 0)
			rc = op_item_id(c, vid, r->item, iid, &icached, e);
		else
			icached = false;
		if (rc == 0) {
			snprintf(path, sizeof(path), OP_PREFIX "/%s/items/%s", vid, iid);
			rc = op_get_json(c, path, item, e);
		}
		if (rc == 0 && op_item_check(*item, c->what, e) < 0) {
			json_decref(*item);
			*item = NULL;
			return -1;
		}
		if (rc == 0 && op_item_is(*item, r->item))
			return 0;
		if (rc == 0) {
			/* renamed since its ID was cached */
			json_decref(*item);
			*item = NULL;
			rc = err_set(e, ERR_NOTFOUND, "%s: no item named '%s'",
				     c->what, r->item);
		}
		if (pass || e->code != ERR_NOTFOUND || !(vcached || icached))
			return -1;
		log_debug("1password %s: %s: a cached ID is stale; looking the names up again",
			  c->op->name, c->what);
		op_forget(c->op, r, vid);
		err_clear(e);
	}
	return -1;
}

/* GET an attachment's bytes into out (key "" when key is NULL). */
static int op_file_get(struct op_call *c, const char *vid, const json_t *item,
		       const json_t *file, struct secbuf *out, struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	const char *iid = op_str(item, "id"), *fid = op_str(file, "id");
	char path[256];
	int rc;

	if (!fid || strlen(fid) > 64 || strspn(fid, "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(fid))
		return op_garbage(e, c->what, "a file's ID is not an ID");
	snprintf(path, sizeof(path), OP_PREFIX "/%s/items/%s/files/%s/content",
		 vid, iid, fid);
	rc = op_call_ok(c, "GET", path, NULL, &rs, e);
	if (rc == 0 && secbuf_set(out, rs.body.data ? rs.body.data : "",
				  rs.body.len) < 0)
		rc = err_oom(e);
	http_response_free(&rs);
	return rc;
}

/* Log what an item's keys leave out, once per item version. */
static void op_layout_report(struct onepassword *op, const char *what,
			     const char *version, const struct op_layout *l)
{
	char unnamed[512], twice[512];
	const char *colon = strchr(version, ':');
	char id[OP_ID_LEN + 1];
	const struct kv *kv;
	bool seen;

	if (!l->unnamed.n && !l->twice.n)
		return;
	snprintf(id, sizeof(id), "%.*s", colon ? (int)(colon - version) : 0,
		 version);
	pthread_mutex_lock(&op->lock);
	kv = kvmap_get(&op->reported, id);
	seen = kv && !strcmp(kv->val, version);
	if (!seen)
		(void)kvmap_set(&op->reported, id, version, strlen(version));
	pthread_mutex_unlock(&op->lock);
	if (seen)
		return;
	op_strv_join(&l->unnamed, unnamed, sizeof(unnamed));
	op_strv_join(&l->twice, twice, sizeof(twice));
	log_warn("1password %s: %s (item %s): left out%s%s%s%s",
		 op->name, what, id,
		 l->unnamed.n ? ", labels that are not key names: " : "", unnamed,
		 l->twice.n ? ", labels more than one field or file has: " : "",
		 twice);
}

/* The whole item as an entry of keys (attachments fetched). */
static int op_item_entry(struct op_call *c, const char *vid, json_t *item,
			 struct entry *out, struct err *e)
{
	struct secbuf buf = SECBUF_INIT;
	struct op_layout l;
	int rc = op_item_version(item, c->what, out->version, e);

	if (rc < 0)
		return -1;
	if (op_layout_build(item, &l, c->what, e) < 0)
		return -1;
	rc = op_layout_fields(&l, c->what, &out->map, e);
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		if (!l.v[i].file)
			continue;
		rc = op_file_get(c, vid, item, l.v[i].file, &buf, e);
		if (rc == 0 && kvmap_set(&out->map, l.v[i].key,
					 buf.data ? buf.data : "", buf.len) < 0)
			rc = err_oom(e);
	}
	if (rc == 0)
		op_layout_report(c->op, c->what, out->version, &l);
	secbuf_free(&buf);
	op_layout_free(&l);
	return rc;
}

/* One field, file or attribute as a single value (the key ""). */
static int op_value_entry(struct op_call *c, const struct op_ref *r,
			  const char *vid, json_t *item, struct entry *out,
			  struct err *e)
{
	struct secbuf val = SECBUF_INIT;
	json_t *field, *file;
	int rc = op_item_version(item, c->what, out->version, e);

	if (rc == 0)
		rc = op_field_find(item, r, c->what, &field, &file, e);
	if (rc == 0 && field)
		rc = op_field_attr(field, r->attr, c->what, &val, e);
	else if (rc == 0 && (r->attr == OP_ATTR_DEFAULT || r->attr == OP_ATTR_CONTENT))
		rc = op_file_get(c, vid, item, file, &val, e);
	else if (rc == 0)
		rc = op_file_attr(file, r->attr, c->what, &val, e);
	if (rc == 0 && kvmap_set(&out->map, "", val.data ? val.data : "",
				 val.len) < 0)
		rc = err_oom(e);
	secbuf_free(&val);
	return rc;
}

static int op_read(struct op_call *c, const struct op_ref *r, struct entry *out,
		   json_t **keep, char vid[OP_ID_LEN + 1], struct err *e)
{
	json_t *item;
	int rc = op_item_get(c, r, &item, vid, e);

	if (rc == 0 && r->field)
		rc = op_value_entry(c, r, vid, item, out, e);
	else if (rc == 0)
		rc = op_item_entry(c, vid, item, out, e);
	if (rc == 0 && keep)
		*keep = json_incref(item);
	if (rc < 0)
		entry_free(out);
	json_decref(item);
	return rc;
}

static int op_fetch(void *state, const char *locator, const char *params,
		    struct entry *out, struct err *e)
{
	char vid[OP_ID_LEN + 1];
	struct op_call c;
	struct op_ref r;
	int rc;

	if (op_ref_parse(locator, params, &r, e) < 0)
		return err_prefix(e, "%s: ", locator);
	op_call_start(&c, state, locator);
	rc = op_read(&c, &r, out, NULL, vid, e);
	op_ref_free(&r);
	return rc;
}

/* ---- writes ---- */

/* What kit_store_nocas's callbacks share for one store(). */
struct op_store {
	struct op_call *c;
	const struct op_ref *r;
	bool have_first;
	json_t *item;		/* the first read's item */
	char vid[OP_ID_LEN + 1];
	struct kvmap prev;	/* the first read's keys */
};

static int op_store_read(void *ctx, struct entry *out, struct err *e)
{
	struct op_store *s = ctx;
	bool first = !s->have_first;
	char vid[OP_ID_LEN + 1];
	int rc;

	s->have_first = true;
	rc = op_read(s->c, s->r, out, first ? &s->item : NULL, vid, e);
	if (rc == 0 && first) {
		memcpy(s->vid, vid, sizeof(vid));
		if (kvmap_copy(&s->prev, &out->map) < 0)
			rc = err_oom(e);
	}
	return rc;
}

/* POST (create) or PATCH with body; the answer's version into version. */
static int op_send(struct op_call *c, const char *method, const char *path,
		   json_t *item, char version[PROVIDER_VERSION_MAX],
		   struct err *e)
{
	struct http_response rs = HTTP_RESPONSE_INIT;
	struct secbuf body = SECBUF_INIT;
	json_t *root = NULL;
	int rc = http_json_dump(item, &body) < 0 ? err_oom(e) : 0;

	if (rc == 0)
		rc = op_call_ok(c, method, path, &body, &rs, e);
	if (rc == 0 && !(root = http_json_parse(&rs)))
		rc = op_garbage(e, c->what, "the answer is not JSON");
	else if (rc == 0)
		rc = op_item_version(root, c->what, version, e);
	/* garbage after a 2xx: the write most likely landed */
	if (rc < 0 && rs.status / 100 == 2 && e->code == ERR_PROVIDER)
		e->code = ERR_UNSURE;
	json_decref(root);
	secbuf_free(&body);
	http_response_free(&rs);
	return rc;
}

/* Whether the item moved on since s->item was read: a refused patch
 * (400: a field it names is gone) is then a lost race, not bad input. */
static bool op_item_moved(struct op_store *s, const char *path)
{
	char was[PROVIDER_VERSION_MAX], now[PROVIDER_VERSION_MAX];
	json_t *item = NULL;
	struct err e2 = { 0 };
	bool moved;

	moved = op_item_version(s->item, s->c->what, was, &e2) == 0 &&
		op_get_json(s->c, path, &item, &e2) == 0 &&
		op_item_version(item, s->c->what, now, &e2) == 0 &&
		strcmp(was, now);
	json_decref(item);
	return moved;
}

/* PATCH the item read first with what m changes. */
static int op_store_update(struct op_store *s, const struct kvmap *m,
			   char version[PROVIDER_VERSION_MAX], struct err *e)
{
	struct op_call *c = s->c;
	json_t *ops = NULL;
	char path[128];
	int rc = op_item_patch(s->item, &s->prev, m, c->what, &ops, e);

	snprintf(path, sizeof(path), OP_PREFIX "/%s/items/%s", s->vid,
		 op_str(s->item, "id"));
	if (rc == 0 && json_array_size(ops) == 0)
		rc = op_item_version(s->item, c->what, version, e);
	else if (rc == 0)
		rc = op_send(c, "PATCH", path, ops, version, e);
	json_decref(ops);
	if (rc < 0 && e->code == ERR_INVALID && op_item_moved(s, path))
		return err_set(e, ERR_CONFLICT,
			       "%s: the item changed while it was written", c->what);
	return rc;
}

static int op_store_write(void *ctx, const struct kvmap *m, bool create,
			  char version[PROVIDER_VERSION_MAX], struct err *e)
{
	struct op_store *s = ctx;
	struct op_call *c = s->c;
	char path[128], key[OP_SEG_MAX + OP_ID_LEN + 8];
	json_t *item = NULL;
	bool cached;
	int rc;

	if (!create)
		return op_store_update(s, m, version, e);
	if (op_id_valid(s->r->item))
		return err_set(e, ERR_NOTFOUND,
			       "%s: no item with the ID %s to write to", c->what,
			       s->r->item);
	rc = op_vault_id(c, s->r->vault, s->vid, &cached, e);
	if (rc == 0)
		rc = op_item_new(s->vid, s->r->item, c->op->category, m, c->what,
				 &item, e);
	snprintf(path, sizeof(path), OP_PREFIX "/%s/items", s->vid);
	if (rc == 0)
		rc = op_send(c, "POST", path, item, version, e);
	json_decref(item);
	if (rc == 0) {
		char id[OP_ID_LEN + 1];

		snprintf(id, sizeof(id), "%.*s", OP_ID_LEN, version);
		op_cache_key(key, sizeof(key), s->vid, s->r->item);
		op_cache_put(c->op, key, id);
		log_info("1password %s: %s: created item %s (%s)", c->op->name,
			 c->what, id, c->op->category);
	}
	return rc;
}

/* Connect has no compare-and-set: kit_store_nocas reads before and after. */
static int op_store(void *state, const char *locator, const char *params,
		    const struct kvmap *m, const char *expect,
		    char new_version[PROVIDER_VERSION_MAX], struct err *e)
{
	struct op_call c;
	struct op_ref r;
	struct op_store s = { .c = &c, .r = &r };
	struct kit_nocas n = { .ctx = &s, .read = op_store_read,
			       .write = op_store_write, .what = locator };
	int rc;

	err_clear(e);
	if (op_ref_parse(locator, params, &r, e) < 0)
		return err_prefix(e, "%s: ", locator);
	if (r.field) {
		op_ref_free(&r);
		return err_set(e, ERR_READONLY,
			       "%s: names one field; a store is a whole item, op://VAULT/ITEM",
			       locator);
	}
	op_call_start(&c, state, locator);
	n.deadline_ms = c.deadline;
	rc = kit_store_nocas(&n, m, expect, new_version, e);
	json_decref(s.item);
	kvmap_free(&s.prev);
	op_ref_free(&r);
	return rc;
}

/* ---- create ---- */

static const char *const op_options[] = {
	"host", "token_file", "category",
	"ca_file", "ca_path", "client_cert", "client_key", "tls_skip_verify",
	NULL
};

/* Categories Connect creates items in (not DOCUMENT: it needs a file). */
static const char *const op_categories[] = {
	"LOGIN", "PASSWORD", "SERVER", "DATABASE", "CREDIT_CARD", "MEMBERSHIP",
	"PASSPORT", "SOFTWARE_LICENSE", "OUTDOOR_LICENSE", "SECURE_NOTE",
	"WIRELESS_ROUTER", "BANK_ACCOUNT", "DRIVER_LICENSE", "IDENTITY",
	"REWARD_PROGRAM", "EMAIL_ACCOUNT", "SOCIAL_SECURITY_NUMBER",
	"API_CREDENTIAL", NULL
};

static void op_destroy(void *state)
{
	struct onepassword *op = state;

	if (!op)
		return;
	http_client_free(op->http);
	pthread_mutex_destroy(&op->lock);
	kvmap_free(&op->ids);
	kvmap_free(&op->reported);
	secbuf_free(&op->env_token);
	free(op->name);
	free(op->host);
	free(op->token_file);
	free(op->category);
	free(op);
}

static int op_parse_category(struct onepassword *op,
			     const struct provider_conf *conf, struct err *e)
{
	const char *s = kit_opt(conf, "category", NULL, OP_CATEGORY_DEFAULT);

	for (size_t i = 0; op_categories[i]; i++) {
		if (!strcasecmp(s, op_categories[i])) {
			op->category = strdup(op_categories[i]);
			return op->category ? 0 : err_oom(e);
		}
	}
	return err_set(e, ERR_INVALID,
		       "option category: '%.40s' is not a category Connect creates items in (SECURE_NOTE, PASSWORD, API_CREDENTIAL, LOGIN, DATABASE, SERVER, ...)",
		       s);
}

/* token_file, else OP_CONNECT_TOKEN. */
static int op_parse_token(struct onepassword *op,
			  const struct provider_conf *conf, struct err *e)
{
	const char *file = kit_opt(conf, "token_file", NULL, NULL);
	const char *env = kit_env("OP_CONNECT_TOKEN");

	if (file) {
		if (kit_file_check("token_file", file, KIT_FILE_PRIVATE, e) < 0)
			return -1;
		op->token_file = strdup(file);
		snprintf(op->token_src, sizeof(op->token_src), "token_file %s", file);
		return op->token_file ? 0 : err_oom(e);
	}
	if (!env)
		return err_set(e, ERR_INVALID,
			       "no token: set token_file = PATH (chmod 600) or export OP_CONNECT_TOKEN");
	snprintf(op->token_src, sizeof(op->token_src), "OP_CONNECT_TOKEN");
	return secbuf_set(&op->env_token, env, strlen(env)) < 0 ? err_oom(e) : 0;
}

static int op_create(const struct provider_conf *conf, void **state,
		     struct err *e)
{
	struct http_client_conf hc = { .name = conf->name };
	struct onepassword *op = calloc(1, sizeof(*op));
	const char *host = kit_opt(conf, "host", "OP_CONNECT_HOST", NULL);
	char what[160];

	if (!op)
		return err_oom(e);
	pthread_mutex_init(&op->lock, NULL);
	snprintf(what, sizeof(what), "1password %s", conf->name);
	op->timeout_ms = conf->request_timeout_ms > 0 ?
		conf->request_timeout_ms : HTTP_TIMEOUT_DEFAULT_MS;
	op->name = strdup(conf->name);
	if (!op->name) {
		err_oom(e);
		goto fail;
	}
	if (!host) {
		err_set(e, ERR_INVALID,
			"no host: set host = https://CONNECT-SERVER:PORT or export OP_CONNECT_HOST");
		goto fail;
	}
	if (kit_opt_url("host", host, what, &op->host, e) < 0 ||
	    op_parse_token(op, conf, e) < 0 || op_parse_category(op, conf, e) < 0 ||
	    kit_opt_tls(conf, NULL, what, &hc, e) < 0)
		goto fail;
	hc.timeout_ms = op->timeout_ms;
	if (http_client_new(&hc, &op->http, e) < 0)
		goto fail;
	*state = op;
	return 0;
fail:
	op_destroy(op);
	return -1;
}

const struct provider_ops onepassword_provider_ops = {
	.type = "1password-connect",
	.options = op_options,
	/* no PROVIDER_CAP_CAS: see op_store */
	.caps = PROVIDER_CAP_WRITE,
	.create = op_create,
	.destroy = op_destroy,
	.check = op_check,
	.fetch = op_fetch,
	.store = op_store,
};
