package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestScheduleNext(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04:05", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		spec, from string
		want       []string
	}{
		{"*/5 * * * *", "2026-11-23 10:03:00", []string{"2026-11-23 10:05:00", "2026-11-23 10:10:00"}},
		{"0 * * * *", "2026-11-23 10:00:00", []string{"2026-11-23 11:00:00", "2026-11-23 12:00:00"}},
		{"30 9 * * mon-fri", "2026-11-27 10:00:00", []string{"2026-11-30 09:30:00", "2026-12-01 09:30:00"}}, // Fri → Mon
		{"0 0 1 jan *", "2026-11-23 00:00:00", []string{"2027-01-01 00:00:00", "2028-01-01 00:00:00"}},
		{"0 0 29 2 *", "2026-01-01 00:00:00", []string{"2028-02-29 00:00:00"}},
		{"0 12 13 * 5", "2026-11-01 00:00:00", []string{"2026-11-06 12:00:00", "2026-11-13 12:00:00", "2026-11-20 12:00:00"}}, // 13th or Friday
		{"15,45 8-9 * * *", "2026-11-23 08:20:00", []string{"2026-11-23 08:45:00", "2026-11-23 09:15:00", "2026-11-23 09:45:00", "2026-11-24 08:15:00"}},
		{"0 0 * * 7", "2026-11-23 00:00:00", []string{"2026-11-29 00:00:00"}}, // 7 is Sunday
		{"5/20 * * * *", "2026-11-23 10:00:00", []string{"2026-11-23 10:05:00", "2026-11-23 10:25:00", "2026-11-23 10:45:00", "2026-11-23 11:05:00"}},
		{"@daily", "2026-11-23 10:00:00", []string{"2026-11-24 00:00:00"}},
		{"@hourly", "2026-11-23 10:59:59", []string{"2026-11-23 11:00:00"}},
		{"@every 10s", "2026-11-23 10:00:03", []string{"2026-11-23 10:00:10", "2026-11-23 10:00:20"}},
		{"@every 1m", "2026-11-23 10:00:00", []string{"2026-11-23 10:01:00"}},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			s, err := Parse(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			cur := at(tc.from)
			for _, w := range tc.want {
				cur = s.Next(cur)
				if !cur.Equal(at(w)) {
					t.Fatalf("next = %s, want %s", cur.Format(time.DateTime), w)
				}
			}
		})
	}
}

func TestScheduleNever(t *testing.T) {
	s, err := Parse("0 0 30 2 *")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Next(time.Now()); !got.IsZero() {
		t.Fatalf("Feb 30 fires at %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for spec, says := range map[string]string{
		"* * * *":          "want 5 fields",
		"61 * * * *":       "minute field",
		"* 24 * * *":       "out of range 0-23",
		"* * 0 * *":        "day of month",
		"* * * 13 *":       "month",
		"* * * * 8":        "day of week",
		"*/0 * * * *":      "bad step",
		"5-1 * * * *":      "backwards",
		"x * * * *":        "not a number",
		"@every":           "@every wants a duration",
		"@every 10":        "@every wants a duration",
		"@every 100ms":     "shortest interval",
		"@fortnightly":     "unknown macro",
		"* * * smarch *":   "month",
		"* * * * funday":   "day of week",
		"1,,2 * * * *":     "not a number",
		"@every -5s":       "shortest interval",
		"":                 "want 5 fields",
		"* * * * * *":      "want 5 fields",
		"*/5 * * * * ":     "",
		" @every 2s ":      "",
		"0 0 1-31/2 * sun": "",
	} {
		_, err := Parse(spec)
		if says == "" {
			if err != nil {
				t.Errorf("Parse(%q): %v", spec, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", spec, err, says)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"*/5 * * * *", "0 0 1 jan *", "@every 10s", "1-5,7 0/2 * * mon-fri"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse(spec)
		if err != nil {
			return
		}
		from := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
		next := s.Next(from)
		if !next.IsZero() && !next.After(from) {
			t.Fatalf("%q: next %s is not after %s", spec, next, from)
		}
	})
}
