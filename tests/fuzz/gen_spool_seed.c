/* gen_spool_seed.c - writes the seed segments of fuzz_spool into OUTDIR:
 *   valid.seg      four records written by spool_append_flags (one empty payload)
 *   truncated.seg  one record cut at max_payload (SPOOL_TRUNCATED)
 *   torn.seg       valid.seg plus the first 40 bytes of another record
 *   corrupt.seg    valid.seg with one payload byte of the 2nd record flipped
 * Usage: gen_spool_seed OUTDIR   (meson compile -C build gen_spool_seed) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool.h"

static const char *const payloads[] = {
	"{\"id\":\"G03-000123\",\"ts\":\"2020-02-16T18:32:00.123+08:00\",\"card\":\"C-0412\","
	"\"person\":\"P-10233\",\"direction\":\"in\",\"temp_c\":36.6,\"mask\":true}",
	"{\"id\":\"G03-000124\",\"ts\":\"2020-02-16T18:32:05+08:00\",\"card\":\"C-0413\","
	"\"direction\":\"out\",\"temp_c\":38.2,\"mask\":false,\"abnormal\":true}",
	"",
	"{\"ts\":1581849125000,\"temp_c\":null}",
};

static void
die(const char *what, int err)
{
	fprintf(stderr, "gen_spool_seed: %s: %s\n", what, strerror(err));
	exit(1);
}

static size_t
slurp(const char *path, unsigned char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		die(path, errno);
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static void
spit(const char *dir, const char *name, const unsigned char *buf, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
		die(path, errno);
}

/* Appends `n` payloads to a fresh spool and returns the segment's bytes. */
static size_t
make_segment(int64_t max_payload, const char *const *p, size_t n, unsigned char *buf, size_t cap)
{
	char tmp[] = "/tmp/gen_spool_seed.XXXXXX", path[4096], cmd[4200];
	struct spool_options o = {
		.dir = tmp,
		.max_bytes = 1 << 20,
		.segment_bytes = 1 << 20,
		.max_payload = max_payload,
		.sync = SPOOL_SYNC_OFF,
	};
	struct spool *s;
	size_t len;
	int err;

	if (!mkdtemp(tmp))
		die("mkdtemp", errno);
	if ((err = spool_open(&o, &s)) != 0)
		die("spool_open", -err);
	for (size_t i = 0; i < n; i++) {
		err = spool_append_flags(s, "cordon/s1/gate/G03/event", 24, p[i], strlen(p[i]),
					 1581849120000000LL + (int64_t)i * 1000000, 0);
		if (err)
			die("spool_append_flags", -err);
	}
	spool_close(s);
	snprintf(path, sizeof(path), "%s/00000000000000000000.seg", tmp);
	len = slurp(path, buf, cap);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		die("rm", EIO);
	return len;
}

int
main(int argc, char **argv)
{
	static unsigned char valid[65536], other[65536], out[65536];
	size_t vlen, olen, first;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_spool_seed OUTDIR\n");
		return 2;
	}
	vlen = make_segment(65536, payloads, 4, valid, sizeof(valid));
	spit(argv[1], "valid.seg", valid, vlen);

	olen = make_segment(16, payloads, 1, other, sizeof(other));
	spit(argv[1], "truncated.seg", other, olen);

	memcpy(out, valid, vlen);
	memcpy(out + vlen, other, 40);
	spit(argv[1], "torn.seg", out, vlen + 40);

	/* The first record is 32 + 24 + strlen(payloads[0]) bytes long. */
	first = 32 + 24 + strlen(payloads[0]);
	memcpy(out, valid, vlen);
	out[first + 32 + 24 + 5] ^= 0x20;
	spit(argv[1], "corrupt.seg", out, vlen);
	return 0;
}
