package activities

import (
	"path/filepath"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/scrub"
)

// maxKeyFile bounds what is read of a file to learn the keys it holds.
const maxKeyFile = 1 << 20

// scrubberFor knows every private key a command of this deploy could print:
// the material's, when the step has it, and those in the target's files and
// in this deploy's temp and backup files beside them (the old key too).
func scrubberFor(fsys FS, req Request, m *material.Material) *scrub.Scrubber {
	sc := scrub.New()
	if m != nil {
		sc.AddPEM([]byte(m.KeyPEM))
	}
	var ds []connectors.Destination
	if c, err := connectors.Get(req.Target.TargetType); err == nil {
		ds = c.Destinations(req.Target.Config)
	}
	for _, d := range ds {
		p := d.Path
		for _, f := range []string{p, TempPath(p, req.Stamp), BackupPath(p, req.Stamp)} {
			if b := readKeyFile(fsys, f); b != nil {
				sc.AddPEM(b)
			}
		}
	}
	return sc
}

// readKeyFile reads a regular file through safefs (no link followed on the
// way or at the name, no FIFO blocked on); nil when there is none.
func readKeyFile(fsys FS, path string) []byte {
	d, err := fsys.OpenDir(filepath.Dir(path))
	if err != nil {
		return nil
	}
	defer d.Close()
	b, _, err := d.ReadLimited(filepath.Base(path), maxKeyFile)
	if err != nil {
		return nil
	}
	return b
}
