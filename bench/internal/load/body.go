package load

import "strconv"

// Body returns the benchmark body of size bytes: lowercase letters from a 64-bit LCG
// (x = x*6364136223846793005 + 1442695040888963407, letter 'a' + (x>>33)%26), a space
// after every 7 letters. It compresses with zlib to roughly 60%, like text, so that the
// 16 KiB scenario exercises compression. The Java driver computes the same bytes.
func Body(size int) []byte {
	b := make([]byte, size)
	x := uint64(42)
	for i := range b {
		if i%8 == 7 {
			b[i] = ' '
			continue
		}
		x = x*6364136223846793005 + 1442695040888963407
		b[i] = byte('a' + (x>>33)%26)
	}
	return b
}

// Tag is the tag every measured message carries.
const Tag = "bench"

// Key returns the key of message i ("k" + i), as the Java driver sets it.
func Key(i int) string { return "k" + strconv.Itoa(i) }

// Name is the k-th of a numbered set of topic or producer group names: prefix-k. The
// harness's growth points create them and the daemon driver sends to them.
func Name(prefix string, k int) string { return prefix + "-" + strconv.Itoa(k) }

// Names returns Name(prefix, 0..n-1).
func Names(prefix string, n int) []string {
	out := make([]string, n)
	for k := range out {
		out[k] = Name(prefix, k)
	}
	return out
}
