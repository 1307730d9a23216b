/* wasicmd-c: a C WASI command that reports what its runtime gave it, to
 * compare sluice with a plain WASI runtime. It prints its arguments, the
 * number and names of its environment variables (names only: values such
 * as an invocation id differ from call to call), its stdin, whether the
 * clocks and the random source work and whether any file can be opened,
 * writes one line to stderr, and exits with the code named by an input
 * that starts with "exit=N" (0 otherwise). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
	printf("argc=%d\n", argc);
	for (int i = 0; i < argc; i++)
		printf("argv[%d]=%s\n", i, argv[i]);

	int n = 0;
	for (char **e = environ; *e; e++)
		n++;
	printf("envc=%d\n", n);
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		int len = eq ? (int)(eq - *e) : (int)strlen(*e);
		printf("env=%.*s\n", len, *e);
	}

	static char in[1 << 16];
	size_t got = fread(in, 1, sizeof in - 1, stdin);
	in[got] = 0;
	printf("stdin=%zu:%s\n", got, in);

	struct timespec rt, mono;
	int clocks = clock_gettime(CLOCK_REALTIME, &rt) == 0 && rt.tv_sec > 1600000000 &&
		clock_gettime(CLOCK_MONOTONIC, &mono) == 0;
	printf("clocks=%s\n", clocks ? "ok" : "broken");
	unsigned char r[32] = {0};
	int random = getentropy(r, sizeof r) == 0;
	int zero = 1;
	for (size_t i = 0; i < sizeof r; i++)
		zero &= r[i] == 0;
	printf("random=%s\n", random && !zero ? "ok" : "broken");

	const char *paths[] = {"/", ".", "/etc/passwd", "data.txt"};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		FILE *f = fopen(paths[i], "r");
		printf("open %s: %s\n", paths[i], f ? "opened" : "refused");
		if (f)
			fclose(f);
	}

	fprintf(stderr, "wasicmd: read %zu bytes, %d variables\n", got, n);
	fflush(stdout);
	if (strncmp(in, "exit=", 5) == 0)
		return atoi(in + 5);
	return 0;
}
