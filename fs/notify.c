/* notify.c - the sd_notify datagram protocol; see notify.h.
 *
 * Try it: socat UNIX-RECVFROM:/tmp/n.sock,fork - &
 *         NOTIFY_SOCKET=/tmp/n.sock secretfs -f CONFIG DIR
 */
#include "notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../base/log.h"

/* The address $NOTIFY_SOCKET names; its length, or 0 when it names none
 * this code can use (systemd also knows vsock:, which we do not need). */
static socklen_t notify_addr(const char *name, struct sockaddr_un *sa)
{
	size_t n = strlen(name);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if ((name[0] != '/' && name[0] != '@') || n < 2 || n >= sizeof(sa->sun_path))
		return 0;
	memcpy(sa->sun_path, name, n);
	/* abstract: a leading NUL, and the length counts exactly the name */
	if (name[0] == '@')
		sa->sun_path[0] = '\0';
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
			   (name[0] == '/'));
}

static void notify_warn(const char *name, const char *why)
{
	static bool warned;

	/* one line, not one per state change, when the manager went away */
	if (!__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
		log_warn("cannot notify the service manager at %s: %s", name, why);
}

int notify_send(const char *state)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t len;
	ssize_t sent;
	int fd, err;

	if (!name || !name[0])
		return 0;
	len = notify_addr(name, &sa);
	if (!len) {
		notify_warn(name, "not an absolute path or @abstract name");
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		notify_warn(name, strerror(errno));
		return -1;
	}
	sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
		      (const struct sockaddr *)&sa, len);
	err = errno;
	close(fd);
	if (sent < 0) {
		notify_warn(name, strerror(err));
		return -1;
	}
	return 0;
}

int notify_ready(const char *status)
{
	char msg[600];

	if (!status)
		return notify_send("READY=1");
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
	return notify_send(msg);
}

int notify_reloading(void)
{
	struct timespec ts;
	char msg[128];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL +
			 (unsigned long long)ts.tv_nsec / 1000);
	return notify_send(msg);
}

int notify_stopping(void)
{
	return notify_send("STOPPING=1");
}
