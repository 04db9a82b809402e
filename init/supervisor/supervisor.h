/* The supervisor: configuration, the VMs, signals, the management port, the
 * update's schedule and the shutdown sequence; the same in PID 1 and --host
 * mode. main.c wires it to the control server; it calls into the update
 * and VM layers below, which never call back up. */
#ifndef LUOINIT_SUPERVISOR_H
#define LUOINIT_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct handoff;
struct json_object;
struct update_req;
struct vm;

struct sup_opts {
	bool pid1;
	bool test_faults;           /* luoinit.test_faults=1 / --test-faults: update fault= accepted */
	const char *config_path;
	const char *state_dir;      /* "/state", or --state-dir */
	const char *mgmt_name;      /* virtio-serial port name, or NULL */
	/* main: serve the control protocol on the management port found at dev */
	int (*serve_port)(const char *dev);
	/* what the boot found, for status */
	const char *state_spec;
	const char *esp_spec;       /* the EFI system partition (boot assessment) */
	const char *state_device;   /* NULL when not found */
	bool state_mounted;
	char **modules_loaded;      /* NULL-terminated, or NULL */
	char **modules_failed;
	/* After a kexec with the manifest in LUO: the manifest (taken over),
	 * and the modules left to load once the VMs are restored. */
	struct handoff *early_manifest;
	const char *const *modules_later;
	size_t n_modules_later;
	bool liveupdate_cmdline;
	const char *thp_shmem;      /* shmem_enabled in effect (pid1/thp.h), NULL in --host mode */
	double boot_realtime_ms;    /* CLOCK_REALTIME when this init started */
	uint64_t boot_tsc;          /* and the TSC then */
};

enum sup_action { SUP_NONE, SUP_POWEROFF, SUP_REBOOT };

/* The event loop and signals (a child subreaper in --host mode): before the
 * control server listens. 0 or a negative errno (fatal in --host mode). */
int sup_init(const struct sup_opts *o);
/* The management port, the configuration, the restore after a kexec, the
 * probes, the VMs' start, then the loop. Returns only in --host mode, with
 * an exit status, once the VMs are stopped. */
int sup_run(void);

/* For the control commands. */
struct vm *sup_find_vm(const char *name);
struct json_object *sup_status_json(void);
/* Ask for a power-off or reboot once the current request is answered;
 * guests get timeout_ms in all to power down before QEMU is told to quit. */
void sup_request(enum sup_action a, int timeout_ms);
#define SUP_SHUTDOWN_TIMEOUT 10000
/* x-hang how=pid1|panic (NULL: pid1), a test switch (luoinit.test_faults=1,
 * PID 1, watchdog armed): PID 1 stops once the reply is out, or the kernel
 * panics; the watchdog must reset the machine. 0, or -errno with err. */
int sup_test_hang(const char *how, char *err, size_t errlen);
/* image-install (README, Boot assessment): a stored image as the next cold
 * boot's entry, on trial. */
int sup_image_install(const char *version, struct json_object **ret, char *err, size_t errlen);
/* Where firmware images go: the state dir, or NULL with err when /state is
 * not mounted (PID 1). */
const char *sup_firmware_state_dir(char *err, size_t errlen);
/* update_start with this host's context (update/update.h). */
int sup_update(const struct update_req *req, struct json_object **ret, char *err, size_t errlen);

#endif
