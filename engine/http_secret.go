package engine

// Secrets in an http task's headers: a header given as {secret: NAME}
// takes the value of the daemon-side secret NAME (sluice daemon
// --http-secret NAME=@FILE), which the daemon's outbound client puts in
// when it sends the request. TaskScheduled records the name; the value
// is in no event, no status, no expression's reach. See engine/README.md,
// "Calling out: the http built-in".

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// secretName is a secret's name, as the daemon takes it (an environment
// variable's characters: SLUICE_HTTP_SECRET_NAME gives one too).
var secretName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,62}$`)

const secretShape = "{secret: NAME} (NAME: a letter then up to 62 letters, digits or _)"

// secretRef reads a header's value {secret: NAME}.
func secretRef(header string, m map[string]any) (string, error) {
	name, ok := m["secret"].(string)
	if len(m) != 1 || !ok || !secretName.MatchString(name) {
		return "", fmt.Errorf("header %s is %s: a map is %s", header, brief(m), secretShape)
	}
	return name, nil
}

// secretHeader checks a header's value written as a mapping in the
// definition: {secret: NAME}, NAME literal or an expression.
func (p *parser) secretHeader(header string, v *yaml.Node, what string) {
	if len(v.Content) != 2 || v.Content[0].Value != "secret" || v.Content[1].Kind != yaml.ScalarNode {
		p.errorf(v.Line, "%s: http: header %s: a map is %s", what, header, secretShape)
		return
	}
	if n := v.Content[1]; !secretName.MatchString(n.Value) && !strings.Contains(n.Value, "${") {
		p.errorf(n.Line, "%s: http: header %s: secret %q: a secret's name is a letter then up to 62 letters, digits or _ (as in sluice daemon --http-secret NAME=@FILE)", what, header, n.Value)
	}
}
