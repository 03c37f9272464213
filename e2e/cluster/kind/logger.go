package kind

import (
	"context"
	"fmt"
	"log/slog"

	kindlog "sigs.k8s.io/kind/pkg/log"
)

// logger hands kind's progress lines to slog: V(0) status lines at info, higher verbosity at debug.
type logger struct{ l *slog.Logger }

func newLogger(l *slog.Logger) kindlog.Logger {
	if l == nil {
		return kindlog.NoopLogger{}
	}
	return logger{l: l.With("component", "kind")}
}

func (g logger) Warn(message string)                       { g.l.Warn(message) }
func (g logger) Warnf(format string, args ...interface{})  { g.l.Warn(fmt.Sprintf(format, args...)) }
func (g logger) Error(message string)                      { g.l.Error(message) }
func (g logger) Errorf(format string, args ...interface{}) { g.l.Error(fmt.Sprintf(format, args...)) }
func (g logger) V(level kindlog.Level) kindlog.InfoLogger {
	lvl := slog.LevelInfo
	if level > 0 {
		lvl = slog.LevelDebug
	}
	return infoLogger{l: g.l, level: lvl}
}

type infoLogger struct {
	l     *slog.Logger
	level slog.Level
}

func (i infoLogger) Info(message string) { i.l.Log(context.Background(), i.level, message) }
func (i infoLogger) Infof(format string, args ...interface{}) {
	i.l.Log(context.Background(), i.level, fmt.Sprintf(format, args...))
}
func (i infoLogger) Enabled() bool { return i.l.Enabled(context.Background(), i.level) }
