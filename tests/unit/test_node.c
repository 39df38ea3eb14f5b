/* test_node.c - the inode table (fs/node.c): numbers of the root, app
 * folders and files, stable per name; renames that keep a file's inode;
 * retired names that outlive their node's rename; what the kernel was
 * shown (observe) deciding mtime and invalidation; which version the
 * page cache holds, deciding how opens read (pages); walking an app, and
 * every file; the sealed snapshot a node keeps between changes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/node.h"

#define NAPPS 3
#define MOUNTED ((time_t)1000)	/* long ago: a change's mtime differs */

static int setup(void **state)
{
	struct node_table *t = calloc(1, sizeof(*t));
	struct err e = { 0 };

	assert_int_equal(node_init(t, NAPPS, MOUNTED, &e), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	node_destroy(*state);
	free(*state);
	return 0;
}

static struct node *get(struct node_table *t, size_t app, const char *name)
{
	struct err e = { 0 };
	struct node *n = node_get(t, app, name, &e);

	if (!n)
		fail_msg("node_get %s: %s", name, e.msg);
	return n;
}

static struct secbuf buf(const char *text)
{
	struct secbuf b = SECBUF_INIT;

	assert_int_equal(secbuf_puts(&b, text), 0);
	return b;
}

/* Observe text as what n serves now. */
static bool observe(struct node_table *t, struct node *n, const char *text)
{
	struct secbuf b = buf(text);
	bool changed = node_observe(t, n, &b);

	secbuf_free(&b);
	return changed;
}

/* ---- numbers ---- */

static void test_folders(void **state)
{
	struct node_table *t = *state;
	size_t app = 99;

	assert_false(node_app_dir(t, NODE_ROOT_INO, &app));
	for (size_t i = 0; i < NAPPS; i++) {
		assert_int_equal(node_app_ino(i), NODE_ROOT_INO + 1 + i);
		assert_true(node_app_dir(t, node_app_ino(i), &app));
		assert_int_equal(app, i);
	}
	assert_false(node_app_dir(t, node_app_ino(NAPPS), &app));
	assert_false(node_app_dir(t, 0, &app));
	/* folders are no files */
	assert_null(node_find(t, NODE_ROOT_INO));
	assert_null(node_find(t, node_app_ino(0)));
}

static void test_files_numbered_after_folders(void **state)
{
	struct node_table *t = *state;
	struct node *env = get(t, 0, ".env");
	struct node *db = get(t, 0, "DB");

	/* after every slot a mount could ever have: reloads renumber nothing */
	assert_int_equal(env->ino, NODE_ROOT_INO + 1 + NODE_APPS_MAX);
	assert_int_equal(db->ino, env->ino + 1);
	assert_int_equal(env->app, 0);
	assert_string_equal(db->name, "DB");
	assert_ptr_equal(node_find(t, env->ino), env);
	assert_ptr_equal(node_find(t, db->ino), db);
	assert_null(node_find(t, db->ino + 1));	/* not made yet */
	assert_false(node_app_dir(t, env->ino, &(size_t){ 0 }));
}

static void test_same_name_same_inode(void **state)
{
	struct node_table *t = *state;
	uint64_t inos[200];
	char name[16];

	/* more than the first allocation holds: growing keeps numbers */
	for (size_t i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "K%zu", i);
		inos[i] = get(t, 1, name)->ino;
	}
	for (size_t i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "K%zu", i);
		assert_int_equal(get(t, 1, name)->ino, inos[i]);
		assert_string_equal(node_find(t, inos[i])->name, name);
	}
	/* a name is per app */
	assert_int_not_equal(get(t, 2, "K0")->ino, inos[0]);
	assert_int_equal(get(t, 2, "K0")->app, 2);
}

static void test_no_apps(void **state)
{
	struct node_table t;
	struct err e = { 0 };

	assert_int_equal(node_init(&t, 0, MOUNTED, &e), 0);
	assert_false(node_app_dir(&t, NODE_ROOT_INO + 1, &(size_t){ 0 }));
	node_destroy(&t);
}

/* ---- renames ---- */

static void test_rename_keeps_inode(void **state)
{
	struct node_table *t = *state;
	struct node *tmp = get(t, 0, "sedAbc123");
	uint64_t ino = tmp->ino;

	node_rename(t, 0, "sedAbc123", "DB");
	assert_int_equal(get(t, 0, "DB")->ino, ino);
	assert_string_equal(node_find(t, ino)->name, "DB");
	/* the old name is a new file if it comes back */
	assert_int_not_equal(get(t, 0, "sedAbc123")->ino, ino);
}

static void test_rename_over_retires_target(void **state)
{
	struct node_table *t = *state;
	struct node *from = get(t, 0, ".env.swp");
	struct node *to = get(t, 0, ".env");
	const char *from_name = from->name, *to_name = to->name;

	node_rename(t, 0, ".env.swp", ".env");
	assert_ptr_equal(get(t, 0, ".env"), from);
	/* the replaced inode is no name's, but still a file's number */
	assert_ptr_equal(node_find(t, to->ino), to);
	assert_string_equal(to->name, "");
	/* readers that held the old names may still read them */
	assert_string_equal(from_name, ".env.swp");
	assert_string_equal(to_name, ".env");
	/* and the detached node stays out of the way of later renames */
	node_rename(t, 0, ".env", "DB");
	assert_ptr_equal(get(t, 0, "DB"), from);
	assert_string_equal(to->name, "");
}

static void test_rename_of_unknown_name(void **state)
{
	struct node_table *t = *state;
	struct node *db = get(t, 0, "DB");

	/* from was never looked up: to's inode goes, nothing takes it */
	node_rename(t, 0, "NEVER", "DB");
	assert_string_equal(db->name, "");
	assert_ptr_not_equal(get(t, 0, "DB"), db);
	/* and a rename in another app touches nothing here */
	node_rename(t, 1, "A", "DB");
	assert_string_equal(get(t, 0, "DB")->name, "DB");
}

/* ---- what the kernel saw ---- */

static void test_observe_first_sight(void **state)
{
	struct node_table *t = *state;
	struct node *n = get(t, 0, "DB");

	assert_int_equal(node_mtime(t, n), MOUNTED);	/* never read */
	assert_false(observe(t, n, "secret"));
	assert_int_equal(node_mtime(t, n), MOUNTED);
}

static void test_observe_unchanged_keeps_mtime(void **state)
{
	struct node_table *t = *state;
	struct node *n = get(t, 0, "DB");

	observe(t, n, "secret");
	for (int i = 0; i < 3; i++)
		assert_false(observe(t, n, "secret"));
	assert_int_equal(node_mtime(t, n), MOUNTED);
}

static void test_observe_change_bumps_mtime(void **state)
{
	struct node_table *t = *state;
	struct node *n = get(t, 0, "DB");
	time_t before = time(NULL);
	time_t mtime;

	observe(t, n, "secret");
	assert_true(observe(t, n, "rotated"));
	mtime = node_mtime(t, n);
	assert_true(mtime >= before && mtime <= time(NULL));
	/* once shown, the new value is no change again */
	assert_false(observe(t, n, "rotated"));
	assert_int_equal(node_mtime(t, n), mtime);
	/* an empty file is content too */
	assert_true(observe(t, n, ""));
}

static void test_observe_per_node(void **state)
{
	struct node_table *t = *state;
	struct node *a = get(t, 0, "A"), *b = get(t, 0, "B");

	observe(t, a, "one");
	assert_false(observe(t, b, "two"));	/* b's first sight */
	assert_false(observe(t, a, "one"));
	assert_true(observe(t, b, "three"));
	assert_int_equal(node_mtime(t, a), MOUNTED);
}

static void test_rename_forgets_what_was_seen(void **state)
{
	struct node_table *t = *state;
	struct node *n = get(t, 0, "sedAbc123");

	observe(t, n, "old");
	assert_true(observe(t, n, "new"));
	node_rename(t, 0, "sedAbc123", "DB");
	/* the kernel saw another file under this name: first sight again */
	assert_int_equal(node_mtime(t, n), MOUNTED);
	assert_false(observe(t, n, "other"));
}

/* ---- the page cache ---- */

/* A read-only open of n serving text; *changed as node_observe's. */
static enum node_pages pages_open(struct node_table *t, struct node *n,
			      const char *text, bool *changed)
{
	struct secbuf b = buf(text);
	bool ignored;
	enum node_pages how = node_pages_open(t, n, &b, changed ? changed : &ignored);

	secbuf_free(&b);
	return how;
}

/* The adapter's invalidation thread told the kernel of n's changes. */
static void invalidated(struct node_table *t, struct node *n)
{
	node_inval_done(t, n->ino, node_inval_begin(t, n->ino));
}

static void test_pages_first_open_drops(void **state)
{
	struct node_table *t = *state;
	struct node *n = get(t, 0, ".env");
	bool changed = true;

	/* nobody knows what the cache holds: it goes */
	assert_int_equal(pages_open(t, n, "v1", &changed), NODE_PAGES_DROP);
	assert_false(changed);
	node_pages_dropped(t, n);
	/* the same version, dropped: kept from now on */
	assert_int_equal(pages_open(t, n, "v1", NULL), NODE_PAGES_KEEP);
	node_pages_close(t, n);
	node_pages_close(t, n);
	assert_int_equal(pages_open(t, n, "v1", NULL), NODE_PAGES_KEEP);
	node_pages_close(t, n);
}

static void test_pages_drop_pending_drops_again(void **state)
{
	struct node_table *t = *state;
	struct node *n = get(t, 0, ".env");

	/* the first open's drop may not have happened yet: what the cache
	 * still holds must not be read by the second */
	assert_int_equal(pages_open(t, n, "v1", NULL), NODE_PAGES_DROP);
	assert_int_equal(pages_open(t, n, "v1", NULL), NODE_PAGES_DROP);
	node_pages_dropped(t, n);
	assert_int_equal(pages_open(t, n, "v1", NULL), NODE_PAGES_DROP);
	node_pages_dropped(t, n);
	node_pages_dropped(t, n);
	assert_int_equal(pages_open(t, n, "v1", NULL), NODE_PAGES_KEEP);
}

static void test_pages_other_version_waits_around(void **state)
{
	struct node_table *t = *state;
	struct node *n = get(t, 0, ".env");
	bool changed = false;

	assert_int_equal(pages_open(t, n, "v1", NULL), NODE_PAGES_DROP);
	node_pages_dropped(t, n);
	assert_false(node_pages_mixed(t, n));
	/* a reader of v1 is open: v2 reads around the cache, for as long */
	assert_int_equal(pages_open(t, n, "v2", &changed), NODE_PAGES_AROUND);
	assert_true(changed);
	assert_true(node_pages_mixed(t, n));
	invalidated(t, n);
	assert_int_equal(pages_open(t, n, "v2", &changed), NODE_PAGES_AROUND);
	assert_false(changed);
	/* v1 again is the cache's version */
	assert_int_equal(pages_open(t, n, "v1", &changed), NODE_PAGES_AROUND);
	assert_true(changed);
	assert_false(node_pages_mixed(t, n));
	invalidated(t, n);
	assert_int_equal(pages_open(t, n, "v1", &changed), NODE_PAGES_KEEP);
	assert_false(changed);
	node_pages_close(t, n);
	observe(t, n, "v2");
	assert_true(node_pages_mixed(t, n));
	node_pages_close(t, n);
	invalidated(t, n);
	/* the v1 readers are gone: v2 drops their pages and takes over */
	assert_false(node_pages_mixed(t, n));
	assert_int_equal(pages_open(t, n, "v2", NULL), NODE_PAGES_DROP);
	node_pages_dropped(t, n);
	assert_int_equal(pages_open(t, n, "v2", NULL), NODE_PAGES_KEEP);
	assert_int_equal(pages_open(t, n, "v1", NULL), NODE_PAGES_AROUND);
}

static void test_pages_change_not_invalidated_reads_around(void **state)
{
	struct node_table *t = *state;
	struct node *n = get(t, 0, ".env");
	uint64_t changes;

	assert_int_equal(pages_open(t, n, "v1", NULL), NODE_PAGES_DROP);
	node_pages_dropped(t, n);
	node_pages_close(t, n);
	/* the kernel may still keep v1's size: around the cache until it
	 * has been told, by an invalidation begun after the change */
	assert_true(observe(t, n, "v2"));
	assert_int_equal(pages_open(t, n, "v2", NULL), NODE_PAGES_AROUND);
	changes = node_inval_begin(t, n->ino);
	assert_true(observe(t, n, "v3"));
	node_inval_done(t, n->ino, changes);
	assert_int_equal(pages_open(t, n, "v3", NULL), NODE_PAGES_AROUND);
	invalidated(t, n);
	assert_int_equal(pages_open(t, n, "v3", NULL), NODE_PAGES_DROP);
	/* not a file's inode: nothing to learn */
	assert_int_equal(node_inval_begin(t, NODE_ROOT_INO), 0);
	node_inval_done(t, NODE_ROOT_INO, 1);
}

static void test_pages_rename_reads_around(void **state)
{
	struct node_table *t = *state;
	struct node *n = get(t, 0, "sedAbc123");

	assert_int_equal(pages_open(t, n, "edited", NULL), NODE_PAGES_DROP);
	node_pages_dropped(t, n);
	node_pages_close(t, n);
	/* the kernel keeps the scratch file's size for it until told */
	node_rename(t, 0, "sedAbc123", ".env");
	assert_int_equal(pages_open(t, n, "edited", NULL), NODE_PAGES_AROUND);
	invalidated(t, n);
	assert_int_equal(pages_open(t, n, "edited", NULL), NODE_PAGES_KEEP);
}

static void test_pages_per_node(void **state)
{
	struct node_table *t = *state;
	struct node *a = get(t, 0, ".env"), *b = get(t, 0, "KEY");

	assert_int_equal(pages_open(t, a, "v1", NULL), NODE_PAGES_DROP);
	assert_int_equal(pages_open(t, b, "v2", NULL), NODE_PAGES_DROP);
	node_pages_dropped(t, a);
	node_pages_dropped(t, b);
	assert_int_equal(pages_open(t, a, "v1", NULL), NODE_PAGES_KEEP);
	assert_int_equal(pages_open(t, b, "v2", NULL), NODE_PAGES_KEEP);
}

/* ---- walking an app ---- */

struct walk {
	struct node_table *t;
	uint64_t seen[600];
	size_t n;
};

static void walk_one(void *ctx, uint64_t ino)
{
	struct walk *w = ctx;

	/* called unlocked: fn may take locks, even the table's */
	assert_int_equal(pthread_mutex_trylock(&w->t->lock), 0);
	pthread_mutex_unlock(&w->t->lock);
	assert_true(w->n < sizeof(w->seen) / sizeof(w->seen[0]));
	w->seen[w->n++] = ino;
}

static bool walked(const struct walk *w, uint64_t ino)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->seen[i] == ino)
			return true;
	return false;
}

static void test_each_visits_app(void **state)
{
	struct node_table *t = *state;
	struct walk w = { .t = t };
	uint64_t other = get(t, 1, "DB")->ino;
	char name[16];

	node_each(t, 0, walk_one, &w);
	assert_int_equal(w.n, 0);
	/* more than one batch */
	for (size_t i = 0; i < 520; i++) {
		snprintf(name, sizeof(name), "K%zu", i);
		get(t, 0, name);
	}
	node_each(t, 0, walk_one, &w);
	assert_int_equal(w.n, 520);
	for (size_t i = 0; i < 520; i++) {
		snprintf(name, sizeof(name), "K%zu", i);
		assert_true(walked(&w, get(t, 0, name)->ino));
	}
	assert_false(walked(&w, other));
}

static void test_each_skips_detached(void **state)
{
	struct node_table *t = *state;
	struct walk w = { .t = t };
	uint64_t gone = get(t, 0, "DB")->ino;
	uint64_t kept = get(t, 0, "sedAbc123")->ino;

	node_rename(t, 0, "sedAbc123", "DB");
	node_each(t, 0, walk_one, &w);
	assert_int_equal(w.n, 1);
	assert_true(walked(&w, kept));
	assert_false(walked(&w, gone));
}

static void test_each_file_every_app(void **state)
{
	struct node_table *t = *state;
	struct walk w = { .t = t };
	uint64_t a = get(t, 0, "DB")->ino, b = get(t, 2, "DB")->ino;
	uint64_t c = get(t, 0, "sedAbc123")->ino;

	node_each_file(t, walk_one, &w);
	assert_int_equal(w.n, 3);
	assert_true(walked(&w, a) && walked(&w, b) && walked(&w, c));
	/* renamed over: its inode may still be in the kernel's hands */
	node_rename(t, 0, "sedAbc123", "DB");
	w.n = 0;
	node_each_file(t, walk_one, &w);
	assert_int_equal(w.n, 3);
	assert_true(walked(&w, a));
}

/* Many names, in every app: each keeps its node as the table grows, the
 * same name in two apps is two nodes, and renames are found by their new
 * name only (the lookup is a hash, not a walk of the app's files). */
static void test_many_names(void **state)
{
	struct node_table *t = *state;
	enum { N = 20000 };
	struct node **first = calloc(N, sizeof(*first));
	char name[32];

	assert_non_null(first);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "K%05d", i);
		first[i] = get(t, (size_t)i % NAPPS, name);
		assert_true(get(t, ((size_t)i + 1) % NAPPS, name) != first[i]);
	}
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "K%05d", i);
		assert_ptr_equal(get(t, (size_t)i % NAPPS, name), first[i]);
		assert_string_equal(first[i]->name, name);
	}
	node_rename(t, 0, "K00000", "MOVED");
	assert_ptr_equal(get(t, 0, "MOVED"), first[0]);
	assert_true(get(t, 0, "K00000") != first[0]);
	/* over an existing name: that node is no name's any more */
	node_rename(t, 0, "K00003", "MOVED");
	assert_ptr_equal(get(t, 0, "MOVED"), first[3]);
	assert_string_equal(first[0]->name, "");
	free(first);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* A snapshot: sealed (no plaintext in it), opened back, hashed as
 * node_observe hashes; a node keeps the last, served only for the stamp
 * it was made at. */
static void test_snap_kept_per_stamp(void **state)
{
	struct node_table *t = *state;
	struct node *n = get(t, 0, ".env");
	struct secbuf b = buf("A='S3cr3t-snapAbC123'\n"), out = SECBUF_INIT;
	int conf;
	struct err e = { 0 };
	struct snap *s = snap_seal(&b, NULL, &conf, 7, &e), *got;
	unsigned char h[SNAP_HASH_LEN];

	assert_non_null(s);
	assert_int_equal(s->len, b.len);
	assert_null(memmem(s->ct, s->ctlen, "S3cr3t-snapAbC123", 17));
	snap_hash(&b, h);
	assert_memory_equal(h, s->hash, SNAP_HASH_LEN);
	assert_int_equal(snap_open(s, &out, &e), 0);
	assert_int_equal(out.len, b.len);
	assert_memory_equal(out.data, b.data, b.len);
	assert_null(node_snap(t, n, &conf, 7));
	/* kept once read twice between changes */
	assert_false(node_snap_wanted(t, n, &conf, 7));
	assert_true(node_snap_wanted(t, n, &conf, 7));
	assert_false(node_snap_wanted(t, n, &conf, 8));
	assert_false(node_snap_wanted(t, n, &b, 8));
	node_snap_keep(t, n, s);
	snap_put(s);
	got = node_snap(t, n, &conf, 7);
	assert_ptr_equal(got, s);
	snap_put(got);
	assert_null(node_snap(t, n, &conf, 8));	/* a change since */
	assert_null(node_snap(t, n, &b, 7));	/* another config */
	/* the hash it keeps is the one node_observe compares */
	assert_false(node_observe_hashed(t, n, h));
	assert_false(observe(t, n, "A='S3cr3t-snapAbC123'\n"));
	secbuf_free(&out);
	secbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_folders),
		T(test_files_numbered_after_folders),
		T(test_same_name_same_inode),
		cmocka_unit_test(test_no_apps),
		T(test_rename_keeps_inode),
		T(test_rename_over_retires_target),
		T(test_rename_of_unknown_name),
		T(test_observe_first_sight),
		T(test_observe_unchanged_keeps_mtime),
		T(test_observe_change_bumps_mtime),
		T(test_observe_per_node),
		T(test_rename_forgets_what_was_seen),
		T(test_pages_first_open_drops),
		T(test_pages_drop_pending_drops_again),
		T(test_pages_other_version_waits_around),
		T(test_pages_change_not_invalidated_reads_around),
		T(test_pages_rename_reads_around),
		T(test_pages_per_node),
		T(test_each_visits_app),
		T(test_each_skips_detached),
		T(test_each_file_every_app),
		T(test_many_names),
		T(test_snap_kept_per_stamp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
