package broker

import "github.com/nats-io/nats.go"

// For the other NATS clients of sluice (the JetStream event log), which
// take the same credentials and TLS settings and must check and apply them
// the same way.

// Check says what is wrong with a combination of credentials (a user
// without a password, a user and a token, a missing creds file), as an
// ErrCredentials.
func (a Auth) Check() error { return a.check() }

// NATSOptions are the nats.go options that present the credentials.
func (a Auth) NATSOptions() []nats.Option { return a.natsOptions() }

// Check says what is wrong with the TLS files (a certificate without its
// key, a missing file), as an ErrTLS.
func (t TLS) Check() error { return t.check() }

// NATSOptions are the nats.go options that trust the CA and present the
// client certificate.
func (t TLS) NATSOptions() []nats.Option { return t.natsOptions() }

// Refused tells whether a connection error is one that trying again
// cannot cure: the server refused the credentials, or its certificate is
// not trusted.
func Refused(err error) bool { return refused(err) }

// CertName returns a name the PEM certificate in file is valid for, to
// verify it by when connecting to a loopback address it may not name.
func CertName(file string) (string, error) { return certName(file) }

// TLSTimeout bounds a client's TLS handshake on an embedded server.
const TLSTimeout = tlsTimeout
