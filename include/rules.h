/* rules.h - pure alert rules: (config, event, time) -> alert transitions.
 * No I/O and no clock reads: time comes in as an argument. */
#ifndef CORDON_RULES_H
#define CORDON_RULES_H

#include <stdint.h>

#include "normalize.h"

struct rules_config {
	int16_t fever_dc;	/* tenths of a degree C */
	int16_t critical_dc;
};

enum alert_severity {
	SEVERITY_WARNING,
	SEVERITY_CRITICAL,
};

struct alert {
	char alert_id[33];
	const char *kind;	/* "fever", ... (static) */
	enum alert_severity severity;
	const char *state;	/* "raised", ... (static) */
	char site[NORM_ID_MAX + 1];
	char subject[NORM_ID_MAX + 16];
	char gate[NORM_ID_MAX + 1];
	char card[NORM_ID_MAX + 1];
	char event_key[NORM_KEY_MAX];
	int16_t temp_dc;
	int64_t raised_us;
	int64_t updated_us;
	uint32_t count;
};

void rules_config_from(struct rules_config *rc, double fever_c, double critical_c);

/* Applies the event rules to `ev`; returns 1 and fills *ret_alert when the
 * event raises an alert, 0 otherwise. */
int rules_gate_event(const struct rules_config *rc, const struct event *ev,
		     struct alert *ret_alert);

/* alert_id: hex of a 128-bit hash of site, kind, subject and the first
 * triggering event's key, so that a replay yields the same id. */
void rules_alert_id(const char *site, const char *kind, const char *subject,
		    const char *event_key, char ret_id[33]);

const char *rules_severity_name(enum alert_severity s);

#endif
