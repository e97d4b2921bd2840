/* web_views_none.c - until include/views.h has its implementation in
 * this tree: the boards and the report answer 503. (Removed once
 * src/views.c is there; meson picks web_views.c then.) */
#include "web.h"

static int
none(struct web_req *r)
{
	const char *site = r->nseg == 3 ? r->seg[1] : web_arg(r, "site");

	if (!web_check_id(r, "site", site) || !web_check_site(r, site) ||
	    !web_check_date(r, "date", web_arg(r, "date")))
		return 1;
	return web_reply_error(r, 503, "unavailable", "this build has no views (src/views.c)");
}

int
web_api_gates(struct web_req *r)
{
	return none(r);
}

int
web_api_zones(struct web_req *r)
{
	return none(r);
}

int
web_api_isolation(struct web_req *r)
{
	return none(r);
}

int
web_api_needs(struct web_req *r)
{
	return none(r);
}

int
web_api_household(struct web_req *r)
{
	return none(r);
}

int
web_api_report(struct web_req *r)
{
	return none(r);
}

int
web_api_report_csv(struct web_req *r)
{
	return none(r);
}
