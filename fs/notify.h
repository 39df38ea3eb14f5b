/* notify.h - readiness and state for the service manager (systemd's
 * sd_notify protocol, without libsystemd).
 *
 * When $NOTIFY_SOCKET names an AF_UNIX datagram socket (a path, or an
 * abstract name written with a leading '@'), each call sends one datagram
 * of newline-separated VAR=VALUE assignments to it; without the variable
 * each call does nothing. See sd_notify(3) for what systemd does with them.
 *
 *   notify_ready()      READY=1       the mount is live (again, after a reload)
 *   notify_reloading()  RELOADING=1   a reload started (MONOTONIC_USEC= too,
 *                                     which Type=notify-reload requires)
 *   notify_stopping()   STOPPING=1    shutting down
 *
 * Safe from any thread. Failures are not fatal to the caller: they return
 * -1 (logged once as a warning), and the service manager's timeouts apply.
 */
#ifndef SECRETFS_NOTIFY_H
#define SECRETFS_NOTIFY_H

/* status (may be NULL) is added as STATUS=..., what systemctl status
 * shows. 0 when sent or when there is nobody to tell; -1 on failure. */
int notify_ready(const char *status);
int notify_reloading(void);
int notify_stopping(void);

/* Send state as it is (e.g. "READY=1\nSTATUS=mounted"). */
int notify_send(const char *state);

#endif
