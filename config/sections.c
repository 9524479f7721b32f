/*
 * The sections [agent], [ldap], [https] and [hub]: which keys each takes, their
 * defaults, and the checks that involve more than one key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <http_parser.h>
#include <ldap.h>

#include "config/internal.h"
#include "tls/tls.h"

void cfg_load_agent(struct loader *L)
{
	static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
	static const char *const formats[] = { "text", "json", NULL };
	struct cfg *c = L->cfg;
	const char *v = cfg_raw(L, "agent", "name");
	char host[256];

	if (!v) {
		/* The hub lists agents by name; the host name is what an operator
		 * would look for first. */
		if (gethostname(host, sizeof host) < 0 || !*host)
			snprintf(host, sizeof host, "dirbridge");
		host[sizeof host - 1] = '\0';
		v = host;
	}
	if (strlen(v) > 64 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				     "0123456789._-") != strlen(v))
		key_err(L, "agent", "name", "'%.64s' is not a valid name; use up to 64 letters, "
			"digits, dots, dashes or underscores", v);
	c->agent.name = cfg_keep(L, v);
	c->agent.log_level = (enum log_level)cfg_get_enum(L, "agent", "log_level", levels,
							   LOGL_INFO);
	c->agent.log_format = (enum log_format)cfg_get_enum(L, "agent", "log_format", formats,
							     LOG_FORMAT_TEXT);
	if ((v = cfg_raw(L, "agent", "user"))) {
		if (!getpwnam(v))
			key_err(L, "agent", "user", "no such user '%.64s'; create it or remove the "
				"key", v);
		c->agent.user = cfg_keep(L, v);
	}
}

static void load_ldap_urls(struct loader *L, const char *v)
{
	struct cfg *c = L->cfg;

	c->ldap.urls = cfg_split(L, "ldap", "url", v, &c->ldap.n_urls);
	for (size_t i = 0; i < c->ldap.n_urls; i++) {
		const char *u = c->ldap.urls[i], *rest;
		LDAPURLDesc *lud = NULL;

		if (ldap_url_parse(u, &lud) != LDAP_URL_SUCCESS) {
			key_err(L, "ldap", "url", "'%.128s' is not an LDAP URL; use "
				"ldaps://HOST[:PORT] or ldap://HOST[:PORT] with starttls = true", u);
			continue;
		}
		/* libldap parses the URL; the text after the host is also checked
		 * by hand because ldap_url_parse() reports an absent scope and an
		 * explicit "??base" alike, and either is a mistake here. */
		rest = strstr(u, "://");
		rest = rest ? rest + 3 : u;
		if (strcasecmp(lud->lud_scheme, "ldap") != 0 && strcasecmp(lud->lud_scheme, "ldaps") != 0)
			key_err(L, "ldap", "url", "'%.128s': scheme %s is not supported; use ldaps:// "
				"or ldap:// with starttls = true", u, lud->lud_scheme);
		else if (!lud->lud_host || !cfg_valid_host(lud->lud_host, strlen(lud->lud_host)))
			key_err(L, "ldap", "url", "'%.128s' names no valid host; use ldaps://HOST[:PORT]", u);
		else if (lud->lud_port < 0 || lud->lud_port > 65535)
			key_err(L, "ldap", "url", "'%.128s': port %d is out of range 1..65535", u,
				lud->lud_port);
		else if (rest[strcspn(rest, "/?")] && strcmp(rest + strcspn(rest, "/?"), "/") != 0)
			key_err(L, "ldap", "url", "'%.128s' carries a DN, attributes or a filter; give "
				"only ldaps://HOST[:PORT] (the base is base_dn)", u);
		else if (strcasecmp(lud->lud_scheme, "ldap") == 0 && !c->ldap.starttls)
			key_err(L, "ldap", "url", "'%.128s' is a plain link and passwords are never sent "
				"over one; use ldaps:// or set starttls = true", u);
		else if (strcasecmp(lud->lud_scheme, "ldaps") == 0 && c->ldap.starttls)
			key_err(L, "ldap", "url", "'%.128s' is already TLS, so starttls = true conflicts "
				"with it; use ldap:// with StartTLS or set starttls = false", u);
		ldap_free_urldesc(lud);
	}
}

/* Secret attributes are never copied into a profile, whatever the config says. */
static bool secret_attr(const char *a)
{
	static const char *const secret[] = {
		"userPassword", "unicodePwd", "dBCSPwd", "ntPwdHistory", "lmPwdHistory",
		"supplementalCredentials", "msDS-ManagedPassword", "ms-Mcs-AdmPwd",
		"msLAPS-Password", "msLAPS-EncryptedPassword", "sambaNTPassword",
		"sambaLMPassword", "authPassword", NULL
	};
	size_t n = strcspn(a, ";");

	for (size_t i = 0; secret[i]; i++)
		if (strlen(secret[i]) == n && strncasecmp(a, secret[i], n) == 0)
			return true;
	return false;
}

static void load_ldap_bind(struct loader *L)
{
	static const char *const mechs[] = { "EXTERNAL", "GSSAPI", "DIGEST-MD5", NULL };
	struct cfg *c = L->cfg;
	const char *mech = cfg_raw(L, "ldap", "sasl_mech");
	bool ok, cert_ok = false, key_ok = false;
	int m = -1;

	if (mech) {
		for (m = 0; mechs[m] && strcasecmp(mech, mechs[m]) != 0; m++)
			;
		if (!mechs[m]) {
			key_err(L, "ldap", "sasl_mech", "unknown mechanism '%.64s'; use EXTERNAL, "
				"GSSAPI, DIGEST-MD5, or leave it empty for a simple bind", mech);
			return;
		}
		c->ldap.sasl_mech = cfg_keep(L, mechs[m]);
	}
	c->ldap.cert_file = cfg_get_file(L, "ldap", "cert_file", m == 0, false, &cert_ok);
	c->ldap.key_file = cfg_get_file(L, "ldap", "key_file", m == 0, true, &key_ok);
	if (!c->ldap.cert_file != !c->ldap.key_file && m != 0)
		key_err(L, "ldap", c->ldap.cert_file ? "key_file" : "cert_file",
			"cert_file and key_file go together; set both or neither");
	if (cert_ok && key_ok)
		cfg_check_keypair(L, "ldap", c->ldap.cert_file, c->ldap.key_file);

	c->ldap.keytab = cfg_get_file(L, "ldap", "keytab", false, true, &ok);
	if (c->ldap.keytab && m != 1)
		key_err(L, "ldap", "keytab", "a keytab is only used with sasl_mech = GSSAPI; "
			"remove it or set the mechanism");
	if ((c->ldap.sasl_authzid = cfg_keep(L, cfg_raw(L, "ldap", "sasl_authzid"))) && m < 0)
		key_err(L, "ldap", "sasl_authzid", "only used with a SASL mechanism; remove it "
			"or set sasl_mech");

	switch (m) {
	case -1:	/* simple bind */
	case 2:		/* DIGEST-MD5: bind_dn is the SASL authentication id */
		if ((c->ldap.bind_dn = cfg_keep(L, cfg_need(L, "ldap", "bind_dn", m < 0 ?
				"CN=svc-dirbridge,CN=Users,DC=example,DC=test" : "svc-dirbridge")))
		    && m < 0 && !cfg_valid_dn(c->ldap.bind_dn))
			key_err(L, "ldap", "bind_dn", "'%.128s' is not a valid DN; write it as "
				"CN=svc,CN=Users,DC=example,DC=test", c->ldap.bind_dn);
		c->ldap.bind_password_file = cfg_get_file(L, "ldap", "bind_password_file", true, true, &ok);
		if (ok)
			cfg_check_secret(L, "ldap", "bind_password_file", c->ldap.bind_password_file, false);
		break;
	default:	/* EXTERNAL and GSSAPI take the identity from the certificate or ticket */
		if (cfg_raw(L, "ldap", "bind_dn"))
			key_err(L, "ldap", "bind_dn", "not used with sasl_mech = %s (the identity "
				"comes from the %s); remove it or use sasl_authzid", mechs[m],
				m == 0 ? "client certificate" : "Kerberos ticket");
		if (cfg_raw(L, "ldap", "bind_password_file"))
			key_err(L, "ldap", "bind_password_file", "not used with sasl_mech = %s; "
				"remove it", mechs[m]);
		break;
	}
}

void cfg_load_ldap(struct loader *L)
{
	static const char *const types[] = { "ad", "openldap", NULL };
	static const char *const groups[] = { "none", "direct", "recursive", NULL };
	static const char *const filters[] = {
		"(&(objectClass=user)(sAMAccountName={username}))",
		"(&(objectClass=inetOrgPerson)(uid={username}))",
	};
	struct cfg *c = L->cfg;
	const char *v;
	bool ok;

	c->ldap.present = true;
	c->ldap.starttls = cfg_get_bool(L, "ldap", "starttls", false);
	if ((v = cfg_need(L, "ldap", "url", "ldaps://dc1.example.test")))
		load_ldap_urls(L, v);
	c->ldap.ca_file = cfg_get_file(L, "ldap", "ca_file", true, false, &ok);
	if (ok)
		cfg_check_ca(L, "ldap", "ca_file", c->ldap.ca_file);
	load_ldap_bind(L);

	if ((c->ldap.base_dn = cfg_keep(L, cfg_need(L, "ldap", "base_dn", "DC=example,DC=test")))
	    && !cfg_valid_dn(c->ldap.base_dn))
		key_err(L, "ldap", "base_dn", "'%.128s' is not a valid DN; write it as "
			"DC=example,DC=test", c->ldap.base_dn);
	c->ldap.type = (enum cfg_dir_type)cfg_get_enum(L, "ldap", "type", types, CFG_DIR_AD);

	v = cfg_raw(L, "ldap", "user_filter");
	c->ldap.user_filter = cfg_keep(L, v ? v : filters[c->ldap.type]);
	if (v) {
		const char *hit = strstr(v, "{username}");
		size_t len = strlen(v);
		int depth = 0;
		bool balanced = true;

		for (size_t i = 0; i < len && balanced; i++) {
			depth += v[i] == '(' ? 1 : v[i] == ')' ? -1 : 0;
			balanced = depth > 0 || (depth == 0 && i == len - 1);
		}
		if (v[0] != '(' || v[len - 1] != ')' || !balanced || depth != 0)
			key_err(L, "ldap", "user_filter", "'%.128s' is not a parenthesised filter "
				"with balanced parentheses; write it like %s (quote it if it "
				"contains ; or #)", v, filters[c->ldap.type]);
		if (!hit || strstr(hit + 1, "{username}"))
			key_err(L, "ldap", "user_filter", "must contain {username} exactly once, "
				"where the escaped user name goes");
	}
	c->ldap.groups = (enum cfg_groups)cfg_get_enum(L, "ldap", "groups", groups, CFG_GROUPS_DIRECT);
	c->ldap.timeout_ms = cfg_get_uint(L, "ldap", "timeout_ms", 100, 600000, 5000);
	c->ldap.pool_size = cfg_get_uint(L, "ldap", "pool_size", 1, 32, 2);
	/* auto (CFG_LOCKOUT_AUTO) is resolved against the directory at start. */
	c->ldap.lockout_guard = CFG_LOCKOUT_AUTO;
	if ((v = cfg_raw(L, "ldap", "lockout_guard")) && strcasecmp(v, "auto") != 0) {
		unsigned long n;

		if (!cfg_parse_uint(v, 9, &n) || n > 1000)
			key_err(L, "ldap", "lockout_guard", "'%.64s' is neither auto nor a number "
				"from 0 (off) to 1000", v);
		else
			c->ldap.lockout_guard = (unsigned)n;
	}
	c->ldap.lockout_guard_window_s = cfg_get_uint(L, "ldap", "lockout_guard_window_s", 1, 86400, 900);
	c->ldap.reveal_account_state = cfg_get_bool(L, "ldap", "reveal_account_state", true);

	c->ldap.attributes = cfg_split(L, "ldap", "attributes", cfg_raw(L, "ldap", "attributes"),
				       &c->ldap.n_attributes);
	for (size_t i = 0; i < c->ldap.n_attributes; i++) {
		const char *a = c->ldap.attributes[i];

		if (!cfg_valid_attr(a))
			key_err(L, "ldap", "attributes", "'%.64s' is not an attribute name; use names "
				"like telephoneNumber, separated by spaces", a);
		else if (secret_attr(a))
			key_err(L, "ldap", "attributes", "%.64s holds password material and is never "
				"returned; remove it", a);
	}
}

/* [https] KEY: a list of CIDR ranges in TEXT, strict as cfg_range_parse(); a
 * range of every address is allowed with a warning saying what it means
 * (WIDE, "every such client ..."). */
static void load_ranges(struct loader *L, const char *key, const char *text, const char *wide,
			struct cfg_range **out, size_t *n_out)
{
	size_t n;
	char **ranges = cfg_split(L, "https", key, text, &n);

	*n_out = 0;
	if (n && !(*out = calloc(n, sizeof **out)))
		L->oom = true;
	for (size_t i = 0; *out && i < n; i++) {
		struct cfg_range *r = &(*out)[*n_out];
		char addr[INET6_ADDRSTRLEN];
		int rc = cfg_range_parse(ranges[i], r);

		if (rc == -EDOM) {
			inet_ntop(r->family, r->addr, addr, sizeof addr);
			key_err(L, "https", key, "%.64s has host bits set beyond "
				"/%u; did you mean %s/%u?", ranges[i], r->prefix, addr, r->prefix);
		} else if (rc == -ERANGE) {
			key_err(L, "https", key, "%.64s: the prefix length is too "
				"long; IPv4 allows /0../32, IPv6 /0../128", ranges[i]);
		} else if (rc < 0) {
			key_err(L, "https", key, "'%.64s' is not an address range; "
				"write it like 10.0.0.0/8 or 2001:db8::/32", ranges[i]);
		} else {
			if (r->prefix == 0)
				key_warn(L, "https", key, "%.64s matches every %s client, so %s",
					 ranges[i], r->family == AF_INET ? "IPv4" : "IPv6", wide);
			(*n_out)++;
		}
	}
	cfg_free_list(ranges, n);
}

void cfg_load_https(struct loader *L)
{
	static const char *const names[] = { "cn", "upn", "email", NULL };
	struct cfg *c = L->cfg;
	struct http_parser_url u;
	const char *v;
	bool cert_ok, key_ok, ca_ok, ok;

	c->https.present = true;
	c->https.listen = cfg_split(L, "https", "listen", cfg_need(L, "https", "listen", "0.0.0.0:8443"),
				    &c->https.n_listen);
	if (c->https.n_listen &&
	    !(c->https.listen_addrs = calloc(c->https.n_listen, sizeof *c->https.listen_addrs)))
		L->oom = true;
	for (size_t i = 0; c->https.listen_addrs && i < c->https.n_listen; i++) {
		if (cfg_hostport_parse(c->https.listen[i], 0, &c->https.listen_addrs[i]) < 0) {
			key_err(L, "https", "listen", "'%.64s' is not an address to listen on; use "
				"IP:PORT or [IPv6]:PORT, e.g. 0.0.0.0:8443 or [::]:8443",
				c->https.listen[i]);
			continue;
		}
		for (size_t j = 0; j < i; j++)
			if (!memcmp(&c->https.listen_addrs[i], &c->https.listen_addrs[j],
				    sizeof c->https.listen_addrs[i]))
				key_err(L, "https", "listen", "%.64s is listed twice; remove one",
					c->https.listen[i]);
	}

	if ((v = cfg_need(L, "https", "public_url", "https://agent.example.test:8443")) &&
	    cfg_check_url(L, "https", "public_url", v, "https", false, &u))
		c->https.public_url = cfg_keep(L, v);

	c->https.cert_file = cfg_get_file(L, "https", "cert_file", true, false, &cert_ok);
	c->https.key_file = cfg_get_file(L, "https", "key_file", true, true, &key_ok);
	if (cert_ok && key_ok)
		cfg_check_keypair(L, "https", c->https.cert_file, c->https.key_file);
	c->https.client_ca_file = cfg_get_file(L, "https", "client_ca_file", true, false, &ca_ok);
	ca_ok = ca_ok && cfg_check_ca(L, "https", "client_ca_file", c->https.client_ca_file);
	c->https.crl_file = cfg_get_file(L, "https", "crl_file", false, false, &ok);
	if (ok) {
		char errbuf[512];

		if (tls_check_crl_file(c->https.crl_file, ca_ok ? c->https.client_ca_file : NULL,
				       errbuf, sizeof errbuf) < 0)
			key_err(L, "https", "crl_file", "%s", errbuf);
	}

	load_ranges(L, "client_cert_ranges", cfg_raw(L, "https", "client_cert_ranges"),
		    "every such client is asked for a certificate", &c->https.ranges,
		    &c->https.n_ranges);
	/* /metrics tells how many logins fail and which directory server is in
	 * use: by default only this host may read it. */
	v = cfg_raw(L, "https", "metrics_ranges");
	load_ranges(L, "metrics_ranges", v ? v : "127.0.0.1/32 ::1/128",
		    "every such client may read /metrics", &c->https.metrics_ranges,
		    &c->https.n_metrics_ranges);
	c->https.cert_username = (enum cfg_cert_username)cfg_get_enum(L, "https", "cert_username",
								   names, CFG_CERTNAME_CN);
	/* As nginx's ssl_verify_depth: 1 means the leaf must be signed by a
	 * configured CA itself, so a chain the client sends is never used. */
	c->https.client_verify_depth = cfg_get_uint(L, "https", "client_verify_depth", 1, 8, 1);
	c->https.max_connections = cfg_get_uint(L, "https", "max_connections", 16, 1000000, 10000);
	c->https.max_failures_per_ip = cfg_get_uint(L, "https", "max_failures_per_ip", 0, 1000000, 20);
}

void cfg_load_hub(struct loader *L)
{
	struct cfg *c = L->cfg;
	struct http_parser_url u;
	const char *v;
	bool ok;

	c->hub.present = true;
	if ((v = cfg_need(L, "hub", "url", "wss://hub.example.test/agent/v1")) &&
	    cfg_check_url(L, "hub", "url", v, "wss", true, &u)) {
		c->hub.url = cfg_keep(L, v);
		c->hub.host = strndup(v + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len);
		c->hub.path = strndup(v + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
		c->hub.port = (u.field_set & (1 << UF_PORT)) ? u.port : 443;
		if (!c->hub.host || !c->hub.path)
			L->oom = true;
	}
	c->hub.token_file = cfg_get_file(L, "hub", "token_file", true, true, &ok);
	if (ok)
		cfg_check_secret(L, "hub", "token_file", c->hub.token_file, true);
	c->hub.ca_file = cfg_get_file(L, "hub", "ca_file", true, false, &ok);
	if (ok)
		cfg_check_ca(L, "hub", "ca_file", c->hub.ca_file);
}
