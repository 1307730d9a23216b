/* getenv-c: a C WASI command that prints the value of the environment
 * variable named on stdin, or exits with code 4 if it is not set. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
	char name[256];
	size_t n = fread(name, 1, sizeof name - 1, stdin);
	name[n] = 0;
	const char *v = getenv(name);
	if (!v) {
		fprintf(stderr, "%s is not set\n", name);
		return 4;
	}
	fputs(v, stdout);
	return 0;
}
