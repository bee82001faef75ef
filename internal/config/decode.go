package config

import "github.com/producerd/producerd/internal/tomlx"

// Error is one configuration problem at a key. Its text is "FILE:LINE: key KEY: problem"
// (without ":LINE" when the line is unknown, without "key KEY: " for file-level
// problems). It is tomlx.Error, which simulator scenarios report too.
type Error = tomlx.Error

// ParseSize parses a byte size: digits with an optional unit B, KB, MB, GB (powers of
// 1000) or KiB, MiB, GiB (powers of 1024), e.g. "4MiB", "512", "64 KiB".
func ParseSize(s string) (int64, error) { return tomlx.ParseSize(s) }
