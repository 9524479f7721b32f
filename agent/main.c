/* dirbridge — the agent daemon. */
#include <stdio.h>
#include <string.h>

#include "config/cfg.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("dirbridge %s\n", DIRBRIDGE_VERSION);
		return 0;
	}
	fprintf(stderr, "usage: dirbridge [-n] -c FILE\n");
	return 2;
}
