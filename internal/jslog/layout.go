package jslog

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The layout: where each sluice stream lives in JetStream. A sluice
// stream is a subject; a few JetStream streams hold them, one per kind of
// retention, so that the server keeps a handful of streams however many
// functions, topics and invocations there are (NATS Streaming keeps a
// channel, with its files, for each).
//
// A stream name maps to the subject
//
//	sluice.<kind>.<name without its "sluice." prefix>   for names under "sluice."
//	sluice.topic.<name>                                 for any other name (a user's topic)
//
// so the kinds' subject spaces are disjoint (JetStream refuses streams
// whose subjects overlap) and a user's topic can never land in one of
// sluice's own streams: "sluice.catalog" is sluice.catalog.catalog, a
// topic named "sluice-catalog" or "catalog" is sluice.topic.catalog.
// Other NATS clients publish to a topic on sluice.topic.<topic>.

// subjectRoot is the first token of every subject sluice uses: on a NATS
// account shared with other applications, sluice keeps to it.
const subjectRoot = "sluice"

// kind is one JetStream stream of the layout.
type kind struct {
	// stream is the JetStream stream's name.
	stream string
	// token is the subject's second token: the stream holds
	// sluice.<token>.>.
	token string
	// what the stream holds, for its description.
	what string
	// Limits. 0 is unlimited.
	maxAge        time.Duration
	maxMsgsPerSub int64
	maxBytes      int64
}

// Retention of the kinds. What sluice keeps for good (the catalog,
// workflow events, users' topics) is never dropped by a limit: only Delete
// removes it. The rest mirrors internal/broker's channel limits, so both
// brokers keep the same history.
const (
	// logMaxMsgs, logMaxAge: a function's recent logs are what `sluice
	// fn logs` shows; the same bounds as NATS Streaming's log channels.
	logMaxMsgs = 10000
	logMaxAge  = 24 * time.Hour
	// logMaxBytes bounds all functions' logs together (JetStream has no
	// per-subject byte limit): 64 MiB per function on NATS Streaming,
	// here 1 GiB for all; the oldest go first.
	logMaxBytes = 1 << 30
	// checkpointMaxMsgs: readers take the newest checkpoint, so the last
	// thousand per stream are plenty (as on NATS Streaming).
	checkpointMaxMsgs = 1000
	// shortMaxAge: heartbeats and timer claims matter for seconds to
	// minutes; an hour leaves room to look at them.
	shortMaxAge = time.Hour
	// DedupWindow is how long a message ID is remembered. It covers a
	// publish retried after a lost acknowledgement across a reconnect
	// or a leader election (seconds) with a wide margin; it costs the
	// server memory per ID-carrying message published within it. Two
	// minutes is JetStream's own default.
	DedupWindow = 2 * time.Minute
)

// The kinds, most specific first: kindOf takes the first that matches.
var (
	kindCatalog = &kind{stream: "SLUICE_CATALOG", token: "catalog", what: "the catalog: functions, triggers, workflows; kept for good"}
	kindCkpt    = &kind{stream: "SLUICE_CKPT", token: "ckpt", what: "workflow replay checkpoints; the newest per stream", maxMsgsPerSub: checkpointMaxMsgs}
	kindShort   = &kind{stream: "SLUICE_SHORT", token: "short", what: "engine heartbeats and timer claims; kept an hour", maxAge: shortMaxAge}
	kindWF      = &kind{stream: "SLUICE_WF", token: "wf", what: "workflow events; kept until deleted"}
	kindLogs    = &kind{stream: "SLUICE_LOGS", token: "logs", what: "function logs; bounded per function and in age", maxMsgsPerSub: logMaxMsgs, maxAge: logMaxAge, maxBytes: logMaxBytes}
	kindSys     = &kind{stream: "SLUICE_SYS", token: "sys", what: "sluice's other streams; kept for good"}
	kindTopic   = &kind{stream: "SLUICE_TOPICS", token: "topic", what: "users' topics; kept for good"}

	kinds = []*kind{kindCatalog, kindCkpt, kindShort, kindWF, kindLogs, kindSys, kindTopic}
)

// kindOf returns the kind that holds a stream.
func kindOf(name string) *kind {
	rest, ok := strings.CutPrefix(name, subjectRoot+".")
	if !ok {
		return kindTopic
	}
	switch {
	case rest == "catalog" || strings.HasPrefix(rest, "catalog."):
		return kindCatalog
	case rest == "wf.checkpoints" || strings.HasPrefix(rest, "wf.checkpoints.") || rest == "ckpt" || strings.HasPrefix(rest, "ckpt."):
		return kindCkpt
	case rest == "wf.nodes" || rest == "nodes" || strings.HasPrefix(rest, "nodes.") || strings.HasPrefix(rest, "ticks."):
		return kindShort
	case rest == "wf" || strings.HasPrefix(rest, "wf."):
		return kindWF
	case strings.HasPrefix(rest, "logs."):
		return kindLogs
	}
	return kindSys
}

// subject returns the subject a (valid) stream name maps to.
func subject(name string) string {
	k := kindOf(name)
	if k == kindTopic {
		return subjectRoot + "." + k.token + "." + name
	}
	return subjectRoot + "." + k.token + "." + strings.TrimPrefix(name, subjectRoot+".")
}

// streamOf returns the stream name a subject of the layout maps from
// (the inverse of subject).
func streamOf(subj string) string {
	rest, ok := strings.CutPrefix(subj, subjectRoot+".")
	if !ok {
		return subj
	}
	token, name, _ := strings.Cut(rest, ".")
	if token == kindTopic.token {
		return name
	}
	return subjectRoot + "." + name
}

// subjects is the subject filter of the kind's JetStream stream: every
// subject it holds.
func (k *kind) subjects() string { return subjectRoot + "." + k.token + ".>" }

// inFamily tells whether subj is of the family whose prefix maps to
// the subject prefix (the prefix's own, or one below it).
func inFamily(subj, prefix string) bool {
	rest, ok := strings.CutPrefix(subj, prefix)
	return ok && (rest == "" || rest[0] == '.')
}

// familySubjects returns the subjects of a family (eventlog.Families):
// the prefix's own and those below it. A family is read in the JetStream
// stream of its prefix's kind: the names under it are of that kind too
// but where a more specific kind claims them ("sluice" holds
// "sluice.catalog", kept apart), which sluice's families never do.
func familySubjects(prefix string) []string {
	subj := subject(prefix)
	return []string{subj, subj + ".>"}
}

// config returns the kind's JetStream stream configuration.
func (k *kind) config(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              k.stream,
		Description:       "sluice: " + k.what,
		Subjects:          []string{k.subjects()},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          replicas,
		MaxAge:            k.maxAge,
		MaxMsgsPerSubject: orUnlimited(k.maxMsgsPerSub),
		MaxBytes:          orUnlimited(k.maxBytes),
		MaxMsgs:           -1,
		Discard:           jetstream.DiscardOld,
		Duplicates:        DedupWindow,
		// Purges are how Delete reclaims a stream; direct gets are off so
		// that Last reads the leader, never a replica that lags.
		AllowDirect: false,
	}
}

func orUnlimited(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// blobBucket is the Object Store bucket that holds Blobs.
const blobBucket = "sluice-modules"
