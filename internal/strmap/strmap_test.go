package strmap

import (
	"runtime"
	"strconv"
	"sync"
	"testing"
)

func TestMap(t *testing.T) {
	t.Parallel()
	var m Map[int]
	if _, ok := m.Load("a"); ok {
		t.Fatal("the zero Map has an entry")
	}
	if v, loaded := m.LoadOrStore("a", 1); loaded || v != 1 {
		t.Fatalf("LoadOrStore on an empty key = %d, %v; want 1, false", v, loaded)
	}
	if v, loaded := m.LoadOrStore("a", 2); !loaded || v != 1 {
		t.Fatalf("LoadOrStore on a present key = %d, %v; want 1, true", v, loaded)
	}
	m.Store("a", 3)
	m.Store("b", 4)
	if v, ok := m.Load("a"); !ok || v != 3 {
		t.Fatalf("Load after Store = %d, %v; want 3, true", v, ok)
	}
	if n := m.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	if v, ok := m.LoadAndDelete("a"); !ok || v != 3 {
		t.Fatalf("LoadAndDelete = %d, %v; want 3, true", v, ok)
	}
	if _, ok := m.LoadAndDelete("a"); ok {
		t.Fatal("LoadAndDelete of a deleted key found it")
	}
	m.Delete("b")
	if n := m.Len(); n != 0 {
		t.Fatalf("Len after deleting both = %d", n)
	}
}

func TestRange(t *testing.T) {
	t.Parallel()
	var m Map[int]
	const n = 1000
	for i := range n {
		m.Store(strconv.Itoa(i), i)
	}
	seen := make(map[string]int)
	m.Range(func(k string, v int) bool {
		if strconv.Itoa(v) != k {
			t.Errorf("entry %q has value %d", k, v)
		}
		seen[k]++
		// f runs without the shard's lock: it may change the Map.
		m.Delete(k)
		return true
	})
	if len(seen) != n {
		t.Fatalf("Range saw %d keys, want %d", len(seen), n)
	}
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("Range saw %q %d times", k, c)
		}
	}
	if m.Len() != 0 {
		t.Fatalf("%d entries left after deleting all during Range", m.Len())
	}

	for i := range 10 {
		m.Store(strconv.Itoa(i), i)
	}
	calls := 0
	m.Range(func(string, int) bool { calls++; return false })
	if calls != 1 {
		t.Fatalf("Range called f %d times after it returned false", calls)
	}
}

// TestConcurrent has writers and readers of overlapping keys at once (run with -race):
// every key ends with the value its only writer stored last, and LoadOrStore hands all
// racing callers one value.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	var m Map[int]
	const keys, writers = 500, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < keys; i += writers {
				k := strconv.Itoa(i)
				m.Store(k, -1)
				m.Store(k, i)
			}
		})
	}
	winners := make([]int, writers)
	for r := range writers {
		wg.Go(func() {
			for i := range keys {
				if v, ok := m.Load(strconv.Itoa(i)); ok && v != -1 && v != i {
					t.Errorf("key %d has value %d", i, v)
				}
				runtime.Gosched()
			}
			winners[r], _ = m.LoadOrStore("shared", r)
		})
	}
	wg.Wait()
	for i := range keys {
		if v, ok := m.Load(strconv.Itoa(i)); !ok || v != i {
			t.Fatalf("key %d = %d, %v after the writers", i, v, ok)
		}
	}
	for _, w := range winners {
		if w != winners[0] {
			t.Fatalf("LoadOrStore gave racing callers different values: %v", winners)
		}
	}
}

// BenchmarkLoad looks up keys in turn in maps of 1 and 100,000 keys, against sync.Map:
// `go test -bench Load -benchmem ./internal/strmap/`.
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{1, 100_000} {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = "topic-" + strconv.Itoa(i)
		}
		var m Map[*int]
		var sm sync.Map
		for _, k := range keys {
			m.Store(k, new(int))
			sm.Store(k, new(int))
		}
		for _, c := range []struct {
			name string
			load func(string) bool
		}{
			{"strmap", func(k string) bool { _, ok := m.Load(k); return ok }},
			{"sync.Map", func(k string) bool { _, ok := sm.Load(k); return ok }},
		} {
			b.Run(c.name+"/"+strconv.Itoa(n), func(b *testing.B) {
				i := 0
				for b.Loop() {
					if !c.load(keys[i]) {
						b.Fatal("missing")
					}
					if i++; i == n {
						i = 0
					}
				}
			})
		}
	}
}

// BenchmarkGC is a full collection with 100,000 entries live, against sync.Map: the
// collector's cost of holding the map (`go test -bench GC ./internal/strmap/`).
func BenchmarkGC(b *testing.B) {
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "topic-" + strconv.Itoa(i)
	}
	b.Run("strmap", func(b *testing.B) {
		var m Map[*int]
		for _, k := range keys {
			m.Store(k, new(int))
		}
		for b.Loop() {
			runtime.GC()
		}
		runtime.KeepAlive(&m)
	})
	b.Run("sync.Map", func(b *testing.B) {
		var m sync.Map
		for _, k := range keys {
			m.Store(k, new(int))
		}
		for b.Loop() {
			runtime.GC()
		}
		runtime.KeepAlive(&m)
	})
}
