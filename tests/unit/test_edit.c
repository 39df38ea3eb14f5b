/* test_edit.c - editor sessions (fs/edit.c) over the file store: merge
 * bases, commits at flush and release, truncation, creating and removing
 * names, and every rename the editors make. pids stand for processes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/edit.h"
#include "file_test.h"

struct fixture {
	char dir[64];
	struct config cfg;
	struct appfs fs;
	struct edit ed;
	int changed;	/* calls of the changed hook */
};

static const struct edit_who vim = { .pid = 100, .uid = 1000, .gid = 1000 };
static const struct edit_who other = { .pid = 200, .uid = 1000, .gid = 1000 };

#define APP 0	/* billing: a store */
#define RO 1	/* mapped only: no store */

/* The store's file, as a static string. */
static const char *store(struct fixture *fx)
{
	static char buf[8192];
	char path[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/store/billing.env", fx->dir);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void on_changed(void *ctx, size_t app)
{
	struct fixture *fx = ctx;

	assert_int_equal(app, APP);
	fx->changed++;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char text[1024], path[128];
	struct err e = { 0 };

	strcpy(fx->dir, "/tmp/secretfs-test-edit-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(path, sizeof(path), "%s/store", fx->dir);
	mkdir(path, 0700);
	write_file(fx->dir, "store/billing.env", "DB='a'\nPLAIN='x'\n");
	snprintf(text, sizeof(text),
		 "[provider local]\ntype = file\ndirectory = %s/store\n"
		 "[app billing]\nstore = local://billing\n"
		 "[app ro]\nenv.DB = local://billing#DB\n", fx->dir);
	write_file(fx->dir, "secretfs.conf", text);
	snprintf(path, sizeof(path), "%s/secretfs.conf", fx->dir);
	if (config_load(path, &fx->cfg, &e) < 0)
		fail_msg("config: %s", e.msg);
	assert_int_equal(appfs_open(&fx->fs, &fx->cfg, &e), 0);
	assert_int_equal(edit_init(&fx->ed, &fx->fs, &fx->cfg, on_changed, fx), 0);
	*state = fx;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	edit_destroy(&fx->ed);
	appfs_close(&fx->fs);
	config_free(&fx->cfg);
	nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static struct edit_handle *op(struct fixture *fx, const char *name,
			      const struct edit_who *who, int flags)
{
	struct edit_handle *h;
	struct err e = { 0 };

	if (edit_open(&fx->ed, APP, name, who, flags, &h, &e) < 0)
		fail_msg("open %s: %s", name, e.msg);
	return h;
}

static void put(struct edit_handle *h, const char *text)
{
	struct err e = { 0 };

	assert_int_equal(edit_write(h, text, strlen(text), 0, &e), 0);
}

static void flush_ok(struct fixture *fx, struct edit_handle *h)
{
	struct err e = { 0 };

	if (edit_flush(&fx->ed, h, &e) < 0)
		fail_msg("flush: %s", e.msg);
}

static void release_ok(struct fixture *fx, struct edit_handle *h)
{
	struct err e = { 0 };

	if (edit_release(&fx->ed, h, &e) < 0)
		fail_msg("release: %s", e.msg);
}

/* The whole file as a process would write it: open, write, close. */
static void save(struct fixture *fx, const char *name, const struct edit_who *who,
		 const char *text)
{
	struct edit_handle *h = op(fx, name, who, O_WRONLY | O_TRUNC);

	put(h, text);
	flush_ok(fx, h);
	release_ok(fx, h);
}

/* ---- merge bases ---- */

/* vim reads, someone else saves, vim saves its own buffer: the base is
 * what vim read, so the other change survives. */
static void test_base_is_the_process_read(void **state)
{
	struct fixture *fx = *state;

	release_ok(fx, op(fx, ".env", &vim, O_RDONLY));
	save(fx, ".env", &other, "DB='a'\nPLAIN='theirs'\n");
	save(fx, ".env", &vim, "DB='mine'\nPLAIN='x'\n");
	assert_non_null(strstr(store(fx), "DB='mine'"));
	assert_non_null(strstr(store(fx), "PLAIN='theirs'"));
}

/* A second read (vim's backup copy just before it saves) keeps the first
 * as the base. */
static void test_later_read_keeps_base(void **state)
{
	struct fixture *fx = *state;

	release_ok(fx, op(fx, ".env", &vim, O_RDONLY));
	save(fx, ".env", &other, "DB='a'\nPLAIN='theirs'\n");
	release_ok(fx, op(fx, ".env", &vim, O_RDONLY));
	save(fx, ".env", &vim, "DB='mine'\nPLAIN='x'\n");
	assert_non_null(strstr(store(fx), "PLAIN='theirs'"));
}

/* Both change the same key: the later save is refused, nothing lands. */
static void test_same_key_conflicts(void **state)
{
	struct fixture *fx = *state;
	struct edit_handle *h;
	struct err e = { 0 };

	release_ok(fx, op(fx, ".env", &vim, O_RDONLY));
	save(fx, ".env", &other, "DB='theirs'\nPLAIN='x'\n");
	h = op(fx, ".env", &vim, O_WRONLY | O_TRUNC);
	put(h, "DB='mine'\nPLAIN='x'\n");
	assert_int_equal(edit_flush(&fx->ed, h, &e), -1);
	assert_int_equal(e.code, ERR_BUSY);
	release_ok(fx, h);	/* reported once, to the close */
	assert_non_null(strstr(store(fx), "DB='theirs'"));
}

/* After a save the process's base is what it saved: its next save
 * changes only what it changes again. */
static void test_save_moves_base(void **state)
{
	struct fixture *fx = *state;

	save(fx, ".env", &vim, "DB='one'\nPLAIN='x'\n");
	save(fx, ".env", &vim, "DB='two'\nPLAIN='x'\n");
	assert_non_null(strstr(store(fx), "DB='two'"));
}

/* ---- commits ---- */

static void test_flush_commits_once(void **state)
{
	struct fixture *fx = *state;
	struct edit_handle *h = op(fx, "PLAIN", &vim, O_RDWR);

	put(h, "y");
	assert_int_equal(fx->changed, 0);	/* buffered until close */
	flush_ok(fx, h);
	assert_int_equal(fx->changed, 1);
	assert_non_null(strstr(store(fx), "PLAIN='y'"));
	flush_ok(fx, h);	/* nothing new: no commit */
	release_ok(fx, h);
	assert_int_equal(fx->changed, 1);
}

static void test_reader_commits_nothing(void **state)
{
	struct fixture *fx = *state;
	struct edit_handle *h = op(fx, "PLAIN", &vim, O_RDONLY);
	const struct secbuf *b = edit_lock(h);

	assert_int_equal(b->len, 1);
	assert_memory_equal(b->data, "x", 1);
	edit_unlock(h);
	flush_ok(fx, h);
	release_ok(fx, h);
	assert_int_equal(fx->changed, 0);
}

/* `> file`: the dup()ed descriptor's flush must not store an empty value,
 * the release of a bare truncation does. */
static void test_truncation_commits_at_release(void **state)
{
	struct fixture *fx = *state;
	struct edit_handle *h = op(fx, "PLAIN", &vim, O_WRONLY | O_TRUNC);

	flush_ok(fx, h);
	assert_non_null(strstr(store(fx), "PLAIN='x'"));
	release_ok(fx, h);
	assert_non_null(strstr(store(fx), "PLAIN=''"));
}

static void test_append(void **state)
{
	struct fixture *fx = *state;
	struct edit_handle *h = op(fx, "PLAIN", &vim, O_WRONLY | O_APPEND);
	struct err e = { 0 };

	assert_int_equal(edit_write(h, "yz", 2, 0, &e), 0);
	release_ok(fx, h);
	assert_non_null(strstr(store(fx), "PLAIN='xyz'"));
}

static void test_truncate(void **state)
{
	struct fixture *fx = *state;
	struct edit_handle *h = op(fx, "DB", &vim, O_RDWR);
	struct err e = { 0 };

	assert_int_equal(edit_truncate(h, 3, &e), 0);	/* grows with NULs */
	assert_int_equal(edit_lock(h)->len, 3);
	edit_unlock(h);
	assert_int_equal(edit_truncate(h, APP_FILE_MAX + 1, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	assert_int_equal(edit_truncate(h, 0, &e), 0);
	release_ok(fx, h);
	assert_non_null(strstr(store(fx), "DB=''"));
	assert_int_equal(edit_truncate_name(&fx->ed, APP, "PLAIN", 0, &e), 0);
	assert_non_null(strstr(store(fx), "PLAIN=''"));
}

/* A write that failed fails the commit: none of it lands. */
static void test_failed_write_commits_nothing(void **state)
{
	struct fixture *fx = *state;
	struct edit_handle *h = op(fx, "PLAIN", &vim, O_WRONLY | O_TRUNC);
	struct err e = { 0 };

	put(h, "start");
	assert_int_equal(edit_write(h, "x", 1, APP_FILE_MAX, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	assert_int_equal(edit_flush(&fx->ed, h, &e), -1);
	assert_int_equal(e.code, ERR_TOOBIG);
	assert_non_null(strstr(e.msg, "nothing was committed"));
	release_ok(fx, h);
	assert_non_null(strstr(store(fx), "PLAIN='x'"));
}

/* ---- create and unlink ---- */

static void test_create_refusals(void **state)
{
	struct fixture *fx = *state;
	struct edit_handle *h;
	struct err e = { 0 };

	assert_int_equal(edit_create(&fx->ed, APP, "no such", &vim, 0600, &h, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(edit_create(&fx->ed, APP, ".env", &vim, 0600, &h, &e), -1);
	assert_int_equal(e.code, ERR_EXISTS);
	assert_int_equal(edit_create(&fx->ed, APP, ".env.keys", &vim, 0600, &h, &e), -1);
	assert_int_equal(e.code, ERR_EXISTS);
	assert_int_equal(edit_create(&fx->ed, RO, "NEW", &vim, 0600, &h, &e), -1);
	assert_int_equal(e.code, ERR_READONLY);
	assert_int_equal(edit_may_create(&fx->ed, RO, ".ro.swp", &e), 0);
}

/* `touch NEW`: a new key is stored at its first close, even empty. */
static void test_create_key_commits_at_close(void **state)
{
	struct fixture *fx = *state;
	struct edit_handle *h;
	struct stat st;
	struct err e = { 0 };

	assert_int_equal(edit_create(&fx->ed, APP, "NEW", &vim, 0644, &h, &e), 0);
	/* until then a scratch file that looks like the key it will be */
	assert_true(edit_scratch_stat(&fx->ed, APP, "NEW", &st));
	assert_int_equal(st.st_mode & 07777, fx->cfg.apps[APP].mode & 0600);
	flush_ok(fx, h);
	assert_non_null(strstr(store(fx), "NEW=''"));
	assert_false(edit_scratch_stat(&fx->ed, APP, "NEW", NULL));
	release_ok(fx, h);
	assert_int_equal(fx->changed, 1);
}

static void test_scratch_file_stays_in_memory(void **state)
{
	struct fixture *fx = *state;
	struct edit_handle *h;
	struct strv names = { 0 };
	struct stat st;
	size_t size;
	struct err e = { 0 };

	assert_int_equal(edit_create(&fx->ed, APP, ".env.swp", &vim, 0644, &h, &e), 0);
	put(h, "swap");
	assert_true(edit_handle_stat(h, &st, &size));
	assert_int_equal(st.st_size, 4);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_mode & 07777, 0600);
	release_ok(fx, h);
	assert_int_equal(fx->changed, 0);
	assert_true(edit_is_scratch_name(&fx->ed, APP, ".env.swp"));
	assert_true(edit_is_scratch_name(&fx->ed, APP, "4913"));	/* could be */
	assert_false(edit_is_scratch_name(&fx->ed, APP, "DB"));
	assert_int_equal(edit_list_scratch(&fx->ed, APP, &names, &e), 0);
	assert_int_equal(names.n, 1);
	assert_string_equal(names.v[0], ".env.swp");
	strv_free(&names);
	assert_int_equal(edit_scratch_chmod(&fx->ed, APP, ".env.swp", 0644, &e), -1);
	assert_int_equal(e.code, ERR_PERM);
	assert_int_equal(edit_scratch_chmod(&fx->ed, APP, ".env.swp", 0400, &e), 0);
	assert_int_equal(edit_scratch_chmod(&fx->ed, APP, "DB", 0400, &e), -1);
	/* a reopen sees the bytes */
	h = op(fx, ".env.swp", &vim, O_RDONLY);
	assert_int_equal(edit_lock(h)->len, 4);
	edit_unlock(h);
	release_ok(fx, h);
	assert_false(edit_handle_stat(op(fx, "DB", &vim, O_RDONLY), &st, &size));
	assert_int_equal(size, 1);	/* left open: edit_destroy frees it */
}

static void test_unlink(void **state)
{
	struct fixture *fx = *state;
	struct edit_handle *h;
	struct err e = { 0 };

	assert_int_equal(edit_unlink(&fx->ed, APP, ".env", &e), -1);
	assert_int_equal(e.code, ERR_PERM);
	assert_int_equal(edit_unlink(&fx->ed, APP, ".env.keys", &e), -1);
	assert_int_equal(e.code, ERR_PERM);
	assert_int_equal(edit_unlink(&fx->ed, APP, "4913", &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_int_equal(edit_create(&fx->ed, APP, "4913", &vim, 0600, &h, &e), 0);
	assert_int_equal(edit_unlink(&fx->ed, APP, "4913", &e), 0);
	put(h, "still writable");	/* the open handle keeps it */
	release_ok(fx, h);
	assert_false(edit_scratch_stat(&fx->ed, APP, "4913", NULL));
	assert_int_equal(fx->changed, 0);
	assert_int_equal(edit_unlink(&fx->ed, APP, "PLAIN", &e), 0);
	assert_null(strstr(store(fx), "PLAIN="));
	assert_int_equal(fx->changed, 1);
}

/* ---- renames ---- */

/* A new scratch file holding text. */
static void scratch(struct fixture *fx, const char *name, const struct edit_who *who,
		    const char *text)
{
	struct edit_handle *h;
	struct err e = { 0 };

	if (edit_create(&fx->ed, APP, name, who, 0600, &h, &e) < 0)
		fail_msg("create %s: %s", name, e.msg);
	put(h, text);
	release_ok(fx, h);
}

static int mv(struct fixture *fx, const char *from, const char *to,
	      struct err *e)
{
	return edit_rename(&fx->ed, APP, from, to, false, &vim, e);
}

/* sed -i: a temporary file renamed over .env commits it, merged against
 * what the process had read when it made the file. */
static void test_rename_scratch_over_env(void **state)
{
	struct fixture *fx = *state;
	struct err e = { 0 };

	release_ok(fx, op(fx, ".env", &vim, O_RDONLY));
	scratch(fx, "sedAb12Z9", &vim, "DB='sed'\nPLAIN='x'\n");
	save(fx, ".env", &other, "DB='a'\nPLAIN='theirs'\n");
	assert_int_equal(fx->changed, 1);
	assert_int_equal(mv(fx, "sedAb12Z9", ".env", &e), 0);
	assert_int_equal(fx->changed, 2);
	assert_non_null(strstr(store(fx), "DB='sed'"));
	assert_non_null(strstr(store(fx), "PLAIN='theirs'"));
	assert_false(edit_scratch_stat(&fx->ed, APP, "sedAb12Z9", NULL));
}

static void test_rename_scratch_over_key(void **state)
{
	struct fixture *fx = *state;
	struct err e = { 0 };

	scratch(fx, "tmpa1b2c3d4", &vim, "new");
	assert_int_equal(mv(fx, "tmpa1b2c3d4", "PLAIN", &e), 0);
	assert_non_null(strstr(store(fx), "PLAIN='new'"));
	scratch(fx, "tmpa1b2c3d4", &vim, "v");
	assert_int_equal(mv(fx, "tmpa1b2c3d4", "not a key", &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_true(edit_scratch_stat(&fx->ed, APP, "tmpa1b2c3d4", NULL));
}

/* In a folder a group may write, a member's 0600 draft stays its own: only
 * its owner (or root) renames it, over a key, .env or another name. */
static void test_rename_other_users_scratch(void **state)
{
	static const struct edit_who member = { .pid = 300, .uid = 1001, .gid = 1000 };
	static const struct edit_who root = { .pid = 400, .uid = 0, .gid = 0 };
	struct fixture *fx = *state;
	struct err e = { 0 };
	const char *to[] = { "PLAIN", ".env", ".elsewhere" };

	scratch(fx, ".draft", &vim, "PLAIN='drafted'\n");
	for (size_t i = 0; i < sizeof(to) / sizeof(to[0]); i++) {
		assert_int_equal(edit_rename(&fx->ed, APP, ".draft", to[i], false,
					     &member, &e), -1);
		assert_int_equal(e.code, ERR_PERM);
	}
	assert_true(edit_scratch_stat(&fx->ed, APP, ".draft", NULL));
	assert_null(strstr(store(fx), "drafted"));
	assert_int_equal(fx->changed, 0);
	assert_int_equal(edit_rename(&fx->ed, APP, ".draft", ".env", false, &root, &e), 0);
	assert_non_null(strstr(store(fx), "PLAIN='drafted'"));
	scratch(fx, ".draft", &vim, "mine");
	assert_int_equal(mv(fx, ".draft", "PLAIN", &e), 0);
	assert_non_null(strstr(store(fx), "PLAIN='mine'"));
}

/* vim's backup: .env moved aside is a copy; .env stays. */
static void test_rename_env_to_backup(void **state)
{
	struct fixture *fx = *state;
	struct stat st;
	struct err e = { 0 };
	char before[256];

	strcpy(before, store(fx));
	scratch(fx, ".env~", &vim, "an older backup");
	assert_int_equal(mv(fx, ".env", ".env~", &e), 0);
	assert_true(edit_scratch_stat(&fx->ed, APP, ".env~", &st));
	assert_int_equal(st.st_size, strlen("DB='a'\nPLAIN='x'\n"));
	assert_string_equal(store(fx), before);
	assert_int_equal(mv(fx, "DB", "DB~", &e), 0);
	assert_true(edit_scratch_stat(&fx->ed, APP, "DB~", &st));
	assert_int_equal(st.st_size, 1);
	assert_int_equal(fx->changed, 0);
}

static void test_rename_scratch_to_scratch(void **state)
{
	struct fixture *fx = *state;
	struct err e = { 0 };

	scratch(fx, "4913", &vim, "probe");
	scratch(fx, ".env.swp", &vim, "swap");
	assert_int_equal(mv(fx, "4913", ".env.swp", &e), 0);
	assert_false(edit_scratch_stat(&fx->ed, APP, "4913", NULL));
	assert_true(edit_scratch_stat(&fx->ed, APP, ".env.swp", NULL));
	assert_int_equal(mv(fx, ".env.swp", ".env.swx", &e), 0);
	assert_true(edit_scratch_stat(&fx->ed, APP, ".env.swx", NULL));
	assert_int_equal(fx->changed, 0);
}

/* `printf ... > tmp && mv tmp .env` with a key-like tmp: the key's value
 * is the new .env, and the key is gone with it. */
static void test_rename_key_over_env(void **state)
{
	struct fixture *fx = *state;
	struct err e = { 0 };

	struct edit_handle *h;

	assert_int_equal(edit_create(&fx->ed, APP, "NEWENV", &vim, 0600, &h, &e), 0);
	put(h, "DB='b'\nPLAIN='x'\n");
	release_ok(fx, h);
	assert_non_null(strstr(store(fx), "NEWENV="));
	assert_int_equal(mv(fx, "NEWENV", ".env", &e), 0);
	assert_non_null(strstr(store(fx), "DB='b'"));
	assert_null(strstr(store(fx), "NEWENV"));
}

static void test_rename_refusals(void **state)
{
	struct fixture *fx = *state;
	struct err e = { 0 };

	/* keys are renamed by writing the new one and removing the old */
	assert_int_equal(mv(fx, "DB", "DB2", &e), -1);
	assert_int_equal(e.code, ERR_NOTSUP);
	assert_int_equal(mv(fx, ".env", "OTHER", &e), -1);
	assert_int_equal(e.code, ERR_NOTSUP);
	scratch(fx, "sedAb12Z9", &vim, "DB='c'\n");
	assert_int_equal(edit_rename(&fx->ed, APP, "sedAb12Z9", ".env", true, &vim, &e), -1);
	assert_int_equal(e.code, ERR_EXISTS);
	scratch(fx, ".x~", &vim, "");
	assert_int_equal(edit_rename(&fx->ed, APP, "sedAb12Z9", ".x~", true, &vim, &e), -1);
	assert_int_equal(e.code, ERR_EXISTS);
	assert_non_null(strstr(store(fx), "DB='a'"));
	assert_int_equal(fx->changed, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* ---- reload: slots outlive the apps of one configuration ---- */

static void test_slots_across_configs(void **state)
{
	struct fixture *fx = *state;
	struct config next = { 0 };
	struct appfs_next an;
	struct edit_handle *h;
	struct edit_who who = { .pid = 77 };
	char text[1024], path[128];
	struct err e = { 0 };
	size_t slot;

	/* a file of billing open across the reload that removes billing */
	assert_int_equal(edit_open(&fx->ed, APP, ".env", &who, O_RDWR, &h, &e), 0);
	snprintf(text, sizeof(text),
		 "[provider local]\ntype = file\ndirectory = %s/store\n"
		 "[app aaa]\nstore = local://billing\n"
		 "[app ro]\nenv.DB = local://billing#DB\n", fx->dir);
	write_file(fx->dir, "next.conf", text);
	snprintf(path, sizeof(path), "%s/next.conf", fx->dir);
	assert_int_equal(config_load(path, &next, &e), 0);
	assert_int_equal(appfs_prepare(&fx->fs, &next, &an, &e), 0);
	/* the provider's section did not change: the same provider kept */
	assert_ptr_equal(an.prov[0], fx->fs.prov[0]);
	assert_int_equal(an.nfresh, 0);
	assert_int_equal(edit_set_config(&fx->ed, &next, &e), 0);
	appfs_commit(&fx->fs, &an);

	/* billing's slot is empty, ro kept its slot, aaa got a new one */
	assert_null(edit_app(&fx->ed, APP));
	assert_true(edit_slot_find(&fx->ed, "ro", &slot));
	assert_string_equal(edit_app(&fx->ed, slot)->name, "ro");
	assert_int_equal(edit_app_slot(&fx->ed, config_app(&next, "ro")), slot);
	assert_true(edit_slot_find(&fx->ed, "aaa", &slot));
	assert_int_equal(slot, 2);
	/* the open file still reads its snapshot; its commit says why not */
	assert_non_null(strstr(edit_lock(h)->data, "DB="));
	edit_unlock(h);
	assert_int_equal(edit_write(h, "DB='b'\n", 7, 0, &e), 0);
	assert_int_equal(edit_flush(&fx->ed, h, &e), -1);
	assert_non_null(strstr(e.msg, "billing is no longer configured"));
	err_clear(&e);
	edit_release(&fx->ed, h, &e);

	/* back to the first configuration: billing gets its slot back */
	assert_int_equal(appfs_prepare(&fx->fs, &fx->cfg, &an, &e), 0);
	assert_int_equal(edit_set_config(&fx->ed, &fx->cfg, &e), 0);
	appfs_commit(&fx->fs, &an);
	assert_string_equal(edit_app(&fx->ed, APP)->name, "billing");
	config_free(&next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_slots_across_configs),
		T(test_base_is_the_process_read),
		T(test_later_read_keeps_base),
		T(test_same_key_conflicts),
		T(test_save_moves_base),
		T(test_flush_commits_once),
		T(test_reader_commits_nothing),
		T(test_truncation_commits_at_release),
		T(test_append),
		T(test_truncate),
		T(test_failed_write_commits_nothing),
		T(test_create_refusals),
		T(test_create_key_commits_at_close),
		T(test_scratch_file_stays_in_memory),
		T(test_unlink),
		T(test_rename_scratch_over_env),
		T(test_rename_scratch_over_key),
		T(test_rename_other_users_scratch),
		T(test_rename_env_to_backup),
		T(test_rename_scratch_to_scratch),
		T(test_rename_key_over_env),
		T(test_rename_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
