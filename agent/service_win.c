/*
 * The Windows service (agent/platform.h): installing and removing it, the
 * ServiceMain the Service Control Manager runs, and the control handler that
 * turns SERVICE_CONTROL_STOP and SERVICE_CONTROL_PARAMCHANGE into the same
 * stop and reload SIGTERM and SIGHUP are on POSIX.
 *
 * The SCM calls the handler on the dispatcher thread while the agent's loop
 * runs on the service thread, so the handler only passes the event to the
 * callback the agent registered (which wakes its loop with uv_async_send());
 * the lock keeps the callback from being cleared while it runs.
 */
#include <windows.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>

#include "agent/platform.h"
#include "log/log.h"

#define SERVICE_NAME L"dirbridge"
/* How long the SCM should wait before it considers a start or stop hung: the
 * agent's bounded shutdown and a first directory connection fit in it. */
#define PENDING_HINT_MS 30000

static SRWLOCK events_lock = SRWLOCK_INIT;
static agent_event_fn *events_fn;
static void *events_arg;

static SERVICE_STATUS_HANDLE status_handle;
static SERVICE_STATUS status;
static agent_body_fn *service_body;
static void *service_arg;

/* Maps a Win32 error to the negative errno the platform seam returns. */
static int win_errno(DWORD e)
{
	switch (e) {
	case ERROR_ACCESS_DENIED:
		return -EACCES;
	case ERROR_SERVICE_EXISTS:
	case ERROR_DUPLICATE_SERVICE_NAME:
		return -EEXIST;
	case ERROR_SERVICE_DOES_NOT_EXIST:
		return -ENOENT;
	case ERROR_SERVICE_MARKED_FOR_DELETE:
		return -EBUSY;
	default:
		return -EIO;
	}
}

static void report(DWORD state, DWORD exit_code)
{
	if (!status_handle)
		return;
	status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
	status.dwCurrentState = state;
	/* Controls are taken only while running: a stop during start would race
	 * the parts still being started. */
	status.dwControlsAccepted = state == SERVICE_RUNNING
		? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN | SERVICE_ACCEPT_PARAMCHANGE : 0;
	status.dwWin32ExitCode = exit_code ? ERROR_SERVICE_SPECIFIC_ERROR : NO_ERROR;
	status.dwServiceSpecificExitCode = exit_code;
	status.dwWaitHint = state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING
		? PENDING_HINT_MS : 0;
	if (state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING)
		status.dwCheckPoint++;
	else
		status.dwCheckPoint = 0;
	(void)SetServiceStatus(status_handle, &status);
}

void agent_platform_set_events(agent_event_fn *fn, void *arg)
{
	AcquireSRWLockExclusive(&events_lock);
	events_fn = fn;
	events_arg = arg;
	ReleaseSRWLockExclusive(&events_lock);
}

static void deliver(enum agent_event ev)
{
	AcquireSRWLockShared(&events_lock);
	if (events_fn)
		events_fn(events_arg, ev);
	ReleaseSRWLockShared(&events_lock);
}

void agent_platform_running(bool running)
{
	report(running ? SERVICE_RUNNING : SERVICE_STOP_PENDING, 0);
}

static DWORD WINAPI control_handler(DWORD control, DWORD type, LPVOID data, LPVOID ctx)
{
	(void)type;
	(void)data;
	(void)ctx;
	switch (control) {
	case SERVICE_CONTROL_STOP:
	case SERVICE_CONTROL_SHUTDOWN:
		report(SERVICE_STOP_PENDING, 0);
		deliver(AGENT_EVENT_STOP);
		return NO_ERROR;
	case SERVICE_CONTROL_PARAMCHANGE:
		deliver(AGENT_EVENT_RELOAD);
		return NO_ERROR;
	case SERVICE_CONTROL_INTERROGATE:
		return NO_ERROR;
	default:
		return ERROR_CALL_NOT_IMPLEMENTED;
	}
}

static void WINAPI service_main(DWORD argc, LPWSTR *argv)
{
	int rc;

	(void)argc;
	(void)argv;
	status_handle = RegisterServiceCtrlHandlerExW(SERVICE_NAME, control_handler, NULL);
	if (!status_handle)
		return;
	report(SERVICE_START_PENDING, 0);
	/* A service has no console: its messages go to the Application log. */
	if (log_eventlog_open() == 0)
		log_set_sink(log_eventlog_sink);
	rc = service_body(service_arg);
	log_set_sink(NULL);
	log_eventlog_close();
	report(SERVICE_STOPPED, rc == 0 ? 0 : (DWORD)1);
}

int agent_win_service_dispatch(agent_body_fn *body, void *arg)
{
	SERVICE_TABLE_ENTRYW table[] = {
		{ SERVICE_NAME, service_main },
		{ NULL, NULL },
	};

	service_body = body;
	service_arg = arg;
	if (StartServiceCtrlDispatcherW(table))
		return 0;
	/* Started from a console, not by the SCM: the caller runs the body. */
	if (GetLastError() == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT)
		return 1;
	return win_errno(GetLastError());
}

int agent_win_install_service(const char *config)
{
	wchar_t exe[MAX_PATH], wconfig[MAX_PATH], full[MAX_PATH], cmd[3 * MAX_PATH + 16];
	SERVICE_DESCRIPTIONW desc = { L"dirbridge directory agent: sign-in against the "
				      L"company directory for the hub" };
	SC_HANDLE scm, svc;
	DWORD n;
	int rc = 0;

	n = GetModuleFileNameW(NULL, exe, MAX_PATH);
	if (n == 0 || n >= MAX_PATH ||
	    MultiByteToWideChar(CP_UTF8, 0, config, -1, wconfig, MAX_PATH) == 0 ||
	    (n = GetFullPathNameW(wconfig, MAX_PATH, full, NULL)) == 0 || n >= MAX_PATH) {
		fprintf(stderr, "dirbridge: cannot resolve the program or configuration path\n");
		return -ENAMETOOLONG;
	}
	/* Both paths quoted: C:\Program Files has a space, and an unquoted
	 * service path with one is a known way to run someone else's program. */
	swprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" -c \"%ls\"", exe, full);
	if (!(scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CREATE_SERVICE))) {
		rc = win_errno(GetLastError());
		fprintf(stderr, "dirbridge: cannot open the service manager (error %lu); run as "
			"an administrator\n", GetLastError());
		return rc;
	}
	/* LocalSystem (no account given): the secret files' owner-only ACL
	 * admits SYSTEM, see docs/windows.md. */
	svc = CreateServiceW(scm, SERVICE_NAME, L"dirbridge agent", SERVICE_ALL_ACCESS,
			     SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START, SERVICE_ERROR_NORMAL,
			     cmd, NULL, NULL, NULL, NULL, NULL);
	if (!svc) {
		rc = win_errno(GetLastError());
		fprintf(stderr, "dirbridge: cannot create the service (error %lu)%s\n",
			GetLastError(), rc == -EEXIST ? "; it is installed already" : "");
	} else {
		(void)ChangeServiceConfig2W(svc, SERVICE_CONFIG_DESCRIPTION, &desc);
		printf("service dirbridge installed: %ls\n", cmd);
		CloseServiceHandle(svc);
	}
	CloseServiceHandle(scm);
	return rc;
}

int agent_win_uninstall_service(void)
{
	SERVICE_STATUS st;
	SC_HANDLE scm, svc;
	int rc = 0;

	if (!(scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT))) {
		fprintf(stderr, "dirbridge: cannot open the service manager (error %lu); run as "
			"an administrator\n", GetLastError());
		return win_errno(GetLastError());
	}
	svc = OpenServiceW(scm, SERVICE_NAME, DELETE | SERVICE_STOP | SERVICE_QUERY_STATUS);
	if (!svc) {
		rc = win_errno(GetLastError());
		fprintf(stderr, "dirbridge: cannot open the service (error %lu)%s\n", GetLastError(),
			rc == -ENOENT ? "; it is not installed" : "");
		CloseServiceHandle(scm);
		return rc;
	}
	/* A running service is asked to stop first; the SCM removes it once the
	 * last handle to it is closed either way. */
	(void)ControlService(svc, SERVICE_CONTROL_STOP, &st);
	if (!DeleteService(svc)) {
		rc = win_errno(GetLastError());
		fprintf(stderr, "dirbridge: cannot remove the service (error %lu)\n", GetLastError());
	} else {
		printf("service dirbridge removed\n");
	}
	CloseServiceHandle(svc);
	CloseServiceHandle(scm);
	return rc;
}
