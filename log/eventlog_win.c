/*
 * The Windows Event Log as the logger's sink (log.h): the service has no
 * console, and administrators look for a service's messages in the
 * Application log.  Messages arrive escaped and UTF-8; ReportEventW wants
 * UTF-16.
 */
#include <windows.h>

#include <errno.h>

#include "log/log.h"

/* Longer than any line log.c formats, with room for the UTF-16 form. */
#define WIDE_MAX 4096

static HANDLE source;

int log_eventlog_open(void)
{
	if (source)
		return 0;
	source = RegisterEventSourceW(NULL, L"dirbridge");
	return source ? 0 : -EACCES;
}

void log_eventlog_sink(enum log_level level, const char *line)
{
	static const WORD type[] = { EVENTLOG_ERROR_TYPE, EVENTLOG_WARNING_TYPE,
				     EVENTLOG_INFORMATION_TYPE, EVENTLOG_INFORMATION_TYPE };
	wchar_t wide[WIDE_MAX];
	LPCWSTR strings[1] = { wide };

	if (!source || (unsigned)level > LOGL_DEBUG)
		return;
	if (MultiByteToWideChar(CP_UTF8, 0, line, -1, wide, WIDE_MAX) == 0)
		wcscpy(wide, L"(a message that is not UTF-8 was dropped)");
	/* Event id 1 for every message: the text is the whole message, so no
	 * message file is needed to read it. */
	(void)ReportEventW(source, type[level], 0, 1, NULL, 1, 0, strings, NULL);
}

void log_eventlog_close(void)
{
	if (source)
		DeregisterEventSource(source);
	source = NULL;
}
