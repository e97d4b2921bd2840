/* temp.c - temperatures in tenths of a degree: rounding and text (temp.h) */
#include "temp.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>

int
temp_round(double c, int16_t *ret_dc)
{
	double r = c * 10.0;

	/* Half away from zero on the decimal value: 36.65 (36.6499... in
	 * binary) is 36.7. The bound is the column's, after rounding: 999.94
	 * is 999.9, 999.96 would be 1000.0, which numeric(4,1) cannot hold. */
	r = trunc(r < 0 ? r - 0.5 - 1e-6 : r + 0.5 + 1e-6);
	if (!(r >= -TEMP_DC_MAX && r <= TEMP_DC_MAX))
		return -ERANGE;
	*ret_dc = (int16_t)r;
	return 0;
}

void
temp_format(int16_t dc, char *buf, size_t len)
{
	int t = dc < 0 ? -dc : dc; /* |dc| <= 32767: INT16_MIN is TEMP_NONE */

	if (dc == TEMP_NONE) {
		snprintf(buf, len, "%s", "");
		return;
	}
	/* The sign is written apart: -5 / 10 is 0, which would lose it. */
	snprintf(buf, len, "%s%d.%d", dc < 0 ? "-" : "", t / 10, t % 10);
}

void
temp_format_c(double c, char *buf, size_t len)
{
	int16_t dc;

	if (temp_round(c, &dc) < 0)
		dc = TEMP_NONE;
	temp_format(dc, buf, len);
}
