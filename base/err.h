/* err.h - errors that carry a code and a message fit for a log line.
 *
 * Every module below the FUSE adapter reports failure through a struct err;
 * errno values appear only at the FUSE boundary (fs/ops.c maps codes).
 * A message never contains a secret value: name keys, references and
 * lines, never what they hold.
 */
#ifndef SECRETFS_ERR_H
#define SECRETFS_ERR_H

enum err_code {
	ERR_OK = 0,
	ERR_NOTFOUND,	/* no such entry or key */
	ERR_ACCESS,	/* the provider refused us */
	ERR_CONFLICT,	/* compare-and-set: the entry moved */
	ERR_INVALID,	/* bad input: syntax, name, reference */
	ERR_PROVIDER,	/* provider unreachable, failed or answered garbage */
	ERR_READONLY,	/* value comes from another entry */
	ERR_PERM,	/* operation not allowed on this key */
	ERR_TOOBIG,	/* value or file over the limit */
	ERR_BUSY,	/* conflicting concurrent edit */
	ERR_NOMEM,
	ERR_IO,		/* local I/O failure */
	ERR_EXISTS,	/* the name is taken */
	ERR_NOATTR,	/* no such extended attribute (an answer, for probes) */
	ERR_NOTSUP,	/* not an operation this file has */
	ERR_NAMETOOLONG,	/* longer than a file name can be */
	ERR_NOSPACE,	/* a local disk is full (ENOSPC) */
	ERR_QUOTA,	/* a local disk quota is exhausted (EDQUOT) */
	/* A request that changes something went out and no usable answer
	 * came back (connection dropped, timed out, garbage): it may or may
	 * not have taken effect. Otherwise it is a provider failure. */
	ERR_UNSURE,
};

struct err {
	enum err_code code;
	char msg[512];
};

/* Set code and message; always returns -1 so callers can `return err_set(...)`. */
int err_set(struct err *e, enum err_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepend context ("file.conf:3: ") to the message; returns -1. */
int err_prefix(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* err_set(e, ERR_NOMEM, "out of memory"): the one message for it. */
int err_oom(struct err *e);
void err_clear(struct err *e);

/* Short lowercase name of a code, for log lines ("not found", "conflict"). */
const char *err_code_name(enum err_code code);

#endif
