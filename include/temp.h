/* temp.h - a temperature in tenths of a degree Celsius: rounding and text
 *
 * The one place that says how a temperature is rounded and written: the
 * normalizer's readings, the temp_c columns, the alert text, the
 * thresholds in the effective config, the log and cordonctl's reports. */
#ifndef CORDON_TEMP_H
#define CORDON_TEMP_H

#include <stddef.h>
#include <stdint.h>

#define TEMP_NONE INT16_MIN /* no temperature reading */
/* The temp_c columns are numeric(4,1): a reading that rounds beyond
 * +-999.9 degrees C cannot be stored and is rejected (temperature_out_of_range). */
#define TEMP_DC_MAX 9999

/* Rounds degrees C to tenths, half away from zero on the decimal value
 * (36.65, 36.6499... in binary, is 367; -0.05 is -1), as a person reading
 * a display would. Returns 0, or -ERANGE when the result is beyond
 * +-TEMP_DC_MAX or c is not a number. */
int temp_round(double c, int16_t *ret_dc) __attribute__((warn_unused_result));

/* Writes tenths as text: "36.6", "-0.5", "0.0" ("" for TEMP_NONE). */
void temp_format(int16_t dc, char *buf, size_t len);

/* Writes degrees C rounded as temp_round() does: 37.25 is "37.3" (printf's
 * "%.1f" gives "37.2", unlike the rules, which use 37.3); "" when it is
 * not a number or beyond the range. */
void temp_format_c(double c, char *buf, size_t len);

#endif
