package tomlx_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/producerd/producerd/internal/tomlx"
)

const src = `name = "x"
Colour = "red"
list = [ { n = 1 }, { n = 2, extra = true } ]
[t]
wait = "2s"
size = "4KiB"
share = 0.5
tags = ["a", 1]
[[item]]
n = 3
[[item]]
n = 99
`

// decode reads src with every getter; opts sets the decoder's options.
func decode(t *testing.T, opts func(*tomlx.Decoder)) (time.Duration, int64, float64, []string, error) {
	t.Helper()
	d, root, err := tomlx.Parse("f.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	opts(d)
	var name string
	root.Str("name", &name)
	root.Get("colour")
	var (
		wait  time.Duration
		size  int64
		share float64
		tags  []string
	)
	if tt := root.Sub("t"); tt != nil {
		tt.Duration("wait", &wait, 3*time.Second, tomlx.NoMax)
		tt.Size("size", &size, 0, 1<<20)
		tt.Fraction("share", &share)
		tt.Strings("tags", &tags)
		tt.Done()
	}
	for _, it := range root.Tables("item") {
		var n int
		it.Int("n", &n, 0, 10)
		it.Done()
	}
	for _, it := range root.Tables("list") {
		var n int
		it.Int("n", &n, 0, 10)
		it.Done()
	}
	root.Done()
	return wait, size, share, tags, d.Err()
}

func TestDecode(t *testing.T) {
	t.Parallel()
	wait, size, share, tags, err := decode(t, func(*tomlx.Decoder) {})
	want := `f.toml:2: key Colour: unknown key (did you mean "colour"?)
f.toml:3: key list: expected an array of tables ([[list]]), got array
f.toml:5: key t.wait: duration 2s is below the minimum 3s
f.toml:8: key t.tags[1]: expected a string, got integer 1
f.toml:12: key item[1].n: 99 is out of range 0..10`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	if !errors.Is(err, tomlx.ErrInvalid) {
		t.Errorf("%v does not match ErrInvalid", err)
	}
	if wait != 0 || size != 4<<10 || share != 0.5 || strings.Join(tags, ",") != "a" {
		t.Errorf("values: %v %v %v %q", wait, size, share, tags)
	}

	_, _, _, _, err = decode(t, func(d *tomlx.Decoder) { d.ListKnown, d.InlineTables = true, true })
	want = `f.toml:2: key Colour: unknown key (known here: colour, item, list, name, t)
f.toml:3: key list[1].extra: unknown key (known here: n)
f.toml:5: key t.wait: duration 2s is below the minimum 3s
f.toml:8: key t.tags[1]: expected a string, got integer 1
f.toml:12: key item[1].n: 99 is out of range 0..10`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestSyntaxError(t *testing.T) {
	t.Parallel()
	_, _, err := tomlx.Parse("f.toml", []byte("a = 1\nb = \"x\ny\"\n"))
	var e *tomlx.Error
	if !errors.As(err, &e) || e.Line != 2 || !strings.HasPrefix(e.Problem, "syntax error: ") {
		t.Errorf("Parse = %v", err)
	}
}

func TestLocator(t *testing.T) {
	t.Parallel()
	l := tomlx.NewLocator("[a]\nx.y = { z = [\n  1,\n  { w = 2 },\n] }\ns = '''\n[b]\n'''\n[[c]]\n[[c]]\nk = 1\n")
	for path, want := range map[string]int{
		"a.x.y": 2, "a.x.y.z[1].w": 4, "a.s": 6, "b": 0, "c": 9, "c[1].k": 11, "c[1].other": 10,
	} {
		if got := l.Line(path); got != want {
			t.Errorf("Line(%q) = %d, want %d", path, got, want)
		}
	}
}
