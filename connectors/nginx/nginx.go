// Package nginx is the connector for nginx: separate cert, chain and key
// files, checked with `nginx -t` and reloaded with `nginx -s reload`.
//
// nginx's master process reads the files as root, so the key's default mode
// 0640 with the nginx (or www-data) group is for tools run as that group.
package nginx

import (
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "nginx"

func init() {
	connectors.Register(Name, connectors.Separate{
		Name:    Name,
		KeyMode: 0o640,
		Default: connectors.Defaults{
			ValidateCommand: target.Command{"nginx", "-t"},
			ReloadCommand:   target.Command{"nginx", "-s", "reload"},
			Owners:          []string{"nginx", "www-data"},
			Processes:       []string{"nginx"},
		},
	})
}
