package connectors

import "github.com/certctl/certctl/target"

// Destination is one file a target's deploy may write, by the target_config
// field that names it.
type Destination struct {
	Field string // "target_config.cert_path"
	Path  string
}

// Destinations lists every path a target's deploy may write: each path field
// of target_config that is set, whatever the connector (a connector refuses
// the fields it does not read, so none is left out). It needs no material, so
// a worker's policy can check a target before any step runs.
func Destinations(cfg target.Config) []Destination {
	var ds []Destination
	for _, d := range []Destination{
		{"target_config.cert_path", cfg.CertPath},
		{"target_config.key_path", cfg.KeyPath},
		{"target_config.chain_path", cfg.ChainPath},
		{"target_config.pem_path", cfg.PEMPath},
		{"target_config.dynamic_config_path", cfg.DynamicConfigPath},
		{"target_config.sds_path", cfg.SDSPath},
	} {
		if d.Path != "" {
			ds = append(ds, d)
		}
	}
	return ds
}
