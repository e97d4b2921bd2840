/* strbuf.c - a growing string (strbuf.h). */
#include "strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
strbuf_add(struct strbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
strbuf_puts(struct strbuf *b, const char *s)
{
	strbuf_add(b, s, strlen(s));
}

void
strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
	char tmp[256], *big = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
	} else if ((size_t)n < sizeof(tmp)) {
		strbuf_add(b, tmp, (size_t)n);
	} else {
		va_start(ap, fmt);
		n = vasprintf(&big, fmt, ap);
		va_end(ap);
		if (n < 0)
			b->oom = true;
		else
			strbuf_add(b, big, (size_t)n);
		free(big);
	}
}

int
strbuf_take(struct strbuf *b, char **ret)
{
	if (!b->oom && !b->p)
		strbuf_add(b, "", 0);
	if (b->oom) {
		strbuf_free(b);
		return -ENOMEM;
	}
	*ret = b->p;
	*b = (struct strbuf){ 0 };
	return 0;
}

void
strbuf_free(struct strbuf *b)
{
	free(b->p);
	*b = (struct strbuf){ 0 };
}
