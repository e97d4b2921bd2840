/* mqtt_watch.c - MQTT 5 reason codes in words; the client id conflict
 * window (see mqtt_watch.h). */
#include "mqtt_watch.h"

#include <stddef.h>

static const struct {
	int code;
	const char *text;
} reasons[MQTT_REASONS] = {
	{ 0x00, "normal disconnection" },
	{ 0x04, "disconnect with will message" },
	{ 0x80, "unspecified error" },
	{ 0x81, "malformed packet" },
	{ 0x82, "protocol error" },
	{ 0x83, "implementation specific error" },
	{ 0x87, "not authorized" },
	{ 0x89, "server busy" },
	{ 0x8B, "server shutting down" },
	{ 0x8D, "keep alive timeout" },
	{ 0x8E, "session taken over" },
	{ 0x8F, "topic filter invalid" },
	{ 0x90, "topic name invalid" },
	{ 0x91, "packet identifier in use" },
	{ 0x93, "receive maximum exceeded" },
	{ 0x94, "topic alias invalid" },
	{ 0x95, "packet too large" },
	{ 0x96, "message rate too high" },
	{ 0x97, "quota exceeded" },
	{ 0x98, "administrative action" },
	{ 0x99, "payload format invalid" },
	{ 0x9A, "retain not supported" },
	{ 0x9B, "QoS not supported" },
	{ 0x9C, "use another server" },
	{ 0x9D, "server moved" },
	{ 0x9E, "shared subscriptions not supported" },
	{ 0x9F, "connection rate exceeded" },
	{ 0xA0, "maximum connect time" },
	{ 0xA1, "subscription identifiers not supported" },
	{ 0xA2, "wildcard subscriptions not supported" },
};

const char *
mqtt_reason_text(int code)
{
	int i = mqtt_reason_index(code);

	return i < 0 ? NULL : reasons[i].text;
}

int
mqtt_reason_index(int code)
{
	for (int i = 0; i < MQTT_REASONS; i++)
		if (reasons[i].code == code)
			return i;
	return -1;
}

int
mqtt_reason_code_at(int index)
{
	return index >= 0 && index < MQTT_REASONS ? reasons[index].code : -1;
}

void
mqtt_conflict_init(struct mqtt_conflict *c, int64_t now_ms)
{
	*c = (struct mqtt_conflict){ .last_ms = now_ms };
}

unsigned
mqtt_conflict_recent(const struct mqtt_conflict *c, int64_t now_ms)
{
	unsigned n = 0;

	for (unsigned i = 0; i < MQTT_CONFLICT_COUNT && i < c->seen; i++)
		if (now_ms - c->at[i] <= MQTT_CONFLICT_WINDOW_MS)
			n++;
	return n;
}

int
mqtt_conflict_update(struct mqtt_conflict *c, unsigned count, int64_t now_ms)
{
	for (unsigned i = 0; i < count; i++) {
		c->at[c->next] = now_ms;
		c->next = (c->next + 1) % MQTT_CONFLICT_COUNT;
		c->seen++;
		c->last_ms = now_ms;
	}
	if (mqtt_conflict_recent(c, now_ms) >= MQTT_CONFLICT_COUNT)
		c->active = 1;
	else if (now_ms - c->last_ms >= MQTT_CONFLICT_QUIET_MS)
		c->active = 0;
	return c->active;
}
