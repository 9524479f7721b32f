/*
 * dirbridge-cert helpers every other file of the tool uses: messages and the
 * user lists they pass around.  This file uses none of the others, so the
 * tool's files form no cycle (main.c on top, util.c at the bottom).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tools/cert/cert.h"

int die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("dirbridge: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

void free_users(char **users, size_t n)
{
	for (size_t i = 0; users && i < n; i++)
		free(users[i]);
	free(users);
}
