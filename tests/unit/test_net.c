/* init/net: rtnetlink messages built byte for byte and replies parsed
 * (acks, errors with the kernel's text, links, malformed input), tap names,
 * and link.c against the kernel in a network namespace of this test's own
 * (skipped where unshare(CLONE_NEWNET) is not allowed). */
#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <json-c/json.h>

#include "net/link.h"
#include "net/net.h"
#include "net/nl.h"
#include "net/tap.h"
#include "vmconf.h"

static uint32_t u32_at(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint16_t u16_at(const unsigned char *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static void test_build_bridge(void **state)
{
	(void)state;
	struct nl_msg m;
	const unsigned char *b = m.buf;

	nl_msg_link(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 7, 0, 0, 0);
	nl_put_str(&m, IFLA_IFNAME, "br0");
	nl_nest_begin(&m, IFLA_LINKINFO);
	nl_put_str(&m, IFLA_INFO_KIND, "bridge");
	nl_nest_end(&m);
	assert_int_equal(nl_msg_end(&m), 0);

	/* nlmsghdr 16 + ifinfomsg 16 + IFNAME 8 + LINKINFO (4 + KIND 4+7, padded) 16 */
	assert_int_equal(m.len, 56);
	assert_int_equal(u32_at(b), 56);
	assert_int_equal(u16_at(b + 4), RTM_NEWLINK);
	assert_int_equal(u16_at(b + 6), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
	assert_int_equal(u32_at(b + 8), 7);
	assert_int_equal(u32_at(b + 12), 0);
	/* ifinfomsg: family AF_UNSPEC, index 0 (by name), no flags */
	for (size_t i = 16; i < 32; i++)
		assert_int_equal(b[i], 0);
	assert_int_equal(u16_at(b + 32), 8);
	assert_int_equal(u16_at(b + 34), IFLA_IFNAME);
	assert_memory_equal(b + 36, "br0", 4);
	assert_int_equal(u16_at(b + 40), 16);
	assert_int_equal(u16_at(b + 42), IFLA_LINKINFO | NLA_F_NESTED);
	assert_int_equal(u16_at(b + 44), 11);
	assert_int_equal(u16_at(b + 46), IFLA_INFO_KIND);
	assert_memory_equal(b + 48, "bridge", 7);
	assert_int_equal(b[55], 0); /* padding */
}

static void test_build_set(void **state)
{
	(void)state;
	struct nl_msg m;
	struct ifinfomsg ifi;

	nl_msg_link(&m, RTM_NEWLINK, 0, 1, 42, IFF_UP, IFF_UP);
	nl_put_u32(&m, IFLA_MASTER, 5);
	assert_int_equal(nl_msg_end(&m), 0);
	assert_int_equal(m.len, 16 + 16 + 8);
	assert_int_equal(u16_at(m.buf + 6), NLM_F_REQUEST | NLM_F_ACK);
	memcpy(&ifi, m.buf + 16, sizeof(ifi));
	assert_int_equal(ifi.ifi_index, 42);
	assert_int_equal(ifi.ifi_flags, IFF_UP);
	assert_int_equal(ifi.ifi_change, IFF_UP);
	assert_int_equal(u16_at(m.buf + 32), 8);
	assert_int_equal(u16_at(m.buf + 34), IFLA_MASTER);
	assert_int_equal(u32_at(m.buf + 36), 5);
}

static void test_build_limits(void **state)
{
	(void)state;
	struct nl_msg m;
	char big[NL_MSG_MAX];

	memset(big, 'x', sizeof(big));
	nl_msg_link(&m, RTM_NEWLINK, 0, 1, 0, 0, 0);
	nl_put(&m, IFLA_IFNAME, big, sizeof(big) - 20); /* 16 + 16 + 4 + 492 > 512 */
	assert_true(m.overflow);
	assert_int_equal(nl_msg_end(&m), -EMSGSIZE);

	nl_msg_link(&m, RTM_NEWLINK, 0, 1, 0, 0, 0);
	nl_nest_begin(&m, IFLA_LINKINFO);
	assert_int_equal(nl_msg_end(&m), -EMSGSIZE); /* a nest left open */
	nl_nest_end(&m);
	assert_int_equal(nl_msg_end(&m), 0);
	nl_nest_end(&m); /* one end too many */
	assert_int_equal(nl_msg_end(&m), -EMSGSIZE);

	nl_msg_link(&m, RTM_NEWLINK, 0, 1, 0, 0, 0);
	for (int i = 0; i <= NL_NEST_MAX; i++)
		nl_nest_begin(&m, IFLA_LINKINFO);
	assert_true(m.overflow);
}

/* Replies are written into buf as the kernel would. */
struct rbuf {
	unsigned char b[1024] __attribute__((aligned(4)));
	size_t len;
};

static unsigned char *rmsg(struct rbuf *r, uint16_t type, uint16_t flags, uint32_t seq, size_t payload)
{
	struct nlmsghdr h = { .nlmsg_len = (uint32_t)(NLMSG_HDRLEN + payload), .nlmsg_type = type,
			      .nlmsg_flags = flags, .nlmsg_seq = seq };
	unsigned char *p = r->b + r->len;

	memset(p, 0, NLMSG_ALIGN(h.nlmsg_len));
	memcpy(p, &h, sizeof(h));
	r->len += NLMSG_ALIGN(h.nlmsg_len);
	return p + NLMSG_HDRLEN;
}

static size_t rattr(unsigned char *p, uint16_t type, const void *data, size_t len)
{
	struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + len), .nla_type = type };

	memcpy(p, &a, sizeof(a));
	memcpy(p + NLA_HDRLEN, data, len);
	return NLA_ALIGN(a.nla_len);
}

static void put_err(struct rbuf *r, uint32_t seq, int error, const char *msg)
{
	size_t extra = msg ? NLA_ALIGN(NLA_HDRLEN + strlen(msg) + 1) : 0;
	unsigned char *p = rmsg(r, NLMSG_ERROR, msg ? NLM_F_CAPPED | NLM_F_ACK_TLVS : NLM_F_CAPPED, seq,
				sizeof(struct nlmsgerr) + extra);
	struct nlmsgerr e = { .error = error };

	e.msg.nlmsg_len = 40; /* the request's header, echoed (capped) */
	e.msg.nlmsg_seq = seq;
	memcpy(p, &e, sizeof(e));
	if (msg)
		rattr(p + sizeof(e), NLMSGERR_ATTR_MSG, msg, strlen(msg) + 1);
}

static void test_parse_ack_and_error(void **state)
{
	(void)state;
	struct rbuf r = { .len = 0 };
	struct nl_reply rep;

	put_err(&r, 3, 0, NULL);
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(nl_parse(r.b, r.len, 3, &rep), 1);
	assert_int_equal(rep.error, 0);
	assert_string_equal(rep.msg, "");
	/* Another request's ack is not ours: read on. */
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(nl_parse(r.b, r.len, 4, &rep), 0);

	r.len = 0;
	put_err(&r, 9, -ENODEV, "Unknown device type");
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(nl_parse(r.b, r.len, 9, &rep), 1);
	assert_int_equal(rep.error, -ENODEV);
	assert_string_equal(rep.msg, "Unknown device type");
}

static void test_parse_link(void **state)
{
	(void)state;
	struct rbuf r = { .len = 0 };
	struct nl_reply rep;
	struct ifinfomsg ifi = { .ifi_index = 12, .ifi_flags = IFF_UP };
	unsigned char *p, kind[16];
	uint32_t master = 4;
	size_t off, k;

	/* ifinfomsg, IFNAME, MASTER, LINKINFO { KIND } */
	k = rattr(kind, IFLA_INFO_KIND, "tun", 4);
	p = rmsg(&r, RTM_NEWLINK, 0, 5, NLMSG_ALIGN(sizeof(ifi)) + NLA_ALIGN(NLA_HDRLEN + 9) + 8 + NLA_HDRLEN + k);
	memcpy(p, &ifi, sizeof(ifi));
	off = NLMSG_ALIGN(sizeof(ifi));
	off += rattr(p + off, IFLA_IFNAME, "lu-vm0-0", 9);
	off += rattr(p + off, IFLA_MASTER, &master, 4);
	rattr(p + off, IFLA_LINKINFO | NLA_F_NESTED, kind, k);
	put_err(&r, 5, 0, NULL);

	memset(&rep, 0, sizeof(rep));
	assert_int_equal(nl_parse(r.b, r.len, 5, &rep), 1);
	assert_true(rep.link);
	assert_int_equal(rep.ifindex, 12);
	assert_int_equal(rep.ifflags, IFF_UP);
	assert_string_equal(rep.ifname, "lu-vm0-0");
	assert_int_equal(rep.master, 4);
	assert_string_equal(rep.kind, "tun");
	assert_int_equal(rep.error, 0);

	/* The link alone (the ack in the next datagram): read on. */
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(nl_parse(r.b, NLMSG_ALIGN(u32_at(r.b)), 5, &rep), 0);
	assert_true(rep.link);
}

static void test_parse_malformed(void **state)
{
	(void)state;
	struct rbuf r = { .len = 0 };
	struct nl_reply rep;
	unsigned char *p;

	put_err(&r, 1, 0, NULL);
	memset(&rep, 0, sizeof(rep));
	/* Cut short: the header says more than there is. */
	assert_int_equal(nl_parse(r.b, r.len - 4, 1, &rep), -EBADMSG);
	/* A length below the header's. */
	r.b[0] = 8;
	assert_int_equal(nl_parse(r.b, r.len, 1, &rep), -EBADMSG);
	/* An error message too short for its nlmsgerr. */
	r.len = 0;
	rmsg(&r, NLMSG_ERROR, 0, 1, 4);
	assert_int_equal(nl_parse(r.b, r.len, 1, &rep), -EBADMSG);
	/* An attribute longer than its message. */
	r.len = 0;
	p = rmsg(&r, RTM_NEWLINK, 0, 2, NLMSG_ALIGN(sizeof(struct ifinfomsg)) + 8);
	rattr(p + NLMSG_ALIGN(sizeof(struct ifinfomsg)), IFLA_IFNAME, "abc", 4);
	p[NLMSG_ALIGN(sizeof(struct ifinfomsg))] = 200;
	assert_int_equal(nl_parse(r.b, r.len, 2, &rep), -EBADMSG);
	/* Less than a header: nothing to say. */
	assert_int_equal(nl_parse(r.b, 8, 2, &rep), 0);
}

static void test_tap_name(void **state)
{
	(void)state;
	char a[TAP_NAME_MAX], b[TAP_NAME_MAX];

	tap_name("vm0", 0, a);
	assert_string_equal(a, "lu-vm0-0");
	tap_name("abcdefghij", 7, a); /* 15 bytes: fits */
	assert_string_equal(a, "lu-abcdefghij-7");
	tap_name("abcdefghijk", 7, a);
	assert_int_equal(strlen(a), 15);
	assert_memory_equal(a, "lu-abcdef", 9);
	assert_string_equal(a + 13, "-7");
	tap_name("abcdefghijk", 7, b);
	assert_string_equal(a, b); /* the same on every boot */
	tap_name("abcdefghijl", 7, b);
	assert_string_not_equal(a, b);
	tap_name("0123456789012345678901234567890x", 3, a); /* the longest VM name */
	assert_int_equal(strlen(a), 15);
}

/* link.c against the kernel, in a namespace of our own. */
static void test_links_in_netns(void **state)
{
	(void)state;
	char err[256] = "", kind[16];
	int nl, br, lo;

	if (unshare(CLONE_NEWNET) < 0) {
		print_message("unshare(CLONE_NEWNET): %s: skipped\n", strerror(errno));
		skip();
	}
	nl = nl_open();
	assert_true(nl >= 0);
	assert_int_equal(link_bridge_add(nl, "lubr0", err, sizeof(err)), 0);
	assert_int_equal(link_bridge_add(nl, "lubr0", err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "File exists"));
	br = link_index(nl, "lubr0", kind, sizeof(kind));
	assert_true(br > 0);
	assert_string_equal(kind, "bridge");
	assert_int_equal(link_index(nl, "nosuch0", NULL, 0), -ENODEV);
	assert_int_equal(link_set(nl, br, -1, err, sizeof(err)), 0);
	assert_true(if_nametoindex("lubr0") == (unsigned)br);
	/* A loopback cannot be a bridge port: the kernel says why. */
	lo = link_index(nl, "lo", kind, sizeof(kind));
	assert_true(lo > 0);
	assert_string_equal(kind, "");
	assert_true(link_set(nl, lo, br, err, sizeof(err)) < 0);
	assert_true(err[0] != 0);
	close(nl);
}

/* The ifindex of name's master, 0 for none (RTM_GETLINK through nl.c). */
static int master_of(const char *name)
{
	struct nl_msg m;
	struct nl_reply r;
	int nl = nl_open(), rc;

	assert_true(nl >= 0);
	nl_msg_link(&m, RTM_GETLINK, 0, 0, 0, 0, 0);
	nl_put_str(&m, IFLA_IFNAME, name);
	rc = nl_talk(nl, &m, &r);
	close(nl);
	assert_int_equal(rc, 0);
	assert_true(r.link);
	assert_true(r.ifflags & IFF_UP);
	return r.master;
}

/* net.c: bridges from a configuration, a NIC's tap moved between bridges
 * (a cold start on a changed configuration) and left alone without one. */
static void test_net_layer_in_netns(void **state)
{
	(void)state;
	static const char conf_json[] = "{\"version\": 1, \"vms\": [], \"network\": {\"bridges\": ["
		"{\"name\": \"br0\", \"uplink\": null}, {\"name\": \"br1\", \"uplink\": \"nosuch0\"}]}}";
	struct vmconf *c = NULL;
	struct net_nic x;
	char err[256];
	json_object *st, *bridges, *b1, *e;
	int fd;

	if (unshare(CLONE_NEWNET) < 0) {
		print_message("unshare(CLONE_NEWNET): %s: skipped\n", strerror(errno));
		skip();
	}
	assert_null(net_status_json()); /* nothing set up yet */
	assert_int_equal(vmconf_parse_buffer(conf_json, strlen(conf_json), &c, NULL), 0);
	assert_int_equal(net_setup(c), 1); /* br1's uplink */
	st = net_status_json();
	assert_true(json_object_object_get_ex(st, "bridges", &bridges));
	assert_int_equal(json_object_array_length(bridges), 2);
	b1 = json_object_array_get_idx(bridges, 1);
	assert_true(json_object_object_get_ex(b1, "error", &e));
	assert_string_equal(json_object_get_string(e), "uplink nosuch0 of bridge br1: no such interface");
	json_object_put(st);
	assert_true(master_of("br1") == 0); /* up anyway */

	net_nic_init(&x);
	assert_int_equal(net_nic_up(&x, "vm0", 0, "br0", err, sizeof(err)), 0);
	assert_string_equal(x.tap, "lu-vm0-0");
	assert_string_equal(x.bridge, "br0");
	assert_string_equal(x.error, "");
	assert_int_equal(master_of("lu-vm0-0"), (int)if_nametoindex("br0"));
	fd = x.fd;
	/* The same bridge again: nothing to do, the same tap. */
	assert_int_equal(net_nic_up(&x, "vm0", 0, "br0", err, sizeof(err)), 0);
	assert_int_equal(x.fd, fd);
	/* Another bridge: the tap moves. */
	assert_int_equal(net_nic_up(&x, "vm0", 0, "br1", err, sizeof(err)), 0);
	assert_int_equal(x.fd, fd);
	assert_int_equal(master_of("lu-vm0-0"), (int)if_nametoindex("br1"));
	/* A bridge that is not there: the tap stays, up and alone. */
	assert_int_equal(net_nic_up(&x, "vm0", 0, "br9", err, sizeof(err)), 0);
	assert_string_equal(x.error, "bridge br9: no such interface: tap lu-vm0-0 is not attached");
	assert_string_equal(x.bridge, "");
	assert_int_equal(master_of("lu-vm0-0"), 0);
	/* Closed: the tap is gone with its last fd. */
	net_nic_close(&x);
	assert_int_equal(if_nametoindex("lu-vm0-0"), 0);
	vmconf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_bridge),
		cmocka_unit_test(test_build_set),
		cmocka_unit_test(test_build_limits),
		cmocka_unit_test(test_parse_ack_and_error),
		cmocka_unit_test(test_parse_link),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_tap_name),
		cmocka_unit_test(test_links_in_netns),
		cmocka_unit_test(test_net_layer_in_netns),
	};
	return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
