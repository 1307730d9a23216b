package egress

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// AllowList is the hosts requests may go to: `sluice daemon
// --allow-http`. An entry is a host name, an IP address, a CIDR
// "10.0.0.0/8" (any address in it) or a wildcard "*.example.com" (any
// name under example.com, at any depth, not example.com itself), with an
// optional port; without one, the scheme's own: 80 for http, 443 for
// https. Addresses and CIDRs are also what lets a name reach an internal
// address (loopback, private, link-local, the daemon's own): see
// Client's dialer. Names are matched on the URL's host,
// in lower case, and must be written as DNS has them: ASCII (an
// internationalized name in its xn-- form), no trailing dot. The empty
// list allows nothing.
type AllowList struct {
	entries []entry
}

// entry is one allowed host.
type entry struct {
	// name is a host name in lower case, or for a wildcard the suffix
	// it matches (".example.com"); addr is set instead for an address,
	// prefix for a CIDR.
	name     string
	wildcard bool
	addr     netip.Addr
	prefix   netip.Prefix
	// port is 0 for the scheme's default port.
	port int
	text string
}

// ParseAllowList parses the entries of --allow-http: "HOST[:PORT]",
// "[IPV6]:PORT", "*.DOMAIN[:PORT]", "CIDR[:PORT]", "[IPV6-CIDR]:PORT".
// Empty entries are skipped.
func ParseAllowList(entries []string) (*AllowList, error) {
	a := &AllowList{}
	for _, s := range entries {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		e, err := parseEntry(s)
		if err != nil {
			return nil, fmt.Errorf("--allow-http %q: %w", s, err)
		}
		a.entries = append(a.entries, e)
	}
	return a, nil
}

func parseEntry(s string) (entry, error) {
	e := entry{text: s}
	if strings.Contains(s, "/") && !strings.Contains(s, "://") && !strings.ContainsAny(s, "?#@") {
		return parsePrefix(s)
	}
	if strings.Contains(s, "://") || strings.ContainsAny(s, "/?#@") {
		return e, fmt.Errorf("want HOST or HOST:PORT, not a URL (the scheme may be http or https)")
	}
	host, port := s, ""
	if a, err := netip.ParseAddr(s); err == nil { // a bare address, IPv6 included
		host = a.String()
	} else if strings.HasPrefix(s, "[") || strings.Contains(s, ":") {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return e, fmt.Errorf("want HOST, HOST:PORT or [IPV6]:PORT")
		}
		host, port = h, p
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return e, fmt.Errorf("port %q: want 1 to 65535, without leading zeros", port)
		}
		e.port = n
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return e, fmt.Errorf("an IPv6 zone (%%%s) cannot be allowed", a.Zone())
		}
		e.addr = a.Unmap()
		return e, nil
	}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		if err := checkName(rest); err != nil {
			return e, err
		}
		e.name, e.wildcard = "."+strings.ToLower(rest), true
		return e, nil
	}
	if err := checkName(host); err != nil {
		return e, err
	}
	e.name = strings.ToLower(host)
	return e, nil
}

// checkName checks a host name as DNS writes it: ASCII labels of letters,
// digits and hyphens, 1 to 63 each, at most 253 in all, no trailing dot,
// and a last label that does not start with a digit (no top-level domain
// does: "2130706433", "0x7f.1" or "0177.0.0.1" are addresses in disguise,
// which resolvers read differently).
func checkName(h string) error {
	switch {
	case h == "":
		return fmt.Errorf("no host")
	case strings.HasSuffix(h, "."):
		return fmt.Errorf("host %q ends with a dot: write it without", h)
	case len(h) > 253:
		return fmt.Errorf("host name of %d characters: at most 253", len(h))
	}
	for i := 0; i < len(h); i++ {
		if h[i] >= 0x80 {
			return fmt.Errorf("host %q is not ASCII: write an internationalized name in its xn-- (punycode) form", h)
		}
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("host %q: each dot-separated part must be 1 to 63 characters", h)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("host %q: a part may not start or end with '-'", h)
		}
		for i := 0; i < len(l); i++ {
			c := l[i] | 0x20
			if !(c >= 'a' && c <= 'z' || l[i] >= '0' && l[i] <= '9' || l[i] == '-') {
				return fmt.Errorf("host %q holds %q: a host name has letters, digits, '-' and '.' only", h, l[i])
			}
		}
	}
	if last := labels[len(labels)-1]; last[0] >= '0' && last[0] <= '9' {
		return fmt.Errorf("host %q is not a name nor an IP address in dotted decimal (write an IPv4 address as four numbers from 0 to 255, without leading zeros)", h)
	}
	return nil
}

// Empty tells whether the list allows nothing.
func (a *AllowList) Empty() bool { return a == nil || len(a.entries) == 0 }

// String lists the entries as given, comma-separated.
func (a *AllowList) String() string {
	if a == nil {
		return ""
	}
	s := make([]string, len(a.entries))
	for i, e := range a.entries {
		s[i] = e.text
	}
	return strings.Join(s, ",")
}

// target is where a URL sends a request: its host (a name in lower case,
// or an address) and port.
type target struct {
	name string
	addr netip.Addr
	port int
	// defaultPort tells that the URL gave no port.
	defaultPort bool
}

func (t target) String() string {
	h := t.name
	if t.addr.IsValid() {
		h = t.addr.String()
	}
	return net.JoinHostPort(h, strconv.Itoa(t.port))
}

// checkURL parses a URL a request is sent to and finds its target,
// refusing what is not plainly an http or https URL naming one host.
func checkURL(raw string) (*url.URL, target, error) {
	var t target
	u, err := url.Parse(raw)
	if err != nil {
		return nil, t, fmt.Errorf("URL %q does not parse: %v", clip(raw), unwrapURLError(err))
	}
	switch u.Scheme {
	case "http", "https":
	case "":
		return nil, t, fmt.Errorf("URL %q has no scheme: write http:// or https://", clip(raw))
	default:
		return nil, t, fmt.Errorf("URL %q: scheme %s: only http and https", clip(raw), u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, t, fmt.Errorf("URL %q names no host: write %s://HOST/PATH", clip(raw), u.Scheme)
	}
	if u.User != nil {
		return nil, t, fmt.Errorf("URL %q carries user info (the part before @): give credentials in a header (Authorization)", clip(raw))
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return nil, t, fmt.Errorf("URL %q: an IPv6 address with a zone cannot be called", clip(raw))
		}
		t.addr = a.Unmap()
	} else {
		if strings.HasPrefix(u.Host, "[") {
			return nil, t, fmt.Errorf("URL %q: %q is not an IPv6 address", clip(raw), host)
		}
		if err := checkName(host); err != nil {
			return nil, t, fmt.Errorf("URL %q: %v", clip(raw), err)
		}
		t.name = strings.ToLower(host)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return nil, t, fmt.Errorf("URL %q: port %q: want 1 to 65535, without leading zeros", clip(raw), p)
		}
		t.port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, t, fmt.Errorf("URL %q: an empty port", clip(raw))
	} else {
		t.port, t.defaultPort = schemePort(u.Scheme), true
	}
	return u, t, nil
}

func schemePort(scheme string) int {
	if scheme == "https" {
		return 443
	}
	return 80
}

// allows tells whether the list lets a request of a scheme reach a
// target. An entry without a port allows the scheme's own.
func (a *AllowList) allows(scheme string, t target) bool {
	if a == nil {
		return false
	}
	for _, e := range a.entries {
		if e.port == 0 && t.port != schemePort(scheme) || e.port != 0 && t.port != e.port {
			continue
		}
		if e.matches(t) {
			return true
		}
	}
	return false
}

// allowsDial tells whether a connection to host:port may be made: the
// dialer's own check, after the URL's (whatever dials, it dials only what
// the list names). An entry without a port allows 80 and 443.
func (a *AllowList) allowsDial(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || a == nil {
		return false
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return false
	}
	var t target
	if addr, err := netip.ParseAddr(host); err == nil {
		t.addr = addr.Unmap()
	} else {
		t.name = strings.ToLower(host)
	}
	t.port = n
	for _, e := range a.entries {
		if e.port == 0 && n != 80 && n != 443 || e.port != 0 && n != e.port {
			continue
		}
		if e.matches(t) {
			return true
		}
	}
	return false
}

func (e entry) matches(t target) bool {
	switch {
	case e.prefix.IsValid():
		return t.addr.IsValid() && e.prefix.Contains(t.addr)
	case e.addr.IsValid():
		return t.addr.IsValid() && t.addr == e.addr
	case t.addr.IsValid():
		return false
	case e.wildcard:
		return len(t.name) > len(e.name) && strings.HasSuffix(t.name, e.name)
	}
	return t.name == e.name
}

// unwrapURLError drops url.Error's repetition of the operation and URL.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// clip shortens what a message quotes of a URL.
func clip(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// parsePrefix parses a CIDR entry: "10.0.0.0/8", "10.0.0.0/8:8080",
// "fd00::/8", "[fd00::/8]:443". The address must be the prefix's first
// (no bits set past the length): "10.0.0.1/8" is refused rather than
// read as 10.0.0.0/8, since it reads as one host.
func parsePrefix(s string) (entry, error) {
	e := entry{text: s}
	cidr, port := s, ""
	if rest, ok := strings.CutPrefix(s, "["); ok {
		i := strings.LastIndex(rest, "]")
		if i < 0 || i+1 < len(rest) && rest[i+1] != ':' || i+1 == len(rest)-1 {
			return e, fmt.Errorf("want [IPV6/BITS] or [IPV6/BITS]:PORT")
		}
		cidr = rest[:i]
		if i+1 < len(rest) {
			port = rest[i+2:]
		}
	} else if _, err := netip.ParsePrefix(s); err != nil {
		if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
			cidr, port = s[:i], s[i+1:]
		}
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return e, fmt.Errorf("want a CIDR like 10.0.0.0/8 or fd00::/8, with an optional :PORT ([IPV6/BITS]:PORT)")
	}
	switch {
	case p.Addr().Zone() != "":
		return e, fmt.Errorf("an IPv6 zone cannot be allowed")
	case p.Addr().Is4In6():
		return e, fmt.Errorf("write an IPv4 CIDR as IPv4 (%s)", netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0)))
	case p.Masked() != p:
		return e, fmt.Errorf("%s has bits set past its length: write %s", p, p.Masked())
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return e, fmt.Errorf("port %q: want 1 to 65535, without leading zeros", port)
		}
		e.port = n
	}
	e.prefix = p
	return e, nil
}

// dialPort tells whether an entry lets a connection reach port: its own
// port, or without one 80 and 443 (the dialer does not know the scheme;
// the URL's check did).
func (e entry) dialPort(port int) bool {
	if e.port == 0 {
		return port == 80 || port == 443
	}
	return port == e.port
}

// namesAddr tells whether an address or CIDR entry names addr at port
// itself: what an internal address needs to be dialed, whatever name led
// to it.
func (a *AllowList) namesAddr(addr netip.Addr, port int) bool {
	if a == nil {
		return false
	}
	t := target{addr: addr.Unmap(), port: port}
	for _, e := range a.entries {
		if (e.addr.IsValid() || e.prefix.IsValid()) && e.dialPort(port) && e.matches(t) {
			return true
		}
	}
	return false
}
