/* test_cache.c - unit tests for cache/cache.c: ttl, negative caching,
 * stale-if-error, single-flight misses, the background refresher and
 * changed(), LRU eviction, cache_stored/cache_forget, binary and large
 * values, large entries sealed in chunks and read a few keys at a time
 * (cache_fetch_keys), ciphertext never holding plaintext, and bytes per
 * cached secret.
 *
 * A fake provider (counters, delay, failure injection, a mutable entry)
 * stands in for a secret store. Valgrind:
 *   valgrind --error-exitcode=1 --leak-check=full build/tests/test_cache
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <malloc.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"

struct fake {
	pthread_mutex_t lock;
	struct entry cur;
	bool missing;		/* answer ERR_NOTFOUND */
	enum err_code fail;	/* ERR_OK: answer normally */
	int delay_ms;
	bool add_locator;	/* add LOCATOR=<locator> (and PARAMS) */
	atomic_int fetches;
};

struct fixture {
	struct fake fake;
	struct provider prov;
	struct cache *c;
	atomic_int changed;
	char changed_loc[64];
};

static int fake_fetch(void *state, const char *locator, const char *params,
		      struct entry *out, struct err *e)
{
	struct fake *f = state;
	int rc = 0;

	atomic_fetch_add(&f->fetches, 1);
	if (f->delay_ms)
		usleep(f->delay_ms * 1000);
	pthread_mutex_lock(&f->lock);
	if (f->fail != ERR_OK)
		rc = err_set(e, f->fail, "fake: %s: injected failure", locator);
	else if (f->missing)
		rc = err_set(e, ERR_NOTFOUND, "fake: %s: no such entry", locator);
	else if (kvmap_copy(&out->map, &f->cur.map) < 0)
		rc = err_set(e, ERR_NOMEM, "fake: out of memory");
	else
		strcpy(out->version, f->cur.version);
	if (rc == 0 && f->add_locator) {
		kvmap_set(&out->map, "LOCATOR", locator, strlen(locator));
		if (params)
			kvmap_set(&out->map, "PARAMS", params, strlen(params));
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

static const struct provider_ops fake_ops = {
	.type = "fake",
	.fetch = fake_fetch,
};

static const struct cache_policy long_ttl = { 60000, 0, 600000 };

static void fake_set(struct fake *f, const char *key, const void *val,
		     size_t len, const char *version)
{
	pthread_mutex_lock(&f->lock);
	assert_int_equal(kvmap_set(&f->cur.map, key, val, len), 0);
	snprintf(f->cur.version, sizeof(f->cur.version), "%s", version);
	pthread_mutex_unlock(&f->lock);
}

static void fake_fail(struct fake *f, enum err_code code, bool missing)
{
	pthread_mutex_lock(&f->lock);
	f->fail = code;
	f->missing = missing;
	pthread_mutex_unlock(&f->lock);
}

static int fake_count(struct fixture *fx)
{
	return atomic_load(&fx->fake.fetches);
}

static struct fixture *fixture_new(long negative_ttl_ms, size_t max_bytes)
{
	struct cache_conf conf = { negative_ttl_ms, max_bytes };
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct err e;

	assert_non_null(fx);
	pthread_mutex_init(&fx->fake.lock, NULL);
	fx->fake.cur = (struct entry)ENTRY_INIT;
	fx->prov.name = "fake";
	fx->prov.ops = &fake_ops;
	fx->prov.state = &fx->fake;
	fx->c = cache_new(&conf, &e);
	assert_non_null(fx->c);
	fake_set(&fx->fake, "A", "one", 3, "v1");
	return fx;
}

static int setup(void **state)
{
	*state = fixture_new(100, 0);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	cache_free(fx->c);
	entry_free(&fx->fake.cur);
	pthread_mutex_destroy(&fx->fake.lock);
	free(fx);
	return 0;
}

static void sleep_ms(long ms)
{
	usleep(ms * 1000);
}

static int get(struct fixture *fx, const char *loc, const char *params,
	       const struct cache_policy *pol, struct entry *out,
	       struct cache_info *info, struct err *e)
{
	entry_free(out);
	return cache_fetch(fx->c, &fx->prov, loc, params, pol, out, info, e);
}

static void assert_val(const struct entry *en, const char *key,
		       const char *val)
{
	const struct kv *kv = kvmap_get(&en->map, key);

	assert_non_null(kv);
	assert_int_equal(kv->len, strlen(val));
	assert_memory_equal(kv->val, val, kv->len);
}

static void test_hit_within_ttl(void **state)
{
	struct fixture *fx = *state;
	struct entry en = ENTRY_INIT;
	struct cache_info info;
	struct cache_stats st;
	struct err e;

	assert_int_equal(get(fx, "db", NULL, &long_ttl, &en, &info, &e), 0);
	assert_val(&en, "A", "one");
	assert_string_equal(en.version, "v1");
	assert_false(info.stale);
	assert_string_equal(info.error, "");
	fake_set(&fx->fake, "A", "two", 3, "v2");
	assert_int_equal(get(fx, "db", NULL, &long_ttl, &en, &info, &e), 0);
	assert_val(&en, "A", "one");	/* still within ttl */
	assert_string_equal(en.version, "v1");
	assert_true(info.age_ms >= 0 && info.age_ms < 1000);
	assert_int_equal(fake_count(fx), 1);
	cache_get_stats(fx->c, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.fetches, 1);
	assert_int_equal(st.entries, 1);
	assert_true(st.bytes > 0);
	entry_free(&en);
}

static void test_refetch_past_ttl(void **state)
{
	struct fixture *fx = *state;
	struct cache_policy pol = { 30, 0, 10000 };
	struct entry en = ENTRY_INIT;
	struct cache_info info;
	struct err e;

	assert_int_equal(get(fx, "db", NULL, &pol, &en, NULL, &e), 0);
	fake_set(&fx->fake, "A", "two", 3, "v2");
	sleep_ms(50);
	assert_int_equal(get(fx, "db", NULL, &pol, &en, &info, &e), 0);
	assert_val(&en, "A", "two");
	assert_string_equal(en.version, "v2");
	assert_false(info.stale);
	assert_int_equal(fake_count(fx), 2);
	entry_free(&en);
}

static void test_negative_caching(void **state)
{
	struct fixture *fx = *state;	/* negative_ttl 100 ms */
	struct entry en = ENTRY_INIT;
	struct err e;

	fake_fail(&fx->fake, ERR_OK, true);
	assert_int_equal(get(fx, "gone", NULL, &long_ttl, &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "gone"));
	assert_int_equal(get(fx, "gone", NULL, &long_ttl, &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_int_equal(en.map.n, 0);
	assert_int_equal(fake_count(fx), 1);
	/* it appears: seen once the negative entry expires */
	fake_fail(&fx->fake, ERR_OK, false);
	assert_int_equal(get(fx, "gone", NULL, &long_ttl, &en, NULL, &e), -1);
	sleep_ms(150);
	assert_int_equal(get(fx, "gone", NULL, &long_ttl, &en, NULL, &e), 0);
	assert_val(&en, "A", "one");
	assert_int_equal(fake_count(fx), 2);
	entry_free(&en);
}

static void test_stale_if_error(void **state)
{
	struct fixture *fx = *state;
	struct cache_policy pol = { 30, 0, 300 };
	struct entry en = ENTRY_INIT;
	struct cache_info info;
	struct cache_stats st;
	struct err e;

	assert_int_equal(get(fx, "db", NULL, &pol, &en, NULL, &e), 0);
	fake_fail(&fx->fake, ERR_PROVIDER, false);
	sleep_ms(50);
	assert_int_equal(get(fx, "db", NULL, &pol, &en, &info, &e), 0);
	assert_val(&en, "A", "one");
	assert_true(info.stale);
	assert_true(info.age_ms >= 50);
	assert_non_null(strstr(info.error, "injected failure"));
	assert_null(strstr(info.error, "one"));
	assert_int_equal(fake_count(fx), 2);
	cache_get_stats(fx->c, &st);
	assert_int_equal(st.stale_served, 1);

	/* past max_stale: the error */
	sleep_ms(300);
	assert_int_equal(get(fx, "db", NULL, &pol, &en, &info, &e), -1);
	assert_int_equal(e.code, ERR_PROVIDER);
	assert_non_null(strstr(e.msg, "db"));
	assert_int_equal(en.map.n, 0);
	assert_int_equal(fake_count(fx), 3);

	/* the provider is back */
	fake_fail(&fx->fake, ERR_OK, false);
	sleep_ms(40);
	assert_int_equal(get(fx, "db", NULL, &pol, &en, &info, &e), 0);
	assert_false(info.stale);
	assert_string_equal(info.error, "");
	entry_free(&en);
}

/* A provider that just failed is not asked again by every read. */
static void test_failure_backoff(void **state)
{
	struct fixture *fx = *state;
	struct cache_policy pol = { 300, 0, 10000 };
	struct entry en = ENTRY_INIT;
	struct cache_info info;
	struct err e;

	assert_int_equal(get(fx, "db", NULL, &pol, &en, NULL, &e), 0);
	fake_fail(&fx->fake, ERR_IO, false);
	sleep_ms(320);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(get(fx, "db", NULL, &pol, &en, &info, &e), 0);
		assert_true(info.stale);
	}
	assert_int_equal(fake_count(fx), 2);
	sleep_ms(320);
	assert_int_equal(get(fx, "db", NULL, &pol, &en, &info, &e), 0);
	assert_true(info.stale);
	assert_int_equal(fake_count(fx), 3);

	/* a cold entry whose fetch failed answers the error meanwhile */
	assert_int_equal(get(fx, "cold", NULL, &pol, &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_IO);
	assert_int_equal(get(fx, "cold", NULL, &pol, &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_IO);
	assert_int_equal(fake_count(fx), 4);
	entry_free(&en);
}

static void test_real_answers_not_masked(void **state)
{
	struct fixture *fx = *state;
	struct cache_policy pol = { 30, 0, 100000 };
	struct entry en = ENTRY_INIT;
	struct err e;

	assert_int_equal(get(fx, "db", NULL, &pol, &en, NULL, &e), 0);
	assert_int_equal(get(fx, "acl", NULL, &pol, &en, NULL, &e), 0);
	fake_fail(&fx->fake, ERR_OK, true);
	sleep_ms(50);
	assert_int_equal(get(fx, "db", NULL, &pol, &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_int_equal(en.map.n, 0);
	/* the deletion is remembered (negative_ttl), not the old value */
	assert_int_equal(get(fx, "db", NULL, &pol, &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);

	fake_fail(&fx->fake, ERR_ACCESS, false);
	assert_int_equal(get(fx, "acl", NULL, &pol, &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	assert_int_equal(en.map.n, 0);
	assert_int_equal(get(fx, "acl", NULL, &pol, &en, NULL, &e), -1);
	assert_int_equal(e.code, ERR_ACCESS);
	entry_free(&en);
}

struct reader {
	struct fixture *fx;
	pthread_barrier_t *start;
	const struct cache_policy *pol;
	int rc;
	bool ok;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct entry en = ENTRY_INIT;
	const struct kv *kv;
	struct err e;

	pthread_barrier_wait(r->start);
	r->rc = cache_fetch(r->fx->c, &r->fx->prov, "hot", NULL, r->pol, &en,
			    NULL, &e);
	kv = kvmap_get(&en.map, "A");
	r->ok = r->rc == 0 && kv && kv->len == 3 && !memcmp(kv->val, "one", 3);
	entry_free(&en);
	return NULL;
}

static void test_single_flight(void **state)
{
	enum { N = 200 };
	struct fixture *fx = *state;
	static struct reader r[N];
	static pthread_t t[N];
	pthread_barrier_t start;
	struct cache_stats st;

	fx->fake.delay_ms = 50;
	pthread_barrier_init(&start, NULL, N);
	for (int i = 0; i < N; i++) {
		r[i] = (struct reader){ fx, &start, &long_ttl, -1, false };
		assert_int_equal(pthread_create(&t[i], NULL, reader_main,
						&r[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	assert_int_equal(fake_count(fx), 1);
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].rc, 0);
		assert_true(r[i].ok);
	}
	cache_get_stats(fx->c, &st);
	assert_int_equal(st.fetches, 1);
	assert_int_equal(st.hits + st.misses, N);
}

static void on_changed(void *ctx, const struct provider *p,
		       const char *locator, const char *params)
{
	struct fixture *fx = ctx;

	assert_ptr_equal(p, &fx->prov);
	snprintf(fx->changed_loc, sizeof(fx->changed_loc), "%s%s%s", locator,
		 params ? "?" : "", params ? params : "");
	atomic_fetch_add(&fx->changed, 1);
}

/* Read "db" every 20 ms for ms milliseconds; the last value into en. */
static void read_for(struct fixture *fx, const struct cache_policy *pol,
		     long ms, struct entry *en)
{
	struct err e;

	for (long t = 0; t < ms; t += 20) {
		assert_int_equal(get(fx, "db", NULL, pol, en, NULL, &e), 0);
		sleep_ms(20);
	}
}

static void test_refresher(void **state)
{
	struct fixture *fx = *state;
	struct cache_policy pol = { 5000, 100, 60000 };
	struct entry en = ENTRY_INIT;
	struct cache_stats st;
	struct err e;
	int n;

	assert_int_equal(cache_start_refresher(fx->c, on_changed, fx, &e), 0);
	read_for(fx, &pol, 600, &en);
	n = fake_count(fx);
	assert_true(n >= 4);	/* ~ one per 100 ms in the background */
	assert_int_equal(atomic_load(&fx->changed), 0);
	cache_get_stats(fx->c, &st);
	assert_int_equal(st.misses, 1);	/* no reader ever waited */

	fake_set(&fx->fake, "A", "two", 3, "v2");
	read_for(fx, &pol, 400, &en);
	assert_int_equal(atomic_load(&fx->changed), 1);
	assert_string_equal(fx->changed_loc, "db");
	assert_val(&en, "A", "two");
	read_for(fx, &pol, 400, &en);
	assert_int_equal(atomic_load(&fx->changed), 1);
	assert_true(fake_count(fx) >= n + 6);
	cache_get_stats(fx->c, &st);
	assert_int_equal(st.misses, 1);

	/* the same map under a new version is a change too */
	fake_set(&fx->fake, "A", "two", 3, "v3");
	read_for(fx, &pol, 300, &en);
	assert_int_equal(atomic_load(&fx->changed), 2);
	assert_string_equal(en.version, "v3");

	/* deleted: a change as well */
	fake_fail(&fx->fake, ERR_OK, true);
	sleep_ms(300);
	assert_int_equal(atomic_load(&fx->changed), 3);
	entry_free(&en);
}

/* Durations at the top of the range (config bounds them, the cache must
 * not rely on it): no overflow (UBSan), no refresh long before it is due. */
static void test_extreme_policy(void **state)
{
	struct fixture *fx = *state;
	struct cache_policy huge = { LONG_MAX, LONG_MAX, LONG_MAX };
	struct cache_policy short_ttl = { 1000, LONG_MAX, LONG_MAX };
	struct entry en = ENTRY_INIT;
	struct err e;

	assert_int_equal(cache_start_refresher(fx->c, NULL, NULL, &e), 0);
	assert_int_equal(get(fx, "db", NULL, &huge, &en, NULL, &e), 0);
	assert_int_equal(get(fx, "db2", NULL, &short_ttl, &en, NULL, &e), 0);
	/* the refresher was woken by the new policy: let it pass over both */
	sleep_ms(200);
	assert_int_equal(get(fx, "db", NULL, &huge, &en, NULL, &e), 0);
	assert_val(&en, "A", "one");
	assert_int_equal(fake_count(fx), 2);
	entry_free(&en);
}

/* Entries nobody reads stop being refreshed. */
static void test_refresher_idle(void **state)
{
	struct fixture *fx = *state;
	struct cache_policy pol = { 100, 30, 60000 };
	struct entry en = ENTRY_INIT;
	struct err e;
	int n;

	assert_int_equal(cache_start_refresher(fx->c, NULL, NULL, &e), 0);
	assert_int_equal(get(fx, "db", NULL, &pol, &en, NULL, &e), 0);
	sleep_ms(250);
	assert_true(fake_count(fx) >= 3);	/* refreshed while recent */
	sleep_ms(150);
	n = fake_count(fx);
	sleep_ms(300);
	assert_int_equal(fake_count(fx), n);	/* not read for > 3 ttl */
	entry_free(&en);
}

/* Entries whose fetch is failing are not retried on every tick. */
static void test_refresher_failing(void **state)
{
	struct fixture *fx = *state;
	struct cache_policy pol = { 5000, 100, 60000 };
	struct entry en = ENTRY_INIT;
	struct cache_info info;
	struct err e;
	int n;

	assert_int_equal(cache_start_refresher(fx->c, NULL, NULL, &e), 0);
	assert_int_equal(get(fx, "db", NULL, &pol, &en, NULL, &e), 0);
	fake_fail(&fx->fake, ERR_PROVIDER, false);
	n = fake_count(fx);
	read_for(fx, &pol, 500, &en);
	assert_true(fake_count(fx) >= n + 2);
	assert_true(fake_count(fx) <= n + 7);
	/* within ttl the value is still fresh; the error is reported */
	assert_int_equal(get(fx, "db", NULL, &pol, &en, &info, &e), 0);
	assert_false(info.stale);
	assert_non_null(strstr(info.error, "injected"));
	assert_val(&en, "A", "one");
	entry_free(&en);
}

static void test_lru_eviction(void **state)
{
	struct fixture *fx = fixture_new(100, 6 * 1024);
	struct entry en = ENTRY_INIT;
	struct cache_stats st;
	char loc[32], val[600];
	struct err e;

	(void)state;
	memset(val, 'x', sizeof(val));
	fake_set(&fx->fake, "PAD", val, sizeof(val), "v1");
	fx->fake.add_locator = true;
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 30; i++) {
			assert_int_equal(get(fx, "hot", NULL, &long_ttl, &en,
					     NULL, &e), 0);
			assert_val(&en, "LOCATOR", "hot");
			snprintf(loc, sizeof(loc), "loc-%d", i);
			assert_int_equal(get(fx, loc, NULL, &long_ttl, &en,
					     NULL, &e), 0);
			assert_val(&en, "LOCATOR", loc);
			cache_get_stats(fx->c, &st);
			assert_true(st.bytes <= 6 * 1024);
		}
	}
	cache_get_stats(fx->c, &st);
	assert_true(st.evictions >= 50);
	assert_true(st.entries < 10);
	/* hot stayed (read before each insert), the others came back */
	assert_int_equal(fake_count(fx), 1 + 60);
	teardown((void **)&fx);
	entry_free(&en);
}

static void test_stored_forget(void **state)
{
	struct fixture *fx = *state;
	struct entry en = ENTRY_INIT, w = ENTRY_INIT;
	struct cache_info info;
	struct err e;

	fx->fake.add_locator = true;
	assert_int_equal(get(fx, "db", NULL, &long_ttl, &en, NULL, &e), 0);
	assert_int_equal(get(fx, "db", "version=3", &long_ttl, &en, NULL, &e), 0);
	assert_val(&en, "PARAMS", "version=3");
	assert_int_equal(get(fx, "other", NULL, &long_ttl, &en, NULL, &e), 0);
	assert_int_equal(fake_count(fx), 3);

	/* a write: the writer's next read sees it without a fetch */
	assert_int_equal(kvmap_set(&w.map, "A", "written", 7), 0);
	strcpy(w.version, "v9");
	cache_stored(fx->c, &fx->prov, "db", &w);
	assert_int_equal(get(fx, "db", NULL, &long_ttl, &en, &info, &e), 0);
	assert_val(&en, "A", "written");
	assert_null(kvmap_get(&en.map, "LOCATOR"));
	assert_string_equal(en.version, "v9");
	assert_false(info.stale);
	assert_int_equal(fake_count(fx), 3);
	/* the params variant is a different entry */
	assert_int_equal(get(fx, "db", "version=3", &long_ttl, &en, NULL, &e), 0);
	assert_val(&en, "A", "one");
	assert_int_equal(fake_count(fx), 3);

	/* forget drops every params variant of db, nothing else */
	cache_forget(fx->c, &fx->prov, "db");
	assert_int_equal(get(fx, "db", NULL, &long_ttl, &en, NULL, &e), 0);
	assert_val(&en, "A", "one");
	assert_int_equal(get(fx, "db", "version=3", &long_ttl, &en, NULL, &e), 0);
	assert_int_equal(get(fx, "other", NULL, &long_ttl, &en, NULL, &e), 0);
	assert_int_equal(fake_count(fx), 5);

	/* stored for a locator never read creates the entry */
	cache_stored(fx->c, &fx->prov, "new", &w);
	assert_int_equal(get(fx, "new", NULL, &long_ttl, &en, NULL, &e), 0);
	assert_val(&en, "A", "written");
	assert_int_equal(fake_count(fx), 5);
	entry_free(&en);
	entry_free(&w);
}

/* cache_fresh: what a read would serve without a fetch; cache_changes:
 * counts every store, replacement, drop and expiry, and nothing else. */
static void test_fresh_and_changes(void **state)
{
	struct fixture *fx = *state;
	struct cache_policy pol = { 30, 0, 10000 };
	struct entry en = ENTRY_INIT, w = ENTRY_INIT;
	struct err e;
	uint64_t c0;

	assert_false(cache_fresh(fx->c, &fx->prov, "db", NULL, &pol));
	assert_int_equal(get(fx, "db", NULL, &pol, &en, NULL, &e), 0);
	c0 = cache_changes(fx->c);
	assert_true(cache_fresh(fx->c, &fx->prov, "db", NULL, &pol));
	assert_false(cache_fresh(fx->c, &fx->prov, "db", "version=3", &pol));
	/* a hit changes nothing */
	assert_int_equal(get(fx, "db", NULL, &pol, &en, NULL, &e), 0);
	assert_true(cache_changes(fx->c) == c0);
	sleep_ms(50);
	assert_false(cache_fresh(fx->c, &fx->prov, "db", NULL, &pol));
	assert_int_equal(fake_count(fx), 1);	/* fresh asks no provider */
	assert_int_equal(get(fx, "db", NULL, &pol, &en, NULL, &e), 0);
	assert_int_equal(fake_count(fx), 2);
	assert_true(cache_fresh(fx->c, &fx->prov, "db", NULL, &pol));
	/* a different entry fetched */
	c0 = cache_changes(fx->c);
	fake_set(&fx->fake, "A", "two", 3, "v2");
	sleep_ms(50);
	assert_int_equal(get(fx, "db", NULL, &pol, &en, NULL, &e), 0);
	assert_true(cache_changes(fx->c) > c0);
	c0 = cache_changes(fx->c);
	/* stored, expired, forgotten */
	assert_int_equal(kvmap_set(&w.map, "A", "written", 7), 0);
	cache_stored(fx->c, &fx->prov, "db", &w);
	assert_true(cache_changes(fx->c) > c0);
	assert_true(cache_fresh(fx->c, &fx->prov, "db", NULL, &long_ttl));
	c0 = cache_changes(fx->c);
	cache_expire(fx->c, &fx->prov, "db");
	assert_true(cache_changes(fx->c) > c0);
	assert_false(cache_fresh(fx->c, &fx->prov, "db", NULL, &long_ttl));
	c0 = cache_changes(fx->c);
	cache_forget(fx->c, &fx->prov, "db");
	assert_true(cache_changes(fx->c) > c0);
	assert_false(cache_fresh(fx->c, &fx->prov, "db", NULL, &long_ttl));
	entry_free(&en);
	entry_free(&w);
}

/* A fetch in flight when the write lands must not overwrite it. */
struct slow_read {
	struct fixture *fx;
	int rc;
	struct entry en;
};

static void *slow_read_main(void *arg)
{
	struct slow_read *s = arg;
	struct err e;

	s->rc = cache_fetch(s->fx->c, &s->fx->prov, "db", NULL, &long_ttl,
			    &s->en, NULL, &e);
	return NULL;
}

static void test_stored_during_fetch(void **state)
{
	struct fixture *fx = *state;
	struct slow_read s = { fx, -1, ENTRY_INIT };
	struct entry en = ENTRY_INIT, w = ENTRY_INIT;
	pthread_t t;
	struct err e;

	fx->fake.delay_ms = 150;
	assert_int_equal(pthread_create(&t, NULL, slow_read_main, &s), 0);
	/* the write lands while the fetch is in the provider: wait until it
	 * is there (a fixed sleep lost that race on a loaded machine) */
	while (fake_count(fx) == 0)
		sleep_ms(1);
	assert_int_equal(kvmap_set(&w.map, "A", "written", 7), 0);
	cache_stored(fx->c, &fx->prov, "db", &w);
	pthread_join(t, NULL);
	assert_int_equal(s.rc, 0);
	assert_val(&s.en, "A", "written");
	fx->fake.delay_ms = 0;
	assert_int_equal(get(fx, "db", NULL, &long_ttl, &en, NULL, &e), 0);
	assert_val(&en, "A", "written");
	assert_int_equal(fake_count(fx), 1);
	entry_free(&s.en);
	entry_free(&en);
	entry_free(&w);
}

/* An entry of n keys KEY_00000.. with values "S3cr3t-<i>-" and padding
 * (every 7th value a few KiB, so some records are larger than a chunk). */
static void fake_many(struct fixture *fx, int n)
{
	char key[32], *val = malloc(9000);

	assert_non_null(val);
	pthread_mutex_lock(&fx->fake.lock);
	kvmap_free(&fx->fake.cur.map);
	pthread_mutex_unlock(&fx->fake.lock);
	for (int i = 0; i < n; i++) {
		size_t len = i % 7 ? 40 : 5000 + (size_t)i % 4000;

		snprintf(key, sizeof(key), "KEY_%05d", i);
		memset(val, 'x', len);
		memcpy(val, "S3cr3t-", 7);
		memcpy(val + 7, key + 4, 5);
		fake_set(&fx->fake, key, val, len, "v9");
	}
	free(val);
}

static void assert_many_val(const struct entry *en, int i)
{
	char key[32];
	const struct kv *kv;

	snprintf(key, sizeof(key), "KEY_%05d", i);
	kv = kvmap_get(&en->map, key);
	assert_non_null(kv);
	assert_int_equal(kv->len, i % 7 ? 40 : 5000 + (size_t)i % 4000);
	assert_memory_equal(kv->val, "S3cr3t-", 7);
	assert_memory_equal(kv->val + 7, key + 4, 5);
	assert_true(kv->val[kv->len - 1] == 'x');
}

/* A large entry is sealed in chunks: the whole reads back as it was,
 * and a read of a few keys gets each of them - the first, the last, those
 * around every chunk boundary - and no more than it asked for. */
static void test_large_entry_keys(void **state)
{
	struct fixture *fx = *state;
	struct entry en = ENTRY_INIT;
	static const char *const absent[] = { "KEY_", "A", "ZZZ", "KEY_99999" };
	struct cache_keys none = { absent, 4 };
	char names[3][32];
	const char *v[3] = { names[0], names[1], names[2] };
	struct cache_keys want = { v, 3 };
	struct err e;
	int n = 3000;

	fake_many(fx, n);
	for (int round = 0; round < 2; round++) {	/* miss, then hits */
		assert_int_equal(get(fx, "many", NULL, &long_ttl, &en, NULL, &e), 0);
		assert_int_equal(en.map.n, (size_t)n);
		assert_string_equal(en.version, "v9");
		for (int i = 0; i < n; i++)
			assert_many_val(&en, i);
	}
	for (int i = 0; i < n; i++) {
		entry_free(&en);
		snprintf(names[0], sizeof(names[0]), "KEY_%05d", i);
		snprintf(names[1], sizeof(names[1]), "KEY_%05d", (i * 7919) % n);
		snprintf(names[2], sizeof(names[2]), "KEY_%05d", n - 1 - i);
		assert_int_equal(cache_fetch_keys(fx->c, &fx->prov, "many", NULL,
						  &long_ttl, &want, &en, NULL, &e), 0);
		assert_string_equal(en.version, "v9");
		assert_true(en.map.n >= 1 && en.map.n <= 3);
		assert_many_val(&en, i);
		assert_many_val(&en, (i * 7919) % n);
		assert_many_val(&en, n - 1 - i);
	}
	entry_free(&en);
	assert_int_equal(cache_fetch_keys(fx->c, &fx->prov, "many", NULL,
					  &long_ttl, &none, &en, NULL, &e), 0);
	assert_int_equal(en.map.n, 0);
	assert_string_equal(en.version, "v9");
	entry_free(&en);
	assert_int_equal(fake_count(fx), 1);
	assert_false(cache_debug_ciphertext_contains(fx->c, "S3cr3t-01234", 12));
	assert_false(cache_debug_ciphertext_contains(fx->c, "xxxxxxxx", 8));
}

/* A small entry asked for some keys: those, from one chunk. */
static void test_small_entry_keys(void **state)
{
	struct fixture *fx = *state;
	struct entry en = ENTRY_INIT;
	static const char *const v[] = { "B", "A" };
	struct cache_keys want = { v, 2 };
	struct err e;

	fake_set(&fx->fake, "B", "two", 3, "v2");
	fake_set(&fx->fake, "C", "three", 5, "v2");
	assert_int_equal(get(fx, "small", NULL, &long_ttl, &en, NULL, &e), 0);
	entry_free(&en);
	assert_int_equal(cache_fetch_keys(fx->c, &fx->prov, "small", NULL,
					  &long_ttl, &want, &en, NULL, &e), 0);
	assert_int_equal(en.map.n, 2);
	assert_val(&en, "A", "one");
	assert_val(&en, "B", "two");
	assert_string_equal(en.version, "v2");
	entry_free(&en);
}

static void test_binary_and_large(void **state)
{
	static const char bin[] = "a\0b\0\xff\n=\"'";
	struct fixture *fx = *state;
	struct entry en = ENTRY_INIT;
	const struct kv *kv;
	char *big = malloc(65536);
	char needle[] = "NEEDLE-0123456789abcdefghijklmnop";
	char version[PROVIDER_VERSION_MAX];
	struct err e;

	assert_non_null(big);
	randombytes_buf(big, 65536);
	memcpy(big + 1000, needle, sizeof(needle) - 1);
	memset(version, 'v', sizeof(version) - 1);
	version[sizeof(version) - 1] = '\0';
	fake_set(&fx->fake, "BIN", bin, sizeof(bin) - 1, version);
	fake_set(&fx->fake, "BIG", big, 65536, version);
	fake_set(&fx->fake, "EMPTY", "", 0, version);
	fake_set(&fx->fake, "TOKEN", needle, sizeof(needle) - 1, version);
	for (int i = 0; i < 2; i++) {	/* miss, then a hit (decrypted) */
		assert_int_equal(get(fx, "bin", NULL, &long_ttl, &en, NULL,
				     &e), 0);
		assert_int_equal(en.map.n, 5);
		assert_string_equal(en.version, version);
		kv = kvmap_get(&en.map, "BIN");
		assert_non_null(kv);
		assert_int_equal(kv->len, sizeof(bin) - 1);
		assert_memory_equal(kv->val, bin, kv->len);
		kv = kvmap_get(&en.map, "BIG");
		assert_non_null(kv);
		assert_int_equal(kv->len, 65536);
		assert_memory_equal(kv->val, big, 65536);
		kv = kvmap_get(&en.map, "EMPTY");
		assert_non_null(kv);
		assert_int_equal(kv->len, 0);
		assert_val(&en, "TOKEN", needle);
	}
	assert_int_equal(fake_count(fx), 1);
	/* the hook does scan a blob: the empty needle is everywhere */
	assert_true(cache_debug_ciphertext_contains(fx->c, "", 0));
	assert_false(cache_debug_ciphertext_contains(fx->c, needle,
						     sizeof(needle) - 1));
	assert_false(cache_debug_ciphertext_contains(fx->c, big + 20000, 32));
	assert_false(cache_debug_ciphertext_contains(fx->c, "TOKEN", 5));
	free(big);
	entry_free(&en);
}

/* Decryption is bound to the entry's identity: the same content under
 * another locator is sealed differently (fresh nonce, other AD). */
static void test_distinct_ciphertexts(void **state)
{
	struct fixture *fx = *state;
	struct entry en = ENTRY_INIT, w = ENTRY_INIT;
	struct err e;

	assert_int_equal(kvmap_set(&w.map, "K", "same-value-same-value", 21), 0);
	cache_stored(fx->c, &fx->prov, "x", &w);
	cache_stored(fx->c, &fx->prov, "y", &w);
	assert_int_equal(get(fx, "x", NULL, &long_ttl, &en, NULL, &e), 0);
	assert_val(&en, "K", "same-value-same-value");
	assert_int_equal(get(fx, "y", NULL, &long_ttl, &en, NULL, &e), 0);
	assert_val(&en, "K", "same-value-same-value");
	assert_false(cache_debug_ciphertext_contains(fx->c, "same-value", 10));
	assert_int_equal(fake_count(fx), 0);
	entry_free(&en);
	entry_free(&w);
}

/* Bytes per cached secret: entries of 20 keys with 32-byte values. */
static void test_bytes_per_secret(void **state)
{
	enum { ENTRIES = 1000, KEYS = 20 };
	struct fixture *fx = *state;
	struct entry en = ENTRY_INIT;
	struct mallinfo2 before, after;
	struct cache_stats st;
	char key[32], val[32], loc[32];
	size_t heap;
	struct err e;

	pthread_mutex_lock(&fx->fake.lock);
	entry_free(&fx->fake.cur);
	pthread_mutex_unlock(&fx->fake.lock);
	for (int k = 0; k < KEYS; k++) {
		snprintf(key, sizeof(key), "SECRET_KEY_%02d", k);
		randombytes_buf(val, sizeof(val));
		fake_set(&fx->fake, key, val, sizeof(val), "17");
	}
	before = mallinfo2();
	for (int i = 0; i < ENTRIES; i++) {
		snprintf(loc, sizeof(loc), "secret/app-%04d", i);
		assert_int_equal(get(fx, loc, NULL, &long_ttl, &en, NULL, &e), 0);
		assert_int_equal(en.map.n, KEYS);
	}
	entry_free(&en);
	after = mallinfo2();
	cache_get_stats(fx->c, &st);
	assert_int_equal(st.entries, ENTRIES);
	heap = after.uordblks - before.uordblks;
	print_message("cache: %zu bytes/entry accounted, %zu heap; "
		      "%zu bytes/secret accounted, %zu heap "
		      "(20 keys of 13 chars, 32-byte values)\n",
		      st.bytes / ENTRIES, heap / ENTRIES,
		      st.bytes / ENTRIES / KEYS, heap / ENTRIES / KEYS);
	assert_true(st.bytes / ENTRIES / KEYS < 100);
	assert_true(heap / ENTRIES / KEYS < 100);
}

/* Readers, writers, forgets and the refresher at once, with eviction. */
struct stress {
	struct fixture *fx;
	unsigned seed;
	int bad;
};

static void *stress_main(void *arg)
{
	struct stress *s = arg;
	struct cache_policy pol = { 20, 10, 1000 };
	struct entry en = ENTRY_INIT, w = ENTRY_INIT;
	char loc[32];
	struct err e;

	kvmap_set(&w.map, "LOCATOR", "", 0);
	for (int i = 0; i < 400; i++) {
		int n = rand_r(&s->seed) % 24, op = rand_r(&s->seed) % 10;
		const struct kv *kv;

		snprintf(loc, sizeof(loc), "loc-%d", n);
		if (op == 0) {
			cache_forget(s->fx->c, &s->fx->prov, loc);
			continue;
		}
		if (op == 1) {
			kvmap_set(&w.map, "LOCATOR", loc, strlen(loc));
			cache_stored(s->fx->c, &s->fx->prov, loc, &w);
			continue;
		}
		if (cache_fetch(s->fx->c, &s->fx->prov, loc, NULL, &pol, &en,
				NULL, &e) < 0) {
			s->bad++;
			continue;
		}
		kv = kvmap_get(&en.map, "LOCATOR");
		if (!kv || kv->len != strlen(loc) || memcmp(kv->val, loc, kv->len))
			s->bad++;
		entry_free(&en);
	}
	entry_free(&w);
	return NULL;
}

static void test_stress(void **state)
{
	enum { T = 8 };
	struct fixture *fx = fixture_new(50, 3 * 1024);
	struct stress s[T];
	pthread_t t[T];
	struct cache_stats st;
	struct err e;

	(void)state;
	fx->fake.add_locator = true;
	fx->fake.delay_ms = 1;
	assert_int_equal(cache_start_refresher(fx->c, NULL, NULL, &e), 0);
	for (int i = 0; i < T; i++) {
		s[i] = (struct stress){ fx, (unsigned)i * 7919 + 1, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, stress_main, &s[i]), 0);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(s[i].bad, 0);
	}
	cache_get_stats(fx->c, &st);
	assert_true(st.bytes <= 3 * 1024);
	assert_true(st.evictions > 0);
	teardown((void **)&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hit_within_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refetch_past_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fresh_and_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_negative_caching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_if_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_answers_not_masked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_single_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresher, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresher_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extreme_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresher_failing, setup, teardown),
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test_setup_teardown(test_stored_forget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stored_during_fetch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary_and_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_entry_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_entry_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_distinct_ciphertexts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bytes_per_secret, setup, teardown),
		cmocka_unit_test(test_stress),
	};

	if (sodium_init() < 0)
		return 1;
	if (getenv("TEST_FILTER"))	/* e.g. TEST_FILTER='test_stress' */
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
