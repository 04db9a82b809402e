/* Memory headroom before PRESERVE_FD: preserving a memfd pins every page of
 * it, allocating each hole (luo.md), so an update of sparse guests can need
 * up to their whole RAM again. Checked before anything is preserved, against
 * MemAvailable minus a margin, so that the update is refused instead of
 * driving the host into the OOM killer with every VM paused. */
#ifndef LUOINIT_HEADROOM_H
#define LUOINIT_HEADROOM_H

#include <stddef.h>
#include <stdint.h>

#define HEADROOM_MEMINFO "/proc/meminfo"
#define HEADROOM_MARGIN_MIN (64ull << 20) /* and at least 5% of MemTotal */

/* Bytes PRESERVE_FD of this memfd would allocate: its size minus what is
 * already allocated to it (st_blocks: page cache and swap, whole huge folios;
 * SEEK_DATA would miss fallocated pages), plus LUO's per-page records.
 * 0 or -errno. *ret_allocated (may be NULL) gets the allocated bytes. */
int headroom_memfd(int fd, uint64_t *ret_need, uint64_t *ret_allocated);

struct headroom {
	uint64_t need;      /* total, swapped-out pages included */
	uint64_t available; /* MemAvailable */
	uint64_t margin;    /* kept free */
	uint64_t swapped;   /* swap in use, counted in need (at most the allocated bytes) */
};

/* Can the n memfds (names for the message) be preserved with memory to
 * spare? 0; -ENOMEM with err naming the numbers; or -errno when a memfd or
 * meminfo (HEADROOM_MEMINFO; another path for tests) cannot be read.
 * *ret (may be NULL) gets the numbers either way. */
int headroom_check(const char *meminfo, const int *fds, const char *const *names, size_t n,
		   struct headroom *ret, char *err, size_t errlen);

#endif
