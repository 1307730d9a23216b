package natslog

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
)

// proxy forwards connections to a server. When a client sends trigger
// (if set), every connection is cut and new ones are refused until
// release; cut drops them once.
type proxy struct {
	addr, target, trigger string

	mu    sync.Mutex
	conns []net.Conn
	held  bool
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target, trigger string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), target: target, trigger: trigger}
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.serve(c)
		}
	}()
	return p
}

func (p *proxy) serve(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held {
		c.Close()
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.conns = append(p.conns, c, s)
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		defer c.Close()
		buf := make([]byte, 64<<10)
		for {
			k, err := s.Read(buf)
			if k > 0 {
				if _, err := c.Write(buf[:k]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer p.wg.Done()
		defer s.Close()
		defer c.Close()
		buf := make([]byte, 64<<10)
		for {
			k, err := c.Read(buf)
			if k > 0 {
				if p.trigger != "" && bytes.Contains(buf[:k], []byte(p.trigger)) {
					p.hold()
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

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) hold() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
	p.cut()
}

// TestBlobGetWithoutLinkIsNotNotFound: a blob read whose subscription
// cannot reach the server (the link dropped as it subscribed) fails with
// ErrNotConnected, not ErrNotFound: the blob exists.
func TestBlobGetWithoutLinkIsNotNotFound(t *testing.T) {
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	direct, err := Connect(ctx, broker.Options{URL: srv.URL(), ClusterID: "test", Name: "direct"})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if err := direct.Blobs().Put(ctx, "resize.3", []byte("module")); err != nil {
		t.Fatal(err)
	}
	target := strings.TrimPrefix(srv.URL(), "nats://")
	p := newProxy(t, target, "PUB _STAN.sub.")
	l, err := Connect(ctx, broker.Options{URL: "nats://" + p.addr, ClusterID: "test", Name: "proxied"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	short, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if _, err := l.Blobs().Get(short, "resize.3"); errors.Is(err, eventlog.ErrNotFound) || !errors.Is(err, eventlog.ErrNotConnected) {
		t.Fatalf("Get of a blob that exists, the link down: %v, want ErrNotConnected", err)
	}
}
