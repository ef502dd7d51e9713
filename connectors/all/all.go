// Package all registers every connector; the binaries import it once.
package all

import (
	_ "github.com/certctl/certctl/connectors/apache"       // apache
	_ "github.com/certctl/certctl/connectors/caddy"        // caddy (file mode)
	_ "github.com/certctl/certctl/connectors/envoy"        // envoy (file-based SDS; not run against a real envoy)
	_ "github.com/certctl/certctl/connectors/files"        // files (an application watching a directory; runs no command)
	_ "github.com/certctl/certctl/connectors/haproxy"      // haproxy
	_ "github.com/certctl/certctl/connectors/javakeystore" // javakeystore (JKS, PKCS12)
	_ "github.com/certctl/certctl/connectors/kubernetes"   // kubernetes.io/tls Secrets (agentless, client-go)
	_ "github.com/certctl/certctl/connectors/nginx"        // nginx
	_ "github.com/certctl/certctl/connectors/postfix"      // postfix and dovecot
	_ "github.com/certctl/certctl/connectors/traefik"      // traefik (file provider)
)
