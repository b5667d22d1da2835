/* SPDX-License-Identifier: MIT */
/*
 * Reading and writing whole maps with as few syscalls as the kernel allows
 * (BPF_MAP_*_BATCH), one element at a time where it has no batch operation
 * for the map type (LPM tries). Library-internal.
 */
#ifndef EPGATE_MAPIO_H
#define EPGATE_MAPIO_H

#include <stddef.h>
#include <stdint.h>

/* Every value of an array map of n entries into out. */
int epg_read_array(int fd, uint32_t n, size_t value_size, void *out);

/* Every (key, value) of a hash map: *keys and *values are malloc()ed arrays
 * of *n entries (free() them). Returns 0 or -errno. */
int epg_map_read_all(int fd, size_t key_size, size_t value_size, void **keys,
		     void **values, size_t *n);

/* Call fn on every (key, value) of a hash map, a batch at a time (one
 * buffer of a few hundred KiB, whatever the map's size); stops at fn's first
 * non-zero return, which it returns. Batches walk the buckets in order, so a
 * concurrent delete neither restarts the walk nor repeats elements (as
 * bpf_map_get_next_key does when its key is deleted). Returns 0 or -errno. */
int epg_map_each(int fd, size_t key_size, size_t value_size,
		 int (*fn)(const void *key, const void *value, void *ctx), void *ctx);

/* Write n (key, value) pairs (BPF_ANY). Returns 0 or -errno of the first
 * failure (E2BIG/ENOMEM/ENOSPC: the map is full). */
int epg_map_put_many(int fd, const void *keys, const void *values, size_t n,
		     size_t key_size, size_t value_size);

/* Delete n keys; keys already absent are not an error. Returns 0 or -errno. */
int epg_map_del_many(int fd, const void *keys, size_t n, size_t key_size);

#endif
