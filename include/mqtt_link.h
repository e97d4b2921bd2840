/* mqtt_link.h - what the MQTT client does next about its connection: a
 * pure decision from the connection wanted (intake paused or not) and the
 * connection as it is, so that whatever order the pause, the resume and
 * Paho's callbacks come in, mqtt_client_tick() brings the second to the
 * first (level-triggered). No I/O, no clock reads, no Paho. */
#ifndef CORDON_MQTT_LINK_H
#define CORDON_MQTT_LINK_H

#include <stdbool.h>

/* Past this many ms a connect or a pause's disconnect under way is no
 * longer believed in (Paho gives a connect up after its connectTimeout
 * and a disconnect after its 1 s timeout). */
#define MQTT_LINK_STALE_MS 60000

struct mqtt_link_view {
	bool want_up;	    /* intake not paused (stopping is its own field) */
	bool stopping;	    /* a stop was asked: the stop disconnects, nothing else */
	bool up;	    /* the link is up (on_connected; no loss or disconnect since) */
	bool connecting;    /* a connect of ours is under way (and not stale) */
	bool disconnecting; /* a pause's disconnect is under way (and not stale) */
	bool queued;	    /* a connect or disconnect is queued for the publish thread */
};

enum mqtt_link_action {
	MQTT_LINK_NONE,	      /* the link is as wanted */
	MQTT_LINK_WAIT,	      /* a change is under way: look again at the next tick */
	MQTT_LINK_CONNECT,    /* queue a connect (after the backoff, when one failed) */
	MQTT_LINK_DISCONNECT, /* queue the pause's disconnect */
};

enum mqtt_link_action mqtt_link_next(const struct mqtt_link_view *v);

#endif
