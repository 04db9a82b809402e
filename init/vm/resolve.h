/* What an alias in the config stands for in the QEMU that runs: "q35" is
 * pc-q35-10.0 in QEMU 10.0 and another machine type in a later QEMU. A saved
 * guest must come back on the type it was saved on, so the update records
 * the resolved names (design.md §6 step 5). */
#ifndef LUOINIT_RESOLVE_H
#define LUOINIT_RESOLVE_H

#include <stddef.h>

struct qmp;

/* machine: the name of the machine type the alias (or name) stands for,
 * from query-machines. Without an answer or a match, the name itself and a
 * negative errno (err says why). */
int resolve_machine(struct qmp *q, const char *machine, char *out, size_t len, char *err, size_t errlen);
/* cpu: a versioned model's own name (query-cpu-definitions "alias-of");
 * models without versions ("max", "host") stay as they are. */
int resolve_cpu(struct qmp *q, const char *cpu, char *out, size_t len, char *err, size_t errlen);

#endif
