package engine

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// describe renders the state for tests comparing replays: every field
// that matters, in a stable order.
func (s *state) describe() string {
	var b strings.Builder
	ids := sortedKeys(s.invs)
	ids2 := func(l []*invState) []string {
		var out []string
		for _, inv := range l {
			out = append(out, inv.id)
		}
		return out
	}
	fmt.Fprintf(&b, "seq=%d finished=%v bytes=%d\n", s.seq, ids2(s.finished), s.finishedBytes)
	for _, id := range ids {
		inv := s.invs[id]
		fmt.Fprintf(&b, "inv %s wf=%s rev=%s owner=%s parent=%s status=%s in=%s out=%s err=%q ft=%s created=%s fin=%s seqs=%d-%d cancel=%q order=%v root=%s spawned=%d live=%d done=%v bytes=%d\n",
			inv.id, inv.workflow, inv.revision, inv.owner, inv.parent, inv.status, inv.input.describe(), inv.output.describe(), inv.err, inv.failedTask,
			inv.created.Format(time.RFC3339Nano), inv.finishedAt.Format(time.RFC3339Nano), inv.firstSeq, inv.lastSeq, inv.cancel, inv.order,
			inv.root, inv.spawned, s.live[inv.id], ids2(inv.doneKids), inv.bytes)
		fmt.Fprintf(&b, "  failure code=%s comp=%+v\n", inv.code, inv.comp)
		if len(inv.source) > 0 {
			fmt.Fprintf(&b, "  source %s\n", inv.source)
		}
		fmt.Fprintf(&b, "  redrives=%d redriven=%s\n", inv.redrives, inv.redriven.Format(time.RFC3339Nano))
		for _, sg := range inv.signals {
			fmt.Fprintf(&b, "  signal %d %s %s\n", sg.seq, sg.name, sg.data.describe())
		}
		describeVersions(&b, inv)
		tids := sortedKeys(inv.tasks)
		sort.Strings(tids)
		for _, tid := range tids {
			t := inv.tasks[tid]
			sc := fmt.Sprintf("%#v", t.scope) // types too: an int is not a json.Number
			fmt.Fprintf(&b, "  task %s run=%s status=%s att=%d fail=%d in=%s child=%s out=%s err=%q wake=%s start=%s fin=%s scope=%s kids=%d/%d%s\n",
				t.id, t.run, t.status, t.attempts, t.failures, t.input.describe(), t.child.describe(), t.output.describe(), t.err, t.wake.Format(time.RFC3339Nano),
				t.started.Format(time.RFC3339Nano), t.finished.Format(time.RFC3339Nano), sc, t.kidsDone, t.kids, t.loop.describe())
			fmt.Fprintf(&b, "    code=%s caught=%v\n", t.code, t.caught)
			if t.after != nil {
				fmt.Fprintf(&b, "    after=%d\n", *t.after)
			}
		}
	}
	return b.String()
}

// describe renders a stored value with its kind.
func (d datum) describe() string {
	if d.data {
		return fmt.Sprintf("data%q", d.b)
	}
	return string(d.b)
}

// describe renders the kids a task's loop drives: those not finished, in
// order, and those that failed.
func (ks *kidSet) describe() string {
	if ks == nil {
		return ""
	}
	var active, failed []string
	for _, k := range ks.active {
		if !finished(k.status) {
			active = append(active, k.id)
		}
	}
	for _, k := range ks.failed {
		failed = append(failed, k.id)
	}
	sort.Strings(failed)
	return fmt.Sprintf(" active=%v failed=%v", active, failed)
}
