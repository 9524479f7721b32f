/*
 * Memory that may hold secrets: secret files read into locked, non-dumpable
 * pages, and an allocator that wipes what it frees.  Every JSON value the agent
 * or the hub builds or parses may carry a password, a token or a profile, so
 * jansson's allocator is set (in each program's main) to cfg_wipe_alloc and
 * cfg_wipe_free.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/cfg.h"

#define SECRET_MAX 4096		/* bytes in the first line of a secret file */

void *cfg_wipe_alloc(size_t n)
{
	return malloc(n);
}

void cfg_wipe_free(void *p)
{
	if (p)
		explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

/* Secrets live in their own locked, non-dumpable mapping of a fixed size, so
 * cfg_secret_free() knows what to wipe without trusting a length. */
static size_t secret_map_size(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (SECRET_MAX + 1 + page - 1) / page * page;
}

/*
 * The explicit prefix, rather than any bare name, because a bare name already
 * means a file next to the configuration: a credential must never silently
 * shadow one, nor go missing unnoticed outside systemd.
 */
int cfg_credential_path(const char *value, char **path, char *errbuf, size_t errlen)
{
	const size_t plen = sizeof CFG_CREDENTIAL_PREFIX - 1;
	const char *name, *dir;

	*path = NULL;
	if (strncmp(value, CFG_CREDENTIAL_PREFIX, plen) != 0)
		return 0;
	name = value + plen;
	/* systemd's own rule for credential names: one file name, no directory. */
	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") ||
	    strlen(name) > NAME_MAX) {
		snprintf(errbuf, errlen, "'%s' names no credential; write credential:NAME with the "
			 "NAME of LoadCredential=NAME:PATH (a file name, no '/')", value);
		return -EINVAL;
	}
	dir = getenv("CREDENTIALS_DIRECTORY");
	if (!dir || dir[0] != '/') {
		snprintf(errbuf, errlen, "%s needs $CREDENTIALS_DIRECTORY, which systemd sets only "
			 "for a unit with LoadCredential=%s:/path/to/file; outside systemd, "
			 "name the file itself", value, name);
		return -ENOENT;
	}
	if (asprintf(path, "%s/%s", dir, name) < 0) {
		*path = NULL;
		snprintf(errbuf, errlen, "out of memory");
		return -ENOMEM;
	}
	return 1;
}

static int read_secret(const char *path, char **out, size_t *len, char *errbuf, size_t errlen)
{
	size_t size = secret_map_size(), got = 0, n;
	struct stat st;
	char *buf, *nl = NULL;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(errbuf, errlen, "cannot read %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(errbuf, errlen, "%s is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if (!cfg_secret_mode_ok(path, st.st_mode)) {
		snprintf(errbuf, errlen, "%s holds a secret but is accessible by group or others "
			 "(mode %04o); run chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -EPERM;
	}
	buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		snprintf(errbuf, errlen, "cannot allocate memory for %s", path);
		close(fd);
		return -ENOMEM;
	}
	/* Locking may exceed RLIMIT_MEMLOCK for an unprivileged user; the secret
	 * is still wiped on free, so that is not worth refusing to start. */
	(void)mlock(buf, size);
	(void)madvise(buf, size, MADV_DONTDUMP);

	while (got <= SECRET_MAX && !(nl = memchr(buf, '\n', got))) {
		ssize_t r = read(fd, buf + got, SECRET_MAX + 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(errbuf, errlen, "cannot read %s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	nl = memchr(buf, '\n', got);
	n = nl ? (size_t)(nl - buf) : got;
	if (n > SECRET_MAX) {
		snprintf(errbuf, errlen, "%s: the first line is longer than %d bytes", path, SECRET_MAX);
		rc = -EINVAL;
		goto fail;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0) {
		snprintf(errbuf, errlen, "%s: the first line is empty; put the secret on it", path);
		rc = -EINVAL;
		goto fail;
	}
	if (memchr(buf, '\0', n)) {
		snprintf(errbuf, errlen, "%s: the secret contains a NUL byte", path);
		rc = -EINVAL;
		goto fail;
	}
	/* Whatever followed the first line is not ours to keep. */
	explicit_bzero(buf + n, size - n);
	close(fd);
	*out = buf;
	*len = n;
	return 0;
fail:
	explicit_bzero(buf, size);
	munlock(buf, size);
	munmap(buf, size);
	close(fd);
	return rc;
}

int cfg_secret_read(const char *path, char **out, size_t *len, char *errbuf, size_t errlen)
{
	char *cred = NULL;
	int rc;

	*out = NULL;
	*len = 0;
	/* The loader has resolved configured values already; a caller holding a
	 * raw "credential:NAME" gets the same file. */
	if ((rc = cfg_credential_path(path, &cred, errbuf, errlen)) < 0)
		return rc;
	rc = read_secret(cred ? cred : path, out, len, errbuf, errlen);
	free(cred);
	return rc;
}

void cfg_secret_free(char *secret, size_t len)
{
	size_t size = secret_map_size();

	(void)len;
	if (!secret)
		return;
	explicit_bzero(secret, size);
	munlock(secret, size);
	munmap(secret, size);
}
