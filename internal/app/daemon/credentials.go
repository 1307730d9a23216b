package daemon

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/internal/broker"
)

// The embedded NATS server's credentials, when none are given: the user
// DefaultNATSUser and a password the daemon generates at its first start
// into the data dir (owner-only), where other applications' operators
// read it. Kept in the data dir, they live and die with the store they
// protect: a new data dir, a new password; a restart, the same one.
const (
	DefaultNATSUser  = "sluice"
	passwordFileName = "nats-password"
	// passwordBytes of randomness: 192 bits, as strong as anyone needs,
	// written in 32 characters of unpadded base64url, which a URL takes
	// as they are (nats://sluice:PASSWORD@host:4222).
	passwordBytes = 24
)

// brokerAuth returns the credentials of the embedded server: those given
// (Options.NATSUser and NATSPassword, or NATSToken), else the user and
// the data dir's password, made now if there is none. source says where
// they come from, for the log (never the secret itself).
func brokerAuth(o Options) (auth broker.Auth, source string, err error) {
	switch {
	case o.NATSToken != "":
		return broker.Auth{Token: o.NATSToken}, "--nats-token", nil
	case o.NATSPassword != "":
		user := o.NATSUser
		if user == "" {
			user = DefaultNATSUser
		}
		return broker.Auth{User: user, Password: o.NATSPassword}, "--nats-password", nil
	}
	user := o.NATSUser
	if user == "" {
		user = DefaultNATSUser
	}
	path := filepath.Join(o.DataDir, passwordFileName)
	password, err := readPassword(path)
	if err != nil {
		return broker.Auth{}, "", err
	}
	if password == "" {
		if password, err = makePassword(path); err != nil {
			return broker.Auth{}, "", err
		}
	}
	return broker.Auth{User: user, Password: password}, path, nil
}

// readPassword reads the password file, "" if there is none (or it is
// empty), making it owner-only if an older daemon left it open.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("NATS password: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return "", fmt.Errorf("NATS password %s is readable by others and cannot be made owner-only: %w", path, err)
		}
	}
	return strings.TrimSpace(string(b)), nil
}

// makePassword generates a password and stores it, owner-only, written
// whole or not at all.
func makePassword(path string) (string, error) {
	var rnd [passwordBytes]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("NATS password: %w", err)
	}
	password := base64.RawURLEncoding.EncodeToString(rnd[:])
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("NATS password: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("NATS password: %w", err)
	}
	return password, nil
}
