package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	stand "github.com/nats-io/nats-streaming-server/server"

	"github.com/sluicehq/sluice/testutil"
)

// fillStore stores n messages on each channel in a file store in dir
// through a server of its own, then stops it.
func fillStore(t *testing.T, dir string, n int, channels ...string) {
	t.Helper()
	e, err := StartEmbedded(EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	publish(t, e.URL(), n, channels...)
}

func publish(t *testing.T, url string, n int, channels ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Connect(ctx, Options{URL: url, ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, ch := range channels {
		for i := 0; i < n; i++ {
			if err := c.Publish(ctx, ch, []byte(fmt.Sprintf(`{"n":%d,"pad":"%060d"}`, i, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// poke overwrites bytes of a file.
func poke(t *testing.T, path string, at int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedStoreSaysWhatToDo: each kind of damage to the embedded
// server's file store is an error that names the damaged part, says what
// to do (restore, or move aside) and what that loses.
func TestDamagedStoreSaysWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(store string)
		channel string
		says    []string
	}{
		{"server file", func(store string) { poke(t, filepath.Join(store, "server.dat"), 20, []byte("garbage garbage garbage")) },
			"", []string{"server.dat aside", "nothing stored is lost"}},
		{"client file", func(store string) { os.Truncate(filepath.Join(store, "clients.dat"), 10) },
			"", []string{"clients.dat aside", "nothing stored is lost"}},
		{"message file header", func(store string) {
			poke(t, filepath.Join(store, "sluice.catalog", "msgs.1.dat"), 0, []byte{0xde, 0xad, 0xbe, 0xef})
		}, "sluice.catalog", []string{"restore", "from a backup", "sluice.catalog aside", "every function, trigger and workflow definition"}},
		{"subscription file", func(store string) {
			poke(t, filepath.Join(store, "orders", "subs.dat"), 4, []byte{1, 2, 3, 4, 5, 6, 7, 8})
		},
			"orders", []string{"subs.dat aside", "process every message of orders again"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fillStore(t, dir, 5, "sluice.catalog", "orders")
			// a durable subscription, so that the channel has a subs.dat record
			e, err := StartEmbedded(EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: "test"})
			if err != nil {
				t.Fatal(err)
			}
			c, err := Connect(context.Background(), Options{URL: e.URL(), ClusterID: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Subscribe("orders", SubOptions{Durable: "q", Queue: "q", Start: StartAll}, func(*Msg) {}); err != nil {
				t.Fatal(err)
			}
			c.Close()
			e.Shutdown()

			store := filepath.Join(dir, "nats")
			tc.damage(store)
			_, err = StartEmbedded(EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: "test"})
			var se *StoreError
			if !errors.As(err, &se) {
				t.Fatalf("start on a damaged store: %v, want a *StoreError", err)
			}
			if se.Dir != store || se.Channel != tc.channel {
				t.Fatalf("StoreError dir %q channel %q, want %q %q", se.Dir, se.Channel, store, tc.channel)
			}
			for _, s := range append(tc.says, store, "Stop every daemon") {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

// TestTwoServersOnOneStore: two servers writing into one store at once
// leave messages out of order, which made the next server panic on its
// own goroutine at the first subscription by time. The next start is
// refused instead, naming the channel.
func TestTwoServersOnOneStore(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir, 3, "sluice.wf.nodes", "orders")
	a, err := StartEmbedded(EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := StartEmbedded(EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, a.URL(), 5, "sluice.wf.nodes")
	publish(t, b.URL(), 5, "sluice.wf.nodes")
	a.Shutdown()
	b.Shutdown()

	for i := 0; i < 2; i++ { // and again: the first start must not have hidden it
		_, err = StartEmbedded(EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: "test"})
		var se *StoreError
		if !errors.As(err, &se) || se.Channel != "sluice.wf.nodes" || !strings.Contains(err.Error(), "two servers wrote into this store at once") {
			t.Fatalf("start %d after two servers shared the store: %v, want a StoreError on sluice.wf.nodes", i+1, err)
		}
	}
	// Moved aside as the error says, the rest of the store is whole.
	if err := os.Rename(filepath.Join(dir, "nats", "sluice.wf.nodes"), filepath.Join(t.TempDir(), "aside")); err != nil {
		t.Fatal(err)
	}
	e, err := StartEmbedded(EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatalf("start with the damaged channel moved aside: %v", err)
	}
	defer e.Shutdown()
	c, err := Connect(context.Background(), Options{URL: e.URL(), ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan struct{}, 10)
	if _, err := c.Subscribe("orders", SubOptions{Start: StartSince(time.Hour)}, func(*Msg) { got <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		<-got
	}
}

// TestDamagedMessageIsReported: a message the server cannot read back is
// reported, once per channel, with what to do.
func TestDamagedMessageIsReported(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir, 10, "orders")
	dat := filepath.Join(dir, "nats", "orders", "msgs.1.dat")
	fi, err := os.Stat(dat)
	if err != nil {
		t.Fatal(err)
	}
	poke(t, dat, fi.Size()/2, []byte("garbage garbage"))
	reports := make(chan *StoreError, 10)
	e, err := StartEmbedded(EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: "test", OnDamage: func(se *StoreError) { reports <- se }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	c, err := Connect(context.Background(), Options{URL: e.URL(), ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		sub, err := c.Subscribe("orders", SubOptions{Start: StartAll}, func(*Msg) {})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
	}
	se := <-reports
	if se.Channel != "orders" || !strings.Contains(se.Error(), "cannot be read") || !strings.Contains(se.Error(), "messages of topic orders") {
		t.Fatalf("report %v", se)
	}
	testutil.Eventually(t, 5*time.Second, "the report in Damage()", func() bool { return len(e.Damage()) == 1 })
	select {
	case se := <-reports:
		t.Fatalf("a second report for one channel: %v", se)
	default:
	}
}

func TestStartPanicIsAnError(t *testing.T) {
	_, err := runServer(func() (*stand.StanServer, error) { panic("index out of range") })
	if err == nil || !strings.Contains(err.Error(), "failed while starting: index out of range") {
		t.Fatalf("panic while starting: %v", err)
	}
	se := storeError("/data/nats", err)
	if se == nil || !strings.Contains(se.Error(), "restore /data/nats from a backup") {
		t.Fatalf("a panic while the file store starts: %v", se)
	}
}
