package egress

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/errcode"
)

// table resolves names from a map, counting the lookups: what DNS
// answers, without a network.
type table struct {
	addrs   map[string][]string
	lookups atomic.Int64
	// then, if set, answers every lookup after the first (a name
	// rebound to another address).
	then []string
}

func (r *table) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	n := r.lookups.Add(1)
	list, ok := r.addrs[host]
	if !ok {
		return nil, fmt.Errorf("no such host %s", host)
	}
	if n > 1 && r.then != nil {
		list = r.then
	}
	var out []netip.Addr
	for _, s := range list {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

// TestDialRefusesInternalAddresses: a name on the list that resolves to
// an internal address is refused, saying which name resolved to which
// address and what to list; nothing is dialed.
func TestDialRefusesInternalAddresses(t *testing.T) {
	res := &table{addrs: map[string][]string{
		"metadata.test": {"169.254.169.254"},
		"private.test":  {"10.1.2.3"},
		"mixed.test":    {"93.184.216.34", "127.0.0.1"},
		"v6.test":       {"::1"},
		"mapped.test":   {"::ffff:192.168.1.1"},
		"nat64.test":    {"64:ff9b::a9fe:a9fe"},
		"cgnat.test":    {"100.100.100.200"},
		"zero.test":     {"0.0.0.0"},
		"ula.test":      {"fd00:ec2::254"},
		"self.test":     {"203.0.113.7"},
	}}
	list := mustList(t, "metadata.test", "private.test:8080", "mixed.test", "v6.test", "mapped.test", "nat64.test",
		"cgnat.test", "zero.test", "ula.test", "self.test:8080")
	c := New(Config{Allow: list, Resolver: res, Self: []string{"203.0.113.7:8080"}})
	tests := []struct{ url, says string }{
		{"http://metadata.test/latest/meta-data", "metadata.test resolved to 169.254.169.254, a link-local address (where cloud metadata services answer, 169.254.169.254), which the daemon calls only if its allow-list names that address itself: add 169.254.169.254 (or a CIDR holding it) to sluice daemon --allow-http"},
		{"http://private.test:8080/", "private.test resolved to 10.1.2.3, a private address, which the daemon calls only if its allow-list names that address itself: add 10.1.2.3:8080 (or a CIDR holding it)"},
		{"https://mixed.test/", "mixed.test resolved to 127.0.0.1, a loopback address"},
		{"http://v6.test/", "v6.test resolved to ::1, a loopback address"},
		{"http://mapped.test/", "mapped.test resolved to 192.168.1.1, a private address"},
		{"http://nat64.test/", "nat64.test resolved to 64:ff9b::a9fe:a9fe, a link-local address"},
		{"http://cgnat.test/", "cgnat.test resolved to 100.100.100.200, a shared (carrier-grade NAT) address"},
		{"http://zero.test/", "zero.test resolved to 0.0.0.0, an unspecified address"},
		{"http://ula.test/", "ula.test resolved to fd00:ec2::254, a private address"},
		{"http://self.test:8080/", "self.test resolved to 203.0.113.7, the daemon's own listening address"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := do(t, c, Request{URL: tt.url})
			wantKind(t, err, ErrNotAllowed, tt.says)
			if errcode.Of(err) != errcode.InvalidArgument {
				t.Fatalf("code %s", errcode.Of(err))
			}
		})
	}
	if st := c.Stats(); st.Refused != uint64(len(tests)) || st.Failed != 0 {
		t.Fatalf("stats %+v: each refusal counts as refused", st)
	}
}

// TestLocalhostNeedsItsAddress: "localhost" on the list reaches a server
// on the loopback only when the loopback is listed too, by address or
// CIDR; the server gets the request under the name.
func TestLocalhostNeedsItsAddress(t *testing.T) {
	var host atomic.Value
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { host.Store(r.Host); fmt.Fprint(w, "hi") })
	port := s.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	url := fmt.Sprintf("http://localhost:%d/", port)
	_, err := do(t, New(Config{Allow: mustList(t, fmt.Sprintf("localhost:%d", port))}), Request{URL: url})
	wantKind(t, err, ErrNotAllowed, "localhost resolved to ")
	wantKind(t, err, ErrNotAllowed, "a loopback address")
	if s.hits.Load() != 0 {
		t.Fatal("the loopback was called by a name's word")
	}
	// localhost may resolve to ::1 as well: list both loopbacks
	list := mustList(t, fmt.Sprintf("localhost:%d", port), fmt.Sprintf("127.0.0.0/8:%d", port), fmt.Sprintf("[::1/128]:%d", port))
	resp, err := do(t, New(Config{Allow: list}), Request{URL: url})
	if err != nil || string(resp.Body) != "hi" || host.Load() != fmt.Sprintf("localhost:%d", port) {
		t.Fatalf("localhost with its addresses listed: %v %v (Host %v)", resp, err, host.Load())
	}
	// by address, as before
	if _, err := do(t, New(Config{Allow: mustList(t, s.hostport())}), Request{URL: s.URL}); err != nil {
		t.Fatalf("the loopback listed by address: %v", err)
	}
	// a port the CIDR does not list
	_, err = do(t, New(Config{Allow: mustList(t, fmt.Sprintf("localhost:%d", port), "127.0.0.0/8", "::1")}), Request{URL: url})
	wantKind(t, err, ErrNotAllowed, fmt.Sprintf(":%d (or a CIDR holding it)", port))
}

// TestDialedAddressIsTheCheckedOne: the name is looked up once per
// connection and the address checked is the one dialed: a resolver that
// answers differently the second time (DNS rebinding) is not asked
// again, and the dial does not look the name up itself (the name
// resolves nowhere but in the table).
func TestDialedAddressIsTheCheckedOne(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	port := s.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	res := &table{addrs: map[string][]string{"rebind.test": {"127.0.0.1"}}, then: []string{"169.254.169.254"}}
	c := New(Config{Allow: mustList(t, fmt.Sprintf("rebind.test:%d", port), fmt.Sprintf("127.0.0.1:%d", port)), Resolver: res})
	resp, err := do(t, c, Request{URL: fmt.Sprintf("http://rebind.test:%d/", port)})
	if err != nil || string(resp.Body) != "ok" {
		t.Fatalf("%v %v", resp, err)
	}
	if n := res.lookups.Load(); n != 1 {
		t.Fatalf("%d lookups for one connection", n)
	}
	c.Close() // the next request connects again: the rebound answer is checked
	_, err = do(t, c, Request{URL: fmt.Sprintf("http://rebind.test:%d/", port)})
	wantKind(t, err, ErrNotAllowed, "rebind.test resolved to 169.254.169.254")
}

func TestParseCIDR(t *testing.T) {
	tests := []struct {
		entry string
		err   string
	}{
		{"10.0.0.0/8", ""},
		{"10.0.0.0/8:8080", ""},
		{"fd00::/8", ""},
		{"[fd00::/8]:443", ""},
		{"127.0.0.1/32", ""},
		{"10.0.0.1/8", "write 10.0.0.0/8"},
		{"10.0.0.0/33", "want a CIDR"},
		{"10.0.0.0/8:0", "port"},
		{"10.0.0.0/8:080", "port"},
		{"[fd00::/8]", ""},
		{"[fd00::/8]:", "want [IPV6/BITS]"},
		{"[fd00::/8]x", "want [IPV6/BITS]"},
		{"::ffff:10.0.0.0/104", "write an IPv4 CIDR as IPv4 (10.0.0.0/8)"},
		{"example.com/8", "want a CIDR"},
		{"http://10.0.0.0/8", "not a URL"},
		{"10.0.0.0/8?", "not a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			_, err := ParseAllowList([]string{tt.entry})
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.err != "" && err == nil:
				t.Fatal("accepted")
			case tt.err != "" && !strings.Contains(err.Error(), tt.err):
				t.Fatalf("error %q does not say %q", err, tt.err)
			}
		})
	}
	list := mustList(t, "10.0.0.0/8", "192.168.0.0/16:8080", "[fd00::/8]:443")
	c := New(Config{Allow: list})
	for url, allowed := range map[string]bool{
		"http://10.1.2.3/": true, "https://10.255.0.1/": true, "http://11.0.0.1/": false, "http://10.1.2.3:8080/": false,
		"http://192.168.7.7:8080/": true, "http://192.168.7.7/": false, "https://[fd12::1]/": true, "http://[fd12::1]:443/": true,
		"http://[fe80::1]:443/": false, "http://[::ffff:10.0.0.1]/": true,
	} {
		_, err := c.request(context.Background(), Request{URL: url})
		if allowed != (err == nil) {
			t.Errorf("%s: allowed %v, error %v", url, allowed, err)
		}
	}
}

// TestSecretHeaders: a header that takes a secret gets its value when the
// request is sent (read again from its file, so a rotated file is sent);
// a secret the daemon lacks fails the request, sending nothing.
func TestSecretHeaders(t *testing.T) {
	var got atomic.Value
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { got.Store(r.Header.Get("Authorization")) })
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("Bearer one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := New(Config{Allow: mustList(t, s.hostport()), Secrets: []Secret{{Name: "TOKEN", File: file}, {Name: "ENV", Value: "from-env"}}})
	req := Request{URL: s.URL, Secrets: map[string]string{"authorization": "TOKEN"}}
	if _, err := do(t, c, req); err != nil || got.Load() != "Bearer one" {
		t.Fatalf("%v, Authorization %q", err, got.Load())
	}
	if err := os.WriteFile(file, []byte("Bearer two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := do(t, c, req); err != nil || got.Load() != "Bearer two" {
		t.Fatalf("after rotating the file: %v, Authorization %q", err, got.Load())
	}
	if _, err := do(t, c, Request{URL: s.URL, Secrets: map[string]string{"Authorization": "ENV"}}); err != nil || got.Load() != "from-env" {
		t.Fatalf("a secret from the environment: %v, Authorization %q", err, got.Load())
	}
	hits := s.hits.Load()
	_, err := do(t, c, Request{URL: s.URL, Secrets: map[string]string{"X-Api-Key": "STRIPE"}})
	wantKind(t, err, ErrNoSecret, "header X-Api-Key takes the secret STRIPE, which this daemon does not have: start it with --http-secret STRIPE=@FILE (or env SLUICE_HTTP_SECRET_STRIPE)")
	if errcode.Of(err) != errcode.InvalidArgument {
		t.Fatalf("code %s", errcode.Of(err))
	}
	_, err = do(t, c, Request{URL: s.URL, Header: http.Header{"Authorization": {"x"}}, Secrets: map[string]string{"authorization": "TOKEN"}})
	wantKind(t, err, ErrBadRequest, "given both as a value and as the secret TOKEN")
	_, err = do(t, c, Request{URL: s.URL, Secrets: map[string]string{"Host": "TOKEN"}})
	wantKind(t, err, ErrBadRequest, "Host is set by the client")
	if err := os.WriteFile(file, []byte("Bearer a\nInjected: b"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = do(t, c, req)
	wantKind(t, err, ErrNoSecret, "secret TOKEN holds a control byte")
	if strings.Contains(err.Error(), "Injected") {
		t.Fatalf("the message quotes the secret: %v", err)
	}
	if s.hits.Load() != hits {
		t.Fatal("a refused request was sent")
	}
}

func TestParseSecrets(t *testing.T) {
	if s, err := ParseSecret("STRIPE=@/run/secrets/stripe"); err != nil || s != (Secret{Name: "STRIPE", File: "/run/secrets/stripe"}) {
		t.Fatalf("%+v %v", s, err)
	}
	for in, says := range map[string]string{
		"STRIPE=sk_live_123": `"STRIPE=..."`, // the value is not quoted
		"STRIPE":             "want NAME=@FILE",
		"STRIPE=@":           "want NAME=@FILE",
		"1X=@f":              `name "1X"`,
		"a-b=@f":             `name "a-b"`,
	} {
		_, err := ParseSecret(in)
		if err == nil || !strings.Contains(err.Error(), says) || strings.Contains(err.Error(), "sk_live") {
			t.Errorf("%q: %v, want it to say %s", in, err, says)
		}
	}
	env, err := SecretsFromEnv([]string{"HOME=/root", "SLUICE_HTTP_SECRET_STRIPE=sk=1", "SLUICE_ALLOW_HTTP=x"})
	if err != nil || len(env) != 1 || env[0] != (Secret{Name: "STRIPE", Value: "sk=1"}) {
		t.Fatalf("%+v %v", env, err)
	}
	if _, err := SecretsFromEnv([]string{"SLUICE_HTTP_SECRET_=x"}); err == nil {
		t.Fatal("an empty name accepted")
	}
	missing := filepath.Join(t.TempDir(), "none")
	err = CheckSecrets([]Secret{{Name: "A", File: missing}})
	if err == nil || !strings.Contains(err.Error(), "--http-secret A=@"+missing) || !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("a missing file: %v", err)
	}
	if err := CheckSecrets([]Secret{{Name: "A", Value: "1"}, {Name: "A", Value: "2"}}); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("a name twice: %v", err)
	}
}

// FuzzParseAllowList checks, for any entry, that what the parser accepts
// is one kind of entry (a name, a wildcard, an address or a CIDR whose
// address has no bits past its length), with a port from 1 to 65535 or
// none, and reads the same when parsed again.
//
//	go test ./internal/egress -run '^$' -fuzz FuzzParseAllowList -fuzztime 1m
func FuzzParseAllowList(f *testing.F) {
	for _, s := range []string{
		"api.example.com", "API.example.com:8443", "127.0.0.1:8080", "::1", "[::1]:8080", "*.example.com:443",
		"10.0.0.0/8", "10.0.0.0/8:8080", "fd00::/8", "[fd00::/8]:443", "10.0.0.1/8", "[fd00::/8]:", "::ffff:10.0.0.0/104",
		"1.2.3.4/32:1", "fe80::/10%eth0", "10.0.0.0/8/8", "[10.0.0.0/8]:80", "/8", "0.0.0.0/0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAllowList([]string{s})
		if err != nil || a.Empty() {
			return
		}
		e := a.entries[0]
		kinds := 0
		for _, k := range []bool{e.name != "", e.addr.IsValid(), e.prefix.IsValid()} {
			if k {
				kinds++
			}
		}
		switch {
		case kinds != 1:
			t.Fatalf("%q: %d kinds in %+v", s, kinds, e)
		case e.port < 0 || e.port > 65535:
			t.Fatalf("%q: port %d", s, e.port)
		case e.prefix.IsValid() && (e.prefix.Masked() != e.prefix || e.prefix.Addr().Zone() != "" || e.prefix.Addr().Is4In6()):
			t.Fatalf("%q: prefix %s", s, e.prefix)
		case e.addr.IsValid() && (e.addr.Zone() != "" || e.addr.Is4In6()):
			t.Fatalf("%q: address %s", s, e.addr)
		}
		again, err := ParseAllowList([]string{a.String()})
		if err != nil || fmt.Sprint(again.entries) != fmt.Sprint(a.entries) {
			t.Fatalf("%q parses as %+v, and again as %+v (%v)", s, a.entries, again, err)
		}
	})
}
