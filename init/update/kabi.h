/* The live-update ABI of a kernel: the compatible strings of the data it hands
 * over at a kexec (KHO, LUO, memfd preservation), written at build time by
 * board/qemu-x86_64/kernel-abi.sh as one line of key=value words:
 *   kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13
 * The kernel promises nothing across different strings, so memfds are carried
 * only between kernels whose words agree (release aside). A running kernel
 * does not show these strings (only debugfs with KEXEC_HANDOVER_DEBUGFS shows
 * KHO's and LUO's; memfd's never), so the initramfs carries its kernel's line
 * and every update target has one beside it. */
#ifndef LUOINIT_KABI_H
#define LUOINIT_KABI_H

#include <stdbool.h>
#include <stddef.h>

#define KABI_RUNNING_PATH  "/etc/luoinit/kernel-abi" /* in the initramfs */
#define KABI_TARGET_SUFFIX ".abi"                    /* KERNEL.abi beside each target */
#define KABI_MAX 8

struct kabi {
	bool known;      /* false: why says what is missing or wrong */
	char why[256];
	size_t n;
	struct {
		char key[16];
		char val[64];
	} kv[KABI_MAX];
};

/* Parse one line; on error ret->known is false and ret->why says why. */
int kabi_parse(const char *line, struct kabi *ret);
/* A key's value, or NULL. */
const char *kabi_get(const struct kabi *k, const char *key);
/* 0 when memfds can go from the running kernel to the target; else -1 and
 * why names the first difference (or why a side is unknown). */
int kabi_compare(const struct kabi *running, const struct kabi *target, char *why, size_t len);
/* Read a kernel-abi.sh file. With release (non-NULL, non-empty), a file that
 * names another release is not believed. Never fails: see ret->known. */
void kabi_read(const char *path, const char *release, struct kabi *ret);
/* The release in a bzImage's setup header ("7.2.13" of "7.2.13 (luoinit@...) #1 ..."):
 * 0, -ENOEXEC when the file is not a bzImage, or -errno. */
int kabi_bzimage_release(const char *kernel, char *buf, size_t len);
/* The running kernel's: path (KABI_RUNNING_PATH), checked against uname. */
void kabi_running(const char *path, struct kabi *ret);
/* An update target's: KERNEL.abi, checked against the bzImage's release. */
void kabi_target(const char *kernel, struct kabi *ret);

#endif
