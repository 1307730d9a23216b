// Package migrate copies what sluice keeps durable from one event log to
// another: from NATS Streaming (internal/natslog) into JetStream
// (internal/jslog), for `sluice migrate`. It copies the catalog (functions,
// triggers, workflows), the modules the catalog references, and the
// workflow events of every invocation that has not finished; finished
// invocations are history and stay behind unless Options.History. Logs,
// users' topics, timer claims, node heartbeats and replay checkpoints are
// not copied (Report.NotCopied says so).
//
// The source is only read. A run is idempotent, whenever it was
// interrupted: every message it publishes carries an ID made of the
// source's fingerprint, the source stream and the source sequence
// (JetStream de-duplicates those within its window), and before
// publishing a message a run looks for its ID in the target stream
// (beyond the window), reading each target stream once. Checkpoints in
// the target's ProgressStream let a run that resumes skip the workflow
// events a previous one is known to have copied without reading them
// back. See docs/RATIONALE.md, "Migrating idempotently".
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/catalog"
)

// ProgressStream is the target's stream of the migration's records:
// checkpoints of the workflow events copied, and a summary at the end of
// each run.
const ProgressStream = "sluice.migrate"

// checkpointEvery is how many workflow events are copied between two
// checkpoints: a run that resumes checks at most this many again in the
// target (a checkpoint costs one publish; a thousand events cost a
// thousand).
const checkpointEvery = 1000

// fingerprintLen is how many hex digits of the sha256 of the source's
// first catalog event name the source in message IDs: 64 bits, so two
// sources never share one.
const fingerprintLen = 16

// Options configure a migration.
type Options struct {
	// Source is the event log read (NATS Streaming); it is only read.
	Source eventlog.Log
	// Target is the event log written (JetStream): it must deliver
	// message IDs (Features.Headers) and de-duplicate them.
	Target eventlog.Log
	// History copies finished invocations too.
	History bool
	// DryRun reads both sides and counts what a run would copy, writing
	// nothing.
	DryRun bool
	// Force copies the catalog into a target that holds catalog events
	// not from this source, after them.
	Force bool
	// Logger receives progress.
	Logger *slog.Logger
}

// Count is what a kind of item came to: copied by this run, or skipped
// because the target held it already.
type Count struct {
	Copied  int `json:"copied"`
	Skipped int `json:"skipped"`
}

// Report is what a run did (or, with DryRun, would do).
type Report struct {
	// Source is the source's fingerprint: the first 16 hex digits of the
	// sha256 of its first catalog event.
	Source string `json:"source"`
	// Target names the target's implementation.
	Target string `json:"target"`
	DryRun bool   `json:"dry_run,omitempty"`
	// Functions, Triggers and Workflows are what the source's catalog
	// holds now (and so the target's, once copied).
	Functions int `json:"functions"`
	Triggers  int `json:"triggers"`
	Workflows int `json:"workflows"`
	// CatalogEvents are the source's catalog events.
	CatalogEvents Count `json:"catalog_events"`
	// Modules are the module blobs the catalog references (every version
	// ever deployed), and ModuleBytes the bytes of those copied.
	Modules     Count `json:"modules"`
	ModuleBytes int64 `json:"module_bytes"`
	// MissingModules are modules the catalog references that the source
	// does not hold (or holds corrupt): "sha256 (function NAME)". The
	// source could not run those versions either.
	MissingModules []string `json:"missing_modules,omitempty"`
	// Invocations are those copied (at least one of their events was
	// written by this run) or skipped (all were in the target already);
	// Finished are the finished ones left behind (history).
	Invocations Count `json:"invocations"`
	Finished    int   `json:"finished_not_copied"`
	// Events are the workflow events of the invocations copied.
	Events Count `json:"events"`
	// NotCopied lists what a migration never copies.
	NotCopied []string `json:"not_copied"`
	// Took is how long the run took.
	Took catalog.Duration `json:"took"`
}

// NotCopied is what a migration leaves behind, and why.
var NotCopied = []string{
	"function logs (recent logs stay readable on the old broker)",
	"users' topics and their messages (drain queue triggers before migrating: unacknowledged messages stay on NATS Streaming)",
	"queue triggers' positions and delivery counts (they start afresh on JetStream)",
	"timer claims and node heartbeats (they matter for seconds)",
	"workflow replay checkpoints (the engine writes its own)",
}

// progress is a record of ProgressStream.
type progress struct {
	// Source is the source's fingerprint.
	Source string `json:"source"`
	// What is "events" or "events+history": Seq is the source sequence
	// up to which that selection of workflow events is in the target;
	// "done": Report is a run's summary.
	What   string    `json:"what"`
	Seq    uint64    `json:"seq,omitempty"`
	Time   time.Time `json:"time"`
	Report *Report   `json:"report,omitempty"`
}

// run is one migration.
type run struct {
	o      Options
	log    *slog.Logger
	rep    *Report
	fp     string
	tf     eventlog.Features
	loaded map[string]map[string]bool // target stream -> the IDs of this source in it
}

// Run migrates, and reports what it did. It returns the report so far
// with an error that stopped it; running it again goes on from there.
func Run(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &run{o: o, log: o.Logger, tf: o.Target.Features(), loaded: map[string]map[string]bool{},
		rep: &Report{DryRun: o.DryRun, NotCopied: NotCopied}}
	r.rep.Target = r.tf.Name
	err := r.migrate(ctx)
	r.rep.Took = catalog.Duration(time.Since(start).Round(time.Millisecond))
	if err != nil {
		return r.rep, err
	}
	if !o.DryRun {
		if err := r.record(ctx, &progress{What: "done", Report: r.rep}); err != nil {
			return r.rep, err
		}
	}
	return r.rep, nil
}

func (r *run) migrate(ctx context.Context) error {
	if !r.tf.Headers || !r.tf.Dedup {
		return fmt.Errorf("%w: the target is %s, which does not keep message IDs; migrate writes to JetStream", ErrTarget, r.tf.Name)
	}
	cat, err := r.readCatalog(ctx)
	if err != nil {
		return err
	}
	if err := r.checkTarget(ctx); err != nil {
		return err
	}
	if err := r.copyModules(ctx, cat.modules); err != nil {
		return err
	}
	if err := r.copyCatalog(ctx, cat.msgs); err != nil {
		return err
	}
	return r.copyEvents(ctx)
}

// id is the ID of the copy of a source message: the source's fingerprint,
// its stream ("c" the catalog, "w" the workflow events) and its sequence.
func (r *run) id(stream string, seq uint64) string {
	return r.prefix(stream) + strconv.FormatUint(seq, 10)
}

func (r *run) prefix(stream string) string { return "sluice-migrate." + r.fp + "." + stream + "." }

type sourceMsg struct {
	seq  uint64
	data []byte
}

type moduleRef struct {
	sha       string
	size      int
	functions []string
}

type sourceCatalog struct {
	msgs    []sourceMsg
	modules []*moduleRef // in the order the catalog first references them
}

// readCatalog reads the source's catalog, folds it for the report, and
// names the source by its first event.
func (r *run) readCatalog(ctx context.Context) (*sourceCatalog, error) {
	out := &sourceCatalog{}
	state := catalog.NewState()
	byID := map[string]*moduleRef{}
	_, err := readAll(ctx, r.o.Source, catalog.Channel, func(m *eventlog.Msg) error {
		out.msgs = append(out.msgs, sourceMsg{seq: m.Sequence, data: m.Data})
		var ev catalog.Event
		if json.Unmarshal(m.Data, &ev) != nil {
			return nil // copied as it is: the target skips it as the source did
		}
		if f := ev.Function; ev.Type == catalog.EventFunctionDeployed && f != nil && f.Module != "" {
			ref := byID[f.Module]
			if ref == nil {
				ref = &moduleRef{sha: f.Module, size: f.Size}
				byID[f.Module] = ref
				out.modules = append(out.modules, ref)
			}
			if !containsString(ref.functions, f.Name) {
				ref.functions = append(ref.functions, f.Name)
			}
		}
		fold(state, m.Sequence, &ev)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if len(out.msgs) == 0 {
		return nil, fmt.Errorf("%w: its %s stream is empty: is it the NATS Streaming server (and --cluster-id) the daemons used?", ErrSource, catalog.Channel)
	}
	sum := sha256.Sum256(out.msgs[0].data)
	r.fp = hex.EncodeToString(sum[:])[:fingerprintLen]
	r.rep.Source = r.fp
	r.rep.Functions, r.rep.Triggers, r.rep.Workflows = len(state.Functions), len(state.Triggers), len(state.Workflows)
	r.log.Info("source catalog read", "events", len(out.msgs), "functions", r.rep.Functions, "triggers", r.rep.Triggers, "workflows", r.rep.Workflows, "modules", len(out.modules), "source", r.fp)
	return out, nil
}

// fold applies a catalog event for the counts of the report: an event
// the catalog refuses changes nothing, and one that makes its fold panic
// (a forged one) is skipped, as a daemon does.
func fold(s *catalog.State, seq uint64, ev *catalog.Event) {
	defer func() { _ = recover() }()
	_, _ = s.Apply(seq, ev)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkTarget reads the target's catalog: what this source copied there
// already, and whether anything else is there.
func (r *run) checkTarget(ctx context.Context) error {
	ours := map[string]bool{}
	r.loaded[catalog.Channel] = ours
	prefix := r.prefix("c")
	foreign := &ForeignCatalogError{}
	state := catalog.NewState()
	_, err := readAll(ctx, r.o.Target, catalog.Channel, func(m *eventlog.Msg) error {
		var ev catalog.Event
		ok := json.Unmarshal(m.Data, &ev) == nil
		if ok {
			fold(state, m.Sequence, &ev)
		}
		switch {
		case strings.HasPrefix(m.ID, prefix):
			ours[m.ID] = true
			foreign.Migrated++
		case ok && ev.Type == catalog.EventSync:
			// a daemon started on the target: harmless
		default:
			foreign.Events++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if foreign.Events == 0 {
		return nil
	}
	foreign.Functions, foreign.Triggers, foreign.Workflows = len(state.Functions), len(state.Triggers), len(state.Workflows)
	for name := range state.Functions {
		foreign.Names = append(foreign.Names, name)
	}
	sort.Strings(foreign.Names)
	if len(foreign.Names) > 5 {
		foreign.Names = append(foreign.Names[:5], "...")
	}
	if !r.o.Force {
		return foreign
	}
	r.log.Warn("the target holds another catalog; copying this one after it (--force)", "err", foreign)
	return nil
}

// copyModules copies the modules the catalog references, before the
// events that reference them: a daemon on the target never meets a
// function whose module is not there.
func (r *run) copyModules(ctx context.Context, refs []*moduleRef) error {
	for _, ref := range refs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if b, err := r.o.Target.Blobs().Get(ctx, ref.sha); err == nil && shaOf(b) == ref.sha {
			r.rep.Modules.Skipped++
			continue
		} else if err != nil && !errors.Is(err, eventlog.ErrNotFound) {
			return fmt.Errorf("target: read module %s: %w", ref.sha, err)
		}
		if r.o.DryRun {
			r.rep.Modules.Copied++
			r.rep.ModuleBytes += int64(ref.size)
			continue
		}
		b, err := r.o.Source.Blobs().Get(ctx, ref.sha)
		switch {
		case errors.Is(err, eventlog.ErrNotFound):
			r.missing(ref, "not in the source")
			continue
		case err != nil:
			return fmt.Errorf("source: read module %s: %w", ref.sha, err)
		case shaOf(b) != ref.sha:
			r.missing(ref, "corrupt in the source (its bytes do not match their sha256)")
			continue
		}
		if err := r.o.Target.Blobs().Put(ctx, ref.sha, b); err != nil {
			return fmt.Errorf("target: store module %s (%d bytes): %w", ref.sha, len(b), err)
		}
		r.rep.Modules.Copied++
		r.rep.ModuleBytes += int64(len(b))
	}
	r.log.Info("modules", "copied", r.rep.Modules.Copied, "bytes", r.rep.ModuleBytes, "skipped", r.rep.Modules.Skipped, "missing", len(r.rep.MissingModules))
	return nil
}

func (r *run) missing(ref *moduleRef, why string) {
	what := fmt.Sprintf("%s (function %s)", ref.sha, strings.Join(ref.functions, ", "))
	r.rep.MissingModules = append(r.rep.MissingModules, what)
	r.log.Warn("a module the catalog references is "+why+"; not copied", "module", ref.sha, "functions", ref.functions)
}

func shaOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// copyCatalog copies the catalog's events the target does not hold, in
// order, byte for byte.
func (r *run) copyCatalog(ctx context.Context, msgs []sourceMsg) error {
	ours := r.loaded[catalog.Channel]
	for _, m := range msgs {
		id := r.id("c", m.seq)
		if ours[id] {
			r.rep.CatalogEvents.Skipped++
			continue
		}
		if err := r.publish(ctx, catalog.Channel, id, m.data); err != nil {
			return err
		}
		r.rep.CatalogEvents.Copied++
	}
	r.log.Info("catalog", "copied", r.rep.CatalogEvents.Copied, "skipped", r.rep.CatalogEvents.Skipped)
	return nil
}

// publish writes one copy, unless a dry run. Publishing one message at a
// time, each stored before the next is sent, keeps the target a prefix of
// what a complete run writes, however a run ends.
func (r *run) publish(ctx context.Context, stream, id string, data []byte) error {
	if r.o.DryRun {
		return nil
	}
	if _, err := r.o.Target.Publish(ctx, stream, eventlog.Message{ID: id, Data: data}); err != nil {
		return fmt.Errorf("target: publish to %s: %w", stream, err)
	}
	return nil
}

// copyEvents copies the workflow events of the invocations selected: a
// first pass over the source's events finds which, a second copies them.
func (r *run) copyEvents(ctx context.Context) error {
	x := newIndex()
	last, err := readAll(ctx, r.o.Source, engine.EventsChannel, func(m *eventlog.Msg) error {
		if ev, ok := decode(m); ok {
			x.apply(ev)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	sel, finished := x.selection(r.o.History)
	r.rep.Finished = finished
	what := "events"
	if r.o.History {
		what = "events+history"
	}
	done, err := r.checkpoint(ctx, what)
	if err != nil {
		return err
	}
	r.log.Info("source workflow events read", "events", last, "invocations", len(x.invs), "to_copy", len(sel), "finished_left", finished, "checkpoint", done)
	copied, values := map[string]bool{}, map[string]bool{}
	since := 0
	_, err = readAll(ctx, r.o.Source, engine.EventsChannel, func(m *eventlog.Msg) error {
		ev, ok := decode(m)
		if !ok || !sel[ev.Invocation] {
			return nil
		}
		if m.Sequence <= done {
			r.rep.Events.Skipped++
			return nil
		}
		stream := engine.EventStream(r.tf, ev.Invocation)
		ids, err := r.targetIDs(ctx, stream, "w")
		if err != nil {
			return err
		}
		id := r.id("w", m.Sequence)
		if ids[id] {
			r.rep.Events.Skipped++
			return nil
		}
		if err := r.copyValues(ctx, ev, values); err != nil {
			return err
		}
		if err := r.publish(ctx, stream, id, m.Data); err != nil {
			return err
		}
		ids[id] = true
		copied[ev.Invocation] = true
		r.rep.Events.Copied++
		if since++; since >= checkpointEvery && !r.o.DryRun {
			since = 0
			return r.record(ctx, &progress{What: what, Seq: m.Sequence})
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.rep.Invocations.Copied = len(copied)
	r.rep.Invocations.Skipped = len(sel) - len(copied)
	if !r.o.DryRun && last > done {
		if err := r.record(ctx, &progress{What: what, Seq: last}); err != nil {
			return err
		}
	}
	r.log.Info("workflow events", "copied", r.rep.Events.Copied, "skipped", r.rep.Events.Skipped, "invocations", len(sel))
	return nil
}

// copyValues copies the workflow values an event refers to (those over
// 512 KiB, stored apart in the blob store), before the event: a daemon on
// the target never meets a reference to nothing. done lists those copied.
func (r *run) copyValues(ctx context.Context, ev *engine.Event, done map[string]bool) error {
	for _, d := range []*engine.Data{ev.InputData, ev.OutputData} {
		name := d.BlobName(ev.Invocation)
		if name == "" || done[name] || r.o.DryRun {
			continue
		}
		if _, err := r.o.Target.Blobs().Get(ctx, name); err == nil {
			done[name] = true
			continue
		}
		b, err := r.o.Source.Blobs().Get(ctx, name)
		if err != nil {
			return fmt.Errorf("source: read workflow value %s of invocation %s: %w", name, ev.Invocation, err)
		}
		if err := r.o.Target.Blobs().Put(ctx, name, b); err != nil {
			return fmt.Errorf("target: store workflow value %s (%d bytes): %w", name, len(b), err)
		}
		done[name] = true
	}
	return nil
}

// decode reads a workflow event; what is not one (a forged message) is
// left out: the engine skips it too.
func decode(m *eventlog.Msg) (*engine.Event, bool) {
	var ev engine.Event
	if json.Unmarshal(m.Data, &ev) != nil || ev.Invocation == "" {
		return nil, false
	}
	return &ev, true
}

// targetIDs returns the IDs of this source's copies in a target stream,
// reading it the first time it is asked for.
func (r *run) targetIDs(ctx context.Context, stream, kind string) (map[string]bool, error) {
	if ids, ok := r.loaded[stream]; ok {
		return ids, nil
	}
	ids := map[string]bool{}
	prefix := r.prefix(kind)
	_, err := readAll(ctx, r.o.Target, stream, func(m *eventlog.Msg) error {
		if strings.HasPrefix(m.ID, prefix) {
			ids[m.ID] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	r.loaded[stream] = ids
	return ids, nil
}

// checkpoint returns the highest sequence a previous run recorded for
// this source and selection (0 if none).
func (r *run) checkpoint(ctx context.Context, what string) (uint64, error) {
	var seq uint64
	_, err := readAll(ctx, r.o.Target, ProgressStream, func(m *eventlog.Msg) error {
		var p progress
		if json.Unmarshal(m.Data, &p) == nil && p.Source == r.fp && p.What == what {
			seq = max(seq, p.Seq)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("target: %w", err)
	}
	return seq, nil
}

// record appends a record to ProgressStream.
func (r *run) record(ctx context.Context, p *progress) error {
	p.Source, p.Time = r.fp, time.Now().UTC()
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := r.o.Target.Publish(ctx, ProgressStream, eventlog.Message{Data: data}); err != nil {
		return fmt.Errorf("target: record progress in %s: %w", ProgressStream, err)
	}
	return nil
}
