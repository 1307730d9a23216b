package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/egress"
)

// TestHTTPSecretThroughDaemon: a workflow's header {secret: NAME} is
// sent with the daemon's --http-secret file; neither the API's events
// nor its status of the invocation hold it.
func TestHTTPSecretThroughDaemon(t *testing.T) {
	t.Parallel()
	const value = "sk_live_daemon_9f2c"
	var got atomic.Value
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("X-Api-Key"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok": true}`)
	}))
	t.Cleanup(s.Close)
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.AllowHTTP = []string{strings.TrimPrefix(s.URL, "http://")}
	o.HTTPSecrets = []egress.Secret{{Name: "API_KEY", File: file}}
	_, c := start(t, o)
	src := `
apiVersion: sluice/v1
kind: Workflow
name: keyed
output: ${ tasks.call.output.body }
tasks:
  call:
    run: http
    inputs:
      url: ${ input.url }
      headers: { X-Api-Key: { secret: API_KEY } }
`
	if _, _, err := c.CreateWorkflow(ctx, "keyed", []byte(src)); err != nil {
		t.Fatal(err)
	}
	inv, err := c.InvokeWorkflow(ctx, "keyed", []byte(fmt.Sprintf(`{"url": %q}`, s.URL)), client.InvokeOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Status != "succeeded" || got.Load() != value {
		t.Fatalf("invocation %s %s, the server got X-Api-Key %q", inv.Status, inv.Error, got.Load())
	}
	evs, err := c.Events(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	status, err := c.Invocation(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := json.Marshal(evs)
	b2, _ := json.Marshal(status)
	if strings.Contains(string(b1)+string(b2), "sk_live") {
		t.Fatalf("the API shows the secret: %s %s", b1, b2)
	}
	if !strings.Contains(string(b1), `"secrets":{"X-Api-Key":"API_KEY"}`) {
		t.Fatalf("the events do not name the secret: %s", b1)
	}
}

// TestHTTPSecretOption: a secret's file that cannot be read stops the
// start, naming the flag.
func TestHTTPSecretOption(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	missing := filepath.Join(t.TempDir(), "none")
	o.HTTPSecrets = []egress.Secret{{Name: "API_KEY", File: missing}}
	_, err := Start(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "--http-secret API_KEY=@"+missing) {
		t.Fatalf("start: %v", err)
	}
}
