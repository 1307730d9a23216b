package engine

import (
	"context"
	"fmt"
	"regexp"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/eventlog"
)

// Signals: a wait task (run: wait, inputs: {signal: NAME}) suspends until
// a signal of that name is delivered to its invocation; its output is the
// signal's data. A signal is an event any node may write (SignalSent),
// like CancelRequested: whichever daemon the request reached writes it to
// the invocation's log, and every node folds it when it reads it back,
// the owner too, so that every fold sees the signals in the log's order.
// The fold keeps the signals no wait has taken, per invocation, in that
// order; the owner's wait takes the oldest of its name, and its
// TaskSucceeded names the one it took (its sequence), which the fold then
// removes: a replay takes exactly the same ones.

// EventSignalSent delivers a signal to an invocation: its name (Signal)
// and data (InputData, or Input for a value the API made: text as a
// string). Any node writes it; it applies while the invocation runs.
const EventSignalSent = "SignalSent"

// builtinWait is the built-in that waits for a signal.
const builtinWait = "wait"

// Limits of the signals an invocation keeps.
const (
	// maxPendingSignals bounds the signals delivered to an invocation and
	// not yet taken by a wait: each is held in memory by every node until
	// a wait takes it or the invocation ends. A thousand is far more than
	// waits a workflow writes (approvals, callbacks); a sender looping on
	// a signal no wait takes is stopped there.
	maxPendingSignals = 1000
	// maxPendingSignalBytes bounds their data together, for the same
	// reason: 1,000 signals of MaxData would be 512 MiB on every node.
	maxPendingSignalBytes = 8 << 20
	// maxSignalName is the longest signal name.
	maxSignalName = 63
)

var signalNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,63}$`)

func validSignal(name string) bool { return signalNamePattern.MatchString(name) }

func badSignal(name string) string {
	return fmt.Sprintf("signal name %q: use 1 to %d letters, digits, '_', '.' and '-'", name, maxSignalName)
}

// pendingSignal is a signal no wait has taken yet.
type pendingSignal struct {
	// seq is the sequence of its SignalSent: what the TaskSucceeded of
	// the wait that takes it names.
	seq  uint64
	name string
	data datum
}

// anyNodeWrites tells whether an event of this type may come from a node
// other than the invocation's owner: requests the owner acts on.
func anyNodeWrites(typ string) bool {
	return typ == eventCancelRequested || typ == EventSignalSent
}

// appliedOnRead tells whether an event this node wrote is folded when it
// is read back from the log rather than when it was written: signals
// (their order is the log's, the same on every node) and redrives (the
// first in the log wins).
func appliedOnRead(typ string) bool {
	return typ == EventSignalSent || typ == EventInvocationRedriven
}

// signal folds a SignalSent: kept, after those before it, while the
// invocation runs and within the limits (beyond, every fold drops it
// alike; Engine.Signal refuses it first). A signal is folded when read
// from the log, and the owner folds the end it writes at once: a signal
// before the end in the log, read by the owner after it ended the
// invocation, is kept as a fold from the log keeps it (keptSignals).
func (inv *invState) signal(ev *Event) error {
	if inv.status != StatusRunning && (inv.endSeq != 0 || !inv.keepsSignals()) ||
		!validSignal(ev.Signal) || ev.InputData != nil && ev.InputData.Blob != "" {
		return errIgnored
	}
	d := evInput(ev)
	if len(inv.signals) >= maxPendingSignals || inv.signalBytes()+len(d.b) > maxPendingSignalBytes {
		return errIgnored
	}
	inv.signals = append(inv.signals, pendingSignal{seq: ev.Seq, name: ev.Signal, data: d})
	return nil
}

// signalBytes is the size of the pending signals' data.
func (inv *invState) signalBytes() int {
	n := 0
	for _, s := range inv.signals {
		n += len(s.data.b)
	}
	return n
}

// keptSignals are the signals no wait took that an invocation that has
// just ended keeps: all of them if a redrive may continue it (a root that
// failed or was canceled, not compensated), so that a redriven wait takes
// one sent before the end as it would have before it; none otherwise.
// They are in its log already: every fold keeps the same ones, and a
// replay too.
func (inv *invState) keptSignals() []pendingSignal {
	if !inv.keepsSignals() {
		return nil
	}
	return inv.signals
}

// keepsSignals tells whether an invocation that has ended keeps its
// signals (keptSignals).
func (inv *invState) keepsSignals() bool {
	return inv.parent == "" && inv.status != StatusSucceeded && inv.comp.state == ""
}

// keptLate counts in a finished invocation's footprint a signal its owner
// folded after ending it (signal).
func (s *state) keptLate(inv *invState) {
	old := inv.bytes
	inv.bytes = inv.footprint()
	if slices.Contains(s.finished, inv) {
		s.finishedBytes += inv.bytes - old
	}
}

// signalsHeld is what the signals an invocation keeps hold in memory, for
// its footprint once finished (retention counts it).
func (inv *invState) signalsHeld() int {
	n := 0
	for _, s := range inv.signals {
		n += signalOverhead + len(s.name) + s.data.held()
	}
	return n
}

// signalOverhead is a kept signal's memory besides its name and data:
// its pendingSignal (sequence, string and datum headers).
const signalOverhead = 80

// nextSignal is the oldest pending signal of a name, or nil.
func (inv *invState) nextSignal(name string) *pendingSignal {
	for i := range inv.signals {
		if inv.signals[i].name == name {
			return &inv.signals[i]
		}
	}
	return nil
}

// consume removes the signal a wait's TaskSucceeded names, telling
// whether it was pending.
func (inv *invState) consume(ev *Event) bool {
	for i, s := range inv.signals {
		if s.seq == ev.Consumed && s.name == ev.Signal {
			inv.signals = append(inv.signals[:i:i], inv.signals[i+1:]...)
			return true
		}
	}
	return false
}

// waitSignal reads the signal name of a wait's recorded input.
func waitSignal(x any) (string, error) {
	m, ok := x.(map[string]any)
	if !ok {
		return "", fmt.Errorf("wait: want inputs {signal: NAME}, got %s", brief(x))
	}
	name, ok := m["signal"].(string)
	if !ok {
		return "", fmt.Errorf("wait: the signal is %s, not a name", brief(m["signal"]))
	}
	if !validSignal(name) {
		return "", fmt.Errorf("wait: %s", badSignal(name))
	}
	return name, nil
}

// waiting is the signal a task waits for ("" if it is not a running
// wait): what wf status shows.
func (t *taskState) waiting() string {
	if t.run != builtinWait || t.status != TaskRunning {
		return ""
	}
	name, _ := waitSignal(t.input.view())
	return name
}

// wait parses a wait's inputs: {signal: NAME}, NAME a literal (checked
// now) or an expression (checked when the task is scheduled); or {topic:
// TOPIC, match: CONDITION} (topicwait.go).
func (p *parser) wait(t *taskSpec, n *yaml.Node, what string) {
	if n == nil || n.Kind != yaml.MappingNode {
		line := t.line
		if n != nil {
			line = n.Line
		}
		p.errorf(line, "%s: wait takes inputs: {signal: NAME} or {topic: TOPIC, match: CONDITION}", what)
		return
	}
	ok := true
	var topic, match *yaml.Node
	p.fields(n, what, func(key string, k, v *yaml.Node) {
		switch key {
		case "signal":
		case "topic":
			topic = v
		case "match":
			match = v
		default:
			p.errorf(k.Line, "%s: wait: unknown input %q (inputs: signal, or topic and match; a timeout is the task's timeout:)", what, key)
			ok = false
		}
	})
	if !ok {
		return
	}
	if hasKey(n, "signal") || topic == nil {
		if p.waitOne(n, topic, match, what) {
			p.waitSignal(t, n, what)
		}
		return
	}
	p.waitTopic(t, n, topic, match, what)
}

// waitSignal parses a wait's inputs {signal: NAME}.
func (p *parser) waitSignal(t *taskSpec, n *yaml.Node, what string) {
	t.inputs = p.value(n, t.scope)
	if t.inputs.static {
		if _, err := waitSignal(t.inputs.lit); err != nil {
			p.errorf(n.Line, "%s: %v", what, err)
		}
	}
}

// driveWait runs a wait: started, then suspended (no goroutine, no timer)
// until a signal of its name is pending; any SignalSent reconciles the
// invocation again.
func (e *Engine) driveWait(inv *invState, spec *taskSpec, t *taskState) {
	if _, topic, _ := waitInput(t.input.view()); topic != "" {
		e.driveTopicWait(inv, spec, t, topic)
		return
	}
	if t.status == TaskScheduled {
		e.emit(inv, nil, &Event{Type: EventTaskStarted, Task: t.id, Attempt: t.attempts + 1})
	}
	if t.status != TaskRunning {
		return
	}
	name, err := waitSignal(t.input.view())
	if err != nil {
		e.fail(inv, t, err.Error())
		return
	}
	s := inv.nextSignal(name)
	if s == nil {
		return
	}
	out := s.data
	if out.none() {
		out = jsonNull
	}
	ev := &Event{Type: EventTaskSucceeded, Task: t.id, Attempt: t.attempts, Signal: name, Consumed: s.seq}
	out.put(ev, true)
	e.emit(inv, nil, ev)
}

// Signal delivers a signal to a running invocation: the first wait of
// that name (now or later) takes it and outputs its data, read as an
// invocation's input is (f). It returns once the signal is stored in the
// invocation's log; the owner, wherever it is, takes it from there (a
// signal sent while the owner is down waits for it). ErrNotFound for an
// unknown invocation, ErrConflict for one that has ended or that holds
// as many signals as it may, ErrInvalid for a bad name or data,
// ErrTooLarge for data over MaxData.
func (e *Engine) Signal(ctx context.Context, id, name string, data []byte, f InputFormat) error {
	if !validSignal(name) {
		return fmt.Errorf("%w: %s", ErrInvalid, badSignal(name))
	}
	d, err := inputValue(data, f)
	if err != nil {
		return err
	}
	if err := d.checkStored("signal data"); err != nil {
		return &tooLargeError{msg: err.Error() + ": a signal carries at most that (pass a larger value in a function's output, or send a reference to it)"}
	}
	e.mu.Lock()
	inv := e.st.invs[id]
	var refuse error
	switch {
	case inv == nil:
		refuse = fmt.Errorf("%w: no invocation %q", ErrNotFound, id)
	case inv.status != StatusRunning:
		refuse = fmt.Errorf("%w: invocation %s has ended (%s): a signal is for a running invocation", ErrConflict, id, inv.status)
	case len(inv.signals) >= maxPendingSignals:
		refuse = fmt.Errorf("%w: invocation %s holds %d signals no wait has taken, the most it keeps: does a wait take signal %q?",
			ErrConflict, id, len(inv.signals), name)
	case inv.signalBytes()+len(d.b) > maxPendingSignalBytes:
		refuse = fmt.Errorf("%w: invocation %s holds %d bytes of signals no wait has taken; %d more would be over the %d MiB it keeps: does a wait take signal %q?",
			ErrConflict, id, inv.signalBytes(), len(d.b), maxPendingSignalBytes>>20, name)
	}
	e.mu.Unlock()
	if refuse != nil {
		return refuse
	}
	ev := &Event{Type: EventSignalSent, Invocation: id, Node: e.o.Node, Time: e.now(), Signal: name}
	d.put(ev, false)
	msg, err := encodeEvent(ev)
	if err != nil {
		return err
	}
	if _, err := e.o.Log.Publish(ctx, e.stream(id), eventlog.Message{Data: msg}); err != nil {
		return fmt.Errorf("storing the signal: %w", err)
	}
	return nil
}
