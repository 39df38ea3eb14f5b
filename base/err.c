/* err.c - see err.h */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(struct err *e, enum err_code code, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
	char old[sizeof(e->msg)];
	va_list ap;
	int n;

	memcpy(old, e->msg, sizeof(old));
	va_start(ap, fmt);
	n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(e->msg) - 1) {
		size_t room = sizeof(e->msg) - 1 - n;
		size_t len = strnlen(old, room);

		memcpy(e->msg + n, old, len);
		e->msg[n + len] = '\0';
	}
	return -1;
}

void err_clear(struct err *e)
{
	e->code = ERR_OK;
	e->msg[0] = '\0';
}

const char *err_code_name(enum err_code code)
{
	static const char *const names[] = {
		[ERR_OK] = "ok",
		[ERR_NOTFOUND] = "not found",
		[ERR_ACCESS] = "access denied",
		[ERR_CONFLICT] = "conflict",
		[ERR_INVALID] = "invalid",
		[ERR_PROVIDER] = "provider failure",
		[ERR_READONLY] = "read-only",
		[ERR_PERM] = "not permitted",
		[ERR_TOOBIG] = "too big",
		[ERR_BUSY] = "busy",
		[ERR_NOMEM] = "out of memory",
		[ERR_IO] = "I/O error",
		[ERR_EXISTS] = "exists",
		[ERR_NOATTR] = "no such attribute",
		[ERR_NOTSUP] = "not supported",
		[ERR_NAMETOOLONG] = "name too long",
		[ERR_NOSPACE] = "no space left",
		[ERR_QUOTA] = "quota exceeded",
		[ERR_UNSURE] = "outcome unknown",
	};

	if ((unsigned)code >= sizeof(names) / sizeof(names[0]) || !names[code])
		return "error";
	return names[code];
}

int err_oom(struct err *e)
{
	return err_set(e, ERR_NOMEM, "out of memory");
}
