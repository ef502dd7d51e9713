package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// materialFlags are the flags that give a command its certificate, chain
// and key.
type materialFlags struct {
	cert, key, chain string
}

func (m *materialFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&m.cert, "cert", "", "certificate PEM (a fullchain is fine)")
	fl.StringVar(&m.key, "key", "", "private key PEM")
	fl.StringVar(&m.chain, "chain", "", "chain PEM (intermediates, issuer of the leaf first)")
	for _, n := range []string{"cert", "key"} {
		_ = cmd.MarkFlagRequired(n)
	}
}

// read reads the files, each bounded.
func (m *materialFlags) read() (material.Material, error) {
	var out material.Material
	var err error
	if out.CertPEM, err = readPEMFile("cert", m.cert); err != nil {
		return out, err
	}
	if out.KeyPEM, err = readPEMFile("key", m.key); err != nil {
		return out, err
	}
	if out.ChainPEM, err = readPEMFile("chain", m.chain); err != nil {
		return out, err
	}
	return out, nil
}

func readPEMFile(flag, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	if fi.Size() > material.MaxPEMSize {
		return "", fmt.Errorf("--%s: %s is %d bytes, more than the %d any certificate, chain or key needs: give a file holding only the PEM blocks",
			flag, path, fi.Size(), material.MaxPEMSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	return string(b), nil
}

// nameFlag prefixes a material error with the flag and file it came from:
// "--key key.pem: key_pem: …".
func (m *materialFlags) nameFlag(err error) error {
	var me *contract.FieldError
	if !errors.As(err, &me) {
		return err
	}
	flag, path := "", ""
	switch me.Field {
	case "cert_pem":
		flag, path = "cert", m.cert
	case "key_pem":
		flag, path = "key", m.key
	case "chain_pem":
		// A fullchain's extras come from --cert when there is no --chain.
		flag, path = "chain", m.chain
		if m.chain == "" {
			flag, path = "cert", m.cert
		}
	default:
		return err
	}
	return fmt.Errorf("--%s %s: %w", flag, path, err)
}

// hostWaitFromEnv is CERTCTL_HOST_WAIT, 0 when unset.
func hostWaitFromEnv() (target.Duration, error) {
	v := os.Getenv("CERTCTL_HOST_WAIT")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("CERTCTL_HOST_WAIT: %w", err)
	}
	return target.Duration(d), nil
}
