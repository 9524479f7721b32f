/*
 * The key and signature policy for certificates that name users: the same for
 * a CSR that dirbridge-cert signs and for a client certificate (and each
 * intermediate under it) that signs a user in, so that nothing the CA would
 * refuse to issue can be used from elsewhere.  See internal.h.
 */
#include <stdio.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tls/internal.h"

int tls_key_policy(gnutls_pubkey_t pub, char *why, size_t len)
{
	unsigned bits = 0;
	int alg = gnutls_pubkey_get_pk_algorithm(pub, &bits);
	gnutls_ecc_curve_t curve;
	const char *name;

	if (alg == GNUTLS_PK_RSA) {
		if (bits >= 2048)
			return 0;
		snprintf(why, len, "is RSA %u bits; at least 2048 needed", bits);
		return TLS_E_VERIFY;
	}
	if (alg == GNUTLS_PK_ECDSA && gnutls_pubkey_export_ecc_raw(pub, &curve, NULL, NULL) >= 0 &&
	    (curve == GNUTLS_ECC_CURVE_SECP256R1 || curve == GNUTLS_ECC_CURVE_SECP384R1))
		return 0;
	name = alg < 0 ? NULL : gnutls_pk_get_name((gnutls_pk_algorithm_t)alg);
	snprintf(why, len, "%s not accepted; use RSA >= 2048 or EC P-256/P-384",
		 name ? name : "of unknown type");
	return TLS_E_VERIFY;
}

/*
 * An allow-list of hashes rather than a deny-list of SHA-1: a signature
 * algorithm GnuTLS does not know, or one without a hash we trust (MD5,
 * RIPEMD-160, SHA-1), is refused.  EdDSA hashes internally and is accepted.
 */
int tls_sig_policy(gnutls_x509_crt_t crt, char *why, size_t len)
{
	int sig = gnutls_x509_crt_get_signature_algorithm(crt);
	gnutls_sign_algorithm_t s = sig < 0 ? GNUTLS_SIGN_UNKNOWN : (gnutls_sign_algorithm_t)sig;
	gnutls_pk_algorithm_t pk = gnutls_sign_get_pk_algorithm(s);
	const char *name = gnutls_sign_get_name(s);
	bool ok;

	switch (gnutls_sign_get_hash_algorithm(s)) {
	case GNUTLS_DIG_SHA224:
	case GNUTLS_DIG_SHA256:
	case GNUTLS_DIG_SHA384:
	case GNUTLS_DIG_SHA512:
	case GNUTLS_DIG_SHA3_224:
	case GNUTLS_DIG_SHA3_256:
	case GNUTLS_DIG_SHA3_384:
	case GNUTLS_DIG_SHA3_512:
		ok = true;
		break;
	default:
		ok = pk == GNUTLS_PK_EDDSA_ED25519 || pk == GNUTLS_PK_EDDSA_ED448;
		break;
	}
	if (s == GNUTLS_SIGN_UNKNOWN)
		ok = false;
	if (ok)
		return 0;
	snprintf(why, len, "is signed with %s; SHA-1 and weaker are not accepted",
		 name ? name : "an unknown algorithm");
	return TLS_E_VERIFY;
}

int tls_crt_policy(gnutls_x509_crt_t crt, char *why, size_t len)
{
	gnutls_pubkey_t pub = NULL;
	char sub[128];
	int ret;

	if (gnutls_pubkey_init(&pub) < 0) {
		snprintf(why, len, "out of memory");
		return TLS_E_NOMEM;
	}
	ret = gnutls_pubkey_import_x509(pub, crt, 0);
	if (ret < 0) {
		snprintf(why, len, "key unreadable: %s", gnutls_strerror(ret));
		ret = TLS_E_VERIFY;
	} else if ((ret = tls_key_policy(pub, sub, sizeof sub)) < 0) {
		snprintf(why, len, "key %s", sub);
	} else if ((ret = tls_sig_policy(crt, sub, sizeof sub)) < 0) {
		snprintf(why, len, "certificate %s", sub);
	}
	gnutls_pubkey_deinit(pub);
	return ret;
}
