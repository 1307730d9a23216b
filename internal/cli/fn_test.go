package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host"
)

// fn logs shows what made each record's call, when the record says.
func TestFnLogsShowsOrigin(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6e6, time.Local)
	recs := []host.Record{
		{Time: at, Function: "f", Version: 2, Invocation: "c-1", Stream: "stderr", Message: "greeting Ada"},
		{Time: at, Function: "f", Version: 2, Invocation: "c-2", Stream: "sluice", Message: `function "f" trapped`,
			Origin: map[string]string{"request_id": "abc-123"}},
		{Time: at, Function: "f", Version: 2, Invocation: "c-3", Stream: "log", Message: "hi",
			Origin: map[string]string{"trigger": "q", "sequence": "42"}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/functions/f/logs" {
			http.NotFound(w, r)
			return
		}
		enc := json.NewEncoder(w)
		for _, rec := range recs {
			_ = enc.Encode(rec)
		}
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"fn", "logs", "f", "--server", srv.URL}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := strings.Join([]string{
		"2025-01-02T03:04:05.006 v2 c-1 stderr greeting Ada",
		`2025-01-02T03:04:05.006 v2 c-2 request_id=abc-123 sluice function "f" trapped`,
		"2025-01-02T03:04:05.006 v2 c-3 sequence=42 trigger=q log    hi",
	}, "\n") + "\n"
	if stdout.String() != want {
		t.Fatalf("fn logs:\n%s\nwant:\n%s", stdout.String(), want)
	}
}
