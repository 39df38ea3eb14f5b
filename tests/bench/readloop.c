/* readloop.c - the timing tool of the benchmarks: open+read+close in C.
 *
 *   readloop PATH N [BATCH]
 *	N times open(PATH), read to EOF, close, after a warm-up; timed in
 *	batches of BATCH (default 100) so the clock's own cost stays out of
 *	the figures. Prints one line of key=value: the median, p99 and minimum
 *	of the batches' per-iteration times (ns), the mean, and the bytes one
 *	iteration read.
 *
 *   readloop -t THREADS PATH...
 *	THREADS threads, released together by a barrier, each does one
 *	open+read+close of PATH[i % npaths] (a herd). Prints how many
 *	succeeded, the wall time from release to the last one done, and the
 *	median and maximum time of one reader (ns).
 *
 *   readloop -l THREADS SECONDS PATH...
 *	A sustained load: THREADS threads, each looping open+read+close over
 *	every PATH (starting at its own) until SECONDS have passed. Every
 *	read of a path must return the very bytes the first read of it
 *	returned (complete and consistent: the files must not change during
 *	the run). Prints the operations done, errors (failed or differing
 *	reads), and the wall time (ns).
 *
 * Exit status 1 when a read fails or a loop's reads disagree in size.
 * Built by scripts/bench: cc -O2 -pthread -o build-bench/readloop readloop.c
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READLOOP_BUF (64 * 1024)

static uint64_t readloop_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One open+read to EOF+close: the bytes read, or -errno. */
static long readloop_once(const char *path, char *buf)
{
	long total = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, READLOOP_BUF)) > 0)
		total += n;
	if (n < 0)
		total = -errno;
	if (close(fd) < 0 && total >= 0)
		total = -errno;
	return total;
}

static int readloop_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (0..100) of n sorted samples: nearest rank. */
static uint64_t readloop_pct(const uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p / 100.0 * (double)n + 0.5);

	if (i > 0)
		i--;
	return v[i < n ? i : n - 1];
}

static int readloop_fail(const char *path, long rc)
{
	fprintf(stderr, "readloop: %s: %s\n", path,
		rc < 0 ? strerror((int)-rc) : "size changed between reads");
	return 1;
}

static int readloop_loop(const char *path, long n, long batch)
{
	static char buf[READLOOP_BUF];
	long nbatches = n / batch, warm = n / 20 < 1000 ? 1000 : n / 20;
	uint64_t *v = calloc((size_t)nbatches, sizeof(*v)), sum = 0;
	long size = readloop_once(path, buf);

	if (!v)
		return 1;
	if (size < 0)
		return readloop_fail(path, size);
	for (long i = 0; i < warm; i++)
		if (readloop_once(path, buf) != size)
			return readloop_fail(path, readloop_once(path, buf));
	for (long b = 0; b < nbatches; b++) {
		uint64_t t0 = readloop_now_ns();
		long bad = 0;

		for (long i = 0; i < batch; i++)
			bad |= readloop_once(path, buf) != size;
		v[b] = (readloop_now_ns() - t0) / (uint64_t)batch;
		if (bad)
			return readloop_fail(path, readloop_once(path, buf));
		sum += v[b];
	}
	qsort(v, (size_t)nbatches, sizeof(*v), readloop_cmp);
	printf("n=%ld batch=%ld bytes=%ld median_ns=%llu p99_ns=%llu min_ns=%llu mean_ns=%llu\n",
	       nbatches * batch, batch, size,
	       (unsigned long long)readloop_pct(v, (size_t)nbatches, 50),
	       (unsigned long long)readloop_pct(v, (size_t)nbatches, 99),
	       (unsigned long long)v[0],
	       (unsigned long long)(sum / (uint64_t)nbatches));
	free(v);
	return 0;
}

/* ---- the herd ---- */

struct readloop_herd {
	pthread_barrier_t go;
	char **paths;
	int npaths;
};

struct readloop_reader {
	struct readloop_herd *herd;
	int idx;
	long rc;
	uint64_t start, done;	/* released, finished (ns) */
};

static void *readloop_reader(void *arg)
{
	struct readloop_reader *r = arg;
	struct readloop_herd *h = r->herd;
	char *buf = malloc(READLOOP_BUF);

	pthread_barrier_wait(&h->go);
	r->start = readloop_now_ns();
	r->rc = buf ? readloop_once(h->paths[r->idx % h->npaths], buf) : -ENOMEM;
	r->done = readloop_now_ns();
	free(buf);
	return NULL;
}

static int readloop_herd(int nthreads, char **paths, int npaths)
{
	struct readloop_herd h = { .paths = paths, .npaths = npaths };
	struct readloop_reader *r = calloc((size_t)nthreads, sizeof(*r));
	pthread_t *t = calloc((size_t)nthreads, sizeof(*t));
	uint64_t *took = calloc((size_t)nthreads, sizeof(*took));
	uint64_t first = UINT64_MAX, last = 0;
	pthread_attr_t a;
	int ok = 0;

	if (!r || !t || !took ||
	    pthread_barrier_init(&h.go, NULL, (unsigned)nthreads) != 0)
		return 1;
	/* small stacks: hundreds of threads */
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 256 * 1024);
	for (int i = 0; i < nthreads; i++) {
		r[i] = (struct readloop_reader){ .herd = &h, .idx = i };
		if (pthread_create(&t[i], &a, readloop_reader, &r[i]) != 0) {
			fprintf(stderr, "readloop: cannot start thread %d\n", i);
			exit(1);	/* the barrier would never open */
		}
	}
	pthread_attr_destroy(&a);
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < nthreads; i++) {
		if (r[i].rc >= 0)
			ok++;
		else
			fprintf(stderr, "readloop: reader %d: %s: %s\n", i,
				paths[i % npaths], strerror((int)-r[i].rc));
		took[i] = r[i].done - r[i].start;
		if (r[i].start < first)
			first = r[i].start;
		if (r[i].done > last)
			last = r[i].done;
	}
	qsort(took, (size_t)nthreads, sizeof(*took), readloop_cmp);
	printf("threads=%d ok=%d failed=%d wall_ns=%llu median_ns=%llu max_ns=%llu\n",
	       nthreads, ok, nthreads - ok,
	       (unsigned long long)(last - first),
	       (unsigned long long)readloop_pct(took, (size_t)nthreads, 50),
	       (unsigned long long)took[nthreads - 1]);
	pthread_barrier_destroy(&h.go);
	free(r);
	free(t);
	free(took);
	return ok == nthreads ? 0 : 1;
}

/* ---- a sustained load ---- */

struct readloop_load {
	char **paths;
	int npaths;
	char **want;		/* the first read of each path */
	long *wantlen;
	uint64_t until;
	pthread_mutex_t lock;	/* the counters and the first error */
	long ops, errors;
	int reported;
};

/* Read path into buf (READLOOP_BUF): its length, or -errno. */
static long readloop_slurp(const char *path, char *buf)
{
	long total = 0;
	ssize_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (total < READLOOP_BUF &&
	       (n = read(fd, buf + total, (size_t)(READLOOP_BUF - total))) > 0)
		total += n;
	if (n < 0)
		total = -errno;
	if (close(fd) < 0 && total >= 0)
		total = -errno;
	return total;
}

static void readloop_load_error(struct readloop_load *l, int i, long rc)
{
	pthread_mutex_lock(&l->lock);
	/* a few lines say what went wrong; the count says how often */
	if (l->reported++ < 5)
		fprintf(stderr, "readloop: %s: %s\n", l->paths[i],
			rc < 0 ? strerror((int)-rc) : "differs from its first read");
	pthread_mutex_unlock(&l->lock);
}

static void *readloop_loader(void *arg)
{
	struct readloop_load *l = ((void **)arg)[0];
	int i = (int)(intptr_t)((void **)arg)[1] % l->npaths;
	char *buf = malloc(READLOOP_BUF);
	long ops = 0, errors = 0;

	while (buf && readloop_now_ns() < l->until) {
		long rc = readloop_slurp(l->paths[i], buf);

		ops++;
		if (rc != l->wantlen[i] || memcmp(buf, l->want[i], (size_t)rc)) {
			errors++;
			readloop_load_error(l, i, rc);
		}
		i = (i + 1) % l->npaths;
	}
	pthread_mutex_lock(&l->lock);
	l->ops += ops;
	l->errors += errors + !buf;
	pthread_mutex_unlock(&l->lock);
	free(buf);
	return NULL;
}

static int readloop_load(int nthreads, double seconds, char **paths, int npaths)
{
	struct readloop_load l = { .paths = paths, .npaths = npaths };
	pthread_t *t = calloc((size_t)nthreads, sizeof(*t));
	void **args = calloc((size_t)nthreads * 2, sizeof(*args));
	uint64_t t0;
	pthread_attr_t a;

	l.want = calloc((size_t)npaths, sizeof(*l.want));
	l.wantlen = calloc((size_t)npaths, sizeof(*l.wantlen));
	if (!t || !args || !l.want || !l.wantlen)
		return 1;
	pthread_mutex_init(&l.lock, NULL);
	for (int i = 0; i < npaths; i++) {
		l.want[i] = malloc(READLOOP_BUF);
		if (!l.want[i])
			return 1;
		l.wantlen[i] = readloop_slurp(paths[i], l.want[i]);
		if (l.wantlen[i] < 0)
			return readloop_fail(paths[i], l.wantlen[i]);
	}
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 256 * 1024);
	t0 = readloop_now_ns();
	l.until = t0 + (uint64_t)(seconds * 1e9);
	for (int i = 0; i < nthreads; i++) {
		args[2 * i] = &l;
		args[2 * i + 1] = (void *)(intptr_t)i;
		if (pthread_create(&t[i], &a, readloop_loader, &args[2 * i]) != 0) {
			fprintf(stderr, "readloop: cannot start thread %d\n", i);
			exit(1);
		}
	}
	pthread_attr_destroy(&a);
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	printf("threads=%d ops=%ld errors=%ld wall_ns=%llu\n", nthreads, l.ops,
	       l.errors, (unsigned long long)(readloop_now_ns() - t0));
	for (int i = 0; i < npaths; i++)
		free(l.want[i]);
	free(l.want);
	free(l.wantlen);
	free(args);
	free(t);
	return l.errors ? 1 : 0;
}

static int readloop_usage(void)
{
	fprintf(stderr, "usage: readloop PATH N [BATCH]\n"
		"       readloop -t THREADS PATH...\n"
		"       readloop -l THREADS SECONDS PATH...\n");
	return 2;
}

int main(int argc, char **argv)
{
	long n, batch = 100;

	if (argc >= 4 && !strcmp(argv[1], "-t")) {
		int threads = atoi(argv[2]);

		if (threads < 1)
			return readloop_usage();
		return readloop_herd(threads, argv + 3, argc - 3);
	}
	if (argc >= 5 && !strcmp(argv[1], "-l")) {
		int threads = atoi(argv[2]);
		double seconds = atof(argv[3]);

		if (threads < 1 || seconds <= 0)
			return readloop_usage();
		return readloop_load(threads, seconds, argv + 4, argc - 4);
	}
	if (argc < 3 || argc > 4)
		return readloop_usage();
	n = atol(argv[2]);
	if (argc == 4)
		batch = atol(argv[3]);
	if (batch < 1 || n < batch)
		return readloop_usage();
	return readloop_loop(argv[1], n, batch);
}
