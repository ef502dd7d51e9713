package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/certctl/certctl/clientenv"
)

// dial connects to Temporal as the environment says (clientenv).
func dial() (client.Client, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	o, err := clientenv.Options(quiet)
	if err != nil {
		return nil, err
	}
	dialedNamespace = o.Namespace
	if o.DataConverter != nil {
		dialedConverter = o.DataConverter
	}
	c, err := client.Dial(o)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w (set TEMPORAL_ADDRESS, or run `certctl dev`)", o.HostPort, err)
	}
	return c, nil
}

// withClient dials Temporal (exit 1 when it cannot), runs fn with the
// client and closes it.
func withClient(ctx context.Context, fn func(context.Context, client.Client) error) error {
	c, err := dial()
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	defer c.Close()
	return fn(ctx, c)
}

// following is withClient for a command that follows a workflow: Ctrl-C
// cancels ctx, so the command stops following and the workflow runs on.
func following(cmd *cobra.Command, fn func(context.Context, client.Client) error) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
	defer stop()
	return withClient(ctx, fn)
}

// dialedConverter is the data converter of the client dial made (the
// codec's): what followSteps decodes step names with.
var dialedConverter converter.DataConverter

func dataConverter() converter.DataConverter {
	if dialedConverter == nil {
		return converter.GetDefaultDataConverter()
	}
	return dialedConverter
}
