/* luoinit: PID 1 (or /init), `luoinit ctl ...`, or `luoinit --host ...`.
 * main() only wires the pieces together: the control server (ctl/) serves
 * the commands on top of the supervisor, which runs the update and VM
 * layers below it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/client.h"
#include "ctl/commands.h"
#include "ctl/server.h"
#include "pid1/cmdline.h"
#include "pid1/event.h"
#include "pid1/log.h"
#include "pid1/loop.h"
#include "pid1/modules.h"
#include "pid1/mounts.h"
#include "pid1/statefs.h"
#include "pid1/thp.h"
#include "pid1/watchdog.h"
#include "supervisor/supervisor.h"
#include "pid1/tsc.h"
#include "update/fwpush.h"
#include "update/handoff.h"
#include "update/update.h"

#define STATE_DIR       "/state"
#define STATE_TIMEOUT   10000
#define INITRAMFS_CONF  "/etc/luoinit/vmconf.json"
#define MODULES_LIST    "/etc/luoinit/modules"
#define CONTROL_SOCKET  "/run/luoinit.sock"

static void usage(FILE *f)
{
	fprintf(f, "usage: luoinit                         (as PID 1 or /init)\n"
		   "       luoinit ctl [--socket PATH] COMMAND [key=value ...]\n"
		   "       luoinit ctl [--socket PATH] watch\n"
		   "       luoinit --host --state-dir DIR --config FILE [--socket PATH] [--test-faults]\n");
}

static int serve_port(const char *dev)
{
	return ctl_server_add_port(dev, commands_execute);
}

/* The supervisor below, the control server on top: returns only in --host
 * mode, with its exit status. */
static int serve(struct sup_opts *o, const char *socket_path)
{
	int r;

	o->serve_port = serve_port;
	/* Events from the layers below reach the negotiated control clients. */
	event_set_sink(ctl_server_broadcast_event);
	if (sup_init(o) < 0 && !o->pid1)
		return 1;
	/* A firmware push ends with the connection that began it. */
	ctl_server_set_gone_hook(fwpush_owner_gone);
	r = ctl_server_listen(socket_path, commands_execute);
	if (r < 0) {
		log_errno(LOG_ERR, r, "control socket %s", socket_path);
		if (!o->pid1)
			return 1;
	} else {
		log_info("control socket %s", socket_path);
	}
	r = sup_run();
	ctl_server_close();
	return r;
}

static int host_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", no_argument, NULL, 'H' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "test-faults", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sup_opts o = { 0 };
	const char *socket_path = NULL;
	char sock[4096];
	int c, lvl;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'H': break;
		case 'd': o.state_dir = optarg; break;
		case 'c': o.config_path = optarg; break;
		case 's': socket_path = optarg; break;
		case 'f': o.test_faults = true; break;
		case 'l':
			if ((lvl = log_level_parse(optarg)) < 0) {
				fprintf(stderr, "luoinit: --log-level: expected debug, info, warn or err, got '%s'\n", optarg);
				return 2;
			}
			log_set_level((enum log_level)lvl);
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !o.state_dir || !o.config_path) {
		fprintf(stderr, "luoinit: --host needs --state-dir DIR and --config FILE\n");
		usage(stderr);
		return 2;
	}
	if (mkdir(o.state_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "luoinit: state dir %s: %s\n", o.state_dir, strerror(errno));
		return 1;
	}
	if (!socket_path) {
		snprintf(sock, sizeof(sock), "%s/luoinit.sock", o.state_dir);
		socket_path = sock;
	}
	umask(077);
	log_open(2, 0);
	return serve(&o, socket_path);
}

/* PID 1: never returns. Every failure is logged and the init goes on with
 * less (no modules, no /state, no config): it keeps serving status. */
static int pid1_main(void)
{
	static struct cmdline cl;
	static char dev[256], fstype[32], config[4096];
	static struct sup_opts o;
	struct handoff *early;
	char err[512];
	char **names = NULL, **extra = NULL, **loaded = NULL, **failed = NULL;
	size_t n = 0;
	int r, fd;

	o.boot_tsc = tsc_read();
	o.boot_realtime_ms = realtime_ms();
	umask(077);
	r = mounts_early();
	fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd >= 0)
		log_open(fd, 1);
	if (r < 0)
		log_errno(LOG_ERR, r, "early mounts");
	{
		static char thp[32];
		if ((r = thp_shmem_setup(THP_SHMEM_ENABLED, thp, sizeof(thp))) < 0)
			log_errno(LOG_WARN, r, "%s", THP_SHMEM_ENABLED);
		log_info("guest RAM: transparent huge pages for shmem: %s", thp);
		o.thp_shmem = thp;
	}
	/* The kernel sends SIGINT to PID 1 on Ctrl-Alt-Del instead of rebooting. */
	if (reboot(RB_DISABLE_CAD) < 0)
		log_errno(LOG_WARN, errno, "RB_DISABLE_CAD");
	fd = open("/dev/console", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		(void)dup2(fd, 0);
		(void)dup2(fd, 1);
		(void)dup2(fd, 2);
		close(fd);
	}

	cmdline_defaults(&cl);
	if ((r = cmdline_read(&cl)) < 0)
		log_errno(LOG_WARN, r, "/proc/cmdline");
	log_set_level((enum log_level)cl.log_level);
	log_info("luoinit starting as PID %d", (int)getpid());
	/* First thing: after a kexec the watchdog is still counting (the
	 * driver's probe reloaded it with its own heartbeat). */
	(void)watchdog_start(WATCHDOG_DEVICE, (unsigned)cl.watchdog);

	/* After a kexec the manifest may be in LUO: then only the modules the
	 * restore needs are loaded now, the rest once the guests run. */
	early = calloc(1, sizeof(*early));
	if (early && (r = update_early_manifest(early, err, sizeof(err))) < 0) {
		if (r != -ENOENT)
			log_warn("update: the manifest's LUO copy: %s (reading the one on /state)", err);
		free(early);
		early = NULL;
	}
	/* Modules: the initramfs's list, then the command line's. */
	if ((r = modules_read_list(MODULES_LIST, &names)) < 0 && r != -ENOENT)
		log_errno(LOG_WARN, r, "%s", MODULES_LIST);
	if (cl.modules[0] && cmdline_list_split(cl.modules, ',', &extra) < 0)
		log_warn("luoinit.modules=%s: cannot be split", cl.modules);
	{
		size_t a = 0, b = 0;
		while (names && names[a]) a++;
		while (extra && extra[b]) b++;
		/* After a kexec the manifest's modules come first: loaded now,
		 * and again (a no-op, but listed in status) with the rest. */
		static char first[HANDOFF_MAX_MODULES][sizeof(early->modules[0])]; /* outlive *early */
		size_t m = early ? early->n_modules : 0;
		const char **all = calloc(m + a + b + 1, sizeof(*all));
		if (all) {
			for (size_t i = 0; i < m; i++) {
				memcpy(first[i], early->modules[i], sizeof(first[i]));
				all[n++] = first[i];
			}
			for (size_t i = 0; i < a; i++) all[n++] = names[i];
			for (size_t i = 0; i < b; i++) all[n++] = extra[i];
			if (early) {
				log_info("update: manifest %016" PRIx64 " from LUO: %zu module(s) before the restore, "
					 "the rest after", early->generation, m);
				r = modules_load(NULL, all, m, &loaded, &failed);
				o.modules_later = all; /* kept for the supervisor */
				o.n_modules_later = n;
			} else {
				r = modules_load(NULL, all, n, &loaded, &failed);
				free(all);
			}
			if (r < 0)
				log_errno(LOG_ERR, r, "kernel modules");
			else if (r > 0)
				log_warn("%d module(s) could not be loaded", r);
		}
	}
	watchdog_feed();
	/* The guests' QEMUs start now, their machines wait for /state. */
	if (early)
		update_prespawn(early, STATE_DIR, cl.test_faults);

	o.pid1 = true;
	o.state_dir = STATE_DIR;
	o.state_spec = cl.state;
	o.esp_spec = cl.esp;
	o.mgmt_name = cl.mgmt[0] ? cl.mgmt : NULL;
	o.modules_loaded = loaded;
	o.modules_failed = failed;
	o.liveupdate_cmdline = cl.liveupdate_on;
	o.early_manifest = early;
	o.test_faults = cl.test_faults;
	if (cl.test_faults)
		log_warn("luoinit.test_faults=1: update accepts fault= (test switch)");
	r = statefs_find(cl.state, STATE_TIMEOUT, dev, sizeof(dev), fstype, sizeof(fstype));
	if (r < 0) {
		log_errno(LOG_ERR, r, "state filesystem %s not found; running without /state", cl.state);
	} else {
		o.state_device = dev;
		r = statefs_mount(dev, fstype, STATE_DIR);
		if (r < 0)
			log_errno(LOG_ERR, r, "mount %s (%s) on %s", dev, fstype, STATE_DIR);
		else
			log_info("state filesystem %s (%s) mounted on %s", dev, fstype, STATE_DIR);
		o.state_mounted = r == 0;
	}
	watchdog_feed();
	if (cl.config[0])
		snprintf(config, sizeof(config), "%s", cl.config);
	else
		snprintf(config, sizeof(config), "%s",
			 o.state_mounted && access(STATE_DIR "/vmconf.json", R_OK) == 0 ? STATE_DIR "/vmconf.json"
											 : INITRAMFS_CONF);
	o.config_path = config;
	for (;;) {
		(void)serve(&o, CONTROL_SOCKET);
		log_err("supervisor returned; PID 1 carries on");
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
		return ctl_client_main(argc - 1, argv + 1);
	if (getpid() == 1)
		return pid1_main();
	if (argc >= 2 && strcmp(argv[1], "--host") == 0)
		return host_main(argc, argv);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
