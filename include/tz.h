/* tz.h - time zones from the system's TZif files (/usr/share/zoneinfo),
 * without touching the TZ environment variable (thread-safe). */
#ifndef CORDON_TZ_H
#define CORDON_TZ_H

#include <stdint.h>

struct tz;

/* Loads zone `name` (e.g. "Asia/Shanghai") from $TZDIR, or else
 * /usr/share/zoneinfo (tzdata, TZif: RFC 8536); returns 0, -ENOENT for an
 * unknown zone, -EINVAL for a bad name or file. */
int tz_load(const char *name, struct tz **ret_tz) __attribute__((warn_unused_result));
void tz_free(struct tz *tz);
const char *tz_name(const struct tz *tz);
/* Seconds east of UTC in force at UTC time `t`. */
int32_t tz_offset_at(const struct tz *tz, int64_t t);
/* UTC seconds of the local wall time `naive` (seconds since the epoch as
 * if the wall clock were UTC). In a gap or an overlap the earlier
 * offset is used. */
int64_t tz_local_to_utc(const struct tz *tz, int64_t naive);

#endif
