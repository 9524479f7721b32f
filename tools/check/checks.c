/*
 * The troubleshooter's checks, in the order docs/check.md lists them.  Each
 * adds one item per thing it tests; a check that needs an earlier one (a
 * server that did not answer, a config that did not load) adds a skip naming
 * what it waited for, so the first FAIL is the one to fix first.
 */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tools/check/check.h"

#define MAX_ADDRS 8
#define EXPIRY_WARN_DAYS 14
#define SKEW_MAX_S 300		/* AD's Kerberos refuses a larger skew */

/* What the checks of one server found, for the checks after them. */
struct server {
	const char *url;
	char host[256];
	unsigned port;
	bool ldaps;
	bool parsed, resolved, reachable, secure;
	struct sockaddr_storage addrs[MAX_ADDRS];
	size_t n_addrs;
};

struct run {
	struct chk_report *r;
	const struct cfg *cfg;
	struct server *srv;
	size_t n_srv;
	struct dir_probe *probe;	/* on the first server whose TLS check passed */
	const char *probe_url;
	bool bound;
	char *user_dn;
};

static char *named(char *buf, size_t len, const char *check, const char *what)
{
	snprintf(buf, len, "%s[%s]", check, what);
	return buf;
}

/* ---- config and files ------------------------------------------------------- */

static void check_config(struct run *k, const char *path, struct cfg **out)
{
	char *text = NULL;
	size_t len = 0;
	FILE *err = open_memstream(&text, &len);
	int rc;

	if (!err) {
		chk_add(k->r, "config", CHK_FAIL, "free some memory", "out of memory");
		k->r->config_unusable = true;
		return;
	}
	/* As `dirbridge -n` loads it: the agent needs every section. */
	rc = cfg_load(path, CFG_NEED_ALL, out, err);
	k->cfg = *out;
	fclose(err);
	if (rc < 0) {
		/* Every problem on one line: the config's own messages name the
		 * line and the key to change. */
		char *joined = NULL;
		size_t jl = 0;
		FILE *j = open_memstream(&joined, &jl);

		for (char *line = text ? strtok(text, "\n") : NULL; j && line;
		     line = strtok(NULL, "\n"))
			fprintf(j, "%s%s", ftell(j) > 0 ? " | " : "", line);
		if (j)
			fclose(j);
		chk_add(k->r, "config", CHK_FAIL, "do what each message says in the config file "
			"(docs/config.md describes every key), then run dirbridge -n",
			"%s", joined && *joined ? joined : path);
		free(joined);
		k->r->config_unusable = true;
	} else {
		chk_add(k->r, "config", CHK_OK, NULL, "%s loads as dirbridge -n loads it: "
			"%zu directory server(s), [https], [hub]", path, k->cfg->ldap.n_urls);
	}
	free(text);
}

/* A file the agent reads: readable, and, for a secret, private. */
static bool file_ok(struct run *k, const char *key, const char *file, bool secret)
{
	char name[128], errbuf[256], *s = NULL;
	struct stat st;
	size_t len = 0;

	if (!file)
		return true;
	named(name, sizeof name, "files", key);
	if (access(file, R_OK) != 0 || stat(file, &st) != 0) {
		chk_add(k->r, name, CHK_FAIL, "make the file readable by the agent's user, or "
			"correct the path in the config", "%s: %s", file, strerror(errno));
		return false;
	}
	if (secret && (st.st_mode & 077)) {
		chk_add(k->r, name, CHK_FAIL, "chmod 600 the file (owner only)",
			"%s is mode %03o: open to group or others", file, (unsigned)(st.st_mode & 0777));
		return false;
	}
	/* Keys are private; secret files must also hold a usable first line. */
	if (secret && !strstr(key, "key_file") &&
	    cfg_secret_read(file, &s, &len, errbuf, sizeof errbuf) < 0) {
		chk_add(k->r, name, CHK_FAIL, "write the secret on the file's first line",
			"%s", errbuf);
		return false;
	}
	cfg_secret_free(s, len);
	return true;
}

static void check_files(struct run *k)
{
	const struct cfg *c = k->cfg;
	struct { const char *key, *file; bool secret; } f[] = {
		{ "ldap.ca_file", c->ldap.ca_file, false },
		{ "ldap.bind_password_file", c->ldap.bind_password_file, true },
		{ "ldap.cert_file", c->ldap.cert_file, false },
		{ "ldap.key_file", c->ldap.key_file, true },
		{ "https.cert_file", c->https.cert_file, false },
		{ "https.key_file", c->https.key_file, true },
		{ "https.client_ca_file", c->https.client_ca_file, false },
		{ "https.crl_file", c->https.crl_file, false },
		{ "hub.token_file", c->hub.token_file, true },
		{ "hub.ca_file", c->hub.ca_file, false },
	};
	size_t n = 0, bad = 0;

	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		if (!f[i].file)
			continue;
		n++;
		if (!file_ok(k, f[i].key, f[i].file, f[i].secret))
			bad++;
	}
	if (!bad)
		chk_add(k->r, "files", CHK_OK, NULL, "%zu file(s) readable; keys and secrets "
			"owner-only", n);
}

/* ---- the directory servers --------------------------------------------------- */

static void check_dns(struct run *k)
{
	char name[300];

	for (size_t i = 0; i < k->n_srv; i++) {
		struct server *s = &k->srv[i];
		int rc;

		named(name, sizeof name, "dns", s->url);
		if (dir_url_parts(s->url, s->host, sizeof s->host, &s->port, &s->ldaps) < 0) {
			chk_add(k->r, name, CHK_FAIL, "give a URL ldaps://HOST[:PORT] in [ldap] url",
				"%s has no host", s->url);
			continue;
		}
		s->parsed = true;
		rc = chk_resolve(s->host, s->port, s->addrs, MAX_ADDRS, &s->n_addrs);
		if (rc < 0 || s->n_addrs == 0) {
			chk_add(k->r, name, CHK_FAIL, "correct the host in [ldap] url, or its DNS "
				"record (/etc/resolv.conf, the DNS server)", "%s: %s", s->host,
				rc < 0 ? gai_strerror(rc) : "no address");
			continue;
		}
		s->resolved = true;
		chk_add(k->r, name, CHK_OK, NULL, "%s: %zu address(es)", s->host, s->n_addrs);
	}
}

static void check_tcp(struct run *k)
{
	char name[300], addr[NET_ADDR_MAX];

	for (size_t i = 0; i < k->n_srv; i++) {
		struct server *s = &k->srv[i];
		size_t used = 0;
		int fd;

		named(name, sizeof name, "tcp", s->url);
		if (!s->resolved) {
			chk_add(k->r, name, CHK_SKIP, NULL, "the host did not resolve");
			continue;
		}
		fd = chk_connect(s->addrs, s->n_addrs, k->cfg->ldap.timeout_ms, &used);
		if (fd < 0) {
			chk_add(k->r, name, CHK_FAIL, "start the directory server, open the firewall "
				"to it, or remove the URL from [ldap] url", "%s port %u: %s", s->host,
				s->port, strerror(-fd));
			continue;
		}
		close(fd);
		s->reachable = true;
		net_addr_text((const struct sockaddr *)&s->addrs[used], addr, sizeof addr, true);
		chk_add(k->r, name, CHK_OK, NULL, "connected to %s", addr);
	}
}

#define FIX_MAX 320

/* The fix for a failed verification, from GnuTLS's reason, into FIX. */
static const char *tls_fix_in(char fix[FIX_MAX], const char *why, const char *ca_key,
			      const char *url_key)
{
	if (strstr(why, "Timed out") || strstr(why, "within"))
		snprintf(fix, FIX_MAX, "the server took the connection but did not speak TLS in "
			 "time: check the scheme and port in %s%s and the server's load", url_key,
			 strstr(url_key, "ldap") ? " (ldaps:// 636, ldap:// 389 with StartTLS)" : "");
	else if (strstr(why, "expired") || strstr(why, "not yet"))
		snprintf(fix, FIX_MAX, "renew the server's certificate (server side), or "
			 "correct this host's clock");
	else if (strstr(why, "name") || strstr(why, "host"))
		snprintf(fix, FIX_MAX, "use a host name the server's certificate names in %s",
			 url_key);
	else
		snprintf(fix, FIX_MAX, "set %s to the CA that signed the server's certificate",
			 ca_key);
	return fix;
}

/* ldaps://: our own TLS handshake (tls/, the agent's verification), for
 * GnuTLS's reason on failure and the certificate's notAfter.  0, or a failure
 * already reported. */
static int tls_direct(struct run *k, struct server *s, const char *name, int64_t *not_after)
{
	char fixbuf[FIX_MAX];
	const struct tls_client_opts o = { .ca_file = k->cfg->ldap.ca_file, .hostname = s->host };
	struct tls_sess *sess = NULL;
	char why[512] = "";
	size_t used;
	int fd = chk_connect(s->addrs, s->n_addrs, k->cfg->ldap.timeout_ms, &used);

	if (fd < 0) {
		chk_add(k->r, name, CHK_FAIL, "start the directory server", "%s", strerror(-fd));
		return fd;
	}
	if (chk_tls(fd, &o, k->cfg->ldap.timeout_ms, &sess, why, sizeof why) < 0) {
		chk_add(k->r, name, CHK_FAIL,
			tls_fix_in(fixbuf, why, "[ldap] ca_file", "[ldap] url"), "%s", why);
		close(fd);
		return TLS_E_VERIFY;
	}
	tls_peer_not_after(sess, not_after);
	tls_bye(sess);
	tls_free(sess);
	close(fd);
	return 0;
}

static void check_tls(struct run *k)
{
	char name[300], why[768], fixbuf[FIX_MAX];

	for (size_t i = 0; i < k->n_srv; i++) {
		struct server *s = &k->srv[i];
		struct dir_probe *p = NULL;
		int64_t not_after = 0;
		long days;

		named(name, sizeof name, "tls", s->url);
		if (!s->reachable) {
			chk_add(k->r, name, CHK_SKIP, NULL, "no TCP connection");
			continue;
		}
		if (s->ldaps && tls_direct(k, s, name, &not_after) < 0)
			continue;
		/* libldap's own connection: StartTLS on ldap://, and the session the
		 * later checks use. */
		if (dir_probe_open(k->cfg, s->url, &p, why, sizeof why) < 0) {
			chk_add(k->r, name, CHK_FAIL,
				tls_fix_in(fixbuf, why, "[ldap] ca_file", "[ldap] url"), "%s", why);
			continue;
		}
		s->secure = true;
		if (s->ldaps || dir_probe_peer_not_after(p, &not_after) == 0) {
			days = chk_days_left(not_after, time(NULL));
			chk_add(k->r, name, CHK_OK, NULL, "%s with a certificate trusted by [ldap] "
				"ca_file for %s, expires in %ld day(s)%s", s->ldaps ? "TLS" : "StartTLS",
				s->host, days, days < EXPIRY_WARN_DAYS ? " (renew soon)" : "");
		} else {
			chk_add(k->r, name, CHK_OK, NULL, "%s with a certificate trusted by [ldap] "
				"ca_file for %s", s->ldaps ? "TLS" : "StartTLS", s->host);
		}
		if (!k->probe) {
			k->probe = p;
			k->probe_url = s->url;
		} else {
			dir_probe_close(p);
		}
	}
}

static void check_bind(struct run *k)
{
	char why[768];
	int rc;

	if (!k->probe) {
		chk_add(k->r, "bind", CHK_SKIP, NULL, "no directory server passed the TLS check");
		return;
	}
	rc = dir_probe_bind(k->probe, why, sizeof why);
	if (rc == DIR_E_INVALID_CREDENTIALS)
		chk_add(k->r, "bind", CHK_FAIL, "put the service account's password in [ldap] "
			"bind_password_file and check [ldap] bind_dn (server side: the account is "
			"enabled and its password not expired)", "%s as %s: %s", k->probe_url,
			k->cfg->ldap.bind_dn ? k->cfg->ldap.bind_dn : "(anonymous)", why);
	else if (rc == DIR_E_BAD_REQUEST)
		chk_add(k->r, "bind", CHK_SKIP, NULL, "%s", why);
	else if (rc < 0)
		chk_add(k->r, "bind", CHK_FAIL, "check [ldap] bind_dn and the server's log",
			"%s: %s", k->probe_url, why);
	else {
		k->bound = true;
		chk_add(k->r, "bind", CHK_OK, NULL, "%s bound as %s", k->probe_url,
			k->cfg->ldap.bind_dn ? k->cfg->ldap.bind_dn : "(anonymous)");
	}
}

static void check_base(struct run *k)
{
	char why[768];

	if (!k->bound) {
		chk_add(k->r, "base_dn", CHK_SKIP, NULL, "the service bind did not succeed");
		return;
	}
	if (dir_probe_base(k->probe, why, sizeof why) < 0)
		chk_add(k->r, "base_dn", CHK_FAIL, "set [ldap] base_dn to an entry that exists, and "
			"let the service account read it (server-side ACL)", "%s", why);
	else
		chk_add(k->r, "base_dn", CHK_OK, NULL, "%s is readable", k->cfg->ldap.base_dn);
}

static void check_user(struct run *k, const char *user)
{
	char why[768];
	size_t n = 0;

	if (!user) {
		chk_add(k->r, "user", CHK_SKIP, NULL, "no --user given");
		return;
	}
	if (!k->bound) {
		chk_add(k->r, "user", CHK_SKIP, NULL, "the service bind did not succeed");
		return;
	}
	if (dir_probe_user(k->probe, user, &k->user_dn, &n, why, sizeof why) < 0)
		chk_add(k->r, "user", CHK_FAIL, n > 1 ? "make [ldap] user_filter match one entry "
			"per name" : "check [ldap] user_filter and base_dn, the spelling of the "
			"name, and that the service account may read users", "%s: %s", user, why);
	else
		chk_add(k->r, "user", CHK_OK, NULL, "%s is %s", user, k->user_dn);
}

static void check_groups(struct run *k)
{
	char why[768];
	size_t n = 0;

	if (k->cfg->ldap.groups == CFG_GROUPS_NONE) {
		chk_add(k->r, "groups", CHK_SKIP, NULL, "[ldap] groups = none");
		return;
	}
	if (!k->user_dn) {
		chk_add(k->r, "groups", CHK_SKIP, NULL, "needs a user found by --user");
		return;
	}
	if (dir_probe_groups(k->probe, k->user_dn, &n, why, sizeof why) < 0)
		chk_add(k->r, "groups", CHK_FAIL, "let the service account search groups (member, "
			"uniqueMember) under [ldap] base_dn, or set [ldap] groups = none", "%s", why);
	else
		chk_add(k->r, "groups", CHK_OK, NULL, "%zu group(s) list %s as a direct member", n,
			k->user_dn);
}

static void check_clock(struct run *k)
{
	char why[768];
	int64_t theirs = 0, before, after, skew;

	if (!k->bound) {
		chk_add(k->r, "clock", CHK_SKIP, NULL, "the service bind did not succeed");
		return;
	}
	before = (int64_t)time(NULL);
	if (dir_probe_time(k->probe, &theirs, why, sizeof why) < 0) {
		chk_add(k->r, "clock", CHK_SKIP, NULL, "%s (OpenLDAP publishes no clock)", why);
		return;
	}
	after = (int64_t)time(NULL);
	/* currentTime has whole seconds: a second of slack each way. */
	skew = chk_skew(theirs, before - 1, after + 1);
	if (skew > SKEW_MAX_S)
		chk_add(k->r, "clock", CHK_FAIL, "synchronise this host's clock with the domain "
			"controller (NTP); AD refuses Kerberos beyond 5 minutes",
			"%lld s %s the directory's clock", (long long)skew,
			theirs < before ? "ahead of" : "behind");
	else
		chk_add(k->r, "clock", CHK_OK, NULL, "within %lld s of the directory's clock",
			(long long)skew);
}

/* ---- the front's certificates -------------------------------------------------- */

static void check_front(struct run *k)
{
	const struct cfg *c = k->cfg;
	char errbuf[512];
	int64_t leaf = 0, min = 0, now = (int64_t)time(NULL);
	long days;

	if (!c->https.present) {
		chk_add(k->r, "front_cert", CHK_SKIP, NULL, "no [https] section");
		return;
	}
	if (tls_check_keypair(c->https.cert_file, c->https.key_file, errbuf, sizeof errbuf) < 0) {
		chk_add(k->r, "front_cert", CHK_FAIL, "give [https] cert_file and key_file of one "
			"pair", "%s", errbuf);
	} else if (tls_cert_file_dates(c->https.cert_file, &leaf, &min, errbuf,
				       sizeof errbuf) < 0) {
		chk_add(k->r, "front_cert", CHK_FAIL, "give a PEM certificate in [https] cert_file",
			"%s", errbuf);
	} else if ((days = chk_days_left(min, now)) < 0) {
		chk_add(k->r, "front_cert", CHK_FAIL, "renew the certificate in [https] cert_file "
			"(and key_file), then reload the agent (SIGHUP)", "%s %s %ld day(s) ago",
			c->https.cert_file, leaf == min ? "expired" : "has a chain certificate that "
			"expired", -days);
	} else {
		chk_add(k->r, "front_cert", CHK_OK, NULL, "%s matches its key, expires in %ld "
			"day(s)%s", c->https.cert_file, days,
			days < EXPIRY_WARN_DAYS ? " (renew soon)" : "");
	}
	if (tls_check_ca_file(c->https.client_ca_file, errbuf, sizeof errbuf) < 0 ||
	    tls_cert_file_dates(c->https.client_ca_file, &leaf, &min, errbuf, sizeof errbuf) < 0)
		chk_add(k->r, "client_ca", CHK_FAIL, "give the PEM client CA set in [https] "
			"client_ca_file", "%s", errbuf);
	else if ((days = chk_days_left(min, now)) < 0)
		chk_add(k->r, "client_ca", CHK_FAIL, "replace the expired CA in [https] "
			"client_ca_file (dirbridge-cert init-ca) and issue new client certificates",
			"a CA in %s expired %ld day(s) ago", c->https.client_ca_file, -days);
	else
		chk_add(k->r, "client_ca", CHK_OK, NULL, "%s parses, its first CA to expire "
			"does in %ld day(s)", c->https.client_ca_file, days);
	if (!c->https.crl_file) {
		chk_add(k->r, "crl", CHK_SKIP, NULL, "no [https] crl_file: revoked certificates "
			"are not refused");
		return;
	}
	if (tls_check_crl_file(c->https.crl_file, c->https.client_ca_file, errbuf,
			       sizeof errbuf) < 0 ||
	    tls_crl_file_next_update(c->https.crl_file, &leaf, errbuf, sizeof errbuf) < 0)
		chk_add(k->r, "crl", CHK_FAIL, "write the client CA's CRL to [https] crl_file "
			"(dirbridge-cert crl)", "%s", errbuf);
	else if (leaf < now)
		chk_add(k->r, "crl", CHK_FAIL, "publish a new CRL (dirbridge-cert crl --out FILE) "
			"to [https] crl_file and reload the agent (SIGHUP)", "%s is stale: %s",
			c->https.crl_file, leaf < 0 ? "it has no nextUpdate" : "its nextUpdate has "
			"passed");
	else
		chk_add(k->r, "crl", CHK_OK, NULL, "%s is signed by the client CA, next update "
			"in %ld day(s)", c->https.crl_file, chk_days_left(leaf, now));
}

/* ---- the hub -------------------------------------------------------------------- */

static void check_hub(struct run *k)
{
	const struct cfg *c = k->cfg;
	unsigned tmo = c->ldap.timeout_ms;
	struct sockaddr_storage addrs[MAX_ADDRS];
	/* The agent's own tunnel options: trust only [hub] ca_file, check the name. */
	const struct tls_client_opts o = { .ca_file = c->hub.ca_file, .hostname = c->hub.host };
	struct tls_sess *sess = NULL;
	char why[512] = "", addr[NET_ADDR_MAX], fixbuf[FIX_MAX], *token = NULL;
	size_t n = 0, used = 0, token_len = 0;
	int fd, rc;

	if (!c->hub.present) {
		chk_add(k->r, "hub", CHK_SKIP, NULL, "no [hub] section");
		return;
	}
	if ((rc = chk_resolve(c->hub.host, c->hub.port, addrs, MAX_ADDRS, &n)) < 0 || n == 0) {
		chk_add(k->r, "hub_dns", CHK_FAIL, "correct the host in [hub] url, or its DNS "
			"record", "%s: %s", c->hub.host, rc < 0 ? gai_strerror(rc) : "no address");
		chk_add(k->r, "hub_tcp", CHK_SKIP, NULL, "the hub's host did not resolve");
		return;
	}
	chk_add(k->r, "hub_dns", CHK_OK, NULL, "%s: %zu address(es)", c->hub.host, n);
	if ((fd = chk_connect(addrs, n, tmo, &used)) < 0) {
		chk_add(k->r, "hub_tcp", CHK_FAIL, "correct the port in [hub] url, or allow "
			"outbound connections to it (firewall, proxy)", "%s port %u: %s",
			c->hub.host, c->hub.port, strerror(-fd));
		chk_add(k->r, "hub_tls", CHK_SKIP, NULL, "no TCP connection");
		return;
	}
	net_addr_text((const struct sockaddr *)&addrs[used], addr, sizeof addr, true);
	chk_add(k->r, "hub_tcp", CHK_OK, NULL, "connected to %s", addr);
	if (chk_tls(fd, &o, tmo, &sess, why, sizeof why) < 0) {
		chk_add(k->r, "hub_tls", CHK_FAIL, tls_fix_in(fixbuf, why, "[hub] ca_file", "[hub] url"), "%s",
			why);
		chk_add(k->r, "hub_upgrade", CHK_SKIP, NULL, "no TLS session");
		close(fd);
		return;
	}
	chk_add(k->r, "hub_tls", CHK_OK, NULL, "%s, trusted by [hub] ca_file for %s",
		tls_version(sess), c->hub.host);
	if (cfg_secret_read(c->hub.token_file, &token, &token_len, why, sizeof why) < 0) {
		chk_add(k->r, "hub_upgrade", CHK_FAIL, "write the agent's token on the first line "
			"of [hub] token_file (mode 0600)", "%s", why);
	} else {
		rc = chk_ws_upgrade(fd, sess, c->hub.host, c->hub.port, c->hub.path, token,
				    token_len, tmo, why, sizeof why);
		cfg_secret_free(token, token_len);
		if (rc == -EACCES)
			chk_add(k->r, "hub_upgrade", CHK_FAIL, "put the token the hub issued for "
				"this agent in [hub] token_file (hub side: its tokens file)",
				"%s", why);
		else if (rc < 0)
			chk_add(k->r, "hub_upgrade", CHK_FAIL, "correct the path in [hub] url "
				"(wss://HOST:PORT/agent/v1)", "%s%s: %s", c->hub.host, c->hub.path,
				why);
		else
			chk_add(k->r, "hub_upgrade", CHK_OK, NULL, "%s with the token of [hub] "
				"token_file", why);
	}
	tls_bye(sess);
	tls_free(sess);
	close(fd);
}

int chk_run(const char *path, const char *user, struct chk_report *r)
{
	struct run k = { .r = r };
	struct cfg *cfg = NULL;
	int rc;

	check_config(&k, path, &cfg);
	if (!cfg) {
		static const char *const rest[] = { "files", "dns", "tcp", "tls", "bind", "base_dn",
						    "user", "groups", "clock", "front_cert",
						    "client_ca", "crl", "hub" };

		for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
			chk_add(r, rest[i], CHK_SKIP, NULL, "the config did not load");
		return 0;
	}
	rc = chk_run_cfg(cfg, user, r);
	cfg_free(cfg);
	return rc;
}

int chk_run_cfg(const struct cfg *cfg, const char *user, struct chk_report *r)
{
	struct run k = { .r = r, .cfg = cfg };

	k.n_srv = k.cfg->ldap.n_urls;
	k.srv = calloc(k.n_srv ? k.n_srv : 1, sizeof *k.srv);
	if (!k.srv)
		return -ENOMEM;
	for (size_t i = 0; i < k.n_srv; i++)
		k.srv[i].url = k.cfg->ldap.urls[i];
	check_files(&k);
	check_dns(&k);
	check_tcp(&k);
	check_tls(&k);
	check_bind(&k);
	check_base(&k);
	check_user(&k, user);
	check_groups(&k);
	check_clock(&k);
	check_front(&k);
	check_hub(&k);
	dir_probe_close(k.probe);
	free(k.user_dn);
	free(k.srv);
	return 0;
}
