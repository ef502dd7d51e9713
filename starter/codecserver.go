package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/certctl/certctl/codec"
)

func codecServerCmd() *cobra.Command {
	var listen, origins string
	cmd := &cobra.Command{
		Use:   "codec-server [--listen 127.0.0.1:8081]",
		Short: "Serve Temporal's remote codec protocol so the Web UI and `temporal --codec-endpoint` see decrypted payloads",
		Long: `Decrypts (POST /decode) and encrypts (POST /encode) payloads with the keys of
CERTCTL_CODEC_KEY_FILE / CERTCTL_CODEC_KEYS. Point the Web UI at it
(temporal server start-dev --ui-codec-endpoint http://127.0.0.1:8081, or the UI's
codec endpoint setting) and the temporal CLI with --codec-endpoint.

CERTCTL_CODEC_SERVER_TOKEN, when set, is required as "Authorization: Bearer <token>".
Whoever can reach this server can read private keys: bind it to loopback or put
it behind your own authentication.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := codec.FromEnv()
			if err != nil {
				return &exitError{code: 2, msg: err.Error()}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serveCodec(ctx, c, listen, splitList(origins), os.Getenv("CERTCTL_CODEC_SERVER_TOKEN"), cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8081", "address to listen on")
	cmd.Flags().StringVar(&origins, "ui-origin", "http://127.0.0.1:8233,http://localhost:8233", "comma-separated Web UI origins allowed to call the server")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// serveCodec serves until ctx ends. It reports the bound address on w.
func serveCodec(ctx context.Context, c *codec.Codec, listen string, origins []string, token string, w io.Writer) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return &exitError{code: 1, msg: fmt.Sprintf("codec server: %v", err)}
	}
	srv := &http.Server{Handler: codec.Handler(c, codec.ServerOptions{Token: token, Origins: origins}), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(w, "codec server: http://%s (encrypting key id %s)\n", ln.Addr(), c.KeyID())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
