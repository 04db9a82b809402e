/* rtnetlink, the few messages the init sends: built and parsed here without
 * libmnl or libnl (a page of code against a library and its closure in a
 * static PID 1), talked over one NETLINK_ROUTE socket. The building and
 * parsing are pure (unit-tested); nl_talk does the I/O. */
#ifndef LUOINIT_NL_H
#define LUOINIT_NL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NL_MSG_MAX 512   /* our requests are small */
#define NL_NEST_MAX 4

struct nl_msg {
	unsigned char buf[NL_MSG_MAX] __attribute__((aligned(4)));
	size_t len;
	size_t nest[NL_NEST_MAX];
	int depth;
	bool overflow;       /* a put did not fit: nl_msg_end fails */
};

/* A request: nlmsghdr (NLM_F_REQUEST | NLM_F_ACK | flags) and an ifinfomsg
 * for ifindex (0: by name) with flags/change (IFF_UP, ...). */
void nl_msg_link(struct nl_msg *m, uint16_t type, uint16_t flags, uint32_t seq, int ifindex, unsigned ifflags,
		 unsigned change);
void nl_put(struct nl_msg *m, uint16_t type, const void *data, size_t len);
void nl_put_str(struct nl_msg *m, uint16_t type, const char *s);  /* with its NUL */
void nl_put_u32(struct nl_msg *m, uint16_t type, uint32_t v);
void nl_nest_begin(struct nl_msg *m, uint16_t type);
void nl_nest_end(struct nl_msg *m);
/* Closes the message: 0, or -EMSGSIZE (too long, or a nest left open). */
int nl_msg_end(struct nl_msg *m);

/* What came back for one request. */
struct nl_reply {
	int error;           /* 0 (ack) or a negative errno */
	char msg[128];       /* the kernel's extended ack text, or "" */
	bool link;           /* an RTM_NEWLINK came: the fields below */
	int ifindex;
	unsigned ifflags;
	char ifname[16];
	int master;          /* IFLA_MASTER, 0 when none */
	char kind[16];       /* IFLA_LINKINFO / IFLA_INFO_KIND, "" when none */
};

/* Parse one datagram of replies to request seq into r (messages for other
 * sequence numbers are skipped). 1: the request's ack or error was in it
 * (r is complete), 0: read on, -EBADMSG: a malformed message. */
int nl_parse(const void *buf, size_t len, uint32_t seq, struct nl_reply *r);

/* A NETLINK_ROUTE socket (CLOEXEC, extended acks on, replies bounded by a
 * timeout so the init never hangs on it), or -errno. */
int nl_open(void);
/* Send m and read until its ack: 0 or the request's -errno (r says more). */
int nl_talk(int fd, struct nl_msg *m, struct nl_reply *r);

#endif
