package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/producerd/producerd/host/wasm/internal/wasmbin"
	"github.com/producerd/producerd/internal/strategywire"
	"github.com/producerd/producerd/plugins/sdk/pick"
	"github.com/producerd/producerd/plugins/sdk/wasmguest/wasmabi"
)

// caches are the compilation caches of this process, by Options.CacheDir ("" is the
// in-memory one). They live as long as the process: wazero drops a compiled module
// from memory when its last user closes it, so a cache holds only what is loaded.
var (
	cachesMu sync.Mutex
	caches   = map[string]wazero.CompilationCache{}
)

func compilationCache(dir string) (wazero.CompilationCache, error) {
	cachesMu.Lock()
	defer cachesMu.Unlock()
	if c, ok := caches[dir]; ok {
		return c, nil
	}
	var c wazero.CompilationCache
	if dir == "" {
		c = wazero.NewCompilationCache()
	} else {
		var err error
		if c, err = wazero.NewCompilationCacheWithDir(dir); err != nil {
			return nil, fmt.Errorf("wasm: compilation cache %s: %w", dir, err)
		}
	}
	caches[dir] = c
	return c, nil
}

// Load reads the WebAssembly module at path, checks it against the producerd ABI,
// compiles it (or takes it from the compilation cache), starts Options.Instances
// instances, configures them with Options.Settings and returns the Strategy. Every
// problem is reported here: unreadable file, ErrABI, ErrInvalidOptions, a rejection of
// the settings (wrapping sdk.ErrInvalidSettings), a guest that fails or outlives
// StartTimeout while starting. ctx is checked between the steps (compiling one module
// is not interruptible). Load does not use ctx after it returns.
func Load(ctx context.Context, path string, opts Options) (Strategy, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	bin, err := readModule(path)
	if err != nil {
		return nil, err
	}
	if o.SHA256 != "" {
		if sum := sha256.Sum256(bin); !strings.EqualFold(hex.EncodeToString(sum[:]), o.SHA256) {
			return nil, fmt.Errorf("%w: %s has SHA-256 %x", ErrChecksumMismatch, path, sum)
		}
	}
	mod, err := wasmbin.Parse(bin)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrABI, path, err)
	}
	if err := checkABI(mod); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	bin, err = wasmbin.Instrument(bin, interruptExport)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrABI, path, err)
	}
	cache, err := compilationCache(o.CacheDir)
	if err != nil {
		return nil, err
	}
	s := &strategy{
		opts:    o,
		path:    path,
		ctx:     context.Background(),
		epoch:   time.Now(),
		done:    make(chan struct{}),
		stop:    make(chan struct{}),
		watched: make(map[*instance]struct{}),
	}
	s.epochWall = s.epoch.UnixNano()
	s.log = o.Logger.With("wasm", filepath.Base(path))
	// WithCloseOnContextDone stays off: wazero would then start a goroutine per call
	// (1.4–6.5 µs). Calls are bounded by the instrumented interrupt instead (see
	// package wasmbin and strategy.watch).
	cfg := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(false).
		WithMemoryLimitPages(o.MemoryLimitPages).
		WithCompilationCache(cache)
	s.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	ok := false
	defer func() {
		if !ok {
			s.shutdown()
		}
	}()
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, s.rt); err != nil {
		return nil, fmt.Errorf("wasm: WASI: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.compiled, err = s.rt.CompileModule(ctx, bin); err != nil {
		return nil, fmt.Errorf("wasm: compile %s: %w", path, err)
	}
	s.watchers.Add(1)
	go s.watch()

	s.slots = make([]*slot, o.Instances)
	for i := range s.slots {
		s.slots[i] = &slot{id: i}
	}
	for i := range s.slots {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in, err := s.start(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("wasm: %s: instance %d: %w", path, i, err)
		}
		if i == 0 {
			if err := s.describe(in, mod); err != nil {
				s.discard(in)
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
		s.slots[i].inst.Store(in)
	}
	if s.opts.Name == "" {
		s.opts.Name = s.desc.Descriptor.Name
	}
	s.log = o.Logger.With("strategy", s.opts.Name, "wasm", filepath.Base(path))
	if s.desc.Descriptor.LocalApply && !o.NoLocalApply {
		s.local = pick.New(pick.Options{}) // without health: the zero policy (round-robin)
		s.publishPolicy()
	}
	ok = true
	return s, nil
}

func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("wasm: %w", err)
	}
	defer f.Close()
	bin, err := io.ReadAll(io.LimitReader(f, MaxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("wasm: read %s: %w", path, err)
	}
	if len(bin) > MaxModuleSize {
		return nil, fmt.Errorf("wasm: %s is larger than %d bytes", path, MaxModuleSize)
	}
	return bin, nil
}

// describe calls the first instance's describe, checks the declared flags against
// the exports, and keeps the description.
func (s *strategy) describe(in *instance, mod *wasmbin.Module) error {
	out, err := s.callOutput(in, in.fnDescribe, 0, s.opts.StartTimeout)
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	d, err := wasmabi.DecodeDescribe(out)
	if err != nil {
		return fmt.Errorf("%w: describe output: %w", ErrABI, err)
	}
	if d.Descriptor.Name == "" {
		return fmt.Errorf("%w: describe returned an empty name (did the module register a strategy?)", ErrABI)
	}
	if err := checkFlags(mod, d.Flags); err != nil {
		return err
	}
	s.desc = d
	s.clock = d.Has(wasmabi.FlagClock)
	s.features = strategywire.Features{
		Observer:       d.Has(wasmabi.FlagObserver),
		HealthReporter: d.Has(wasmabi.FlagHealthReporter),
		HealthSeeder:   d.Has(wasmabi.FlagHealthSeeder),
		Configurable:   d.Has(wasmabi.FlagConfigurable),
		Describer:      true,
	}
	return nil
}

// emptySettings reports settings that say nothing: empty, {} or null.
func emptySettings(b []byte) bool {
	switch string(bytes.TrimSpace(b)) {
	case "", "{}", "null":
		return true
	}
	return false
}
