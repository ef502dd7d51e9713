// Package all registers every issuer; the binaries import it once.
package all

import (
	_ "github.com/certctl/certctl/issuers/localca" // localca: a CA on the certctl worker's disk
)
