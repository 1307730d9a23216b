package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// The dialer's side of the allow-list. The URL's host is checked against
// the list before anything is sent; the dialer checks where it connects:
// the name is resolved once, every address it resolves to is checked, and
// the checked addresses are dialed (never the name again, so a second
// lookup cannot answer differently: no DNS rebinding). An internal
// address (loopback, private, link-local, the daemon's own) is dialed
// only if the list names it, or a CIDR holding it, with the port: a name
// on the list is the operator's trust in where its owner points it, not
// in whatever its DNS answers.

// Resolver resolves a host name to its addresses: *net.Resolver, or a
// table in tests.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Reserved ranges that netip's predicates do not name.
var (
	// sharedSpace is carrier-grade NAT's range (RFC 6598), where some
	// clouds put their metadata services (100.100.100.200).
	sharedSpace = netip.MustParsePrefix("100.64.0.0/10")
	// thisNetwork is 0.0.0.0/8: connecting to it reaches this host on
	// some systems.
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	// reserved4 is 240.0.0.0/4 and the broadcast address.
	reserved4 = netip.MustParsePrefix("240.0.0.0/4")
	// nat64 embeds an IPv4 address in IPv6 (RFC 6052): checked as the
	// IPv4 address it carries.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
)

// internal says why an address is one the daemon does not dial by a
// name's word alone ("" for a public address).
func (c *Client) internal(a netip.Addr, port int) string {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:16]))
	}
	switch {
	case c.self[netip.AddrPortFrom(a.WithZone(""), uint16(port))]:
		return "the daemon's own listening address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsUnspecified() || thisNetwork.Contains(a):
		return "an unspecified address (this host)"
	case a.IsLinkLocalUnicast():
		return "a link-local address (where cloud metadata services answer, 169.254.169.254)"
	case a.IsPrivate():
		return "a private address"
	case sharedSpace.Contains(a):
		return "a shared (carrier-grade NAT) address"
	case a.IsMulticast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast():
		return "a multicast address"
	case reserved4.Contains(a):
		return "a reserved address"
	}
	return ""
}

// selfAddrs are the addresses and ports the daemon listens on: an
// unspecified host (":8080", "0.0.0.0:8080") is every address of the
// machine's interfaces.
func selfAddrs(listens []string) map[netip.AddrPort]bool {
	out := map[netip.AddrPort]bool{}
	var ifaces []netip.Addr
	for _, l := range listens {
		host, p, err := net.SplitHostPort(l)
		port, perr := strconv.Atoi(p)
		if err != nil || perr != nil || port < 1 || port > 65535 {
			continue
		}
		a := netip.IPv4Unspecified()
		if host != "" {
			if a, err = netip.ParseAddr(host); err != nil {
				continue // a name: the daemon's API listens on an address
			}
		}
		if !a.IsUnspecified() {
			out[netip.AddrPortFrom(a.Unmap().WithZone(""), uint16(port))] = true
			continue
		}
		if ifaces == nil {
			addrs, _ := net.InterfaceAddrs()
			for _, ia := range addrs {
				if p, err := netip.ParsePrefix(ia.String()); err == nil {
					ifaces = append(ifaces, p.Addr().Unmap().WithZone(""))
				}
			}
		}
		for _, a := range ifaces {
			out[netip.AddrPortFrom(a, uint16(port))] = true
		}
	}
	return out
}

// dial connects to hostport (the URL's host and port, or a redirect's)
// for the transport.
func (c *Client) dial(ctx context.Context, network, hostport string) (net.Conn, error) {
	if !c.cfg.Allow.allowsDial(hostport) {
		return nil, &Error{Kind: ErrNotAllowed, Msg: fmt.Sprintf("a connection to %s is not allowed (sluice daemon --allow-http)", hostport)}
	}
	host, p, _ := net.SplitHostPort(hostport) // allowsDial parsed it
	port, _ := strconv.Atoi(p)
	addrs, err := c.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if why := c.internal(a, port); why != "" && !c.cfg.Allow.namesAddr(a, port) {
			return nil, &Error{Kind: ErrNotAllowed, Msg: refusedAddr(host, a, port, why)}
		}
	}
	var first error
	for _, a := range addrs {
		conn, err := c.dialer.DialContext(ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// resolve is a host's addresses: an address is itself, a name is looked
// up once.
func (c *Client) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	addrs, err := c.resolver.LookupNetIP(ctx, "ip", host)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no address")
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			err = errors.New(dnsErr.Err)
		}
		return nil, &Error{Kind: ErrUnavailable, Msg: fmt.Sprintf("the name %s could not be resolved: %v", host, err)}
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	return addrs, nil
}

// refusedAddr says which name resolved to which internal address, and
// the entry that would allow it.
func refusedAddr(host string, a netip.Addr, port int, why string) string {
	allow := a.WithZone("").String()
	if port != 80 && port != 443 {
		allow = netip.AddrPortFrom(a.WithZone(""), uint16(port)).String()
	}
	what := fmt.Sprintf("%s resolved to %s", host, a)
	if h, err := netip.ParseAddr(host); err == nil && h.Unmap() == a {
		what = a.String()
	}
	return fmt.Sprintf("%s, %s, which the daemon calls only if its allow-list names that address itself: add %s (or a CIDR holding it) to sluice daemon --allow-http", what, why, allow)
}
