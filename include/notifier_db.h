/* notifier_db.h - cordon-notify's state in PostgreSQL (sql/0010_notify.sql):
 * the inbox of alert transitions, their routing into messages, the
 * reminder, escalation and silence clocks, and each receiver's queue.
 *
 * Every step is one transaction, so a crash anywhere leaves either the
 * step done or not begun: an inbox row is routed once; a message is
 * 'sent' only after the receiver accepted it. The one repeat: a crash
 * after the receiver's answer and before the commit of 'sent' leaves the
 * message 'sending', and it is sent again after the restart.
 *
 * All functions take a connection of their own thread. Errors: -1 with
 * the reason (and SQLSTATE where PostgreSQL gave one) in `err`; the
 * caller logs, reconnects when PQstatus says so, and tries again. */
#ifndef CORDON_NOTIFIER_DB_H
#define CORDON_NOTIFIER_DB_H

#include <libpq-fe.h>
#include <stdint.h>

#include "notifier.h"
#include "notifier_send.h"

#define NOTIFIER_ERR_LEN 256

/* Stores one alert message `payload` (`len` bytes, already read into `a`)
 * in the inbox. Returns 1 when new, 0 for a redelivery (its alert,
 * transition and count are there already), -1 on a database error. */
int notifier_db_inbox_add(PGconn *c, const char *payload, size_t len,
			  const struct notifier_alert *a, char *err);

/* The most of a bad payload kept in rejects (as cordond's [site] max_payload). */
#define NOTIFIER_REJECT_MAX 65536

/* Stores a message on an alert topic that is not an alert (not JSON, or
 * without the fields of docs/alerts.md) in `rejects`, reason 'not_alert'
 * and `why` as its detail, keyed by a hash of topic and payload (a
 * redelivery is dropped). Returns 1 when new, 0 for a redelivery, -1 on a
 * database error. */
int notifier_db_reject_add(PGconn *c, const char *topic, const char *payload, size_t len,
			   const char *why, char *err);

/* What a routing or timer pass did (added to the counters given). */
struct notifier_db_counts {
	uint64_t routed;    /* inbox rows routed */
	uint64_t unrouted;  /* of those, taken by no route */
	uint64_t queued;    /* notifications (alert x receiver) queued */
	uint64_t held;	    /* raises held by a silence */
	uint64_t released;  /* held raises let go when their silence ended */
	uint64_t reminders; /* reminders queued (per alert and route) */
	uint64_t escalations;
	uint64_t bad;		   /* inbox rows that are not an alert message */
	uint64_t orphans_given_up; /* messages of removed receivers marked failed */
	/* transitions taken from `alerts` (notifier_db_reconcile), by
	 * transition: raised, acked, updated, resolved */
	uint64_t reconciled[4];
};

/* Routes up to 200 inbox rows, oldest first, in one transaction. Sets
 * *ret_more when more may be waiting. Returns 0 or -1. */
int notifier_db_route(PGconn *c, const struct notifier_config *nc,
		      struct notifier_db_counts *counts, int *ret_more, char *err);

/* Queues the reminders and escalations that are due, and the raises held
 * by silences that have ended; marks 'failed' the messages, older than
 * [notify] give_up_after, of receivers no longer in the configuration (no
 * sender takes them). Returns 0 or -1. */
int notifier_db_timers(PGconn *c, const struct notifier_config *nc,
		       struct notifier_db_counts *counts, char *err);

/* The transitions of cordond's alerts that never reached us on MQTT (a
 * broker that acknowledged them to cordond and lost them), put in the
 * inbox from PostgreSQL's `alerts` rows (sql/0014_notify_reconcile.sql,
 * alert_message()) when found missing at two passes after_ms or more
 * apart (table notify_lost, by PostgreSQL's clock), to be routed as if
 * they had come. Taken: an open alert raised since our first start, and in
 * the last 12 hours, of which the inbox holds nothing ("raised", with
 * the alert as it now stands); and, for an alert we hold open (notify_alerts) with nothing of it
 * waiting in the inbox, a resolve, an ack, or a severity raised while it
 * stayed open ("resolved", "acked", "updated"). Each goes in under the
 * inbox key a message of that transition would have, so the message
 * itself, if it comes late, is a duplicate; and routing one twice
 * notifies once (route_one). Adds to counts->reconciled; fills
 * first[len] with "<alert_id> <transition>" of one of them ("" when
 * none). Returns how many were taken, or -1 (err set). */
int notifier_db_reconcile(PGconn *c, int64_t after_ms, struct notifier_db_counts *counts,
			  char *first, size_t len, char *err);

/* Records our first start on this database (notify_reconcile.since), once:
 * reconciling looks no further back. Returns 0 or -1 (err set). */
int notifier_db_reconcile_since(PGconn *c, char *err);

/* One message taken for an attempt, with its items. */
struct notifier_attempt {
	struct notifier_message msg;
	struct notifier_item *items;
	json_t **docs; /* the items' alert documents (owners of their strings) */
	char route[80];
	int attempts;		 /* this one included */
	int64_t age_ms;		 /* since the message was made */
	int64_t first_raised_ms; /* the earliest raised_at among its alerts (latency) */
};

/* Takes the receiver's next due message: marks it 'sending' (attempts
 * + 1) and commits, then reads its items. Returns 1 with `at` filled, 0
 * when none is due (*ret_wait_ms: until the next one, at most 1000), -1 on
 * error. A message older than `give_up_ms` is marked 'failed' instead and
 * counted in *ret_given_up. */
int notifier_db_take(PGconn *c, const char *receiver, int64_t give_up_ms,
		     struct notifier_attempt *at, int64_t *ret_wait_ms, uint64_t *ret_given_up,
		     char *err);
void notifier_attempt_free(struct notifier_attempt *at);

/* Records the attempt's outcome: 'sent', or back to 'pending' to be tried
 * again in `retry_ms`. `body` is what was sent (may be NULL). Returns 0
 * or -1. */
int notifier_db_finish(PGconn *c, int64_t id, const struct send_result *res, const char *body,
		       int64_t retry_ms, char *err);

/* The receiver's sends in the last 60 s (UTC ms, oldest first, at most
 * `max`), to restore its rate window after a restart. Returns how many,
 * or -1. */
int notifier_db_recent_sends(PGconn *c, const char *receiver, int64_t *ms, int max, char *err);

/* Messages waiting per receiver, for the metrics: fills `counts`
 * (nreceivers, in config order). Returns 0 or -1. */
int notifier_db_backlog(PGconn *c, const struct notifier_config *nc, int64_t *counts, char *err);

#endif
