/* vmconf's network additions: one fixture per rule in tests/data/vmconf
 * (exact messages), derived MACs, NICs in the saved machine and its diff,
 * and the argv of NICs (taps, vhost, the root bus by machine type).
 * Run from the top of the tree (make check-unit does). */
#include <errno.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmconf.h"

#define DATA "tests/data/vmconf/"

/* Every error of parsing FILE, one per line. */
static char *file_messages(const char *file, int *ret_r)
{
	struct vmconf *c = NULL;
	struct vmconf_errors errs = { 0 };
	char *out = calloc(1, 1);
	size_t len = 0;

	*ret_r = vmconf_parse_file(file, &c, &errs);
	for (size_t i = 0; i < errs.n; i++) {
		char *s = vmconf_error_format(&errs.v[i]);
		assert_non_null(s);
		out = realloc(out, len + strlen(s) + 2);
		assert_non_null(out);
		len += (size_t)sprintf(out + len, "%s%s", i ? "\n" : "", s);
		free(s);
	}
	vmconf_free(c);
	vmconf_errors_clear(&errs);
	return out;
}

static void expect_file(const char *file, const char *want)
{
	int r;
	char *got = file_messages(file, &r);

	if (strcmp(got, want) != 0)
		print_error("file: %s\n", file);
	assert_string_equal(got, want);
	assert_int_equal(r, want[0] ? -EINVAL : 0);
	free(got);
}

#define IFNAME_EXP "expected an interface name of 1 to 15 bytes without \"/\", \":\" or whitespace, " \
		   "other than \".\" and \"..\""

static void test_fixtures(void **state)
{
	(void)state;
	expect_file(DATA "net.json", "");
	expect_file(DATA "invalid-net-unknown-bridge.json",
		    "vms[0].nics[1].bridge: expected the name of a bridge in network.bridges, got \"br1\"");
	/* vm0's MAC is derived (52:72:00:7c:10:c3); vm1 gives the same in capitals. */
	expect_file(DATA "invalid-net-duplicate-mac.json",
		    "vms[1].nics[0].mac: expected a MAC address no other NIC has (vms[0].nics[0] has it), "
		    "got \"52:72:00:7c:10:c3\"");
	expect_file(DATA "invalid-net-multicast-mac.json",
		    "vms[0].nics[0].mac: expected a unicast MAC address (the first byte even), got \"53:54:00:12:34:56\"");
	expect_file(DATA "invalid-net-malformed-mac.json",
		    "vms[0].nics[0].mac: expected a MAC address of six hex bytes separated by \":\" "
		    "(52:54:00:12:34:56), got \"52-54-00-12-34-56\"");
	expect_file(DATA "invalid-net-bridge-name.json",
		    "network.bridges[0].name: " IFNAME_EXP ", got \"br/0\"\n"
		    "network.bridges[1].name: " IFNAME_EXP ", got \"bridge-name-too-long\"\n"
		    "network.bridges[2].name: " IFNAME_EXP ", got \"..\"\n"
		    "network.bridges[3].name: " IFNAME_EXP ", got \"br 3\"");
	expect_file(DATA "invalid-net-uplink-twice.json",
		    "network.bridges[1].uplink: expected an uplink no other bridge has (network.bridges[0] has it), "
		    "got \"eth0\"");
}

static struct vmconf *parse_ok(const char *json)
{
	struct vmconf *c = NULL;
	struct vmconf_errors errs = { 0 };
	int r = vmconf_parse_buffer(json, strlen(json), &c, &errs);

	for (size_t i = 0; i < errs.n; i++) {
		char *s = vmconf_error_format(&errs.v[i]);
		print_error("%s\n", s);
		free(s);
	}
	assert_int_equal(r, 0);
	vmconf_errors_clear(&errs);
	return c;
}

static char *parse_err(const char *json)
{
	struct vmconf *c = NULL;
	struct vmconf_errors errs = { 0 };
	int r = vmconf_parse_buffer(json, strlen(json), &c, &errs);
	char *s;

	assert_int_equal(r, -EINVAL);
	assert_null(c);
	s = vmconf_error_format(&errs.v[0]);
	vmconf_errors_clear(&errs);
	return s;
}

static void test_parsed(void **state)
{
	(void)state;
	struct vmconf *c = parse_ok("{\"version\": 1, \"network\": {\"bridges\": [{\"name\": \"br0\", \"uplink\": "
				    "\"eth0\"}, {\"name\": \"b1\"}]}, \"vms\": [{\"name\": \"vm0\", \"memory_mib\": 64, "
				    "\"vcpus\": 1, \"nics\": [{\"bridge\": \"br0\"}, {\"bridge\": \"b1\", \"mac\": "
				    "\"02:AA:bb:cc:dd:ee\", \"model\": \"e1000\"}]}]}");

	assert_true(c->has_network);
	assert_int_equal(c->n_bridges, 2);
	assert_string_equal(c->bridges[0].name, "br0");
	assert_string_equal(c->bridges[0].uplink, "eth0");
	assert_null(c->bridges[1].uplink); /* absent is null */
	assert_int_equal(c->vms[0].n_nics, 2);
	assert_string_equal(c->vms[0].nics[0].bridge, "br0");
	assert_string_equal(c->vms[0].nics[0].mac, "52:72:00:7c:10:c3");
	assert_true(c->vms[0].nics[0].mac_derived);
	assert_string_equal(c->vms[0].nics[0].model, "virtio-net-pci");
	assert_string_equal(c->vms[0].nics[1].mac, "02:aa:bb:cc:dd:ee"); /* lower case */
	assert_false(c->vms[0].nics[1].mac_derived);
	assert_string_equal(c->vms[0].nics[1].model, "e1000");
	vmconf_free(c);

	/* No network section: nothing, and not "has_network". */
	c = parse_ok("{\"version\": 1, \"vms\": []}");
	assert_false(c->has_network);
	assert_int_equal(c->n_bridges, 0);
	vmconf_free(c);
	c = parse_ok("{\"version\": 1, \"vms\": [], \"network\": {}}");
	assert_true(c->has_network);
	vmconf_free(c);
}

static void test_rules_more(void **state)
{
	(void)state;
	char *s;

	/* A NIC without a network section names a bridge nobody configured. */
	s = parse_err("{\"version\": 1, \"vms\": [{\"name\": \"a\", \"memory_mib\": 64, \"vcpus\": 1, "
		      "\"nics\": [{\"bridge\": \"br0\"}]}]}");
	assert_string_equal(s, "vms[0].nics[0].bridge: expected the name of a bridge in network.bridges, got \"br0\"");
	free(s);
	s = parse_err("{\"version\": 1, \"vms\": [], \"network\": {\"bridges\": [{\"name\": \"br0\", "
		      "\"uplink\": \"br0\"}]}}");
	assert_string_equal(s, "network.bridges[0].uplink: expected an interface that is not one of the bridges, "
			    "got \"br0\"");
	free(s);
	s = parse_err("{\"version\": 1, \"vms\": [{\"name\": \"a\", \"memory_mib\": 64, \"vcpus\": 1, "
		      "\"nics\": [{\"bridge\": \"b\", \"mac\": \"00:00:00:00:00:00\"}]}], "
		      "\"network\": {\"bridges\": [{\"name\": \"b\"}]}}");
	assert_string_equal(s, "vms[0].nics[0].mac: expected a MAC address other than 00:00:00:00:00:00, "
			    "got \"00:00:00:00:00:00\"");
	free(s);
	/* Two derived MACs can only clash inside one VM if FNV did: a derived
	 * one against an explicit one earlier says so. */
	s = parse_err("{\"version\": 1, \"vms\": [{\"name\": \"a\", \"memory_mib\": 64, \"vcpus\": 1, "
		      "\"nics\": [{\"bridge\": \"b\", \"mac\": \"52:72:00:7c:10:c3\"}]}, {\"name\": \"vm0\", "
		      "\"memory_mib\": 64, \"vcpus\": 1, \"nics\": [{\"bridge\": \"b\"}]}], "
		      "\"network\": {\"bridges\": [{\"name\": \"b\"}]}}");
	assert_string_equal(s, "vms[1].nics[0].mac: expected a MAC address no other NIC has (vms[0].nics[0] has it), "
			    "got \"52:72:00:7c:10:c3\" (derived from the VM's name)");
	free(s);
	s = parse_err("{\"version\": 1, \"vms\": [{\"name\": \"a\", \"memory_mib\": 64, \"vcpus\": 1, "
		      "\"nics\": [{\"bridge\": \"b\", \"model\": \"virtio-net-pci,disable-legacy=on\"}]}], "
		      "\"network\": {\"bridges\": [{\"name\": \"b\"}]}}");
	assert_string_equal(s, "vms[0].nics[0].model: expected a QEMU device name of 1 to 64 characters from a-z, "
			    "0-9, \"-\" and \"_\", got \"virtio-net-pci,disable-legacy=on\"");
	free(s);
	s = parse_err("{\"version\": 1, \"vms\": [], \"network\": {\"bridges\": [{\"name\": \"b\", \"stp\": 1}]}}");
	assert_string_equal(s, "network.bridges[0].stp: expected no such key (known: name, uplink), got 1");
	free(s);
	s = parse_err("{\"version\": 1, \"vms\": [], \"network\": []}");
	assert_string_equal(s, "network: expected an object with bridges, got []");
	free(s);
	/* Fifteen bytes is the most an interface name has. */
	vmconf_free(parse_ok("{\"version\": 1, \"vms\": [], \"network\": {\"bridges\": [{\"name\": "
			     "\"abcdefghijklmno\", \"uplink\": \"e.th-0_\"}]}}"));
}

static void test_mac_derive(void **state)
{
	(void)state;
	char a[VMCONF_MAC_LEN + 1], b[VMCONF_MAC_LEN + 1];
	char seen[512][VMCONF_MAC_LEN + 1];
	size_t n = 0;

	/* Fixed forever: a guest's MAC must not change with a new init. */
	vmconf_mac_derive("vm0", 0, a);
	assert_string_equal(a, "52:72:00:7c:10:c3");
	vmconf_mac_derive("vm0", 0, b);
	assert_string_equal(a, b);
	for (int v = 0; v < 64; v++)
		for (size_t i = 0; i < VMCONF_MAX_NICS; i++) {
			char name[16];
			snprintf(name, sizeof(name), "vm%d", v);
			vmconf_mac_derive(name, i, seen[n]);
			assert_int_equal(strlen(seen[n]), VMCONF_MAC_LEN);
			/* 0x52: locally administered (bit 1), unicast (bit 0 clear). */
			assert_memory_equal(seen[n], "52:", 3);
			for (size_t j = 0; j < n; j++)
				assert_string_not_equal(seen[j], seen[n]);
			n++;
		}
}

static void test_machine_json_and_diff(void **state)
{
	(void)state;
	struct vmconf *c = parse_ok("{\"version\": 1, \"network\": {\"bridges\": [{\"name\": \"br0\", \"uplink\": "
				    "\"eth0\"}, {\"name\": \"br1\"}]}, \"vms\": [{\"name\": \"vm0\", \"memory_mib\": 64, "
				    "\"vcpus\": 1, \"nics\": [{\"bridge\": \"br0\"}, {\"bridge\": \"br1\", \"mac\": "
				    "\"52:54:00:00:00:01\"}, {\"bridge\": \"br0\", \"mac\": \"52:54:00:00:00:02\"}]}]}");
	struct vmconf *back = NULL, *d = NULL;
	struct vmconf_errors errs = { 0 };
	json_object *o = vmconf_vm_to_json(&c->vms[0]), *nics;
	char **diff = NULL;

	/* Every MAC written out, the derived one included. */
	assert_true(json_object_object_get_ex(o, "nics", &nics));
	assert_string_equal(json_object_to_json_string_ext(nics, JSON_C_TO_STRING_PLAIN),
			    "[{\"bridge\":\"br0\",\"mac\":\"52:72:00:7c:10:c3\",\"model\":\"virtio-net-pci\"},"
			    "{\"bridge\":\"br1\",\"mac\":\"52:54:00:00:00:01\",\"model\":\"virtio-net-pci\"},"
			    "{\"bridge\":\"br0\",\"mac\":\"52:54:00:00:00:02\",\"model\":\"virtio-net-pci\"}]");
	/* Read back alone, without the configuration's network section. */
	assert_int_equal(vmconf_vm_from_json(o, &back, &errs), 0);
	assert_int_equal(back->vms[0].n_nics, 3);
	assert_string_equal(back->vms[0].nics[0].mac, "52:72:00:7c:10:c3");
	assert_false(back->vms[0].nics[0].mac_derived);
	assert_int_equal(vmconf_vm_diff(&c->vms[0], &back->vms[0], &diff), 0);
	assert_null(diff);
	json_object_put(o);

	/* A changed MAC, bridge and model, and a NIC less: config_pending paths. */
	d = parse_ok("{\"version\": 1, \"network\": {\"bridges\": [{\"name\": \"br0\"}, {\"name\": \"br1\"}]}, "
		     "\"vms\": [{\"name\": \"vm0\", \"memory_mib\": 64, \"vcpus\": 1, \"nics\": [{\"bridge\": "
		     "\"br0\", \"mac\": \"52:54:00:00:00:09\"}, {\"bridge\": \"br0\", \"mac\": \"52:54:00:00:00:01\", "
		     "\"model\": \"e1000\"}]}]}");
	assert_int_equal(vmconf_vm_diff(&back->vms[0], &d->vms[0], &diff), 4);
	assert_string_equal(diff[0], "nics[0].mac");
	assert_string_equal(diff[1], "nics[1].bridge");
	assert_string_equal(diff[2], "nics[1].model");
	assert_string_equal(diff[3], "nics[2]");
	assert_null(diff[4]);
	vmconf_strv_free(diff);
	vmconf_free(back);
	vmconf_free(d);
	vmconf_free(c);
}

static void expect_argv_tail(char **argv, const char *const *want)
{
	size_t n = 0, w = 0;

	while (argv[n])
		n++;
	while (want[w])
		w++;
	assert_true(n >= w);
	for (size_t i = 0; i < w; i++)
		assert_string_equal(argv[n - w + i], want[i]);
}

static void test_argv_nics(void **state)
{
	(void)state;
	struct vmconf *c = parse_ok("{\"version\": 1, \"network\": {\"bridges\": [{\"name\": \"br0\"}]}, \"vms\": ["
				    "{\"name\": \"vm0\", \"memory_mib\": 64, \"vcpus\": 1, \"machine\": \"q35\", "
				    "\"disks\": [{\"path\": \"/d.img\"}], \"nics\": [{\"bridge\": \"br0\"}, "
				    "{\"bridge\": \"br0\", \"mac\": \"52:54:00:00:00:01\", \"model\": \"e1000\"}]},"
				    "{\"name\": \"vm1\", \"memory_mib\": 64, \"vcpus\": 1, \"machine\": \"pc-i440fx-10.0\", "
				    "\"nics\": [{\"bridge\": \"br0\"}]},"
				    "{\"name\": \"vm2\", \"memory_mib\": 64, \"vcpus\": 1, \"machine\": \"microvm\", "
				    "\"nics\": [{\"bridge\": \"br0\"}]}]}");
	struct vmconf_argv_nic nics[2] = { { 6, 7 }, { 8, -1 } };
	struct vmconf_argv_opts o = { .ram_backing = VMCONF_RAM_PROCFD, .ram_fd = 5, .accel = VMCONF_ACCEL_KVM,
				      .qmp_fd = 3, .serial_fd = 4, .incoming_defer = true, .nics = nics, .n_nics = 2 };
	char **argv = NULL;
	char mac1[VMCONF_MAC_LEN + 1], dev[128];

	/* After the disks, before -incoming: the slots do not move. */
	assert_int_equal(vmconf_build_argv(&c->vms[0], &o, &argv), 0);
	expect_argv_tail(argv, (const char *const[]){
		"-drive", "file=/d.img,format=raw,if=virtio,id=disk0",
		"-netdev", "tap,id=net0,fd=6,vhost=on,vhostfd=7",
		"-device", "virtio-net-pci,netdev=net0,mac=52:72:00:7c:10:c3,bus=pcie.0,romfile=",
		"-netdev", "tap,id=net1,fd=8",
		"-device", "e1000,netdev=net1,mac=52:54:00:00:00:01,bus=pcie.0,romfile=",
		"-incoming", "defer", NULL });
	vmconf_argv_free(argv);

	/* pc: bus pci.0; a machine we do not know: QEMU picks. */
	vmconf_mac_derive("vm1", 0, mac1);
	nics[0].vhost_fd = -1;
	o.n_nics = 1;
	o.incoming_defer = false;
	assert_int_equal(vmconf_build_argv(&c->vms[1], &o, &argv), 0);
	snprintf(dev, sizeof(dev), "virtio-net-pci,netdev=net0,mac=%s,bus=pci.0,romfile=", mac1);
	expect_argv_tail(argv, (const char *const[]){ "-netdev", "tap,id=net0,fd=6", "-device", dev, NULL });
	vmconf_argv_free(argv);
	assert_int_equal(vmconf_build_argv(&c->vms[2], &o, &argv), 0);
	vmconf_mac_derive("vm2", 0, mac1);
	snprintf(dev, sizeof(dev), "virtio-net-pci,netdev=net0,mac=%s", mac1);
	expect_argv_tail(argv, (const char *const[]){ "-netdev", "tap,id=net0,fd=6", "-device", dev, NULL });
	vmconf_argv_free(argv);

	/* The fds must match the NICs, and be QEMU's (>= 3). */
	argv = NULL;
	o.n_nics = 0;
	assert_int_equal(vmconf_build_argv(&c->vms[1], &o, &argv), -EINVAL);
	o.n_nics = 1;
	nics[0].tap_fd = 2;
	assert_int_equal(vmconf_build_argv(&c->vms[1], &o, &argv), -EINVAL);
	nics[0].tap_fd = 6;
	nics[0].vhost_fd = 1;
	assert_int_equal(vmconf_build_argv(&c->vms[1], &o, &argv), -EINVAL);
	o.nics = NULL;
	assert_int_equal(vmconf_build_argv(&c->vms[1], &o, &argv), -EINVAL);
	assert_null(argv);
	vmconf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_parsed),
		cmocka_unit_test(test_rules_more),
		cmocka_unit_test(test_mac_derive),
		cmocka_unit_test(test_machine_json_and_diff),
		cmocka_unit_test(test_argv_nics),
	};
	return cmocka_run_group_tests_name("vmconf_net", tests, NULL, NULL);
}
