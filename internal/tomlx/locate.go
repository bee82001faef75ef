package tomlx

import (
	"strconv"
	"strings"
)

// Locator maps key paths ("producer[1].group", "client.name_servers[0]",
// "fault[0].errors[1].code") to the line where they are defined. BurntSushi/toml keeps key positions unexported and per key
// name (so the second [[producer]] table shadows the first), so the positions come from
// this small scanner instead. It runs only on input the TOML parser already accepted,
// so it can be lenient: anything it does not understand falls back to the line of the
// nearest ancestor that it did see. It understands [table] and [[array]] headers, dotted
// and quoted keys, inline tables, arrays (on one line or many) and multi-line strings.
type Locator struct {
	lines map[string]int
	// arrays counts the tables of each array of tables seen so far (resolved path of
	// the array -> count).
	arrays map[string]int

	src  string
	pos  int
	line int
}

// NewLocator scans src, a TOML document the parser already accepted.
func NewLocator(src string) *Locator {
	l := &Locator{lines: make(map[string]int), arrays: make(map[string]int), src: src, line: 1}
	l.scan()
	return l
}

// Line returns the line of path or of its nearest located ancestor; 0 when none is
// known.
func (l *Locator) Line(path string) int {
	for path != "" {
		if n, ok := l.lines[path]; ok {
			return n
		}
		path = parentPath(path)
	}
	return 0
}

// Lines returns the located paths and their lines, without the fallback to ancestors
// that Line does. The map belongs to the Locator.
func (l *Locator) Lines() map[string]int { return l.lines }

// parentPath strips the last segment ("a.b[2]" -> "a.b", "a.b" -> "a").
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// joinPath appends key to the table path prefix ("a.b" + "c" -> "a.b.c").
func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func (l *Locator) record(path string, line int) {
	if _, ok := l.lines[path]; !ok {
		l.lines[path] = line
	}
}

func (l *Locator) eof() bool { return l.pos >= len(l.src) }

func (l *Locator) peek() byte {
	if l.eof() {
		return 0
	}
	return l.src[l.pos]
}

func (l *Locator) advance() {
	if l.src[l.pos] == '\n' {
		l.line++
	}
	l.pos++
}

// skipSpace skips blanks, and newlines and comments when nl is set.
func (l *Locator) skipSpace(nl bool) {
	for !l.eof() {
		switch c := l.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			l.advance()
		case c == '\n' && nl:
			l.advance()
		case c == '#' && nl:
			l.skipLine()
		default:
			return
		}
	}
}

// skipLine skips to the start of the next line.
func (l *Locator) skipLine() {
	for !l.eof() && l.peek() != '\n' {
		l.advance()
	}
	if !l.eof() {
		l.advance()
	}
}

func (l *Locator) scan() {
	prefix := ""
	for {
		l.skipSpace(true)
		if l.eof() {
			return
		}
		if l.peek() == '[' {
			prefix = l.header()
			l.skipLine()
			continue
		}
		line := l.line
		segs := l.key('=')
		if l.peek() != '=' {
			l.skipLine()
			continue
		}
		l.advance()
		path := prefix
		for _, s := range segs {
			path = joinPath(path, s)
			l.record(path, line)
		}
		l.value(path)
		l.skipLine()
	}
}

// header reads "[a.b]" or "[[a.b]]" and returns the resolved table path.
func (l *Locator) header() string {
	line := l.line
	l.advance()
	array := l.peek() == '['
	if array {
		l.advance()
	}
	segs := l.key(']')
	path := ""
	for i, s := range segs {
		path = joinPath(path, s)
		if i == len(segs)-1 && array {
			n := l.arrays[path]
			l.arrays[path] = n + 1
			l.record(path, line)
			path += "[" + strconv.Itoa(n) + "]"
			break
		}
		if n, ok := l.arrays[path]; ok && n > 0 {
			path += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	l.record(path, line)
	return path
}

// key reads a dotted key up to (not including) stop or the end of the line.
func (l *Locator) key(stop byte) []string {
	var segs []string
	for {
		l.skipSpace(false)
		var seg string
		switch c := l.peek(); c {
		case '"', '\'':
			seg = l.quoted(c)
		default:
			start := l.pos
			for !l.eof() {
				c := l.peek()
				if c == '.' || c == stop || c == ' ' || c == '\t' || c == '\n' || c == '=' || c == ']' {
					break
				}
				l.advance()
			}
			seg = l.src[start:l.pos]
		}
		segs = append(segs, seg)
		l.skipSpace(false)
		if l.peek() != '.' {
			return segs
		}
		l.advance()
	}
}

// quoted reads a one-line quoted string starting at q and returns its content.
func (l *Locator) quoted(q byte) string {
	start := l.pos
	l.advance()
	for !l.eof() && l.peek() != q && l.peek() != '\n' {
		if q == '"' && l.peek() == '\\' {
			l.advance()
		}
		if !l.eof() {
			l.advance()
		}
	}
	if !l.eof() && l.peek() == q {
		l.advance()
	}
	raw := l.src[start:l.pos]
	if q == '"' {
		if s, err := strconv.Unquote(raw); err == nil {
			return s
		}
	}
	return strings.Trim(raw, string(q))
}

// value skips one value, recording the positions of the keys of inline tables and of
// array elements under path.
func (l *Locator) value(path string) {
	l.skipSpace(false)
	switch c := l.peek(); {
	case strings.HasPrefix(l.src[l.pos:], `"""`):
		l.multiline(`"""`)
	case strings.HasPrefix(l.src[l.pos:], `'''`):
		l.multiline(`'''`)
	case c == '"' || c == '\'':
		l.quoted(c)
	case c == '[':
		l.advance()
		for i := 0; ; i++ {
			l.skipSpace(true)
			if l.eof() || l.peek() == ']' {
				break
			}
			p := path + "[" + strconv.Itoa(i) + "]"
			l.record(p, l.line)
			l.value(p)
			l.skipSpace(true)
			if l.peek() == ',' {
				l.advance()
			}
		}
		if !l.eof() {
			l.advance()
		}
	case c == '{':
		l.advance()
		for {
			l.skipSpace(true)
			if l.eof() || l.peek() == '}' {
				break
			}
			line := l.line
			segs := l.key('=')
			p := path
			for _, s := range segs {
				p = joinPath(p, s)
				l.record(p, line)
			}
			if l.peek() != '=' {
				break
			}
			l.advance()
			l.value(p)
			l.skipSpace(true)
			if l.peek() == ',' {
				l.advance()
			}
		}
		if !l.eof() {
			l.advance()
		}
	default:
		for !l.eof() {
			c := l.peek()
			if c == ',' || c == ']' || c == '}' || c == '\n' || c == '#' {
				break
			}
			l.advance()
		}
	}
}

func (l *Locator) multiline(delim string) {
	for range 3 {
		l.advance()
	}
	for !l.eof() {
		if delim == `"""` && l.peek() == '\\' {
			l.advance()
			if !l.eof() {
				l.advance()
			}
			continue
		}
		if strings.HasPrefix(l.src[l.pos:], delim) {
			for range 3 {
				l.advance()
			}
			// Up to two more quotes may belong to the content.
			for !l.eof() && l.peek() == delim[0] {
				l.advance()
			}
			return
		}
		l.advance()
	}
}
