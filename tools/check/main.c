/*
 * dirbridge-check -c agent.ini [--user NAME] [--json]: runs the checks of
 * checks.c and prints one line per check, or the JSON report.  Exit 0 when
 * every check passed, 1 when one failed, 2 for usage or an unusable config.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/check/check.h"

static void usage(FILE *f)
{
	fputs("usage: dirbridge-check -c agent.ini [--user NAME] [--json]\n"
	      "Checks the configuration against the real directory, certificates and hub;\n"
	      "one line per check: ok, FAIL (with the fix) or skip.\n"
	      "Common: -h, --version.  Exit 0 all passed, 1 a check failed, 2 usage or config.\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "user", required_argument, NULL, 'u' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct chk_report r = { 0 };
	const char *path = NULL, *user = NULL;
	bool json = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "c:u:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'u': user = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("dirbridge-check %s\n", DIRBRIDGE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return 2;
	}
	/* Process-wide settings: a closed peer is an error return, not a signal;
	 * JSON that may hold secrets is wiped when freed. */
	signal(SIGPIPE, SIG_IGN);
	json_set_alloc_funcs(cfg_wipe_alloc, cfg_wipe_free);
	log_init(LOGL_ERROR);
	if (tls_global_init() < 0) {
		fputs("dirbridge: GnuTLS could not be initialised\n", stderr);
		return 1;
	}
	if (chk_run(path, user, &r) < 0) {
		fputs("dirbridge: out of memory\n", stderr);
		chk_report_free(&r);
		return 1;
	}
	if (json) {
		json_t *j = chk_json(&r);

		if (!j || json_dumpf(j, stdout, JSON_COMPACT) < 0) {
			fputs("dirbridge: the report could not be written as JSON\n", stderr);
			json_decref(j);
			chk_report_free(&r);
			return 1;
		}
		putchar('\n');
		json_decref(j);
	} else {
		chk_print_text(&r, stdout);
	}
	rc = chk_exit_status(&r);
	chk_report_free(&r);
	return rc;
}
