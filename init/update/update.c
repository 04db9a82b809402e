/* The host kernel live update, design.md §6, in the order it happens:
 *   update_start()        before the blackout: checks, kexec load, LUO sessions
 *                         and PRESERVE_FD of the RAM (slow: pins pages)
 *   update_run_pending()  the blackout: save every VM at once, quit QEMU,
 *                         preserve the states, manifest, release /state, kexec
 *   update_resume()       in the new init: retrieve, restore, FINISH (resume.c)
 * Each is a list of named steps. Any failure before the kexec has one
 * rollback: each VM is resumed, or restored in place from the memfds the
 * init still holds. Test faults (fault.h) act through FAULT() only. */
#include "update/update.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "pid1/cmdline.h"
#include "pid1/log.h"
#include "pid1/loop.h"
#include "pid1/mounts.h"
#include "pid1/statefs.h"
#include "pid1/tsc.h"
#include "pid1/modneed.h"
#include "pid1/watchdog.h"
#include "update/bootentry.h"
#include "update/fault.h"
#include "update/fwimage.h"
#include "pid1/event.h"
#include "update/fwpush.h"
#include "update/handoff.h"
#include "update/headroom.h"
#include "update/kabi.h"
#include "update/preflight.h"
#include "update/kexec.h"
#include "update/luo.h"
#include "update/tscfreq.h"
#include "vm/cpr.h"
#include "vm/ram.h"
#include "vm/vm.h"

#define LUO_DIR         "luoinit"

struct pvm {                    /* one VM going through the update */
	struct vm *vm;
	int session;                /* LUO session fd, -1 */
	int state_fd;               /* memfd (luo) or file (full-ram), -1 */
	bool quit;                  /* its QEMU is gone: rollback restores in place */
	struct cpr_stats cs;
	char path[256];             /* full-ram state file */
	char machine[64], cpu[64];  /* what QEMU resolved the config's names to */
};

struct target {                 /* the kernel the update goes to */
	const char *kernel, *initrd;
	const char *cmdline;        /* what kexec_file_load passes */
	const char *effective;      /* what the target kernel will see: an image's own line first */
	const char *image;          /* a firmware image's VERSION, or NULL */
	struct fwimage_info info;   /* the image's: its note says its command line, ABI and QEMU */
	enum preflight_mode mode;   /* as asked: auto, luo or full-ram */
};

static struct {
	bool pending;
	bool luo;
	bool loaded;                /* the next kernel is loaded */
	bool saving;                /* the blackout is saving: a rollback cancels the saves */
	bool manifest_written;      /* a rollback removes it again */
	int devfd;
	int manifest_session, manifest_fd; /* the manifest's own LUO copy, -1 */
	uint64_t generation;
	double tsc_hz;
	const struct fault *fault;
	char dir[200];              /* /state/luoinit */
	char image[FWIMAGE_VERSION_MAX + 1]; /* the firmware image updated into, "" */
	size_t n;
	struct pvm p[HANDOFF_MAX_VMS];
} U = { .devfd = -1, .manifest_session = -1, .manifest_fd = -1 };

/* The manifest of the blackout (static: it cannot fail to be there). */
static struct handoff manifest;

/* A test fault at this point: 0, or the -errno the step fails with. */
#define FAULT(at, arg) fault_inject(U.fault, FAULT_AT_##at, (arg))

/* ---- before the blackout ---- */

static int check_file(const char *what, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		snprintf(err, errlen, "%s %s: not a regular non-empty file", what, path);
		return -EINVAL;
	}
	return 0;
}

static const char *kexec_hint(int r)
{
	switch (-r) {
	case ENOEXEC: return " (not a kernel kexec_file_load accepts: bzImage built with RELOCATABLE?)";
	case EADDRNOTAVAIL: return " (the images do not fit the KHO scratch area: kho_scratch=)";
	case ENOSYS: return " (kernel without KEXEC_FILE)";
	default: return "";
	}
}

const char *update_sig_verdict(int r)
{
	switch (-r) {
	case EKEYREJECTED: return "its signature does not verify against the trusted keys (EKEYREJECTED)";
	case ENOKEY: return "it is not signed by a key the kernel trusts (ENOKEY)";
	case ENODATA: return "it carries no signature, and this kernel loads only signed ones (ENODATA)";
	case EBADMSG: return "its signature is malformed (EBADMSG)";
	case ENOPKG: return "its signature needs an algorithm this kernel lacks (ENOPKG)";
	case EKEYEXPIRED: return "it is signed by an expired key (EKEYEXPIRED)";
	case EKEYREVOKED: return "it is signed by a revoked key (EKEYREVOKED)";
	case ENOTSUP: return "its signature is of a kind this kernel cannot check (EOPNOTSUPP)";
	case EPERM: return "the kernel does not allow it: a failed signature check under lockdown, "
			   "or kexec disabled (kernel.kexec_load_disabled) (EPERM)";
	default: return "";
	}
}

/* What a firmware image says of itself: its version and note, read from its
 * own bytes (the kernel checks that they are signed when it loads it). */
static int inspect_image(struct target *t, char *err, size_t errlen)
{
	char why[256];
	struct stat st;
	int fd, r;

	fd = open(t->kernel, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "firmware %s (%s): %s", t->image, t->kernel, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	r = fwimage_inspect(fd, (uint64_t)st.st_size, &t->info, why, sizeof(why));
	close(fd);
	if (r < 0)
		snprintf(err, errlen, "firmware %s (%s): %s", t->image, t->kernel, why);
	return r;
}

/* Everything that refuses the request before anything is touched. */
static int check_request(const struct update_ctx *c, const struct update_req *req, const struct fault **ret_fault,
			 struct target *t, char *err, size_t errlen)
{
	static char cmdbuf[4096], tscbuf[4096], effbuf[FWNOTE_CMDLINE_MAX + 4096];
	unsigned khz;
	int r;

	*ret_fault = NULL;
	memset(t, 0, sizeof(*t));
	if (req->fault) {
		if (!c->test_faults) {
			snprintf(err, errlen, "fault=%.64s: fault injection is a test switch, off unless the kernel "
				 "command line has luoinit.test_faults=1 (--test-faults in --host mode)", req->fault);
			return -EPERM;
		}
		if (!(*ret_fault = fault_find(req->fault, err, errlen)))
			return -EINVAL;
	}
	if (U.pending) {
		snprintf(err, errlen, "an update is already in progress");
		return -EBUSY;
	}
	/* Only running guests are carried over; one in between states would be
	 * started afresh after the kexec, its guest lost: refuse instead. */
	for (size_t i = 0; i < c->n_vms; i++) {
		const struct vm *v = c->vms[i];
		const char *busy = vm_busy(v);
		if (busy || (vm_pid(v) && vm_state(v) != VM_RUNNING)) {
			snprintf(err, errlen, "%s is %s: try again when it is running or stopped", vm_name(v),
				 busy ? busy : vm_state_name(vm_state(v)));
			return -EBUSY;
		}
	}
	if (!c->pid1) {
		snprintf(err, errlen, "a host kernel update needs luoinit as PID 1 (this is --host mode)");
		return -EPERM;
	}
	if (!c->state_mounted) {
		snprintf(err, errlen, "/state is not mounted: the update manifest needs it");
		return -ENODEV;
	}
	t->image = req->image;
	if (req->image) {
		static char imgbuf[4096];
		if (req->kernel || req->initrd) {
			snprintf(err, errlen, "image= is a whole firmware image (kernel and initramfs): "
				 "give either image= or kernel=/initrd=, not both");
			return -EINVAL;
		}
		if ((r = fwimage_path(c->state_dir, req->image, imgbuf, sizeof(imgbuf))) < 0) {
			if (r == -ENOENT)
				snprintf(err, errlen, "image=%.80s: no such firmware image (%s; luoinit ctl image-push "
					 "puts one there)", req->image, imgbuf);
			else
				snprintf(err, errlen, "image=%.80s: not a firmware version (letters, digits, . - _ +)",
					 req->image);
			return r;
		}
		t->kernel = imgbuf;
		t->initrd = NULL;
	} else {
		t->kernel = req->kernel ? req->kernel : c->conf ? c->conf->update_kernel : NULL;
		t->initrd = req->initrd ? req->initrd : c->conf ? c->conf->update_initrd : NULL;
	}
	t->cmdline = req->cmdline ? req->cmdline : c->conf ? c->conf->update_cmdline : NULL;
	if (!t->kernel) {
		snprintf(err, errlen, "no kernel: give kernel=PATH or set update.kernel in the config");
		return -EINVAL;
	}
	if (preflight_mode_parse(req->mode, &t->mode) < 0) {
		snprintf(err, errlen, "mode=%.32s: expected auto, luo or full-ram", req->mode);
		return -EINVAL;
	}
	if (t->initrd && !t->initrd[0])
		t->initrd = NULL; /* initrd= asks for none: the pre-flight says why that is refused */
	if ((r = check_file(t->image ? "firmware image" : "kernel", t->kernel, err, errlen)) < 0 ||
	    (t->initrd && (r = check_file("initrd", t->initrd, err, errlen)) < 0))
		return r;
	if (t->image && (r = inspect_image(t, err, errlen)) < 0)
		return r;
	/* A firmware image with its own command line built in gets what this
	 * boot added to ours, not ours again (that would override its own). */
	if (!t->cmdline) {
		r = t->info.note.cmdline[0] ? cmdline_read_extra(cmdbuf, sizeof(cmdbuf))
					    : cmdline_read_raw(cmdbuf, sizeof(cmdbuf));
		if (r < 0) {
			snprintf(err, errlen, "/proc/cmdline: %s", strerror(-r));
			return r;
		}
		t->cmdline = cmdbuf;
	}
	if ((khz = tscfreq_carry_khz()) > 0) {
		if (tscfreq_cmdline(t->cmdline, khz, tscbuf, sizeof(tscbuf)) < 0) {
			snprintf(err, errlen, "cmdline=%.80s...: no room for tsc_early_khz=%u", t->cmdline, khz);
			return -E2BIG;
		}
		t->cmdline = tscbuf;
		log_info("update: the new kernel starts on this one's TSC rate: tsc_early_khz=%u", khz);
	}
	t->effective = t->cmdline;
	if (t->info.note.cmdline[0]) {
		if ((size_t)snprintf(effbuf, sizeof(effbuf), "%s%s%s", t->info.note.cmdline, t->cmdline[0] ? " " : "",
				     t->cmdline) >= FWNOTE_CMDLINE_MAX) {
			snprintf(err, errlen, "firmware %s's command line and cmdline=%.80s together exceed the "
				 "kernel's %d bytes", t->image, t->cmdline, FWNOTE_CMDLINE_MAX - 1);
			return -E2BIG;
		}
		t->effective = effbuf;
	}
	return 0;
}

/* /state/luoinit for the manifest, and LUO when the kernel has it. */
static int step_open(const struct update_ctx *c, enum preflight_mode req_mode, char *err, size_t errlen)
{
	snprintf(U.dir, sizeof(U.dir), "%s/%s", c->state_dir, LUO_DIR);
	if (mkdir(U.dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", U.dir, strerror(errno));
		return -errno;
	}
	U.devfd = luo_open();
	U.luo = U.devfd >= 0;
	/* mode=full-ram needs no LUO: a LUO that does not open is no reason
	 * to refuse it. */
	if (U.devfd < 0 && U.devfd != -ENOENT && req_mode != PREFLIGHT_FULL_RAM) {
		snprintf(err, errlen, "%s: %s", LUO_DEVICE, strerror(-U.devfd));
		return U.devfd;
	}
	return 0;
}

/* With LUO, can the memory pinned by PRESERVE_FD be had without starving
 * the host? */
static int check_headroom(const struct update_ctx *c, char *err, size_t errlen)
{
	int fds[HANDOFF_MAX_VMS];
	const char *names[HANDOFF_MAX_VMS];
	size_t n = 0;

	for (size_t i = 0; i < c->n_vms && n < HANDOFF_MAX_VMS; i++)
		if (vm_state(c->vms[i]) == VM_RUNNING && vm_ram_fd(c->vms[i]) >= 0) {
			fds[n] = vm_ram_fd(c->vms[i]);
			names[n++] = vm_name(c->vms[i]);
		}
	return headroom_check(HEADROOM_MEMINFO, fds, names, n, NULL, err, errlen);
}

/* Can the target firmware's QEMU run every guest's machine? Asked of each
 * QEMU now: the manifest will record the same resolved name. */
static int check_target_qemu(const struct update_ctx *c, const struct target *t, char *err, size_t errlen)
{
	char machine[64], cpu[64], why[256];

	if (!t->info.note.qemu[0])
		return 0;
	for (size_t i = 0; i < c->n_vms; i++) {
		struct vm *vm = c->vms[i];
		if (vm_state(vm) != VM_RUNNING)
			continue;
		if (vm_resolve_names(vm, machine, sizeof(machine), cpu, sizeof(cpu), why, sizeof(why)) < 0)
			log_warn("%s: %s; its machine is checked as configured", vm_name(vm), why);
		if (preflight_qemu_machine(vm_name(vm), machine, t->info.note.qemu, t->image, err, errlen) < 0)
			return -EPROTO;
	}
	return 0;
}

/* Can the target kernel take these VMs? Checked before anything is loaded
 * or pinned: an initramfs (else luoinit never runs again), and for LUO the
 * switches on its command line, the same live-update ABI as ours and memory
 * for the pinning; for the full-RAM path room on /state. */
static int step_check_target(const struct update_ctx *c, const struct target *t, char *err, size_t errlen)
{
	struct kabi running, target;
	enum preflight_mode mode;
	char why[320] = "";
	struct statvfs sv;
	uint64_t need = 0;
	int r;

	kabi_running(KABI_RUNNING_PATH, &running);
	/* An image's note is signed with it; a sidecar (KERNEL.abi) is not. */
	if (t->info.note.kernel_abi[0])
		kabi_parse(t->info.note.kernel_abi, &target);
	else
		kabi_target(t->kernel, &target);
	if ((r = check_target_qemu(c, t, err, errlen)) < 0)
		return r;
	{
		struct preflight pf = { .kernel = t->kernel, .initrd = t->initrd, .cmdline = t->effective,
					.builtin_initramfs = t->image != NULL,
					.mode = t->mode, .luo_available = U.devfd >= 0,
					.running = &running, .target = &target,
					.watchdog_timeout = watchdog_armed() ? watchdog_status()->timeout : 0 };
		if ((r = preflight_check(&pf, &mode, why, sizeof(why), err, errlen)) < 0)
			return r;
	}
	if (mode != PREFLIGHT_LUO && U.devfd >= 0) {
		close(U.devfd);
		U.devfd = -1;
	}
	U.luo = mode == PREFLIGHT_LUO;
	if (why[0])
		log_info("update: the full-RAM path (lossless, slower): %s", why);
	if (U.luo)
		return check_headroom(c, err, errlen);
	/* Full-RAM fallback: every byte of guest RAM goes to /state. */
	for (size_t i = 0; i < c->n_vms; i++)
		if (vm_state(c->vms[i]) == VM_RUNNING)
			need += ((uint64_t)vm_conf(c->vms[i])->memory_mib + 16) << 20;
	if (FAULT(SPACE, NULL) || statvfs(U.dir, &sv) < 0 || (uint64_t)sv.f_bavail * sv.f_frsize < need) {
		snprintf(err, errlen, "not enough space on /state for a full-RAM save (%" PRIu64 " MiB needed)",
			 need >> 20);
		return -ENOSPC;
	}
	return 0;
}

static int step_load_kernel(const struct target *t, char *err, size_t errlen)
{
	int r = FAULT(KEXEC_LOAD, NULL) ?: kexec_load(t->kernel, t->initrd, t->cmdline);

	const char *verdict = update_sig_verdict(r);

	if (r < 0 && *verdict && t->image)
		snprintf(err, errlen, "the kernel refused firmware %s (%s): %s", t->image, t->kernel, verdict);
	else if (r < 0 && *verdict)
		snprintf(err, errlen, "the kernel refused %s: %s", t->kernel, verdict);
	else if (r < 0)
		snprintf(err, errlen, "kexec_file_load %s: %s%s", t->kernel, strerror(-r), kexec_hint(r));
	if (r < 0)
		return r;
	U.loaded = true;
	return 0;
}

/* Every running VM goes along; with LUO its RAM memfd is preserved in a
 * session of its own now (pinning takes a while: not in the blackout). */
static int step_preserve_ram(const struct update_ctx *c, char *err, size_t errlen)
{
	int r;

	U.generation = handoff_new_generation();
	U.tsc_hz = tsc_hz(); /* 50 ms, before the blackout */
	U.n = 0;
	for (size_t i = 0; i < c->n_vms; i++) {
		struct vm *vm = c->vms[i];
		struct pvm *p;
		char sname[64];
		if (vm_state(vm) != VM_RUNNING)
			continue;
		watchdog_feed(); /* pinning each VM's RAM takes a while */
		p = &U.p[U.n++];
		memset(p, 0, sizeof(*p));
		p->vm = vm;
		p->session = p->state_fd = -1;
		/* Asked now, while QEMU runs: the manifest records what the
		 * guest runs on, not the alias (a newer QEMU may move it). */
		if (vm_resolve_names(vm, p->machine, sizeof(p->machine), p->cpu, sizeof(p->cpu), err, errlen) < 0)
			log_warn("%s: %s; the manifest records the names as configured", vm_name(vm), err);
		err[0] = 0;
		if (!U.luo)
			continue;
		snprintf(sname, sizeof(sname), "%s%s", handoff_session_prefix(), vm_name(vm));
		p->session = luo_create_session(U.devfd, sname);
		if (p->session < 0) {
			r = p->session;
			snprintf(err, errlen, "LUO session %s: %s", sname, strerror(-r));
			return r;
		}
		r = FAULT(PRESERVE_RAM, NULL) ?: luo_preserve_fd(p->session, vm_ram_fd(vm), U.generation);
		if (r < 0) {
			snprintf(err, errlen, "PRESERVE_FD of %s's RAM: %s", vm_name(vm), strerror(-r));
			return r;
		}
	}
	return 0;
}

/* Undo update_start: no kernel loaded, no sessions (closing one unpreserves
 * everything in it), no state files. */
static void undo_start(void)
{
	int r;

	if (U.loaded && (r = kexec_unload()) < 0)
		log_errno(LOG_WARN, r, "update rollback: kexec unload");
	U.loaded = false;
	for (size_t i = 0; i < U.n; i++) {
		if (U.p[i].session >= 0)
			close(U.p[i].session);
		U.p[i].session = -1;
		if (U.p[i].state_fd >= 0)
			close(U.p[i].state_fd);
		U.p[i].state_fd = -1;
		if (U.p[i].path[0])
			(void)unlink(U.p[i].path);
		U.p[i].path[0] = 0;
	}
	if (U.manifest_session >= 0)
		close(U.manifest_session);
	if (U.manifest_fd >= 0)
		close(U.manifest_fd);
	U.manifest_session = U.manifest_fd = -1;
	if (U.devfd >= 0)
		close(U.devfd);
	U.devfd = -1;
	U.n = 0;
	U.pending = false;
	U.fault = NULL;
}

static json_object *start_reply(const struct target *t)
{
	json_object *o = json_object_new_object();
	char gen[24];

	snprintf(gen, sizeof(gen), "%016" PRIx64, U.generation);
	json_object_object_add(o, "generation", json_object_new_string(gen));
	json_object_object_add(o, "mode", json_object_new_string(U.luo ? "luo" : "full-ram"));
	json_object_object_add(o, "kernel", json_object_new_string(t->kernel));
	if (t->image)
		json_object_object_add(o, "image", json_object_new_string(t->image));
	json_object_object_add(o, "vms", json_object_new_int((int)U.n));
	return o;
}

int update_start(const struct update_ctx *c, const struct update_req *req, json_object **ret, char *err,
		 size_t errlen)
{
	const struct fault *f;
	struct target t;
	double t0 = realtime_ms();
	int r;

	if ((r = check_request(c, req, &f, &t, err, errlen)) < 0)
		return r;
	U.fault = f;
	if ((r = step_open(c, t.mode, err, errlen)) < 0 ||
	    (r = step_check_target(c, &t, err, errlen)) < 0 ||
	    (r = step_load_kernel(&t, err, errlen)) < 0 ||
	    (r = step_preserve_ram(c, err, errlen)) < 0) {
		undo_start();
		return r;
	}
	U.pending = true;
	snprintf(U.image, sizeof(U.image), "%s", t.image ? t.image : "");
	*ret = start_reply(&t);
	log_info("update: %s kernel %s loaded, %zu VM(s) prepared (%s), blackout next",
		 U.luo ? "LUO" : "full-RAM", t.kernel, U.n, U.luo ? "RAM preserved" : "no LUO");
	event_update_phase("prepare", NULL, realtime_ms() - t0);
	return 0;
}

/* ---- the blackout ---- */

static int open_state(struct pvm *p, char *err, size_t errlen)
{
	const char *name = vm_name(p->vm);

	if (U.luo) {
		p->state_fd = ram_create_state(name);
	} else {
		snprintf(p->path, sizeof(p->path), "%s/%s.vmstate", U.dir, name);
		p->state_fd = open(p->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (p->state_fd < 0)
			p->state_fd = -errno;
	}
	if (p->state_fd < 0) {
		snprintf(err, errlen, "%s: state %s: %s", name, U.luo ? "memfd" : p->path, strerror(-p->state_fd));
		return p->state_fd;
	}
	return 0;
}

/* Save all VMs at once: each one's blackout starts at its own migrate,
 * and every save is set up before the first migrate. */
static int step_save_all(char *what, size_t len)
{
	char e[256] = "";
	int r = 0;

	U.saving = true;
	for (size_t i = 0; r == 0 && i < U.n; i++) {
		struct pvm *p = &U.p[i];
		if ((r = open_state(p, e, sizeof(e))) == 0)
			r = vm_save_prepare(p->vm, p->state_fd, U.luo, e, sizeof(e));
		if (r < 0)
			snprintf(what, len, "save of %s: %s", vm_name(p->vm), e);
	}
	for (size_t i = 0; r == 0 && i < U.n; i++)
		if ((r = vm_save_start(U.p[i].vm, &U.p[i].cs, e, sizeof(e))) < 0)
			snprintf(what, len, "save of %s: %s", vm_name(U.p[i].vm), e);
	if (r == 0 && U.n)
		(void)FAULT(SAVE, U.p[0].vm);
	for (size_t i = 0; r == 0 && i < U.n; i++)
		if ((r = vm_save_finish(U.p[i].vm, U.p[i].state_fd, &U.p[i].cs, e, sizeof(e))) < 0)
			snprintf(what, len, "save of %s: %s", vm_name(U.p[i].vm), e);
	if (r < 0)
		return r;
	U.saving = false;
	return 0;
}

/* Every QEMU asked to quit: they exit side by side, and while the
 * manifest is written; step_reap_all waits for them. */
static int step_quit_all(void)
{
	for (size_t i = 0; i < U.n; i++) {
		struct pvm *p = &U.p[i];
		vm_end_ask(p->vm);
		vm_set_state(p->vm, VM_RESTORING, "saved for the update");
		p->quit = true;
		/* A state file on /state is on disk before the manifest that
		 * names it, and must not keep /state busy: synced and closed
		 * now (QEMU wrote it all), reopened by its path for a rollback. */
		if (p->path[0]) {
			if (fsync(p->state_fd) < 0)
				log_errno(LOG_WARN, errno, "fsync %s", p->path);
			close(p->state_fd);
			p->state_fd = -1;
		}
		log_info("%s: saved, %lld bytes of state (RAM in stream %lld bytes) in %.1f ms", vm_name(p->vm),
			 (long long)p->cs.vmstate_bytes, (long long)p->cs.ram_total, p->cs.done_at - p->cs.stopped_at);
		event_update_phase("save", vm_name(p->vm), p->cs.done_at - p->cs.stopped_at);
	}
	return 0;
}

/* Every QEMU gone before /state is unmounted (disks are open there). */
static int step_reap_all(void)
{
	for (size_t i = 0; i < U.n; i++)
		vm_end(U.p[i].vm, VM_END_GRACE_MS);
	return 0;
}

/* LUO: each state memfd joins its VM's RAM in the session. */
static int step_preserve_states(char *what, size_t len)
{
	int r;

	for (size_t i = 0; U.luo && i < U.n; i++) {
		struct pvm *p = &U.p[i];
		r = luo_preserve_fd(p->session, p->state_fd, U.generation + 1); /* see handoff.h */
		if (r < 0) {
			snprintf(what, len, "PRESERVE_FD of %s's state: %s", vm_name(p->vm), strerror(-r));
			return r;
		}
	}
	return 0;
}

static int manifest_vm(const struct pvm *p, struct handoff_vm *m, char *what, size_t len)
{
	const struct vmconf_vm *conf = vm_conf(p->vm);
	struct vm_machine mach;

	vm_machine(p->vm, &mach);
	snprintf(m->name, sizeof(m->name), "%s", conf->name);
	m->memory_mib = conf->memory_mib;
	snprintf(m->machine, sizeof(m->machine), "%s", p->machine);
	snprintf(m->cpu, sizeof(m->cpu), "%s", p->cpu);
	snprintf(m->accel, sizeof(m->accel), "%s", vmconf_accel_name(mach.accel));
	snprintf(m->ram_backing, sizeof(m->ram_backing), "%s", vmconf_ram_name(mach.ram_backing));
	snprintf(m->qemu_version, sizeof(m->qemu_version), "%s", vm_qemu_version(p->vm));
	m->ram_size = ram_size(vm_ram_fd(p->vm));
	m->vmstate_bytes = p->cs.vmstate_bytes;
	snprintf(m->vmstate_file, sizeof(m->vmstate_file), "%s", p->path);
	m->ram_transferred = p->cs.ram_total;
	m->stopped_at = p->cs.stopped_at;
	m->save_ms = p->cs.done_at - p->cs.stopped_at;
	return handoff_vm_save_machine(m, vm_conf_as_configured(p->vm), what, len);
}

/* The modules the new init must load before it can restore: the drivers
 * under /state (the guests' files live there), KVM when a guest runs on it,
 * tun and vhost-net for NICs. modneed keeps only loadable ones now loaded. */
static void restore_modules(const struct update_ctx *c, struct handoff *h)
{
	static const char *const kvm[] = { "kvm_intel", "kvm_amd", "kvm" };
	static const char *const net[] = { "tun", "vhost_net", "vhost", "vhost_iotlb", "bridge" };
	bool on_kvm = false, nics = false;
	struct stat st;

	if (c->state_device && stat(c->state_device, &st) == 0 && S_ISBLK(st.st_mode))
		modneed_blockdev("/sys", st.st_rdev, h->modules, HANDOFF_MAX_MODULES, &h->n_modules);
	for (size_t i = 0; i < h->n_vms; i++) {
		on_kvm |= strcmp(h->vms[i].accel, "kvm") == 0;
		nics |= h->vms[i].saved && h->vms[i].saved->vms[0].n_nics > 0;
	}
	for (size_t i = 0; on_kvm && i < sizeof(kvm) / sizeof(kvm[0]); i++)
		modneed_add("/sys", kvm[i], h->modules, HANDOFF_MAX_MODULES, &h->n_modules);
	for (size_t i = 0; nics && i < sizeof(net) / sizeof(net[0]); i++)
		modneed_add("/sys", net[i], h->modules, HANDOFF_MAX_MODULES, &h->n_modules);
}

/* LUO: the manifest file's bytes also go into a session of their own, so
 * the new init reads them before /state is there. Not fatal: the file is
 * the fallback. */
static void preserve_manifest(void)
{
	char path[300], buf[8192];
	ssize_t n;
	int r = 0, fd;

	snprintf(path, sizeof(path), "%s/%s", U.dir, HANDOFF_FILE);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	U.manifest_fd = memfd_create("luoinit-handoff", MFD_CLOEXEC);
	if (fd < 0 || U.manifest_fd < 0) {
		r = -errno;
		goto out;
	}
	while (r == 0 && (n = read(fd, buf, sizeof(buf))) != 0) {
		ssize_t w;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		w = write(U.manifest_fd, buf, (size_t)n); /* a memfd: all or an error */
		if (w != n)
			r = w < 0 ? -errno : -EIO;
	}
	if (r < 0)
		goto out;
	U.manifest_session = luo_create_session(U.devfd, HANDOFF_SESSION);
	r = U.manifest_session < 0 ? U.manifest_session
				   : luo_preserve_fd(U.manifest_session, U.manifest_fd, HANDOFF_TOKEN);
out:
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		/* No half copy across the kexec: closing the session unpreserves it. */
		if (U.manifest_session >= 0)
			close(U.manifest_session);
		U.manifest_session = -1;
		log_errno(LOG_WARN, r, "update: the manifest's LUO copy (the new init reads %s instead)", path);
	}
}

static int step_write_manifest(const struct update_ctx *c, char *what, size_t len)
{
	struct handoff *h = &manifest;
	struct utsname u;
	int r;

	handoff_free(h);
	memset(h, 0, sizeof(*h));
	h->generation = U.generation;
	snprintf(h->mode, sizeof(h->mode), "%s", U.luo ? "luo" : "full-ram");
	snprintf(h->old_kernel, sizeof(h->old_kernel), "%s", uname(&u) == 0 ? u.release : "");
	h->n_vms = U.n;
	for (size_t i = 0; i < U.n; i++)
		if ((r = manifest_vm(&U.p[i], &h->vms[i], what, len)) < 0)
			return r;
	/* What the operator stopped stays stopped after the kexec. */
	for (size_t i = 0; i < c->n_vms && h->n_held < HANDOFF_MAX_VMS; i++)
		if (!vm_wanted(c->vms[i]) && !vm_pid(c->vms[i]))
			snprintf(h->held[h->n_held++], sizeof(h->held[0]), "%s", vm_name(c->vms[i]));
	restore_modules(c, h);
	(void)FAULT(MANIFEST, h);
	h->tsc_hz = U.tsc_hz;
	h->sandbox = c->host->sandbox;
	h->kexec_at = realtime_ms();
	h->kexec_tsc = tsc_read();
	r = FAULT(MANIFEST_WRITE, NULL) ?: handoff_write(U.dir, h);
	if (r < 0) {
		snprintf(what, len, "writing the manifest: %s", strerror(-r));
		return r;
	}
	U.manifest_written = true;
	/* For boot assessment: a cold boot that finds it knows the update
	 * into this firmware never came back. Only informative. */
	if (U.image[0] && (r = bootentry_attempt_write(c->state_dir, U.image)) < 0)
		log_errno(LOG_WARN, r, "update: recording the update into %s", U.image);
	(void)FAULT(MANIFEST_WRITTEN, U.dir);
	if (U.luo)
		preserve_manifest();
	return 0;
}

/* Nothing of ours may keep /state busy (the serial logs live there): it is
 * unmounted, clean on disk, before the kexec. */
static int step_release_state(const struct update_ctx *c, char *what, size_t len)
{
	int r = FAULT(UMOUNT, NULL);

	if (r == 0) {
		for (size_t i = 0; i < c->n_vms; i++)
			vm_log_close(c->vms[i]);
		log_file_close();
		fwpush_abandon("the host kernel is being updated");
		r = mounts_sync_umount(c->state_dir); /* syncs first */
	}
	if (r < 0)
		snprintf(what, len, "unmounting %s failed", c->state_dir);
	return r;
}

/* Returns only when the kexec did not happen. */
static int step_kexec(char *what, size_t len)
{
	double saved = 0; /* the last save's end: what follows it is blackout too */
	int r;

	for (size_t i = 0; i < U.n; i++)
		if (U.p[i].cs.done_at > saved)
			saved = U.p[i].cs.done_at;
	log_info("update: kexec now (generation %016" PRIx64 ", %zu VM(s), %s, %.1f ms after the last save)",
		 U.generation, U.n, U.luo ? "luo" : "full-ram", saved > 0 ? realtime_ms() - saved : 0.0);
	/* The new kernel has the whole timeout to reach the watchdog's probe,
	 * which reloads it (kernel.config: it stays locked and counting). */
	watchdog_feed_now();
	r = FAULT(KEXEC, NULL) ?: kexec_jump();
	if (r >= 0)
		r = -EIO;
	snprintf(what, len, "reboot(KEXEC): %s", strerror(-r));
	return r;
}

/* /state back where it was (the manifest must be removed from it). */
static void remount_state(const struct update_ctx *c)
{
	if (mounts_is_mountpoint(c->state_dir) == 1)
		return;
	if (!c->state_device || statefs_mount(c->state_device, NULL, c->state_dir) < 0)
		log_err("update rollback: cannot mount %s on %s again", c->state_device ? c->state_device : "?",
			c->state_dir);
}

/* Put every VM of the update back as it was. */
static void rollback_vms(void)
{
	char e[256] = "";

	for (size_t i = 0; i < U.n; i++) {
		struct pvm *p = &U.p[i];
		struct vm *vm = p->vm;
		if (!p->quit) {
			/* A QEMU that died meanwhile is the reaper's: its restart
			 * policy applies (its device state is gone with it). */
			if (vm_cont(vm) == 0)
				vm_set_state(vm, VM_RUNNING, "update rolled back");
			continue;
		}
		/* Its QEMU was told to quit (reaped here if the failure came
		 * first); the RAM memfd and the state are ours. */
		vm_end(vm, VM_END_GRACE_MS);
		if (p->state_fd < 0 && p->path[0])
			p->state_fd = open(p->path, O_RDONLY | O_CLOEXEC);
		if (vm_restore_in_place(vm, p->state_fd, U.luo, 2, NULL, e, sizeof(e)) < 0) {
			/* Its device state cannot be applied: a fresh start is all
			 * that is left (the restart a QEMU crash would get). */
			log_err("%s: rollback restore failed: %s; starting it fresh", vm_name(vm), e);
			vm_end(vm, 0);
			(void)vm_start(vm, e, sizeof(e));
		} else {
			log_info("%s: restored in place after the failed update", vm_name(vm));
		}
	}
}

/* The one rollback of the blackout, whatever step failed: the kexec will
 * not happen. */
static void rollback_blackout(const struct update_ctx *c)
{
	if (U.saving)
		for (size_t i = 0; i < U.n; i++)
			vm_save_abort(U.p[i].vm);
	U.saving = false;
	if (U.manifest_written) {
		remount_state(c);
		(void)handoff_consume(U.dir, NULL);
		(void)bootentry_attempt_clear(c->state_dir);
	}
	U.manifest_written = false;
	for (size_t i = 0; i < c->n_vms; i++)
		vm_log_open(c->vms[i]);
	if (log_file_path()[0])
		(void)log_file_open(log_file_path());
	rollback_vms();
	undo_start();
}

int update_run_pending(const struct update_ctx *c, char *err, size_t errlen)
{
	char what[512] = "";
	int r;

	if (!U.pending)
		return 0;
	U.pending = false;
	watchdog_feed(); /* the blackout does not run the loop */
	if ((r = step_save_all(what, sizeof(what))) < 0 ||
	    (r = step_quit_all()) < 0 ||
	    (r = step_preserve_states(what, sizeof(what))) < 0 ||
	    (r = step_write_manifest(c, what, sizeof(what))) < 0 ||
	    (r = step_reap_all()) < 0 ||
	    (r = step_release_state(c, what, sizeof(what))) < 0 ||
	    (r = step_kexec(what, sizeof(what))) < 0) {
		snprintf(err, errlen, "update failed before the kexec, VMs resumed: %s", what);
		log_err("%s", err);
		rollback_blackout(c);
	}
	return r;
}
