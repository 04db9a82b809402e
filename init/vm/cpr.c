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

static int setup(struct qmp *q, bool ignore_shared, char *err, size_t errlen)
{
	json_object *caps = json_object_new_array(), *a, *c;
	int r;

	c = json_object_new_object();
	json_object_object_add(c, "capability", json_object_new_string("x-ignore-shared"));
	json_object_object_add(c, "state", json_object_new_boolean(ignore_shared));
	json_object_array_add(caps, c);
	c = json_object_new_object();
	json_object_object_add(c, "capability", json_object_new_string("events"));
	json_object_object_add(c, "state", json_object_new_boolean(1));
	json_object_array_add(caps, c);
	a = json_object_new_object();
	json_object_object_add(a, "capabilities", caps);
	r = qmp_command(q, "migrate-set-capabilities", a, -1, CPR_CMD_TIMEOUT, NULL, err, errlen);
	json_object_put(a);
	if (r < 0)
		return r;
	a = json_object_new_object();
	json_object_object_add(a, "mode", json_object_new_string("cpr-reboot"));
	r = qmp_command(q, "migrate-set-parameters", a, -1, CPR_CMD_TIMEOUT, NULL, err, errlen);
	json_object_put(a);
	return r;
}

/* Hand fd to QEMU's fdset CPR_FDSET, reopened with the access mode QEMU's
 * qemu_open() will ask for (fdsets match on it). */
static int add_fd(struct qmp *q, int fd, int accmode, char *err, size_t errlen)
{
	json_object *a = json_object_new_object();
	int rfd, r;

	rfd = ram_reopen(fd, accmode);
	if (rfd < 0) {
		snprintf(err, errlen, "reopen state fd: %s", strerror(-rfd));
		json_object_put(a);
		return rfd;
	}
	json_object_object_add(a, "fdset-id", json_object_new_int(CPR_FDSET));
	r = qmp_command(q, "add-fd", a, rfd, CPR_CMD_TIMEOUT, NULL, err, errlen);
	json_object_put(a);
	close(rfd);
	return r;
}

static int uri_command(struct qmp *q, const char *cmd, char *err, size_t errlen)
{
	json_object *a = json_object_new_object();
	char uri[32];
	int r;

	snprintf(uri, sizeof(uri), "file:/dev/fdset/%d", CPR_FDSET);
	json_object_object_add(a, "uri", json_object_new_string(uri));
	r = qmp_command(q, cmd, a, -1, CPR_CMD_TIMEOUT, NULL, err, errlen);
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

int cpr_save_begin(struct qmp *q, int state_fd, bool ignore_shared, struct cpr_stats *ret,
		   char *err, size_t errlen)
{
	int r;

	memset(ret, 0, sizeof(*ret));
	if ((r = setup(q, ignore_shared, err, errlen)) < 0 ||
	    (r = add_fd(q, state_fd, O_WRONLY, err, errlen)) < 0)
		return r;
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

void cpr_save_abort(struct qmp *q)
{
	char e[128];

	(void)qmp_command(q, "migrate-cancel", NULL, -1, CPR_CMD_TIMEOUT, NULL, e, sizeof(e));
}

int cpr_restore_begin(struct qmp *q, int state_fd, bool ignore_shared, char *err, size_t errlen)
{
	int r;

	if ((r = setup(q, ignore_shared, err, errlen)) < 0 ||
	    (r = add_fd(q, state_fd, O_RDONLY, err, errlen)) < 0 ||
	    (r = uri_command(q, "migrate-incoming", err, errlen)) < 0)
		return r;
	return 0;
}

int cpr_restore(struct qmp *q, int state_fd, bool ignore_shared, int timeout_ms,
		char *err, size_t errlen)
{
	int r = cpr_restore_begin(q, state_fd, ignore_shared, err, errlen);

	return r < 0 ? r : cpr_restore_finish(q, timeout_ms, err, errlen);
}

int cpr_restore_finish(struct qmp *q, int timeout_ms, char *err, size_t errlen)
{
	json_object *res = NULL;
	int r;

	if ((r = wait_migration(q, timeout_ms, &res, err, errlen)) < 0)
		return r;
	json_object_put(res);
	qmp_clear_events(q);
	/* The state is consumed: QEMU must not keep it (a vmstate is valid only
	 * for the RAM it was saved with). */
	{
		json_object *a = json_object_new_object();
		char e[128];

		json_object_object_add(a, "fdset-id", json_object_new_int(CPR_FDSET));
		(void)qmp_command(q, "remove-fd", a, -1, CPR_CMD_TIMEOUT, NULL, e, sizeof(e));
		json_object_put(a);
	}
	return 0;
}
