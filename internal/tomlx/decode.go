// Package tomlx is the strict TOML decoder shared by producer.toml (internal/config)
// and simulator scenarios (internal/simulate).
//
// BurntSushi/toml parses the file into a generic tree (map[string]any); a Decoder walks
// it through Table's typed getters, which mark every key they read so that Table.Done
// can report the rest as unknown. Every problem is an *Error naming the file, the line
// and the key ("FILE:LINE: key KEY: problem"); Decoder.Err joins them ordered by line.
// Lines come from a Locator, since the parser keeps key positions to itself.
package tomlx

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// ErrInvalid matches every *Error (errors.Is). Its text predates this package: it is
// the sentinel internal/config exports as config.ErrInvalid.
var ErrInvalid = errors.New("config: invalid configuration")

// Error is one problem at a key. Its text is "FILE:LINE: key KEY: problem" (without
// ":LINE" when the line is unknown, without "key KEY: " for file-level problems).
type Error struct {
	File    string
	Line    int
	Key     string
	Problem string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString("key ")
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Decoder collects the problems found while a typed value is filled from a TOML tree.
type Decoder struct {
	// ListKnown makes Table.Done report an unknown key with every key read from its
	// table ("unknown key (known here: a, b)") instead of a "did you mean" hint.
	ListKnown bool
	// InlineTables makes Table.Tables accept an array of inline tables as well as
	// [[k]] headers; Table.Sub's message then mentions inline tables too.
	InlineTables bool
	// SizeExample is the size shown when a size has the wrong type; default "4MiB".
	SizeExample string

	file   string
	loc    *Locator
	errs   []error
	values []Value
}

// Parse parses data, read from the file called name, and returns a Decoder for it with
// the root table. A syntax error is returned as an *Error and nothing else.
func Parse(name string, data []byte) (*Decoder, *Table, error) {
	var tree map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&tree); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, nil, &Error{File: name, Line: pe.Position.Line, Key: pe.LastKey, Problem: "syntax error: " + pe.Message}
		}
		return nil, nil, &Error{File: name, Problem: err.Error()}
	}
	d := &Decoder{file: name, loc: NewLocator(string(data))}
	return d, d.table("", tree), nil
}

// File returns the name of the file being decoded.
func (d *Decoder) File() string { return d.file }

// Line returns the line of the key path or of its nearest located ancestor; 0 when none
// is known.
func (d *Decoder) Line(path string) int { return d.loc.Line(path) }

// Errorf records a problem at the key path, on the path's line.
func (d *Decoder) Errorf(path, format string, args ...any) {
	d.ErrorAt(d.Line(path), path, format, args...)
}

// ErrorAt records a problem at the key path on the given line.
func (d *Decoder) ErrorAt(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: path, Problem: fmt.Sprintf(format, args...)})
}

// Err returns the problems joined into one error ordered by line (stable: problems on
// one line keep the order they were found in); nil when there are none.
func (d *Decoder) Err() error {
	if len(d.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(d.errs, func(a, b error) int {
		var ea, eb *Error
		if errors.As(a, &ea) && errors.As(b, &eb) {
			return ea.Line - eb.Line
		}
		return 0
	})
	return errors.Join(d.errs...)
}

func (d *Decoder) table(path string, m map[string]any) *Table {
	return &Table{d: d, path: path, m: m, seen: make(map[string]bool)}
}

// TypeName describes a decoded TOML value for a message: `string "x"`, "integer 3",
// "table", "array of tables", ...
func TypeName(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case map[string]any:
		return "table"
	case []map[string]any:
		return "array of tables"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}
