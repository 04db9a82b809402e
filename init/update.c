/* The host kernel live update. Not implemented yet: refuse clearly, so that
 * an operator's script fails instead of believing it updated. */
#include "update.h"

#include <errno.h>
#include <stdio.h>

int update_start(const struct update_req *req, char *err, size_t errlen)
{
	(void)req;
	snprintf(err, errlen, "host kernel live update is not implemented in this build");
	return -ENOSYS;
}
