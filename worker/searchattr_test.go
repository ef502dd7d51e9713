package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.temporal.io/sdk/log"
)

// The SDK logs a workflow task the server refused for BadSearchAttributes
// at INFO; the worker's logger raises it to ERROR with what to do, on
// loggers with fields too, and leaves every other line as it was.
func TestBadSearchAttributesLoggedAtError(t *testing.T) {
	var buf bytes.Buffer
	l := withSearchAttributeAdvice(log.NewStructuredLogger(slog.New(slog.NewTextHandler(&buf, nil))), "default")
	l = log.With(l, "Namespace", "default")
	taskErr := errors.New("BadSearchAttributes: Namespace default has no mapping defined for search attribute CertctlTarget")
	l.Info("Task processing failed with error", "Error", taskErr)
	l.Info("Started Worker", "TaskQueue", "certctl")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	want := `level=ERROR msg="Task processing failed with error: a workflow task failed with BadSearchAttributes: namespace \"default\" lacks one of certctl's search attributes (the error names it): register them once with ` +
		"`certctl setup`" + `; the task is retried until then" Namespace=default Error="BadSearchAttributes: Namespace default has no mapping defined for search attribute CertctlTarget"`
	if got := lines[0][strings.Index(lines[0], "level="):]; got != want {
		t.Fatalf("BadSearchAttributes line:\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(lines[1], `level=INFO msg="Started Worker"`) {
		t.Fatalf("an ordinary line changed: %s", lines[1])
	}
}
