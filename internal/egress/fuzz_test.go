package egress

import (
	"context"
	"net/url"
	"strings"
	"testing"
)

// FuzzAllowList checks, for any URL, that what the allow-list lets
// through goes where the list says: the URL, parsed again as net/http
// parses it to send it, names one of the listed hosts and ports, with no
// user info; and the dialer's own check agrees.
//
//	go test ./internal/egress -run '^$' -fuzz FuzzAllowList -fuzztime 1m
func FuzzAllowList(f *testing.F) {
	for _, s := range []string{
		"http://api.example.com/x", "https://api.example.com:8443/", "http://127.0.0.1:9000/",
		"http://[::ffff:127.0.0.1]:9000/", "http://a.b.wild.example/", "http://API.EXAMPLE.COM/",
		"http://api.example.com@evil.example/", "http://evil.example#@api.example.com/",
		"http://api.example.com.:80/", "http://2130706433/", "http://0x7f.1/", "http://xn--bcher-kva.example/",
		"http://api.example.com:80@127.0.0.1:9000/", "http://api.example.com%2f@evil/", "http://api.example.com\\@evil/",
		"HTTP://api.example.com/", "http://[::1]:9000/", "http://evil/?api.example.com", "http://127.0.0.1:09000/",
	} {
		f.Add(s)
	}
	list := mustList(f, "api.example.com", "api.example.com:8443", "127.0.0.1:9000", "*.wild.example")
	c := New(Config{Allow: list})
	f.Fuzz(func(t *testing.T, raw string) {
		req, err := c.request(context.Background(), Request{URL: raw})
		if err != nil {
			return
		}
		u, err := url.Parse(req.URL.String())
		if err != nil {
			t.Fatalf("%q allowed, and its request's URL %q does not parse: %v", raw, req.URL, err)
		}
		if u.User != nil {
			t.Fatalf("%q allowed with user info", raw)
		}
		host, port := strings.ToLower(u.Hostname()), u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		switch {
		case host == "api.example.com" && (port == "443" && u.Scheme == "https" || port == "80" && u.Scheme == "http" || port == "8443"):
		case (host == "127.0.0.1" || host == "::ffff:127.0.0.1") && port == "9000":
		case strings.HasSuffix(host, ".wild.example") && len(host) > len(".wild.example"):
		default:
			t.Fatalf("%q allowed: it goes to %s port %s (scheme %s)", raw, host, port, u.Scheme)
		}
		if !list.allowsDial(u.Hostname()+":"+port) && !list.allowsDial("["+u.Hostname()+"]:"+port) {
			t.Fatalf("%q allowed, and the dialer refuses %s:%s", raw, u.Hostname(), port)
		}
	})
}
