/* cgi-c: a C WASI command written as a CGI script (RFC 3875), the way a
 * WAGI module is: the request in its environment, the body on stdin, a
 * CGI response on stdout. What it answers depends on the body:
 *
 *   "bad..."     Status: 400, a JSON error
 *   "env:NAME"   200, text/plain: the value of NAME, or "<unset>"
 *   "noheader"   prints a body with no header block (the call must fail)
 *   "split"      a header value holding CR LF (the call must fail)
 *   other        Status: 201 Created, Location: /items/ID (from PATH_INFO
 *                /items/ID) or the path, two Set-Cookie, text/plain: the
 *                method, Authorization, CONTENT_TYPE, X-Multi and the body
 *                joined with "|"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *name) {
	const char *v = getenv(name);
	return v ? v : "";
}

int main(void) {
	static char body[65536];
	size_t n = fread(body, 1, sizeof body - 1, stdin);
	body[n] = 0;
	if (strncmp(body, "bad", 3) == 0) {
		printf("Status: 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{\"error\":\"bad input\"}");
		return 0;
	}
	if (strncmp(body, "env:", 4) == 0) {
		const char *v = getenv(body + 4);
		printf("Content-Type: text/plain\n\n%s", v ? v : "<unset>");
		return 0;
	}
	if (strcmp(body, "noheader") == 0) {
		printf("just a body\n");
		return 0;
	}
	if (strcmp(body, "split") == 0) {
		printf("Content-Type: text/plain\nX-Evil: a\r\rSet-Cookie: pwned=1\n\nbody");
		return 0;
	}
	printf("Status: 201 Created\n");
	printf("Location: %s%s\n", env("SCRIPT_NAME"), env("PATH_INFO"));
	printf("Set-Cookie: a=1\nSet-Cookie: b=2\n");
	printf("Content-Length: 999\n"); /* dropped: the daemon frames the body */
	printf("Content-Type: text/plain\n\n");
	printf("%s|%s|%s|%s|%s", env("REQUEST_METHOD"), env("HTTP_AUTHORIZATION"), env("CONTENT_TYPE"), env("HTTP_X_MULTI"), body);
	return 0;
}
