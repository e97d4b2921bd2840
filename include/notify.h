/* notify.h - the systemd notify protocol (sd_notify), a no-op when
 * NOTIFY_SOCKET is not set. */
#ifndef CORDON_NOTIFY_H
#define CORDON_NOTIFY_H

#include <stdint.h>

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
/* STATUS=<one line> */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The watchdog interval systemd asked for (WATCHDOG_USEC), in ms; 0: none. */
int64_t notify_watchdog_ms(void);
void notify_watchdog(void);

#endif
