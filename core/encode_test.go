package core

import (
	"bytes"
	stdzlib "compress/zlib"
	"io"
	"testing"
)

// Every level compresses every body the standard library's inflater (like Java's
// java.util.zip.Inflater) reads back; low-redundancy text is compressed at the fast levels
// too (klauspost alone stores it), random bytes are sent as they are.
func TestCompressBodies(t *testing.T) {
	t.Parallel()
	bodies := compressionBodies()
	for _, name := range []string{"json", "english", "lowred-text", "random", "json-4k", "lowred-text-4k"} {
		body := bodies[name]
		for level := 1; level <= 9; level++ {
			z, ok := compress(body, level)
			if name == "random" {
				if ok {
					t.Errorf("%s level %d: compressed to %d of %d bytes", name, level, len(z), len(body))
				}
				continue
			}
			if !ok {
				t.Errorf("%s level %d: not compressed", name, level)
				continue
			}
			if name == "lowred-text" && len(z) > len(body)*7/10 {
				t.Errorf("%s level %d: %d of %d bytes, want <= 70%%", name, level, len(z), len(body))
			}
			r, err := stdzlib.NewReader(bytes.NewReader(z))
			if err != nil {
				t.Fatalf("%s level %d: %v", name, level, err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("%s level %d: inflated %d bytes (%v), want the body back", name, level, len(got), err)
			}
		}
	}
}
