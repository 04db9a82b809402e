/* Memory headroom before PRESERVE_FD. See headroom.h. */
#include "update/headroom.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* memfd_luo_preserve_folios(): a folio pointer per page while pinning, a
 * 16-byte record per folio kept for the next kernel (include/linux/kho/abi/memfd.h). */
#define HEADROOM_META_PER_PAGE 24

#define MIB(x) (((x) + (1u << 20) - 1) >> 20) /* rounded up */

int headroom_memfd(int fd, uint64_t *ret_need, uint64_t *ret_allocated)
{
	long ps = sysconf(_SC_PAGESIZE);
	uint64_t size, alloc, pages;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size < 0)
		return -EINVAL;
	if (ps <= 0)
		ps = 4096;
	size = (uint64_t)st.st_size;
	alloc = (uint64_t)st.st_blocks * 512;
	pages = (size + (uint64_t)ps - 1) / (uint64_t)ps;
	*ret_need = (alloc < size ? size - alloc : 0) + pages * HEADROOM_META_PER_PAGE;
	if (ret_allocated)
		*ret_allocated = alloc;
	return 0;
}

/* MemTotal, MemAvailable, SwapTotal, SwapFree in bytes. */
static int meminfo(const char *path, uint64_t *total, uint64_t *avail, uint64_t *swap_used,
		   char *err, size_t errlen)
{
	char line[256];
	uint64_t swap_total = 0, swap_free = 0;
	int have = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		int r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return r;
	}
	while (fgets(line, sizeof(line), f)) {
		static const char *const keys[] = { "MemTotal:", "MemAvailable:", "SwapTotal:", "SwapFree:" };
		uint64_t *dst[] = { total, avail, &swap_total, &swap_free };
		for (size_t i = 0; i < 4; i++) {
			size_t kl = strlen(keys[i]);
			unsigned long long kb;
			char *end;
			if (strncmp(line, keys[i], kl) != 0)
				continue;
			errno = 0;
			kb = strtoull(line + kl, &end, 10);
			if (errno || end == line + kl || kb > UINT64_MAX / 1024)
				break;
			*dst[i] = (uint64_t)kb * 1024;
			have |= 1 << i;
		}
	}
	fclose(f);
	if ((have & 3) != 3) {
		snprintf(err, errlen, "%s: no %s line", path, !(have & 1) ? "MemTotal" : "MemAvailable");
		return -EINVAL;
	}
	*swap_used = swap_total > swap_free ? swap_total - swap_free : 0;
	return 0;
}

int headroom_check(const char *path, const int *fds, const char *const *names, size_t n,
		   struct headroom *ret, char *err, size_t errlen)
{
	struct headroom h = { 0 };
	uint64_t total = 0, allocated = 0, swap_used = 0, biggest = 0, usable;
	size_t big = 0;
	int r;

	for (size_t i = 0; i < n; i++) {
		uint64_t need = 0, alloc = 0;
		if ((r = headroom_memfd(fds[i], &need, &alloc)) < 0) {
			snprintf(err, errlen, "%s's RAM memfd: %s", names[i], strerror(-r));
			return r;
		}
		h.need += need;
		allocated += alloc;
		if (need > biggest) {
			biggest = need;
			big = i;
		}
	}
	if ((r = meminfo(path, &total, &h.available, &swap_used, err, errlen)) < 0)
		return r;
	/* Swapped-out pages of the memfds are counted as allocated but come
	 * back into RAM to be pinned: assume the swap in use is theirs. */
	h.swapped = swap_used < allocated ? swap_used : allocated;
	h.need += h.swapped;
	h.margin = total / 20 > HEADROOM_MARGIN_MIN ? total / 20 : HEADROOM_MARGIN_MIN;
	if (ret)
		*ret = h;
	usable = h.available > h.margin ? h.available - h.margin : 0;
	if (h.need <= usable)
		return 0;
	snprintf(err, errlen, "not enough memory to preserve the RAM of %zu VM(s): preserving allocates "
		 "their unwritten pages, %" PRIu64 " MiB (%s: %" PRIu64 " MiB)%s, and MemAvailable is %"
		 PRIu64 " MiB of which %" PRIu64 " MiB stay free: %" PRIu64 " MiB short (stop a VM, "
		 "free memory, or use mode=full-ram)",
		 n, MIB(h.need), names[big], MIB(biggest), h.swapped ? " with swapped-out pages" : "",
		 h.available >> 20, MIB(h.margin), MIB(h.need - usable));
	return -ENOMEM;
}
