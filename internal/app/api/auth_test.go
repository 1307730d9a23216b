package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Probes and load balancers cannot send the token (a Kubernetes httpGet
// probe has no way to read a Secret), so /healthz and /readyz answer
// without it; every other route wants it.
func TestAuthSparesProbes(t *testing.T) {
	s := New("s3cret", slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/healthz", "", http.StatusOK},
		{"/readyz", "", http.StatusServiceUnavailable}, // answered: the daemon is starting
		{"/readyz", "s3cret", http.StatusServiceUnavailable},
		{"/v1/functions", "", http.StatusUnauthorized},
		{"/v1/functions", "wrong", http.StatusUnauthorized},
		{"/v1/functions", "s3cret", http.StatusServiceUnavailable},
		{"/metrics", "", http.StatusUnauthorized},
		{"/fn/anything", "", http.StatusUnauthorized},
		{"/readyz/", "", http.StatusUnauthorized},
		{"/healthz/x", "", http.StatusUnauthorized},
	} {
		r := httptest.NewRequest(http.MethodGet, tc.path, nil)
		if tc.token != "" {
			r.Header.Set("Authorization", "Bearer "+tc.token)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != tc.status {
			t.Errorf("GET %s with token %q: %d, want %d: %s", tc.path, tc.token, w.Code, tc.status, w.Body)
		}
	}
}
