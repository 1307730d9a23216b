package broker

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/nats-io/stan.go"

	"github.com/sluicehq/sluice/testutil"
)

// natsConnect connects as any NATS client would, once, without retrying.
func natsConnect(url string, o ...nats.Option) error {
	nc, err := nats.Connect(url, append(o, nats.Timeout(5*time.Second), nats.NoReconnect())...)
	if err == nil {
		nc.Close()
	}
	return err
}

func TestEmbeddedRequiresCredentials(t *testing.T) {
	for _, tc := range []struct {
		name  string
		auth  Auth
		wrong []nats.Option
	}{
		{"user and password", Auth{User: "sluice", Password: "s3cret-pw"}, []nats.Option{nats.UserInfo("sluice", "guess"), nats.UserInfo("admin", "s3cret-pw")}},
		{"token", Auth{Token: "s3cret-token"}, []nats.Option{nats.Token("guess"), nats.UserInfo("sluice", "s3cret-token")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := StartEmbedded(EmbeddedOptions{Dir: t.TempDir(), Listen: "127.0.0.1:0", ClusterID: "test", Auth: tc.auth})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(e.Shutdown)
			bare := "nats://" + e.Addr()
			// No credentials, or wrong ones: refused at the NATS layer, so
			// nothing can be read or published, streaming or not.
			if err := natsConnect(bare); !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("connect without credentials: %v, want %v", err, nats.ErrAuthorization)
			}
			for _, o := range tc.wrong {
				if err := natsConnect(bare, o); !errors.Is(err, nats.ErrAuthorization) {
					t.Fatalf("connect with wrong credentials: %v, want %v", err, nats.ErrAuthorization)
				}
			}
			if _, err := stan.Connect("test", "intruder-"+nuid.Next(), stan.NatsURL(bare)); err == nil {
				t.Fatal("a NATS Streaming client without credentials connected")
			}
			// The daemon's connection does not retry a refusal until its
			// context ends: it says so at once.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := Connect(ctx, Options{URL: bare, ClusterID: "test"}); !errors.Is(err, ErrRefused) || ctx.Err() != nil {
				t.Fatalf("Connect without credentials: %v, want ErrRefused before the deadline", err)
			}

			// With them, in the URL or as options, everything works.
			if !strings.Contains(e.URL(), "@") {
				t.Fatalf("URL() %q carries no credentials", e.URL())
			}
			c, err := Connect(ctx, Options{URL: bare, ClusterID: "test", Auth: tc.auth})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got := make(chan string, 1)
			if _, err := c.Subscribe("orders", SubOptions{Start: StartAll}, func(m *Msg) { got <- string(m.Data) }); err != nil {
				t.Fatal(err)
			}
			sc, err := stan.Connect("test", "app-"+nuid.Next(), stan.NatsURL(e.URL()))
			if err != nil {
				t.Fatalf("a NATS Streaming client with the URL's credentials: %v", err)
			}
			defer sc.Close()
			if err := sc.Publish("orders", []byte("one")); err != nil {
				t.Fatal(err)
			}
			if m := <-got; m != "one" {
				t.Fatalf("got %q", m)
			}
		})
	}
}

func TestEmbeddedRefusesAnOpenPublicListener(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		_, err := StartEmbedded(EmbeddedOptions{Listen: listen, ClusterID: "test"})
		if !errors.Is(err, ErrOpenListen) || !strings.Contains(err.Error(), "credentials") {
			t.Fatalf("%s without credentials: %v, want ErrOpenListen", listen, err)
		}
	}
	// Loopback without credentials stays possible (tests, benchmarks), and
	// a public listener with them.
	for _, o := range []EmbeddedOptions{
		{Listen: "127.0.0.1:0", ClusterID: "test"},
		{Listen: "0.0.0.0:0", ClusterID: "test", Auth: Auth{User: "u", Password: "p"}},
	} {
		e, err := StartEmbedded(o)
		if err != nil {
			t.Fatalf("%s: %v", o.Listen, err)
		}
		e.Shutdown()
	}
	for _, a := range []Auth{{User: "u"}, {Password: "p"}, {User: "u", Password: "p", Token: "t"}, {CredsFile: "x.creds"}} {
		if _, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test", Auth: a}); !errors.Is(err, ErrCredentials) {
			t.Fatalf("credentials %+v: %v, want ErrCredentials", a, err)
		}
	}
	// A client's creds file that is not there is said at once.
	_, err := Connect(context.Background(), Options{URL: "nats://127.0.0.1:1", ClusterID: "test", Auth: Auth{CredsFile: filepath.Join(t.TempDir(), "app.creds")}})
	if !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), "app.creds") {
		t.Fatalf("a missing creds file: %v, want ErrCredentials naming it", err)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://sluice:hunter2@127.0.0.1:4222", "nats://sluice:xxxxx@127.0.0.1:4222"},
		{"nats://s3cret-token@h:4222", "nats://xxxxx@h:4222"},
		{"nats://a:p1@h1:4222,nats://a:p2@h2:4222", "nats://a:xxxxx@h1:4222,nats://a:xxxxx@h2:4222"},
		{"nats://a:p%zz@h:1", "(a URL with credentials that does not parse)"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := URLWithAuth("nats://h1:1, nats://h2:2", Auth{User: "u", Password: "p"}); got != "nats://u:p@h1:1,nats://u:p@h2:2" {
		t.Errorf("URLWithAuth: %q", got)
	}
	if got := URLWithAuth("nats://h:1", Auth{Token: "t"}); got != "nats://t@h:1" {
		t.Errorf("URLWithAuth token: %q", got)
	}
	if got := URLWithAuth("nats://h:1", Auth{CredsFile: "f"}); got != "nats://h:1" {
		t.Errorf("URLWithAuth creds file: %q", got)
	}
}

func TestEmbeddedServesTLS(t *testing.T) {
	cert, key := testutil.SelfSigned(t, t.TempDir())
	auth := Auth{User: "sluice", Password: "pw"}
	e, err := StartEmbedded(EmbeddedOptions{Dir: t.TempDir(), Listen: "127.0.0.1:0", ClusterID: "test", Auth: auth, TLS: TLS{CertFile: cert, KeyFile: key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The server's own streaming connections and a client trusting the
	// certificate work.
	c, err := Connect(ctx, Options{URL: e.URL(), ClusterID: "test", TLS: e.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Publish(ctx, "orders", []byte("over TLS")); err != nil {
		t.Fatal(err)
	}
	// In clear, or without trusting the certificate: refused.
	if err := natsConnect(e.URL()); err == nil {
		t.Fatal("a client without TLS connected")
	}
	if _, err := Connect(ctx, Options{URL: e.URL(), ClusterID: "test", TLS: TLS{ServerName: "localhost"}}); !errors.Is(err, ErrRefused) {
		t.Fatalf("a client that does not trust the certificate: %v, want ErrRefused", err)
	}
	if _, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test", TLS: TLS{CertFile: cert}}); !errors.Is(err, ErrTLS) {
		t.Fatalf("a certificate without its key: %v, want ErrTLS", err)
	}
}
