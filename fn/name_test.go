package fn

import (
	"regexp"
	"testing"
)

// The rule as a regular expression, to check ValidName against.
var nameRule = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "hello-world": true, "9lives": true, "a-": true,
		"": false, "-a": false, "Hello": false, "a_b": false, "a.b": false, "é": false,
		"a23456789012345678901234567890123456789012345678901234567890123":  true,
		"a234567890123456789012345678901234567890123456789012345678901234": false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"", "a", "-", "a-b", "A", "a\x00", "ab-cd-9", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := ValidName(name), nameRule.MatchString(name); got != want {
			t.Fatalf("ValidName(%q) = %v, the rule says %v", name, got, want)
		}
	})
}
