package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

// wellFormed fails unless b is well-formed XML with an svg root.
func wellFormed(t *testing.T, b []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, b)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q", root)
	}
}

func TestSVG(t *testing.T) {
	samples := make([]time.Duration, 1000)
	for i := range samples {
		samples[i] = time.Duration(100+i*i) * time.Microsecond
	}
	for name, svg := range map[string][]byte{
		"bars": BarChart("title <&>", []string{"a line"}, []BarGroup{{Label: "m.wasm", Bars: []Bar{
			{Label: "sluice", P50: 5 * time.Microsecond, P99: 90 * time.Microsecond, Kind: "sluice"},
			{Label: "floor", P50: 97 * time.Nanosecond, Kind: "floor"},
			{Label: "process", P50: 600 * time.Microsecond, P99: 800 * time.Microsecond, Kind: "process"},
		}}}),
		"histogram": Histogram("title", []string{strings.Repeat("long line ", 40)}, "requests",
			Series{Name: "daemon", Samples: samples}, Series{Name: "floor", Samples: samples[:500]}),
		"empty histogram": Histogram("title", nil, "requests", Series{Name: "x"}),
		"empty bars":      BarChart("title", nil, nil),
	} {
		t.Run(name, func(t *testing.T) {
			wellFormed(t, svg)
			if strings.Contains(string(svg), "NaN") || strings.Contains(string(svg), "Inf") {
				t.Fatalf("a coordinate is not a number:\n%s", svg)
			}
		})
	}
}
