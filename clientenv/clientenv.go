// Package clientenv builds the Temporal client options both binaries share:
// the connection from Temporal's environment configuration (TOML profiles,
// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_*, TEMPORAL_API_KEY …,
// so an mTLS or API-key cluster needs no new flags) and certctl's payload
// codec, so every payload is encrypted before it leaves the process.
package clientenv

import (
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/codec"
)

// Options returns client options for the configured server, with the codec
// loaded from CERTCTL_CODEC_KEY_FILE / CERTCTL_CODEC_KEYS.
func Options(logger *slog.Logger) (client.Options, error) {
	o, err := ConnectionOptions(logger)
	if err != nil {
		return o, err
	}
	c, err := codec.FromEnv()
	if err != nil {
		return o, err
	}
	WithCodec(&o, c)
	return o, nil
}

// ConnectionOptions are Options without the codec: for a client that
// carries no payload (`certctl setup` only lists and adds search
// attributes), so the payload key need not be where it runs.
func ConnectionOptions(logger *slog.Logger) (client.Options, error) {
	o, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return o, fmt.Errorf("temporal client configuration: %w", err)
	}
	if o.HostPort == "" {
		o.HostPort = client.DefaultHostPort
	}
	if o.Namespace == "" {
		o.Namespace = client.DefaultNamespace
	}
	if logger != nil {
		o.Logger = log.NewStructuredLogger(logger)
	}
	return o, nil
}

// WithCodec makes o encrypt payloads, and failure messages and stack traces
// too (an error may quote a path or a command, never key bytes, but a
// history reader needs no more than the outcome).
func WithCodec(o *client.Options, c *codec.Codec) {
	dc := c.DataConverter()
	o.DataConverter = dc
	o.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          dc,
		EncodeCommonAttributes: true,
	})
}

var _ converter.DataConverter = (*codec.Codec)(nil).DataConverter()
