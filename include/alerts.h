/* alerts.h - alert messages for the outbound topics (SPEC 2, 4) */
#ifndef CORDON_ALERTS_H
#define CORDON_ALERTS_H

#include <stddef.h>

#include "registry.h"
#include "alert_state.h"

/* Renders the SPEC 4 alert message of a transition; returns a malloc'ed
 * JSON string, or NULL when out of memory. `reg` adds the building. */
char *alerts_render(const struct alert_transition *t, const struct registry_snapshot *reg);
/* "<root>/<site>/alert/<kind>" */
void alerts_topic(const char *root, const struct alert *a, char *buf, size_t len);
/* "<root>/<site>/alerts/<alert_id>" (retained current state) */
void alerts_state_topic(const char *root, const struct alert *a, char *buf, size_t len);
/* One sentence for an operator, e.g. "Fever 38.6 °C at gate G03
 * (household 3-2-401, card C-0412)". Ids only: never names or phones. */
void alerts_text(const struct alert *a, char *buf, size_t len);
/* The reject notice for integrators: {"topic","reason","detail","excerpt"}
 * with at most 256 bytes of the payload (as text when valid UTF-8). */
char *alerts_reject_notice(const char *topic, size_t topic_len, const char *reason,
			   const char *detail, const void *payload, size_t len);
/* A shorter form of an outbound message (an alert or a reject notice,
 * JSON objects) that fits in `max` bytes: adds "shortened":true, drops the
 * optional fields one by one (building, zone, call_id, card, by,
 * resolved_at, reason, transition; a notice's excerpt, detail), and last
 * cuts "text" with an ellipsis. Returns a malloc'ed string of *ret_len
 * bytes, or NULL when the message is not a JSON object, still does not
 * fit, or memory runs out. Thread-safe (jansson on its own objects). */
char *alerts_shorten(const void *payload, size_t len, size_t max, size_t *ret_len);

#endif
