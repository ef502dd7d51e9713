package renewal

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/certctl/certctl/connectors/nginx"
	"github.com/certctl/certctl/contract"
)

// The profile and the bypass are the workflow worker's: read from its
// profiles directory and its own environment.
func TestLoadProfileFromTheWorker(t *testing.T) {
	dir := t.TempDir()
	text := "profile_id: p-prod\nrequires_approval: true\napprovers: [bob]\nsubject: {common_name: a.example}\nsans: [a.example]\n" +
		"issuer: {type: localca, ca_cert: /x, ca_key: /y}\n" +
		"targets: [{target_id: w, target_type: nginx, host: h, target_config: {cert_path: /a/c.pem, key_path: /a/k.pem, post_deploy_verify: {enabled: false}}}]\n"
	if err := os.WriteFile(filepath.Join(dir, "p-prod.yaml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &Activities{ProfilesDir: dir}
	t.Setenv(EnvBypass, "")
	res, err := a.LoadProfile(context.Background(), ProfileInput{ProfileID: "p-prod"})
	if err != nil || !res.Profile.RequiresApproval || res.Profile.Approvers[0] != "bob" || res.Bypass {
		t.Fatalf("%+v: %v", res, err)
	}
	t.Setenv(EnvBypass, "true")
	if res, err := a.LoadProfile(context.Background(), ProfileInput{ProfileID: "p-prod"}); err != nil || !res.Bypass {
		t.Fatalf("the worker's bypass not read: %+v %v", res, err)
	}
	_, err = a.LoadProfile(context.Background(), ProfileInput{ProfileID: "p-nope"})
	if contract.Of(err) != contract.InvalidInput || !strings.Contains(err.Error(), filepath.Join(dir, "p-nope.yaml")) {
		t.Fatalf("an uninstalled profile: %v", err)
	}
}
