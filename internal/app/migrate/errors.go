package migrate

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of a migration.
var (
	// ErrTarget: the target cannot take a migration (it is not JetStream:
	// migrate relies on message IDs coming back to know what it copied).
	ErrTarget = errors.New("cannot migrate into this target")
	// ErrSource: the source holds nothing to migrate, or what it holds
	// cannot be read as sluice's streams.
	ErrSource = errors.New("cannot migrate from this source")
)

// ForeignCatalogError: the target already holds catalog events that did
// not come from this source (a daemon wrote them, or a migration from
// another source did). Copying this source's catalog after them would mix
// two catalogs, so Run refuses unless Options.Force.
type ForeignCatalogError struct {
	// Events is the number of foreign catalog events (Sync markers left
	// aside), and Functions, Triggers, Workflows what the target's
	// catalog holds now.
	Events                         int
	Functions, Triggers, Workflows int
	// Names are a few of the target's function names, to recognise it.
	Names []string
	// Migrated is the number of events this source already copied there
	// (0 if none).
	Migrated int
}

func (e *ForeignCatalogError) Error() string {
	holds := fmt.Sprintf("%d functions, %d triggers and %d workflows", e.Functions, e.Triggers, e.Workflows)
	if len(e.Names) > 0 {
		holds += " (" + strings.Join(e.Names, ", ") + ")"
	}
	return fmt.Sprintf("the target already holds a catalog that is not from this source: %d events not copied by this migration, and it holds %s: migrate into an empty JetStream (a fresh --data dir), or give --force to copy this source's catalog after what is there",
		e.Events, holds)
}

// Unwrap makes a ForeignCatalogError an ErrTarget.
func (e *ForeignCatalogError) Unwrap() error { return ErrTarget }
