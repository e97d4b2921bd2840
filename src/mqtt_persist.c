/* mqtt_persist.c - a checksummed MQTTClient_persistence for Paho.
 *
 * File layout (little endian): u32 magic "CMP1", u32 data length, u64
 * XXH3-64 of the data, then the data (Paho's buffers, concatenated).
 * Paho calls these functions from its own threads, holding its client
 * lock; they touch only the file system and atomic counters. What we hand
 * to Paho to free (pget's buffer, pkeys' list) comes from MQTTAsync_malloc:
 * a libpaho built with heap tracking frees only what its own allocator
 * gave out and silently keeps the rest. */
#include "mqtt_persist.h"

#include <MQTTAsync.h>

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "log.h"

#define MAGIC 0x31504d43u /* "CMP1" */
#define HEADER 16
#define MAX_ENTRY (256u << 20) /* Paho's largest packet is 256 MiB */
#define TMP_PREFIX ".tmp-"

#define MAX_PACKET_FILE ".max_packet" /* the broker's last maximum packet size */
#define TOO_LARGE_DIR "too_large"

struct mqtt_persist {
	char *dir;
	_Atomic uint64_t written, write_failed, set_aside, read_failed, too_large;
	_Atomic int last_errno;
	_Atomic uint32_t max_packet; /* bytes; 0: none known */
};

/* A PUBLISH sent and awaiting its PUBACK: Paho's keys "s-N" (MQTT 3) and
 * "s5-N" (MQTT 5) (MQTTPersistence.h, PERSISTENCE_PUBLISH_SENT); their
 * data is the packet as sent (MQTTPacket.c, MQTTPacket_sends: fixed
 * header, Remaining Length, then the rest), so its length is the size
 * the broker's Maximum Packet Size counts. */
static int
is_sent_publish(const char *key)
{
	return strncmp(key, "s-", 2) == 0 || strncmp(key, "s5-", 3) == 0;
}

/* The topic of the PUBLISH packet `data` (`len` bytes, MQTT 5.0 §3.3):
 * fixed header byte, Remaining Length (1-4 bytes, §1.5.5), 2-byte big
 * endian topic length, topic. Sets *ret_topic and returns its length, or
 * 0 when cut. */
static size_t
packet_topic(const char *data, size_t len, const char **ret_topic)
{
	size_t pos = 1, tlen;

	while (pos < len && pos < 5 && (data[pos] & 0x80))
		pos++;
	pos++;
	if (pos + 2 > len)
		return 0;
	tlen = (size_t)(uint8_t)data[pos] << 8 | (uint8_t)data[pos + 1];
	if (tlen > len - pos - 2)
		return 0;
	*ret_topic = data + pos + 2;
	return tlen;
}

/* A key becomes a file name: Paho's keys are short ASCII ("c-12",
 * "s5-3"); anything else is refused rather than escaped. */
static int
path_of(const struct mqtt_persist *p, const char *key, char *buf, size_t len)
{
	if (!key[0] || key[0] == '.' || strchr(key, '/') ||
	    (size_t)snprintf(buf, len, "%s/%s", p->dir, key) >= len)
		return -1;
	return 0;
}

/* Reads and checks the entry in `path`; returns its data (MQTTAsync_malloc'ed,
 * *ret_len bytes) or NULL: errno ENOENT (no such key), EBADMSG (cut,
 * damaged or not ours), or another errno. */
static char *
read_entry(const char *path, int *ret_len)
{
	uint8_t hdr[HEADER];
	uint32_t magic, len;
	uint64_t sum;
	struct stat st;
	char *data = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = EBADMSG;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || pread(fd, hdr, HEADER, 0) != HEADER)
		goto out;
	memcpy(&magic, hdr, 4);
	memcpy(&len, hdr + 4, 4);
	memcpy(&sum, hdr + 8, 8);
	len = le32toh(len);
	if (le32toh(magic) != MAGIC || len > MAX_ENTRY ||
	    (uint64_t)st.st_size != HEADER + (uint64_t)len)
		goto out;
	data = MQTTAsync_malloc(len ? len : 1);
	if (!data) {
		err = ENOMEM;
		goto out;
	}
	if (pread(fd, data, len, HEADER) != (ssize_t)len ||
	    XXH3_64bits(data, len) != le64toh(sum)) {
		MQTTAsync_free(data);
		data = NULL;
		goto out;
	}
	*ret_len = (int)len;
	err = 0;
out:
	close(fd);
	errno = err;
	return data;
}

/* Moves the entry `name` into the subdirectory `sub` (made if needed), or
 * deletes it when that fails. */
static void
move_entry(struct mqtt_persist *p, const char *name, const char *sub)
{
	char from[PATH_MAX], to[PATH_MAX];

	snprintf(from, sizeof(from), "%s/%s", p->dir, name);
	snprintf(to, sizeof(to), "%s/%s", p->dir, sub);
	if (mkdir(to, 0750) < 0 && errno != EEXIST)
		to[0] = '\0';
	else
		snprintf(to + strlen(to), sizeof(to) - strlen(to), "/%s", name);
	if (!to[0] || rename(from, to) < 0)
		unlink(from);
}

/* Moves the damaged entry `name` to broken/ (or deletes it when that
 * fails), counts and logs it. */
static void
set_aside(struct mqtt_persist *p, const char *name)
{
	move_entry(p, name, "broken");
	atomic_fetch_add(&p->set_aside, 1);
	log_err("outbound MQTT queue: entry %s in %s is cut or damaged (a full disk or a power loss);"
		" set aside in %s/broken: that queued alert or notice is lost",
		name, p->dir, p->dir);
}

/* Moves the sent PUBLISH `name` (`len` bytes, over the broker's maximum
 * packet size `max`) to too_large/ (or deletes it when that fails),
 * counts and logs it: Paho would send it again first at every connect,
 * and the broker would disconnect us for it every time. */
static void
set_aside_too_large(struct mqtt_persist *p, const char *name, const char *data, int len,
		    uint32_t max)
{
	const char *topic = "";
	size_t tlen = packet_topic(data, (size_t)len, &topic);

	move_entry(p, name, TOO_LARGE_DIR);
	atomic_fetch_add(&p->too_large, 1);
	log_err("outbound MQTT queue: the message in flight on %.*s (%d bytes, entry %s) is over the"
		" broker's maximum packet size of %u bytes; set aside in %s/" TOO_LARGE_DIR
		", not sent"
		" again (an alert stays in PostgreSQL)",
		(int)(tlen > 400 ? 400 : tlen), topic, len, name, max, p->dir);
}

static int
p_open(void **handle, const char *client_id, const char *uri, void *context)
{
	struct mqtt_persist *p = context;
	DIR *d;
	struct dirent *de;

	(void)client_id;
	(void)uri;
	if (mkdir(p->dir, 0750) < 0 && errno != EEXIST) {
		log_err("outbound MQTT queue: cannot create %s: %s", p->dir, strerror(errno));
		return MQTTCLIENT_PERSISTENCE_ERROR;
	}
	d = opendir(p->dir);
	if (!d) {
		log_err("outbound MQTT queue: cannot read %s: %s", p->dir, strerror(errno));
		return MQTTCLIENT_PERSISTENCE_ERROR;
	}
	/* Check every entry now: Paho reads them right after this. */
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];
		char *data;
		int len;

		if (de->d_name[0] == '.') {
			if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0 &&
			    snprintf(path, sizeof(path), "%s/%s", p->dir, de->d_name) <
				    (int)sizeof(path))
				unlink(path); /* a write that never completed */
			continue;
		}
		if (path_of(p, de->d_name, path, sizeof(path)) < 0)
			continue;
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		data = read_entry(path, &len);
		if (data) {
			uint32_t max = atomic_load(&p->max_packet);

			/* Paho reads the sent ones back right after this and sends
			 * them again at the next CONNACK, before we see its limits
			 * (MQTTAsyncUtils.c, MQTTAsync_completeConnection). */
			if (max && is_sent_publish(de->d_name) && (uint32_t)len > max)
				set_aside_too_large(p, de->d_name, data, len, max);
			MQTTAsync_free(data);
		} else if (errno == EBADMSG)
			set_aside(p, de->d_name);
	}
	closedir(d);
	*handle = p;
	return 0;
}

static int
p_close(void *handle)
{
	(void)handle;
	return 0;
}

/* Writes the entry through a temporary file and rename(2): a failure at
 * any step leaves the previous state of the key untouched. */
static int
p_put(void *handle, char *key, int bufcount, char *buffers[], int buflens[])
{
	struct mqtt_persist *p = handle;
	char path[PATH_MAX], tmp[PATH_MAX];
	uint8_t hdr[HEADER];
	uint32_t magic = htole32(MAGIC), len32;
	uint64_t total = 0, sum;
	struct iovec iov[1 + 16];
	XXH3_state_t st;
	ssize_t want, w;
	int fd, err = 0;

	if (bufcount < 0 || bufcount > 16 || path_of(p, key, path, sizeof(path)) < 0 ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/" TMP_PREFIX "%s", p->dir, key) >= sizeof(tmp))
		return MQTTCLIENT_PERSISTENCE_ERROR;
	XXH3_64bits_reset(&st);
	for (int i = 0; i < bufcount; i++) {
		XXH3_64bits_update(&st, buffers[i], (size_t)buflens[i]);
		total += (uint64_t)buflens[i];
		iov[1 + i] = (struct iovec){ buffers[i], (size_t)buflens[i] };
	}
	if (total > MAX_ENTRY)
		return MQTTCLIENT_PERSISTENCE_ERROR;
	len32 = htole32((uint32_t)total);
	sum = htole64(XXH3_64bits_digest(&st));
	memcpy(hdr, &magic, 4);
	memcpy(hdr + 4, &len32, 4);
	memcpy(hdr + 8, &sum, 8);
	iov[0] = (struct iovec){ hdr, HEADER };
	want = (ssize_t)(HEADER + total);

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0 && errno == ENOENT && mkdir(p->dir, 0750) == 0) {
		/* The directory was deleted under us (the spool directory
		 * removed, then made again): make ours again too. */
		log_warn("outbound MQTT queue: %s was gone; made it again", p->dir);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	}
	if (fd < 0) {
		err = errno;
		goto fail;
	}
	/* One writev of at most 256 MiB + 16 bytes: a short count means the
	 * disk filled. */
	w = writev(fd, iov, 1 + bufcount);
	if (w != want)
		err = w < 0 ? errno : ENOSPC;
	if (close(fd) < 0 && !err)
		err = errno;
	if (!err && rename(tmp, path) < 0)
		err = errno;
	if (!err) {
		atomic_fetch_add(&p->written, 1);
		if (atomic_exchange(&p->last_errno, 0) != 0)
			log_notice("outbound MQTT queue: writing to %s again", p->dir);
		return 0;
	}
	unlink(tmp);
fail:
	if (atomic_exchange(&p->last_errno, err) != err)
		log_err("outbound MQTT queue: cannot write %s: %s; the message stays in memory only"
			" (lost if cordond stops before the broker takes it)",
			path, strerror(err));
	atomic_fetch_add(&p->write_failed, 1);
	return MQTTCLIENT_PERSISTENCE_ERROR;
}

static int
p_get(void *handle, char *key, char **buffer, int *buflen)
{
	struct mqtt_persist *p = handle;
	char path[PATH_MAX];
	char *data;

	if (path_of(p, key, path, sizeof(path)) < 0)
		return MQTTCLIENT_PERSISTENCE_ERROR;
	data = read_entry(path, buflen);
	if (!data) {
		/* Paho asks only for keys it wrote: the entry was lost under
		 * us (the directory deleted, the file damaged). */
		atomic_fetch_add(&p->read_failed, 1);
		log_err("outbound MQTT queue: entry %s cannot be read (%s): that queued alert or"
			" notice is lost",
			path, strerror(errno));
		return MQTTCLIENT_PERSISTENCE_ERROR;
	}
	*buffer = data;
	return 0;
}

static int
p_remove(void *handle, char *key)
{
	struct mqtt_persist *p = handle;
	char path[PATH_MAX];

	if (path_of(p, key, path, sizeof(path)) < 0)
		return MQTTCLIENT_PERSISTENCE_ERROR;
	if (unlink(path) < 0 && errno != ENOENT)
		return MQTTCLIENT_PERSISTENCE_ERROR;
	return 0;
}

static int
p_keys(void *handle, char ***keys, int *nkeys)
{
	struct mqtt_persist *p = handle;
	char **list = NULL;
	int n = 0, cap = 0;
	struct dirent *de;
	DIR *d = opendir(p->dir);

	*keys = NULL;
	*nkeys = 0;
	if (!d)
		return MQTTCLIENT_PERSISTENCE_ERROR;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.' || strcmp(de->d_name, "broken") == 0 ||
		    strcmp(de->d_name, TOO_LARGE_DIR) == 0)
			continue;
		if (n == cap) {
			char **nl =
				MQTTAsync_malloc((size_t)(cap = cap ? cap * 2 : 16) * sizeof(*nl));

			if (!nl)
				goto fail;
			if (n)
				memcpy(nl, list, (size_t)n * sizeof(*nl));
			MQTTAsync_free(list);
			list = nl;
		}
		if (!(list[n] = MQTTAsync_malloc(len + 1)))
			goto fail;
		memcpy(list[n], de->d_name, len + 1);
		n++;
	}
	closedir(d);
	*keys = list;
	*nkeys = n;
	return 0;
fail:
	closedir(d);
	while (n > 0)
		MQTTAsync_free(list[--n]);
	MQTTAsync_free(list);
	return MQTTCLIENT_PERSISTENCE_ERROR;
}

static int
p_clear(void *handle)
{
	char **keys;
	int n;

	if (p_keys(handle, &keys, &n) != 0)
		return MQTTCLIENT_PERSISTENCE_ERROR;
	for (int i = 0; i < n; i++) {
		p_remove(handle, keys[i]);
		MQTTAsync_free(keys[i]);
	}
	MQTTAsync_free(keys);
	return 0;
}

static int
p_containskey(void *handle, char *key)
{
	struct mqtt_persist *p = handle;
	char path[PATH_MAX];

	if (path_of(p, key, path, sizeof(path)) < 0 || access(path, F_OK) < 0)
		return MQTTCLIENT_PERSISTENCE_ERROR;
	return 0;
}

int
mqtt_persist_create(const char *dir, struct mqtt_persist **ret_persist,
		    MQTTClient_persistence *ret_paho)
{
	struct mqtt_persist *p = calloc(1, sizeof(*p));
	char path[PATH_MAX];
	FILE *f;

	if (!p || !(p->dir = strdup(dir))) {
		free(p);
		return -ENOMEM;
	}
	if (snprintf(path, sizeof(path), "%s/" MAX_PACKET_FILE, dir) < (int)sizeof(path) &&
	    (f = fopen(path, "re")) != NULL) {
		unsigned long v;

		if (fscanf(f, "%lu", &v) == 1 && v <= UINT32_MAX)
			atomic_store(&p->max_packet, (uint32_t)v);
		fclose(f);
	}
	*ret_paho = (MQTTClient_persistence){
		.context = p,
		.popen = p_open,
		.pclose = p_close,
		.pput = p_put,
		.pget = p_get,
		.premove = p_remove,
		.pkeys = p_keys,
		.pclear = p_clear,
		.pcontainskey = p_containskey,
	};
	*ret_persist = p;
	return 0;
}

void
mqtt_persist_destroy(struct mqtt_persist *p)
{
	if (!p)
		return;
	free(p->dir);
	free(p);
}

/* Writes `max` to MAX_PACKET_FILE through a temporary file; a failure is
 * logged only (the limit then holds until the restart). */
static void
save_max_packet(struct mqtt_persist *p, uint32_t max)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/" MAX_PACKET_FILE, p->dir) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/" TMP_PREFIX "max_packet", p->dir) >= (int)sizeof(tmp))
		return;
	f = fopen(tmp, "we");
	if (!f || fprintf(f, "%u\n", max) < 0 || fclose(f) != 0 || rename(tmp, path) < 0) {
		log_warn("outbound MQTT queue: cannot write %s: %s", path, strerror(errno));
		if (f)
			unlink(tmp);
	}
}

int
mqtt_persist_set_max_packet(struct mqtt_persist *p, uint32_t max)
{
	DIR *d;
	struct dirent *de;
	int over = 0;

	if (atomic_exchange(&p->max_packet, max) != max)
		save_max_packet(p, max);
	if (!max || !(d = opendir(p->dir)))
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct stat st;

		if (is_sent_publish(de->d_name) &&
		    path_of(p, de->d_name, path, sizeof(path)) == 0 && stat(path, &st) == 0 &&
		    st.st_size > HEADER && (uint64_t)st.st_size - HEADER > max)
			over++;
	}
	closedir(d);
	return over;
}

void
mqtt_persist_get_stats(struct mqtt_persist *p, struct mqtt_persist_stats *ret)
{
	ret->written = atomic_load(&p->written);
	ret->write_failed = atomic_load(&p->write_failed);
	ret->set_aside = atomic_load(&p->set_aside);
	ret->read_failed = atomic_load(&p->read_failed);
	ret->too_large = atomic_load(&p->too_large);
	ret->last_errno = atomic_load(&p->last_errno);
}
