// Package clientenv builds Temporal client options from the environment both
// binaries share: TEMPORAL_ADDRESS (default localhost:7233) and
// TEMPORAL_NAMESPACE (default "default").
package clientenv

import (
	"log/slog"
	"os"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
)

// Options returns client options for the configured server.
func Options(logger *slog.Logger) client.Options {
	o := client.Options{
		HostPort:  getenv("TEMPORAL_ADDRESS", client.DefaultHostPort),
		Namespace: getenv("TEMPORAL_NAMESPACE", client.DefaultNamespace),
	}
	if logger != nil {
		o.Logger = log.NewStructuredLogger(logger)
	}
	return o
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
