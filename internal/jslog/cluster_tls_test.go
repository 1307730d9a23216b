package jslog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/testutil"
)

// TestClusterRoutesOverMutualTLS: three members whose routes are mutual
// TLS form the cluster and replicate a stream; their route port asks
// for TLS; a server with a certificate from another CA, given the same
// peers, cluster name and password, is never let in.
func TestClusterRoutesOverMutualTLS(t *testing.T) {
	ca := testutil.NewCA(t, "sluice cluster CA")
	routes := []string{testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)}
	var servers []*Embedded
	var urls []string
	for i := range 3 {
		cert, key := ca.Issue(t, "member-"+string(rune('a'+i)))
		o := EmbeddedOptions{
			Dir: t.TempDir(), Listen: testutil.FreeAddr(t), Auth: testAuth,
			Cluster: ClusterOptions{Name: "sluice-tls", Listen: routes[i], Peers: routes, Password: "route-secret",
				TLS: RouteTLS{CertFile: cert, KeyFile: key, CAFile: ca.File}},
		}
		e, err := StartEmbedded(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Shutdown)
		servers, urls = append(servers, e), append(urls, "nats://"+o.Listen)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, e := range servers {
		if err := e.WaitClustered(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// the route port speaks TLS: a handshake with a member's certificate,
	// trusting the CA, completes; one without a certificate is refused
	cert, key := ca.Issue(t, "prober")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	if err := handshake(routes[0], &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, ServerName: "127.0.0.1"}); err != nil {
		t.Fatalf("TLS handshake with the route port: %v", err)
	}
	if err := handshake(routes[0], &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}); err == nil {
		t.Fatal("the route port took a TLS client without a certificate")
	}

	// a stream replicated on the three members over those routes
	l, err := Connect(ctx, Options{URL: broker.URLWithAuth(strings.Join(urls, ","), testAuth), Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 10 {
		if _, err := l.Publish(ctx, "tls.check", eventlog.Message{Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan byte, 10)
	sub, err := l.Subscribe("tls.check", eventlog.SubOptions{Start: eventlog.Start{Kind: eventlog.StartFirst}}, func(m *eventlog.Msg) { got <- m.Data[0] })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := range 10 {
		select {
		case b := <-got:
			if int(b) != i {
				t.Fatalf("message %d reads %d", i, b)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("message %d of the replicated stream never came", i)
		}
	}

	// an intruder signed by another CA, with everything else right
	other := testutil.NewCA(t, "another CA")
	cert, key = other.Issue(t, "intruder")
	intruder, err := StartEmbedded(EmbeddedOptions{
		Dir: t.TempDir(), Listen: testutil.FreeAddr(t), Auth: testAuth,
		Cluster: ClusterOptions{Name: "sluice-tls", Listen: testutil.FreeAddr(t), Peers: routes, Password: "route-secret",
			TLS: RouteTLS{CertFile: cert, KeyFile: key, CAFile: other.File}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(intruder.Shutdown)
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := intruder.WaitClustered(wctx); err == nil {
		t.Fatal("a member with a certificate from another CA joined the cluster")
	}
	for i, e := range servers {
		rz, err := e.srv.Routez(&natsd.RoutezOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rz.Routes {
			if r.RemoteName == intruder.Name() {
				t.Fatalf("member %d has a route to the intruder", i)
			}
		}
	}
}

// TestRouteTLSNeedsItsThreeFiles: a certificate without its CA (or key)
// is refused at start, naming the flags.
func TestRouteTLSNeedsItsThreeFiles(t *testing.T) {
	ca := testutil.NewCA(t, "sluice cluster CA")
	cert, key := ca.Issue(t, "member")
	for _, tls := range []RouteTLS{{CertFile: cert, KeyFile: key}, {CertFile: cert, CAFile: ca.File}, {CAFile: ca.File}} {
		routes := []string{testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)}
		_, err := StartEmbedded(EmbeddedOptions{Dir: t.TempDir(), Listen: testutil.FreeAddr(t), Auth: testAuth,
			Cluster: ClusterOptions{Name: "c", Listen: routes[0], Peers: routes, TLS: tls}})
		if !errors.Is(err, broker.ErrTLS) || !strings.Contains(err.Error(), "--cluster-ca") {
			t.Errorf("route TLS %+v: %v, want ErrTLS naming the flags", tls, err)
		}
	}
}

// handshake dials addr and completes a TLS handshake, and a read: a
// server that refuses the client's certificate says so after its own
// handshake is done, at the first read.
func handshake(addr string, cfg *tls.Config) error {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil // the server waits for the route's CONNECT: it took us
	}
	return err
}
