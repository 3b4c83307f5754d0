package server

import (
	"io"
	"log/slog"
)

// NewLogger returns the structured logger nbdserve uses: logfmt lines on
// w. Connection loggers add client= and export= to every line.
func NewLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
