package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// materialFlags are the flags that give a command (deploy, rollout) its
// certificate, chain and key: the files, or an ACME client's lineage.
type materialFlags struct {
	cert, key, chain, lineage string
}

func (f *materialFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.cert, "cert", "", "certificate PEM (a fullchain is fine)")
	fl.StringVar(&f.key, "key", "", "private key PEM")
	fl.StringVar(&f.chain, "chain", "", "chain PEM (intermediates, issuer of the leaf first)")
	fl.StringVar(&f.lineage, "lineage", "", "an ACME client's lineage directory (certbot's RENEWED_LINEAGE): its cert.pem, chain.pem and privkey.pem")
}

// read reads the material the flags name, each file bounded; a DER file
// gets the command that converts it.
func (f *materialFlags) read() (material.Material, error) {
	var m material.Material
	if err := f.fromLineage(); err != nil {
		return m, err
	}
	var err error
	if m.CertPEM, err = readPEMFile("cert", f.cert); err != nil {
		return m, err
	}
	if m.KeyPEM, err = readPEMFile("key", f.key); err != nil {
		return m, err
	}
	if m.ChainPEM, err = readPEMFile("chain", f.chain); err != nil {
		return m, err
	}
	return m, nil
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
	if material.IsDER(b) {
		return "", fmt.Errorf("--%s %s: %s", flag, path, material.DERAdvice(flag+"_pem", path))
	}
	return string(b), nil
}

// The files of a lineage directory, as certbot names them (live/NAME/).
const (
	lineageCert  = "cert.pem"
	lineageChain = "chain.pem"
	lineageKey   = "privkey.pem"
)

// fromLineage turns --lineage DIR into --cert, --chain and --key, and
// checks that either it or --cert and --key were given, not both.
//
// It reads cert.pem and chain.pem, never fullchain.pem as well: fullchain.pem
// is cert.pem followed by chain.pem, so reading it beside them would send
// the chain twice.
//
// certbot's live/NAME/*.pem are symbolic links into archive/NAME/. They are
// followed here, deliberately: they are the operator's input, read with the
// operator's own rights and checked for what they hold like any --cert, and
// nothing is written there. What must never follow a link is the writing
// side, the destinations on the host, which go through package safefs.
func (f *materialFlags) fromLineage() error {
	if f.lineage == "" {
		var missing []string
		if f.cert == "" {
			missing = append(missing, "--cert")
		}
		if f.key == "" {
			missing = append(missing, "--key")
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s: required (or --lineage DIR for an ACME client's lineage)", strings.Join(missing, " and "))
		}
		return nil
	}
	var given []string
	for _, g := range []struct{ flag, v string }{{"--cert", f.cert}, {"--key", f.key}, {"--chain", f.chain}} {
		if g.v != "" {
			given = append(given, g.flag)
		}
	}
	if len(given) > 0 {
		return fmt.Errorf("--lineage and %s: give the lineage directory or the files, not both", strings.Join(given, ", "))
	}
	fi, err := os.Stat(f.lineage)
	if err != nil {
		return fmt.Errorf("--lineage: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--lineage %s: is not a directory: give the lineage directory (certbot: /etc/letsencrypt/live/NAME, $RENEWED_LINEAGE in a deploy hook)", f.lineage)
	}
	for _, n := range []string{lineageCert, lineageKey} {
		if _, err := os.Stat(filepath.Join(f.lineage, n)); err != nil {
			return fmt.Errorf("--lineage %s: has no %s (want certbot's layout: %s, %s, %s)", f.lineage, n, lineageCert, lineageChain, lineageKey)
		}
	}
	f.cert, f.key = filepath.Join(f.lineage, lineageCert), filepath.Join(f.lineage, lineageKey)
	if _, err := os.Stat(filepath.Join(f.lineage, lineageChain)); err == nil {
		f.chain = filepath.Join(f.lineage, lineageChain)
	}
	return nil
}

// nameFlag prefixes a material error with the flag and file it came from:
// "--key key.pem: key_pem: …".
func (f *materialFlags) nameFlag(err error) error {
	var me *contract.FieldError
	if !errors.As(err, &me) {
		return err
	}
	flag, path := "", ""
	switch me.Field {
	case "cert_pem":
		flag, path = "cert", f.cert
	case "key_pem":
		flag, path = "key", f.key
	case "chain_pem":
		// A fullchain's extras come from --cert when there is no --chain.
		flag, path = "chain", f.chain
		if f.chain == "" {
			flag, path = "cert", f.cert
		}
	default:
		return err
	}
	// material's conversion hints name the file FILE: this one is path.
	msg := strings.ReplaceAll(flagNames.Replace(me.Msg), "-in FILE -out FILE.pem", "-in "+path+" -out "+path+".pem")
	return fmt.Errorf("--%s %s: %s: %s", flag, path, me.Field, msg)
}

// flagNames says material's fields as this command's flags, in messages.
var flagNames = strings.NewReplacer("cert_pem", "--cert", "chain_pem", "--chain", "key_pem", "--key")

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
