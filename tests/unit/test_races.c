/* test_races.c - threads against each other over shared state, for
 * ThreadSanitizer (scripts/test's build-tsan step runs the unit suite
 * there) as much as for its own checks:
 *  - the cache: readers, writers (cache_stored), forgets, expiries and a
 *    provider dropped by a "reload", over the same few entries, while the
 *    refresher revalidates them and the store changes under it;
 *  - the fs core: writers of one app through editor sessions (per-key
 *    files and .env edits, each its own process and key) against readers
 *    of the app's files, over the file store, with the refresher running.
 * Each thread does a fixed amount of work: nothing here waits on a clock
 * but the refresher's own schedule. Run: build/tests/test_races
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/dotenv.h"
#include "base/log.h"
#include "cache/cache.h"
#include "fs/edit.h"
#include "file_test.h"

/* ---- the cache ---- */

/* A store whose entries carry their locator (so a mixed-up answer shows)
 * and a generation that a mutator thread bumps. */
struct fake {
	atomic_int generation;
	atomic_int fetches;
};

static int fake_fetch(void *state, const char *locator, const char *params,
		      struct entry *out, struct err *e)
{
	struct fake *f = state;
	int gen = atomic_load(&f->generation);
	char v[32];

	atomic_fetch_add(&f->fetches, 1);
	snprintf(v, sizeof(v), "race-S3cr3t-%d", gen);
	if (kvmap_set(&out->map, "LOCATOR", locator, strlen(locator)) < 0 ||
	    kvmap_set(&out->map, "V", v, strlen(v)) < 0)
		return err_set(e, ERR_NOMEM, "fake: out of memory");
	snprintf(out->version, sizeof(out->version), "%d", gen);
	return 0;
}

static const struct provider_ops fake_ops = {
	.type = "fake",
	.fetch = fake_fetch,
};

enum { CACHE_THREADS = 6, CACHE_OPS = 1500, LOCATORS = 4 };

struct cache_race {
	struct cache *c;
	struct fake fake;
	struct provider prov[2];
	atomic_int changed;
	atomic_bool done;
};

struct cache_worker {
	struct cache_race *r;
	unsigned seed;
	int bad;
};

static void on_cache_changed(void *ctx, const struct provider *p,
			     const char *locator, const char *params)
{
	struct cache_race *r = ctx;

	atomic_fetch_add(&r->changed, 1);
}

/* One operation on a random entry of a random provider. */
static void cache_step(struct cache_worker *w, struct entry *en)
{
	static const struct cache_policy pol = { 5, 2, 1000 };
	struct cache_race *r = w->r;
	struct provider *p = &r->prov[rand_r(&w->seed) % 2];
	int op = rand_r(&w->seed) % 16;
	char loc[16];
	struct err e;
	const struct kv *kv;

	snprintf(loc, sizeof(loc), "loc-%d", rand_r(&w->seed) % LOCATORS);
	switch (op) {
	case 0:
		cache_forget(r->c, p, loc);
		return;
	case 1:
		cache_expire(r->c, p, loc);
		return;
	case 2:
		if (rand_r(&w->seed) % 8 == 0)	/* a reload dropped it */
			cache_forget_provider(r->c, p);
		return;
	case 3:
		entry_free(en);
		kvmap_set(&en->map, "LOCATOR", loc, strlen(loc));
		cache_stored(r->c, p, loc, en);
		return;
	case 4: {
		struct cache_stats st;

		cache_get_stats(r->c, &st);
		(void)cache_would_fetch(r->c, p, loc, NULL, &pol);
		return;
	}
	default:
		entry_free(en);
		if (cache_fetch(r->c, p, loc, op % 2 ? "a=1" : NULL, &pol, en,
				NULL, &e) < 0) {
			w->bad++;
			return;
		}
		kv = kvmap_get(&en->map, "LOCATOR");
		if (!kv || kv->len != strlen(loc) || memcmp(kv->val, loc, kv->len))
			w->bad++;
	}
}

static void *cache_worker_main(void *arg)
{
	struct cache_worker *w = arg;
	struct entry en = ENTRY_INIT;

	for (int i = 0; i < CACHE_OPS; i++)
		cache_step(w, &en);
	entry_free(&en);
	return NULL;
}

static void *cache_mutator_main(void *arg)
{
	struct cache_race *r = arg;

	while (!atomic_load(&r->done)) {
		atomic_fetch_add(&r->fake.generation, 1);
		usleep(500);
	}
	return NULL;
}

static void test_cache_race(void **state)
{
	struct cache_conf conf = { 20, 4096 };
	struct cache_race r = { 0 };
	struct cache_worker w[CACHE_THREADS];
	pthread_t t[CACHE_THREADS], mutator;
	const struct cache_policy pol = { 5, 2, 1000 };
	struct entry en = ENTRY_INIT;
	struct err e;

	(void)state;
	for (int i = 0; i < 2; i++) {
		r.prov[i].name = i ? "fake2" : "fake1";
		r.prov[i].ops = &fake_ops;
		r.prov[i].state = &r.fake;
	}
	r.c = cache_new(&conf, &e);
	assert_non_null(r.c);
	assert_int_equal(pthread_create(&mutator, NULL, cache_mutator_main, &r), 0);
	for (int i = 0; i < CACHE_THREADS; i++) {
		w[i] = (struct cache_worker){ &r, (unsigned)i * 7919 + 1, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, cache_worker_main,
						&w[i]), 0);
	}
	/* started while they read, as the daemon's is while its hooks
	 * thread already reads */
	usleep(1000);
	assert_int_equal(cache_start_refresher(r.c, on_cache_changed, &r, &e), 0);
	for (int i = 0; i < CACHE_THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].bad, 0);
	}
	/* the refresher has found a change (it runs every 2 ms; keep an
	 * entry read while the store keeps changing until it has) */
	for (int i = 0; i < 10000 && !atomic_load(&r.changed); i++) {
		entry_free(&en);
		assert_int_equal(cache_fetch(r.c, &r.prov[0], "loc-0", NULL,
					     &pol, &en, NULL, &e), 0);
		usleep(1000);
	}
	entry_free(&en);
	assert_true(atomic_load(&r.changed) > 0);
	atomic_store(&r.done, true);
	pthread_join(mutator, NULL);
	cache_free(r.c);	/* stops the refresher */
}

/* ---- the fs core: concurrent writers of one app ---- */

enum { WRITERS = 3, WRITES = 24, READERS = 2, READS = 60 };

struct fs_race {
	char dir[64];
	struct config cfg;
	struct appfs fs;
	struct edit ed;
	atomic_int changed;	/* the edit's changed hook */
	atomic_int refreshed;	/* the cache's changed hook */
	char last[WRITERS][48];	/* each writer's last committed value */
};

struct fs_worker {
	struct fs_race *r;
	int id;
	char err[600];	/* what failed, with the struct err message */
};

static void on_edit_changed(void *ctx, size_t app)
{
	struct fs_race *r = ctx;

	atomic_fetch_add(&r->changed, 1);
}

static void on_fs_refreshed(void *ctx, const struct provider *p,
			    const char *locator, const char *params)
{
	struct fs_race *r = ctx;

	atomic_fetch_add(&r->refreshed, 1);
}

static int worker_fail(struct fs_worker *w, const char *what, const struct err *e)
{
	snprintf(w->err, sizeof(w->err), "writer %d: %s: %s", w->id, what,
		 e->msg);
	return -1;
}

/* echo value > KEY */
static int write_key(struct fs_worker *w, const struct edit_who *who,
		     const char *key, const char *value)
{
	struct edit_handle *h;
	struct err e = { 0 };

	if (edit_open(&w->r->ed, 0, key, who, O_WRONLY | O_TRUNC, &h, &e) < 0)
		return worker_fail(w, "open", &e);
	if (edit_write(h, value, strlen(value), 0, &e) < 0 ||
	    edit_flush(&w->r->ed, h, &e) < 0) {
		edit_release(&w->r->ed, h, &e);
		return worker_fail(w, "write", &e);
	}
	return edit_release(&w->r->ed, h, &e) < 0 ? worker_fail(w, "release", &e) : 0;
}

/* An editor: read .env, change KEY in it, write the whole file back. */
static int edit_env(struct fs_worker *w, const struct edit_who *who,
		    const char *key, const char *value)
{
	struct edit_handle *h;
	struct kvmap m = KVMAP_INIT;
	struct secbuf text = SECBUF_INIT;
	const struct secbuf *snap;
	struct err e = { 0 };
	int rc;

	if (edit_open(&w->r->ed, 0, APP_ENV_NAME, who, O_RDWR, &h, &e) < 0)
		return worker_fail(w, "open .env", &e);
	snap = edit_lock(h);
	rc = dotenv_parse(snap->data ? snap->data : "", snap->len, &m, &e);
	edit_unlock(h);
	if (rc == 0 && (kvmap_set(&m, key, value, strlen(value)) < 0 ||
			dotenv_render(&m, &text, NULL, NULL) < 0))
		rc = err_set(&e, ERR_NOMEM, "out of memory");
	if (rc == 0 && (edit_truncate(h, 0, &e) < 0 ||
			edit_write(h, text.data, text.len, 0, &e) < 0 ||
			edit_flush(&w->r->ed, h, &e) < 0))
		rc = -1;
	if (rc < 0)
		worker_fail(w, ".env edit", &e);
	kvmap_free(&m);
	secbuf_free(&text);
	if (edit_release(&w->r->ed, h, &e) < 0 && rc == 0)
		rc = worker_fail(w, "release .env", &e);
	return rc;
}

static void *writer_main(void *arg)
{
	struct fs_worker *w = arg;
	struct edit_who who = { .pid = 1000 + w->id, .uid = 0, .gid = 0 };
	char key[8], value[48];

	snprintf(key, sizeof(key), "W%d", w->id);
	for (int i = 0; i < WRITES; i++) {
		int rc;

		snprintf(value, sizeof(value), "race-w%d-S3cr3t-%03d", w->id, i);
		rc = i % 2 ? edit_env(w, &who, key, value)
			   : write_key(w, &who, key, value);
		if (rc < 0)
			return NULL;
		strcpy(w->r->last[w->id], value);	/* its own slot */
	}
	return NULL;
}

/* Readers: what cat, ls, getfattr and a refresh request do. */
static void *reader_main(void *arg)
{
	struct fs_worker *w = arg;
	struct fs_race *r = w->r;
	const struct app_conf *app = &r->cfg.apps[0];
	struct edit_who who = { .pid = 2000 + w->id, .uid = 0, .gid = 0 };
	static const char *const names[] = { APP_ENV_NAME, "W0", "W1", "W2" };

	for (int i = 0; i < READS; i++) {
		const char *name = names[i % 4];
		struct secbuf out = SECBUF_INIT;
		struct strv list = { 0 };
		struct app_meta meta;
		struct edit_handle *h;
		struct err e = { 0 };

		if (app_read(&r->fs, app, name, &out, NULL, &e) < 0 ||
		    app_list(&r->fs, app, &list, &e) < 0 ||
		    app_meta(&r->fs, app, name, &meta, &e) < 0 ||
		    edit_open(&r->ed, 0, name, &who, O_RDONLY, &h, &e) < 0) {
			snprintf(w->err, sizeof(w->err), "reader %d: %s: %s",
				 w->id, name, e.msg);
			secbuf_free(&out);
			strv_free(&list);
			return NULL;
		}
		edit_release(&r->ed, h, &e);
		secbuf_free(&out);
		strv_free(&list);
		if (i % 10 == 0)
			app_expire(&r->fs, app);
	}
	return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(path);
}

static void fs_race_open(struct fs_race *r)
{
	char text[1024], path[128];
	struct err e = { 0 };

	strcpy(r->dir, "/tmp/secretfs-test-races-XXXXXX");
	assert_non_null(mkdtemp(r->dir));
	snprintf(path, sizeof(path), "%s/store", r->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	write_file(r->dir, "store/billing.env",
		   "W0='race-w0-S3cr3t-start'\nW1='race-w1-S3cr3t-start'\n"
		   "W2='race-w2-S3cr3t-start'\n");
	snprintf(text, sizeof(text),
		 "[secretfs]\nttl = 20ms\nrefresh = 10ms\n"
		 "[provider local]\ntype = file\ndirectory = %s/store\n"
		 "[app billing]\nstore = local://billing\nmode = 0600\n",
		 r->dir);
	write_file(r->dir, "secretfs.conf", text);
	snprintf(path, sizeof(path), "%s/secretfs.conf", r->dir);
	if (config_load(path, &r->cfg, &e) < 0)
		fail_msg("config: %s", e.msg);
	assert_int_equal(appfs_open(&r->fs, &r->cfg, &e), 0);
	assert_int_equal(edit_init(&r->ed, &r->fs, &r->cfg, on_edit_changed,
				   r), 0);
	assert_int_equal(cache_start_refresher(r->fs.cache, on_fs_refreshed,
					       r, &e), 0);
}

static void fs_race_close(struct fs_race *r)
{
	edit_destroy(&r->ed);
	appfs_close(&r->fs);	/* stops the refresher with the cache */
	config_free(&r->cfg);
	nftw(r->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* What the store's file holds for key. */
static void assert_stored(struct fs_race *r, const char *key, const char *want)
{
	char path[128];
	struct secbuf text = SECBUF_INIT;
	struct kvmap m = KVMAP_INIT;
	const struct kv *kv;
	struct err e = { 0 };
	int fd;

	snprintf(path, sizeof(path), "%s/store/billing.env", r->dir);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(secbuf_read_fd(&text, fd, 1 << 20), 0);
	close(fd);
	assert_int_equal(dotenv_parse(text.data, text.len, &m, &e), 0);
	kv = kvmap_get(&m, key);
	assert_non_null(kv);
	assert_int_equal(kv->len, strlen(want));
	assert_memory_equal(kv->val, want, kv->len);
	kvmap_free(&m);
	secbuf_free(&text);
}

static void test_concurrent_writers(void **state)
{
	struct fs_race *r = calloc(1, sizeof(*r));
	struct fs_worker w[WRITERS + READERS];
	pthread_t t[WRITERS + READERS];

	(void)state;
	assert_non_null(r);
	fs_race_open(r);
	for (int i = 0; i < WRITERS + READERS; i++) {
		w[i] = (struct fs_worker){ .r = r,
			.id = i < WRITERS ? i : i - WRITERS };
		assert_int_equal(pthread_create(&t[i], NULL,
						i < WRITERS ? writer_main : reader_main,
						&w[i]), 0);
	}
	for (int i = 0; i < WRITERS + READERS; i++) {
		pthread_join(t[i], NULL);
		if (w[i].err[0])
			fail_msg("%s", w[i].err);
	}
	/* every writer's last value is the store's: no write lost another's */
	for (int i = 0; i < WRITERS; i++) {
		char key[8];

		snprintf(key, sizeof(key), "W%d", i);
		assert_stored(r, key, r->last[i]);
	}
	assert_int_equal(atomic_load(&r->changed), WRITERS * WRITES);
	fs_race_close(r);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_race),
		cmocka_unit_test(test_concurrent_writers),
	};

	if (sodium_init() < 0)
		return 1;
	log_init(LOG_LVL_WARN, false);	/* not every "W0 written" */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
