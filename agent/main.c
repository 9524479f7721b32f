/* dirbridge — the agent daemon: command line, then the loop in agent.c. */
#include <getopt.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>

#include <jansson.h>

#include "agent/agent.h"
#include "agent/platform.h"
#include "config/cfg.h"

#ifdef _WIN32
#define SERVICE_USAGE \
	"  --install-service    register the Windows service dirbridge to run with -c FILE\n" \
	"  --uninstall-service  stop and remove the Windows service\n"
#else
#define SERVICE_USAGE ""
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dirbridge [-n] [-c FILE]\n"
		"  -c FILE    configuration file (default %s)\n"
		"  -n         check the configuration and its files, print `configuration ok`\n"
		"             or every error, and exit (a lockout_guard number is compared\n"
		"             with the directory's lockout threshold)\n"
		"  -h         show this help\n"
		"  --version  show the version\n"
		SERVICE_USAGE
		"Exit status: 0 success, 1 runtime failure, 2 usage or configuration error.\n",
		agent_platform_default_config());
}

#ifdef _WIN32
/* The agent's body for agent_win_service_dispatch(), which runs it on the
 * service thread or, started from a console, not at all. */
static int run_body(void *arg)
{
	return agent_run(arg) < 0 ? 1 : 0;
}
#endif

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
#ifdef _WIN32
		{ "install-service", no_argument, NULL, 'I' },
		{ "uninstall-service", no_argument, NULL, 'U' },
#endif
		{ NULL, 0, NULL, 0 },
	};
	const char *path = agent_platform_default_config();
	bool check_only = false;
	int service_cmd = 0;
	struct cfg *cfg;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:nh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			check_only = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'I':
		case 'U':
			service_cmd = opt;
			break;
		case 'V':
			printf("dirbridge %s\n", DIRBRIDGE_VERSION);
			return 0;
		case ':':
			fprintf(stderr, "dirbridge: option %s needs an argument; see dirbridge -h\n",
				argv[optind - 1]);
			return 2;
		default:
			/* optopt names a bad short option even inside a cluster like -nx;
			 * it is 0 for a bad long option, which is then argv[optind - 1]. */
			if (optopt)
				fprintf(stderr, "dirbridge: unknown option -%c; see dirbridge -h\n", optopt);
			else
				fprintf(stderr, "dirbridge: unknown option %s; see dirbridge -h\n",
					argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dirbridge: unexpected argument '%s'; see dirbridge -h\n", argv[optind]);
		return 2;
	}

#ifdef _WIN32
	/* The service is registered with the same -c it will be started with. */
	if (service_cmd == 'I')
		return agent_win_install_service(path) < 0 ? 1 : 0;
	if (service_cmd == 'U')
		return agent_win_uninstall_service() < 0 ? 1 : 0;
#else
	(void)service_cmd;
#endif
	/* Process-wide settings belong here, not in the modules: a peer that closes
	 * early must not kill the process, and JSON memory is wiped when freed. */
	signal(SIGPIPE, SIG_IGN);
	json_set_alloc_funcs(cfg_wipe_alloc, cfg_wipe_free);
	rc = cfg_load(path, CFG_NEED_ALL, &cfg, stderr);
	if (rc < 0)
		return 2;
	/* GSSAPI finds its client keytab only through the environment, which is
	 * the process's: so it is set here, once, never inside ldap/
	 * (one the administrator already exported wins). */
	if (cfg->ldap.keytab)
		setenv("KRB5_CLIENT_KTNAME", cfg->ldap.keytab, 0);
	if (check_only) {
		/* Warnings only: the configuration is valid either way. */
		log_init(LOGL_WARN);
		(void)agent_check_directory(cfg);
		cfg_free(cfg);
		puts("configuration ok");
		return 0;
	}
	log_init(cfg->agent.log_level);
	log_set_format(cfg->agent.log_format);
	/* agent_run owns the config from here: a reload replaces and frees it. */
#ifdef _WIN32
	if ((rc = agent_win_service_dispatch(run_body, cfg)) != 1)
		return rc < 0 ? 1 : 0;
#endif
	return agent_run(cfg) < 0 ? 1 : 0;
}
