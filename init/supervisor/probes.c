/* What the configured QEMU can do, probed once at start-up (seconds under
 * TCG: after the restore of an update, never before). */
#include "supervisor/sup.h"

#include "pid1/log.h"
#include "vm/probe.h"

void sup_probe_qemu(struct sup *s)
{
	const char *qemu = NULL;
	bool any_auto = false;
	int r;

	for (size_t i = 0; i < s->n_vms; i++)
		if (vm_conf(s->vms[i])->ram_backing == VMCONF_RAM_AUTO) {
			qemu = vm_conf(s->vms[i])->qemu;
			any_auto = true;
		}
	if (!qemu && s->n_vms)
		qemu = vm_conf(s->vms[0])->qemu;
	if (!qemu)
		return;
	r = probe_sandbox(qemu);
	s->host.sandbox = r == 1;
	log_info("%s %s -sandbox (seccomp)%s", qemu, s->host.sandbox ? "supports" : "does not support",
		 s->host.sandbox ? ": QEMU runs confined" : "");
	if (!any_auto)
		return;
	s->fdset_probe = probe_fdset(qemu);
	s->host.fdset_ok = s->fdset_probe == 1;
	if (s->fdset_probe < 0)
		log_errno(LOG_WARN, s->fdset_probe, "fdset probe of %s", qemu);
	log_info("%s %s /dev/fdset for guest RAM: ram_backing auto means %s", qemu,
		 s->host.fdset_ok ? "resolves" : "does not resolve", s->host.fdset_ok ? "fdset" : "procfd");
}
