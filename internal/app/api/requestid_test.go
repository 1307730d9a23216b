package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/logctx"
)

// Every response carries the request's id, and so does the request's log
// line: the client's id if it is fit for a log line, a new one otherwise.
func TestRequestID(t *testing.T) {
	for _, tc := range []struct {
		name, sent string
		kept       bool
	}{
		{"kept", "abc-123", true},
		{"every allowed character", "AZaz09._:-", true},
		{"64 characters", strings.Repeat("x", 64), true},
		{"none", "", false},
		{"65 characters", strings.Repeat("x", 65), false},
		{"a space", "abc 123", false},
		{"a quote", `abc"123`, false},
		{"an equals sign", "a=b", false},
		{"not ASCII", "abc-é", false},
		{"a control character", "abc\x01", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(logctx.NewHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
			s := New("s3cret", log) // unauthorized, and still identified
			r := httptest.NewRequest(http.MethodGet, "/v1/functions", nil)
			if tc.sent != "" {
				r.Header.Set(RequestIDHeader, tc.sent)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			got := w.Header().Get(RequestIDHeader)
			switch {
			case tc.kept && got != tc.sent:
				t.Fatalf("response id %q, want the request's %q", got, tc.sent)
			case !tc.kept && (got == tc.sent || len(got) != 22): // a nuid
				t.Fatalf("response id %q, want a new one", got)
			}
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("log: %v: %s", err, buf.Bytes())
			}
			if line["msg"] != "request" || line["request_id"] != got || line["status"] != float64(http.StatusUnauthorized) {
				t.Fatalf("request line %s does not carry request_id %q", buf.Bytes(), got)
			}
		})
	}
}
