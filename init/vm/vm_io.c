/* A running VM's streams: QEMU's stderr (into the log, line by line, tagged
 * with the VM's name), the guest's serial port (into its log file or our log,
 * and a ring buffer for vm-log), and QMP events. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pid1/log.h"
#include "pid1/loop.h"
#include "vm/qmp.h"
#include "vm/vm_impl.h"

static void ring_put(struct vm *vm, const char *buf, size_t n)
{
	if (!vm->ring)
		return;
	for (size_t i = 0; i < n; i++) {
		vm->ring[vm->ring_head] = buf[i];
		vm->ring_head = (vm->ring_head + 1) % VM_RING_SIZE;
	}
	vm->ring_len = vm->ring_len + n > VM_RING_SIZE ? VM_RING_SIZE : vm->ring_len + n;
}

/* Split into lines; a line longer than the buffer is logged in pieces. */
static void lines(struct vm *vm, char *acc, size_t cap, size_t *len, const char *buf, size_t n,
		  enum log_level l, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		char c = buf[i];
		if (c == '\r')
			continue;
		if (c != '\n' && *len < cap - 1) {
			acc[(*len)++] = c;
			continue;
		}
		acc[*len] = 0;
		if (*len)
			log_msg(l, "%s%s: %s", vm->conf->name, what, acc);
		*len = 0;
		if (c != '\n')
			acc[(*len)++] = c;
	}
}

int vm_read_stderr(void *data)
{
	struct vm *vm = data;
	char buf[4096];
	ssize_t n = read(vm->err_fd, buf, sizeof(buf));

	if (n > 0) {
		lines(vm, vm->errline, sizeof(vm->errline), &vm->errlen, buf, (size_t)n, LOG_WARN, " qemu");
		return 0;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return -1;
}

static void on_stderr(int fd, uint32_t events, void *data)
{
	/* EOF: QEMU is gone or closed stderr; the reaper does the rest. */
	if (vm_read_stderr(data) < 0)
		loop_del(fd);
}

static void serial_data(struct vm *vm, const char *buf, size_t n)
{
	ring_put(vm, buf, n);
	if (vm->serial_log.fd >= 0) {
		int before = vm->serial_log.error;
		logfile_write(&vm->serial_log, buf, n);
		if (vm->serial_log.error && !before) /* once, not per line of a full /state */
			log_errno(LOG_WARN, vm->serial_log.error, "%s: serial log %s", vm->conf->name,
				  vm->serial_log.path);
	} else {
		lines(vm, vm->serline, sizeof(vm->serline), &vm->serlen, buf, n, LOG_INFO, " serial");
	}
}

static void on_serial(int fd, uint32_t events, void *data)
{
	struct vm *vm = data;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n > 0) {
		serial_data(vm, buf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	loop_del(fd);
}

static void on_qmp(int fd, uint32_t events, void *data)
{
	struct vm *vm = data;
	char name[64];
	json_object *d = NULL;
	int r = qmp_poll_events(vm->qmp);

	while (qmp_next_event(vm->qmp, name, sizeof(name), &d) == 0) {
		if (strcmp(name, "STOP") == 0 && vm->state == VM_RUNNING)
			vm_set_state(vm, VM_PAUSED, "guest stopped (QEMU STOP)");
		else if (strcmp(name, "RESUME") == 0 && vm->state == VM_PAUSED)
			vm_set_state(vm, VM_RUNNING, "guest resumed (QEMU RESUME)");
		if (strcmp(name, "MIGRATION") != 0 && strcmp(name, "MIGRATION_PASS") != 0)
			log_info("%s: QEMU event %s%s%s", vm->conf->name, name, d ? " " : "",
				 d ? json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN) : "");
		json_object_put(d);
		d = NULL;
	}
	if (r < 0)
		loop_del(fd); /* closed: QEMU is exiting, the reaper follows */
}

int vm_watch(struct vm *vm)
{
	int r;

	if ((r = loop_add(vm->err_fd, EPOLLIN, on_stderr, vm)) < 0 ||
	    (r = loop_add(vm->serial_fd, EPOLLIN, on_serial, vm)) < 0 ||
	    (r = loop_add(qmp_fd(vm->qmp), EPOLLIN, on_qmp, vm)) < 0)
		return r;
	return 0;
}

static void drain(struct vm *vm, int fd, int serial)
{
	char buf[4096];
	ssize_t n;

	/* Bounded: QEMU is gone, so at most what is buffered in the socket/pipe. */
	for (int i = 0; i < 256; i++) {
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (serial)
			serial_data(vm, buf, (size_t)n);
		else
			lines(vm, vm->errline, sizeof(vm->errline), &vm->errlen, buf, (size_t)n, LOG_WARN, " qemu");
	}
}

void vm_close_streams(struct vm *vm)
{
	if (vm->greet) {
		loop_del(qmp_fd(vm->greet));
		qmp_free(vm->greet);
		vm->greet = NULL;
	}
	loop_timer_del(vm->start_timer);
	vm->start_timer = -1;
	if (vm->qmp) {
		loop_del(qmp_fd(vm->qmp));
		qmp_free(vm->qmp);
		vm->qmp = NULL;
	}
	if (vm->serial_fd >= 0) {
		loop_del(vm->serial_fd);
		drain(vm, vm->serial_fd, 1);
		close(vm->serial_fd);
		vm->serial_fd = -1;
	}
	if (vm->err_fd >= 0) {
		loop_del(vm->err_fd);
		drain(vm, vm->err_fd, 0);
		close(vm->err_fd);
		vm->err_fd = -1;
	}
	vm->errlen = 0;
}

/* Read the last bytes of stderr still buffered into err (for start failures). */
void vm_stderr_snapshot(struct vm *vm, char *err, size_t errlen)
{
	char buf[1024];
	ssize_t n;
	size_t off = strlen(err);

	if (vm->err_fd < 0)
		return;
	n = read(vm->err_fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (off + 3 < errlen)
		snprintf(err + off, errlen - off, ": %s", buf);
	log_warn("%s qemu: %s", vm->conf->name, buf);
}

char *vm_log_tail(struct vm *vm, size_t bytes)
{
	size_t n = bytes < vm->ring_len ? bytes : vm->ring_len;
	size_t start = (vm->ring_head + VM_RING_SIZE - n) % VM_RING_SIZE;
	char *s;

	if (vm->serial_log.fd >= 0) {
		/* The files hold the history across restarts, host updates and
		 * rotations. */
		size_t got;
		s = logfile_tail(vm->serial_log.path, VM_SERIAL_KEEP, bytes, &got);
		if (s)
			logfile_utf8_sanitize(s, got);
		return s;
	}
	s = malloc(n + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		s[i] = vm->ring[(start + i) % VM_RING_SIZE];
	s[n] = 0;
	logfile_utf8_sanitize(s, n);
	return s;
}
