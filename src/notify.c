/* notify.c - libsystemd's sd_notify: READY=1 once the spool is open and
 * the broker connected (PostgreSQL may still be down: that is a STATUS),
 * RELOADING=1 around SIGHUP, STOPPING=1 on SIGTERM, STATUS= with rates and
 * backlog, WATCHDOG=1 from the main loop. */
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

void
notify_ready(void)
{
	sd_notify(0, "READY=1");
}

void
notify_reloading(void)
{
	sd_notify(0, "RELOADING=1");
}

void
notify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

void
notify_status(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", buf);
}

int64_t
notify_watchdog_ms(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return (int64_t)(usec / 1000);
}

void
notify_watchdog(void)
{
	sd_notify(0, "WATCHDOG=1");
}
