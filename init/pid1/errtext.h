/* The error sentences of the parsers and checkers: printf into the caller's
 * buffer, -EINVAL back, so that `return errtext(err, errlen, ...)` says
 * what was wrong in one line. */
#ifndef LUOINIT_ERRTEXT_H
#define LUOINIT_ERRTEXT_H

#include <stddef.h>

int errtext(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
