/* test_kvmap.c - unit tests for fs/kvmap.c: set, replace, get, del, copy,
 * equal, free, and sorted order under random inserts and deletes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/kvmap.h"

static void assert_sorted(const struct kvmap *m)
{
	for (size_t i = 1; i < m->n; i++)
		if (strcmp(m->items[i - 1].key, m->items[i].key) >= 0)
			fail_msg("keys out of order at %zu: %s, %s", i,
				 m->items[i - 1].key, m->items[i].key);
}

static void test_set_get(void **state)
{
	struct kvmap m = KVMAP_INIT;
	const struct kv *kv;

	(void)state;
	assert_null(kvmap_get(&m, "A"));
	assert_int_equal(kvmap_set(&m, "B", "two", 3), 0);
	assert_int_equal(kvmap_set(&m, "A", "one", 3), 0);
	assert_int_equal(kvmap_set(&m, "C", "", 0), 0);
	assert_int_equal(m.n, 3);
	kv = kvmap_get(&m, "A");
	assert_non_null(kv);
	assert_string_equal(kv->key, "A");
	assert_int_equal(kv->len, 3);
	assert_memory_equal(kv->val, "one", 3);
	kv = kvmap_get(&m, "C");
	assert_non_null(kv);
	assert_int_equal(kv->len, 0);
	assert_int_equal(kv->val[0], '\0');
	assert_null(kvmap_get(&m, "D"));
	assert_null(kvmap_get(&m, ""));
	assert_string_equal(m.items[0].key, "A");
	assert_string_equal(m.items[1].key, "B");
	assert_string_equal(m.items[2].key, "C");
	kvmap_free(&m);
}

static void test_binary_values(void **state)
{
	static const char bin[] = "a\0b\xff\n";
	struct kvmap m = KVMAP_INIT;
	const struct kv *kv;

	(void)state;
	assert_int_equal(kvmap_set(&m, "K", bin, sizeof(bin) - 1), 0);
	kv = kvmap_get(&m, "K");
	assert_non_null(kv);
	assert_int_equal(kv->len, sizeof(bin) - 1);
	assert_memory_equal(kv->val, bin, sizeof(bin) - 1);
	/* a NUL is appended past len for convenience */
	assert_int_equal(kv->val[kv->len], '\0');
	kvmap_free(&m);
}

static void test_replace(void **state)
{
	struct kvmap m = KVMAP_INIT;
	const struct kv *kv;

	(void)state;
	assert_int_equal(kvmap_set(&m, "K", "old value", 9), 0);
	assert_int_equal(kvmap_set(&m, "K", "new", 3), 0);
	assert_int_equal(m.n, 1);
	kv = kvmap_get(&m, "K");
	assert_int_equal(kv->len, 3);
	assert_string_equal(kv->val, "new");
	assert_int_equal(kvmap_set(&m, "K", "", 0), 0);
	assert_int_equal(kvmap_get(&m, "K")->len, 0);
	assert_int_equal(m.n, 1);
	kvmap_free(&m);
}

static void test_del(void **state)
{
	struct kvmap m = KVMAP_INIT;

	(void)state;
	assert_false(kvmap_del(&m, "A"));
	assert_int_equal(kvmap_set(&m, "A", "1", 1), 0);
	assert_int_equal(kvmap_set(&m, "B", "2", 1), 0);
	assert_int_equal(kvmap_set(&m, "C", "3", 1), 0);
	assert_true(kvmap_del(&m, "B"));
	assert_false(kvmap_del(&m, "B"));
	assert_int_equal(m.n, 2);
	assert_null(kvmap_get(&m, "B"));
	assert_string_equal(kvmap_get(&m, "A")->val, "1");
	assert_string_equal(kvmap_get(&m, "C")->val, "3");
	assert_true(kvmap_del(&m, "A"));
	assert_true(kvmap_del(&m, "C"));
	assert_int_equal(m.n, 0);
	/* usable again after emptying */
	assert_int_equal(kvmap_set(&m, "Z", "z", 1), 0);
	assert_int_equal(m.n, 1);
	kvmap_free(&m);
}

static void test_copy_equal(void **state)
{
	struct kvmap a = KVMAP_INIT, b = KVMAP_INIT;

	(void)state;
	assert_true(kvmap_equal(&a, &b));
	assert_int_equal(kvmap_set(&a, "X", "1", 1), 0);
	assert_int_equal(kvmap_set(&a, "Y", "two", 3), 0);
	assert_false(kvmap_equal(&a, &b));

	/* copy frees what dst held first */
	assert_int_equal(kvmap_set(&b, "OLD", "gone", 4), 0);
	assert_int_equal(kvmap_copy(&b, &a), 0);
	assert_true(kvmap_equal(&a, &b));
	assert_null(kvmap_get(&b, "OLD"));
	/* a deep copy: changing one leaves the other alone */
	assert_ptr_not_equal(a.items[0].val, b.items[0].val);
	assert_int_equal(kvmap_set(&b, "X", "9", 1), 0);
	assert_false(kvmap_equal(&a, &b));
	assert_string_equal(kvmap_get(&a, "X")->val, "1");

	/* same keys, value differs only in length */
	assert_int_equal(kvmap_set(&b, "X", "1\0", 2), 0);
	assert_false(kvmap_equal(&a, &b));
	assert_int_equal(kvmap_set(&b, "X", "1", 1), 0);
	assert_true(kvmap_equal(&a, &b));
	/* same count, a different key */
	assert_true(kvmap_del(&b, "Y"));
	assert_int_equal(kvmap_set(&b, "Z", "two", 3), 0);
	assert_false(kvmap_equal(&a, &b));

	/* copying an empty map empties dst */
	kvmap_free(&a);
	assert_int_equal(kvmap_copy(&b, &a), 0);
	assert_int_equal(b.n, 0);
	assert_true(kvmap_equal(&a, &b));
	kvmap_free(&b);
}

static void test_kvmap_free(void **state)
{
	struct kvmap m = KVMAP_INIT;

	(void)state;
	assert_int_equal(kvmap_set(&m, "A", "1", 1), 0);
	kvmap_free(&m);
	assert_null(m.items);
	assert_int_equal(m.n, 0);
	assert_int_equal(m.cap, 0);
	/* freeing twice or an empty map is harmless */
	kvmap_free(&m);
	assert_null(m.items);
}

/* Random inserts, replaces and deletes against a plain reference table. */
static void test_random_sorted(void **state)
{
	enum { NKEYS = 300, STEPS = 20000 };
	const unsigned seed0 = 7041;
	unsigned seed = seed0;
	static int ref[NKEYS];	/* value+1 stored for key i, 0 = absent */
	struct kvmap m = KVMAP_INIT;
	size_t present = 0;

	(void)state;
	memset(ref, 0, sizeof(ref));
	for (int step = 0; step < STEPS; step++) {
		int i = rand_r(&seed) % NKEYS;
		char key[16], val[16];

		snprintf(key, sizeof(key), "k%d", i);
		if (rand_r(&seed) % 4 == 0) {
			bool had = kvmap_del(&m, key);

			if (had != (ref[i] != 0))
				fail_msg("seed %u step %d: del %s", seed0, step, key);
			present -= had;
			ref[i] = 0;
			continue;
		}
		snprintf(val, sizeof(val), "%d", step);
		assert_int_equal(kvmap_set(&m, key, val, strlen(val)), 0);
		present += ref[i] == 0;
		ref[i] = step + 1;
	}
	assert_int_equal(m.n, present);
	assert_sorted(&m);
	for (int i = 0; i < NKEYS; i++) {
		char key[16], val[16];
		const struct kv *kv;

		snprintf(key, sizeof(key), "k%d", i);
		kv = kvmap_get(&m, key);
		if (!ref[i]) {
			assert_null(kv);
			continue;
		}
		snprintf(val, sizeof(val), "%d", ref[i] - 1);
		assert_non_null(kv);
		assert_string_equal(kv->val, val);
	}
	kvmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_get),
		cmocka_unit_test(test_binary_values),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_del),
		cmocka_unit_test(test_copy_equal),
		cmocka_unit_test(test_kvmap_free),
		cmocka_unit_test(test_random_sorted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
