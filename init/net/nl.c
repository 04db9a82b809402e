/* rtnetlink messages, by hand (see nl.h for why). */
#include "net/nl.h"

#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NL_TIMEOUT_MS 3000

static struct nlmsghdr *hdr(struct nl_msg *m)
{
	return (struct nlmsghdr *)m->buf;
}

static void *reserve(struct nl_msg *m, size_t len)
{
	size_t al = NLMSG_ALIGN(len);
	void *p;

	if (m->overflow || m->len + al > sizeof(m->buf)) {
		m->overflow = true;
		return NULL;
	}
	p = m->buf + m->len;
	memset(p, 0, al);
	m->len += al;
	return p;
}

void nl_msg_link(struct nl_msg *m, uint16_t type, uint16_t flags, uint32_t seq, int ifindex, unsigned ifflags,
		 unsigned change)
{
	struct nlmsghdr *h;
	struct ifinfomsg *ifi;

	memset(m, 0, sizeof(*m));
	h = reserve(m, sizeof(*h));
	h->nlmsg_type = type;
	h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
	h->nlmsg_seq = seq;
	ifi = reserve(m, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_flags = ifflags;
	ifi->ifi_change = change;
}

void nl_put(struct nl_msg *m, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = reserve(m, NLA_HDRLEN + len);

	if (!a)
		return;
	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	if (len)
		memcpy((char *)a + NLA_HDRLEN, data, len);
}

void nl_put_str(struct nl_msg *m, uint16_t type, const char *s)
{
	nl_put(m, type, s, strlen(s) + 1);
}

void nl_put_u32(struct nl_msg *m, uint16_t type, uint32_t v)
{
	nl_put(m, type, &v, sizeof(v));
}

void nl_nest_begin(struct nl_msg *m, uint16_t type)
{
	size_t at = m->len;

	if (m->depth >= NL_NEST_MAX) {
		m->overflow = true;
		return;
	}
	nl_put(m, type | NLA_F_NESTED, NULL, 0);
	m->nest[m->depth++] = at;
}

void nl_nest_end(struct nl_msg *m)
{
	if (m->depth <= 0) {
		m->overflow = true;
		return;
	}
	size_t at = m->nest[--m->depth];
	if (!m->overflow)
		((struct nlattr *)(m->buf + at))->nla_len = (uint16_t)(m->len - at);
}

int nl_msg_end(struct nl_msg *m)
{
	if (m->overflow || m->depth != 0 || m->len < NLMSG_HDRLEN)
		return -EMSGSIZE;
	hdr(m)->nlmsg_len = (uint32_t)m->len;
	return 0;
}

/* Copy a string attribute (NUL-terminated within its length) into out. */
static void attr_str(const struct nlattr *a, char *out, size_t outlen)
{
	size_t n = a->nla_len - NLA_HDRLEN;
	const char *s = (const char *)a + NLA_HDRLEN;

	n = strnlen(s, n);
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, s, n);
	out[n] = 0;
}

/* Walk the attributes in [p, p + len): f for each; -EBADMSG when one does
 * not fit. */
static int attrs(const unsigned char *p, size_t len, void (*f)(const struct nlattr *, struct nl_reply *),
		 struct nl_reply *r)
{
	while (len >= NLA_HDRLEN) {
		const struct nlattr *a = (const struct nlattr *)p;
		if (a->nla_len < NLA_HDRLEN || a->nla_len > len)
			return -EBADMSG;
		f(a, r);
		size_t step = NLA_ALIGN(a->nla_len);
		if (step >= len)
			break;
		p += step;
		len -= step;
	}
	return 0;
}

static void linkinfo_attr(const struct nlattr *a, struct nl_reply *r)
{
	if ((a->nla_type & NLA_TYPE_MASK) == IFLA_INFO_KIND)
		attr_str(a, r->kind, sizeof(r->kind));
}

static void link_attr(const struct nlattr *a, struct nl_reply *r)
{
	switch (a->nla_type & NLA_TYPE_MASK) {
	case IFLA_IFNAME:
		attr_str(a, r->ifname, sizeof(r->ifname));
		break;
	case IFLA_MASTER:
		if (a->nla_len >= NLA_HDRLEN + 4)
			memcpy(&r->master, (const char *)a + NLA_HDRLEN, 4);
		break;
	case IFLA_LINKINFO:
		(void)attrs((const unsigned char *)a + NLA_HDRLEN, a->nla_len - NLA_HDRLEN, linkinfo_attr, r);
		break;
	default:
		break;
	}
}

static void ack_attr(const struct nlattr *a, struct nl_reply *r)
{
	if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG)
		attr_str(a, r->msg, sizeof(r->msg));
}

int nl_parse(const void *buf, size_t len, uint32_t seq, struct nl_reply *r)
{
	const unsigned char *p = buf;

	while (len >= NLMSG_HDRLEN) {
		const struct nlmsghdr *h = (const struct nlmsghdr *)p;
		size_t n = h->nlmsg_len;
		if (n < NLMSG_HDRLEN || n > len)
			return -EBADMSG;
		if (h->nlmsg_seq == seq && h->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(h);
			if (n < NLMSG_HDRLEN + sizeof(*e))
				return -EBADMSG;
			r->error = e->error > 0 ? -e->error : e->error;
			if (h->nlmsg_flags & NLM_F_ACK_TLVS) {
				/* With NETLINK_CAP_ACK only the request's header is echoed. */
				size_t off = NLMSG_HDRLEN + sizeof(*e);
				if (!(h->nlmsg_flags & NLM_F_CAPPED))
					off += NLMSG_ALIGN(e->msg.nlmsg_len) - NLMSG_HDRLEN;
				if (off < n && attrs(p + off, n - off, ack_attr, r) < 0)
					return -EBADMSG;
			}
			return 1;
		}
		if (h->nlmsg_seq == seq && h->nlmsg_type == RTM_NEWLINK) {
			const struct ifinfomsg *ifi = NLMSG_DATA(h);
			size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(*ifi));
			if (n < off)
				return -EBADMSG;
			r->link = true;
			r->ifindex = ifi->ifi_index;
			r->ifflags = ifi->ifi_flags;
			if (attrs(p + off, n - off, link_attr, r) < 0)
				return -EBADMSG;
		}
		size_t step = NLMSG_ALIGN(n);
		if (step >= len)
			break;
		p += step;
		len -= step;
	}
	return 0;
}

int nl_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), one = 1;

	if (fd < 0)
		return -errno;
	/* Best effort: older kernels have neither, and answer anyway. */
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	return fd;
}

int nl_talk(int fd, struct nl_msg *m, struct nl_reply *r)
{
	static uint32_t seq;
	unsigned char buf[8192] __attribute__((aligned(4)));
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int rc;

	memset(r, 0, sizeof(*r));
	((struct nlmsghdr *)m->buf)->nlmsg_seq = ++seq;
	if ((rc = nl_msg_end(m)) < 0)
		return r->error = rc;
	if (sendto(fd, m->buf, m->len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return r->error = -errno;
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		rc = poll(&pf, 1, NL_TIMEOUT_MS);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return r->error = rc < 0 ? -errno : -ETIMEDOUT;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return r->error = -errno;
		rc = nl_parse(buf, (size_t)n, seq, r);
		if (rc < 0)
			return r->error = rc;
		if (rc > 0)
			return r->error;
	}
}
