/*
 * Checks of files and value syntax for the loader (see cfg.c): files readable,
 * secrets private, certificates and keys that GnuTLS accepts, DNs, attribute
 * names, hosts, URLs and listening addresses.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <http_parser.h>
#include <ldap.h>

#include "config/internal.h"
#include "tls/tls.h"

/* ---- files ----------------------------------------------------------------- */

/*
 * Checks that PATH is a readable regular file (and, for secrets, private to its
 * owner).  Returns whether it is usable for the checks that read it next.
 */
static bool file_ok(struct loader *L, const char *sec, const char *key, const char *path,
		    bool secret)
{
	struct stat st;
	bool ok = true;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		key_err(L, sec, key, "cannot read %s: %s; check the path and that the agent's "
			"user may read it", path, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		key_err(L, sec, key, "%s is not a regular file; name a file", path);
		ok = false;
	} else if (secret && !cfg_secret_mode_ok(path, st.st_mode)) {
		key_err(L, sec, key, "%s holds a secret but is accessible by group or others "
			"(mode %04o); run chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
		ok = false;
	} else if (st.st_size == 0) {
		key_err(L, sec, key, "%s is empty", path);
		ok = false;
	}
	close(fd);
	return ok;
}

/* Reads the value of a file-naming key, resolved against the config's directory,
 * and checks the file.  *OK tells whether the file may be parsed further. */
char *cfg_get_file(struct loader *L, const char *sec, const char *key, bool required,
		   bool secret, bool *ok)
{
	const char *v = required ? cfg_need(L, sec, key, "/path/to/file") : cfg_raw(L, sec, key);
	char *path, errbuf[512];
	int rc;

	*ok = false;
	if (!v)
		return NULL;
	if ((rc = cfg_credential_path(v, &path, errbuf, sizeof errbuf)) < 0) {
		if (rc == -ENOMEM)
			L->oom = true;
		else
			key_err(L, sec, key, "%s", errbuf);
		return NULL;
	} else if (rc > 0) {
		/* Already absolute: $CREDENTIALS_DIRECTORY/NAME. */
	} else if (v[0] != '/' && L->dir) {
		if (asprintf(&path, "%s/%s", L->dir, v) < 0) {
			L->oom = true;
			return NULL;
		}
	} else if (!(path = cfg_keep(L, v))) {
		return NULL;
	}
	*ok = file_ok(L, sec, key, path, secret);
	return path;
}

/* Reads a secret only to check its content; the value is wiped at once. */
void cfg_check_secret(struct loader *L, const char *sec, const char *key, const char *path,
		      bool token)
{
	char errbuf[512], *s;
	size_t len;

	if (cfg_secret_read(path, &s, &len, errbuf, sizeof errbuf) < 0) {
		key_err(L, sec, key, "%s", errbuf);
		return;
	}
	/* The token goes into an HTTP header: a space or control byte there would
	 * split the header or be rejected by the hub with a confusing error. */
	for (size_t i = 0; token && i < len; i++) {
		if (s[i] <= 0x20 || s[i] >= 0x7f) {
			key_err(L, sec, key, "%s: the token contains a space or a control or "
				"non-ASCII byte; put only the token on the first line", path);
			break;
		}
	}
	cfg_secret_free(s, len);
}

bool cfg_check_ca(struct loader *L, const char *sec, const char *key, const char *path)
{
	char errbuf[512];

	if (tls_check_ca_file(path, errbuf, sizeof errbuf) < 0) {
		key_err(L, sec, key, "%s", errbuf);
		return false;
	}
	return true;
}

void cfg_check_keypair(struct loader *L, const char *sec, const char *cert, const char *key)
{
	char errbuf[512];

	if (tls_check_keypair(cert, key, errbuf, sizeof errbuf) < 0)
		key_err(L, sec, "cert_file", "%s", errbuf);
}

/* ---- syntax helpers -------------------------------------------------------- */

bool cfg_valid_dn(const char *s)
{
	LDAPDN dn = NULL;
	int rc = ldap_str2dn(s, &dn, LDAP_DN_FORMAT_LDAPV3);

	if (dn)
		ldap_dnfree(dn);
	return rc == LDAP_SUCCESS && dn != NULL;
}

/* RFC 4512 attributedescription: (descr | numericoid) *(";" option). */
bool cfg_valid_attr(const char *s)
{
	size_t n;

	if (isalpha((unsigned char)*s)) {
		n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
	} else {
		/* numericoid = number 1*( DOT number ), no leading zeros */
		n = 0;
		for (;;) {
			size_t d = strspn(s + n, "0123456789");

			if (d == 0 || (s[n] == '0' && d > 1))
				return false;
			n += d;
			if (s[n] != '.')
				break;
			n++;
		}
		if (!strchr(s, '.') || strchr(s, '.') > s + n)
			return false;
	}
	if (n == 0 || n > 128)
		return false;
	s += n;
	while (*s == ';') {
		n = strspn(s + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
		if (n == 0)
			return false;
		s += 1 + n;
	}
	return *s == '\0';
}

/* DNS name or IP literal, as far as a URL host goes. */
bool cfg_valid_host(const char *h, size_t len)
{
	char buf[256];
	struct in6_addr a6;

	if (len == 0 || len >= sizeof buf)
		return false;
	memcpy(buf, h, len);
	buf[len] = '\0';
	if (strchr(buf, ':'))
		return inet_pton(AF_INET6, buf, &a6) == 1;
	return strspn(buf, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == len
	       && buf[0] != '-' && buf[0] != '.';
}

int cfg_hostport_parse(const char *text, uint16_t default_port, struct sockaddr_storage *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port_text = NULL, *h = text;
	size_t hlen;
	unsigned long port = default_port;

	memset(out, 0, sizeof *out);
	if (!text)
		return -EINVAL;
	if (*text == '[') {
		const char *end = strchr(text, ']');

		if (!end || (end[1] != ':' && (end[1] || !default_port)))
			return -EINVAL;
		h = text + 1;
		hlen = (size_t)(end - h);
		if (end[1] == ':')
			port_text = end + 2;
	} else {
		const char *colon = strrchr(text, ':');

		/* An IPv6 address needs its brackets: "::1:443" has no one reading. */
		if (colon && memchr(text, ':', (size_t)(colon - text)))
			return -EINVAL;
		if (!colon && !default_port)
			return -EINVAL;
		hlen = colon ? (size_t)(colon - text) : strlen(text);
		if (colon)
			port_text = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof host || memchr(h, '/', hlen))
		return -EINVAL;
	if (port_text && !cfg_parse_uint(port_text, 5, &port))
		return -EINVAL;
	if (port < 1 || port > 65535)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (*text == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) == 1)
			return 0;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)out;
		struct cfg_range r;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		/* cfg_range_parse applies the strict dotted-quad rules. */
		if (cfg_range_parse(host, &r) == 0 && r.family == AF_INET && r.prefix == 32) {
			memcpy(&a->sin_addr, r.addr, 4);
			return 0;
		}
	}
	memset(out, 0, sizeof *out);
	return -EINVAL;
}

/* A URL of SCHEME with a host and no user info, query or fragment. */
bool cfg_check_url(struct loader *L, const char *sec, const char *key, const char *v,
		   const char *scheme, bool need_path, struct http_parser_url *u)
{
	http_parser_url_init(u);
	if (http_parser_parse_url(v, strlen(v), 0, u) != 0 ||
	    !(u->field_set & (1 << UF_SCHEMA)) || !(u->field_set & (1 << UF_HOST))) {
		key_err(L, sec, key, "'%.128s' is not a URL; write it like %s://HOST[:PORT]%s", v,
			scheme, need_path ? "/agent/v1" : "");
		return false;
	}
	if (u->field_data[UF_SCHEMA].len != strlen(scheme) ||
	    strncasecmp(v + u->field_data[UF_SCHEMA].off, scheme, strlen(scheme)) != 0) {
		key_err(L, sec, key, "'%.128s' must start with %s://", v, scheme);
		return false;
	}
	if (u->field_set & ((1 << UF_USERINFO) | (1 << UF_QUERY) | (1 << UF_FRAGMENT))) {
		key_err(L, sec, key, "'%.128s' must not carry user info, a query or a fragment", v);
		return false;
	}
	if ((u->field_set & (1 << UF_PORT)) && u->port == 0) {
		key_err(L, sec, key, "'%.128s': port 0 is not a port; use 1..65535", v);
		return false;
	}
	if (!cfg_valid_host(v + u->field_data[UF_HOST].off, u->field_data[UF_HOST].len)) {
		key_err(L, sec, key, "'%.128s' names no valid host", v);
		return false;
	}
	if (need_path && !(u->field_set & (1 << UF_PATH))) {
		key_err(L, sec, key, "'%.128s' has no path; write it like %s://HOST[:PORT]/agent/v1",
			v, scheme);
		return false;
	}
	return true;
}
