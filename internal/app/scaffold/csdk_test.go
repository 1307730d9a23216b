package scaffold

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The C header's native stubs (-DSLUICE_NATIVE), beyond what the C
// template's own test uses: metadata (sluice_test_meta, read back through
// sluice_meta and sluice_request_header), a status, several values of one
// header, and a failure's code cleared by the next call. The handler is
// examples/http-c, compiled natively by the machine's C compiler.
func TestCHeaderNativeStubs(t *testing.T) {
	repo := filepath.Join("..", "..", "..")
	example, err := filepath.Abs(filepath.Join(repo, "examples", "http-c", "http.c"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	test := `#include "` + example + `"
static int check(int ok, const char *what, const char *got) {
	if (!ok) fprintf(stderr, "FAIL %s: %s\n", what, got);
	return !ok;
}
int main(void) {
	int bad = 0;
	sluice_test_meta("http.param.id", "7");
	sluice_test_meta("http.header.authorization", "Bearer a");
	sluice_test_meta("http.header.authorization", "Bearer b"); /* set again: the last wins */
	sluice_test_meta("http.header.x-multi", "1, 2");
	struct sluice_result r = sluice_test_call("x", 1);
	bad |= check(!r.failed && r.status == 201, "status", r.error);
	bad |= check(strcmp(r.output, "Bearer b||1, 2") == 0, "output", r.output);
	bad |= check(strcmp(r.headers, "Location: /items/7\nSet-Cookie: a=1\nSet-Cookie: b=2\nContent-Type: text/plain\n") == 0, "headers", r.headers);
	sluice_test_meta(NULL, NULL);
	r = sluice_test_call("bad", 3);
	bad |= check(r.status == 400 && strcmp(r.output, "{\"error\":\"bad input\"}") == 0, "bad input", r.output);
	bad |= check(strcmp(r.headers, "Content-Type: application/json\n") == 0, "headers of bad input", r.headers);
	sluice_error_code("left_over", 9);
	r = sluice_test_call("x", 1);
	bad |= check(strcmp(r.code, "") == 0 && !r.failed, "no code on success", r.code);
	bad |= check(strcmp(r.output, "||") == 0, "cleared metadata", r.output);
	return bad;
}
`
	src := filepath.Join(dir, "test.c")
	if err := os.WriteFile(src, []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	bin := filepath.Join(dir, "test")
	header, _ := filepath.Abs(filepath.Join(repo, "guests", "c"))
	if out, err := exec.Command(cc, "-DSLUICE_NATIVE", "-Wall", "-Wextra", "-Werror", "-I"+header, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cc, err, out)
	}
	if out, err := exec.Command(bin).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("the native test: %v\n%s", err, out)
	}
}
