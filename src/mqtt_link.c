/* mqtt_link.c - what the MQTT client does next about its connection. */
#include "mqtt_link.h"

enum mqtt_link_action
mqtt_link_next(const struct mqtt_link_view *v)
{
	if (v->stopping)
		return MQTT_LINK_NONE;
	/* One change at a time: its outcome (a callback) changes `up`, and
	 * the next look decides again from there. A resume that came while
	 * the pause's disconnect was still under way is not lost: once the
	 * disconnect is done the link is down and wanted up. */
	if (v->queued || v->connecting || v->disconnecting)
		return MQTT_LINK_WAIT;
	if (v->want_up && !v->up)
		return MQTT_LINK_CONNECT;
	if (!v->want_up && v->up)
		return MQTT_LINK_DISCONNECT;
	return MQTT_LINK_NONE;
}
