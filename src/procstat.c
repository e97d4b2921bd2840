/* procstat.c - the process_* metrics from /proc (include/procstat.h). */
#include "procstat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The next space-separated unsigned number at *p; 0 or -EINVAL. */
static int
next_u64(const char **p, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	while (**p == ' ')
		(*p)++;
	if (**p < '0' || **p > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(*p, &end, 10);
	if (errno || (*end != ' ' && *end != '\n' && *end != '\0'))
		return -EINVAL;
	*p = end;
	*ret = v;
	return 0;
}

/* Skips the next space-separated field at *p (any text but a space). */
static int
skip(const char **p)
{
	while (**p == ' ')
		(*p)++;
	if (!**p || **p == '\n')
		return -EINVAL;
	while (**p && **p != ' ' && **p != '\n')
		(*p)++;
	return 0;
}

int
procstat_parse_stat(const char *text, struct procstat_stat *ret)
{
	const char *p = strrchr(text, ')');
	struct procstat_stat s = { 0 };
	uint64_t v;
	int field;

	if (!p)
		return -EINVAL;
	p++;
	/* Field 3 (state) is the first after the command. */
	for (field = 3; field <= 24; field++) {
		if (field < 14 || (field > 15 && field < 22)) {
			/* state, ppid, ..., cmajflt; cutime ... itrealvalue: some
			 * may be negative (priority, nice), none is used. */
			if (skip(&p) < 0)
				return -EINVAL;
			continue;
		}
		if (next_u64(&p, &v) < 0)
			return -EINVAL;
		switch (field) {
		case 14: s.utime = v; break;
		case 15: s.stime = v; break;
		case 22: s.starttime = v; break;
		case 23: s.vsize = v; break;
		default: s.rss = (int64_t)v; break; /* 24 */
		}
	}
	*ret = s;
	return 0;
}

int
procstat_parse_btime(const char *text, int64_t *ret_btime)
{
	for (const char *line = text; line && *line;) {
		if (strncmp(line, "btime ", 6) == 0) {
			const char *p = line + 6;
			uint64_t v;

			if (next_u64(&p, &v) < 0 || v > INT64_MAX)
				return -EINVAL;
			*ret_btime = (int64_t)v;
			return 0;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return -EINVAL;
}

void
procstat_compute(const struct procstat_stat *s, int64_t btime, long ticks, long page,
		 struct procstat *ret)
{
	if (ticks <= 0)
		ticks = 100; /* USER_HZ on every Linux architecture */
	ret->cpu_seconds = (double)(s->utime + s->stime) / (double)ticks;
	ret->virtual_bytes = s->vsize;
	ret->resident_bytes = s->rss > 0 ? (uint64_t)s->rss * (uint64_t)page : 0;
	ret->start_time = (double)btime + (double)s->starttime / (double)ticks;
}

/* The boot time from /proc/stat: read each time, as procfs does (the
 * kernel computes it from the wall clock, so a step of the clock moves
 * it, and the start time with it). */
static int
read_btime(int64_t *ret)
{
	FILE *f = fopen("/proc/stat", "re");
	char *line = NULL;
	size_t cap = 0;
	int err = -EINVAL;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0)
		if (procstat_parse_btime(line, ret) == 0) {
			err = 0;
			break;
		}
	free(line);
	fclose(f);
	return err;
}

static int
read_stat(struct procstat_stat *ret)
{
	char buf[4096];
	ssize_t n;
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	return procstat_parse_stat(buf, ret);
}

/* Entries of /proc/self/fd, the directory's own descriptor included (as
 * procfs counts them). -errno when it cannot be read. */
static long
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	const struct dirent *e;
	long n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

void
procstat_print(FILE *f)
{
	struct procstat_stat s;
	struct procstat p;
	struct rlimit rl;
	int64_t btime = 0;
	int have_btime = read_btime(&btime) == 0;
	long fds = count_fds();

	if (read_stat(&s) == 0) {
		procstat_compute(&s, btime, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), &p);
		fprintf(f,
			"# HELP process_cpu_seconds_total Total user and system CPU time spent in"
			" seconds.\n"
			"# TYPE process_cpu_seconds_total counter\n"
			"process_cpu_seconds_total %.2f\n"
			"# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
			"# TYPE process_virtual_memory_bytes gauge\n"
			"process_virtual_memory_bytes %llu\n"
			"# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
			"# TYPE process_resident_memory_bytes gauge\n"
			"process_resident_memory_bytes %llu\n",
			p.cpu_seconds, (unsigned long long)p.virtual_bytes,
			(unsigned long long)p.resident_bytes);
		if (have_btime)
			fprintf(f,
				"# HELP process_start_time_seconds Start time of the process since"
				" unix epoch in seconds.\n"
				"# TYPE process_start_time_seconds gauge\n"
				"process_start_time_seconds %.2f\n",
				p.start_time);
	}
	if (fds >= 0)
		fprintf(f,
			"# HELP process_open_fds Number of open file descriptors.\n"
			"# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
			fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		fputs("# HELP process_max_fds Maximum number of open file descriptors.\n"
		      "# TYPE process_max_fds gauge\n",
		      f);
		if (rl.rlim_cur == RLIM_INFINITY)
			fputs("process_max_fds +Inf\n", f);
		else
			fprintf(f, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
}
