package renewal

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/certctl/certctl/target"
)

// InspectDeployed runs as root on the host worker. It followed a link at
// cert_path (whoever can write the directory points it at any file) and
// opened a FIFO there blocking (the step hung until its timeout, each
// renewal); it must read only a regular file reached without links, bounded.
func TestReviewInspectDeployedNoFollowNoFIFO(t *testing.T) {
	dir := t.TempDir()
	a := New(filepath.Join(dir, "audit.jsonl"))
	env := activityEnv(a)
	elsewhere := filepath.Join(t.TempDir(), "secret.pem")
	if err := os.WriteFile(elsewhere, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "cert.pem")
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{link, fifo} {
		tg := target.Target{TargetID: "web-1", TargetType: "nginx", Config: target.Config{CertPath: path}}
		done := make(chan Deployed, 1)
		go func() {
			var d Deployed
			if v, err := env.ExecuteActivity(a.InspectDeployed, tg); err == nil {
				_ = v.Get(&d)
			} else {
				d.Problem = err.Error()
			}
			done <- d
		}()
		select {
		case d := <-done:
			if d.Exists || d.Problem == "" {
				t.Errorf("%s: read through it: %+v", path, d)
			}
		case <-time.After(5 * time.Second):
			// Unblock the open so the test can end.
			if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				f.Close()
			}
			t.Errorf("%s: InspectDeployed blocked on it", path)
			<-done
		}
	}
}
