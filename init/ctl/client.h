/* `luoinit ctl`: send one command over the control protocol (design.md §4). */
#ifndef LUOINIT_CTL_CLIENT_H
#define LUOINIT_CTL_CLIENT_H

#define CTL_DEFAULT_SOCKET "/run/luoinit.sock"

/* argv[0] is "ctl"; then [--socket PATH] [--timeout SEC] COMMAND [key=value ...].
 * Returns the exit status: 0 success, 1 command error or failure to reach the
 * server, 2 usage error. */
int ctl_client_main(int argc, char **argv);

/* Build the "arguments" object from key=value / key:=JSON words. Returns 0,
 * or -EINVAL with a message in errbuf. For tests. */
struct json_object;
int ctl_client_build_args(int n, char **words, struct json_object **ret_args,
			  char *errbuf, unsigned errlen);

#endif
