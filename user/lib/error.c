// SPDX-License-Identifier: MIT
/* The library's one way to fill a struct epg_error (model.h). */
#include <stdarg.h>
#include <stdio.h>
#include "model.h"

int epg_set_err(struct epg_error *err, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return rc;
}

