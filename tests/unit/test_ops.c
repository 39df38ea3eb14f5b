/* test_ops.c - unit tests for the invalidation queue of the FUSE adapter
 * (fs/ops.c), which this file includes to reach its static functions.
 *
 * realloc and fuse_lowlevel_notify_inval_inode are replaced, for ops.c
 * only, by fakes: one that fails on demand, one that records the inodes it
 * is asked to invalidate (no FUSE session exists here). Everything else in
 * ops.c is FUSE glue, exercised by the integration tests. The concurrent
 * test is also one of scripts/test's ThreadSanitizer runs.
 * Run: build/tests/test_ops
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <fuse_lowlevel.h>

static bool fail_realloc;

static void *fake_realloc(void *p, size_t n)
{
	return fail_realloc ? NULL : realloc(p, n);
}

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static fuse_ino_t seen[1 << 17];
static size_t nseen;

static int fake_notify(struct fuse_session *se, fuse_ino_t ino, off_t off,
		       off_t len)
{
	pthread_mutex_lock(&seen_lock);
	if (nseen < sizeof(seen) / sizeof(seen[0]))
		seen[nseen++] = ino;
	pthread_mutex_unlock(&seen_lock);
	return 0;
}

#define realloc fake_realloc
#define fuse_lowlevel_notify_inval_inode fake_notify
#include "fs/ops.c"
#undef realloc
#undef fuse_lowlevel_notify_inval_inode

/* ---- helpers ---- */

struct fixture {
	struct config cfg;
	struct app_conf app;
	struct ops_fs ofs;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->app.name = "app";
	fx->cfg.apps = &fx->app;
	fx->cfg.napps = 1;
	assert_int_equal(ops_fs_init(&fx->ofs, NULL, &fx->cfg), 0);
	pthread_mutex_init(&fx->ofs.inval.lock, NULL);
	pthread_cond_init(&fx->ofs.inval.cond, NULL);
	fail_realloc = false;
	nseen = 0;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	fail_realloc = false;
	ops_fs_destroy(&fx->ofs);	/* stops the thread if it runs */
	pthread_cond_destroy(&fx->ofs.inval.cond);
	pthread_mutex_destroy(&fx->ofs.inval.lock);
	free(fx);
	return 0;
}

static void start_thread(struct ops_fs *ofs)
{
	assert_int_equal(pthread_create(&ofs->inval.thread, NULL,
					ops_inval_thread, ofs), 0);
	ofs->inval.running = true;
}

static size_t seen_count(void)
{
	size_t n;

	pthread_mutex_lock(&seen_lock);
	n = nseen;
	pthread_mutex_unlock(&seen_lock);
	return n;
}

/* Wait (at most 5 s) until the thread has invalidated want inodes. */
static void wait_seen(size_t want)
{
	struct timespec ts = { 0, 1000 * 1000 };

	for (int i = 0; i < 5000 && seen_count() < want; i++)
		nanosleep(&ts, NULL);
	if (seen_count() < want)
		fail_msg("%zu inodes invalidated, want %zu", seen_count(), want);
}

static bool was_seen(fuse_ino_t ino)
{
	bool found = false;

	pthread_mutex_lock(&seen_lock);
	for (size_t i = 0; i < nseen && !found; i++)
		found = seen[i] == ino;
	pthread_mutex_unlock(&seen_lock);
	return found;
}

/* ---- tests ---- */

static void test_queue_grows_and_drains(void **state)
{
	struct fixture *fx = *state;
	struct ops_fs *ofs = &fx->ofs;

	for (fuse_ino_t ino = 100; ino < 300; ino++)
		ops_inval_queue(ofs, ino);
	assert_int_equal(ofs->inval.n, 200);
	assert_int_equal(ofs->inval.cap, 256);
	start_thread(ofs);
	wait_seen(200);
	for (fuse_ino_t ino = 100; ino < 300; ino++)
		assert_true(was_seen(ino));
}

/* A queue that cannot grow keeps its buffer and size (it leaked the one
 * and doubled the other, then wrote through NULL), and the invalidation
 * is not lost: every file is invalidated instead. */
static void test_failed_growth_keeps_queue_and_freshness(void **state)
{
	struct fixture *fx = *state;
	struct ops_fs *ofs = &fx->ofs;
	struct err e;
	fuse_ino_t first = node_get(&ofs->nodes, 0, ".env", &e)->ino;
	fuse_ino_t *q;

	assert_non_null(node_get(&ofs->nodes, 0, "A", &e));
	assert_non_null(node_get(&ofs->nodes, 0, "B", &e));
	for (int i = 0; i < 64; i++)
		ops_inval_queue(ofs, first + 1);
	q = ofs->inval.q;
	assert_non_null(q);
	assert_int_equal(ofs->inval.cap, 64);

	fail_realloc = true;
	ops_inval_queue(ofs, first + 2);
	assert_ptr_equal(ofs->inval.q, q);
	assert_int_equal(ofs->inval.cap, 64);
	ops_inval_queue(ofs, first + 2);	/* wrote through NULL */
	assert_ptr_equal(ofs->inval.q, q);
	fail_realloc = false;

	start_thread(ofs);
	wait_seen(3);
	for (fuse_ino_t ino = first; ino < first + 3; ino++)
		assert_true(was_seen(ino));
}

/* The cap on the queue's length is handled the same way. */
static void test_queue_limit_invalidates_everything(void **state)
{
	struct fixture *fx = *state;
	struct ops_fs *ofs = &fx->ofs;
	struct err e;
	fuse_ino_t first = node_get(&ofs->nodes, 0, ".env", &e)->ino;

	assert_non_null(node_get(&ofs->nodes, 0, "K", &e));
	ofs->inval.cap = OPS_INVAL_MAX;
	ofs->inval.n = OPS_INVAL_MAX;
	ofs->inval.q = malloc(OPS_INVAL_MAX * sizeof(*ofs->inval.q));
	assert_non_null(ofs->inval.q);
	for (size_t i = 0; i < OPS_INVAL_MAX; i++)
		ofs->inval.q[i] = first;
	ops_inval_queue(ofs, first + 1);
	assert_int_equal(ofs->inval.cap, OPS_INVAL_MAX);
	start_thread(ofs);
	wait_seen(2);
	assert_true(was_seen(first));
	assert_true(was_seen(first + 1));
}

/* What the refresher and the request threads do at once: look files up
 * (the node table grows), queue their inodes and whole apps, while the
 * thread drains and a reload waits for it. Nothing queued is lost. */
enum { PRODUCERS = 4, PER_PRODUCER = 300 };

struct producer {
	struct ops_fs *ofs;
	int id;
	fuse_ino_t inos[PER_PRODUCER];
};

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	struct err e;
	char name[32];

	for (int i = 0; i < PER_PRODUCER; i++) {
		struct node *n;

		snprintf(name, sizeof(name), "K%d_%d", p->id, i);
		n = node_get(&p->ofs->nodes, 0, name, &e);
		if (!n)
			return NULL;	/* inos[i] stays 0: the test fails */
		p->inos[i] = n->ino;
		ops_inval_queue(p->ofs, n->ino);
		if (i % 100 == 99)
			ops_inval_app(p->ofs, 0);
		if (p->id == 0 && i % 50 == 0)
			ops_inval_drain(&p->ofs->inval, 1000);
	}
	return NULL;
}

static void test_concurrent_producers(void **state)
{
	struct fixture *fx = *state;
	struct producer p[PRODUCERS];
	pthread_t t[PRODUCERS];

	start_thread(&fx->ofs);
	for (int i = 0; i < PRODUCERS; i++) {
		p[i] = (struct producer){ .ofs = &fx->ofs, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, producer_main,
						&p[i]), 0);
	}
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(t[i], NULL);
	ops_inval_drain(&fx->ofs.inval, 5000);
	for (int i = 0; i < PRODUCERS; i++)
		for (int j = 0; j < PER_PRODUCER; j++) {
			assert_true(p[i].inos[j] != 0);
			assert_true(was_seen(p[i].inos[j]));
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_queue_grows_and_drains,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_growth_keeps_queue_and_freshness,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_limit_invalidates_everything,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_producers,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
