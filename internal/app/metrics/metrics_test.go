package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/host"
)

// The engine tells the metrics of caught tasks and compensations.
var _ engine.FailureObserver = (*Metrics)(nil)

// Caught tasks and compensations are counted per workflow, compensations
// by outcome, and served.
func TestFailureCounters(t *testing.T) {
	m := New(Sources{})
	m.TaskCaught("order")
	m.TaskCaught("order")
	m.CompensationEnded("order", engine.CompensationSucceeded)
	m.CompensationEnded("order", engine.CompensationUndoFailed)
	m.CompensationEnded("trip", engine.CompensationUndoFailed)
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = mt.GetCounter().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"sluice_workflow_tasks_caught_total{workflow=order}":                      2,
		"sluice_workflow_compensations_total{outcome=succeeded,workflow=order}":   1,
		"sluice_workflow_compensations_total{outcome=undo_failed,workflow=order}": 1,
		"sluice_workflow_compensations_total{outcome=undo_failed,workflow=trip}":  1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}

// BenchmarkObserve: what the call and lag observers cost each call of a
// queue trigger's function:
//
//	go test -run '^$' -bench Observe -count 5 ./internal/app/metrics/
func BenchmarkObserve(b *testing.B) {
	m := New(Sources{})
	for b.Loop() {
		m.Lag("orders", 3*time.Millisecond)
		m.Call("resize", host.Result{}, nil, 20*time.Microsecond)
	}
}
