package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"

	"github.com/certctl/certctl/clientenv"
	"github.com/certctl/certctl/codec"
	"github.com/certctl/certctl/testsuite"
)

// TestReplayRecordedHistories replays every history recorded from the real
// dev server (testsuite/histories, re-recorded only on purpose with `make
// record-histories`). A change to workflow code that would break a running
// deploy fails here; see README "Changing a workflow".
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("../testsuite/histories/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("want at least two recorded histories in testsuite/histories, found %d", len(files))
	}
	c, err := testsuite.UseTestCodec()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				DataConverter:    c.DataConverter(),
				FailureConverter: failureConverter(c),
			})
			if err != nil {
				t.Fatal(err)
			}
			Register(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}

func failureConverter(c *codec.Codec) converter.FailureConverter {
	var o client.Options
	clientenv.WithCodec(&o, c)
	return o.FailureConverter
}

// Rotation: histories written under the old key still replay once a new key
// encrypts (the old key stays loaded for decoding).
func TestReplayAfterKeyRotation(t *testing.T) {
	old, err := testsuite.TestCodecKeys()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := codec.ParseKeys(old)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _, err := codec.GenerateKey("rotated-in")
	if err != nil {
		t.Fatal(err)
	}
	c, err := codec.New(append(keys, fresh)...)
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyID() != "rotated-in" {
		t.Fatalf("the newest key must encrypt, got %s", c.KeyID())
	}
	files, _ := filepath.Glob("../testsuite/histories/*.json")
	for _, f := range files {
		r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: c.DataConverter(), FailureConverter: failureConverter(c)})
		if err != nil {
			t.Fatal(err)
		}
		Register(r)
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
			t.Fatalf("replay %s after rotation: %v", f, err)
		}
	}
	// Without the old key the same histories cannot be read: the rotation
	// test above is not passing by accident.
	only, _ := codec.New(fresh)
	r, _ := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: only.DataConverter(), FailureConverter: failureConverter(only)})
	Register(r)
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, files[0]); err == nil {
		t.Fatal("a history replayed without the key that encrypted it")
	}
}
