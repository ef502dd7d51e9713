// Package sshfs reaches a target's files on another machine over SSH and
// SFTP (golang.org/x/crypto/ssh, github.com/pkg/sftp): the transport of an
// agentless target (target_config.ssh). The steps in package activities are
// written once against a small filesystem interface; this package is its
// remote side, package safefs its local one.
//
// Host keys are checked against known_hosts_path or a pinned host_key: an
// unknown or changed key is a HostKeyError, never accepted. The client key
// is read from the worker's own disk (private_key_path) or an ssh-agent
// (SSH_AUTH_SOCK); it is never logged.
//
// One connection serves every step of a deploy that runs on one worker: a
// Pool keeps it, keyed by address, user, key and host-key source, and closes
// it once idle.
package sshfs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/certctl/certctl/target"
)

// DefaultIdle is how long a pooled connection stays open unused.
const DefaultIdle = time.Minute

// maxKeyFile bounds the client key file read.
const maxKeyFile = 64 << 10

// UnavailableError says the remote host could not be reached or did not
// finish the SSH handshake within the connect timeout.
type UnavailableError struct {
	Address string
	Err     error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("ssh %s: host unavailable: %v", e.Address, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// ConfigError says the target's ssh settings (key file, known_hosts) cannot
// be used on this worker.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Pool keeps one SSH connection (with its SFTP session) per remote end.
type Pool struct {
	// Idle is how long an unused connection stays open; 0 means DefaultIdle.
	Idle time.Duration

	mu    sync.Mutex
	conns map[key]*Conn
}

type key struct {
	address, user, keyPath, knownHosts, hostKey string
}

// Default is the pool of a worker process.
var Default = &Pool{}

// Conn is one SSH connection and its SFTP session.
type Conn struct {
	cfg    target.SSH
	client *ssh.Client
	sftp   *sftp.Client
	pool   *Pool
	k      key

	mu    sync.Mutex
	users int
	timer *time.Timer
	dead  bool

	helperMu sync.Mutex
	helper   *helper

	// Cached facts about the remote end.
	factsMu     sync.Mutex
	factsKnown  bool
	uid, gid    int
	fsyncFiles  bool
	posixRename bool
}

// Get returns a connection to s's host, dialing one when the pool has none
// alive. Release it when the step is done.
func (p *Pool) Get(ctx context.Context, s *target.SSH) (*Conn, error) {
	k := key{s.Address, s.User, s.PrivateKeyPath, s.KnownHostsPath, s.HostKey}
	p.mu.Lock()
	if p.conns == nil {
		p.conns = map[key]*Conn{}
	}
	c := p.conns[k]
	if c != nil {
		c.mu.Lock()
		if c.dead {
			c.mu.Unlock()
			delete(p.conns, k)
			c = nil
		} else {
			c.users++
			if c.timer != nil {
				c.timer.Stop()
			}
			c.mu.Unlock()
		}
	}
	p.mu.Unlock()
	if c != nil {
		if err := c.alive(s.ConnectLimit()); err == nil {
			return c, nil
		}
		c.kill()
		c.Release()
	}
	c, err := dial(ctx, s)
	if err != nil {
		return nil, err
	}
	c.pool, c.k, c.users = p, k, 1
	p.mu.Lock()
	if old := p.conns[k]; old != nil {
		old.mu.Lock()
		if old.users == 0 {
			old.dead = true
			go old.close()
		}
		old.mu.Unlock()
	}
	p.conns[k] = c
	p.mu.Unlock()
	return c, nil
}

// Close closes every pooled connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.conns {
		c.kill()
		delete(p.conns, k)
	}
}

// Release gives the connection back to its pool, which closes it once idle.
func (c *Conn) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.users--
	if c.users > 0 || c.dead {
		if c.users <= 0 && c.dead {
			go c.close()
		}
		return
	}
	idle := DefaultIdle
	if c.pool != nil && c.pool.Idle > 0 {
		idle = c.pool.Idle
	}
	c.timer = time.AfterFunc(idle, func() {
		c.mu.Lock()
		if c.users > 0 {
			c.mu.Unlock()
			return
		}
		c.dead = true
		c.mu.Unlock()
		if c.pool != nil {
			c.pool.mu.Lock()
			if c.pool.conns[c.k] == c {
				delete(c.pool.conns, c.k)
			}
			c.pool.mu.Unlock()
		}
		c.close()
	})
}

func (c *Conn) kill() {
	c.mu.Lock()
	c.dead = true
	c.mu.Unlock()
	c.close()
}

func (c *Conn) close() {
	_ = c.sftp.Close()
	_ = c.client.Close()
}

// alive checks a pooled connection still answers, within limit.
func (c *Conn) alive(limit time.Duration) error {
	done := make(chan error, 1)
	go func() {
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		return errors.New("no answer to a keepalive")
	}
}

// Address is the remote end, "user@host:port".
func (c *Conn) Address() string { return c.cfg.String() }

// dial connects, checks the host key and opens the SFTP session, all within
// s's connect timeout.
func dial(ctx context.Context, s *target.SSH) (*Conn, error) {
	check, algos, err := hostKeyCheck(s)
	if err != nil {
		return nil, &ConfigError{err}
	}
	auth, closeAuth, err := authFor(s)
	if err != nil {
		return nil, &ConfigError{err}
	}
	defer closeAuth()
	limit := s.ConnectLimit()
	cfg := &ssh.ClientConfig{
		User:              s.User,
		Auth:              auth,
		HostKeyCallback:   check,
		HostKeyAlgorithms: algos,
		Timeout:           limit,
	}
	dctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", s.Address)
	if err != nil {
		return nil, &UnavailableError{Address: s.Address, Err: err}
	}
	_ = nc.SetDeadline(time.Now().Add(limit))
	sc, chans, reqs, err := ssh.NewClientConn(nc, s.Address, cfg)
	if err != nil {
		nc.Close()
		var he *HostKeyError
		if errors.As(err, &he) {
			return nil, he
		}
		return nil, &UnavailableError{Address: s.Address, Err: err}
	}
	client := ssh.NewClient(sc, chans, reqs)
	sf, err := sftp.NewClient(client)
	if err != nil {
		client.Close()
		return nil, &UnavailableError{Address: s.Address, Err: fmt.Errorf("sftp subsystem: %w", err)}
	}
	_ = nc.SetDeadline(time.Time{})
	c := &Conn{cfg: *s, client: client, sftp: sf}
	_, c.posixRename = sf.HasExtension("posix-rename@openssh.com")
	v, ok := sf.HasExtension("fsync@openssh.com")
	c.fsyncFiles = ok && v == "1"
	return c, nil
}

// authFor is the client's authentication: the private key file, else the
// ssh-agent at SSH_AUTH_SOCK. The key's bytes stay in this function.
func authFor(s *target.SSH) ([]ssh.AuthMethod, func(), error) {
	if s.PrivateKeyPath != "" {
		f, err := os.Open(s.PrivateKeyPath)
		if err != nil {
			return nil, nil, fmt.Errorf("target_config.ssh.private_key_path: %v", err)
		}
		defer f.Close()
		b := make([]byte, maxKeyFile+1)
		n, _ := f.Read(b)
		for n < len(b) {
			m, err := f.Read(b[n:])
			n += m
			if err != nil || m == 0 {
				break
			}
		}
		if n > maxKeyFile {
			return nil, nil, fmt.Errorf("target_config.ssh.private_key_path %s: larger than %d bytes: not a private key", s.PrivateKeyPath, maxKeyFile)
		}
		signer, err := ssh.ParsePrivateKey(b[:n])
		clear(b)
		if err != nil {
			// The parser's message never holds the key's bytes.
			return nil, nil, fmt.Errorf("target_config.ssh.private_key_path %s: not an unencrypted private key certctl can use (%v); a passphrase-protected key goes in an ssh-agent (SSH_AUTH_SOCK) instead", s.PrivateKeyPath, err)
		}
		return []ssh.AuthMethod{ssh.PublicKeys(signer)}, func() {}, nil
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, nil, errors.New("target_config.ssh.private_key_path: not set and no ssh-agent (SSH_AUTH_SOCK is empty): give the worker a key file or an agent")
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh-agent at SSH_AUTH_SOCK %s: %v", sock, err)
	}
	ag := agent.NewClient(conn)
	return []ssh.AuthMethod{ssh.PublicKeysCallback(ag.Signers)}, func() { conn.Close() }, nil
}
