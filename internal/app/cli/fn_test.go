package cli

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/host"
)

// fn logs shows what made each record's call, when the record says.
func TestLogLineShowsOrigin(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6e6, time.Local)
	for _, tc := range []struct {
		rec  host.Record
		want string
	}{
		{host.Record{Time: at, Function: "f", Version: 2, Invocation: "c-1", Stream: "stderr", Message: "greeting Ada"},
			"2025-01-02T03:04:05.006 v2 c-1 stderr greeting Ada"},
		{host.Record{Time: at, Function: "f", Version: 2, Invocation: "c-2", Stream: "sluice", Message: `function "f" trapped`,
			Origin: map[string]string{"request_id": "abc-123"}},
			`2025-01-02T03:04:05.006 v2 c-2 request_id=abc-123 sluice function "f" trapped`},
		{host.Record{Time: at, Function: "f", Version: 2, Invocation: "c-3", Stream: "log", Message: "hi",
			Origin: map[string]string{"trigger": "q", "sequence": "42"}},
			"2025-01-02T03:04:05.006 v2 c-3 sequence=42 trigger=q log    hi"},
	} {
		if got := logLine(tc.rec); got != tc.want {
			t.Errorf("log line:\n%s\nwant:\n%s", got, tc.want)
		}
	}
}
