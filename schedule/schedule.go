// Package schedule parses and evaluates the schedules of timer triggers:
// 5-field cron expressions in UTC and @every intervals.
package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule says when a timer trigger fires.
type Schedule interface {
	// Next returns the first firing time strictly after t.
	Next(t time.Time) time.Time
}

// every fires at fixed intervals, aligned on multiples of the interval
// since the Unix epoch, so that every daemon computes the same ticks.
type every struct{ d time.Duration }

func (e every) Next(t time.Time) time.Time {
	n := t.UnixNano()/int64(e.d) + 1
	return time.Unix(0, n*int64(e.d)).UTC()
}

// cronSchedule is a 5-field cron expression, evaluated in UTC.
type cronSchedule struct {
	minute, hour, dom, month, dow uint64 // bit sets
	domStar, dowStar              bool
}

// MinEvery is the shortest @every interval: shorter ones would make the
// timer a load generator.
const MinEvery = time.Second

// Parse parses a timer trigger's schedule: a 5-field cron
// expression (minute hour day-of-month month day-of-week, in UTC, with
// *, lists, ranges, steps and month and day names), one of @yearly,
// @monthly, @weekly, @daily, @hourly, or @every DURATION (e.g. @every 10s).
func Parse(spec string) (Schedule, error) {
	spec = strings.TrimSpace(spec)
	if rest, ok := strings.CutPrefix(spec, "@every"); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("schedule %q: @every wants a duration like 10s or 5m: %v", spec, err)
		}
		if d < MinEvery {
			return nil, fmt.Errorf("schedule %q: the shortest interval is %s", spec, MinEvery)
		}
		return every{d}, nil
	}
	if macro, ok := map[string]string{
		"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
		"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
	}[spec]; ok {
		spec = macro
	} else if strings.HasPrefix(spec, "@") {
		return nil, fmt.Errorf("schedule %q: unknown macro (use @yearly, @monthly, @weekly, @daily, @hourly or @every DURATION)", spec)
	}
	fields := strings.Fields(spec)
	if len(fields) != 5 {
		return nil, fmt.Errorf("schedule %q: want 5 fields (minute hour day-of-month month day-of-week) or @every DURATION, got %d", spec, len(fields))
	}
	var s cronSchedule
	var err error
	parse := []struct {
		name     string
		dst      *uint64
		min, max int
		names    []string
	}{
		{"minute", &s.minute, 0, 59, nil},
		{"hour", &s.hour, 0, 23, nil},
		{"day of month", &s.dom, 1, 31, nil},
		{"month", &s.month, 1, 12, []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
		{"day of week", &s.dow, 0, 7, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
	}
	for i, p := range parse {
		if *p.dst, err = parseField(fields[i], p.min, p.max, p.names); err != nil {
			return nil, fmt.Errorf("schedule %q: %s field %q: %v", spec, p.name, fields[i], err)
		}
	}
	if s.dow&(1<<7) != 0 { // 7 is Sunday too
		s.dow |= 1
	}
	s.domStar = fields[2] == "*" || strings.HasPrefix(fields[2], "*/")
	s.dowStar = fields[4] == "*" || strings.HasPrefix(fields[4], "*/")
	return s, nil
}

func parseField(f string, min, max int, names []string) (uint64, error) {
	var set uint64
	for _, part := range strings.Split(f, ",") {
		rng, stepStr, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("bad step %q", stepStr)
			}
			step = n
		}
		lo, hi := min, max
		if rng != "*" {
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = fieldValue(a, min, max, names); err != nil {
				return 0, err
			}
			hi = lo
			if isRange {
				if hi, err = fieldValue(b, min, max, names); err != nil {
					return 0, err
				}
				if hi < lo {
					return 0, fmt.Errorf("range %s is backwards", rng)
				}
			} else if hasStep {
				hi = max // "5/15" means 5-max/15
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

func fieldValue(s string, min, max int, names []string) (int, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return i + min, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < min || v > max {
		return 0, fmt.Errorf("%d is out of range %d-%d", v, min, max)
	}
	return v, nil
}

// Next implements Schedule: it walks forward field by field, skipping
// whole months, days and hours that cannot match.
func (s cronSchedule) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(5, 0, 0) // a spec like "0 0 30 2 *" never matches
	for t.Before(limit) {
		if s.month&(1<<uint(t.Month())) == 0 {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if !s.dayMatches(t) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if s.hour&(1<<uint(t.Hour())) == 0 {
			t = t.Truncate(time.Hour).Add(time.Hour)
			continue
		}
		if s.minute&(1<<uint(t.Minute())) == 0 {
			t = t.Add(time.Minute)
			continue
		}
		return t
	}
	return time.Time{}
}

// dayMatches applies cron's rule: if both day fields are restricted, a day
// matching either one matches.
func (s cronSchedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<uint(t.Day())) != 0
	dow := s.dow&(1<<uint(t.Weekday())) != 0
	switch {
	case s.domStar && s.dowStar:
		return true
	case s.domStar:
		return dow
	case s.dowStar:
		return dom
	}
	return dom || dow
}
