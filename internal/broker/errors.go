package broker

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/eventlog"
)

// Errors of the broker.
var (
	// ErrNotConnected: the connection to NATS Streaming is down (it is
	// being re-established) and the operation could not wait. It is an
	// eventlog.ErrNotConnected.
	ErrNotConnected = fmt.Errorf("%w (NATS Streaming)", eventlog.ErrNotConnected)
	// ErrClosed: the connection was closed. It is an eventlog.ErrClosed.
	ErrClosed = fmt.Errorf("broker connection: %w", eventlog.ErrClosed)
	// ErrCredentials: the NATS credentials given do not go together (a
	// user without a password, a token and a user...), or a file is
	// missing.
	ErrCredentials = errors.New("bad NATS credentials")
	// ErrTLS: the TLS files given do not go together or are missing.
	ErrTLS = errors.New("bad NATS TLS settings")
	// ErrRefused: the NATS server refused the credentials, or its
	// certificate is not trusted. Trying again does not help.
	ErrRefused = errors.New("NATS refused the connection")
	// ErrOpenListen: the embedded server was asked to serve beyond
	// loopback without credentials.
	ErrOpenListen = errors.New("refusing to serve NATS beyond loopback without credentials")
)

// StoreError is a damaged file store of the embedded server: it says
// which part is damaged, what to do about it, and what each way out
// loses. The daemon does not repair a store by itself: what to give up
// is the operator's choice.
type StoreError struct {
	// Dir is the store's directory (the data dir's nats/).
	Dir string
	// Channel is the damaged channel, "" if the damage is in the server's
	// own files or could not be placed.
	Channel string
	// File is the damaged file, if known.
	File string
	// Err is what the server said.
	Err error
	// Repaired: the server rebuilt the channel's index from its data file
	// and carries on; the message is for the operator to know.
	Repaired bool
}

func (e *StoreError) Error() string {
	var b strings.Builder
	if e.Repaired {
		fmt.Fprintf(&b, "the NATS Streaming store in %s had a damaged index (channel %s): %v. The server rebuilt it from the data file and carries on; if messages of %s are missing, restore %s from a backup",
			e.Dir, e.Channel, e.Err, e.Channel, e.Dir)
		return b.String()
	}
	fmt.Fprintf(&b, "the NATS Streaming store in %s is damaged", e.Dir)
	if e.Channel != "" {
		fmt.Fprintf(&b, " (channel %s)", e.Channel)
	}
	fmt.Fprintf(&b, ": %v. Stop every daemon using it, then ", e.Err)
	switch base := filepath.Base(e.File); {
	case e.Channel == "" && (base == "server.dat" || base == "clients.dat"):
		fmt.Fprintf(&b, "move %s aside: the server makes a new one at the next start and nothing stored is lost (or restore %s from a backup)", e.File, e.Dir)
	case e.Channel != "" && base == "subs.dat":
		fmt.Fprintf(&b, "move %s aside, which loses where the channel's subscribers were: its queue triggers then process every message of %s again (duplicates, nothing lost); or restore %s from a backup",
			e.File, e.Channel, e.Dir)
	case e.Channel != "":
		fmt.Fprintf(&b, "restore %s from a backup, or move %s aside to start without that channel, which loses %s",
			e.Dir, filepath.Join(e.Dir, e.Channel), Loses(e.Channel))
	default:
		fmt.Fprintf(&b, "restore %s from a backup, or move it aside to start with an empty store, which loses every function, trigger, workflow, invocation and message", e.Dir)
	}
	return b.String()
}

func (e *StoreError) Unwrap() error { return e.Err }

// Loses says what moving a channel of sluice's store aside loses. The
// names are those of the packages that own the channels (catalog,
// engine, logstream, triggers); a test in the daemon checks them.
func Loses(channel string) string {
	switch {
	case channel == "sluice.catalog":
		return "every function, trigger and workflow definition (deploy them again, e.g. with sluice apply)"
	case strings.HasPrefix(channel, "sluice.mod."):
		return "one module's bytes (deploy again the functions that run it)"
	case channel == "sluice.blobs.data":
		return "the bytes of every module and every large workflow value (deploy every function again; invocations that carried large values cannot be replayed)"
	case channel == "sluice.blobs.index":
		return "where every module and large workflow value is (their bytes stay, unreachable: deploy every function again; invocations that carried large values cannot be replayed)"
	case channel == "sluice.wf.events":
		return "the history of every workflow invocation, and the invocations under way"
	case channel == CheckpointChannel:
		return "nothing that matters: the workflow engine's replay checkpoints (the next start replays every event)"
	case channel == NodesChannel:
		return "nothing that matters: the workflow engines' heartbeats"
	case strings.HasPrefix(channel, "sluice.ticks."):
		return "nothing that matters: recent timer claims"
	case strings.HasPrefix(channel, "sluice.logs."):
		return "the recent logs of function " + strings.TrimPrefix(channel, "sluice.logs.")
	case strings.HasPrefix(channel, "sluice."):
		return "what sluice keeps in it"
	}
	return "the messages of topic " + channel + " and where its queue triggers were"
}
