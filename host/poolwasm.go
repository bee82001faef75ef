package host

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/producerd/producerd/host/wasm"
)

// wasmEntry is one loaded WebAssembly strategy of a Pool, shared by the generations
// that run the same module (file and SHA-256 pin) with the same settings and call
// timeout. ready is closed when the load ended (st or err set).
type wasmEntry struct {
	ready chan struct{}
	st    wasm.Strategy
	err   error
	refs  int
}

// sharedWasm is one generation's reference to a shared WebAssembly strategy: every
// method but Close is the strategy's; Close releases the reference and the last one
// closes the strategy.
type sharedWasm struct {
	wasm.Strategy
	release func()
	once    sync.Once
}

func (s *sharedWasm) Close() error {
	s.once.Do(s.release)
	return nil
}

// loadWasm returns the Pool's WebAssembly strategy for spec, loading it (compile or
// compilation cache, instance pool, the module's constructor with the settings) when
// no generation runs it yet. Generations sharing it share its instances and so its
// strategy state (broker health), as generations sharing a plugin process do; each
// keeps its own circuit breaker, fallback and counters. Close the result to release it.
func (p *Pool) loadWasm(ctx context.Context, spec Spec, cacheDir string) (wasm.Strategy, error) {
	key := wasmKey(spec, cacheDir)
	for {
		p.mu.Lock()
		e := p.wasm[key]
		if e == nil {
			e = &wasmEntry{ready: make(chan struct{})}
			p.wasm[key] = e
			p.mu.Unlock()
			st, err := wasm.Load(ctx, spec.Plugin, wasm.Options{CacheDir: cacheDir, Settings: spec.Settings,
				SHA256: spec.SHA256, CallTimeout: wasmCallTimeout(spec), Logger: p.log.With("strategy", spec.Name), Name: spec.Name})
			p.mu.Lock()
			e.st, e.err = st, err
			if err != nil {
				delete(p.wasm, key)
			} else {
				e.refs++
			}
			close(e.ready)
			p.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return p.wasmRef(key, e), nil
		}
		p.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		p.mu.Lock()
		if e.err != nil || p.wasm[key] != e {
			// Its load failed or its last user closed it meanwhile: load it again
			// (a failure then is this caller's own).
			p.mu.Unlock()
			continue
		}
		e.refs++
		p.mu.Unlock()
		return p.wasmRef(key, e), nil
	}
}

func (p *Pool) wasmRef(key string, e *wasmEntry) wasm.Strategy {
	return &sharedWasm{Strategy: e.st, release: func() {
		p.mu.Lock()
		e.refs--
		last := e.refs == 0
		if last && p.wasm[key] == e {
			delete(p.wasm, key)
		}
		p.mu.Unlock()
		if last {
			_ = e.st.Close()
		}
	}}
}

// wasmModules returns the number of WebAssembly strategies the Pool holds loaded.
func (p *Pool) wasmModules() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.wasm)
}

// wasmKey identifies a shared WebAssembly strategy: the module file (path, size,
// modification time), its pin, settings, call timeout and compilation cache.
func wasmKey(s Spec, cacheDir string) string {
	s.Command, s.Env = nil, nil
	return poolKey(s) + "|" + cacheDir + "|" + string(binary.BigEndian.AppendUint64(nil, uint64(wasmCallTimeout(s))))
}

// wasmCallTimeout bounds one call into a strategy's guest. A guest call runs on the
// sender's goroutine and cannot be left behind like a late plugin answer: the limit only
// stops a stuck guest, so it is not the 10 ms decision timeout, which a descheduled
// thread or a collection inside the guest can outlast (a healthy keyhash module timed
// out once in 20,000 decisions at 1024 in flight, and its instance was replaced).
func wasmCallTimeout(s Spec) time.Duration { return max(s.DecisionTimeout, wasm.DefaultCallTimeout) }
