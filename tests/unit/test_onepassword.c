/* test_onepassword.c - unit tests for the 1Password Connect provider
 * (providers/onepassword.c).
 *
 * Its parsing and policy parts are static; this file includes the .c, so
 * the archive's copy is never linked in. Nothing here needs a server:
 * items and error bodies are fed in as Connect sends them. The wire
 * protocol is exercised against tests/emulators/opconnect.py by real
 * mounts (tests/integration/test_op_mount.py).
 * Run: build/tests/test_onepassword
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "providers/onepassword.c"

#define PROVIDER_TEST_NAME "op"
#define PROVIDER_TEST_TYPE "1password-connect"
#include "provider_test.h"

#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ID_ITEM "itemitemitemitemitemitem01"

/* A FullItem as Connect returns it: two plain fields, a section with a
 * field, a label that is no key name, a label two fields share, one
 * attachment, and metadata. */
static const char ITEM[] =
	"{\"id\":\"" ID_ITEM "\",\"title\":\"Billing\",\"version\":7,"
	"\"vault\":{\"id\":\"" ID_A "\"},\"category\":\"LOGIN\","
	"\"tags\":[\"prod\"],\"favorite\":true,"
	"\"createdAt\":\"2026-01-01T00:00:00Z\",\"updatedAt\":\"2026-02-01T00:00:00Z\","
	"\"sections\":[{\"id\":\"sec1\",\"label\":\"Prod DB\"},{\"id\":\"sec2\",\"label\":\"Other\"}],"
	"\"fields\":["
	"{\"id\":\"username\",\"type\":\"STRING\",\"purpose\":\"USERNAME\",\"label\":\"username\",\"value\":\"bill\"},"
	"{\"id\":\"password\",\"type\":\"CONCEALED\",\"purpose\":\"PASSWORD\",\"label\":\"password\",\"value\":\"pw1\"},"
	"{\"id\":\"f3\",\"type\":\"STRING\",\"label\":\"host\",\"value\":\"db.example\",\"section\":{\"id\":\"sec1\"}},"
	"{\"id\":\"f4\",\"type\":\"STRING\",\"label\":\"API key\",\"value\":\"k\"},"
	"{\"id\":\"f5\",\"type\":\"STRING\",\"label\":\"port\",\"value\":\"1\",\"section\":{\"id\":\"sec1\"}},"
	"{\"id\":\"f6\",\"type\":\"STRING\",\"label\":\"port\",\"value\":\"2\",\"section\":{\"id\":\"sec2\"}},"
	"{\"id\":\"f7\",\"type\":\"STRING\",\"label\":\"EMPTY\"}"
	"],"
	"\"files\":[{\"id\":\"file1\",\"name\":\"cert.pem\",\"size\":5,"
	"\"content_path\":\"/v1/vaults/" ID_A "/items/" ID_ITEM "/files/file1/content\"}]}";

static json_t *item_load(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);

	if (!j)
		fail_msg("bad test JSON: %s", je.text);
	return j;
}

static void check_ref(const char *loc, const char *params, const char *vault,
		      const char *item, const char *section, const char *field,
		      enum op_attr attr)
{
	struct op_ref r;
	struct err e = { 0 };

	if (op_ref_parse(loc, params, &r, &e) < 0)
		fail_msg("%s: %s", loc, e.msg);
	assert_string_equal(r.vault, vault);
	assert_string_equal(r.item, item);
	if (section)
		assert_string_equal(r.section, section);
	else
		assert_null(r.section);
	if (field)
		assert_string_equal(r.field, field);
	else
		assert_null(r.field);
	assert_int_equal(r.attr, attr);
	op_ref_free(&r);
}

static void check_ref_bad(const char *loc, const char *params,
			  const char *substr)
{
	struct err e = { 0 };

	assert_int_equal(op_check(loc, params, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	if (!strstr(e.msg, substr))
		fail_msg("%s: \"%s\" lacks \"%s\"", loc, e.msg, substr);
}

static void test_refs(void **st)
{
	(void)st;
	check_ref("Team/billing", NULL, "Team", "billing", NULL, NULL,
		  OP_ATTR_DEFAULT);
	check_ref("Team/billing/password", NULL, "Team", "billing", NULL,
		  "password", OP_ATTR_DEFAULT);
	check_ref("Team/billing/Prod DB/host", NULL, "Team", "billing",
		  "Prod DB", "host", OP_ATTR_DEFAULT);
	/* what op read allows: letters, digits, - _ . and spaces (fs/ref.c
	 * has decoded %20 already) */
	check_ref("My Vault/db-main_2.0/one time.pw", NULL, "My Vault",
		  "db-main_2.0", NULL, "one time.pw", OP_ATTR_DEFAULT);
	check_ref(ID_A "/" ID_B "/password", "attribute=id", ID_A, ID_B, NULL,
		  "password", OP_ATTR_ID);
	check_ref("v/i/f", "attr=TYPE", "v", "i", NULL, "f", OP_ATTR_TYPE);
	check_ref("v/i/cert.pem", "attribute=content", "v", "i", NULL,
		  "cert.pem", OP_ATTR_CONTENT);
	check_ref("v/i/s/f", "attribute=purpose", "v", "i", "s", "f",
		  OP_ATTR_PURPOSE);

	check_ref_bad("v", NULL, "expected op://VAULT/ITEM");
	check_ref_bad("", NULL, "expected op://VAULT/ITEM");	/* op:// */
	check_ref_bad("v/i/s/f/x", NULL, "at most 4 segments");
	check_ref_bad("v//f", NULL, "the item is empty");
	check_ref_bad("/i", NULL, "the vault is empty");
	check_ref_bad("v/i/", NULL, "the field is empty");
	check_ref_bad("v/i\"x", NULL, "use its ID");
	check_ref_bad("v/i/f", "attribute=otp", "one-time passwords");
	check_ref_bad("v/i/f", "attribute=colour", "?attribute= is one of");
	check_ref_bad("v/i", "attribute=id", "names a part of one field");
	check_ref_bad("v/i/f", "attribute=id&attr=id", "one parameter");
	check_ref_bad("v/i/f", "version=2", "attribute=NAME");
	check_ref_bad("v/i\x01/f", NULL, "control characters");
}

static void test_ids(void **st)
{
	(void)st;
	assert_true(op_id_valid(ID_A));
	assert_true(op_id_valid("0123456789abcdefghijklmnop"));
	assert_false(op_id_valid("0123456789ABCDEFGHIJKLMNOP"));
	assert_false(op_id_valid("aaaaaaaaaaaaaaaaaaaaaaaaa"));
	assert_false(op_id_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	assert_false(op_id_valid("billing"));
}

static void test_layout(void **st)
{
	json_t *item = item_load(ITEM);
	struct op_layout l;
	struct kvmap m = KVMAP_INIT;
	struct err e = { 0 };
	char version[PROVIDER_VERSION_MAX];

	(void)st;
	assert_int_equal(op_layout_build(item, &l, "x", &e), 0);
	/* sorted: EMPTY, cert.pem, host (in a section), password, username */
	assert_int_equal(l.n, 5);
	assert_string_equal(l.v[0].key, "EMPTY");
	assert_string_equal(l.v[1].key, "cert.pem");
	assert_non_null(l.v[1].file);
	assert_string_equal(l.v[2].key, "host");
	assert_string_equal(l.v[3].key, "password");
	assert_string_equal(l.v[4].key, "username");
	/* reported, not guessed */
	assert_int_equal(l.unnamed.n, 1);
	assert_string_equal(l.unnamed.v[0], "API key");
	assert_int_equal(l.twice.n, 1);
	assert_string_equal(l.twice.v[0], "port");
	assert_int_equal(op_layout_fields(&l, "x", &m, &e), 0);
	assert_int_equal(m.n, 4);
	assert_string_equal(kvmap_get(&m, "password")->val, "pw1");
	assert_string_equal(kvmap_get(&m, "host")->val, "db.example");
	assert_int_equal(kvmap_get(&m, "EMPTY")->len, 0);
	assert_null(kvmap_get(&m, "cert.pem"));
	assert_int_equal(op_item_version(item, "x", version, &e), 0);
	assert_string_equal(version, ID_ITEM ":7");
	kvmap_free(&m);
	op_layout_free(&l);
	json_decref(item);
}

static void test_layout_garbage(void **st)
{
	struct op_layout l;
	struct err e = { 0 };
	json_t *a = item_load("{\"id\":\"" ID_ITEM "\",\"fields\":{}}");
	json_t *b = item_load("{\"id\":\"" ID_ITEM "\",\"fields\":[{\"label\":\"A\",\"value\":\"x\"},7]}");
	json_t *c = item_load("{\"id\":\"" ID_ITEM "\",\"fields\":[{\"label\":\"A\",\"value\":5}]}");
	json_t *d = item_load("{\"id\":\"" ID_ITEM "\",\"files\":[{\"name\":\"x\"}]}");
	struct kvmap m = KVMAP_INIT;
	char v[PROVIDER_VERSION_MAX];

	(void)st;
	assert_int_equal(op_layout_build(a, &l, "x", &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_int_equal(op_layout_build(b, &l, "x", &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_int_equal(op_layout_build(d, &l, "x", &e), -1);
	assert_int_equal(op_layout_build(c, &l, "x", &e), 0);
	assert_int_equal(op_layout_fields(&l, "x", &m, &e), -1);
	assert_non_null(strstr(e.msg, "not text"));
	op_layout_free(&l);
	kvmap_free(&m);
	json_decref(d);
	d = item_load("{\"title\":\"x\"}");
	assert_int_equal(op_item_version(d, "x", v, &e), -1);
	/* the shape checked before a title is compared */
	assert_int_equal(op_item_check(d, "x", &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_int_equal(op_item_check(a, "x", &e), -1);
	json_decref(a);
	a = item_load("{\"id\":7,\"fields\":\"none\",\"version\":\"two\"}");
	assert_int_equal(op_item_check(a, "x", &e), -1);
	json_decref(a);
	a = item_load(ITEM);
	assert_int_equal(op_item_check(a, "x", &e), 0);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(d);
}

static void check_find(json_t *item, const char *section, const char *field,
		       const char *want_id, bool is_file)
{
	struct op_ref r = { .section = (char *)section, .field = (char *)field };
	json_t *fd, *fl;
	struct err e = { 0 };

	if (op_field_find(item, &r, "x", &fd, &fl, &e) < 0)
		fail_msg("%s/%s: %s", section ? section : "-", field, e.msg);
	assert_string_equal(op_str(is_file ? fl : fd, "id"), want_id);
	assert_true(is_file ? fd == NULL : fl == NULL);
}

static void check_find_bad(json_t *item, const char *section,
			   const char *field, enum err_code code,
			   const char *substr)
{
	struct op_ref r = { .section = (char *)section, .field = (char *)field };
	json_t *fd, *fl;
	struct err e = { 0 };

	assert_int_equal(op_field_find(item, &r, "x", &fd, &fl, &e), -1);
	assert_int_equal(e.code, code);
	if (!strstr(e.msg, substr))
		fail_msg("\"%s\" lacks \"%s\"", e.msg, substr);
}

static void test_field_find(void **st)
{
	json_t *item = item_load(ITEM);

	(void)st;
	check_find(item, NULL, "password", "password", false);
	check_find(item, NULL, "PassWord", "password", false);
	check_find(item, NULL, "host", "f3", false);	/* in a section */
	check_find(item, "Prod DB", "host", "f3", false);
	check_find(item, "prod db", "port", "f5", false);
	check_find(item, "sec2", "port", "f6", false);
	check_find(item, NULL, "f6", "f6", false);	/* by ID */
	check_find(item, NULL, "api KEY", "f4", false);
	check_find(item, NULL, "cert.pem", "file1", true);
	check_find(item, NULL, "file1", "file1", true);
	check_find_bad(item, NULL, "port", ERR_PROVIDER, "two fields, f5 and f6");
	check_find_bad(item, "Other", "host", ERR_NOTFOUND, "no field or file 'host'");
	check_find_bad(item, "Nope", "host", ERR_NOTFOUND, "no section 'Nope'");
	check_find_bad(item, NULL, "missing", ERR_NOTFOUND, "no field or file");
	json_decref(item);
}

static void check_attr(json_t *item, const char *field, enum op_attr a,
		       const char *want)
{
	struct op_ref r = { .field = (char *)field };
	struct secbuf out = SECBUF_INIT;
	json_t *fd, *fl;
	struct err e = { 0 };

	assert_int_equal(op_field_find(item, &r, "x", &fd, &fl, &e), 0);
	if ((fd ? op_field_attr(fd, a, "x", &out, &e) :
	     op_file_attr(fl, a, "x", &out, &e)) < 0)
		fail_msg("%s: %s", field, e.msg);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.data, want, out.len);
	secbuf_free(&out);
}

static void test_attributes(void **st)
{
	json_t *item = item_load(ITEM);
	struct secbuf out = SECBUF_INIT;
	struct err e = { 0 };
	json_t *fd = json_array_get(json_object_get(item, "fields"), 0);
	json_t *fl = json_array_get(json_object_get(item, "files"), 0);

	(void)st;
	check_attr(item, "password", OP_ATTR_DEFAULT, "pw1");
	check_attr(item, "password", OP_ATTR_VALUE, "pw1");
	check_attr(item, "password", OP_ATTR_ID, "password");
	check_attr(item, "password", OP_ATTR_TYPE, "CONCEALED");
	check_attr(item, "password", OP_ATTR_PURPOSE, "PASSWORD");
	check_attr(item, "host", OP_ATTR_LABEL, "host");
	check_attr(item, "host", OP_ATTR_PURPOSE, "");
	check_attr(item, "EMPTY", OP_ATTR_VALUE, "");
	check_attr(item, "cert.pem", OP_ATTR_ID, "file1");
	check_attr(item, "cert.pem", OP_ATTR_NAME, "cert.pem");
	check_attr(item, "cert.pem", OP_ATTR_SIZE, "5");
	assert_int_equal(op_field_attr(fd, OP_ATTR_CONTENT, "x", &out, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(op_file_attr(fl, OP_ATTR_PURPOSE, "x", &out, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	secbuf_free(&out);
	json_decref(item);
}

/* The entry the item reads as, files included (as the fetch adds them). */
static void item_map(json_t *item, struct kvmap *m)
{
	struct op_layout l;
	struct err e = { 0 };

	assert_int_equal(op_layout_build(item, &l, "x", &e), 0);
	assert_int_equal(op_layout_fields(&l, "x", m, &e), 0);
	assert_int_equal(kvmap_set(m, "cert.pem", "CERT\n", 5), 0);
	op_layout_free(&l);
}

static void check_patch(json_t *ops, const char *want)
{
	json_t *w = item_load(want);

	if (!json_equal(ops, w)) {
		char *got = json_dumps(ops, JSON_COMPACT);

		fail_msg("patch %s, expected %s", got, want);
	}
	json_decref(w);
}

static void test_patch(void **st)
{
	json_t *item = item_load(ITEM), *ops, *orig;
	struct kvmap prev = KVMAP_INIT, m = KVMAP_INIT;
	struct err e = { 0 };

	(void)st;
	item_map(item, &prev);
	assert_int_equal(kvmap_copy(&m, &prev), 0);
	/* change one, remove one, add one, fill one without a value */
	assert_int_equal(kvmap_set(&m, "password", "pw2", 3), 0);
	assert_true(kvmap_del(&m, "username"));
	assert_int_equal(kvmap_set(&m, "NEW_KEY", "n\"ew", 4), 0);
	assert_int_equal(kvmap_set(&m, "EMPTY", "e", 1), 0);
	assert_int_equal(op_item_patch(item, &prev, &m, "x", &ops, &e), 0);
	/* only those fields: the others (the unnamed, both ports, the
	 * sections, files and metadata) are never sent */
	check_patch(ops, "["
		"{\"op\":\"add\",\"path\":\"/fields/f7/value\",\"value\":\"e\"},"
		"{\"op\":\"replace\",\"path\":\"/fields/password/value\",\"value\":\"pw2\"},"
		"{\"op\":\"remove\",\"path\":\"/fields/username\"},"
		"{\"op\":\"add\",\"path\":\"/fields\",\"value\":{\"type\":\"CONCEALED\","
		"\"purpose\":\"\",\"label\":\"NEW_KEY\",\"value\":\"n\\\"ew\"}}]");
	json_decref(ops);
	/* the item read is not modified */
	orig = item_load(ITEM);
	assert_true(json_equal(item, orig));
	json_decref(orig);
	kvmap_free(&m);
	kvmap_free(&prev);
	json_decref(item);
}

static void test_field_path(void **st)
{
	char p[64];

	(void)st;
	op_field_path("password", "/value", p, sizeof(p));
	assert_string_equal(p, "/fields/password/value");
	op_field_path("a/b~c", "", p, sizeof(p));
	assert_string_equal(p, "/fields/a~1b~0c");
}

static void check_patch_bad(const char *key, const char *val, size_t len,
			    bool del, enum err_code code, const char *substr)
{
	json_t *item = item_load(ITEM), *out = NULL;
	struct kvmap prev = KVMAP_INIT, m = KVMAP_INIT;
	struct err e = { 0 };

	item_map(item, &prev);
	assert_int_equal(kvmap_copy(&m, &prev), 0);
	if (del)
		assert_true(kvmap_del(&m, key));
	else
		assert_int_equal(kvmap_set(&m, key, val, len), 0);
	assert_int_equal(op_item_patch(item, &prev, &m, "x", &out, &e), -1);
	assert_null(out);
	assert_int_equal(e.code, code);
	if (!strstr(e.msg, substr))
		fail_msg("\"%s\" lacks \"%s\"", e.msg, substr);
	kvmap_free(&m);
	kvmap_free(&prev);
	json_decref(item);
}

static void test_patch_refused(void **st)
{
	(void)st;
	check_patch_bad("cert.pem", "other", 5, false, ERR_READONLY,
			"cannot change attachments");
	check_patch_bad("cert.pem", NULL, 0, true, ERR_READONLY,
			"cannot remove attachments");
	check_patch_bad("port", "3", 1, false, ERR_INVALID,
			"two fields or files of the item are labeled port");
	check_patch_bad("not-a-name", "3", 1, false, ERR_INVALID,
			"environment names");
	check_patch_bad("password", "\xff\xfe", 2, false, ERR_INVALID,
			"UTF-8 text only");
}

static void test_patch_nothing(void **st)
{
	json_t *item = item_load(ITEM), *ops;
	struct kvmap prev = KVMAP_INIT;
	struct err e = { 0 };

	(void)st;
	item_map(item, &prev);
	assert_int_equal(op_item_patch(item, &prev, &prev, "x", &ops, &e), 0);
	assert_int_equal(json_array_size(ops), 0);
	json_decref(ops);
	/* an item without fields gets one */
	json_decref(item);
	item = item_load("{\"id\":\"" ID_ITEM "\",\"title\":\"t\",\"version\":1}");
	kvmap_free(&prev);
	assert_int_equal(kvmap_set(&prev, "A", "1", 1), 0);
	assert_int_equal(op_item_patch(item, &prev, &prev, "x", &ops, &e), 0);
	assert_int_equal(json_array_size(ops), 1);
	json_decref(ops);
	kvmap_free(&prev);
	json_decref(item);
}

static void test_item_new(void **st)
{
	struct kvmap m = KVMAP_INIT;
	struct err e = { 0 };
	json_t *out, *f;

	(void)st;
	assert_int_equal(kvmap_set(&m, "SECRET_KEY", "abc", 3), 0);
	assert_int_equal(kvmap_set(&m, "DB", "x", 1), 0);
	assert_int_equal(op_item_new(ID_A, "my app", "SECURE_NOTE", &m, "x",
				     &out, &e), 0);
	assert_string_equal(op_str(out, "title"), "my app");
	assert_string_equal(op_str(out, "category"), "SECURE_NOTE");
	assert_string_equal(op_str(json_object_get(out, "vault"), "id"), ID_A);
	assert_int_equal(json_array_size(json_object_get(out, "fields")), 2);
	f = json_array_get(json_object_get(out, "fields"), 1);
	assert_string_equal(op_str(f, "label"), "SECRET_KEY");
	assert_string_equal(op_str(f, "value"), "abc");
	json_decref(out);
	assert_int_equal(kvmap_set(&m, "a.b", "x", 1), 0);
	assert_int_equal(op_item_new(ID_A, "t", "SECURE_NOTE", &m, "x", &out, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	kvmap_free(&m);
}

static void check_error(long status, const char *body, enum err_code code,
			const char *substr)
{
	struct http_response rs = resp(status, body);
	struct err e = { 0 };

	assert_int_equal(op_error_map(&rs, "Team/billing", "token_file /etc/t", &e), -1);
	assert_int_equal(e.code, code);
	if (!strstr(e.msg, substr))
		fail_msg("%ld: \"%s\" lacks \"%s\"", status, e.msg, substr);
	assert_true(!strncmp(e.msg, "Team/billing: ", 14));
	http_response_free(&rs);
}

static void test_error_map(void **st)
{
	(void)st;
	check_error(401, "{\"status\":401,\"message\":\"Invalid token signature\"}",
		    ERR_ACCESS, "refused the token (HTTP 401: Invalid token signature); token from token_file /etc/t");
	check_error(403, "{\"status\":403,\"message\":\"Authorization: vault access denied\"}",
		    ERR_ACCESS, "lacks access");
	/* a refusal whatever the body */
	check_error(403, "<html>no</html>", ERR_ACCESS, "HTTP 403)");
	check_error(404, "{\"status\":404,\"message\":\"item not found\"}",
		    ERR_NOTFOUND, "not found in 1Password: item not found");
	check_error(400, "{\"status\":400,\"message\":\"Invalid item category\\nmore\"}",
		    ERR_INVALID, "refused the request: Invalid item category");
	check_error(409, "{\"status\":409,\"message\":\"version mismatch\"}",
		    ERR_CONFLICT, "changed meanwhile");
	check_error(500, "{\"status\":500,\"message\":\"boom\"}", ERR_PROVIDER,
		    "HTTP 500 (");
	check_error(503, "garbage", ERR_PROVIDER, "HTTP 503");
	check_error(413, NULL, ERR_TOOBIG, "HTTP 413");
}

static void test_match(void **st)
{
	json_t *list = item_load(
		"[{\"id\":\"" ID_A "\",\"title\":\"Billing\"},"
		"{\"id\":\"" ID_B "\",\"title\":\"billing\"},"
		"{\"id\":\"cccccccccccccccccccccccccc\",\"title\":\"other\"},"
		"{\"id\":\"dddddddddddddddddddddddddd\",\"title\":\"gone\",\"trashed\":true}]");
	char id[OP_ID_LEN + 1], other[OP_ID_LEN + 1];
	struct err e = { 0 };
	size_t n;

	(void)st;
	assert_int_equal(op_match(list, "title", "BILLING", "x", id, other, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(id, ID_A);
	assert_string_equal(other, ID_B);
	assert_int_equal(op_match(list, "title", "Other", "x", id, other, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(id, "cccccccccccccccccccccccccc");
	assert_int_equal(op_match(list, "title", "gone", "x", id, other, &n, &e), 0);
	assert_int_equal(n, 0);
	json_decref(list);
	list = item_load("{\"id\":1}");
	assert_int_equal(op_match(list, "title", "x", "x", id, other, &n, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	json_decref(list);
	list = item_load("[{\"id\":\"short\",\"title\":\"x\"}]");
	assert_int_equal(op_match(list, "title", "x", "x", id, other, &n, &e), -1);
	json_decref(list);
}

static void test_cache_key(void **st)
{
	char k[128];

	(void)st;
	op_cache_key(k, sizeof(k), NULL, "My Vault");
	assert_string_equal(k, "v/my vault");
	op_cache_key(k, sizeof(k), ID_A, "Billing-App");
	assert_string_equal(k, "i/" ID_A "/billing-app");
}

static void check_create_bad(struct conf *c, const char *substr)
{
	void *state = NULL;
	struct err e = { 0 };

	assert_int_equal(op_create(&c->pc, &state, &e), -1);
	assert_null(state);
	if (!strstr(e.msg, substr))
		fail_msg("\"%s\" lacks \"%s\"", e.msg, substr);
}

static void test_options(void **st)
{
	char *path = tmpfile_mode("token", "tok\n", 0600);
	struct onepassword *op;
	struct conf c;
	void *state;
	struct err e = { 0 };

	(void)st;
	unsetenv("OP_CONNECT_HOST");
	unsetenv("OP_CONNECT_TOKEN");
	conf_make(&c, "token_file", path, NULL);
	check_create_bad(&c, "no host");
	assert_int_equal(chmod(path, 0644), 0);
	conf_make(&c, "host", "http://127.0.0.1:8080", "token_file", path, NULL);
	check_create_bad(&c, "readable by group or others");
	assert_int_equal(chmod(path, 0600), 0);
	conf_make(&c, "host", "http://127.0.0.1:8080", NULL);
	check_create_bad(&c, "no token");
	conf_make(&c, "host", "http://127.0.0.1:8080", "token_file", path,
		  "category", "DOCUMENT", NULL);
	check_create_bad(&c, "option category");

	conf_make(&c, "host", "http://127.0.0.1:8080/", "token_file", path,
		  "category", "password", NULL);
	assert_int_equal(op_create(&c.pc, &state, &e), 0);
	op = state;
	assert_string_equal(op->host, "http://127.0.0.1:8080");
	assert_string_equal(op->category, "PASSWORD");
	assert_non_null(strstr(op->token_src, path));
	op_destroy(state);

	/* the environment */
	setenv("OP_CONNECT_HOST", "http://localhost:9", 1);
	setenv("OP_CONNECT_TOKEN", "envtok", 1);
	conf_make(&c, NULL);
	assert_int_equal(op_create(&c.pc, &state, &e), 0);
	op = state;
	assert_string_equal(op->host, "http://localhost:9");
	assert_string_equal(op->category, OP_CATEGORY_DEFAULT);
	assert_string_equal(op->token_src, "OP_CONNECT_TOKEN");
	assert_int_equal(op->env_token.len, 6);
	op_destroy(state);
	unsetenv("OP_CONNECT_HOST");
	unsetenv("OP_CONNECT_TOKEN");
}

static void test_registered(void **st)
{
	(void)st;
	assert_ptr_equal(provider_ops_find("1password-connect"),
			 &onepassword_provider_ops);
	assert_null(onepassword_provider_ops.caps & PROVIDER_CAP_CAS);
}

static int setup_all(void **st)
{
	(void)st;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_op.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	log_init(LOG_LVL_ERROR, false);
	return 0;
}

static int teardown_all(void **st)
{
	char cmd[128];

	(void)st;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_layout_garbage),
		cmocka_unit_test(test_field_find),
		cmocka_unit_test(test_attributes),
		cmocka_unit_test(test_patch),
		cmocka_unit_test(test_field_path),
		cmocka_unit_test(test_patch_refused),
		cmocka_unit_test(test_patch_nothing),
		cmocka_unit_test(test_item_new),
		cmocka_unit_test(test_error_map),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_cache_key),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_registered),
	};

	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
