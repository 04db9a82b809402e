/* Network links through rtnetlink (nl.h): the few operations the init
 * needs. Each returns 0 or a negative errno, with err saying what failed in
 * the kernel's words when it gave any. */
#ifndef LUOINIT_LINK_H
#define LUOINIT_LINK_H

#include <stdbool.h>
#include <stddef.h>

/* A bridge (IFLA_INFO_KIND "bridge"); -EEXIST when the name is taken. */
int link_bridge_add(int nl, const char *name, char *err, size_t errlen);
/* The ifindex of name (> 0), or -ENODEV. kind gets IFLA_INFO_KIND ("" for
 * a plain device) when not NULL. */
int link_index(int nl, const char *name, char *kind, size_t kindlen);
/* Set ifindex's master (0: none; -1: leave it) and bring it up. */
int link_set(int nl, int ifindex, int master, char *err, size_t errlen);

#endif
