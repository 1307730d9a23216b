/*
 * The handler's native test (make test): compiled with -DSLUICE_NATIVE
 * by the machine's C compiler, the sluice imports are stubs that record
 * what the handler did, and sluice_test_call runs it. It includes
 * handler.c, so that the two are one translation unit.
 */
#include "handler.c"

static int failures;

static void expect(int ok, const char *what, const char *got) {
	if (!ok) {
		fprintf(stderr, "FAIL: %s (got \"%s\")\n", what, got);
		failures++;
	}
}

int main(void) {
	struct sluice_result r = sluice_test_call("Ada", 3);
{{- if .HTTP}}
	expect(!r.failed, "a body: the call succeeds", r.error);
	expect(r.status == 0 || r.status == 200, "a body: status 200", "");
	expect(strcmp(r.output, "hello, Ada") == 0, "a body: the output is \"hello, Ada\"", r.output);
	expect(strcmp(r.headers, "Content-Type: text/plain; charset=utf-8\n") == 0, "a body: the Content-Type", r.headers);
	expect(strcmp(r.logs, "INFO greeting 3 bytes\n") == 0, "a body: the log line", r.logs);

	r = sluice_test_call("", 0);
	expect(!r.failed, "an empty body: the call succeeds", r.error);
	expect(r.status == 400, "an empty body: status 400", "");
	expect(strcmp(r.output, "empty input") == 0, "an empty body: the output is \"empty input\"", r.output);
{{- else}}
	expect(!r.failed, "the call succeeds", r.error);
	expect(strcmp(r.output, "hello, Ada") == 0, "the output is \"hello, Ada\"", r.output);
	expect(strcmp(r.logs, "INFO greeting 3 bytes\n") == 0, "the log line", r.logs);

	r = sluice_test_call("", 0);
	expect(r.failed, "an empty input fails", r.output);
	expect(strcmp(r.error, "empty input") == 0, "the message", r.error);
	expect(strcmp(r.code, "empty_input") == 0, "the code", r.code);
{{- end}}
	if (failures) return 1;
	printf("ok\n");
	return 0;
}
