package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/codec"
)

// A step line shows the failure's message as the worker wrote it: the
// codec encrypts it (EncodeCommonAttributes), and the CLI holds the key.
func TestStepLineDecodesFailure(t *testing.T) {
	key, _, err := codec.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := codec.New(key)
	if err != nil {
		t.Fatal(err)
	}
	dc := c.DataConverter()
	fc := temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{DataConverter: dc, EncodeCommonAttributes: true})
	msg := "verify 127.0.0.1:8443: serves the chain a.example (sha256:0123456789ab); want a.example (sha256:0123456789ab), then R3"
	fl := fc.ErrorToFailure(temporal.NewApplicationError(msg, "VerifyMismatch"))
	if fl.GetMessage() == msg {
		t.Fatalf("the failure converter did not encode the message: the test proves nothing")
	}
	var got []progressEvent
	f := newFollower(dc, func(e progressEvent) { got = append(got, e) }, map[string]bool{}, "deploy/x", "")
	f.names[5] = "verify"
	stepLine := func(ev *historypb.HistoryEvent) (string, string) {
		got = nil
		f.handle(ev)
		if len(got) != 1 || got[0].Event != "step_ended" {
			t.Fatalf("events %+v", got)
		}
		return got[0].Step, stepText(got[0])
	}

	ev := &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED, Attributes: &historypb.HistoryEvent_ActivityTaskFailedEventAttributes{
		ActivityTaskFailedEventAttributes: &historypb.ActivityTaskFailedEventAttributes{ScheduledEventId: 5, Failure: fl}}}
	_, line := stepLine(ev)
	if !strings.Contains(line, "verify") || !strings.Contains(line, "FAILED") || !strings.Contains(line, msg) || strings.Contains(line, "Encoded failure") {
		t.Errorf("step line %q\nwant the decoded message %q", line, msg)
	}

	// Under a key this certctl does not hold, the line says so.
	other, _, _ := codec.GenerateKey("k2")
	oc, _ := codec.New(other)
	f.dc = oc.DataConverter()
	if _, line := stepLine(ev); !strings.Contains(line, "Encoded failure (not decoded: it is encrypted under a codec key this certctl does not hold)") {
		t.Errorf("step line %q under another key", line)
	}
}

// --lineage reads certbot's cert.pem, chain.pem and privkey.pem (never
// fullchain.pem), and refuses the file flags beside it, naming them.
func TestLineageFlags(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := materialFlags{lineage: dir}
	if err := f.fromLineage(); err != nil {
		t.Fatal(err)
	}
	if f.cert != filepath.Join(dir, "cert.pem") || f.chain != filepath.Join(dir, "chain.pem") || f.key != filepath.Join(dir, "privkey.pem") {
		t.Errorf("lineage read as cert %s chain %s key %s", f.cert, f.chain, f.key)
	}
	f = materialFlags{lineage: dir, key: "k.pem", chain: "c.pem"}
	if err := f.fromLineage(); err == nil || err.Error() != "--lineage and --key, --chain: give the lineage directory or the files, not both" {
		t.Errorf("error %v", err)
	}
	f = materialFlags{cert: "c.pem"}
	if err := f.fromLineage(); err == nil || !strings.Contains(err.Error(), "--key: required") {
		t.Errorf("error %v", err)
	}
}
