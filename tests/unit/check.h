/* SPDX-License-Identifier: MIT */
/* A tiny assertion layer for epgate's unit tests. Every test program ends
 * with check_summary(), which prints "N passed, N failed, N skipped" and
 * returns the exit code (non-zero when anything failed). */
#ifndef EPGATE_CHECK_H
#define EPGATE_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed, check_skipped;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (cond) {                                                  \
			check_passed++;                                      \
		} else {                                                     \
			check_failed++;                                      \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__,        \
				__LINE__, #cond);                            \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
		}                                                            \
	} while (0)

#define CHECK_EQ(a, b, ...)                                                  \
	do {                                                                 \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b); \
		if (check_a_ == check_b_) {                                  \
			check_passed++;                                      \
		} else {                                                     \
			check_failed++;                                      \
			fprintf(stderr, "FAIL %s:%d: %s == %s (%lld != %lld): ", \
				__FILE__, __LINE__, #a, #b, check_a_, check_b_); \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
		}                                                            \
	} while (0)

#define SKIP(...)                                                            \
	do {                                                                 \
		check_skipped++;                                             \
		fprintf(stderr, "SKIP %s:%d: ", __FILE__, __LINE__);         \
		fprintf(stderr, __VA_ARGS__);                                \
		fputc('\n', stderr);                                         \
	} while (0)

static inline int check_summary(void)
{
	printf("%d passed, %d failed, %d skipped\n", check_passed, check_failed,
	       check_skipped);
	return check_failed ? 1 : 0;
}

#endif
