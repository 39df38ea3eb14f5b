/* hooks.h - change hooks: on_change = COMMAND runs when an app's files
 * really changed, so a running service learns of a rotation.
 *
 * One thread for the mount. Every app with a hook is revalidated every
 * `refresh` (its sources expired and read, whether or not anyone reads
 * the files); its digest (a keyed hash per key, and per template file) is
 * compared with the last one, and the names that changed are gathered. A
 * change - found so, reported by the cache's refresher (hooks_poke), or
 * made by a write through the mount - is debounced: the command runs
 * on_change_delay after the last change of a burst, once. It never runs
 * twice at once for one app (changes during a run start one more run
 * after it), is killed with its process group after on_change_timeout, and
 * its exit status and duration are logged.
 *
 * The command runs without a shell, argv split as a shell would (quotes,
 * backslashes; no expansion), as on_change_user when set, in / with a
 * minimal environment - PATH, SECRETFS_APP=NAME,
 * SECRETFS_CHANGED=KEY1,KEY2 (names only, never a value) - not the
 * daemon's, which may hold credentials; stdin is /dev/null, stdout and
 * stderr are the daemon's stderr.
 *
 * Try it: on_change = sh -c 'kill -HUP "$(cat /run/billing.pid)"'
 */
#ifndef SECRETFS_HOOKS_H
#define SECRETFS_HOOKS_H

#include "../base/err.h"
#include "../base/kvmap.h"
#include "../base/strv.h"
#include "config.h"

/* What the app shows now, as name -> digest (no values): 0, or -1 when a
 * source failed (no change is concluded from a failure). */
typedef int (*hooks_digest_fn)(void *ctx, const struct app_conf *app,
			       struct kvmap *out, struct err *e);
/* Make the app's sources due for revalidation (app_expire). */
typedef void (*hooks_expire_fn)(void *ctx, const struct app_conf *app);

struct hooks;

/* Start watching every app of cfg with an on_change; NULL (and nothing
 * started) when none has one, or on failure (e set). */
struct hooks *hooks_start(const struct config *cfg, hooks_digest_fn digest,
			  hooks_expire_fn expire, void *ctx, struct err *e);
/* Stop the thread; a command still running is left to finish on its own. */
void hooks_stop(struct hooks *h);

/* Something of app may have changed (a refresh found a new entry, a
 * write went through): compare now. NULL h, or an app without a hook, is
 * fine. */
void hooks_poke(struct hooks *h, const char *app);

/* Runs so far for app (tests). */
unsigned hooks_runs(struct hooks *h, const char *app);

/* Whoever can change the program app's on_change runs can run anything
 * as its user (root, unless on_change_user says otherwise), so it must be
 * trusted (base/trust.h): the program (argv[0], found as the run will find
 * it), and for a shell's -c script ("sh -c '...'", also bash, dash, ash,
 * ksh, mksh, zsh) the script's first word when it is an absolute path;
 * each, and every folder above its real path (a sticky one may be
 * writable by all), owned by root, the daemon's user or on_change_user,
 * and not writable by group or others. Checked at config load; ERR_INVALID
 * names the program, the file and the fix; a program not found is one
 * too. */
int hooks_trust_check(const struct app_conf *app, struct err *e);

/* COMMAND -> argv as sh would split it, without any expansion: blanks
 * separate words, '...' is literal, "..." takes \ before $ ` " \ and
 * newline, \ outside quotes escapes the next character. ERR_INVALID on
 * an unterminated quote or an empty command. */
int hooks_split(const char *cmd, struct strv *argv, struct err *e);

#endif
