/* alerts.h - alert messages for the outbound topics */
#ifndef CORDON_ALERTS_H
#define CORDON_ALERTS_H

#include <stddef.h>

#include "rules.h"

/* Renders the SPEC section 4 alert message; returns a malloc'ed JSON
 * string, or NULL when out of memory. */
char *alerts_render(const struct alert *a);
/* "<root>/<site>/alert/<kind>" */
void alerts_topic(const char *root, const struct alert *a, char *buf, size_t len);
/* One sentence for an operator, e.g. "Fever 38.6 °C at gate G03 (card C-0412)". */
void alerts_text(const struct alert *a, char *buf, size_t len);

#endif
