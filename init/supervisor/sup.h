/* What the supervisor's files share: its context, and one function per job
 * (signals.c, port.c, config.c, probes.c, status.c, shutdown.c). */
#ifndef LUOINIT_SUP_H
#define LUOINIT_SUP_H

#include "supervisor/supervisor.h"
#include "update/update.h"
#include "vm/vm.h"
#include "vmconf.h"

struct sup {
	struct sup_opts o;
	struct vmconf *conf;        /* NULL when refused */
	struct vmconf_errors errs;
	char config_error[512];
	struct vm **vms;
	size_t n_vms;
	struct vm_host host;        /* handed to every VM */
	struct update_ctx update;   /* handed to every update call */
	enum sup_action pending;
	int pending_timeout;
	int port_timer, port_tries;
	char port_dev[300];
	int fdset_probe;            /* 1, 0, or negative errno (null in status) */
	char update_error[512];
	double kexec_ms;            /* this boot's kexec, 0 on a cold boot */
	const char *resume_manifest; /* where this boot read the manifest: "luo", "state", NULL */
	int hang;                   /* x-hang asked (SUP_HANG_*), done by the loop; 0 */
};

enum { SUP_HANG_PID1 = 1, SUP_HANG_PANIC };

/* supervisor.c: a poweroff or reboot, once the current request is answered. */
void sup_ask(struct sup *s, enum sup_action a, int timeout_ms);
/* signals.c: the signalfd in the loop; SIGCHLD reaps, the others ask. */
int sup_signals_setup(struct sup *s);
/* port.c: look for the management port now and for a while (it may show up
 * late), and hand it to s->o.serve_port. */
void sup_port_start(struct sup *s);
/* config.c: parse the configuration and make its VMs (none when refused:
 * status says why). */
void sup_config_load(struct sup *s);
/* probes.c: what the configured QEMU can do, into s->host. */
void sup_probe_qemu(struct sup *s);
/* status.c */
struct json_object *sup_status(const struct sup *s);
/* shutdown.c: stop every VM (timeout_ms shared); in PID 1 mode unmount
 * /state and reboot or power off, returning only if that failed (-1); in
 * --host mode return 0. */
int sup_shutdown(struct sup *s, enum sup_action a, int timeout_ms);
/* button.c: the power button asks for a power-off (PID 1 only). */
void sup_button_start(struct sup *s);
/* assess.c: boot assessment (PID 1): the ESP mounted at start; once every
 * VM that should run runs, the running firmware's boot entry made good
 * (installed first after a live update into it); stop unmounts the ESP. */
void sup_assess_start(struct sup *s);
void sup_assess(struct sup *s);
void sup_assess_stop(void);
struct json_object *sup_assess_json(const struct sup *s);
/* image-install: the stored image VERSION as a new boot entry on trial,
 * the default of the next cold boot. 0 with *ret, or -errno with err. */
int sup_assess_install(const struct sup *s, const char *version, struct json_object **ret, char *err,
		       size_t errlen);
/* hang.c: the x-hang test switch: asked (0, or -errno with err), then done
 * by the loop once the reply is out (never returns). */
int sup_hang_ask(struct sup *s, const char *how, char *err, size_t errlen);
void sup_hang(struct sup *s);

#endif
