package testsuite

import "github.com/certctl/certctl/devenv"

// CA is a root and an intermediate that issue leaves (devenv.CA), with the
// odd leaves only tests mint (ca_odd.go).
type CA struct{ *devenv.CA }

// Set is one leaf with its chain and key, as PEM, plus its fingerprint.
type Set = devenv.Set

// LeafOptions shape a leaf; zero values give a one-day leaf for localhost
// and 127.0.0.1.
type LeafOptions = devenv.LeafOptions

// NewCA mints a fresh root and intermediate.
func NewCA(name string) (*CA, error) {
	ca, err := devenv.NewCA(name)
	if err != nil {
		return nil, err
	}
	return &CA{ca}, nil
}
