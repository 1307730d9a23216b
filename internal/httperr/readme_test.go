package httperr

import (
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/testutil"
)

// statusNames maps net/http's status constants (StatusBadGateway) to
// their values.
func statusNames() map[string]int {
	names := map[string]int{}
	clean := strings.NewReplacer(" ", "", "-", "", "'", "")
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			names["http.Status"+clean.Replace(text)] = code
		}
	}
	names["http.StatusRequestEntityTooLarge"] = http.StatusRequestEntityTooLarge
	return names
}

// The README's table of error codes is what the code answers: every code
// the sources raise is in Statuses with the status they raise it with,
// and the README lists exactly Statuses.
func TestREADMEListsEveryCode(t *testing.T) {
	root := testutil.Root(t)
	names := statusNames()
	status := func(expr string) int {
		if n, err := strconv.Atoi(expr); err == nil {
			return n
		}
		if n, ok := names[expr]; ok {
			return n
		}
		t.Fatalf("status %s: not a net/http status constant", expr)
		return 0
	}
	raised := []struct {
		re          *regexp.Regexp
		fixedStatus int // for patterns without a status
	}{
		{re: regexp.MustCompile(`\bNew\((http\.Status\w+|\d+), "(\w+)"`)},
		{re: regexp.MustCompile(`\{[\w.]+, (http\.Status\w+|\d+), "(\w+)"\}`)},
		{re: regexp.MustCompile(`Status: (http\.Status\w+|\d+), Code: "(\w+)"`)},
		{re: regexp.MustCompile(`readBody\(r, [^,]+, "[^"]*", "(\w+)"`), fixedStatus: http.StatusRequestEntityTooLarge},
		{re: regexp.MustCompile(`Body\{Error: [^}]*Code: "(\w+)"`)},
		{re: regexp.MustCompile(`\\?"code\\?": \\?"(\w+)`)},
	}
	found := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "build" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, r := range raised {
			for _, m := range r.re.FindAllStringSubmatch(string(src), -1) {
				code, want := m[len(m)-1], r.fixedStatus
				if len(m) == 3 {
					want = status(m[1])
				}
				got, ok := Statuses[code]
				if !ok {
					t.Errorf("%s raises code %q, which Statuses lacks", path, code)
				} else if want != 0 && got != want {
					t.Errorf("%s raises code %q with status %d; Statuses says %d", path, code, want, got)
				}
				found++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 30 {
		t.Fatalf("found only %d codes raised in the sources: the patterns no longer match the code", found)
	}
	for _, c := range codes {
		if Statuses[c.code] != c.status {
			t.Errorf("code %q: status %d in the table of errors, %d in Statuses", c.code, c.status, Statuses[c.code])
		}
	}

	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| ((?:`\\w+`(?:, )?)+) \\| (\\d{3}) \\|")
	listed := map[string]int{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		n, _ := strconv.Atoi(m[2])
		for _, code := range regexp.MustCompile("`(\\w+)`").FindAllStringSubmatch(m[1], -1) {
			listed[code[1]] = n
		}
	}
	for code, n := range Statuses {
		if listed[code] != n {
			t.Errorf("README lists code %q with status %d, want %d", code, listed[code], n)
		}
	}
	for code := range listed {
		if _, ok := Statuses[code]; !ok {
			t.Errorf("README lists code %q, which the API never answers", code)
		}
	}
}
