/* The VM lifecycle (vm/lifecycle.c): every pair of states tried on a real
 * struct vm, each change the design allows taken, each other one refused
 * with the state kept, and exactly one VM_STATE_CHANGED event (with the
 * right data) per change, caught by a test sink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "pid1/event.h"
#include "vm/vm.h"

#define N_STATES 6

/* The changes design.md §4 implies, written out here independently of the
 * table they test: a start (starting) comes up (running) or fails, a
 * running guest pauses and resumes, QEMU exits (stopped, failed, or a
 * policy restart: starting), an update saves a running VM (restoring) and
 * restores it (running) or gives up; a stopped or failed VM is started or
 * restored after a kexec. */
static const char *const legal[] = {
	"starting>running", "starting>failed", "starting>stopped",
	"running>paused", "running>starting", "running>stopped", "running>failed", "running>restoring",
	"paused>running", "paused>starting", "paused>stopped", "paused>failed", "paused>restoring",
	"restoring>running", "restoring>failed", "restoring>stopped", "restoring>starting",
	"stopped>starting", "stopped>restoring", "stopped>failed",
	"failed>starting", "failed>restoring", "failed>stopped",
};

static bool expected(enum vm_state from, enum vm_state to)
{
	char pair[32];

	if (from == to)
		return true; /* a retry: staying is always allowed, and silent */
	snprintf(pair, sizeof(pair), "%s>%s", vm_state_name(from), vm_state_name(to));
	for (size_t i = 0; i < sizeof(legal) / sizeof(legal[0]); i++)
		if (strcmp(legal[i], pair) == 0)
			return true;
	return false;
}

/* ---- the test sink ---- */

static struct {
	int n;
	char name[32], vm[64], old[16], new_[16], reason[64];
} ev;

static void copy_field(json_object *d, const char *key, char *buf, size_t len)
{
	json_object *v;

	assert_true(json_object_object_get_ex(d, key, &v));
	assert_true(json_object_is_type(v, json_type_string));
	snprintf(buf, len, "%s", json_object_get_string(v));
}

static void sink(const char *name, json_object *data)
{
	ev.n++;
	snprintf(ev.name, sizeof(ev.name), "%s", name);
	assert_non_null(data);
	copy_field(data, "name", ev.vm, sizeof(ev.vm));
	copy_field(data, "old", ev.old, sizeof(ev.old));
	copy_field(data, "new", ev.new_, sizeof(ev.new_));
	copy_field(data, "reason", ev.reason, sizeof(ev.reason));
}

/* ---- a VM to walk ---- */

static struct vmconf_vm conf = { .name = "lc0", .memory_mib = 16, .serial = "log" };
static struct vm_host host;

/* A fresh VM (stopped), taken to `s` along legal changes. */
static struct vm *vm_in(enum vm_state s)
{
	static const struct {
		int n;
		enum vm_state via[3];
	} path[N_STATES] = {
		[VM_STARTING] = { 1, { VM_STARTING } },
		[VM_RUNNING] = { 2, { VM_STARTING, VM_RUNNING } },
		[VM_PAUSED] = { 3, { VM_STARTING, VM_RUNNING, VM_PAUSED } },
		[VM_RESTORING] = { 1, { VM_RESTORING } },
		[VM_STOPPED] = { 0, { VM_STOPPED } },
		[VM_FAILED] = { 1, { VM_FAILED } },
	};
	struct vm *vm = vm_new(&conf, &host);

	assert_non_null(vm);
	assert_int_equal(vm_state(vm), VM_STOPPED);
	for (int i = 0; i < path[s].n; i++)
		assert_true(vm_set_state(vm, path[s].via[i], "walk"));
	assert_int_equal(vm_state(vm), s);
	return vm;
}

static void test_every_pair(void **state)
{
	int legal_seen = 0;

	event_set_sink(sink);
	for (int f = 0; f < N_STATES; f++)
		for (int t = 0; t < N_STATES; t++) {
			struct vm *vm = vm_in((enum vm_state)f);
			bool want = expected((enum vm_state)f, (enum vm_state)t);
			char reason[32];

			snprintf(reason, sizeof(reason), "pair %d %d", f, t);
			memset(&ev, 0, sizeof(ev));
			assert_int_equal(vm_transition_allowed((enum vm_state)f, (enum vm_state)t), want);
			assert_int_equal(vm_set_state(vm, (enum vm_state)t, reason), want);
			assert_int_equal(vm_state(vm), want ? t : f);
			if (want && f != t) {
				legal_seen++;
				assert_int_equal(ev.n, 1);
				assert_string_equal(ev.name, "VM_STATE_CHANGED");
				assert_string_equal(ev.vm, "lc0");
				assert_string_equal(ev.old, vm_state_name((enum vm_state)f));
				assert_string_equal(ev.new_, vm_state_name((enum vm_state)t));
				assert_string_equal(ev.reason, reason);
			} else {
				assert_int_equal(ev.n, 0); /* refused, or no change: nothing to tell */
			}
			vm_free(vm);
		}
	assert_int_equal(legal_seen, (int)(sizeof(legal) / sizeof(legal[0])));
	event_set_sink(NULL);
}

static void test_out_of_range(void **state)
{
	struct vm *vm = vm_in(VM_RUNNING);

	event_set_sink(sink);
	memset(&ev, 0, sizeof(ev));
	assert_false(vm_transition_allowed((enum vm_state)N_STATES, VM_STOPPED));
	assert_false(vm_transition_allowed(VM_STOPPED, (enum vm_state)N_STATES));
	assert_false(vm_transition_allowed((enum vm_state)-1, VM_STOPPED));
	assert_false(vm_set_state(vm, (enum vm_state)42, "bogus"));
	assert_int_equal(vm_state(vm), VM_RUNNING);
	assert_int_equal(ev.n, 0);
	assert_string_equal(vm_state_name((enum vm_state)42), "unknown");
	vm_free(vm);
	event_set_sink(NULL);
}

/* The names are the protocol's (design.md §4). */
static void test_names(void **state)
{
	static const char *const want[N_STATES] = { "starting", "running", "paused", "restoring", "stopped", "failed" };

	for (int s = 0; s < N_STATES; s++)
		assert_string_equal(vm_state_name((enum vm_state)s), want[s]);
}

/* Without a sink (before the control server registers one) a change is
 * still made. */
static void test_no_sink(void **state)
{
	struct vm *vm = vm_in(VM_STOPPED);

	event_set_sink(NULL);
	assert_true(vm_set_state(vm, VM_STARTING, "no sink"));
	assert_int_equal(vm_state(vm), VM_STARTING);
	vm_free(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_pair),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_no_sink),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
