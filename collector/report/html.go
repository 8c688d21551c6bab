package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

//go:embed report.html.tmpl
var reportTemplate string

// WriteHTML writes the report as one self-contained HTML page: styles,
// script and charts inline, nothing fetched.
func (r *Report) WriteHTML(w io.Writer) error {
	t, err := template.New("report").Funcs(r.funcs()).Parse(reportTemplate)
	if err != nil {
		return fmt.Errorf("parse report template: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, r); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteJSON writes the report's figures as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report json: %w", err)
	}
	return nil
}

func (r *Report) funcs() template.FuncMap {
	return template.FuncMap{
		"when": r.when,
		"pct": func(v float64) string {
			return strconv.FormatFloat(v, 'f', 1, 64) + " %"
		},
		"pctp": func(v *float64) string {
			if v == nil {
				return "–"
			}
			return strconv.FormatFloat(*v, 'f', 1, 64) + " %"
		},
		"dec":   func(places int, v float64) string { return strconv.FormatFloat(v, 'f', places, 64) },
		"procs": procsText,
		// sortKey is a table cell's data-v: the number to sort by, "" when
		// there is none (sorted last).
		"sortKey": func(v any) string {
			switch v := v.(type) {
			case *Peak:
				if v != nil {
					return strconv.FormatFloat(v.Value, 'f', -1, 64)
				}
			case *float64:
				if v != nil {
					return strconv.FormatFloat(*v, 'f', -1, 64)
				}
			case *int:
				if v != nil {
					return strconv.Itoa(*v)
				}
			case int:
				return strconv.Itoa(v)
			case float64:
				return strconv.FormatFloat(v, 'f', -1, 64)
			}
			return ""
		},
		"over":    func(p *Peak, threshold float64) bool { return p != nil && p.Value >= threshold },
		"noun":    func() string { return procsNoun(r.Keyword) },
		"cost":    r.costText,
		"outcome": r.outcomeText,
		"room":    roomText,
		"perProc": perProcText,
		"ceil":    ceilingText,
		"bytes":   bytesText,
		"rate":    func(v float64) string { return bytesText(uint64(math.Max(v, 0))) + "/s" },
		"hours":   func(h *float64) string { return fullInText(h) },
		"firstCap": func(s Server) *Capacity {
			for i := range s.Capacity {
				if s.Capacity[i].Known {
					return &s.Capacity[i]
				}
			}
			if len(s.Capacity) > 0 {
				return &s.Capacity[0]
			}
			return nil
		},
		"duration": hoursText,
		"attention": func() bool {
			for _, s := range r.Servers {
				if s.NoData || s.Failing {
					return true
				}
			}
			return false
		},
		"statusRank":  statusRank,
		"peakRows":    peakRows,
		"fitRow":      func(e Estimate, name string) fitRow { return fitRow{E: e, Name: name} },
		"minPoints":   func() int { return MinPoints },
		"minDistinct": func() int { return MinDistinctProcs },
		"minR2":       func() float64 { return MinR2 },
		// Safe: drawn by timeSeriesSVG and scatterSVG, which escape every
		// string (see drawCharts).
		"timeSeries": func(s Server) template.HTML { return template.HTML(s.charts.timeSeries) },
		"scatter": func(s Server, class string) template.HTML {
			if class == "cpu" {
				return template.HTML(s.charts.scatterCPU)
			}
			return template.HTML(s.charts.scatterMem)
		},
	}
}

// drawCharts draws s's charts from its points.
func (r *Report) drawCharts(s *Server) charts {
	return charts{
		timeSeries: r.timeSeriesSVG(s),
		scatterMem: r.scatterSVG(s, s.Mem, func(p *Point) float64 { return p.Mem }, "mem", "memory"),
		scatterCPU: r.scatterSVG(s, s.CPU, func(p *Point) float64 { return p.CPU }, "cpu", "CPU"),
	}
}

// when prints t in the report's time zone.
func (r *Report) when(t time.Time) string { return t.In(r.loc).Format("2006-01-02 15:04") }

// hoursText prints a length in hours as days and hours.
func hoursText(h float64) string {
	total := int(h + 0.5)
	if total < 24 {
		return strconv.Itoa(total) + " h"
	}
	if total%24 == 0 {
		return strconv.Itoa(total/24) + " d"
	}
	return fmt.Sprintf("%d d %d h", total/24, total%24)
}

// bytesText prints n in binary units.
func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f %ciB", v, "KMGTP"[i])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// costText is the per-process cost sentence, "" without any estimate.
func (r *Report) costText(s Server) string {
	var parts []string
	if s.Mem.Status == StatusOK {
		m := fmt.Sprintf("%.2f %% of memory", s.Mem.Slope)
		if s.Mem.PerProcBytes > 0 {
			m = fmt.Sprintf("%s of memory (%.2f %%)", bytesText(s.Mem.PerProcBytes), s.Mem.Slope)
		}
		parts = append(parts, m)
	}
	if s.CPU.Status == StatusOK {
		parts = append(parts, fmt.Sprintf("%.2f %% CPU", s.CPU.Slope))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("Each %s ≈ %s.", strings.TrimSuffix(procsNoun(r.Keyword), "es"), strings.Join(parts, " and "))
}

// roomText prints a room with its range: "+14 (11–17)".
func roomText(more, low, high int) string {
	if low == more && high == more {
		return fmt.Sprintf("+%d", more)
	}
	return fmt.Sprintf("+%d (%d–%d)", more, low, high)
}

// perProcText prints a resource's cost per process in its unit.
func perProcText(res Resource, v float64) string {
	return strconv.FormatFloat(v, 'f', 2, 64) + " %"
}

// ceilingText prints a resource's ceiling with its range, or why none.
func ceilingText(res Resource) string {
	switch {
	case res.Ceiling == nil && res.Note != "":
		return "unknown"
	case res.Ceiling == nil:
		return "no limit"
	case *res.CeilingLow == *res.Ceiling && *res.CeilingHigh == *res.Ceiling:
		return strconv.Itoa(*res.Ceiling)
	}
	return fmt.Sprintf("%d (%d–%d)", *res.Ceiling, *res.CeilingLow, *res.CeilingHigh)
}

// fullInText prints the time until a file system is full.
func fullInText(h *float64) string {
	if h == nil {
		return "not growing"
	}
	if *h <= 0 {
		return "full"
	}
	return "in " + hoursText(*h)
}

// outcomeText says in a few words what an estimate gave, or why nothing.
func (r *Report) outcomeText(e Estimate, what string) string {
	switch e.Status {
	case StatusOK:
		return fmt.Sprintf("%d more to %s %%", e.Headroom, num(e.Threshold))
	case StatusNoData:
		return "no data to estimate from"
	case StatusThin:
		return fmt.Sprintf("too little data to estimate: %s with %s (need %d and %d)",
			plural(e.N, "point", "points"), plural(e.DistinctProcs, "distinct process count", "distinct process counts"), MinPoints, MinDistinctProcs)
	case StatusFlat:
		return what + " % never changed, so the process count does not explain it"
	case StatusPoorFit:
		return fmt.Sprintf("the fit is too poor to estimate: R² %.2f (need %.1f)", e.R2, MinR2)
	case StatusNotPositive:
		return fmt.Sprintf("%s %% does not rise with the process count (%+.2f %% per process): no estimate", what, e.Slope)
	}
	return string(e.Status)
}

// statusRank orders the status column: ok, gaps, failing, no data.
func statusRank(s Server) int {
	switch {
	case s.NoData:
		return 3
	case s.Failing:
		return 2
	case s.Health.GapCount > 0:
		return 1
	}
	return 0
}

// A peakRow is one line of a server's peak table.
type peakRow struct {
	Name string
	Peak *Peak
	Mean *float64
	Over bool // the peak reached the threshold
	load bool
}

// Format prints a value of the row's metric.
func (p peakRow) Format(v float64) string {
	if p.load {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " %"
}

func peakRows(s Server, t Thresholds) []peakRow {
	over := func(p *Peak, th float64) bool { return p != nil && p.Value >= th }
	return []peakRow{
		{Name: "CPU", Peak: s.Peaks.CPU, Mean: s.Means.CPU, Over: over(s.Peaks.CPU, t.CPU)},
		{Name: "Memory", Peak: s.Peaks.Mem, Mean: s.Means.Mem, Over: over(s.Peaks.Mem, t.Mem)},
		{Name: "Disk", Peak: s.Peaks.Disk, Mean: s.Means.Disk, Over: over(s.Peaks.Disk, t.Disk)},
		{Name: "Load1", Peak: s.Peaks.Load1, Mean: s.Means.Load1, load: true},
	}
}

// fitRow is one line of a server's fit table.
type fitRow struct {
	E    Estimate
	Name string
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// plural writes n with the singular or plural noun.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
