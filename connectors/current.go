package connectors

import (
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// CurrentLayout is implemented by a connector whose files depend on what the
// target's host holds now, not only on the material: a Java keystore is
// rebuilt whole with its other entries kept, and opened with a password read
// from a file on the host.
//
// Files stays a pure function; the reading is the pipeline's. On the host,
// the step that lays the files out reads each path Reads names through the
// activities' FS seam (the directory opened without following links, the
// file regular and bounded in size, over SSH for an agentless target) and
// calls FilesFrom with those bytes. They live in that step's memory on the
// host's worker only: no workflow payload or result carries them, so a
// keystore's passwords never leave the host's worker. FilesFrom must be a
// pure function of its inputs (the same inputs, the same bytes: Plan hashes
// the layout, Stage lays it out again and refuses bytes that differ), so a
// connector whose format salts with random bytes draws them from a generator
// seeded by its inputs.
type CurrentLayout interface {
	// Reads names the host files the layout depends on, by the
	// target_config field naming each; a file that does not exist is
	// passed as nil.
	Reads(cfg target.Config) []Destination
	// FilesFrom lays the material out given current: each path of Reads
	// to its bytes (nil: absent).
	FilesFrom(cfg target.Config, b *material.Bundle, current map[string][]byte) ([]File, error)
	// Served decodes one of the files FilesFrom lays out, as it sits on
	// disk (staged or live), into the PEM material it serves (leaf, chain,
	// key) for Validate's material check; current is read as for
	// FilesFrom.
	Served(cfg target.Config, role string, data []byte, current map[string][]byte) ([]byte, error)
}
