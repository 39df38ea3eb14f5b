/* fuzz_dotenv.c - libFuzzer target for fs/dotenv.c.
 *
 * Parses arbitrary bytes; whatever parses (valid names, NUL-free values)
 * must render and parse back to the same map. Run with scripts/fuzz [seconds].
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/dotenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kvmap m = KVMAP_INIT, back = KVMAP_INIT;
	struct secbuf out = SECBUF_INIT;
	struct err e = { 0 };

	if (dotenv_parse((const char *)data, size, &m, &e) < 0) {
		/* a failed parse leaves the map empty */
		if (m.n || m.items)
			abort();
		return 0;
	}
	/* a key left out of the render shows up as a differing map */
	if (dotenv_render(&m, &out, NULL, NULL) < 0)
		abort();
	if (dotenv_parse(out.data, out.len, &back, &e) < 0)
		abort();
	if (!kvmap_equal(&m, &back))
		abort();
	kvmap_free(&back);
	kvmap_free(&m);
	secbuf_free(&out);
	return 0;
}
