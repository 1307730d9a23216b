package engine

// Watching an invocation: a reader that shows an invocation while it runs
// (the console's invocation page, through the API's stream) is told when
// it changed rather than asking again and again. Nothing is kept while
// nobody watches: one map lookup per event read from the log.

// watchers are the watches of invocations, by the id of the invocation
// watched; a watch of a root invocation is told of its children's events
// too.
type watchers map[string][]chan struct{}

// Watch returns a channel that receives after every event of the
// invocation (or of one of its child workflows, at any depth) the engine
// reads from the log, coalesced: a reader that is slow finds one pending
// wake-up, never a backlog. stop ends the watch; call it when done.
func (e *Engine) Watch(id string) (changed <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	e.mu.Lock()
	if e.watches == nil {
		e.watches = watchers{}
	}
	e.watches[id] = append(e.watches[id], ch)
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		list := e.watches[id]
		for i, c := range list {
			if c == ch {
				list = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(e.watches, id)
		} else {
			e.watches[id] = list
		}
	}
}

// changed wakes the watches of an invocation and of its ancestors. Under
// e.mu.
func (e *Engine) changed(id string) {
	if len(e.watches) == 0 {
		return
	}
	for depth := 0; id != "" && depth <= maxWatchDepth; depth++ {
		for _, ch := range e.watches[id] {
			select {
			case ch <- struct{}{}:
			default: // one wake-up is pending already
			}
		}
		inv := e.st.invs[id]
		if inv == nil {
			return
		}
		p := e.st.parentOf(inv)
		if p == nil {
			return
		}
		id = p.id
	}
}

// maxWatchDepth bounds the walk from a child to its root: deeper than
// any nesting a definition can make without recursion, and a recursive
// workflow's chain is cut there rather than walked whole on every event.
const maxWatchDepth = 64

// ChildID returns the id of the child invocation a task of an invocation
// started on its attempt (a workflow or dynamic task, Task.Attempts):
// what a reader follows to show children nested under their task.
func ChildID(parent, task string, attempt int) string { return childID(parent, task, attempt) }

// StartsChild tells whether a task run (Task.Run) starts a child
// invocation.
func StartsChild(run string) bool { return startsChild(run) }

// Watching counts the watches open now: what readers cost the engine.
func (e *Engine) Watching() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, list := range e.watches {
		n += len(list)
	}
	return n
}
