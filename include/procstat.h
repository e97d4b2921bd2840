/* procstat.h - the process_* metrics of Prometheus' client libraries for
 * this process, read from /proc as github.com/prometheus/procfs does for
 * client_golang's process collector (procfs proc_stat.go, proc_limits.go,
 * proc.go FileDescriptorsLen; client_golang prometheus/
 * process_collector.go for the names and HELP texts):
 *
 *   process_cpu_seconds_total      (utime + stime) / ticks per second
 *   process_virtual_memory_bytes   vsize
 *   process_resident_memory_bytes  rss pages * page size
 *   process_start_time_seconds     btime of /proc/stat + starttime / ticks
 *   process_open_fds               entries of /proc/self/fd
 *   process_max_fds                RLIMIT_NOFILE's soft limit
 *
 * The parsers are pure (unit-tested with sample text); procstat_print()
 * reads the files. Shared by the daemons that serve /metrics (cordond,
 * cordon-notify). */
#ifndef CORDON_PROCSTAT_H
#define CORDON_PROCSTAT_H

#include <stdint.h>
#include <stdio.h>

/* The fields of /proc/<pid>/stat that the metrics need (proc(5): fields
 * 14 utime, 15 stime, 22 starttime, in clock ticks; 23 vsize, bytes; 24
 * rss, pages). */
struct procstat_stat {
	uint64_t utime, stime; /* ticks */
	uint64_t starttime;    /* ticks after boot */
	uint64_t vsize;	       /* bytes */
	int64_t rss;	       /* pages */
};

/* Parses the text of /proc/<pid>/stat ("PID (COMM) STATE PPID ..."; the
 * command may hold spaces and parentheses: the fields start after the
 * last ')'). 0, or -EINVAL when a field is missing or not a number. */
int procstat_parse_stat(const char *text, struct procstat_stat *ret)
	__attribute__((warn_unused_result));

/* The boot time from the text of /proc/stat (its line "btime N", seconds
 * since the epoch). 0, or -EINVAL when there is none. */
int procstat_parse_btime(const char *text, int64_t *ret_btime) __attribute__((warn_unused_result));

/* What the metrics say, from the parsed fields: `ticks` is
 * sysconf(_SC_CLK_TCK), `page` sysconf(_SC_PAGESIZE). */
struct procstat {
	double cpu_seconds;
	uint64_t virtual_bytes, resident_bytes;
	double start_time; /* seconds since the epoch */
};
void procstat_compute(const struct procstat_stat *s, int64_t btime, long ticks, long page,
		      struct procstat *ret);

/* Reads /proc/self/stat, /proc/stat and /proc/self/fd and appends the six
 * metrics with their HELP and TYPE lines, as client_golang writes them,
 * to a metrics text. A metric whose file cannot be read or parsed is left
 * out (as client_golang does without ReportErrors). */
void procstat_print(FILE *f);

#endif
