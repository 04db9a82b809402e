/* Bridges, masters, up: RTM_NEWLINK and RTM_GETLINK requests. */
#include "net/link.h"

#include <errno.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "net/nl.h"

static int failed(const struct nl_reply *r, int rc, char *err, size_t errlen)
{
	if (r->msg[0])
		snprintf(err, errlen, "%s (%s)", strerror(-rc), r->msg);
	else
		snprintf(err, errlen, "%s", strerror(-rc));
	return rc;
}

int link_bridge_add(int nl, const char *name, char *err, size_t errlen)
{
	struct nl_msg m;
	struct nl_reply r;
	int rc;

	nl_msg_link(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0, 0, 0, 0);
	nl_put_str(&m, IFLA_IFNAME, name);
	nl_nest_begin(&m, IFLA_LINKINFO);
	nl_put_str(&m, IFLA_INFO_KIND, "bridge");
	nl_nest_end(&m);
	rc = nl_talk(nl, &m, &r);
	return rc < 0 ? failed(&r, rc, err, errlen) : 0;
}

int link_index(int nl, const char *name, char *kind, size_t kindlen)
{
	struct nl_msg m;
	struct nl_reply r;
	int rc;

	nl_msg_link(&m, RTM_GETLINK, 0, 0, 0, 0, 0);
	nl_put_str(&m, IFLA_IFNAME, name);
	rc = nl_talk(nl, &m, &r);
	if (rc < 0)
		return rc;
	if (!r.link || r.ifindex <= 0)
		return -ENODEV;
	if (kind)
		snprintf(kind, kindlen, "%s", r.kind);
	return r.ifindex;
}

int link_set(int nl, int ifindex, int master, char *err, size_t errlen)
{
	struct nl_msg m;
	struct nl_reply r;
	int rc;

	nl_msg_link(&m, RTM_NEWLINK, 0, 0, ifindex, IFF_UP, IFF_UP);
	if (master >= 0)
		nl_put_u32(&m, IFLA_MASTER, (uint32_t)master);
	rc = nl_talk(nl, &m, &r);
	return rc < 0 ? failed(&r, rc, err, errlen) : 0;
}
