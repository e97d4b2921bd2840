/* pktid.c - the packet identifier table, mapped from a file.
 *
 * File: a 64-byte header ("CPI2", spool id at 8, 32 bytes), then SLOTS
 * slots (content, end position, identifier) in host order: the file never
 * leaves this machine. Identifier N lives in slot N % SLOTS, which names
 * it: the broker has at most MQTT_CLIENT_RECEIVE_MAXIMUM (1,000) messages
 * unacknowledged, and cordond acknowledges in order, so an identifier
 * still awaiting its PUBACK is never among the SLOTS - 1,000 before the
 * latest. 96 KiB: it fits a small disk. */
#include "pktid.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAGIC "CPI2"
#define HEADER 64
#define SLOTS 4096
#define FILE_SIZE (HEADER + SLOTS * sizeof(struct slot))

struct slot {
	uint64_t content;
	uint64_t end;
	uint64_t id;
};

struct pktid {
	int fd;
	uint8_t *map;
	struct slot *slots;
};

int
pktid_open(int fd, const char *spool_id, struct pktid **ret_table)
{
	struct pktid *t = calloc(1, sizeof(*t));
	int fresh;

	if (!t) {
		close(fd);
		return -ENOMEM;
	}
	t->fd = fd;
	if (ftruncate(fd, FILE_SIZE) < 0) {
		int err = -errno;

		pktid_close(t);
		return err;
	}
	t->map = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (t->map == MAP_FAILED) {
		int err = -errno;

		t->map = NULL;
		pktid_close(t);
		return err;
	}
	t->slots = (struct slot *)(t->map + HEADER);
	fresh = memcmp(t->map, MAGIC, 4) != 0 || strncmp((char *)t->map + 8, spool_id, 32) != 0;
	if (fresh) {
		if (memcmp(t->map, "\0\0\0\0", 4) != 0) /* not a new, sparse file */
			memset(t->map, 0, FILE_SIZE);
		memcpy(t->map, MAGIC, 4);
		strncpy((char *)t->map + 8, spool_id, 32);
	}
	*ret_table = t;
	return 0;
}

void
pktid_close(struct pktid *t)
{
	if (!t)
		return;
	if (t->map)
		munmap(t->map, FILE_SIZE);
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

uint64_t
pktid_content(uint64_t topic_hash, uint64_t payload_hash)
{
	uint64_t c = topic_hash ^ (payload_hash * 0x9e3779b97f4a7c15ull);

	return c ? c : 1;
}

int
pktid_match(const struct pktid *t, uint16_t id, uint64_t content)
{
	const struct slot *s = &t->slots[id % SLOTS];

	return id != 0 && s->id == id && s->content == content;
}

void
pktid_set(struct pktid *t, uint16_t id, uint64_t content, uint64_t end)
{
	struct slot *s = &t->slots[id % SLOTS];

	if (id == 0)
		return;
	/* emptied first: a slot is never seen naming a record it does not */
	s->content = 0;
	s->end = end;
	s->id = id;
	s->content = content;
}

void
pktid_clear(struct pktid *t)
{
	memset(t->slots, 0, SLOTS * sizeof(*t->slots));
}

void
pktid_trim(struct pktid *t, uint64_t end)
{
	for (int i = 0; i < SLOTS; i++)
		if (t->slots[i].end > end)
			t->slots[i] = (struct slot){ 0, 0, 0 };
}

int
pktid_sync(struct pktid *t)
{
	return msync(t->map, FILE_SIZE, MS_ASYNC) < 0 ? -errno : 0;
}
