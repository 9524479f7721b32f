/*
 * config/: loading, validation and its messages, CIDR ranges, secret files.
 * Every config is written into a fresh temporary directory together with real
 * certificates and keys made here with GnuTLS, and names its files relatively,
 * so they resolve against the config's directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config/cfg.h"
#include "tls/tls.h"

static char dir[64];
static char ini_path[128];
static char *errs;		/* what the last load() wrote to its error stream */

/* ---- fixtures ------------------------------------------------------------- */

static void write_file(const char *name, const void *data, size_t len, mode_t mode)
{
	char path[256];
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void write_text(const char *name, const char *text, mode_t mode)
{
	write_file(name, text, strlen(text), mode);
}

static void chmod_file(const char *name, mode_t mode)
{
	char path[256];

	snprintf(path, sizeof path, "%s/%s", dir, name);
	assert_int_equal(chmod(path, mode), 0);
}

static gnutls_x509_privkey_t new_key(void)
{
	gnutls_x509_privkey_t k;

	assert_int_equal(gnutls_x509_privkey_init(&k), 0);
	assert_int_equal(gnutls_x509_privkey_generate(k, GNUTLS_PK_ECDSA,
		GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	return k;
}

static gnutls_x509_crt_t new_cert(gnutls_x509_privkey_t key, const char *cn, bool ca,
				  gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key)
{
	static unsigned char serial = 1;
	gnutls_x509_crt_t c;
	time_t now = time(NULL);

	assert_int_equal(gnutls_x509_crt_init(&c), 0);
	assert_int_equal(gnutls_x509_crt_set_version(c, 3), 0);
	serial++;
	assert_int_equal(gnutls_x509_crt_set_serial(c, &serial, 1), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(c, now - 60), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(c, now + 86400), 0);
	assert_int_equal(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						       (unsigned)strlen(cn)), 0);
	assert_int_equal(gnutls_x509_crt_set_key(c, key), 0);
	assert_int_equal(gnutls_x509_crt_set_basic_constraints(c, ca, -1), 0);
	assert_int_equal(gnutls_x509_crt_set_key_usage(c, ca ? GNUTLS_KEY_KEY_CERT_SIGN |
		GNUTLS_KEY_CRL_SIGN : GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
	assert_int_equal(gnutls_x509_crt_sign2(c, issuer ? issuer : c,
					       issuer_key ? issuer_key : key, GNUTLS_DIG_SHA256, 0), 0);
	return c;
}

static void save_cert(const char *name, gnutls_x509_crt_t c)
{
	gnutls_datum_t d;

	assert_int_equal(gnutls_x509_crt_export2(c, GNUTLS_X509_FMT_PEM, &d), 0);
	write_file(name, d.data, d.size, 0644);
	gnutls_free(d.data);
}

static void save_key(const char *name, gnutls_x509_privkey_t k)
{
	gnutls_datum_t d;

	assert_int_equal(gnutls_x509_privkey_export2(k, GNUTLS_X509_FMT_PEM, &d), 0);
	write_file(name, d.data, d.size, 0600);
	gnutls_free(d.data);
}

static void save_crl(const char *name, gnutls_x509_crt_t ca, gnutls_x509_privkey_t ca_key)
{
	gnutls_x509_crl_t crl;
	gnutls_datum_t d;
	time_t now = time(NULL);

	assert_int_equal(gnutls_x509_crl_init(&crl), 0);
	assert_int_equal(gnutls_x509_crl_set_version(crl, 2), 0);
	assert_int_equal(gnutls_x509_crl_set_this_update(crl, now), 0);
	assert_int_equal(gnutls_x509_crl_set_next_update(crl, now + 86400), 0);
	assert_int_equal(gnutls_x509_crl_sign2(crl, ca, ca_key, GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &d), 0);
	write_file(name, d.data, d.size, 0644);
	gnutls_free(d.data);
	gnutls_x509_crl_deinit(crl);
}

static int setup(void **state)
{
	gnutls_x509_privkey_t ca_key, srv_key, other_key, oca_key;
	gnutls_x509_crt_t ca, srv, oca;
	char path[256];
	FILE *f;

	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_cfg.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(ini_path, sizeof ini_path, "%s/agent.ini", dir);

	ca_key = new_key();
	ca = new_cert(ca_key, "test CA", true, NULL, NULL);
	srv_key = new_key();
	srv = new_cert(srv_key, "localhost", false, ca, ca_key);
	other_key = new_key();
	oca_key = new_key();
	oca = new_cert(oca_key, "other CA", true, NULL, NULL);
	save_cert("ca.pem", ca);
	save_cert("other-ca.pem", oca);
	save_cert("server.pem", srv);
	save_key("server.key", srv_key);
	save_key("other.key", other_key);
	save_crl("client.crl", ca, ca_key);
	save_crl("other.crl", oca, oca_key);
	/* An issuer before the certificate it issued. */
	snprintf(path, sizeof path, "%s/unsorted.pem", dir);
	save_cert("unsorted.pem", ca);
	f = fopen(path, "a");
	assert_non_null(f);
	{
		gnutls_datum_t d;

		assert_int_equal(gnutls_x509_crt_export2(srv, GNUTLS_X509_FMT_PEM, &d), 0);
		fwrite(d.data, 1, d.size, f);
		gnutls_free(d.data);
	}
	fclose(f);
	write_text("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", 0644);
	write_text("bind.pw", "Sup3r-Secret-Bind\n", 0600);
	write_text("hub.token", "0123456789abcdef\n", 0600);
	write_text("krb5.keytab", "not really a keytab", 0600);

	gnutls_x509_crt_deinit(ca);
	gnutls_x509_crt_deinit(srv);
	gnutls_x509_crt_deinit(oca);
	gnutls_x509_privkey_deinit(ca_key);
	gnutls_x509_privkey_deinit(srv_key);
	gnutls_x509_privkey_deinit(other_key);
	gnutls_x509_privkey_deinit(oca_key);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	free(errs);
	errs = NULL;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- helpers -------------------------------------------------------------- */

static const char good_ldap[] =
	"[ldap]\n"
	"url = ldaps://dc1.example.test ldaps://[::1]:3636\n"
	"ca_file = ca.pem\n"
	"bind_dn = CN=svc,CN=Users,DC=example,DC=test\n"
	"bind_password_file = bind.pw\n"
	"base_dn = DC=example,DC=test\n";
static const char good_https[] =
	"[https]\n"
	"listen = 127.0.0.1:8443 [::]:8443\n"
	"public_url = https://agent.example.test:8443\n"
	"cert_file = server.pem\n"
	"key_file = server.key\n"
	"client_ca_file = ca.pem\n"
	"crl_file = client.crl\n"
	"client_cert_ranges = 10.0.0.0/8 2001:db8::/32 192.168.1.7\n";
static const char good_hub[] =
	"[hub]\n"
	"url = wss://hub.example.test:9443/agent/v1\n"
	"token_file = hub.token\n"
	"ca_file = ca.pem\n";

/* Loads TEXT as the config; the messages land in errs. */
static int load(const char *text, unsigned need, struct cfg **out)
{
	size_t len;
	FILE *f;
	int rc;

	write_text("agent.ini", text, 0644);
	free(errs);
	errs = NULL;
	f = open_memstream(&errs, &len);
	assert_non_null(f);
	rc = cfg_load(ini_path, need, out, f);
	fclose(f);
	if (getenv("TEST_CFG_VERBOSE"))
		fprintf(stderr, "--- rc %d\n%s---\n%s", rc, text, errs);
	if (rc == 0)
		assert_non_null(*out);
	else
		assert_null(*out);
	return rc;
}

/* A full config with EXTRA appended to the section named by SECTION. */
static int load_with(const char *section, const char *extra, struct cfg **out)
{
	char text[8192];

	snprintf(text, sizeof text, "[agent]\nname = t\n%s%s%s%s%s%s",
		 good_ldap, strcmp(section, "ldap") == 0 ? extra : "",
		 good_https, strcmp(section, "https") == 0 ? extra : "",
		 good_hub, strcmp(section, "hub") == 0 ? extra : "");
	return load(text, CFG_NEED_ALL, out);
}

static unsigned count_lines(const char *s)
{
	unsigned n = 0;

	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* Asserts that one error line is "dirbridge: PATH:LINE: ..." containing WHAT. */
static void assert_error_at(int line, const char *what)
{
	char prefix[256];
	const char *p = errs;

	snprintf(prefix, sizeof prefix, "dirbridge: %s:%d: ", ini_path, line);
	while (p && (p = strstr(p, prefix))) {
		size_t end = strcspn(p, "\n");

		if (memmem(p, end, what, strlen(what)))
			return;
		p += end;
	}
	print_error("no error at line %d containing '%s' in:\n%s", line, what, errs ? errs : "");
	fail();
}

static void assert_errors_contain(const char *what)
{
	if (!errs || !strstr(errs, what)) {
		print_error("'%s' not in:\n%s", what, errs ? errs : "");
		fail();
	}
}

/* ---- loading -------------------------------------------------------------- */

static void test_valid_full(void **state)
{
	struct cfg *c = NULL;
	char want[256];

	(void)state;
	assert_int_equal(load_with("", "", &c), 0);
	assert_string_equal(errs, "");
	assert_string_equal(c->agent.name, "t");
	assert_int_equal(c->agent.log_level, LOGL_INFO);
	assert_null(c->agent.user);
	assert_true(c->ldap.present && c->https.present && c->hub.present);
	assert_int_equal(c->ldap.n_urls, 2);
	assert_string_equal(c->ldap.urls[1], "ldaps://[::1]:3636");
	snprintf(want, sizeof want, "%s/ca.pem", dir);
	assert_string_equal(c->ldap.ca_file, want);	/* relative to the config */
	assert_false(c->ldap.starttls);
	assert_null(c->ldap.sasl_mech);
	assert_int_equal(c->ldap.type, CFG_DIR_AD);
	assert_string_equal(c->ldap.user_filter, "(&(objectClass=user)(sAMAccountName={username}))");
	assert_int_equal(c->ldap.groups, CFG_GROUPS_DIRECT);
	assert_int_equal(c->ldap.timeout_ms, 5000);
	assert_int_equal(c->ldap.pool_size, 2);
	assert_int_equal(c->ldap.n_attributes, 0);
	assert_int_equal(c->ldap.lockout_guard, CFG_LOCKOUT_AUTO);
	assert_int_equal(c->ldap.lockout_guard_window_s, 900);
	assert_true(c->ldap.reveal_account_state);
	assert_int_equal(c->https.n_listen, 2);
	assert_int_equal(c->https.listen_addrs[0].ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&c->https.listen_addrs[0])->sin_port), 8443);
	assert_int_equal(c->https.listen_addrs[1].ss_family, AF_INET6);
	assert_int_equal(c->https.n_ranges, 3);
	assert_int_equal(c->https.ranges[2].prefix, 32);
	assert_int_equal(c->https.cert_username, CFG_CERTNAME_CN);
	assert_int_equal(c->https.client_verify_depth, 1);	/* the default */
	assert_int_equal(c->https.max_connections, 10000);
	assert_int_equal(c->https.max_failures_per_ip, 20);
	assert_non_null(c->https.crl_file);
	assert_string_equal(c->hub.host, "hub.example.test");
	assert_int_equal(c->hub.port, 9443);
	assert_string_equal(c->hub.path, "/agent/v1");
	cfg_free(c);
}

static void test_values_and_defaults(void **state)
{
	struct cfg *c = NULL;

	(void)state;
	assert_int_equal(load("[agent]\nname = a.b-c_1\nlog_level = DEBUG\n"
			      "[ldap]\nurl = ldap://ldap.example.test:389\nstarttls = yes\n"
			      "ca_file = ca.pem\nbind_dn = cn=admin,dc=example,dc=test\n"
			      "bind_password_file = bind.pw\nbase_dn = dc=example,dc=test\n"
			      "type = openldap\ngroups = recursive\ntimeout_ms = 600000\n"
			      "pool_size = 32\nattributes = \"telephoneNumber mail;lang-de 2.5.4.20\"\n",
			      CFG_NEED_LDAP, &c), 0);
	assert_int_equal(c->agent.log_level, LOGL_DEBUG);
	assert_true(c->ldap.starttls);
	assert_int_equal(c->ldap.type, CFG_DIR_OPENLDAP);
	assert_string_equal(c->ldap.user_filter, "(&(objectClass=inetOrgPerson)(uid={username}))");
	assert_int_equal(c->ldap.groups, CFG_GROUPS_RECURSIVE);
	assert_int_equal(c->ldap.timeout_ms, 600000);
	assert_int_equal(c->ldap.pool_size, 32);
	assert_int_equal(c->ldap.n_attributes, 3);
	assert_string_equal(c->ldap.attributes[1], "mail;lang-de");
	assert_false(c->https.present);
	assert_false(c->hub.present);
	cfg_free(c);

	assert_int_equal(load_with("ldap", "lockout_guard = 4\nlockout_guard_window_s = 60\n"
				   "reveal_account_state = false\n", &c), 0);
	assert_int_equal(c->ldap.lockout_guard, 4);
	assert_int_equal(c->ldap.lockout_guard_window_s, 60);
	assert_false(c->ldap.reveal_account_state);
	cfg_free(c);
	assert_int_equal(load_with("ldap", "lockout_guard = 0\n", &c), 0);
	assert_int_equal(c->ldap.lockout_guard, 0);
	cfg_free(c);
	assert_int_equal(load_with("ldap", "lockout_guard = AUTO\n", &c), 0);
	assert_int_equal(c->ldap.lockout_guard, CFG_LOCKOUT_AUTO);
	cfg_free(c);

	/* The lower bounds are inside the range. */
	assert_int_equal(load_with("ldap", "timeout_ms = 100\npool_size = 1\n", &c), 0);
	assert_int_equal(c->ldap.timeout_ms, 100);
	cfg_free(c);
	assert_int_equal(load_with("https", "max_connections = 16\n", &c), 0);
	assert_int_equal(c->https.max_connections, 16);
	cfg_free(c);
	assert_int_equal(load_with("https", "max_connections = 1000000\n", &c), 0);
	assert_int_equal(c->https.max_connections, 1000000);
	cfg_free(c);
}

static void test_need_sections(void **state)
{
	struct cfg *c = NULL;
	char text[2048];

	(void)state;
	snprintf(text, sizeof text, "%s", good_ldap);
	assert_int_equal(load(text, CFG_NEED_LDAP, &c), 0);
	cfg_free(c);
	assert_int_equal(load(text, CFG_NEED_ALL, &c), -EINVAL);
	assert_errors_contain("section [https] is missing");
	assert_errors_contain("section [hub] is missing");
	assert_int_equal(count_lines(errs), 2);
	assert_int_equal(load("[agent]\n", CFG_NEED_LDAP, &c), -EINVAL);
	assert_errors_contain("section [ldap] is missing");
}

static void test_unknown_names(void **state)
{
	struct cfg *c = NULL;

	(void)state;
	assert_int_equal(load("stray = 1\n[agent]\nname = x\nlog_levl = info\n[ldapp]\nurl = x\n",
			      0, &c), -EINVAL);
	assert_error_at(1, "stray is outside any section");
	assert_error_at(4, "did you mean log_level");
	assert_error_at(5, "unknown section [ldapp]");
	/* Keys of an unknown section are not reported once more. */
	assert_int_equal(count_lines(errs), 3);
}

static void test_syntax_error_line(void **state)
{
	struct cfg *c = NULL;

	(void)state;
	assert_int_equal(load("[agent]\nname = x\nthis is not ini\n[hub\n", 0, &c), -EINVAL);
	assert_error_at(3, "syntax error");
	assert_error_at(4, "syntax error");
	/* The offending text itself is never echoed. */
	assert_null(strstr(errs, "this is not ini"));
}

static void test_duplicate_key(void **state)
{
	struct cfg *c = NULL;

	(void)state;
	assert_int_equal(load("[agent]\nname = x\nlog_level = info\nname = y\n", 0, &c), -EINVAL);
	assert_error_at(4, "name is given twice (first on line 2)");
}

static void test_types_and_ranges(void **state)
{
	static const struct {
		const char *section, *line, *what;
	} bad[] = {
		{ "ldap", "timeout_ms = 99\n", "out of range" },
		{ "ldap", "timeout_ms = 600001\n", "out of range" },
		{ "ldap", "timeout_ms = 5s\n", "not a whole number" },
		{ "ldap", "timeout_ms = -5\n", "not a whole number" },
		{ "ldap", "timeout_ms = 0100\n", "not a whole number" },
		{ "ldap", "timeout_ms = 99999999999999999999\n", "not a whole number" },
		{ "ldap", "pool_size = 0\n", "out of range" },
		{ "ldap", "pool_size = 33\n", "out of range" },
		{ "ldap", "starttls = maybe\n", "not a boolean" },
		{ "ldap", "lockout_guard = sometimes\n", "neither auto nor a number" },
		{ "ldap", "lockout_guard = -1\n", "neither auto nor a number" },
		{ "ldap", "lockout_guard = 1001\n", "neither auto nor a number" },
		{ "ldap", "lockout_guard = 4294967295\n", "neither auto nor a number" },
		{ "ldap", "lockout_guard_window_s = 0\n", "out of range" },
		{ "ldap", "lockout_guard_window_s = 86401\n", "out of range" },
		{ "ldap", "reveal_account_state = maybe\n", "not a boolean" },
		{ "ldap", "type = novell\n", "use one of ad | openldap" },
		{ "ldap", "groups = all\n", "use one of none | direct | recursive" },
		{ "https", "cert_username = uid\n", "use one of cn | upn | email" },
		{ "https", "client_verify_depth = 0\n", "out of range" },
		{ "https", "client_verify_depth = 9\n", "out of range" },
		{ "https", "client_verify_depth = two\n", "not a whole number" },
		{ "https", "client_verify_depth = -1\n", "not a whole number" },
		{ "https", "max_connections = 15\n", "out of range" },
		{ "https", "max_connections = 1000001\n", "out of range" },
		{ "https", "max_connections = 10k\n", "not a whole number" },
		{ "https", "max_connections = -1\n", "not a whole number" },
		{ "https", "max_failures_per_ip = 1000001\n", "out of range" },
		{ "https", "max_failures_per_ip = many\n", "not a whole number" },
	};
	struct cfg *c = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(load_with(bad[i].section, bad[i].line, &c), -EINVAL);
		assert_errors_contain(bad[i].what);
		assert_int_equal(count_lines(errs), 1);
	}
	/* Both ends of client_verify_depth are accepted and kept. */
	assert_int_equal(load_with("https", "client_verify_depth = 8\n", &c), 0);
	assert_int_equal(c->https.client_verify_depth, 8);
	cfg_free(c);
	assert_int_equal(load_with("https", "client_verify_depth = 1\n", &c), 0);
	assert_int_equal(c->https.client_verify_depth, 1);
	cfg_free(c);
	assert_int_equal(load("[agent]\nlog_level = verbose\n", 0, &c), -EINVAL);
	assert_error_at(2, "use one of error | warn | info | debug");
	assert_int_equal(load("[agent]\nname = has space\n", 0, &c), -EINVAL);
	assert_error_at(2, "not a valid name");
	assert_int_equal(load("[agent]\nuser = no-such-user-dirbridge-test\n", 0, &c), -EINVAL);
	assert_error_at(2, "no such user");
}

static void test_files(void **state)
{
	struct cfg *c = NULL;
	char text[4096];

	(void)state;
	/* A missing file, a world-readable secret and a group-readable key, at once. */
	chmod_file("bind.pw", 0644);
	chmod_file("server.key", 0640);
	snprintf(text, sizeof text, "[agent]\n%s%s%s", good_ldap, good_https, good_hub);
	char *p = strstr(text, "ca_file = ca.pem");
	memcpy(p, "ca_file = no.pem", 16);
	int rc = load(text, CFG_NEED_ALL, &c);
	chmod_file("bind.pw", 0600);
	chmod_file("server.key", 0600);
	assert_int_equal(rc, -EINVAL);
	assert_error_at(4, "cannot read");
	assert_error_at(4, "No such file");
	assert_error_at(6, "accessible by group or others (mode 0644); run chmod 600");
	assert_error_at(12, "accessible by group or others (mode 0640); run chmod 600");
	assert_int_equal(count_lines(errs), 3);
	/* Whatever goes wrong, the password never reaches a message. */
	assert_null(strstr(errs, "Sup3r-Secret-Bind"));

	/* A directory is not a file; an empty secret is refused. */
	assert_int_equal(load_with("hub", "", &c), 0);
	cfg_free(c);
	write_text("empty.token", "\n", 0600);
	snprintf(text, sizeof text, "[agent]\n%s%s[hub]\nurl = wss://h/agent/v1\n"
		 "token_file = empty.token\nca_file = .\n", good_ldap, good_https);
	assert_int_equal(load(text, CFG_NEED_ALL, &c), -EINVAL);
	assert_errors_contain("the first line is empty");
	assert_errors_contain("is not a regular file");
	write_text("space.token", "abc def\n", 0600);
	snprintf(text, sizeof text, "[agent]\n%s%s[hub]\nurl = wss://h/agent/v1\n"
		 "token_file = space.token\nca_file = ca.pem\n", good_ldap, good_https);
	assert_int_equal(load(text, CFG_NEED_ALL, &c), -EINVAL);
	assert_errors_contain("contains a space");
	assert_null(strstr(errs, "abc def"));
}

static void test_ldap_urls(void **state)
{
	static const struct {
		const char *url;
		const char *starttls;
		const char *what;	/* NULL: valid */
	} cases[] = {
		{ "ldaps://dc.example.test", "false", NULL },
		{ "ldaps://127.0.0.1:636 ldaps://[::1]", "false", NULL },
		{ "ldap://dc.example.test", "true", NULL },
		{ "ldap://dc.example.test", "false", "plain link" },
		{ "ldaps://dc.example.test", "true", "conflicts" },
		{ "ldaps://dc1 ldap://dc2", "false", "plain link" },
		{ "ldaps://", "false", "no valid host" },
		{ "http://dc", "false", "not an LDAP URL" },
		{ "dc.example.test", "false", "not an LDAP URL" },
		{ "ldapi://%2fvar%2frun%2fldapi", "false", "not supported" },
		{ "ldaps://dc:70000", "false", "out of range" },
		{ "ldaps://dc/dc=example,dc=test", "false", "carries a DN" },
		{ "ldaps://dc/??sub", "false", "carries a DN" },
		{ "ldaps://user@dc", "false", "no valid host" },
	};
	struct cfg *c = NULL;
	char text[4096];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(text, sizeof text, "[ldap]\nurl = %s\nstarttls = %s\nca_file = ca.pem\n"
			 "bind_dn = cn=a,dc=b\nbind_password_file = bind.pw\nbase_dn = dc=b\n",
			 cases[i].url, cases[i].starttls);
		if (!cases[i].what) {
			assert_int_equal(load(text, CFG_NEED_LDAP, &c), 0);
			cfg_free(c);
			continue;
		}
		assert_int_equal(load(text, CFG_NEED_LDAP, &c), -EINVAL);
		assert_error_at(2, cases[i].what);
	}
	/* [ldap] without url or ca_file names both, at the section's line. */
	assert_int_equal(load("[agent]\n[ldap]\nbind_dn = cn=a,dc=b\nbind_password_file = bind.pw\n"
			      "base_dn = dc=b\n", CFG_NEED_LDAP, &c), -EINVAL);
	assert_error_at(2, "[ldap] url is missing");
	assert_error_at(2, "[ldap] ca_file is missing");
}

static void test_ldap_bind(void **state)
{
	static const struct {
		const char *extra;
		const char *what;	/* NULL: valid */
	} cases[] = {
		{ "", NULL },
		{ "sasl_mech = EXTERNAL\ncert_file = server.pem\nkey_file = server.key\n", NULL },
		{ "sasl_mech = external\ncert_file = server.pem\n", "key_file is missing" },
		{ "sasl_mech = EXTERNAL\ncert_file = server.pem\nkey_file = other.key\n",
		  "does not belong to the certificate" },
		{ "sasl_mech = EXTERNAL\nbind_dn = cn=a,dc=b\ncert_file = server.pem\n"
		  "key_file = server.key\n", "bind_dn: not used with sasl_mech = EXTERNAL" },
		{ "sasl_mech = GSSAPI\nkeytab = krb5.keytab\nsasl_authzid = u:svc\n", NULL },
		{ "sasl_mech = GSSAPI\nbind_password_file = bind.pw\n", "not used with sasl_mech = GSSAPI" },
		{ "keytab = krb5.keytab\nbind_dn = cn=a,dc=b\nbind_password_file = bind.pw\n",
		  "only used with sasl_mech = GSSAPI" },
		{ "sasl_mech = DIGEST-MD5\nbind_dn = svc-dirbridge\nbind_password_file = bind.pw\n", NULL },
		{ "sasl_mech = DIGEST-MD5\nbind_dn = svc\n", "bind_password_file is missing" },
		{ "sasl_mech = PLAIN\n", "unknown mechanism" },
		{ "bind_dn = cn=a,dc=b\n", "bind_password_file is missing" },
		{ "bind_password_file = bind.pw\n", "bind_dn is missing" },
		{ "bind_dn = not a dn\nbind_password_file = bind.pw\n", "not a valid DN" },
		{ "bind_dn = cn=a,dc=b\nbind_password_file = bind.pw\nsasl_authzid = u:x\n",
		  "only used with a SASL mechanism" },
		{ "bind_dn = cn=a,dc=b\nbind_password_file = bind.pw\ncert_file = server.pem\n",
		  "cert_file and key_file go together" },
	};
	struct cfg *c = NULL;
	char text[4096];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(text, sizeof text, "[ldap]\nurl = ldaps://dc\nca_file = ca.pem\n"
			 "base_dn = dc=b\n%s%s", i == 0 ? "bind_dn = cn=a,dc=b\n"
			 "bind_password_file = bind.pw\n" : "", cases[i].extra);
		if (!cases[i].what) {
			assert_int_equal(load(text, CFG_NEED_LDAP, &c), 0);
			cfg_free(c);
			continue;
		}
		assert_int_equal(load(text, CFG_NEED_LDAP, &c), -EINVAL);
		assert_errors_contain(cases[i].what);
	}
	assert_int_equal(load(strcat(strcpy(text, "[ldap]\nurl = ldaps://dc\nca_file = ca.pem\n"
		"base_dn = dc=b\n"), "sasl_mech = EXTERNAL\ncert_file = server.pem\nkey_file = server.key\n"),
		CFG_NEED_LDAP, &c), 0);
	assert_string_equal(c->ldap.sasl_mech, "EXTERNAL");
	assert_null(c->ldap.bind_dn);
	cfg_free(c);
}

static void test_filter_dn_attributes(void **state)
{
	static const struct {
		const char *extra;
		const char *what;	/* NULL: valid */
	} cases[] = {
		{ "user_filter = (uid={username})\n", NULL },
		{ "user_filter = \"(&(objectClass=person)(|(uid={username})(x=a;b)))\"\n", NULL },
		{ "user_filter = (uid=alice)\n", "exactly once" },
		{ "user_filter = (|(uid={username})(mail={username}))\n", "exactly once" },
		{ "user_filter = uid={username}\n", "balanced parentheses" },
		{ "user_filter = (uid={username}\n", "balanced parentheses" },
		{ "user_filter = (a=b))(uid={username}\n", "balanced parentheses" },
		{ "user_filter = (uid={username}))\n", "balanced parentheses" },
		{ "base_dn = dc=example,,dc=test\n", "not a valid DN" },
		{ "attributes = mail telephoneNumber\n", NULL },
		{ "attributes = mail 1bad\n", "not an attribute name" },
		{ "attributes = a_b\n", "not an attribute name" },
		{ "attributes = \"mail;\"\n", "not an attribute name" },
		{ "attributes = 1.2.3\n", NULL },
		{ "attributes = 1.02.3\n", "not an attribute name" },
		{ "attributes = userPassword\n", "password material" },
		{ "attributes = UNICODEPWD\n", "password material" },
	};
	struct cfg *c = NULL;
	char text[4096];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool base = strncmp(cases[i].extra, "base_dn", 7) == 0;

		snprintf(text, sizeof text, "[ldap]\nurl = ldaps://dc\nca_file = ca.pem\n"
			 "bind_dn = cn=a,dc=b\nbind_password_file = bind.pw\n%s%s",
			 base ? "" : "base_dn = dc=b\n", cases[i].extra);
		if (!cases[i].what) {
			assert_int_equal(load(text, CFG_NEED_LDAP, &c), 0);
			cfg_free(c);
			continue;
		}
		assert_int_equal(load(text, CFG_NEED_LDAP, &c), -EINVAL);
		assert_error_at(base ? 6 : 7, cases[i].what);
	}
}

static void test_https(void **state)
{
	static const struct {
		const char *key, *value, *what;	/* what NULL: valid */
	} cases[] = {
		{ "listen", "0.0.0.0:443 [2001:db8::1]:8443", NULL },
		{ "listen", "localhost:8443", "not an address to listen on" },
		{ "listen", "::1:8443", "not an address to listen on" },
		{ "listen", "127.0.0.1", "not an address to listen on" },
		{ "listen", "127.0.0.1:0", "not an address to listen on" },
		{ "listen", "127.0.0.1:65536", "not an address to listen on" },
		{ "listen", "10.0.0.0/8:8443", "not an address to listen on" },
		{ "listen", "[::1/128]:8443", "not an address to listen on" },
		{ "listen", "010.0.0.1:8443", "not an address to listen on" },
		{ "listen", "127.0.0.1:+443", "not an address to listen on" },
		{ "listen", "127.0.0.1:8443 127.0.0.1:8443", "listed twice" },
		{ "public_url", "https://agent.example.test/sso", NULL },
		{ "public_url", "http://agent.example.test", "must start with https://" },
		{ "public_url", "https://u:p@agent.example.test", "user info" },
		{ "public_url", "agent.example.test", "not a URL" },
		{ "cert_file", "unsorted.pem", "out of order" },
		{ "cert_file", "garbage.pem", "no certificate could be parsed" },
		{ "key_file", "other.key", "does not belong to the certificate" },
		{ "client_ca_file", "garbage.pem", "no CA certificate" },
		{ "crl_file", "garbage.pem", "no CRL could be parsed" },
		{ "crl_file", "other.crl", "not signed by a CA" },
		{ "client_cert_ranges", "", NULL },
	};
	struct cfg *c = NULL;
	char text[4096], line[256];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *start, *end;

		snprintf(text, sizeof text, "[agent]\n%s%s%s", good_ldap, good_https, good_hub);
		start = strstr(text, "[https]");
		snprintf(line, sizeof line, "\n%s = ", cases[i].key);
		start = strstr(start, line) + 1;
		end = strchr(start, '\n');
		snprintf(line, sizeof line, "%s = %s", cases[i].key, cases[i].value);
		memmove(start + strlen(line), end, strlen(end) + 1);
		memcpy(start, line, strlen(line));
		if (!cases[i].what) {
			assert_int_equal(load(text, CFG_NEED_ALL, &c), 0);
			cfg_free(c);
			continue;
		}
		assert_int_equal(load(text, CFG_NEED_ALL, &c), -EINVAL);
		assert_errors_contain(cases[i].what);
		assert_int_equal(count_lines(errs), 1);
	}
}

static void test_ranges_in_config(void **state)
{
	struct cfg *c = NULL;

	(void)state;
	assert_int_equal(load_with("https", "", &c), 0);
	cfg_free(c);
	/* Replace the ranges: every bad one is named on the same line. */
	assert_int_equal(load("[https]\nlisten = 127.0.0.1:1\npublic_url = https://a\n"
			      "cert_file = server.pem\nkey_file = server.key\nclient_ca_file = ca.pem\n"
			      "client_cert_ranges = 010.0.0.1 10.1.2.3/8 1.2.3.4/33 ::1/129 1.2.3.4/ "
			      "/08 garbage 0.0.0.0/0 ::/0\n", CFG_NEED_HTTPS, &c), -EINVAL);
	assert_error_at(7, "'010.0.0.1' is not an address range");
	assert_error_at(7, "did you mean 10.0.0.0/8?");
	assert_error_at(7, "1.2.3.4/33: the prefix length is too long");
	assert_error_at(7, "::1/129: the prefix length is too long");
	assert_error_at(7, "'1.2.3.4/' is not an address range");
	assert_error_at(7, "'/08' is not an address range");
	assert_error_at(7, "'garbage' is not an address range");
	assert_error_at(7, "warning: [https] client_cert_ranges: 0.0.0.0/0 matches every IPv4");
	assert_error_at(7, "warning: [https] client_cert_ranges: ::/0 matches every IPv6");
	assert_int_equal(count_lines(errs), 9);

	/* Warnings alone do not fail the load. */
	assert_int_equal(load("[https]\nlisten = 127.0.0.1:1\npublic_url = https://a\n"
			      "cert_file = server.pem\nkey_file = server.key\nclient_ca_file = ca.pem\n"
			      "client_cert_ranges = 0.0.0.0/0\n", CFG_NEED_HTTPS, &c), 0);
	assert_errors_contain("warning:");
	assert_int_equal(c->https.n_ranges, 1);
	cfg_free(c);
}

static void test_hub(void **state)
{
	static const struct {
		const char *url, *what;
	} cases[] = {
		{ "wss://hub/agent/v1", NULL },
		{ "wss://[::1]:9443/a", NULL },
		{ "https://hub/agent/v1", "must start with wss://" },
		{ "wss://hub", "has no path" },
		{ "wss://hub:0/a", "port 0" },
		{ "wss://hub/a?x=1", "query" },
		{ "wss:///a", "not a URL" },
	};
	struct cfg *c = NULL;
	char text[1024];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(text, sizeof text, "[hub]\nurl = %s\ntoken_file = hub.token\nca_file = ca.pem\n",
			 cases[i].url);
		if (!cases[i].what) {
			assert_int_equal(load(text, CFG_NEED_HUB, &c), 0);
			cfg_free(c);
			continue;
		}
		assert_int_equal(load(text, CFG_NEED_HUB, &c), -EINVAL);
		assert_error_at(2, cases[i].what);
	}
	assert_int_equal(load("[hub]\nurl = wss://[::1]:9443/a\ntoken_file = hub.token\nca_file = ca.pem\n",
			      CFG_NEED_HUB, &c), 0);
	assert_string_equal(c->hub.host, "::1");
	assert_int_equal(c->hub.port, 9443);
	cfg_free(c);
	assert_int_equal(load("[hub]\nurl = wss://h/a\n", CFG_NEED_HUB, &c), -EINVAL);
	assert_error_at(1, "[hub] token_file is missing");
	assert_error_at(1, "[hub] ca_file is missing");
}

static void test_many_errors_at_once(void **state)
{
	struct cfg *c = NULL;
	const char *p;
	unsigned n = 0;

	(void)state;
	assert_int_equal(load("[agent]\nlog_level = loud\n"
			      "[ldap]\nurl = ldap://x\nca_file = nope.pem\nbind_dn = cn=a\n"
			      "bind_password_file = bind.pw\nbase_dn = dc=b\ntimeout_ms = 1\n"
			      "[https]\nlisten = x\npublic_url = https://a\ncert_file = server.pem\n"
			      "key_file = server.key\nclient_ca_file = ca.pem\n"
			      "[hub]\nurl = ws://h/a\ntoken_file = hub.token\nca_file = ca.pem\n"
			      "[bogus]\n", CFG_NEED_ALL, &c), -EINVAL);
	assert_error_at(2, "log_level");
	assert_error_at(4, "plain link");
	assert_error_at(5, "nope.pem");
	assert_error_at(9, "timeout_ms");
	assert_error_at(11, "listen");
	assert_error_at(17, "wss://");
	assert_error_at(20, "[bogus]");
	/* Every line is one complete "dirbridge: FILE:LINE: message". */
	for (p = errs; *p; p = strchr(p, '\n') + 1, n++)
		assert_int_equal(strncmp(p, "dirbridge: ", 11), 0);
	assert_int_equal(n, 7);
}

static void test_missing_config(void **state)
{
	struct cfg *c = (struct cfg *)1;
	char *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_true(cfg_load("/nonexistent/agent.ini", 0, &c, f) < 0);
	fclose(f);
	assert_null(c);
	assert_non_null(strstr(text, "dirbridge: /nonexistent/agent.ini: cannot read"));
	free(text);

	/* A FIFO is refused at once, not waited on. */
	char fifo[256];
	snprintf(fifo, sizeof fifo, "%s/fifo.ini", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	f = open_memstream(&text, &len);
	assert_int_equal(cfg_load(fifo, 0, &c, f), -EINVAL);
	fclose(f);
	assert_non_null(strstr(text, "must be a regular file"));
	free(text);
	unlink(fifo);
}

/* ---- ranges ----------------------------------------------------------------- */

static void test_range_parse(void **state)
{
	static const struct {
		const char *text;
		int rc;
		int family;
		unsigned prefix;
	} cases[] = {
		{ "10.0.0.0/8", 0, AF_INET, 8 },
		{ "0.0.0.0/0", 0, AF_INET, 0 },
		{ "192.168.1.7", 0, AF_INET, 32 },
		{ "172.16.0.0/12", 0, AF_INET, 12 },
		{ "2001:db8::/32", 0, AF_INET6, 32 },
		{ "::/0", 0, AF_INET6, 0 },
		{ "::1", 0, AF_INET6, 128 },
		{ "::ffff:10.0.0.0/104", 0, AF_INET6, 104 },
		{ "010.0.0.1", -EINVAL, 0, 0 },
		{ "10.0.0.01", -EINVAL, 0, 0 },
		{ "::ffff:010.0.0.1", -EINVAL, 0, 0 },
		{ "1.2.3.4/33", -ERANGE, 0, 0 },
		{ "::/129", -ERANGE, 0, 0 },
		{ "1.2.3.4/", -EINVAL, 0, 0 },
		{ "/8", -EINVAL, 0, 0 },
		{ "/08", -EINVAL, 0, 0 },
		{ "10.0.0.0/08", -EINVAL, 0, 0 },
		{ "10.0.0.0/+8", -EINVAL, 0, 0 },
		{ "10.0.0.0/-8", -EINVAL, 0, 0 },
		{ "10.0.0.0/8/8", -EINVAL, 0, 0 },
		{ "10.0.0.0/ 8", -EINVAL, 0, 0 },
		{ " 10.0.0.0/8", -EINVAL, 0, 0 },
		{ "10.0.0/8", -EINVAL, 0, 0 },
		{ "10.0.0.256/32", -EINVAL, 0, 0 },
		{ "1.2.3.4.5", -EINVAL, 0, 0 },
		{ "0x0a.0.0.0/8", -EINVAL, 0, 0 },
		{ "fe80::1%eth0", -EINVAL, 0, 0 },
		{ "garbage", -EINVAL, 0, 0 },
		{ "", -EINVAL, 0, 0 },
		{ "10.0.0.0/4294967304", -EINVAL, 0, 0 },
		{ "aaaa:bbbb:cccc:dddd:eeee:ffff:0000:1111:2222/64", -EINVAL, 0, 0 },
	};
	struct cfg_range r;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = cfg_range_parse(cases[i].text, &r);

		if (rc != cases[i].rc)
			fail_msg("cfg_range_parse(\"%s\") = %d, want %d", cases[i].text, rc, cases[i].rc);
		if (rc == 0) {
			assert_int_equal(r.family, cases[i].family);
			assert_int_equal(r.prefix, cases[i].prefix);
		}
	}
	/* Host bits: refused, with the masked range to suggest. */
	assert_int_equal(cfg_range_parse("10.1.2.3/8", &r), -EDOM);
	assert_int_equal(r.addr[0], 10);
	assert_int_equal(r.addr[1] | r.addr[2] | r.addr[3], 0);
	assert_int_equal(r.prefix, 8);
	assert_int_equal(cfg_range_parse("172.31.0.0/12", &r), -EDOM);
	assert_int_equal(r.addr[1], 16);
	assert_int_equal(cfg_range_parse("2001:db8::1/32", &r), -EDOM);
	assert_int_equal(r.addr[15], 0);
}

static struct sockaddr_storage peer(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (strchr(ip, ':')) {
		ss.ss_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
	} else {
		ss.ss_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr), 1);
	}
	return ss;
}

static bool match(const struct cfg_range *r, size_t n, const char *ip)
{
	struct sockaddr_storage ss = peer(ip);

	return cfg_ranges_match(r, n, (struct sockaddr *)&ss);
}

static void test_range_match(void **state)
{
	struct cfg_range r[3], all4, all6;

	(void)state;
	assert_int_equal(cfg_range_parse("10.0.0.0/8", &r[0]), 0);
	assert_int_equal(cfg_range_parse("172.16.0.0/12", &r[1]), 0);
	assert_int_equal(cfg_range_parse("2001:db8::/32", &r[2]), 0);
	assert_true(match(r, 3, "10.0.0.1"));
	assert_true(match(r, 3, "10.255.255.255"));
	assert_false(match(r, 3, "11.0.0.1"));
	assert_false(match(r, 3, "9.255.255.255"));
	assert_true(match(r, 3, "172.31.255.255"));	/* non-byte-aligned prefix */
	assert_false(match(r, 3, "172.32.0.0"));
	assert_false(match(r, 3, "172.15.255.255"));
	assert_true(match(r, 3, "2001:db8::1"));
	assert_true(match(r, 3, "2001:db8:ffff::1"));
	assert_false(match(r, 3, "2001:db9::1"));
	/* IPv4-mapped peers of a dual-stack socket match the IPv4 ranges. */
	assert_true(match(r, 3, "::ffff:10.1.2.3"));
	assert_true(match(r, 3, "::ffff:172.20.0.1"));
	assert_false(match(r, 3, "::ffff:11.1.2.3"));
	/* ...but an IPv6 address that merely ends in those bytes does not. */
	assert_false(match(r, 3, "2001:db9::a01:203"));
	assert_false(match(r, 3, "::10.1.2.3"));
	/* Only the first range: the IPv6 range does not swallow IPv4 peers. */
	assert_false(match(&r[2], 1, "10.0.0.1"));
	assert_false(match(r, 0, "10.0.0.1"));

	assert_int_equal(cfg_range_parse("0.0.0.0/0", &all4), 0);
	assert_int_equal(cfg_range_parse("::/0", &all6), 0);
	assert_true(match(&all4, 1, "1.2.3.4"));
	assert_true(match(&all4, 1, "255.255.255.255"));
	assert_true(match(&all4, 1, "::ffff:1.2.3.4"));
	assert_false(match(&all4, 1, "2001:db8::1"));
	assert_true(match(&all6, 1, "2001:db8::1"));
	assert_false(match(&all6, 1, "1.2.3.4"));

	/* A host range matches exactly one address. */
	assert_int_equal(cfg_range_parse("192.168.1.7", &r[0]), 0);
	assert_true(match(r, 1, "192.168.1.7"));
	assert_false(match(r, 1, "192.168.1.6"));
	assert_false(cfg_ranges_match(r, 1, NULL));
}

/* ---- secrets ------------------------------------------------------------------ */

static int read_secret(const char *name, char **s, size_t *len, char *errbuf, size_t errlen)
{
	char path[256];

	snprintf(path, sizeof path, "%s/%s", dir, name);
	return cfg_secret_read(path, s, len, errbuf, errlen);
}

static void test_secret_read(void **state)
{
	char *s = NULL, errbuf[256];
	size_t len = 99;

	(void)state;
	write_text("s1", "hunter2\nsecond line secret\n", 0600);
	assert_int_equal(read_secret("s1", &s, &len, errbuf, sizeof errbuf), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(s, "hunter2", 8);	/* NUL-terminated */
	/* Nothing after the first line is kept in the locked buffer. */
	for (size_t i = len; i < 4096; i++)
		if (s[i] != 0)
			fail_msg("byte %zu after the secret is not wiped", i);
	cfg_secret_free(s, len);

	write_text("s2", "crlf-pass\r\n", 0400);
	assert_int_equal(read_secret("s2", &s, &len, errbuf, sizeof errbuf), 0);
	assert_int_equal(len, 9);
	assert_string_equal(s, "crlf-pass");
	cfg_secret_free(s, len);

	write_text("s3", "no-newline", 0600);
	assert_int_equal(read_secret("s3", &s, &len, errbuf, sizeof errbuf), 0);
	assert_string_equal(s, "no-newline");
	cfg_secret_free(s, len);
	cfg_secret_free(NULL, 0);
}

static void test_secret_refused(void **state)
{
	static const struct {
		const char *content;
		size_t len;
		mode_t mode;
		int rc;
		const char *what;
	} cases[] = {
		{ "leaky-pw\n", 9, 0644, -EPERM, "chmod 600" },
		{ "leaky-pw\n", 9, 0640, -EPERM, "mode 0640" },
		{ "leaky-pw\n", 9, 0604, -EPERM, "accessible by group or others" },
		{ "leaky-pw\n", 9, 0620, -EPERM, "accessible by group or others" },
		{ "\nleaky-pw\n", 10, 0600, -EINVAL, "empty" },
		{ "", 0, 0600, -EINVAL, "empty" },
		{ "\r\n", 2, 0600, -EINVAL, "empty" },
		{ "leaky\0pw\n", 9, 0600, -EINVAL, "NUL" },
	};
	char *s = (char *)1, errbuf[256];
	size_t len = 1;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_file("bad.secret", cases[i].content, cases[i].len, cases[i].mode);
		assert_int_equal(read_secret("bad.secret", &s, &len, errbuf, sizeof errbuf), cases[i].rc);
		assert_null(s);
		assert_int_equal(len, 0);
		if (!strstr(errbuf, cases[i].what))
			fail_msg("case %zu: '%s' not in '%s'", i, cases[i].what, errbuf);
		assert_null(strstr(errbuf, "leaky"));
	}
	/* One byte more than the limit. */
	char *big = malloc(4098);
	memset(big, 'x', 4097);
	big[4097] = '\n';
	write_file("big.secret", big, 4098, 0600);
	assert_int_equal(read_secret("big.secret", &s, &len, errbuf, sizeof errbuf), -EINVAL);
	assert_non_null(strstr(errbuf, "longer than"));
	big[4096] = '\n';	/* exactly at the limit is fine */
	write_file("big.secret", big, 4097, 0600);
	assert_int_equal(read_secret("big.secret", &s, &len, errbuf, sizeof errbuf), 0);
	assert_int_equal(len, 4096);
	cfg_secret_free(s, len);
	free(big);

	assert_int_equal(read_secret("does-not-exist", &s, &len, errbuf, sizeof errbuf), -ENOENT);
	assert_int_equal(read_secret(".", &s, &len, errbuf, sizeof errbuf), -EINVAL);
}

/*
 * systemd credentials: "credential:NAME" is $CREDENTIALS_DIRECTORY/NAME, for
 * any file key; systemd's 0400 files pass the private-file check; a bare name
 * still means a file next to the config even when a credential shares it.
 */
static void test_credentials(void **state)
{
	static const char tmpl[] =
		"[agent]\nname = t\n"
		"[ldap]\nurl = ldaps://dc1.example.test\nca_file = ca.pem\n"
		"bind_dn = CN=svc,CN=Users,DC=example,DC=test\n"
		"bind_password_file = %s\nbase_dn = DC=example,DC=test\n"
		"[https]\nlisten = 127.0.0.1:8443\npublic_url = https://agent.example.test:8443\n"
		"cert_file = server.pem\nkey_file = %s\nclient_ca_file = ca.pem\n"
		"[hub]\nurl = wss://hub.example.test:9443/agent/v1\ntoken_file = %s\nca_file = ca.pem\n";
	char text[4096], creds[80], want[256], cmd[1024], errbuf[512], *s, *p;
	struct cfg *c = NULL;
	size_t len;

	(void)state;
	snprintf(creds, sizeof creds, "%s/creds", dir);
	snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/server.key' '%s/key' && "
		 "printf 'Cred-Bind-Pw\\n' >'%s/bind.pw' && printf 'credtoken\\n' >'%s/token' && "
		 "chmod 0400 '%s'/*", creds, dir, creds, creds, creds, creds);
	assert_int_equal(system(cmd), 0);
	setenv("CREDENTIALS_DIRECTORY", creds, 1);

	snprintf(text, sizeof text, tmpl, "credential:bind.pw", "credential:key", "credential:token");
	assert_int_equal(load(text, CFG_NEED_ALL, &c), 0);
	snprintf(want, sizeof want, "%s/bind.pw", creds);
	assert_string_equal(c->ldap.bind_password_file, want);
	snprintf(want, sizeof want, "%s/key", creds);
	assert_string_equal(c->https.key_file, want);
	assert_int_equal(cfg_secret_read(c->hub.token_file, &s, &len, errbuf, sizeof errbuf), 0);
	assert_string_equal(s, "credtoken");
	cfg_secret_free(s, len);
	cfg_free(c);
	/* A raw value read directly resolves the same way. */
	assert_int_equal(cfg_secret_read("credential:bind.pw", &s, &len, errbuf, sizeof errbuf), 0);
	assert_string_equal(s, "Cred-Bind-Pw");
	cfg_secret_free(s, len);

	/* A bare name is the file next to the config, not the credential. */
	snprintf(text, sizeof text, tmpl, "bind.pw", "server.key", "hub.token");
	assert_int_equal(load(text, CFG_NEED_ALL, &c), 0);
	snprintf(want, sizeof want, "%s/bind.pw", dir);
	assert_string_equal(c->ldap.bind_password_file, want);
	cfg_free(c);
	assert_int_equal(cfg_credential_path("/etc/dirbridge/hub.token", &p, errbuf, sizeof errbuf), 0);
	assert_null(p);

	/* Names that are not one file name. */
	assert_int_equal(cfg_credential_path("credential:../bind.pw", &p, errbuf, sizeof errbuf), -EINVAL);
	assert_non_null(strstr(errbuf, "LoadCredential=NAME:PATH"));
	assert_int_equal(cfg_credential_path("credential:", &p, errbuf, sizeof errbuf), -EINVAL);
	assert_int_equal(cfg_credential_path("credential:..", &p, errbuf, sizeof errbuf), -EINVAL);
	assert_null(p);

	/* 0440 is how stat shows systemd's 0400 file with a read ACL for the
	 * service's user: accepted directly in the credentials directory. */
	snprintf(cmd, sizeof cmd, "chmod 0500 '%s' && chmod 0440 '%s/token'", creds, creds);
	assert_int_equal(system(cmd), 0);
	snprintf(text, sizeof text, tmpl, "credential:bind.pw", "credential:key", "credential:token");
	assert_int_equal(load(text, CFG_NEED_ALL, &c), 0);
	cfg_free(c);
	assert_int_equal(cfg_secret_read("credential:token", &s, &len, errbuf, sizeof errbuf), 0);
	cfg_secret_free(s, len);
	/* Any other bit, group write, or a directory others may enter: refused. */
	snprintf(want, sizeof want, "%s/token", creds);
	assert_true(cfg_secret_mode_ok(want, S_IFREG | 0440));
	assert_true(cfg_secret_mode_ok(want, S_IFREG | 0400));
	assert_false(cfg_secret_mode_ok(want, S_IFREG | 0444));
	assert_false(cfg_secret_mode_ok(want, S_IFREG | 0460));
	assert_false(cfg_secret_mode_ok(want, S_IFREG | 0450));
	snprintf(cmd, sizeof cmd, "chmod 0444 '%s/token'", creds);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(load(text, CFG_NEED_ALL, &c), -EINVAL);
	assert_error_at(17, "accessible by group or others");
	snprintf(cmd, sizeof cmd, "chmod 0440 '%s/token' && chmod 0755 '%s'", creds, creds);
	assert_int_equal(system(cmd), 0);
	assert_false(cfg_secret_mode_ok(want, S_IFREG | 0440));
	assert_int_equal(load(text, CFG_NEED_ALL, &c), -EINVAL);
	assert_error_at(17, "accessible by group or others");
	snprintf(cmd, sizeof cmd, "chmod 0500 '%s'", creds);
	assert_int_equal(system(cmd), 0);
	/* Only directly inside: not a sibling whose name starts the same, not a
	 * subdirectory, not outside. */
	snprintf(want, sizeof want, "%sX/token", creds);
	assert_false(cfg_secret_mode_ok(want, S_IFREG | 0440));
	snprintf(want, sizeof want, "%s/sub/token", creds);
	assert_false(cfg_secret_mode_ok(want, S_IFREG | 0440));
	snprintf(want, sizeof want, "%s/hub.token", dir);
	assert_false(cfg_secret_mode_ok(want, S_IFREG | 0440));
	snprintf(want, sizeof want, "%s/", creds);
	assert_false(cfg_secret_mode_ok(want, S_IFREG | 0440));
	/* A bare name next to the config gets no credential allowance. */
	chmod_file("hub.token", 0640);
	snprintf(text, sizeof text, tmpl, "bind.pw", "server.key", "hub.token");
	assert_int_equal(load(text, CFG_NEED_ALL, &c), -EINVAL);
	assert_error_at(17, "accessible by group or others");
	chmod_file("hub.token", 0600);
	snprintf(text, sizeof text, tmpl, "credential:bind.pw", "credential:key", "credential:token");

	/* Outside systemd the value says what is missing and how to provide it. */
	unsetenv("CREDENTIALS_DIRECTORY");
	assert_int_equal(load(text, CFG_NEED_ALL, &c), -EINVAL);
	assert_error_at(7, "needs $CREDENTIALS_DIRECTORY");
	assert_errors_contain("LoadCredential=bind.pw:/path/to/file");
	assert_int_equal(cfg_secret_read("credential:token", &s, &len, errbuf, sizeof errbuf), -ENOENT);
	assert_null(s);
}

/* ---- tls checks directly ------------------------------------------------------ */

static void test_tls_checks(void **state)
{
	char a[256], b[256], errbuf[512];

	(void)state;
	snprintf(a, sizeof a, "%s/server.pem", dir);
	snprintf(b, sizeof b, "%s/server.key", dir);
	assert_int_equal(tls_check_keypair(a, b, errbuf, sizeof errbuf), 0);
	snprintf(b, sizeof b, "%s/other.key", dir);
	assert_int_equal(tls_check_keypair(a, b, errbuf, sizeof errbuf), TLS_E_CONFIG);
	assert_non_null(strstr(errbuf, "does not belong"));
	/* A key file given as the certificate. */
	assert_int_equal(tls_check_keypair(b, b, errbuf, sizeof errbuf), TLS_E_CONFIG);
	snprintf(a, sizeof a, "%s/ca.pem", dir);
	assert_int_equal(tls_check_ca_file(a, errbuf, sizeof errbuf), 0);
	assert_int_equal(tls_check_ca_file(b, errbuf, sizeof errbuf), TLS_E_CONFIG);
	snprintf(b, sizeof b, "%s/client.crl", dir);
	assert_int_equal(tls_check_crl_file(b, NULL, errbuf, sizeof errbuf), 0);
	assert_int_equal(tls_check_crl_file(b, a, errbuf, sizeof errbuf), 0);
	snprintf(b, sizeof b, "%s/other.crl", dir);
	assert_int_equal(tls_check_crl_file(b, a, errbuf, sizeof errbuf), TLS_E_CONFIG);
	assert_int_equal(tls_check_crl_file(a, NULL, errbuf, sizeof errbuf), TLS_E_CONFIG);
	snprintf(b, sizeof b, "%s/missing.pem", dir);
	assert_int_equal(tls_check_ca_file(b, errbuf, sizeof errbuf), TLS_E_CONFIG);
	assert_non_null(strstr(errbuf, "missing.pem"));
}

/* The listen/--listen/--api parser: numeric hosts only, IPv6 in brackets, the
 * port required unless a default is given, and memcmp-comparable results. */
static void test_hostport(void **state)
{
	static const char *const bad[] = {
		"", ":443", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:08443", "127.0.0.1:+80", "010.0.0.1:80", "10.0.0.0/8:80",
		"host.example:80", "::1:443", "[::1]", "[::1]443", "[::1:443", "[]:443",
		"[127.0.0.1]:443", "127.0.0.1:443 ", "[fe80::1%lo]:443", NULL,
	};
	struct sockaddr_storage a, b;
	const struct sockaddr_in *in = (const struct sockaddr_in *)&a;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a;
	char text[INET6_ADDRSTRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&a, 0xa5, sizeof a);
		if (cfg_hostport_parse(bad[i], 0, &a) != -EINVAL)
			fail_msg("accepted '%s'", bad[i] ? bad[i] : "(null)");
		memset(&b, 0, sizeof b);
		assert_memory_equal(&a, &b, sizeof a);
	}
	assert_int_equal(cfg_hostport_parse("127.0.0.1:8443", 0, &a), 0);
	assert_int_equal(a.ss_family, AF_INET);
	assert_int_equal(ntohs(in->sin_port), 8443);
	assert_string_equal(inet_ntop(AF_INET, &in->sin_addr, text, sizeof text), "127.0.0.1");
	assert_int_equal(cfg_hostport_parse("[::1]:65535", 0, &a), 0);
	assert_int_equal(a.ss_family, AF_INET6);
	assert_int_equal(ntohs(in6->sin6_port), 65535);
	assert_string_equal(inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text), "::1");
	/* A default port makes ":PORT" optional, never wrong ports right. */
	assert_int_equal(cfg_hostport_parse("10.1.2.3", 443, &a), 0);
	assert_int_equal(ntohs(in->sin_port), 443);
	assert_int_equal(cfg_hostport_parse("[2001:db8::1]", 443, &a), 0);
	assert_int_equal(ntohs(in6->sin6_port), 443);
	assert_int_equal(cfg_hostport_parse("10.1.2.3:80", 443, &a), 0);
	assert_int_equal(ntohs(in->sin_port), 80);
	assert_int_equal(cfg_hostport_parse("10.1.2.3:0", 443, &a), -EINVAL);
	assert_int_equal(cfg_hostport_parse("::1", 443, &a), -EINVAL);
	/* Equal addresses give equal bytes, whatever OUT held before. */
	memset(&a, 0x11, sizeof a);
	memset(&b, 0x22, sizeof b);
	assert_int_equal(cfg_hostport_parse("0.0.0.0:1", 0, &a), 0);
	assert_int_equal(cfg_hostport_parse("0.0.0.0:1", 0, &b), 0);
	assert_memory_equal(&a, &b, sizeof a);
}

/* [https] metrics_ranges: this host by default, parsed as strictly as
 * client_cert_ranges; [agent] log_format. */
static void test_metrics_ranges_and_log_format(void **state)
{
	struct cfg *c = NULL;

	(void)state;
	assert_int_equal(load_with("", "", &c), 0);
	assert_int_equal(c->https.n_metrics_ranges, 2);
	assert_true(match(c->https.metrics_ranges, c->https.n_metrics_ranges, "127.0.0.1"));
	assert_true(match(c->https.metrics_ranges, c->https.n_metrics_ranges, "::1"));
	assert_true(match(c->https.metrics_ranges, c->https.n_metrics_ranges, "::ffff:127.0.0.1"));
	assert_false(match(c->https.metrics_ranges, c->https.n_metrics_ranges, "127.0.0.2"));
	assert_false(match(c->https.metrics_ranges, c->https.n_metrics_ranges, "10.0.0.1"));
	assert_int_equal(c->agent.log_format, LOG_FORMAT_TEXT);
	cfg_free(c);

	assert_int_equal(load_with("https", "metrics_ranges = 10.0.0.0/8 2001:db8::/32\n", &c), 0);
	assert_int_equal(c->https.n_metrics_ranges, 2);
	assert_true(match(c->https.metrics_ranges, 2, "10.9.8.7"));
	assert_false(match(c->https.metrics_ranges, 2, "127.0.0.1"));
	/* The client-certificate ranges are their own. */
	assert_int_equal(c->https.n_ranges, 3);
	cfg_free(c);

	/* Empty is absent, as for every key: this host only. */
	assert_int_equal(load_with("https", "metrics_ranges =\n", &c), 0);
	assert_int_equal(c->https.n_metrics_ranges, 2);
	assert_true(match(c->https.metrics_ranges, 2, "::1"));
	cfg_free(c);

	assert_int_equal(load_with("https", "metrics_ranges = 127.0.0.1/8 010.0.0.1 ::/0\n", &c),
			 -EINVAL);
	assert_error_at(17, "[https] metrics_ranges: 127.0.0.1/8 has host bits set beyond /8; "
			"did you mean 127.0.0.0/8?");
	assert_error_at(17, "[https] metrics_ranges: '010.0.0.1' is not an address range");
	assert_error_at(17, "warning: [https] metrics_ranges: ::/0 matches every IPv6 client, "
			"so every such client may read /metrics");
	assert_int_equal(count_lines(errs), 3);

	assert_int_equal(load("[agent]\nlog_format = json\n", 0, &c), 0);
	assert_int_equal(c->agent.log_format, LOG_FORMAT_JSON);
	cfg_free(c);
	assert_int_equal(load("[agent]\nlog_format = TEXT\n", 0, &c), 0);
	assert_int_equal(c->agent.log_format, LOG_FORMAT_TEXT);
	cfg_free(c);
	assert_int_equal(load("[agent]\nlog_format = yaml\n", 0, &c), -EINVAL);
	assert_error_at(2, "use one of text | json");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_full),
		cmocka_unit_test(test_values_and_defaults),
		cmocka_unit_test(test_need_sections),
		cmocka_unit_test(test_unknown_names),
		cmocka_unit_test(test_syntax_error_line),
		cmocka_unit_test(test_duplicate_key),
		cmocka_unit_test(test_types_and_ranges),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_ldap_urls),
		cmocka_unit_test(test_ldap_bind),
		cmocka_unit_test(test_filter_dn_attributes),
		cmocka_unit_test(test_https),
		cmocka_unit_test(test_ranges_in_config),
		cmocka_unit_test(test_hub),
		cmocka_unit_test(test_many_errors_at_once),
		cmocka_unit_test(test_missing_config),
		cmocka_unit_test(test_range_parse),
		cmocka_unit_test(test_range_match),
		cmocka_unit_test(test_metrics_ranges_and_log_format),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_secret_read),
		cmocka_unit_test(test_secret_refused),
		cmocka_unit_test(test_credentials),
		cmocka_unit_test(test_tls_checks),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
