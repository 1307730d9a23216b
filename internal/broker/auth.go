package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// Auth is what a client presents to NATS, and what the embedded server
// requires of its clients: a user and password, or a token. A client may
// use a NATS credentials file (.creds: a user JWT and its nkey seed)
// instead, which only an external server with decentralized auth checks.
// Credentials written in a URL (nats://user:password@host:4222) work too.
type Auth struct {
	User, Password string
	Token          string
	CredsFile      string
}

// IsZero tells whether no credentials are set.
func (a Auth) IsZero() bool { return a == Auth{} }

// check says what is wrong with a combination.
func (a Auth) check() error {
	switch {
	case a.User != "" && a.Password == "":
		return fmt.Errorf("%w: NATS user %q has an empty password", ErrCredentials, a.User)
	case a.User == "" && a.Password != "":
		return fmt.Errorf("%w: a NATS password without a user", ErrCredentials)
	case a.User != "" && a.Token != "":
		return fmt.Errorf("%w: give a NATS user and password or a token, not both", ErrCredentials)
	case a.CredsFile != "" && (a.User != "" || a.Token != ""):
		return fmt.Errorf("%w: give a NATS credentials file or a user and password or a token, only one", ErrCredentials)
	}
	if a.CredsFile != "" {
		if _, err := os.Stat(a.CredsFile); err != nil {
			return fmt.Errorf("%w: NATS credentials file: %w", ErrCredentials, err)
		}
	}
	return nil
}

func (a Auth) natsOptions() []nats.Option {
	var o []nats.Option
	switch {
	case a.User != "":
		o = append(o, nats.UserInfo(a.User, a.Password))
	case a.Token != "":
		o = append(o, nats.Token(a.Token))
	case a.CredsFile != "":
		o = append(o, nats.UserCredentials(a.CredsFile))
	}
	return o
}

// TLS configures TLS. For a client: CAFile is the CA that signed the
// server's certificate (the system's CAs if empty), CertFile and KeyFile a
// client certificate for servers that verify clients. For the embedded
// server: CertFile and KeyFile are its certificate, CAFile the CA that
// signed it (the certificate itself if it is self-signed), which the
// daemon's own connections trust.
type TLS struct {
	CAFile, CertFile, KeyFile string
	// ServerName, for a client, is the name to verify the server's
	// certificate against when the URL's host is not one it names.
	ServerName string
}

// IsZero tells whether TLS is not configured.
func (t TLS) IsZero() bool { return t == TLS{} }

func (t TLS) check() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("%w: a TLS certificate needs its key and a key its certificate (got certificate %q, key %q)", ErrTLS, t.CertFile, t.KeyFile)
	}
	for _, f := range []string{t.CAFile, t.CertFile, t.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w: %w", ErrTLS, err)
		}
	}
	return nil
}

func (t TLS) natsOptions() []nats.Option {
	var o []nats.Option
	if t.ServerName != "" { // first: RootCAs and ClientCert keep this config
		o = append(o, nats.Secure(&tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}))
	}
	if t.CAFile != "" {
		o = append(o, nats.RootCAs(t.CAFile))
	}
	if t.CertFile != "" {
		o = append(o, nats.ClientCert(t.CertFile, t.KeyFile))
	}
	return o
}

// URLWithAuth returns the NATS URL (or comma-separated URLs) with the
// credentials written into each: what an in-process caller, a test or
// `sluice bench mq --nats` connects with. A creds file cannot be written
// in a URL: the URLs are returned as they are.
func URLWithAuth(urls string, a Auth) string {
	var ui *url.Userinfo
	switch {
	case a.User != "":
		ui = url.UserPassword(a.User, a.Password)
	case a.Token != "":
		ui = url.User(a.Token)
	default:
		return urls
	}
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.Host == "" {
			continue
		}
		u.User = ui
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// Redact returns the NATS URL (or comma-separated URLs) fit for a log
// line or an error message: a password, or a token (a user name without
// a password is how a URL carries a token), is replaced by xxxxx.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			if strings.Contains(p, "@") {
				parts[i] = "(a URL with credentials that does not parse)"
			}
			continue
		}
		if u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// refused tells whether a connection error is one that trying again
// cannot cure: the server refused the credentials, or its certificate
// is not trusted.
func refused(err error) bool {
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
		return true
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify)
}

// IsLoopback tells whether host (a name or an address, as in host:port)
// is only reachable from this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
