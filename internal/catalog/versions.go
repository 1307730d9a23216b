package catalog

import "slices"

// KeepVersions is how many versions of each function name the catalog
// keeps loadable (their records: configuration and module reference; the
// modules themselves are never deleted), the current one included, after
// a delete too: a workflow invocation calls the versions current when it
// started, whatever is deployed meanwhile. A record costs 265 bytes of
// heap (more with environment variables; TestHistoryMemory), so a name
// deployed 100 times or more holds ~26 KB; an invocation still
// running after 100 later deploys of one of its functions fails the task
// that calls it, naming the version (it never runs another silently).
const KeepVersions = 100

// keep records a version just deployed, dropping the oldest beyond
// KeepVersions. Versions of a name are consecutive, so the history is
// versions last-len+1 to last.
func (s *State) keep(f *Function) {
	h := s.history[f.Name]
	if len(h) == KeepVersions {
		h[0] = nil
		h = h[1:]
	}
	s.history[f.Name] = append(h, f)
}

// FunctionVersion returns a version of a function, current, earlier or
// deleted, if the state keeps it (the last KeepVersions of its name).
func (s *State) FunctionVersion(name string, version int) (*Function, bool) {
	h := s.history[name]
	if len(h) == 0 {
		return nil, false
	}
	i := version - h[0].Version
	if i < 0 || i >= len(h) {
		return nil, false
	}
	return h[i], true
}

// FunctionVersion returns a version of a function, current, earlier or
// deleted, if the catalog keeps it (the last KeepVersions of its name).
func (c *Catalog) FunctionVersion(name string, version int) (*Function, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.state.FunctionVersion(name, version)
}

// LastVersion returns the last version deployed of a function name, even
// a deleted one (0 if it was never deployed): what tells a version gone
// from the history from one never deployed.
func (c *Catalog) LastVersion(name string) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.state.versions[name]
}

// FunctionVersions returns the versions of a function the catalog keeps
// (the last KeepVersions of its name, deleted ones too), newest first.
func (c *Catalog) FunctionVersions(name string) []*Function {
	c.mu.RLock()
	defer c.mu.RUnlock()
	h := c.state.history[name]
	out := make([]*Function, len(h))
	for i, f := range h {
		out[len(h)-1-i] = f
	}
	return out
}

// WorkflowRevisions returns the revisions of a workflow name the catalog
// has had, newest first: each distinct definition once, as first created
// (the catalog keeps every revision, which invocations name).
func (c *Catalog) WorkflowRevisions(name string) []*Workflow {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*Workflow
	for _, w := range c.state.Revisions {
		if w.Name == name {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(a, b *Workflow) int { return b.Version - a.Version })
	return out
}
