package bench

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
	"time"
)

// Plots, as self-contained SVG: no script, no external font or style, so
// that they render the same in a browser, an editor and a README.

// svg is a small SVG writer.
type svg struct {
	b    strings.Builder
	w, h int
}

func newSVG(w, h int) *svg {
	s := &svg{w: w, h: h}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&s.b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	return s
}

func (s *svg) text(x, y float64, anchor, attrs, text string) {
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s>%s</text>`+"\n", x, y, anchor, attrs, html.EscapeString(text))
}

func (s *svg) rect(x, y, w, h float64, fill, title string) {
	fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">`, x, y, max(w, 0.5), max(h, 0), fill)
	if title != "" {
		fmt.Fprintf(&s.b, `<title>%s</title>`, html.EscapeString(title))
	}
	s.b.WriteString("</rect>\n")
}

func (s *svg) line(x1, y1, x2, y2 float64, stroke string, attrs string) {
	fmt.Fprintf(&s.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" %s/>`+"\n", x1, y1, x2, y2, stroke, attrs)
}

func (s *svg) bytes() []byte {
	s.b.WriteString("</svg>\n")
	return []byte(s.b.String())
}

// header writes a title and lines under it, and returns where the plot
// may start.
func (s *svg) header(title string, lines []string) float64 {
	s.text(16, 26, "start", `font-size="16" font-weight="bold"`, title)
	y := 26.0
	for _, l := range lines {
		y += 16
		s.text(16, y, "start", `fill="#555"`, l)
	}
	return y + 20
}

// Bar is one bar of a BarChart: a median with an optional p99 whisker.
type Bar struct {
	Label    string
	P50, P99 time.Duration
	// Kind picks the colour: "sluice", "floor", "process".
	Kind string
}

// BarGroup is a labelled group of bars.
type BarGroup struct {
	Label string
	Bars  []Bar
}

var barColors = map[string]string{"sluice": "#2b6cb0", "floor": "#a0aec0", "process": "#dd6b20"}

// BarChart draws groups of horizontal bars on a logarithmic time axis:
// cold starts run from microseconds to milliseconds, and a process per
// call is a hundred times a warm call.
func BarChart(title string, lines []string, groups []BarGroup) []byte {
	const (
		w, left, right, barH, gap = 960, 250, 40, 16, 5
	)
	lines = wrap(lines, 140)
	n := 0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, g := range groups {
		n += len(g.Bars)
		for _, b := range g.Bars {
			lo = min(lo, float64(b.P50))
			hi = max(hi, float64(b.P50), float64(b.P99))
		}
	}
	if n == 0 {
		lo, hi = 1e3, 1e6
	}
	lo = math.Pow(10, math.Floor(math.Log10(max(lo, 1))))
	hi = math.Pow(10, math.Ceil(math.Log10(max(hi, lo*10))))
	h := 26 + 16*len(lines) + 20 + len(groups)*24 + n*(barH+gap) + 50
	s := newSVG(w, h)
	y := s.header(title, lines)
	x0, x1 := float64(left), float64(w-right)
	xOf := func(d time.Duration) float64 {
		v := max(float64(d), lo)
		return x0 + (x1-x0)*math.Log10(v/lo)/math.Log10(hi/lo)
	}
	plotTop := y
	plotBottom := plotTop + float64(len(groups)*24+n*(barH+gap))
	for v := lo; v <= hi*1.0001; v *= 10 {
		x := xOf(time.Duration(v))
		s.line(x, plotTop-6, x, plotBottom, "#e2e8f0", "")
		s.text(x, plotBottom+16, "middle", `fill="#555"`, tick(time.Duration(v)))
	}
	s.text((x0+x1)/2, plotBottom+34, "middle", `fill="#333"`, "median, log scale (the thin line reaches the p99)")
	for _, g := range groups {
		y += 16
		s.text(16, y, "start", `font-weight="bold"`, g.Label)
		y += 8
		for _, b := range g.Bars {
			color := barColors[b.Kind]
			if color == "" {
				color = "#718096"
			}
			s.text(x0-8, y+barH-4, "end", "", b.Label)
			tip := fmt.Sprintf("%s: p50 %s", b.Label, FormatDuration(b.P50))
			label := FormatDuration(b.P50)
			if b.P99 > 0 {
				tip += ", p99 " + FormatDuration(b.P99)
				label += "  (p99 " + FormatDuration(b.P99) + ")"
			}
			s.rect(x0, y, xOf(b.P50)-x0, barH, color, tip)
			end := xOf(b.P50)
			if b.P99 > b.P50 {
				s.line(end, y+barH/2, xOf(b.P99), y+barH/2, color, `stroke-width="1.5"`)
				s.line(xOf(b.P99), y+3, xOf(b.P99), y+barH-3, color, `stroke-width="1.5"`)
				end = xOf(b.P99)
			}
			if end+6+7*float64(len(label)) < float64(w) {
				s.text(end+6, y+barH-4, "start", `fill="#333"`, label)
			} else {
				s.text(xOf(b.P50)-6, y+barH-4, "end", `fill="white"`, label)
			}
			y += barH + gap
		}
	}
	return s.bytes()
}

// Series is one distribution in a Histogram.
type Series struct {
	Name    string
	Samples []time.Duration
}

// Histogram draws distributions of latencies: linear bins from zero to
// the p99.9 of all of them, one more bin for everything above, and the
// p50, p90 and p99 of the first marked. The first series is drawn as
// bars, the others as outlines over them.
func Histogram(title string, lines []string, unit string, series ...Series) []byte {
	const (
		w, left, right, plotH, bins = 960, 80, 40, 300, 60
	)
	lines = wrap(lines, 140)
	h := 26 + 16*len(lines) + 20 + plotH + 60 + 16*boolInt(len(series) > 1)
	s := newSVG(w, h)
	y0 := s.header(title, lines)
	var all []time.Duration
	for _, se := range series {
		all = append(all, se.Samples...)
	}
	if len(all) == 0 || len(series[0].Samples) == 0 {
		s.text(w/2, y0+plotH/2, "middle", "", "no samples")
		return s.bytes()
	}
	slices.Sort(all)
	step := niceStep(float64(pct(all, 0.999)) / bins)
	hi := step * math.Ceil(float64(pct(all, 0.999))/step)
	nb := int(math.Round(hi / step))
	count := func(samples []time.Duration) []int {
		c := make([]int, nb+1) // the last: above the cut
		for _, d := range samples {
			c[min(int(float64(d)/step), nb)]++
		}
		return c
	}
	counts := make([][]int, len(series))
	maxCount := 1
	for i, se := range series {
		counts[i] = count(se.Samples)
		maxCount = max(maxCount, slices.Max(counts[i]))
	}
	x0, x1 := float64(left), float64(w-right)
	barW := (x1 - x0) / float64(nb+2) // room for the overflow bin after a gap
	yb := y0 + plotH
	yOf := func(c int) float64 { return yb - plotH*float64(c)/float64(maxCount) }
	xOf := func(bin int) float64 {
		if bin >= nb {
			return x0 + float64(nb+1)*barW
		}
		return x0 + float64(bin)*barW
	}
	cstep := niceStep(float64(maxCount) / 5)
	for c := 0.0; c <= float64(maxCount); c += cstep {
		s.line(x0, yOf(int(c)), x1, yOf(int(c)), "#e2e8f0", "")
		s.text(x0-6, yOf(int(c))+4, "end", `fill="#555"`, fmt.Sprintf("%.0f", c))
	}
	binName := func(i int) string {
		if i >= nb {
			return "above " + FormatDuration(time.Duration(hi))
		}
		lo := time.Duration(float64(i) * step)
		return FormatDuration(lo) + "–" + FormatDuration(lo+time.Duration(step))
	}
	for i, c := range counts[0] {
		if c == 0 {
			continue
		}
		color := "#2b6cb0"
		if i == nb {
			color = "#dd6b20"
		}
		s.rect(xOf(i), yOf(c), barW-0.5, yb-yOf(c), color, fmt.Sprintf("%s: %s %d", binName(i), series[0].Name, c))
	}
	outline := []string{"#c05621", "#2f855a", "#6b46c1"}
	for k := 1; k < len(series); k++ {
		var pts []string
		for i, c := range counts[k] {
			if i == nb {
				if c > 0 {
					x := xOf(i)
					fmt.Fprintf(&s.b, `<polyline points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n",
						x, yb, x, yOf(c), x+barW, yOf(c), x+barW, yb, outline[(k-1)%len(outline)])
				}
				break
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", xOf(i), yOf(c), xOf(i)+barW, yOf(c)))
		}
		fmt.Fprintf(&s.b, `<polyline points="%.1f,%.1f %s %.1f,%.1f" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n",
			x0, yb, strings.Join(pts, " "), xOf(nb-1)+barW, yb, outline[(k-1)%len(outline)])
	}
	if counts[0][nb] > 0 || (len(series) > 1 && slices.ContainsFunc(counts[1:], func(c []int) bool { return c[nb] > 0 })) {
		s.text(xOf(nb)+barW/2, yb+30, "middle", `fill="#dd6b20"`, "more")
	}
	s.line(x0, yb, x1, yb, "#333", "")
	s.line(x0, y0, x0, yb, "#333", "")
	xstep := niceStep(hi / 10)
	for v := 0.0; v <= hi+xstep/2; v += xstep {
		x := x0 + v/step*barW
		s.line(x, yb, x, yb+5, "#333", "")
		s.text(x, yb+18, "middle", `fill="#555"`, tick(time.Duration(v)))
	}
	sum := Summarize(series[0].Samples)
	s.text((x0+x1)/2, yb+46, "middle", `fill="#333"`, fmt.Sprintf("latency: %d %s, max %s", sum.N, unit, FormatDuration(sum.Max)))
	if len(series) > 1 {
		legend := fmt.Sprintf("bars: %s (p50 %s, p99 %s)", series[0].Name, FormatDuration(sum.P50), FormatDuration(sum.P99))
		for k := 1; k < len(series); k++ {
			o := Summarize(series[k].Samples)
			legend += fmt.Sprintf("; %s outline: %s (p50 %s, p99 %s)", []string{"orange", "green", "purple"}[(k-1)%3],
				series[k].Name, FormatDuration(o.P50), FormatDuration(o.P99))
		}
		s.text((x0+x1)/2, yb+62, "middle", `fill="#333"`, legend)
	}
	labelY := y0 + 8
	for _, m := range []struct {
		name string
		d    time.Duration
	}{{"p50", sum.P50}, {"p90", sum.P90}, {"p99", sum.P99}} {
		if float64(m.d) > hi {
			continue
		}
		x := x0 + float64(m.d)/step*barW
		s.line(x, y0-4, x, yb, "#c53030", `stroke-dasharray="4 3"`)
		s.text(x+3, labelY, "start", `fill="#c53030"`, m.name+" "+FormatDuration(m.d))
		labelY += 14
	}
	return s.bytes()
}

// wrap breaks lines longer than n characters at spaces.
func wrap(lines []string, n int) []string {
	var out []string
	for _, l := range lines {
		for len(l) > n {
			i := strings.LastIndexByte(l[:n], ' ')
			if i <= 0 {
				break
			}
			out = append(out, l[:i])
			l = "    " + l[i+1:]
		}
		out = append(out, l)
	}
	return out
}

// tick formats an axis value: "10µs", "2.5ms", "0".
func tick(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	s := FormatDuration(d)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s[:i], s[i:]
	if strings.Contains(num, ".") {
		num = strings.TrimRight(strings.TrimRight(num, "0"), ".")
	}
	return num + unit
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
