/*
 * Drives tls_server_new()/tls_server_reload() directly, below the config
 * checks that normally catch bad files first, for tests/integration/https_reload.sh.
 *
 *   tlsreload CERT KEY CA [CRL] -- CERT KEY CA [CRL] -- ...
 * The first set creates the server; each later one is a reload.  Prints one
 * line per step: "ok SERIAL" or "refused SERIAL: REASON", SERIAL being the
 * server certificate in use afterwards.
 */
#include <stdio.h>
#include <string.h>

#include "tls/tls.h"

int main(int argc, char **argv)
{
	struct tls_server *srv = NULL;
	int i = 1;

	if (tls_global_init() < 0)
		return 1;
	while (i < argc) {
		struct tls_server_files f = { 0 };
		const char *v[4] = { 0 };
		char err[512] = "";
		int n = 0, rc;

		while (i < argc && strcmp(argv[i], "--") != 0 && n < 4)
			v[n++] = argv[i++];
		if (i < argc && strcmp(argv[i], "--") == 0)
			i++;
		if (n < 3) {
			fprintf(stderr, "usage: tlsreload CERT KEY CA [CRL] [-- CERT KEY CA [CRL]]...\n");
			return 2;
		}
		f.cert_file = v[0];
		f.key_file = v[1];
		f.client_ca_file = v[2];
		f.crl_file = v[3];
		rc = srv ? tls_server_reload(srv, &f, err, sizeof err)
			 : tls_server_new(&f, &srv, err, sizeof err);
		if (rc == 0)
			printf("ok %s\n", tls_server_serial(srv));
		else
			printf("refused %s: %s\n", srv ? tls_server_serial(srv) : "-", err);
	}
	tls_server_free(srv);
	return 0;
}
