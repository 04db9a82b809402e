/* CPR save/restore sequences. See cpr.h. */
#include "vm/cpr.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pid1/loop.h"
#include "pid1/watchdog.h"
#include "vm/qmp.h"
#include "vm/ram.h"

#define CPR_CMD_TIMEOUT 10000

static json_object *caps_args(bool ignore_shared)
{
	json_object *caps = json_object_new_array(), *a = json_object_new_object(), *c;

	c = json_object_new_object();
	json_object_object_add(c, "capability", json_object_new_string("x-ignore-shared"));
	json_object_object_add(c, "state", json_object_new_boolean(ignore_shared));
	json_object_array_add(caps, c);
	c = json_object_new_object();
	json_object_object_add(c, "capability", json_object_new_string("events"));
	json_object_object_add(c, "state", json_object_new_boolean(1));
	json_object_array_add(caps, c);
	json_object_object_add(a, "capabilities", caps);
	return a;
}

static json_object *params_args(void)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "mode", json_object_new_string("cpr-reboot"));
	return a;
}

static json_object *uri_args(void)
{
	json_object *a = json_object_new_object();
	char uri[32];

	snprintf(uri, sizeof(uri), "file:/dev/fdset/%d", CPR_FDSET);
	json_object_object_add(a, "uri", json_object_new_string(uri));
	return a;
}

static int setup(struct qmp *q, bool ignore_shared, char *err, size_t errlen)
{
	json_object *a = caps_args(ignore_shared);
	int r = qmp_command(q, "migrate-set-capabilities", a, -1, CPR_CMD_TIMEOUT, NULL, err, errlen);

	json_object_put(a);
	if (r < 0)
		return r;
	a = params_args();
	r = qmp_command(q, "migrate-set-parameters", a, -1, CPR_CMD_TIMEOUT, NULL, err, errlen);
	json_object_put(a);
	return r;
}

/* {"fdset-id": CPR_FDSET}: where the state's fd goes, and is removed from. */
static json_object *fdset_args(void)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "fdset-id", json_object_new_int(CPR_FDSET));
	return a;
}

/* Hand fd to QEMU's fdset CPR_FDSET, reopened with the access mode QEMU's
 * qemu_open() will ask for (fdsets match on it). */
static int add_fd(struct qmp *q, int fd, int accmode, char *err, size_t errlen)
{
	json_object *a = fdset_args();
	int rfd, r;

	rfd = ram_reopen(fd, accmode);
	if (rfd < 0) {
		snprintf(err, errlen, "reopen state fd: %s", strerror(-rfd));
		json_object_put(a);
		return rfd;
	}
	r = qmp_command(q, "add-fd", a, rfd, CPR_CMD_TIMEOUT, NULL, err, errlen);
	json_object_put(a);
	close(rfd);
	return r;
}

static int uri_command(struct qmp *q, const char *cmd, char *err, size_t errlen)
{
	json_object *a = uri_args();
	int r = qmp_command(q, cmd, a, -1, CPR_CMD_TIMEOUT, NULL, err, errlen);

	json_object_put(a);
	return r;
}

/* Poll query-migrate until it completes or fails. Returns 0 with the reply
 * in *ret (caller puts it), -EIO on failure (err says why), -ETIMEDOUT. */
static int wait_migration(struct qmp *q, int timeout_ms, json_object **ret, char *err, size_t errlen)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	json_object *r = NULL, *st;
	int rc;

	for (;;) {
		rc = qmp_command(q, "query-migrate", NULL, -1, CPR_CMD_TIMEOUT, &r, err, errlen);
		if (rc < 0)
			return rc;
		const char *s = json_object_object_get_ex(r, "status", &st) ? json_object_get_string(st) : "";
		if (strcmp(s, "completed") == 0) {
			*ret = r;
			return 0;
		}
		if (strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0) {
			json_object *d;
			snprintf(err, errlen, "migration %s: %s", s,
				 json_object_object_get_ex(r, "error-desc", &d) ? json_object_get_string(d) : "no reason given");
			json_object_put(r);
			return -EIO;
		}
		json_object_put(r);
		r = NULL;
		if (now_ms() > deadline) {
			snprintf(err, errlen, "migration still '%s' after %d ms", s, timeout_ms);
			return -ETIMEDOUT;
		}
		(void)poll(NULL, 0, 5);
		watchdog_feed(); /* bounded: a full-RAM save or restore takes a while */
	}
}

int cpr_save_prepare(struct qmp *q, int state_fd, bool ignore_shared, char *err, size_t errlen)
{
	int r = setup(q, ignore_shared, err, errlen);

	return r < 0 ? r : add_fd(q, state_fd, O_WRONLY, err, errlen);
}

int cpr_save_start(struct qmp *q, struct cpr_stats *ret, char *err, size_t errlen)
{
	memset(ret, 0, sizeof(*ret));
	ret->stopped_at = realtime_ms();
	return uri_command(q, "migrate", err, errlen);
}

int cpr_save_finish(struct qmp *q, int state_fd, int timeout_ms, struct cpr_stats *ret,
		    char *err, size_t errlen)
{
	json_object *res = NULL, *ram, *tot;
	int r = wait_migration(q, timeout_ms, &res, err, errlen);

	ret->done_at = realtime_ms();
	/* The migration's events were read while waiting: they are history. */
	qmp_clear_events(q);
	if (r < 0)
		return r;
	if (json_object_object_get_ex(res, "ram", &ram) && json_object_object_get_ex(ram, "total", &tot))
		ret->ram_total = json_object_get_int64(tot);
	json_object_put(res);
	ret->vmstate_bytes = ram_size(state_fd);
	return 0;
}

/* The guest runs on after this: QEMU must not keep the state's fd either
 * (the next save's would join it; a full-RAM state file would keep /state
 * busy at the next update's unmount). */
void cpr_save_abort(struct qmp *q)
{
	json_object *a = fdset_args();
	struct qmp_cmd c[] = { { "migrate-cancel", NULL, -1, NULL }, { "remove-fd", a, -1, NULL } };
	char e[128];

	(void)qmp_batch(q, c, 2, CPR_CMD_TIMEOUT, e, sizeof(e));
	json_object_put(a);
}

/* One round trip: QEMU runs the four in order. Should one fail, the ones
 * after it still run, harmlessly: a stream saved with x-ignore-shared does
 * not load without it (QEMU checks the capability), and the caller treats
 * any failure as a failed restore (a fresh QEMU, or the guest set aside). */
int cpr_restore_begin(struct qmp *q, int state_fd, bool ignore_shared, char *err, size_t errlen)
{
	json_object *caps = caps_args(ignore_shared), *params = params_args(), *fdset = fdset_args(),
		    *uri = uri_args();
	struct qmp_cmd c[] = {
		{ "migrate-set-capabilities", caps, -1, NULL },
		{ "migrate-set-parameters", params, -1, NULL },
		{ "add-fd", fdset, -1, NULL },
		{ "migrate-incoming", uri, -1, NULL },
	};
	int r;

	c[2].send_fd = ram_reopen(state_fd, O_RDONLY);
	if (c[2].send_fd < 0) {
		snprintf(err, errlen, "reopen state fd: %s", strerror(-c[2].send_fd));
		r = c[2].send_fd;
	} else {
		r = qmp_batch(q, c, sizeof(c) / sizeof(c[0]), CPR_CMD_TIMEOUT, err, errlen);
		close(c[2].send_fd);
	}
	json_object_put(caps);
	json_object_put(params);
	json_object_put(fdset);
	json_object_put(uri);
	return r;
}

/* The incoming side's MIGRATION events (capability "events") say when the
 * load ends: no query-migrate polling while QEMU loads. */
int cpr_restore_finish(struct qmp *q, int timeout_ms, char *status, size_t slen, char *err, size_t errlen)
{
	static const char *const ends[] = { "completed", "failed", "cancelled", NULL };
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	json_object *a, *st = NULL, *v;
	char end[32] = "";
	int r;

	for (;;) {
		uint64_t now = now_ms();
		int slice = deadline > now ? (int)(deadline - now < 1000 ? deadline - now : 1000) : 0;

		r = qmp_wait_event(q, "MIGRATION", "status", ends, slice, end, sizeof(end), err, errlen);
		if (r != -ETIMEDOUT || now_ms() >= deadline)
			break;
		watchdog_feed(); /* bounded: a full-RAM restore takes a while */
	}
	if (r == -ETIMEDOUT)
		snprintf(err, errlen, "migration not completed after %d ms", timeout_ms);
	if (r < 0)
		return r;
	if (strcmp(end, "completed") != 0) {
		json_object *res = NULL;
		char e[128];
		if (wait_migration(q, 0, &res, e, sizeof(e)) == -EIO)
			snprintf(err, errlen, "%s", e);
		else
			snprintf(err, errlen, "migration %s", end);
		json_object_put(res);
		return -EIO;
	}
	qmp_clear_events(q);
	/* The state is consumed: QEMU must not keep it (a vmstate is valid only
	 * for the RAM it was saved with); and how the guest came back. */
	a = fdset_args();
	{
		struct qmp_cmd c[] = { { "remove-fd", a, -1, NULL }, { "query-status", NULL, -1, &st } };
		char e[128];
		r = qmp_batch(q, c, 2, CPR_CMD_TIMEOUT, e, sizeof(e));
		if (r < 0) /* remove-fd's failure is no reason to fail the restore */
			r = qmp_command(q, "query-status", NULL, -1, CPR_CMD_TIMEOUT, &st, err, errlen);
	}
	json_object_put(a);
	if (r == 0 && json_object_object_get_ex(st, "status", &v))
		snprintf(status, slen, "%s", json_object_get_string(v));
	else if (r == 0) {
		snprintf(err, errlen, "query-status: no status in the reply");
		r = -EPROTO;
	}
	json_object_put(st);
	return r;
}
