// Package strmap is a concurrent map from strings, for per-topic state that is read on
// every message and written when a topic comes or goes, at any count of topics.
//
// It replaces sync.Map where the entries number in the hundreds of thousands (issue 19:
// 100,000 topics). sync.Map is a hash trie of interface keys and values: every entry is
// a node of its own plus a boxed key, and a lookup walks a node per 16-way level, each a
// cache miss once the trie outgrows the caches. In a daemon with 100,000 topics the two
// sync.Maps' entry and indirect nodes were 320,000 of the 1.3 million live objects the
// collector marked every cycle, with a boxed key per entry besides. Here the entries
// live in the tables of 64 Go maps, one per shard behind a read-write lock: a lookup is
// a hash, a read lock of one shard and one map lookup, and the collector sees a few
// large tables instead of a node per entry.
//
// The costs: a read takes the shard's read lock, two atomic adds on one cache line, so
// goroutines on several cores reading one hot key move that line between them (about
// 20 ns more a lookup on this project's 2-core machines, where sync.Map's read takes no
// lock); a Go map does not shrink, so a Map keeps the tables of its largest size after
// deletes; and an empty Map is 4 KiB of shards.
package strmap

import (
	"hash/maphash"
	"sync"
)

// shardCount is the number of shards: enough that writers of different keys rarely
// wait for each other, few enough that an empty Map stays at 4 KiB.
const shardCount = 64

// seed hashes keys to shards for every Map of the process.
var seed = maphash.MakeSeed()

// Map is a concurrent map from strings to V. The zero Map is empty and ready to use; a
// Map must not be copied after first use.
type Map[V any] struct {
	shards [shardCount]shard[V]
}

type shard[V any] struct {
	mu sync.RWMutex
	m  map[string]V
	_  [32]byte // one shard per cache line: readers of one shard do not slow another's
}

func (m *Map[V]) shard(key string) *shard[V] {
	return &m.shards[maphash.String(seed, key)%shardCount]
}

// Load returns key's value and whether it is present.
func (m *Map[V]) Load(key string) (V, bool) {
	s := m.shard(key)
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	return v, ok
}

// LoadOrStore returns key's value if it is present; otherwise it stores and returns
// v. loaded reports which.
func (m *Map[V]) LoadOrStore(key string, v V) (actual V, loaded bool) {
	s := m.shard(key)
	s.mu.RLock()
	old, ok := s.m[key]
	s.mu.RUnlock()
	if ok {
		return old, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[key]; ok {
		return old, true
	}
	if s.m == nil {
		s.m = make(map[string]V)
	}
	s.m[key] = v
	return v, false
}

// Store sets key's value.
func (m *Map[V]) Store(key string, v V) {
	s := m.shard(key)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]V)
	}
	s.m[key] = v
	s.mu.Unlock()
}

// LoadAndDelete removes key and returns the value it had, if any.
func (m *Map[V]) LoadAndDelete(key string) (V, bool) {
	s := m.shard(key)
	s.mu.Lock()
	v, ok := s.m[key]
	if ok {
		delete(s.m, key)
	}
	s.mu.Unlock()
	return v, ok
}

// Delete removes key.
func (m *Map[V]) Delete(key string) { m.LoadAndDelete(key) }

// Len returns the number of entries; with concurrent writers, a count that held at some
// point during the call for each shard.
func (m *Map[V]) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Range calls f for every entry until f returns false. Each shard is copied under its
// read lock and f runs without any lock held, so f may use the Map; as with sync.Map,
// an entry stored or deleted during Range may or may not be seen.
func (m *Map[V]) Range(f func(key string, v V) bool) {
	type entry struct {
		k string
		v V
	}
	var buf []entry
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		buf = buf[:0]
		for k, v := range s.m {
			buf = append(buf, entry{k, v})
		}
		s.mu.RUnlock()
		for _, e := range buf {
			if !f(e.k, e.v) {
				return
			}
		}
	}
}
