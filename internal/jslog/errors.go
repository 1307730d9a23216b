package jslog

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Errors of the JetStream event log, besides those of eventlog (which
// its methods return wrapped) and of internal/broker (ErrCredentials,
// ErrTLS, ErrRefused, ErrOpenListen, which it shares with NATS
// Streaming).
var (
	// ErrNoJetStream: the NATS server at the URL does not run JetStream
	// (a NATS Streaming server, or nats-server without -js).
	ErrNoJetStream = errors.New("the NATS server does not run JetStream")
	// ErrLayout: a JetStream stream sluice needs exists with settings it
	// cannot change (another application's stream on sluice's subjects,
	// or a stream made by hand).
	ErrLayout = errors.New("JetStream streams do not match sluice's layout")
	// ErrCluster: the cluster options do not go together.
	ErrCluster = errors.New("bad JetStream cluster settings")
)

// StoreError is a damaged JetStream file store of the embedded server: it
// says which stream is damaged, what to do about it and what each way out
// loses. The daemon does not repair a store by itself.
type StoreError struct {
	// Dir is the store's directory (the data dir's jetstream/).
	Dir string
	// Stream is the damaged JetStream stream ("" if the damage is in the
	// server's own files or could not be placed).
	Stream string
	// Err is what the server said.
	Err error
}

func (e *StoreError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the JetStream store in %s is damaged", e.Dir)
	if e.Stream != "" {
		fmt.Fprintf(&b, " (stream %s)", e.Stream)
	}
	fmt.Fprintf(&b, ": %v. Stop every daemon using it, then ", e.Err)
	if e.Stream != "" {
		fmt.Fprintf(&b, "restore %s from a backup, or move %s aside to start without that stream, which loses %s",
			e.Dir, StreamDir(e.Dir, e.Stream), Loses(e.Stream))
		return b.String()
	}
	fmt.Fprintf(&b, "restore %s from a backup, or move it aside to start with an empty store, which loses every function, trigger, workflow, invocation and message", e.Dir)
	return b.String()
}

func (e *StoreError) Unwrap() error { return e.Err }

// StreamDir is where the server keeps a JetStream stream of the store in
// dir (its global account's).
func StreamDir(dir, stream string) string {
	return filepath.Join(dir, "jetstream", "$G", "streams", stream)
}

// Loses says what moving a JetStream stream of sluice's store aside
// loses.
func Loses(stream string) string {
	switch stream {
	case kindCatalog.stream:
		return "every function, trigger and workflow definition (deploy them again, e.g. with sluice apply)"
	case "OBJ_" + blobBucket:
		return "every function's module bytes (deploy the functions again)"
	case kindWF.stream:
		return "the history of every workflow invocation, and the invocations under way"
	case kindCkpt.stream:
		return "nothing that matters: the workflow engine's replay checkpoints (the next start replays every event)"
	case kindShort.stream:
		return "nothing that matters: the engines' heartbeats and recent timer claims"
	case kindLogs.stream:
		return "the recent logs of every function"
	case kindTopic.stream:
		return "every message of every topic, and where their queue triggers were"
	case kindSys.stream:
		return "what sluice keeps in it"
	}
	return "the stream " + stream
}
