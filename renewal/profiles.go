package renewal

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"strings"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/probe"
	"github.com/certctl/certctl/profile"
)

// ProfileInput names the profile a renewal asks for: an ID, never the
// profile itself.
type ProfileInput struct {
	ProfileID string `json:"profile_id"`
}

// ProfileResult is the workflow worker's own profile and its own bypass
// setting: what a renewal obeys.
type ProfileResult struct {
	Profile profile.Profile `json:"profile"`
	// Bypass is CERTCTL_APPROVAL_BYPASS=true in the workflow worker's
	// environment (dev and CI only).
	Bypass bool `json:"bypass,omitempty"`
}

// LoadProfile reads the profile from the workflow worker's profiles
// directory (ProfilesDir, else CERTCTL_PROFILES_DIR, else
// /etc/certctl/profiles) and the bypass from the worker's environment. A
// profile that is missing or wrong is InvalidInput (not retried), naming the
// file.
func (a *Activities) LoadProfile(_ context.Context, in ProfileInput) (ProfileResult, error) {
	p, err := profile.LoadID(a.profilesDir(), in.ProfileID)
	if err != nil {
		return ProfileResult{}, contract.Invalid("profile_id", strings.TrimPrefix(err.Error(), "profile_id: "))
	}
	if err := CheckTargets(p); err != nil {
		return ProfileResult{}, contract.Invalid("profile_id", fmt.Sprintf("profile %s: %v", in.ProfileID, err))
	}
	bypass, err := BypassFromEnv()
	if err != nil {
		return ProfileResult{}, contract.Invalid(EnvBypass, err.Error())
	}
	return ProfileResult{Profile: *p, Bypass: bypass}, nil
}

func (a *Activities) profilesDir() string {
	if a.ProfilesDir != "" {
		return a.ProfilesDir
	}
	return profile.DirFromEnv()
}

// CheckTargets refuses what would make every deploy of a profile fail: an
// unknown connector, its own fields, a verify host the profile's SANs do
// not cover.
func CheckTargets(p *profile.Profile) error {
	sans := &x509.Certificate{}
	for _, s := range p.SANs {
		if ip := net.ParseIP(s); ip != nil {
			sans.IPAddresses = append(sans.IPAddresses, ip)
		} else {
			sans.DNSNames = append(sans.DNSNames, s)
		}
	}
	for i, t := range p.Targets {
		field := fmt.Sprintf("targets[%d]", i)
		c, err := connectors.Get(t.TargetType)
		if err != nil {
			return fmt.Errorf("%s.target_type: %w", field, err)
		}
		if err := c.Check(t.Config); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		if !t.Config.VerifyEnabled() || connectors.VerifiesByReadBack(c) {
			// No verify host: nothing is probed, the files are read back.
			continue
		}
		host := probe.Host(t.Config.PostDeployVerify)
		if sans.VerifyHostname(host) != nil {
			return fmt.Errorf("%s.target_config.post_deploy_verify: the verify host %q is not covered by the profile's sans (%s)",
				field, host, strings.Join(p.SANs, ", "))
		}
	}
	return nil
}
