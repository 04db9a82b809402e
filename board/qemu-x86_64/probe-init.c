/* /init of the probe initramfs: prove that the board kernel reached user space
 * (used to check the kernel build and to test whether KVM really boots it). */
#include <fcntl.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(void)
{
	struct utsname u;
	char line[256] = "luoinit-probe: userspace reached on ";
	int fd = open("/dev/console", O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		fd = 1;
	if (uname(&u) == 0)
		strncat(line, u.release, sizeof(line) - strlen(line) - 2);
	strcat(line, "\n");
	if (write(fd, line, strlen(line)) < 0)
		return 1;
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}
