//go:build migrate_e2e

// The end-to-end test of a migration: a JetStream daemon started on a
// migrated data dir runs what the NATS Streaming daemon left. It needs
// `sluice daemon --broker jetstream` (make build) and runs with
// go test -tags migrate_e2e ./internal/app/migrate (make unit-migrate, part
// of make test).

package migrate

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/jslog"
	"github.com/sluicehq/sluice/testutil"
)

func TestJetStreamDaemonRunsWhatWasMigrated(t *testing.T) {
	ctx := context.Background()
	s := sharedSource(t)
	data := t.TempDir()
	srv, err := jslog.StartEmbedded(jslog.EmbeddedOptions{Dir: data, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	target, err := jslog.Connect(ctx, jslog.Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, Options{Source: s.log, Target: target}); err != nil {
		t.Fatal(err)
	}
	target.Close()
	srv.Shutdown()

	bin := filepath.Join(testutil.Root(t), "bin", "sluice")
	listen := testutil.FreeAddr(t)
	cmd := exec.Command(bin, "daemon", "--broker", "jetstream", "--data", data, "--listen", listen, "--nats-listen", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s (make build): %v", bin, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := client.New("http://"+listen, "")
	testutil.Eventually(t, 60*time.Second, "the JetStream daemon to serve", func() bool {
		_, err := c.Functions(ctx)
		return err == nil
	})
	fns, err := c.Functions(ctx)
	if err != nil || len(fns) != 3 {
		t.Fatalf("functions on the JetStream daemon: %v %v", fns, err)
	}
	out, err := c.Invoke(ctx, "shout", []byte("hi"))
	if err != nil || string(out) != "hi" {
		t.Fatalf("invoke shout: %q %v", out, err)
	}
	for _, id := range s.sleeping {
		inv, err := c.Invocation(ctx, id)
		if err != nil || inv.Status != engine.StatusRunning {
			t.Fatalf("sleeping invocation %s on the JetStream daemon: %+v %v", id, inv, err)
		}
	}
	for _, id := range s.finished {
		if _, err := c.Invocation(ctx, id); err == nil {
			t.Fatalf("finished invocation %s was migrated", id)
		}
	}
	// the daemon took the sleepers over (another node id): cancel one and
	// see it end, which only its owner does
	if _, err := c.CancelInvocation(ctx, s.sleeping[0]); err != nil {
		t.Fatalf("cancel %s on the JetStream daemon: %v", s.sleeping[0], err)
	}
	testutil.Eventually(t, 30*time.Second, "the canceled sleeper to end", func() bool {
		got, err := c.Invocation(ctx, s.sleeping[0])
		return err == nil && got.Status == engine.StatusCanceled
	})
	inv, err := c.InvokeWorkflow(ctx, "quick", []byte(`5`), client.InvokeOptions{Wait: true})
	if err != nil || inv.Status != engine.StatusSucceeded {
		t.Fatalf("a new invocation of quick: %+v %v", inv, err)
	}
}
