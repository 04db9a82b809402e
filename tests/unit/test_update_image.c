/* update image=VERSION: a refused signature is said in words; a firmware
 * image needs no separate initramfs. (Which file a version names:
 * fwimage_path, test_fwimage.c.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "update/kabi.h"
#include "update/preflight.h"
#include "update/update.h"

static void test_verdicts(void **state)
{
	(void)state;
	assert_non_null(strstr(update_sig_verdict(-EKEYREJECTED), "does not verify against the trusted keys"));
	assert_non_null(strstr(update_sig_verdict(-EKEYREJECTED), "(EKEYREJECTED)"));
	assert_non_null(strstr(update_sig_verdict(-ENOKEY), "(ENOKEY)"));
	assert_non_null(strstr(update_sig_verdict(-ENODATA), "no signature"));
	assert_non_null(strstr(update_sig_verdict(-EBADMSG), "(EBADMSG)"));
	assert_non_null(strstr(update_sig_verdict(-ENOPKG), "(ENOPKG)"));
	assert_string_equal(update_sig_verdict(-ENOEXEC), "");
	assert_string_equal(update_sig_verdict(0), "");
}

static void test_builtin_initramfs(void **state)
{
	const char *cmdline = "console=ttyS0 liveupdate=on kho=on";
	struct preflight p = { .kernel = "/state/firmware/v2.efi", .cmdline = cmdline, .mode = PREFLIGHT_FULL_RAM };
	enum preflight_mode mode;
	char why[256], err[256];

	(void)state;
	/* A plain kernel without initrd= is refused: luoinit would not come back. */
	assert_int_equal(preflight_check(&p, &mode, why, sizeof(why), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no initramfs"));
	p.builtin_initramfs = true;
	assert_int_equal(preflight_check(&p, &mode, why, sizeof(why), err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_builtin_initramfs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
