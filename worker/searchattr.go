package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/certctl/certctl/clientenv"
)

// checkSearchAttributes says at start, at ERROR, when the namespace lacks
// certctl's search attributes (or has one with another type): its
// workflows would fail every workflow task that sets one. The worker runs
// on either way: the attributes may be registered later, and it needs no
// restart then.
func checkSearchAttributes(ctx context.Context, c client.Client, namespace string, logger *slog.Logger) {
	check, err := clientenv.CheckSearchAttributes(ctx, c.OperatorService(), namespace)
	switch {
	case err != nil:
		logger.Warn("cannot check certctl's search attributes; `certctl setup` registers them", "namespace", namespace, "error", err)
	case !check.OK():
		logger.Error(check.Problem(), "namespace", namespace, "missing", check.MissingNames())
	default:
		logger.Info("certctl's search attributes are registered", "namespace", namespace)
	}
}

// badSearchAttributes is the failure cause the server gives a workflow
// task that sets a search attribute the namespace lacks.
const badSearchAttributes = "BadSearchAttributes"

// searchAttributeLogger is the SDK's logger with one change: the SDK logs a
// workflow task the server refused for BadSearchAttributes at INFO ("Task
// processing failed with error", retried forever), which hides the one
// thing to do; this logs it at ERROR, saying what to do.
type searchAttributeLogger struct {
	log.Logger
	namespace string
}

// withSearchAttributeAdvice wraps l.
func withSearchAttributeAdvice(l log.Logger, namespace string) log.Logger {
	return &searchAttributeLogger{Logger: l, namespace: namespace}
}

func (l *searchAttributeLogger) Debug(msg string, keyvals ...any) {
	l.log(l.Logger.Debug, msg, keyvals)
}
func (l *searchAttributeLogger) Info(msg string, keyvals ...any) { l.log(l.Logger.Info, msg, keyvals) }
func (l *searchAttributeLogger) Warn(msg string, keyvals ...any) { l.log(l.Logger.Warn, msg, keyvals) }

func (l *searchAttributeLogger) log(at func(string, ...any), msg string, keyvals []any) {
	if !mentions(badSearchAttributes, msg, keyvals) {
		at(msg, keyvals...)
		return
	}
	l.Logger.Error(searchAttributeAdvice(l.namespace, msg), keyvals...)
}

// searchAttributeAdvice is the ERROR line's message.
func searchAttributeAdvice(namespace, msg string) string {
	return fmt.Sprintf("%s: a workflow task failed with BadSearchAttributes: namespace %q lacks one of certctl's search attributes (the error names it): "+
		"register them once with `certctl setup`; the task is retried until then", strings.TrimSuffix(msg, "."), namespace)
}

// With keeps the advice on a logger with fields (the SDK adds the
// workflow's).
func (l *searchAttributeLogger) With(keyvals ...any) log.Logger {
	return &searchAttributeLogger{Logger: log.With(l.Logger, keyvals...), namespace: l.namespace}
}

// mentions says whether s occurs in msg or in a value of keyvals (an
// error's message included).
func mentions(s, msg string, keyvals []any) bool {
	if strings.Contains(msg, s) {
		return true
	}
	for i := 1; i < len(keyvals); i += 2 {
		var v string
		switch x := keyvals[i].(type) {
		case error:
			v = x.Error()
		case string:
			v = x
		case fmt.Stringer:
			v = x.String()
		}
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}
