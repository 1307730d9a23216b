package graph

import (
	"fmt"
	"io"
	"testing"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/catalog"
)

// bigInput is a state of n functions, n triggers (a third each HTTP,
// queue with response and error topics, and timers) and w workflows of
// ten tasks each.
func bigInput(n, w int) Input {
	var in Input
	for i := range n {
		name := fmt.Sprintf("fn-%04d", i)
		in.Functions = append(in.Functions, &catalog.Function{Name: name, Version: 1, Config: catalog.Config{ABI: "wasi"}})
		t := &catalog.Trigger{Name: fmt.Sprintf("t-%04d", i), Function: name}
		switch i % 3 {
		case 0:
			t.HTTP = &catalog.HTTPSpec{Path: "/" + name, Method: "POST"}
		case 1:
			t.Queue = &catalog.QueueSpec{Topic: fmt.Sprintf("in-%04d", i), RespTopic: "out", ErrorTopic: "dead"}
			in.Topics = append(in.Topics, eventlog.TopicInfo{Name: t.Queue.Topic, Messages: 10, Last: 10})
		case 2:
			t.Cron = &catalog.CronSpec{Schedule: "@every 1m"}
		}
		in.Triggers = append(in.Triggers, t)
	}
	for i := range w {
		src := "apiVersion: sluice/v1\nkind: Workflow\ntasks:\n"
		for j := range 10 {
			src += fmt.Sprintf("  t%d:\n    run: fn-%04d\n", j, (i*10+j)%n)
		}
		in.Workflows = append(in.Workflows, &catalog.Workflow{Name: fmt.Sprintf("wf-%03d", i), Version: 1, Source: src})
	}
	return in
}

// BenchmarkBuild builds the graph of 1,000 functions and 1,000 triggers
// (and of as many with 100 workflows), and writes it as dot.
func BenchmarkBuild(b *testing.B) {
	for _, c := range []struct {
		name string
		w    int
	}{{"functions=1000/triggers=1000", 0}, {"functions=1000/triggers=1000/workflows=100", 100}} {
		in := bigInput(1000, c.w)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Build(in)
			}
		})
	}
	g := Build(bigInput(1000, 0))
	b.Run("dot/functions=1000/triggers=1000", func(b *testing.B) {
		for b.Loop() {
			if err := WriteDot(io.Discard, g); err != nil {
				b.Fatal(err)
			}
		}
	})
}
