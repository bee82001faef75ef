package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Driver colours and display names, shared by the charts and the tables.
var (
	driverColor = map[string]string{"java": "#e07b39", "clientgo": "#7a8fb8", "core": "#2a9d8f", "daemon": "#264653"}
	driverName  = map[string]string{
		"java":     "Java DefaultMQProducer",
		"clientgo": "rocketmq-client-go",
		"core":     "producerd core (library)",
		"daemon":   "producerd daemon (gRPC)",
	}
)

// barPanel draws one panel of grouped bars: for each group, one bar per series with
// height value/ref (ref: the group's value of series refIdx, e.g. Java = 1.0), labelled
// with the absolute value. Missing values (NaN) are drawn as "n/a".
func barPanel(b *strings.Builder, x0, y0, w, h float64, title, unit string, groups, series []string, vals [][]float64, refIdx int, lines []float64) {
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="15" font-weight="bold">%s</text>`+"\n", x0, y0-28, html.EscapeString(title))
	maxRel := 1.0
	rel := make([][]float64, len(groups))
	for g := range groups {
		rel[g] = make([]float64, len(series))
		ref := vals[g][refIdx]
		for s := range series {
			v := vals[g][s]
			if math.IsNaN(v) || math.IsNaN(ref) || ref == 0 {
				rel[g][s] = math.NaN()
				continue
			}
			rel[g][s] = v / ref
			maxRel = max(maxRel, rel[g][s])
		}
	}
	step := 0.5
	if maxRel > 4 {
		step = 1
	}
	top := math.Ceil(maxRel*1.15/step) * step
	yOf := func(r float64) float64 { return y0 + h - r/top*h }
	// Axis and grid.
	for t := 0.0; t <= top+1e-9; t += step {
		y := yOf(t)
		stroke := "#e4e4e4"
		if t == 1 {
			stroke = "#999"
		}
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="%s"/>`+"\n", x0, y, x0+w, y, stroke)
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" font-size="11" text-anchor="end" fill="#555">%.1f×</text>`+"\n", x0-6, y+4, t)
	}
	for _, l := range lines {
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#c0392b" stroke-dasharray="5,4"/>`+"\n", x0, yOf(l), x0+w, yOf(l))
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" font-size="10" fill="#c0392b">%.1f×</text>`+"\n", x0+w+4, yOf(l)+3, l)
	}
	gw := w / float64(len(groups))
	bw := gw * 0.8 / float64(len(series))
	for g, name := range groups {
		gx := x0 + float64(g)*gw + gw*0.1
		for s := range series {
			x := gx + float64(s)*bw
			r := rel[g][s]
			if math.IsNaN(r) {
				fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle" fill="#999">n/a</text>`+"\n", x+bw/2, y0+h-4)
				continue
			}
			y := yOf(r)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s %s (%.2f×)</title></rect>`+"\n",
				x+1, y, bw-2, y0+h-y, driverColor[series[s]], html.EscapeString(driverName[series[s]]), fmtNum(vals[g][s]), unit, r)
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle" fill="#333">%s</text>`+"\n", x+bw/2, y-3, fmtNum(vals[g][s]))
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="12" text-anchor="middle">%s</text>`+"\n", gx+gw*0.4, y0+h+16, html.EscapeString(name))
	}
	fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`+"\n", x0, y0+h, x0+w, y0+h)
}

func legend(b *strings.Builder, x, y float64, series []string) {
	for i, s := range series {
		lx := x + float64(i)*215
		fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/>`, lx, y-10, driverColor[s])
		fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="12">%s</text>`+"\n", lx+17, y, html.EscapeString(driverName[s]))
	}
}

// throughputSVG: top panel throughput, bottom panel producer CPU per message, both
// relative to the Java client per scenario, bars labelled with absolute values.
func throughputSVG(groups, series []string, thr, cpu [][]float64, caption string) string {
	var b strings.Builder
	const W, H = 1000.0, 760.0
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="Helvetica, Arial, sans-serif">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="20" y="28" font-size="18" font-weight="bold">producerd vs Java DefaultMQProducer vs rocketmq-client-go (RocketMQ 5.3.3, same brokers)</text>`+"\n")
	legend(&b, 70, 54, series)
	barPanel(&b, 70, 115, 860, 250, "Throughput (msgs/s), relative to the Java client (higher is better); dashed: daemon target 0.8×", "msgs/s", groups, series, thr, 0, []float64{0.8})
	barPanel(&b, 70, 455, 860, 230, "Producer CPU per message (µs), relative to the Java client (lower is better); dashed: core target 0.5×", "µs/msg", groups, series, cpu, 0, []float64{0.5})
	fmt.Fprintf(&b, `<text x="20" y="745" font-size="11" fill="#555">%s</text>`+"\n", html.EscapeString(caption))
	b.WriteString("</svg>\n")
	return b.String()
}

// failoverSVG draws stored messages per second for each driver, with the stop window
// shaded, and marks the seconds that had sends slower than 1 s.
func failoverSVG(rows []*cellResult) string {
	var b strings.Builder
	const W, H = 1000.0, 120.0
	panelH := 110.0
	n := 0
	for _, r := range rows {
		if r.Failover != nil {
			n++
		}
	}
	total := H + float64(n)*(panelH+40)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="Helvetica, Arial, sans-serif">`+"\n", W, total, W, total)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="20" y="28" font-size="18" font-weight="bold">Failover: broker-b SIGSTOPped for 10 s (shaded) during 30 s of sync load at 2000 msgs/s</text>`+"\n")
	fmt.Fprintf(&b, `<text x="20" y="50" font-size="12" fill="#555">stored messages per second by send start time; red ticks: seconds with sends slower than 1 s (count above)</text>`+"\n")
	y := 90.0
	x0, w := 70.0, 860.0
	for _, r := range rows {
		f := r.Failover
		if f == nil {
			continue
		}
		secs := max(len(f.Series), 30)
		peak := 1
		for _, v := range f.Series {
			peak = max(peak, v)
		}
		top := float64(((peak*11/10)/500 + 1) * 500)
		xOf := func(s float64) float64 { return x0 + s/float64(secs)*w }
		yOf := func(v float64) float64 { return y + panelH - v/top*panelH }
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="#f3d9d9"/>`+"\n", xOf(f.StopAtSec), y, xOf(f.ContAtSec)-xOf(f.StopAtSec), panelH)
		label := driverName[r.Cell.Driver]
		if r.Cell.Variant != "" {
			label += " [" + r.Cell.Variant + "]"
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="13" font-weight="bold" fill="%s">%s: %d failed, %d slower than 1 s</text>`+"\n",
			x0, y-8, driverColor[r.Cell.Driver], html.EscapeString(label), f.Failed, f.Slow)
		for _, t := range []float64{0, top / 2, top} {
			fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#e4e4e4"/>`+"\n", x0, yOf(t), x0+w, yOf(t))
			fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="10" text-anchor="end" fill="#555">%.0f</text>`+"\n", x0-5, yOf(t)+3, t)
		}
		var pts []string
		for s, v := range f.Series {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(float64(s)+0.5), yOf(float64(v))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", driverColor[r.Cell.Driver], strings.Join(pts, " "))
		for s, v := range f.SlowPerS {
			if v > 0 {
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#c0392b" stroke-width="3"/>`, xOf(float64(s)+0.5), y+panelH, xOf(float64(s)+0.5), y+panelH-8)
				fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="9" text-anchor="middle" fill="#c0392b">%d</text>`+"\n", xOf(float64(s)+0.5), y+panelH-10, v)
			}
		}
		for s := 0; s <= secs; s += 5 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="10" text-anchor="middle" fill="#555">%ds</text>`+"\n", xOf(float64(s)), y+panelH+12, s)
		}
		y += panelH + 40
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v >= 10000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
