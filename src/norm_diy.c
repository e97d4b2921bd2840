/* norm_diy.c - placeholder: the diy terminal format is being written. */
#include "normalize_internal.h"

int
norm_diy_shape(json_t *root)
{
	(void)root;
	return 0;
}

int
norm_diy_gate(const struct norm_msg *msg, json_t *root, struct event *events,
	    size_t max, struct norm_result *ret)
{
	(void)msg;
	(void)root;
	(void)events;
	(void)max;
	return norm_reject(ret, "unknown_format", "diy format not supported yet");
}
