package console

import (
	"testing"

	"github.com/sluicehq/sluice/engine"
)

// An edge that crosses layers runs between the boxes of the layers it
// crosses, by a waypoint in each, never through a box: d requires a and
// c, so a -> d crosses the layers of b and c, which a straight line from
// a to d went through.
func TestEdgesGoAroundBoxes(t *testing.T) {
	def, err := engine.ParseDefinition("", []byte(`
apiVersion: sluice/v1
kind: Workflow
name: long
tasks:
  a: { run: f }
  b: { run: f, requires: [a] }
  c: { run: f, requires: [b] }
  d: { run: f, requires: [a, c] }
`), engine.Known{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := newFlowchart(def.Shape())
	if err != nil {
		t.Fatal(err)
	}
	f.layout()
	var long *arrow
	for _, a := range f.edges {
		if a.from.id == "task:a" && a.to.id == "task:d" {
			long = a
		}
	}
	if long == nil {
		t.Fatal("no edge a -> d")
	}
	if len(long.via) != long.to.rank-long.from.rank-1 || len(long.via) < 2 {
		t.Fatalf("a (layer %d) -> d (layer %d): %d waypoints", long.from.rank, long.to.rank, len(long.via))
	}
	for _, w := range long.via {
		for _, b := range f.nodes {
			if b.rank == w.rank && w.x+w.w/2 > b.x-b.w/2 && w.x-w.w/2 < b.x+b.w/2 {
				t.Errorf("the edge a -> d crosses %s in layer %d: waypoint at x %.0f, box from %.0f to %.0f", b.id, b.rank, w.x, b.x-b.w/2, b.x+b.w/2)
			}
			if b.rank == w.rank && w.y != b.y {
				t.Errorf("waypoint at y %.0f in the layer of %s at y %.0f", w.y, b.id, b.y)
			}
		}
	}
	for _, b := range f.nodes {
		for _, c := range f.nodes {
			if b != c && b.rank == c.rank && b.x+b.w/2 > c.x-c.w/2 && b.x-b.w/2 < c.x+c.w/2 {
				t.Errorf("%s and %s overlap", b.id, c.id)
			}
		}
	}
}
