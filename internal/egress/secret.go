package egress

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"

	"github.com/sluicehq/sluice/abi"
)

// Secrets: values a request's header takes by name, resolved by the
// client when it sends the request, so that a workflow never holds them
// and its events record only the name (engine/README.md, "Calling out:
// the http built-in").

// Secret is one named value: read from File at each request (a rotated
// file is read again, without a restart), or given as Value (from the
// environment).
type Secret struct {
	Name  string
	File  string
	Value string
}

// EnvSecretPrefix starts the environment variables that give secrets:
// SLUICE_HTTP_SECRET_STRIPE=... is the secret STRIPE.
const EnvSecretPrefix = "SLUICE_HTTP_SECRET_"

// secretName is what a secret's name is made of: an environment
// variable's characters, so that every name can be given either way.
var secretName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,62}$`)

// SecretNameRule says what secretName accepts, for messages.
const SecretNameRule = "a letter then up to 62 letters, digits or _"

// ValidSecretName tells whether s may name a secret.
func ValidSecretName(s string) bool { return secretName.MatchString(s) }

// ParseSecret parses --http-secret NAME=@FILE. A value is never given on
// the command line, where ps shows it to every user of the machine.
func ParseSecret(s string) (Secret, error) {
	name, file, ok := strings.Cut(s, "=")
	switch {
	case !ok || !strings.HasPrefix(file, "@") || len(file) < 2:
		return Secret{}, fmt.Errorf("--http-secret %q: want NAME=@FILE (the value is read from the file; a value on the command line is visible in ps: set %sNAME instead)", clipSecretFlag(s), EnvSecretPrefix)
	case !ValidSecretName(name):
		return Secret{}, fmt.Errorf("--http-secret %q: name %q: want %s", clipSecretFlag(s), name, SecretNameRule)
	}
	return Secret{Name: name, File: file[1:]}, nil
}

// clipSecretFlag quotes a flag up to its file's path, which is not a
// secret; a value given by mistake after "=" without "@" is not quoted.
func clipSecretFlag(s string) string {
	name, file, ok := strings.Cut(s, "=")
	if ok && !strings.HasPrefix(file, "@") {
		return name + "=..."
	}
	return clip(s)
}

// SecretsFromEnv reads the secrets of an environment (os.Environ()):
// each variable EnvSecretPrefix+NAME.
func SecretsFromEnv(environ []string) ([]Secret, error) {
	var out []Secret
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		name, ok := strings.CutPrefix(k, EnvSecretPrefix)
		if !ok {
			continue
		}
		if !ValidSecretName(name) {
			return nil, fmt.Errorf("environment variable %s: the secret's name %q: want %s", k, name, SecretNameRule)
		}
		out = append(out, Secret{Name: name, Value: v})
	}
	return out, nil
}

// CheckSecrets checks secrets at the daemon's start: names given once,
// files readable, values fit for a header.
func CheckSecrets(secrets []Secret) error {
	seen := map[string]bool{}
	for _, s := range secrets {
		if seen[s.Name] {
			return fmt.Errorf("secret %s is given twice (--http-secret and %s%s?)", s.Name, EnvSecretPrefix, s.Name)
		}
		seen[s.Name] = true
		if _, err := s.value(); err != nil {
			return err
		}
	}
	return nil
}

// value reads a secret: its file's content without a final newline, or
// its value. Messages never quote it.
func (s Secret) value() (string, error) {
	v := s.Value
	if s.File != "" {
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("secret %s: %v (--http-secret %s=@%s)", s.Name, err, s.Name, s.File)
		}
		v = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	if err := abi.CheckHeader("X", v); err != nil {
		return "", fmt.Errorf("secret %s holds a control byte (a header's value may not: CR, LF, NUL); only a final newline is dropped", s.Name)
	}
	return v, nil
}

// withSecrets adds the secrets a request names to its headers.
func (c *Client) withSecrets(h http.Header, secrets map[string]string) error {
	for header, name := range secrets {
		if err := abi.CheckHeader(header, ""); err != nil {
			return &Error{Kind: ErrBadRequest, Msg: err.Error()}
		}
		key := http.CanonicalHeaderKey(header)
		if setByClient[key] {
			return &Error{Kind: ErrBadRequest, Msg: fmt.Sprintf("header %s is set by the client, not by a request", key)}
		}
		if len(h.Values(key)) > 0 {
			return &Error{Kind: ErrBadRequest, Msg: fmt.Sprintf("header %s is given both as a value and as the secret %s: give one", key, name)}
		}
		s, ok := c.secrets[name]
		if !ok {
			return &Error{Kind: ErrNoSecret, Msg: fmt.Sprintf("header %s takes the secret %s, which this daemon does not have: start it with --http-secret %s=@FILE (or env %s%s)",
				key, name, name, EnvSecretPrefix, name)}
		}
		v, err := s.value()
		if err != nil {
			return &Error{Kind: ErrNoSecret, Msg: fmt.Sprintf("header %s: %v", key, err)}
		}
		h.Set(key, v)
	}
	return nil
}

// withRequest prefixes an *Error's message with the request it is about.
func withRequest(err error, method, where string) error {
	if e, ok := err.(*Error); ok {
		return &Error{Kind: e.Kind, Msg: fmt.Sprintf("%s %s: %s", method, where, e.Msg)}
	}
	return err
}
