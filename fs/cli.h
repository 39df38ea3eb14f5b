/* cli.h - the commands that run without a mount, for CI, deploys and
 * debugging (fs/main.c dispatches to them):
 *
 *   secretfs check CONFIG [APP...]
 *       load the configuration, create every provider, resolve every
 *       reference of every app (or of the apps named) and print a table
 *       per app: key, file, source, version, status. Writes nothing: a
 *       generate: key the store lacks is "would be generated". Exit 0
 *       when everything resolves, else 1.
 *   secretfs render CONFIG APP [--format env|json|sh|docker]
 *       print the app's value set to stdout, read as the mount reads it
 *       (generate: keys the store lacks are generated and stored, as a
 *       read through the mount does). All or nothing: on any failure
 *       nothing is printed and the exit status is 1.
 *
 * No value is ever printed by check, and render prints values only to
 * stdout; messages go to stderr. Everything but render's values (data) is
 * escaped as log lines are (log_escape), names from stores included.
 */
#ifndef SECRETFS_CLI_H
#define SECRETFS_CLI_H

#include <stdbool.h>

#include "../base/err.h"
#include "../base/kvmap.h"
#include "../base/secmem.h"

/* in the order of enum fmt_kind (base/formats.h), which renders them */
enum cli_format {
	CLI_FORMAT_ENV,		/* .env exactly as the mount serves it */
	CLI_FORMAT_JSON,	/* {"KEY": "value", ...}, keys sorted */
	CLI_FORMAT_SH,		/* export KEY='value' lines: safe to eval or . */
	CLI_FORMAT_DOCKER,	/* KEY=value lines: docker run --env-file */
};

/* Is word a command (check, render) rather than a daemon argument? */
bool cli_is_command(const char *word);

/* Run the command argv[0] with its arguments; returns the exit status. */
int cli_main(int argc, char **argv);

/* "env" "json" "sh" "docker" -> *f; -1 when unknown. */
int cli_format_parse(const char *name, enum cli_format *f);

/* vals in format f (not CLI_FORMAT_ENV: that is .env itself), appended
 * to out. A value or key the format cannot carry exactly is ERR_INVALID
 * naming the key and why, and nothing is appended. */
int cli_format(enum cli_format f, const struct kvmap *vals,
	       struct secbuf *out, struct err *e);

#endif
