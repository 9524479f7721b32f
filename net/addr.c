/*
 * Address text, hex digits and the module's error names: pure helpers that
 * every caller of net/ (and the form and query decoders above it) shares.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>

#include "net/net.h"

const char *net_strerror(int err)
{
	switch (err) {
	case NET_OK: return "success";
	case NET_E_NOMEM: return "out of memory";
	case NET_E_IO: return "socket failure";
	case NET_E_IN_BOUND: return "too much unread input";
	case NET_E_OUT_BOUND: return "too much unwritten output";
	case NET_E_CLOSED: return "connection closed";
	case NET_E_INVAL: return "invalid argument";
	case NET_E_TLS: return "TLS failure";
	case NET_E_WS: return "WebSocket failure";
	default:
		/* libuv's codes are negative errnos, passed on as they are. */
		if (err < 0 && (err < -3099 || err > -3001))
			return uv_strerror(err);
		return "unknown error";
	}
}

int net_addr_text(const struct sockaddr *sa, char *buf, size_t len, bool with_port)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		if (with_port)
			snprintf(buf, len, "%s:%u", a, ntohs(in->sin_port));
		else
			snprintf(buf, len, "%s", a);
		return 0;
	}
	if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

		if (!with_port && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], a, sizeof(a));
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		if (with_port)
			snprintf(buf, len, "[%s]:%u", a, ntohs(in6->sin6_port));
		else
			snprintf(buf, len, "%s", a);
		return 0;
	}
	snprintf(buf, len, "?");
	return NET_E_INVAL;
}

int net_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int net_tcp_nodelay(int fd)
{
	int on = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) < 0)
		return -errno;
	return 0;
}
