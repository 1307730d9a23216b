package testutil

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a server and drops them when a test
// says, or when a client sends a given text: a link that fails at a
// chosen moment.
type Proxy struct {
	// Addr is where clients connect.
	Addr   string
	target string
	// trigger, if set, is looked for in what clients send: the first
	// connection to send it is cut (hold false), or every connection is
	// cut and new ones refused until Release (hold true).
	trigger string
	hold    bool

	mu    sync.Mutex
	conns []net.Conn
	held  bool
	first bool
	wg    sync.WaitGroup
}

// NewProxy forwards to target (host:port) until the test ends. With a
// trigger, the first connection that sends it is cut; with hold as well,
// every connection is cut then and new ones are refused until Release.
func NewProxy(t testing.TB, target, trigger string, hold bool) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, trigger: trigger, hold: hold, first: trigger != ""}
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
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

// URL is a server URL with the proxy's address in place of the server's.
func (p *Proxy) URL(serverURL string) string { return strings.Replace(serverURL, p.target, p.Addr, 1) }

func (p *Proxy) serve(c net.Conn) {
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
	watch := p.trigger != "" && (p.hold || p.first)
	if !p.hold {
		p.first = false
	}
	p.wg.Add(2)
	go func() { defer p.wg.Done(); io.Copy(c, s); c.Close() }()
	go func() {
		defer p.wg.Done()
		defer s.Close()
		defer c.Close()
		buf := make([]byte, 64<<10)
		for {
			k, err := c.Read(buf)
			if k > 0 {
				if watch && bytes.Contains(buf[:k], []byte(p.trigger)) {
					if p.hold {
						p.Hold()
					}
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

// Cut drops every connection through the proxy.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Hold cuts every connection and refuses new ones until Release.
func (p *Proxy) Hold() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
	p.Cut()
}

// Release lets connections through again.
func (p *Proxy) Release() {
	p.mu.Lock()
	p.held = false
	p.mu.Unlock()
}
