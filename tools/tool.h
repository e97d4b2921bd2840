/* tool.h - what cordonctl and cordon-sim share: their messages and the id
 * check. Private to tools/ (not a core module). */
#ifndef CORDON_TOOL_H
#define CORDON_TOOL_H

/* Set by each program: "cordonctl", "cordon-sim"; and what its usage line
 * starts with ("cordonctl [-c FILE]"). */
extern const char tool_name[];
extern const char tool_synopsis_prefix[];

/* Exit status of a usage error. */
#define TOOL_USAGE 2

/* Prints "<tool>: <message>" to stderr. */
void tool_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "<tool>: <message>" and, with a synopsis, the usage line to
 * stderr; returns TOOL_USAGE. */
int tool_usage(const char *synopsis, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 1 when s is a site, gate, zone, household, card or person id:
 * [A-Za-z0-9_-]{1,64} (SPEC 2). */
int tool_valid_id(const char *s);

#endif
