package jslog

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// cutProxy forwards connections to target; the first client connection
// is cut as soon as the client sends something containing trigger, and
// the connections after it are forwarded whole.
func cutProxy(t *testing.T, target, trigger string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	first := true
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			cut := first
			first = false
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(c, s); c.Close() }()
			go func() {
				defer wg.Done()
				defer s.Close()
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					k, err := c.Read(buf)
					if k > 0 {
						if cut && bytes.Contains(buf[:k], []byte(trigger)) {
							return
						}
						if _, err := s.Write(buf[:k]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestConnectSurvivesReconnectDuringSetup: a link lost and re-established
// while Connect creates the layout leaves a working Log (the reconnect
// handler had already marked it up: Connect must not do it twice).
func TestConnectSurvivesReconnectDuringSetup(t *testing.T) {
	e := startServer(t, t.TempDir(), "127.0.0.1:0")
	addr := cutProxy(t, e.Addr(), "$JS.API.STREAM.")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Connect(ctx, Options{URL: strings.Replace(e.URL(), e.Addr(), addr, 1), Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	publish(t, l, "orders", "after the reconnect")
	if !l.Connected() || l.UpSince().IsZero() {
		t.Fatalf("Connected() = %v, UpSince() = %s after Connect", l.Connected(), l.UpSince())
	}
}
