package simulate

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Layout of the chart, in SVG user units.
const (
	svgWidth   = 960
	svgLeft    = 112
	svgRight   = 150
	svgPanelH  = 130
	svgStripH  = 9
	svgGap     = 14
	svgTitleH  = 46
	svgHeaderH = 64
)

var brokerColors = []string{"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac", "#e15759", "#ff9da7"}

// WriteSVG draws the report as one SVG: per strategy, each broker's share of attempts
// per second (stacked), the spans in which the strategy isolated each broker, the share
// of failed sends per second, and p50 and p99 send latency per second on a log scale;
// fault windows are shaded across all of it. The output is a standalone, well-formed
// XML document.
func WriteSVG(w io.Writer, rep *Report) error {
	var b bytes.Buffer
	plotW := float64(svgWidth - svgLeft - svgRight)
	dur := rep.Duration.Seconds()
	if dur <= 0 {
		dur = 1
	}
	x := func(d time.Duration) float64 { return svgLeft + plotW*min(max(d.Seconds()/dur, 0), 1) }
	nb := len(rep.Brokers)
	blockH := svgTitleH + svgPanelH + 6 + float64(nb+1)*svgStripH + svgGap + svgPanelH + 34
	height := svgHeaderH + blockH*float64(len(rep.Results)) + 10

	// The latency axis spans whole decades from 0.1 ms to above the slowest p99 and the
	// send timeout, so every strategy shares one scale.
	top := rep.Producer.SendTimeout
	if top == 0 {
		top = 3 * time.Second
	}
	for _, r := range rep.Results {
		for _, s := range r.Seconds {
			top = max(top, s.P99)
		}
	}
	lo := math.Log10(0.1)
	hi := math.Ceil(math.Log10(float64(top) / float64(time.Millisecond)))
	if hi <= lo {
		hi = lo + 1
	}

	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" viewBox="0 0 %d %.0f" font-family="Helvetica, Arial, sans-serif" font-size="11">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%.0f" fill="#ffffff"/>`+"\n", svgWidth, height)
	text(&b, 12, 20, "start", "font-size=\"15\" font-weight=\"bold\"", "producerd simulate: "+rep.Scenario)
	text(&b, 12, 38, "start", "", rep.Summary)
	text(&b, 12, 54, "start", "fill=\"#555\"", "producer: "+producerText(rep.Producer)+". Real time; shaded: fault windows.")

	for i, r := range rep.Results {
		y0 := svgHeaderH + blockH*float64(i)
		head := fmt.Sprintf("%s (%s, %s): success %.2f%%, retries %d, p50 %s, p99 %s", r.Strategy, r.Plugin, r.Where,
			100*r.SuccessRate(), r.Retries, fmtDur(r.P50), fmtDur(r.P99))
		text(&b, 12, y0+20, "start", "font-size=\"13\" font-weight=\"bold\"", head)

		// Panel 1: share of attempts per second, stacked by broker.
		py := y0 + svgTitleH
		for si, s := range r.Seconds {
			cum := 0.0
			for bi := range rep.Brokers {
				share, ok := s.Share(bi)
				if !ok || share == 0 {
					continue
				}
				x0, x1 := x(time.Duration(si)*time.Second), x(time.Duration(si+1)*time.Second)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n",
					x0, py+svgPanelH*(1-cum-share), x1-x0+0.3, svgPanelH*share, brokerColors[bi%len(brokerColors)])
				cum += share
			}
		}
		shade(&b, rep, x, py, svgPanelH, true) // on top: the bars fill the panel
		frame(&b, py, svgPanelH)
		for _, f := range []float64{0, .5, 1} {
			yy := py + svgPanelH*(1-f)
			text(&b, svgLeft-6, yy+4, "end", "", fmt.Sprintf("%.0f%%", 100*f))
		}
		text(&b, svgWidth-svgRight+10, py+10, "start", "font-weight=\"bold\"", "attempts by broker")
		for bi, name := range rep.Brokers {
			ly := py + 28 + float64(bi)*15
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="10" height="10" fill="%s"/>`+"\n", svgWidth-svgRight+10, ly-9, brokerColors[bi%len(brokerColors)])
			text(&b, svgWidth-svgRight+25, ly, "start", "", name)
		}

		// Strips: isolation per broker, then the share of failed sends.
		sy := py + svgPanelH + 6
		for bi, name := range rep.Brokers {
			yy := sy + float64(bi)*svgStripH
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="#f3f3f3"/>`+"\n", svgLeft, yy, plotW, svgStripH-2)
			for _, is := range r.Isolations {
				if is.Broker == name {
					fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"/>`+"\n",
						x(is.From), yy, max(x(is.To)-x(is.From), 1), svgStripH-2, brokerColors[bi%len(brokerColors)])
				}
			}
			text(&b, svgLeft-6, yy+7, "end", "font-size=\"9\"", "isolated "+name)
		}
		if !r.HealthReported {
			text(&b, svgLeft+4, sy+7, "start", "font-size=\"9\" fill=\"#777\"", "no health table: this strategy isolates nothing")
		}
		fy := sy + float64(nb)*svgStripH
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="#f3f3f3"/>`+"\n", svgLeft, fy, plotW, svgStripH-2)
		for si, s := range r.Seconds {
			if s.Sent > s.OK {
				x0, x1 := x(time.Duration(si)*time.Second), x(time.Duration(si+1)*time.Second)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="#d62728" fill-opacity="%.2f"/>`+"\n",
					x0, fy, x1-x0+0.3, svgStripH-2, 0.15+0.85*float64(s.Sent-s.OK)/float64(s.Sent))
			}
		}
		text(&b, svgLeft-6, fy+7, "end", "font-size=\"9\"", "failed sends")

		// Panel 2: p50 and p99 latency per second, log scale.
		ly := fy + svgStripH + svgGap
		shade(&b, rep, x, ly, svgPanelH, false)
		yl := func(d time.Duration) float64 {
			v := math.Log10(max(float64(d)/float64(time.Millisecond), 0.1))
			return ly + svgPanelH*(1-min((v-lo)/(hi-lo), 1))
		}
		for e := lo; e <= hi+1e-9; e++ {
			yy := ly + svgPanelH*(1-(e-lo)/(hi-lo))
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", svgLeft, yy, svgLeft+plotW, yy)
			text(&b, svgLeft-6, yy+4, "end", "", fmtDur(time.Duration(math.Pow(10, e)*float64(time.Millisecond))))
		}
		if st := rep.Producer.SendTimeout; st > 0 {
			yy := yl(st)
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d62728" stroke-dasharray="4 3"/>`+"\n", svgLeft, yy, svgLeft+plotW, yy)
			text(&b, svgLeft+plotW+4, yy+4, "start", "fill=\"#d62728\"", "send timeout")
		}
		line(&b, r.Seconds, x, yl, func(s Second) time.Duration { return s.P50 }, "#1f77b4", "")
		line(&b, r.Seconds, x, yl, func(s Second) time.Duration { return s.P99 }, "#111111", ` stroke-dasharray="5 2"`)
		frame(&b, ly, svgPanelH)
		text(&b, svgWidth-svgRight+10, ly+svgPanelH-52, "start", "font-weight=\"bold\"", "send latency")
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#1f77b4" stroke-width="2"/>`+"\n", svgWidth-svgRight+10, ly+svgPanelH-36, svgWidth-svgRight+30, ly+svgPanelH-36)
		text(&b, svgWidth-svgRight+35, ly+svgPanelH-32, "start", "", "p50 per second")
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#111111" stroke-width="2" stroke-dasharray="5 2"/>`+"\n", svgWidth-svgRight+10, ly+svgPanelH-20, svgWidth-svgRight+30, ly+svgPanelH-20)
		text(&b, svgWidth-svgRight+35, ly+svgPanelH-16, "start", "", "p99 per second")

		// Time axis.
		ay := ly + svgPanelH
		step := 5
		if dur > 90 {
			step = 30
		} else if dur > 30 {
			step = 10
		}
		for s := 0; float64(s) <= dur+1e-9; s += step {
			xx := x(time.Duration(s) * time.Second)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", xx, ay, xx, ay+4)
			text(&b, xx, ay+15, "middle", "", fmt.Sprintf("%ds", s))
		}
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// shade draws the fault windows over a panel, labelled in the first panel.
func shade(b *bytes.Buffer, rep *Report, x func(time.Duration) float64, y, h float64, label bool) {
	for _, win := range rep.Windows {
		x0, x1 := x(win.From), x(win.To)
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d62728" fill-opacity="0.12" stroke="#d62728" stroke-opacity="0.6" stroke-dasharray="3 2"/>`+"\n",
			x0, y, max(x1-x0, 1), h)
		if label {
			text(b, x0+2, y-4, "start", "font-size=\"10\" fill=\"#b22222\"", win.Broker+" "+win.What)
		}
	}
}

func frame(b *bytes.Buffer, y, h float64) {
	fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="none" stroke="#999"/>`+"\n", svgLeft, y, svgWidth-svgLeft-svgRight, h)
}

// line draws one latency series as a path, broken over seconds without sends.
func line(b *bytes.Buffer, secs []Second, x func(time.Duration) float64, y func(time.Duration) float64, v func(Second) time.Duration, color, extra string) {
	var d strings.Builder
	pen := false
	for i, s := range secs {
		if s.Sent == 0 {
			pen = false
			continue
		}
		cmd := "L"
		if !pen {
			cmd = "M"
		}
		fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, x(time.Duration(i)*time.Second+time.Second/2), y(v(s)))
		pen = true
	}
	if d.Len() == 0 {
		return
	}
	fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.6"%s/>`+"\n", strings.TrimSpace(d.String()), color, extra)
}

// text writes an escaped <text> element; attrs are extra attributes, already valid.
func text(b *bytes.Buffer, x, y float64, anchor, attrs, s string) {
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s>`, x, y, anchor, attrs)
	_ = xml.EscapeText(b, []byte(s))
	b.WriteString("</text>\n")
}
