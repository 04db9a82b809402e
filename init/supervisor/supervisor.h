/* The supervisor: configuration, the VMs, signals, the control server, and
 * the shutdown sequence; the same in PID 1 and --host mode. */
#ifndef LUOINIT_SUPERVISOR_H
#define LUOINIT_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/vm.h"

struct json_object;

struct sup_opts {
	bool pid1;
	const char *config_path;
	const char *state_dir;      /* "/state", or --state-dir */
	const char *socket_path;
	const char *mgmt_name;      /* virtio-serial port name, or NULL */
	/* what the boot found, for status */
	const char *state_spec;
	const char *state_device;   /* NULL when not found */
	bool state_mounted;
	char **modules_loaded;      /* NULL-terminated, or NULL */
	char **modules_failed;
	bool liveupdate_cmdline;
	double boot_realtime_ms;    /* CLOCK_REALTIME when this init started */
	uint64_t boot_tsc;          /* and the TSC then */
};

enum sup_action { SUP_NONE, SUP_POWEROFF, SUP_REBOOT };

/* Runs the loop. Returns only in --host mode, with an exit status. */
int sup_run(const struct sup_opts *o);

struct vm *sup_find_vm(const char *name);
struct vm *sup_vms(size_t *ret_n);
const struct vmconf *sup_config(void);
/* A poweroff or reboot was asked: waits that serve the loop end early. */
bool sup_shutdown_pending(void);
/* Close what keeps /state busy and unmount it (clean on disk or an error). */
int sup_unmount_state(void);
/* Record an update failure for status ("last_update_error"). */
void sup_set_update_error(const char *msg);
/* This boot came from a kexec that took ms (the floor of every blackout). */
void sup_set_kexec_ms(double ms);
struct json_object *sup_status_json(void);
/* Ask for a power-off or reboot once the current request is answered;
 * guests get timeout_ms in all to power down before QEMU is told to quit. */
void sup_request(enum sup_action a, int timeout_ms);
#define SUP_SHUTDOWN_TIMEOUT 10000
const struct sup_opts *sup_opts(void);

#endif
