/* notify.h - systemd readiness (sd_notify); every call is a no-op without NOTIFY_SOCKET. */
#ifndef SV_NOTIFY_H
#define SV_NOTIFY_H

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
