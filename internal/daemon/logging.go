package daemon

import (
	"io"
	"time"

	"github.com/hashicorp/go-hclog"
)

// NewLogger returns the daemon's logger: level trace, debug, info, warn, error or off;
// format text or json. Sub-loggers share its level, so a reload can change it.
// Durations are written as text ("1.5s"), in JSON too, where they would otherwise be
// integer nanoseconds.
func NewLogger(level, format string, w io.Writer) hclog.Logger {
	return readableLogger{hclog.New(&hclog.LoggerOptions{
		Name:       "producerd",
		Level:      logLevel(level),
		JSONFormat: format == "json",
		Output:     w,
	})}
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

// readableLogger writes time.Duration values as their String form.
type readableLogger struct{ hclog.Logger }

var _ hclog.Logger = readableLogger{}

func readable(args []any) []any {
	for i, a := range args {
		if d, ok := a.(time.Duration); ok {
			args[i] = d.String()
		}
	}
	return args
}

func (l readableLogger) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, readable(args)...)
}
func (l readableLogger) Trace(msg string, args ...any) { l.Logger.Trace(msg, readable(args)...) }
func (l readableLogger) Debug(msg string, args ...any) { l.Logger.Debug(msg, readable(args)...) }
func (l readableLogger) Info(msg string, args ...any)  { l.Logger.Info(msg, readable(args)...) }
func (l readableLogger) Warn(msg string, args ...any)  { l.Logger.Warn(msg, readable(args)...) }
func (l readableLogger) Error(msg string, args ...any) { l.Logger.Error(msg, readable(args)...) }
func (l readableLogger) With(args ...any) hclog.Logger {
	return readableLogger{l.Logger.With(readable(args)...)}
}
func (l readableLogger) Named(name string) hclog.Logger {
	return readableLogger{l.Logger.Named(name)}
}
func (l readableLogger) ResetNamed(name string) hclog.Logger {
	return readableLogger{l.Logger.ResetNamed(name)}
}
