package cli

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/catalog"
)

// SpecAPIVersion is the apiVersion every document of a spec names.
const SpecAPIVersion = "sluice/v1"

// Kinds of spec documents, in the order apply applies them: a workflow
// names functions, a trigger names a function or a workflow.
const (
	kindFunction = "Function"
	kindWorkflow = "Workflow"
	kindTrigger  = "Trigger"
)

var kindOrder = []string{kindFunction, kindWorkflow, kindTrigger}

// functionDoc is a `kind: Function` document: fn deploy's settings.
type functionDoc struct {
	Name string `yaml:"name"`
	// Path is the module, relative to the spec file's directory.
	Path        string            `yaml:"path"`
	ABI         string            `yaml:"abi"`
	Memory      string            `yaml:"memory"`
	Timeout     string            `yaml:"timeout"`
	Concurrency int               `yaml:"concurrency"`
	Env         map[string]string `yaml:"env"`
	MaxInput    string            `yaml:"max_input"`
	MaxOutput   string            `yaml:"max_output"`
	// CGI runs a WASI command as a CGI script (fn deploy --cgi).
	CGI bool `yaml:"cgi"`
	// MetaEnv gives a WASI command the call's metadata as SLUICE_*
	// variables (fn deploy --meta-env).
	MetaEnv bool `yaml:"meta_env"`
	// Export is an Extism plugin's entry point (fn deploy --export) and
	// Config its config (fn deploy --config).
	Export string            `yaml:"export"`
	Config map[string]string `yaml:"config"`
}

// triggerDoc is a `kind: Trigger` document: trigger create's settings.
type triggerDoc struct {
	Name        string `yaml:"name"`
	Fn          string `yaml:"fn"`
	Workflow    string `yaml:"workflow"`
	HTTPPath    string `yaml:"http_path"`
	Method      string `yaml:"method"`
	HTTPRequest bool   `yaml:"http_request"`
	Topic       string `yaml:"topic"`
	RespTopic   string `yaml:"resp_topic"`
	ErrorTopic  string `yaml:"error_topic"`
	MaxRetries  *int   `yaml:"max_retries"`
	MaxInflight int    `yaml:"max_inflight"`
	AckWait     string `yaml:"ack_wait"`
	Cron        string `yaml:"cron"`
}

// specDoc is one document of a spec, checked.
type specDoc struct {
	index int // from 1, among the file's non-empty documents
	line  int // where it starts in the file
	kind  string
	name  string

	// Function: the module's path (resolved), and the deploy query.
	path  string
	query url.Values
	cfg   catalog.Config
	// Workflow: the document's own text, and the same padded with blank
	// lines so that the engine's line numbers are the file's; once
	// checked against the daemon, the definition.
	source, padded string
	def            *engine.Definition
	// Trigger: the request that creates it, and the trigger it makes.
	req     api.TriggerRequest
	trigger catalog.Trigger
}

// label names the document in messages: `document 3 (Trigger "t")`.
func (d *specDoc) label() string {
	switch {
	case d.kind != "" && d.name != "":
		return fmt.Sprintf("document %d (%s %q)", d.index, d.kind, d.name)
	case d.kind != "":
		return fmt.Sprintf("document %d (%s)", d.index, d.kind)
	}
	return fmt.Sprintf("document %d", d.index)
}

// spec is a parsed spec file.
type spec struct {
	file string // as messages name it
	docs []*specDoc
}

func (s *spec) errorf(d *specDoc, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %s", s.file, d.label(), fmt.Sprintf(format, args...))
}

// ofKind returns the documents of a kind, in file order.
func (s *spec) ofKind(kind string) []*specDoc {
	var out []*specDoc
	for _, d := range s.docs {
		if d.kind == kind {
			out = append(out, d)
		}
	}
	return out
}

func (s *spec) has(kind, name string) bool {
	for _, d := range s.docs {
		if d.kind == kind && d.name == name {
			return true
		}
	}
	return false
}

// chunk is the text of one YAML document and the line it starts on.
type chunk struct {
	text string
	line int
}

// splitDocuments cuts a multi-document YAML stream at its document
// markers ("---" and "..." at the start of a line), keeping each
// document's own text: a workflow's source is its document as written.
func splitDocuments(data string) []chunk {
	var out []chunk
	var cur strings.Builder
	start := 0
	flush := func() {
		out = append(out, chunk{cur.String(), start})
		cur.Reset()
		start = 0
	}
	marker := func(line, m string) (string, bool) {
		rest, ok := strings.CutPrefix(line, m)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
			return "", false
		}
		return strings.TrimSpace(rest), true
	}
	for i, l := range strings.SplitAfter(data, "\n") {
		n := i + 1
		bare := strings.TrimRight(l, "\r\n")
		if rest, ok := marker(bare, "---"); ok {
			flush()
			if rest != "" && !strings.HasPrefix(rest, "#") {
				cur.WriteString(rest + "\n") // content on the marker's line
				start = n
			}
			continue
		}
		if _, ok := marker(bare, "..."); ok {
			flush()
			continue
		}
		if l == "" {
			continue
		}
		if start == 0 {
			start = n
		}
		cur.WriteString(l)
	}
	flush()
	return out
}

// trimBlankLines drops the blank lines a document's text starts and ends
// with, so that a workflow's source (and revision) does not depend on the
// spacing between documents.
func trimBlankLines(s string) (string, int) {
	skipped := 0
	for {
		line, rest, ok := strings.Cut(s, "\n")
		if !ok || strings.TrimSpace(line) != "" {
			break
		}
		s = rest
		skipped++
	}
	return strings.TrimRight(s, " \t\r\n") + "\n", skipped
}

// parseSpec parses and checks a spec file: every document's apiVersion,
// kind, name and fields, without touching the daemon or the files it
// names. dir is where relative module paths start.
func parseSpec(file, dir string, data []byte) (*spec, error) {
	s := &spec{file: file}
	seen := map[string]*specDoc{}
	index := 0
	for _, c := range splitDocuments(string(data)) {
		text, skipped := trimBlankLines(c.text)
		if strings.TrimSpace(text) == "" {
			continue
		}
		line := c.line + skipped
		// blank lines before the text make YAML's line numbers the file's
		padded := strings.Repeat("\n", line-1) + text
		var node yaml.Node
		err := yaml.Unmarshal([]byte(padded), &node)
		if err == nil && (len(node.Content) == 0 || isComments(node.Content[0])) {
			continue // only comments
		}
		index++
		d := &specDoc{index: index, line: line}
		if err != nil {
			return nil, s.errorf(d, "%v", yamlError(err))
		}
		if err := d.check(s, &node, text, padded, dir); err != nil {
			return nil, err
		}
		key := d.kind + "/" + d.name
		if prev := seen[key]; prev != nil {
			return nil, s.errorf(d, "%s %q is also %s (line %d): give each %s a different name",
				d.kind, d.name, prev.label(), prev.line, strings.ToLower(d.kind))
		}
		seen[key] = d
		s.docs = append(s.docs, d)
	}
	if len(s.docs) == 0 {
		return nil, fmt.Errorf("%s: no documents: want Function, Workflow and Trigger documents with apiVersion: %s", file, SpecAPIVersion)
	}
	for _, d := range s.ofKind(kindTrigger) {
		if err := s.checkTarget(d); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func isComments(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && n.Value == ""
}

// yamlError makes a YAML error one readable message.
func yamlError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// fieldsOf lists the YAML fields of a document type.
func fieldsOf(v any) []string {
	fields := []string{"apiVersion", "kind"}
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		fields = append(fields, strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0])
	}
	return fields
}

// check checks a document's header and fields and fills d.
func (d *specDoc) check(s *spec, node *yaml.Node, text, padded, dir string) error {
	root := node.Content[0]
	if root.Kind != yaml.MappingNode {
		return s.errorf(d, "line %d: want a mapping with apiVersion, kind and name", root.Line)
	}
	head := map[string]*yaml.Node{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		head[root.Content[i].Value] = root.Content[i+1]
	}
	str := func(field string) (string, error) {
		v, ok := head[field]
		if !ok {
			return "", nil
		}
		if v.Kind != yaml.ScalarNode {
			return "", s.errorf(d, "line %d: %s: want a string", v.Line, field)
		}
		return v.Value, nil
	}
	kind, err := str("kind")
	if err != nil {
		return err
	}
	if slices.Contains(kindOrder, kind) {
		d.kind = kind
	}
	if d.name, err = str("name"); err != nil {
		return err
	}
	version, err := str("apiVersion")
	if err != nil {
		return err
	}
	switch {
	case version == "":
		return s.errorf(d, "apiVersion is missing: add apiVersion: %s", SpecAPIVersion)
	case version != SpecAPIVersion:
		return s.errorf(d, "apiVersion %q is not supported: use %s", version, SpecAPIVersion)
	case kind == "":
		return s.errorf(d, "kind is missing: use Function, Workflow or Trigger")
	case d.kind == "":
		return s.errorf(d, "kind %q is unknown: use Function, Workflow or Trigger", kind)
	case d.name == "":
		return s.errorf(d, "name is missing")
	}
	if err := catalog.ValidateName(strings.ToLower(d.kind), d.name); err != nil {
		return s.errorf(d, "%s", strings.TrimPrefix(err.Error(), "invalid: "))
	}
	switch d.kind {
	case kindWorkflow:
		// the engine checks the rest: the document is the definition
		d.source, d.padded = text, padded
		return nil
	case kindFunction:
		var f functionDoc
		if err := decodeStrict(s, d, root, &f); err != nil {
			return err
		}
		return d.checkFunction(s, &f, dir)
	default:
		var t triggerDoc
		if err := decodeStrict(s, d, root, &t); err != nil {
			return err
		}
		return d.checkTrigger(s, &t)
	}
}

// decodeStrict decodes a mapping into a document type, refusing fields it
// does not have.
func decodeStrict(s *spec, d *specDoc, root *yaml.Node, v any) error {
	known := fieldsOf(reflect.ValueOf(v).Elem().Interface())
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if !slices.Contains(known, k.Value) {
			return s.errorf(d, "line %d: unknown field %q: a %s has %s", k.Line, k.Value, d.kind, strings.Join(known[2:], ", "))
		}
	}
	if err := root.Decode(v); err != nil {
		return s.errorf(d, "%s", yamlError(err))
	}
	return nil
}

func (d *specDoc) checkFunction(s *spec, f *functionDoc, dir string) error {
	if f.Path == "" {
		return s.errorf(d, "path is missing: give the .wasm module, relative to the spec's directory")
	}
	d.path = f.Path
	if !filepath.IsAbs(d.path) {
		d.path = filepath.Join(dir, d.path)
	}
	var timeout time.Duration
	if f.Timeout != "" {
		var err error
		if timeout, err = time.ParseDuration(f.Timeout); err != nil || timeout <= 0 {
			return s.errorf(d, "timeout %q: want a positive duration like 5s", f.Timeout)
		}
	}
	if f.Concurrency < 0 {
		return s.errorf(d, "concurrency %d: want a positive number", f.Concurrency)
	}
	env := make([]string, 0, len(f.Env))
	for _, k := range sortedKeys(f.Env) {
		env = append(env, k+"="+f.Env[k])
	}
	config := make([]string, 0, len(f.Config))
	for _, k := range sortedKeys(f.Config) {
		config = append(config, k+"="+f.Config[k])
	}
	q, err := deployQuery(deploySettings{
		abi: f.ABI, memory: f.Memory, timeout: timeout, concurrency: f.Concurrency,
		maxInput: f.MaxInput, maxOutput: f.MaxOutput, env: env, cgi: f.CGI, metaEnv: f.MetaEnv,
		export: f.Export, config: config,
	}, fieldNames)
	if err != nil {
		return s.errorf(d, "%v", err)
	}
	// the daemon checks the same; checking now changes nothing on a mistake
	if d.cfg, err = api.ParseConfig(q); err != nil {
		msg := strings.TrimPrefix(err.Error(), "invalid: ")
		for _, p := range []string{"max-input", "max-output"} {
			msg = strings.Replace(msg, p+":", fieldNames(p)+":", 1)
		}
		return s.errorf(d, "%s", msg)
	}
	d.query = q
	return nil
}

func (d *specDoc) checkTrigger(s *spec, t *triggerDoc) error {
	ts := triggerSettings{
		fn: t.Fn, workflow: t.Workflow, httpPath: t.HTTPPath, method: t.Method, httpRequest: t.HTTPRequest,
		topic: t.Topic, respTopic: t.RespTopic, errorTopic: t.ErrorTopic,
		maxRetries: t.MaxRetries, maxInflight: t.MaxInflight, ackWait: t.AckWait, cron: t.Cron,
	}
	req, err := ts.request(d.name, fieldNames)
	if err != nil {
		return s.errorf(d, "%s", strings.TrimPrefix(err.Error(), "trigger "+d.name+": "))
	}
	tr, err := req.Trigger()
	if err == nil {
		switch {
		case tr.HTTP != nil:
			if err = catalog.ValidateHTTP(tr.HTTP); err == nil {
				err = catalog.ValidateHTTPTarget(&tr)
			}
		case tr.Queue != nil:
			err = catalog.ValidateQueue(tr.Queue)
		case tr.Cron != nil:
			err = catalog.ValidateCron(tr.Cron)
		}
	}
	if err != nil {
		return s.errorf(d, "%s", specFlags(strings.TrimPrefix(err.Error(), "invalid: ")))
	}
	d.req, d.trigger = req, tr
	return nil
}

// specFlags names settings in a message as a spec's fields, not flags.
func specFlags(msg string) string {
	for _, f := range []string{"http-path", "http-request", "method", "topic", "resp-topic", "error-topic", "max-retries", "max-inflight", "ack-wait", "cron", "fn", "workflow"} {
		msg = strings.ReplaceAll(msg, "--"+f, fieldNames(f))
	}
	return msg
}

// checkTarget checks that a trigger's function or workflow is in the
// spec, or may be on the daemon (checked against it later).
func (s *spec) checkTarget(d *specDoc) error {
	if wf := d.req.Workflow; wf != "" {
		if err := catalog.ValidateName("workflow", wf); err != nil {
			return s.errorf(d, "workflow: %s", strings.TrimPrefix(err.Error(), "invalid: "))
		}
	} else if err := catalog.ValidateName("function", d.req.Function); err != nil {
		return s.errorf(d, "fn: %s", strings.TrimPrefix(err.Error(), "invalid: "))
	}
	return nil
}
