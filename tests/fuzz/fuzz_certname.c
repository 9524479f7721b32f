/*
 * libFuzzer harness for tls_client_cert_check(): the input is the DER of a
 * client certificate, as a TLS peer can send any bytes there.  Each input is
 * checked for every way a certificate names a user, at a fixed time so that a
 * crash reproduces.  A passing check must leave a name that is a C string of
 * the size the struct promises.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum tls_certname how[] = { TLS_CERTNAME_CN, TLS_CERTNAME_UPN,
						 TLS_CERTNAME_EMAIL };
	/* 2026-01-01: inside the seeds' validity. */
	const int64_t now = 1767225600;

	for (size_t i = 0; i < sizeof how / sizeof how[0]; i++) {
		struct tls_client_cert c;
		int rc = tls_client_cert_check(data, size, how[i], now, &c);

		if (memchr(c.username, '\0', sizeof c.username) == NULL ||
		    memchr(c.reason, '\0', sizeof c.reason) == NULL ||
		    (rc == 0 && c.username[0] == '\0') || (rc != 0 && c.username[0] != '\0'))
			abort();
	}
	return 0;
}
