/* test_notify.c - the sd_notify sender (fs/notify.c) against a real
 * datagram socket, at a path and at an abstract name. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fs/notify.h"

static int bind_dgram(const char *name, socklen_t *len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	size_t n = strlen(name);

	assert_true(fd >= 0);
	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, *len), 0);
	return fd;
}

static const char *recv_text(int fd)
{
	static char buf[512];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n > 0);
	buf[n] = '\0';
	return buf;
}

static void notify_round(const char *name)
{
	socklen_t len;
	int fd = bind_dgram(name, &len);

	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(notify_ready("2 apps mounted at /run/secrets"), 0);
	assert_string_equal(recv_text(fd), "READY=1\nSTATUS=2 apps mounted at /run/secrets");
	assert_int_equal(notify_reloading(), 0);
	assert_true(!strncmp(recv_text(fd), "RELOADING=1\nMONOTONIC_USEC=", 27));
	assert_int_equal(notify_ready(NULL), 0);
	assert_string_equal(recv_text(fd), "READY=1");
	assert_int_equal(notify_stopping(), 0);
	assert_string_equal(recv_text(fd), "STOPPING=1");
	close(fd);
}

static void test_notify_path_and_abstract(void **state)
{
	char path[64], abstract[64];

	snprintf(path, sizeof(path), "/tmp/secretfs-test-notify-%d", (int)getpid());
	unlink(path);
	notify_round(path);
	unlink(path);
	snprintf(abstract, sizeof(abstract), "@secretfs-test-notify-%d", (int)getpid());
	notify_round(abstract);
}

static void test_notify_without_socket(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(notify_ready(NULL), 0);
	setenv("NOTIFY_SOCKET", "relative/name", 1);
	assert_int_equal(notify_stopping(), -1);
	setenv("NOTIFY_SOCKET", "/nonexistent/secretfs-notify", 1);
	assert_int_equal(notify_stopping(), -1);
	unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notify_path_and_abstract),
		cmocka_unit_test(test_notify_without_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
