package testsuite

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"

	"github.com/certctl/certctl/target"
)

// serverStart is what one server helper states about starting its server:
// the directories and files it needs, its own config check and its
// foreground command. The rest (write, check, run, wait until it serves)
// is the same for every server: launch.
type serverStart struct {
	dirs  []string          // made 0755, before the files
	files map[string]string // path → content
	keys  []string          // the files holding a key: written 0600
	logs  []string          // the server's own log files, shown by Logs
	env   []string          // extra environment of the check and the server
	check []string          // argv of the server's own config check (none if empty)
	run   []string          // argv of the server in the foreground
}

// newServer is the part of a RealServer every helper shares, listening on
// 127.0.0.1:port.
func newServer(kind, dir, protocol string, port int) server {
	return server{kind: kind, dir: dir, protocol: protocol, endpoint: loopback(port)}
}

// loopback is 127.0.0.1:port.
func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// binaryAndPorts finds a server's binary with find and asks the kernel for
// n free loopback ports for it.
func binaryAndPorts(find func() (string, error), n int) (string, []int, error) {
	bin, err := find()
	if err != nil {
		return "", nil, err
	}
	ports := make([]int, n)
	for i := range ports {
		if ports[i], err = FreePort(); err != nil {
			return "", nil, err
		}
	}
	return bin, ports, nil
}

// launch writes st's directories and files, runs the server's check on
// them, starts the server and waits until it serves the leaf want. Where it
// fails before the server runs, s.afterEnd (if any) cleans up.
func (s *server) launch(st serverStart, want string) (err error) {
	defer func() {
		if err != nil && s.proc == nil && s.afterEnd != nil {
			s.afterEnd()
		}
	}()
	for _, d := range st.dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := writeFiles(st.files, st.keys...); err != nil {
		return err
	}
	s.logs = append(s.logs, st.logs...)
	if len(st.check) > 0 {
		check := exec.Command(st.check[0], st.check[1:]...)
		check.Env = append(os.Environ(), st.env...)
		if out, err := check.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: the %s check fails on the test config: %v: %s\n%s",
				target.Command(st.check), s.kind, err, out, s.Logs())
		}
	}
	if err := s.start(st.env, st.run[0], st.run[1:]...); err != nil {
		return err
	}
	return s.waitFirst(want)
}

// started is a helper's return: the server, or nil and why it did not start.
func started[T any](srv *T, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return srv, nil
}
