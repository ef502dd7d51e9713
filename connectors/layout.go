package connectors

import (
	"fmt"
	"os"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// WithIndexFile is SeparateFiles plus one more file, written last, that
// names the cert and key for a server that watches it (traefik's dynamic
// config, envoy's SDS file). index gets the cert path, key path and the leaf's
// SHA-256, so its bytes change with every certificate and the watcher fires.
func WithIndexFile(cfg target.Config, b *material.Bundle, role, path string, index func(certPath, keyPath, leafSHA256 string) []byte) ([]File, error) {
	files, err := SeparateFiles(cfg, b, 0o644, 0o644, 0o600)
	if err != nil {
		return nil, err
	}
	return append(files, File{Role: role, Path: path, Bytes: index(cfg.CertPath, cfg.KeyPath, b.LeafSHA256()), DefaultMode: 0o644}), nil
}

// SeparateFiles is the common layout: the leaf in cert_path, the chain in
// chain_path, the key in key_path. Without a chain_path the chain follows the
// leaf in cert_path, so the server still sends it.
//
// Like every connector's Files, it writes only what material.Bundle's
// LeafPEM, ChainPEM and KeyPEM encode, never the operator's text: comments,
// headers and junk around the blocks stay out of live files.
func SeparateFiles(cfg target.Config, b *material.Bundle, certMode, chainMode, keyMode os.FileMode) ([]File, error) {
	if cfg.CertPath == "" {
		return nil, &contract.FieldError{Field: "target_config.cert_path", Msg: "is required"}
	}
	if cfg.KeyPath == "" {
		return nil, &contract.FieldError{Field: "target_config.key_path", Msg: "is required"}
	}
	leaf, chain := b.LeafPEM(), b.ChainPEM()
	files := []File{}
	if cfg.ChainPath == "" {
		files = append(files, File{Role: "cert", Path: cfg.CertPath, Bytes: append(leaf, chain...), Mode: cfg.CertFileMode, Owner: cfg.CertOwner, DefaultMode: certMode})
	} else {
		files = append(files,
			File{Role: "cert", Path: cfg.CertPath, Bytes: leaf, Mode: cfg.CertFileMode, Owner: cfg.CertOwner, DefaultMode: certMode},
			File{Role: "chain", Path: cfg.ChainPath, Bytes: chain, Mode: cfg.ChainFileMode, Owner: cfg.ChainOwner, DefaultMode: chainMode})
	}
	files = append(files, File{Role: "key", Path: cfg.KeyPath, Bytes: b.KeyPEM(), HoldsKey: true, Mode: cfg.KeyFileMode, Owner: cfg.KeyOwner, DefaultMode: keyMode})
	seen := map[string]string{}
	for _, f := range files {
		if r, dup := seen[f.Path]; dup {
			return nil, &contract.FieldError{Field: "target_config." + f.Role + "_path", Msg: fmt.Sprintf("is the same file as %s_path", r)}
		}
		seen[f.Path] = f.Role
	}
	return files, nil
}

// CheckIndexed is the check of a connector that writes WithIndexFile's
// layout (traefik, envoy): cert_path and key_path required, no chain_path
// (the chain goes after the leaf in cert_path, as the index file names one
// certificate file), and the index file (field, path) required and apart
// from both. required says what the index file is, for its error.
func CheckIndexed(cfg target.Config, name, field, path, required string) error {
	if err := RequirePaths(cfg, name); err != nil {
		return err
	}
	switch {
	case cfg.ChainPath != "" || cfg.ChainFileMode != nil || cfg.ChainOwner != "":
		return &contract.FieldError{Field: "target_config.chain_path", Msg: "is not used by " + name + ": it reads the chain from the certificate file, so certctl appends it to cert_path"}
	case path == "":
		return &contract.FieldError{Field: field, Msg: "is required for " + name + ": " + required}
	case path == cfg.CertPath || path == cfg.KeyPath:
		return &contract.FieldError{Field: field, Msg: "must be a file of its own, apart from cert_path and key_path"}
	}
	return nil
}
