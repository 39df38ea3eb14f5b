/* test_reader.c - read-only opens (fs/reader.c): what the kernel is told
 * of each (invalidate, through the page cache or around it, keep its
 * pages), and the sealed .env an open keeps once it is read twice between
 * changes. Handles are made here as edit_open leaves a read-only one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "fs/reader.h"

#define MOUNTED ((time_t)1000)

static int setup(void **state)
{
	struct node_table *t = calloc(1, sizeof(*t));
	struct err e = { 0 };

	assert_int_equal(node_init(t, 1, MOUNTED, &e), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	node_destroy(*state);
	free(*state);
	return 0;
}

static struct node *get(struct node_table *t, const char *name)
{
	struct err e = { 0 };
	struct node *n = node_get(t, 0, name, &e);

	if (!n)
		fail_msg("node_get %s: %s", name, e.msg);
	return n;
}

/* A read-only handle holding text, as a read made it. */
static struct edit_handle *handle(const char *text)
{
	struct edit_handle *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	assert_int_equal(secbuf_puts(&h->data, text), 0);
	return h;
}

static void handle_free(struct edit_handle *h)
{
	secbuf_free(&h->data);
	snap_put(h->snap);
	free(h);
}

/* Without the kernel cache every open is direct_io; a change it finds is
 * invalidated, once. */
static void test_no_kernel_cache(void **state)
{
	struct node_table *t = *state;
	struct node *n = get(t, "KEY");
	struct app_conf a = { 0 };
	struct edit_handle *h1 = handle("one"), *h2 = handle("one"),
			   *h3 = handle("two");
	struct reader_open ro;

	reader_open(t, n, &a, h1, 1, false, &ro);
	assert_false(ro.cached);
	reader_open(t, n, &a, h2, 1, false, &ro);
	assert_false(ro.inval);
	assert_false(ro.cached);
	reader_open(t, n, &a, h3, 2, false, &ro);
	assert_true(ro.inval);
	assert_false(h1->paged || h2->paged || h3->paged);
	handle_free(h1);
	handle_free(h2);
	handle_free(h3);
}

/* With it, opens of one version share the page cache; an open of another
 * while they are open goes around it, and the next one after they are
 * gone (and the kernel was told of the change) drops the pages and
 * takes it over. */
static void test_one_version_through_the_cache(void **state)
{
	struct node_table *t = *state;
	struct node *n = get(t, "KEY");
	struct app_conf a = { 0 };
	struct edit_handle *old = handle("old"), *new1 = handle("new"),
			   *new2 = handle("new"), *new3 = handle("new");
	struct reader_open ro;

	reader_open(t, n, &a, old, 1, true, &ro);
	assert_true(ro.cached);
	assert_true(old->paged);
	reader_dropped(t, n->ino, old);	/* its open returned */
	reader_open(t, n, &a, new1, 2, true, &ro);
	assert_true(ro.inval);
	assert_false(ro.cached);	/* old still reads the pages */
	assert_false(new1->paged);
	/* the adapter's invalidation of that change reaches the kernel */
	node_inval_done(t, n->ino, node_inval_begin(t, n->ino));
	/* old closes: the next open drops its pages */
	node_pages_close(t, n);
	old->paged = false;
	reader_open(t, n, &a, new2, 2, true, &ro);
	assert_true(ro.cached);
	assert_false(ro.keep);
	/* once the kernel has dropped them, opens of it keep the pages */
	reader_dropped(t, n->ino, new2);
	reader_open(t, n, &a, new3, 2, true, &ro);
	assert_true(ro.cached);
	assert_true(ro.keep);
	assert_false(ro.inval);
	handle_free(old);
	handle_free(new1);
	handle_free(new2);
	handle_free(new3);
}

/* A .env read twice between changes is kept sealed: the second open holds
 * the sealed copy, not its plaintext, and a later open takes it as long
 * as the stamp holds. Other files keep nothing. */
static void test_env_kept_sealed_once_read_twice(void **state)
{
	struct node_table *t = *state;
	struct node *env = get(t, APP_ENV_NAME), *key = get(t, "KEY");
	struct app_conf a = { 0 };
	const char *text = "A='S3cr3t-readerQ7x'\n";
	struct edit_handle *h1 = handle(text), *h2 = handle(text),
			   *k1 = handle(text), *k2 = handle(text);
	struct reader_open ro;
	struct snap *s;

	reader_open(t, env, &a, h1, 5, true, &ro);
	assert_null(h1->snap);
	assert_int_equal(h1->data.len, strlen(text));
	reader_open(t, env, &a, h2, 5, true, &ro);
	assert_non_null(h2->snap);
	assert_int_equal(h2->data.len, 0);	/* plaintext dropped */
	assert_true(ro.cached);
	s = node_snap(t, env, &a, 5);
	assert_ptr_equal(s, h2->snap);
	snap_put(s);
	assert_null(node_snap(t, env, &a, 6));	/* a change since */
	reader_open(t, key, &a, k1, 5, false, &ro);
	reader_open(t, key, &a, k2, 5, false, &ro);
	assert_null(k2->snap);
	handle_free(h1);
	handle_free(h2);
	handle_free(k1);
	handle_free(k2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_kernel_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_version_through_the_cache,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_kept_sealed_once_read_twice,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
