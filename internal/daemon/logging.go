package daemon

import (
	"io"

	"github.com/hashicorp/go-hclog"
)

// NewLogger returns the daemon's logger: level trace, debug, info, warn, error or off;
// format text or json. Sub-loggers share its level, so a reload can change it.
func NewLogger(level, format string, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "producerd",
		Level:      logLevel(level),
		JSONFormat: format == "json",
		Output:     w,
	})
}

func logLevel(s string) hclog.Level {
	if s == "off" {
		return hclog.Off
	}
	if l := hclog.LevelFromString(s); l != hclog.NoLevel {
		return l
	}
	return hclog.Info
}
