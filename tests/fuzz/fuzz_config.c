// SPDX-License-Identifier: MIT
/* libFuzzer target: the config loader and the compiler on arbitrary bytes.
 * Built with clang -fsanitize=fuzzer,address,undefined by `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include "compile.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *names[] = { "fuzz.json" };
	const char *bufs[] = { (const char *)data };
	size_t lens[] = { size };
	struct epg_config cfg = { 0 };
	struct epg_error err;
	struct epg_plan plan;

	if (epg_config_load_buffers(&cfg, names, bufs, lens, 1, &err))
		return 0;
	if (!epg_compile(&cfg, &plan, &err))
		epg_plan_free(&plan);
	epg_config_free(&cfg);
	return 0;
}
