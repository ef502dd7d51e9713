package connectors

import "github.com/certctl/certctl/target"

// Destination is one file a target's deploy may write, by the target_config
// field that names it.
type Destination struct {
	Field string // "target_config.cert_path"
	Path  string
	// Leaf marks the file whose first certificate is the leaf deployed:
	// the one renewal inspects. One destination of a target has it.
	Leaf bool
}

// LeafFile is the destination of cfg that holds the deployed leaf, if any.
func LeafFile(c Connector, cfg target.Config) (Destination, bool) {
	for _, d := range c.Destinations(cfg) {
		if d.Leaf {
			return d, true
		}
	}
	return Destination{}, false
}

// SeparateDestinations are the files of the common layout (SeparateFiles):
// cert_path (the leaf), chain_path and key_path, those that are set.
func SeparateDestinations(cfg target.Config) []Destination {
	return set(
		Destination{"target_config.cert_path", cfg.CertPath, true},
		Destination{"target_config.key_path", cfg.KeyPath, false},
		Destination{"target_config.chain_path", cfg.ChainPath, false},
	)
}

// set keeps the destinations whose path is set.
func set(ds ...Destination) []Destination {
	var out []Destination
	for _, d := range ds {
		if d.Path != "" {
			out = append(out, d)
		}
	}
	return out
}

// With is ds and one more destination, when its path is set.
func With(ds []Destination, field, path string) []Destination {
	return append(ds, set(Destination{Field: field, Path: path})...)
}
