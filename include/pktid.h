/* pktid.h - what the spool holds under each MQTT packet identifier, to
 * tell a redelivery from a message that only looks like one.
 *
 * A broker sets DUP on a QoS 1 PUBLISH it sends again because it has no
 * PUBACK for it, and keeps its packet identifier (MQTT 5.0 sections
 * 3.3.1.1 and 4.4). That covers a message cordond appended to the spool
 * (its PUBACK lost) and one it never read (lost in transit, unread in the
 * socket when cordond died): only the first is a replay. The broker does
 * not reuse an identifier before it has the PUBACK, so a DUP is a replay
 * exactly when the slot of its identifier holds its topic and payload.
 *
 * The table lives in a 96 KiB file of the spool directory, mapped: each
 * slot (64-bit hash of topic and payload, spool position after the
 * record) is written after the append and before Paho sends the PUBACK,
 * so it survives SIGKILL with the spool record. Slots whose record a
 * power loss cut from the spool are dropped at start (pktid_trim). Only
 * Paho's receive thread writes; not thread-safe otherwise. */
#ifndef CORDON_PKTID_H
#define CORDON_PKTID_H

#include <stdint.h>

struct pktid;

/* Maps the table in the open file `fd` (taken over: closed by
 * pktid_close). A table of another spool (spool_id) or a damaged header
 * starts empty. Returns 0 or a negative errno. */
int pktid_open(int fd, const char *spool_id, struct pktid **ret_table)
	__attribute__((warn_unused_result));
void pktid_close(struct pktid *t);

/* The 64-bit content a slot holds for a message (never 0). */
uint64_t pktid_content(uint64_t topic_hash, uint64_t payload_hash);

/* 1 when the slot of packet identifier `id` (1-65535) holds `content`. */
int pktid_match(const struct pktid *t, uint16_t id, uint64_t content);
/* The record appended for packet `id` ends at spool position `end`. */
void pktid_set(struct pktid *t, uint16_t id, uint64_t content, uint64_t end);
/* Empties every slot: a new session (CONNACK without Session Present),
 * whose identifiers name nothing we had. */
void pktid_clear(struct pktid *t);
/* At start: empties the slots whose record ends beyond `end`, the
 * spool's end after its recovery (a torn tail cut them away). */
void pktid_trim(struct pktid *t, uint64_t end);
/* msync of the table (after the spool's own sync). 0 or a negative errno. */
int pktid_sync(struct pktid *t) __attribute__((warn_unused_result));

#endif
