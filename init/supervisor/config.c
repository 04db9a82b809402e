/* The VM configuration: parsed once at start-up; a refused one starts no VM
 * and status shows every error. */
#include "supervisor/sup.h"

#include <stdio.h>
#include <stdlib.h>

#include "pid1/log.h"

void sup_config_load(struct sup *s)
{
	int r = vmconf_parse_file(s->o.config_path, &s->conf, &s->errs);

	if (r < 0) {
		snprintf(s->config_error, sizeof(s->config_error), "%s: %zu error(s), no VM started",
			 s->o.config_path, s->errs.n);
		log_err("configuration %s refused:", s->o.config_path);
		for (size_t i = 0; i < s->errs.n; i++) {
			char *m = vmconf_error_format(&s->errs.v[i]);
			log_err("  %s", m ? m : "(no memory)");
			free(m);
		}
		return;
	}
	s->vms = calloc(s->conf->n_vms ? s->conf->n_vms : 1, sizeof(struct vm *));
	if (!s->vms) {
		snprintf(s->config_error, sizeof(s->config_error), "out of memory");
		return;
	}
	for (size_t i = 0; i < s->conf->n_vms; i++) {
		/* A QEMU started before /state (update_prespawn) is this VM's. */
		struct vm *vm = s->o.pid1 ? update_take_prespawned(s->conf->vms[i].name) : NULL;
		if (vm)
			vm_adopt_config(vm, &s->conf->vms[i], &s->host);
		else
			vm = vm_new(&s->conf->vms[i], &s->host);
		if (vm)
			s->vms[s->n_vms++] = vm;
		else
			log_err("%s: out of memory", s->conf->vms[i].name);
	}
	log_info("configuration %s: %zu VM(s)", s->o.config_path, s->n_vms);
}
