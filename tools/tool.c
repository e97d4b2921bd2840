/* tool.c - messages and the id check shared by cordonctl and cordon-sim. */
#include "tool.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "normalize.h"

static void
vmessage(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", tool_name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
tool_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(fmt, ap);
	va_end(ap);
}

int
tool_usage(const char *synopsis, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(fmt, ap);
	va_end(ap);
	if (synopsis)
		fprintf(stderr, "usage: %s %s\n", tool_synopsis_prefix, synopsis);
	fprintf(stderr, "(%s --help lists every command)\n", tool_name);
	return TOOL_USAGE;
}

int
tool_valid_id(const char *s)
{
	return normalize_valid_id(s, strlen(s));
}
