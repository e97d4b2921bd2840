/* strbuf.h - a growing NUL-terminated string for building messages. An
 * append that cannot allocate sets `oom` and the string stays as it was;
 * later appends do nothing, and strbuf_take() reports it once. */
#ifndef CORDON_STRBUF_H
#define CORDON_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *p; /* NULL until the first append */
	size_t len, cap;
	bool oom;
};

/* Appends `n` bytes of `s` (which need not be NUL-terminated). */
void strbuf_add(struct strbuf *b, const char *s, size_t n);
/* Appends the string `s`. */
void strbuf_puts(struct strbuf *b, const char *s);
/* Appends printf's output, whatever its length. */
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the string over in *ret ("" when nothing was appended) and empties
 * `b`; returns 0, or -ENOMEM when an append failed (then `b` is freed). */
int strbuf_take(struct strbuf *b, char **ret) __attribute__((warn_unused_result));
/* Frees the string; `b` is empty again. */
void strbuf_free(struct strbuf *b);

#endif
