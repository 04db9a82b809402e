/* CPR save and restore of one QEMU over QMP (qemu-cpr.md): mode cpr-reboot,
 * x-ignore-shared so guest RAM (a shared memfd) stays out of the stream, and
 * the state written into an fd handed over with add-fd, so QEMU needs no
 * filesystem access for it. */
#ifndef LUOINIT_CPR_H
#define LUOINIT_CPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qmp;

#define CPR_FDSET 2 /* fdset id of the state; 1 is the RAM's in fdset mode */

struct cpr_stats {
	int64_t ram_total;      /* query-migrate ram.total: RAM that went into the stream */
	int64_t vmstate_bytes;  /* size of the state written */
	double stopped_at;      /* CLOCK_REALTIME ms just before the migrate command */
	double done_at;         /* CLOCK_REALTIME ms when completed was seen */
};

/* Full-RAM saves and restores of GiBs under TCG are slow. */
#define CPR_SAVE_TIMEOUT_MS    120000
#define CPR_RESTORE_TIMEOUT_MS 120000

/* Save into state_fd (a memfd or a file, opened read-write) in three parts,
 * so several VMs save at once (one blackout, as short for the first as for
 * the last): prepare sets the migration up while the guest runs, start
 * begins it (the guest stops), finish waits for it. ignore_shared: false
 * saves full RAM (the fallback). After a failure of any, cpr_save_abort
 * cancels the migration and takes the state's fd back out of QEMU (the
 * guest stays stopped: vm_cont lets it run). */
int cpr_save_prepare(struct qmp *q, int state_fd, bool ignore_shared, char *err, size_t errlen);
int cpr_save_start(struct qmp *q, struct cpr_stats *ret, char *err, size_t errlen);
int cpr_save_finish(struct qmp *q, int state_fd, int timeout_ms, struct cpr_stats *ret,
		    char *err, size_t errlen);
void cpr_save_abort(struct qmp *q);
/* Restore a QEMU started with -incoming defer from state_fd, in two halves
 * so several QEMUs load their states side by side: begin hands over the
 * state and starts migrate-incoming (one QMP round trip), finish waits for
 * the load to end, drops the state fd from QEMU and puts QEMU's run state
 * in *status (the guest may come back paused: it was running or not when
 * saved, vm_restore conts). */
int cpr_restore_begin(struct qmp *q, int state_fd, bool ignore_shared, char *err, size_t errlen);
int cpr_restore_finish(struct qmp *q, int timeout_ms, char *status, size_t slen, char *err, size_t errlen);

#endif
