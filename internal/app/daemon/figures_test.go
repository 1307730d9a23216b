package daemon

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/app/metrics"
	"github.com/sluicehq/sluice/testutil"
)

// A daemon's figures show its functions' calls and errors over the
// window once the sampler has read them, and the stream sends them once
// at once and again after each sample.
func TestFigures(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "echo", "echo-wat", nil)
	deploy(t, c, "go", "goguest", nil)

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.Addr()+"/v1/figures/stream?window=1m", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan metrics.Snapshot, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var s metrics.Snapshot
				if json.Unmarshal([]byte(data), &s) == nil {
					events <- s
				}
			}
		}
	}()
	first := <-events
	if first.Daemon == "" || first.WindowSeconds != 60 {
		t.Fatalf("first event: %+v", first)
	}
	for i := 0; i < 4; i++ {
		invoke(t, c, "echo", "hi")
	}
	if _, err := c.Invoke(ctx, "go", []byte("error")); err == nil {
		t.Fatal("the failing call succeeded")
	}
	var got metrics.Snapshot
	testutil.Eventually(t, 3*metrics.SamplePeriod, "the stream to send the calls", func() bool {
		select {
		case got = <-events:
		case <-time.After(time.Second):
		}
		// a sample taken between the echo calls and the go call may
		// already be queued: wait for one that has both
		return got.Functions["echo"].CallsPerSecond > 0 && got.Functions["go"].CallsPerSecond > 0
	})
	if echo := got.Functions["echo"]; echo.CallsPerSecond != 4.0/60 || echo.ErrorsPerSecond != 0 || echo.P50ms <= 0 || echo.P99ms < echo.P50ms {
		t.Errorf("echo: %+v, want 4 calls in 60 s", echo)
	}
	if g := got.Functions["go"]; g.CallsPerSecond != 1.0/60 || g.ErrorsPerSecond != 1.0/60 {
		t.Errorf("go: %+v, want 1 failing call in 60 s", g)
	}
	snap, err := c.Figures(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Functions["echo"].CallsPerSecond != 4.0/60 || snap.Daemon != got.Daemon {
		t.Errorf("GET /v1/figures: %+v", snap)
	}
	for _, q := range []string{"window=1h", "window=soon", "scope=cluster", "series=maybe"} {
		r, err := http.Get("http://" + d.Addr() + "/v1/figures?" + q)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 400 {
			t.Errorf("?%s: %d, want 400", q, r.StatusCode)
		}
	}
	// Draining the daemon ends the stream.
	d.api.Drain()
	testutil.Eventually(t, 10*time.Second, "the stream to end", func() bool {
		select {
		case _, open := <-events:
			return !open
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
}
