package sshfs

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/certctl/certctl/target"
)

// HostKeyError says the remote host's key is not one this target trusts:
// not in known_hosts_path (unknown), another key for the host there
// (changed), or not the pinned host_key. It is never accepted.
type HostKeyError struct {
	Address string
	// Got is the key the host presented ("ssh-ed25519 SHA256:…").
	Got string
	// Reason says what is wrong and what to do.
	Reason string
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("ssh %s: host key %s %s", e.Address, e.Got, e.Reason)
}

// hostKeyCheck is the host key callback for s and the key algorithms to ask
// the server for (those of the keys trusted for it, so a server that also
// has another kind of key shows the trusted one).
func hostKeyCheck(s *target.SSH) (ssh.HostKeyCallback, []string, error) {
	if s.HostKey != "" {
		want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.HostKey))
		if err != nil {
			return nil, nil, fmt.Errorf("target_config.ssh.host_key: %v: give one line as ssh-keyscan prints it without the host name (\"ssh-ed25519 AAAA…\")", err)
		}
		cb := func(_ string, _ net.Addr, got ssh.PublicKey) error {
			if bytes.Equal(got.Marshal(), want.Marshal()) {
				return nil
			}
			return &HostKeyError{Address: s.Address, Got: describe(got),
				Reason: fmt.Sprintf("is not the pinned target_config.ssh.host_key (%s): refused; if the host's key really changed, check the new one out of band and pin it", describe(want))}
		}
		return cb, algorithmsFor(want.Type()), nil
	}
	if _, err := os.Stat(s.KnownHostsPath); err != nil {
		return nil, nil, fmt.Errorf("target_config.ssh.known_hosts_path: %v", err)
	}
	kh, err := knownhosts.New(s.KnownHostsPath)
	if err != nil {
		return nil, nil, fmt.Errorf("target_config.ssh.known_hosts_path %s: %v", s.KnownHostsPath, err)
	}
	cb := func(hostname string, remote net.Addr, got ssh.PublicKey) error {
		err := kh(hostname, remote, got)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			return &HostKeyError{Address: s.Address, Got: describe(got), Reason: fmt.Sprintf("is revoked in %s: refused", s.KnownHostsPath)}
		case errors.As(err, &ke) && len(ke.Want) == 0:
			return &HostKeyError{Address: s.Address, Got: describe(got),
				Reason: fmt.Sprintf("is unknown: %s has no key for %s; certctl never trusts a key on first use: check the host's key out of band and add its line (%s)", s.KnownHostsPath, knownhosts.Normalize(s.Address), knownhosts.Line([]string{knownhosts.Normalize(s.Address)}, got))}
		case errors.As(err, &ke):
			var want []string
			for _, k := range ke.Want {
				want = append(want, fmt.Sprintf("%s (%s:%d)", describe(k.Key), k.Filename, k.Line))
			}
			return &HostKeyError{Address: s.Address, Got: describe(got),
				Reason: fmt.Sprintf("is not the key %s holds for %s (%s): the host's key changed or someone is in the middle; refused, nothing written", s.KnownHostsPath, knownhosts.Normalize(s.Address), strings.Join(want, ", "))}
		}
		return &HostKeyError{Address: s.Address, Got: describe(got), Reason: err.Error()}
	}
	// Learn which kinds of key known_hosts holds for the host: ask the
	// callback about a key it cannot hold.
	var algos []string
	probe, _ := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	var ke *knownhosts.KeyError
	addr := &net.TCPAddr{IP: net.IPv4zero}
	if err := kh(knownhosts.Normalize(s.Address), addr, probe); errors.As(err, &ke) {
		for _, k := range ke.Want {
			algos = append(algos, algorithmsFor(k.Key.Type())...)
		}
	}
	return cb, algos, nil
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

func describe(k ssh.PublicKey) string {
	return k.Type() + " " + ssh.FingerprintSHA256(k)
}
