package registry

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/natslog"
	"github.com/sluicehq/sluice/testutil"
)

// TestModuleSizeLimits checks that the catalog refuses no module the host
// would take, and stores none it would refuse.
func TestModuleSizeLimits(t *testing.T) {
	if catalog.MaxModuleSize != host.MaxModuleSize {
		t.Fatalf("catalog.MaxModuleSize %d, host.MaxModuleSize %d", catalog.MaxModuleSize, host.MaxModuleSize)
	}
}

// testTimeout bounds what the tests wait for.
const testTimeout = 30 * time.Second

// rig is a catalog on an embedded NATS Streaming server, a host and a
// registry following the catalog.
type rig struct {
	cat  *catalog.Catalog
	host *host.Host
	reg  *Registry
}

func newRig(t testing.TB, cfg host.Config) *rig {
	t.Helper()
	ctx := context.Background()
	e, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	conn, err := natslog.Connect(ctx, broker.Options{URL: e.URL(), ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cat, err := catalog.Open(ctx, conn, catalog.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	h, err := host.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	r := &rig{cat: cat, host: h}
	r.reg = New(h, cat, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { r.reg.Close(context.Background()) })
	return r
}

func (r *rig) deploy(t testing.TB, name, guest string, cfg catalog.Config) {
	t.Helper()
	if _, err := r.cat.Deploy(context.Background(), catalog.Function{Name: name, Config: cfg}, testutil.Wasm(t, guest)); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) invoke(t *testing.T, name, in string) (string, error) {
	t.Helper()
	res, _, err := r.reg.Invoke(context.Background(), name, host.Call{Input: []byte(in)})
	return string(res.Output), err
}

// TestLazyLoad checks that nothing is loaded until it is called: a
// registry following a catalog of functions holds no compiled code; a call
// loads its function, and only it; a redeploy drops the loaded version,
// and the next call loads the new one.
func TestLazyLoad(t *testing.T) {
	r := newRig(t, host.NewConfig())
	for _, name := range []string{"a", "b", "c"} {
		r.deploy(t, name, "echo-wat", catalog.Config{ABI: "reactor"})
	}
	r.deploy(t, "go", "wordcount-c", catalog.Config{ABI: "reactor"})
	testutil.Eventually(t, testTimeout, "the registry to follow the deploys", func() bool { d, _ := r.reg.Counts(); return d == 4 })
	if _, loaded := r.reg.Counts(); loaded != 0 || r.host.Stats().Modules != 0 {
		t.Fatalf("loaded before any call: %d functions, %+v", loaded, r.host.Stats())
	}
	if out, err := r.invoke(t, "go", "one"); err != nil || out != `{"bytes":3,"words":1,"lines":1}` {
		t.Fatalf("go: %q, %v", out, err)
	}
	if _, loaded := r.reg.Counts(); loaded != 1 || r.host.Stats().Modules != 1 {
		t.Fatalf("after calling one: %d functions loaded, %+v", loaded, r.host.Stats())
	}
	if _, _, ok := r.reg.Loaded("a"); ok {
		t.Fatal("a function never called is loaded")
	}

	r.deploy(t, "go", "wordcount-c", catalog.Config{ABI: "reactor", Timeout: catalog.Duration(5e9)})
	testutil.Eventually(t, testTimeout, "the new version to replace the old", func() bool {
		_, fn, ok := r.reg.Loaded("go")
		return !ok && fn.Version == 2
	})
	res, fn, err := r.reg.Invoke(context.Background(), "go", host.Call{Input: []byte("v2")})
	if err != nil || string(res.Output) != `{"bytes":2,"words":1,"lines":1}` || fn.Version != 2 {
		t.Fatalf("after the redeploy: %q version %v, %v", res.Output, fn, err)
	}
}

// TestLoadErrors checks that a version that cannot run here fails every
// call with its reason, and which errors are for good.
func TestLoadErrors(t *testing.T) {
	r := newRig(t, host.NewConfig())
	r.deploy(t, "big", "bigmem", catalog.Config{ABI: "reactor", Memory: 64 << 10})
	testutil.Eventually(t, testTimeout, "the deploy", func() bool { d, _ := r.reg.Counts(); return d == 1 })
	for i := 0; i < 2; i++ {
		if _, err := r.invoke(t, "big", ""); !errors.Is(err, host.ErrMemoryTooSmall) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if !permanent(host.ErrMemoryTooSmall) || permanent(host.ErrMemoryBudget) || permanent(host.ErrOutOfFiles) {
		t.Fatal("permanent misclassifies")
	}
}
