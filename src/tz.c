/* tz.c - reads the 64-bit part of a TZif (v2+) file: transition times,
 * the offset type each one starts, and the types. Times after the last
 * transition use the last type (the POSIX TZ footer is not evaluated, so
 * DST rules beyond the file's table - 2037 in Debian's files - are not
 * followed). */
#include "tz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ZONEINFO "/usr/share/zoneinfo"
/* Bytes of a zone file read at most (Debian's are under 4 KiB). */
#define TZ_FILE_MAX (1 << 20)

struct tz {
	char name[64];
	int64_t *times;	  /* transitions, ascending */
	uint8_t *idx;	  /* type index after each transition */
	int32_t *offsets; /* utoff of each type */
	uint32_t ntimes, ntypes;
	int32_t initial; /* offset before the first transition */
};

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const uint8_t *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int
valid_name(const char *name)
{
	if (!*name || strlen(name) >= 64 || name[0] == '/' || strstr(name, ".."))
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("/_-+", *p)))
			return 0;
	return 1;
}

/* Parses one header at p; returns its data size (for version-1 data,
 * 4-byte times) or 0 when malformed. */
static size_t
block_size(const uint8_t *p, size_t len, int tsize, uint32_t c[6])
{
	size_t need;

	if (len < 44 || memcmp(p, "TZif", 4) != 0)
		return 0;
	for (int i = 0; i < 6; i++)
		c[i] = be32(p + 20 + 4 * i); /* isutc, isstd, leap, time, type, char */
	need = (size_t)c[3] * (size_t)tsize + c[3] + (size_t)c[4] * 6 + c[5] +
		(size_t)c[2] * (size_t)(tsize + 4) + c[1] + c[0];
	return need;
}

int
tz_load(const char *name, struct tz **ret_tz)
{
	char path[256];
	uint8_t *buf = NULL;
	size_t len = 0, size = 0, n1, n2;
	uint32_t c[6];
	const uint8_t *p;
	struct tz *tz;
	FILE *f;
	const char *dir;
	struct stat st;
	int err = -EINVAL;

	if (!valid_name(name))
		return -EINVAL;
	/* TZDIR, as glibc and the tz code read it, else Debian's tzdata. */
	dir = getenv("TZDIR");
	snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : ZONEINFO, name);
	f = fopen(path, "re");
	if (!f)
		return -ENOENT;
	/* A buffer of the file's size, not of the bound: a large malloc is
	 * an mmap and munmap each time under ASan, which made a register with
	 * a zone cost 6 ms to make there (the rules tests make 170,000). */
	if (fstat(fileno(f), &st) == 0 && st.st_size > 0)
		size = st.st_size < TZ_FILE_MAX ? (size_t)st.st_size : TZ_FILE_MAX;
	buf = malloc(size ? size : 1);
	if (buf)
		len = fread(buf, 1, size, f);
	fclose(f);
	if (!buf)
		return -ENOMEM;
	tz = calloc(1, sizeof(*tz));
	if (!tz) {
		free(buf);
		return -ENOMEM;
	}
	snprintf(tz->name, sizeof(tz->name), "%s", name);
	n1 = block_size(buf, len, 4, c);
	if (n1 == 0 || buf[4] < '2' || len < 44 + n1)
		goto fail;
	p = buf + 44 + n1;
	n2 = block_size(p, len - 44 - n1, 8, c);
	if (n2 == 0 || len - 44 - n1 < 44 + n2 || c[4] == 0 || c[4] > 256)
		goto fail;
	tz->ntimes = c[3];
	tz->ntypes = c[4];
	tz->times = calloc(tz->ntimes + 1, sizeof(int64_t));
	tz->idx = calloc(tz->ntimes + 1, 1);
	tz->offsets = calloc(tz->ntypes, sizeof(int32_t));
	if (!tz->times || !tz->idx || !tz->offsets) {
		err = -ENOMEM;
		goto fail;
	}
	p += 44;
	for (uint32_t i = 0; i < tz->ntimes; i++)
		tz->times[i] = be64(p + 8 * i);
	p += 8 * tz->ntimes;
	for (uint32_t i = 0; i < tz->ntimes; i++) {
		tz->idx[i] = p[i];
		if (p[i] >= tz->ntypes)
			goto fail;
	}
	p += tz->ntimes;
	for (uint32_t i = 0; i < tz->ntypes; i++)
		tz->offsets[i] = (int32_t)be32(p + 6 * i);
	/* Before the first transition: the first non-DST type (RFC 8536). */
	tz->initial = tz->offsets[0];
	for (uint32_t i = 0; i < tz->ntypes; i++) {
		if (p[6 * i + 4] == 0) {
			tz->initial = tz->offsets[i];
			break;
		}
	}
	free(buf);
	*ret_tz = tz;
	return 0;
fail:
	free(buf);
	tz_free(tz);
	return err;
}

void
tz_free(struct tz *tz)
{
	if (!tz)
		return;
	free(tz->times);
	free(tz->idx);
	free(tz->offsets);
	free(tz);
}

const char *
tz_name(const struct tz *tz)
{
	return tz->name;
}

int32_t
tz_offset_at(const struct tz *tz, int64_t t)
{
	uint32_t lo = 0, hi = tz->ntimes;

	if (tz->ntimes == 0 || t < tz->times[0])
		return tz->initial;
	/* The last transition at or before t. */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (tz->times[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return tz->offsets[tz->idx[lo]];
}

int64_t
tz_local_to_utc(const struct tz *tz, int64_t naive)
{
	/* Try the offsets in force around that time; the earlier one that
	 * maps back to the same wall time wins. */
	int32_t o1 = tz_offset_at(tz, naive - 86400), o2 = tz_offset_at(tz, naive + 86400);
	int64_t u1 = naive - o1, u2 = naive - o2;

	if (tz_offset_at(tz, u1) == o1)
		return u1;
	if (tz_offset_at(tz, u2) == o2)
		return u2;
	return u1;
}
