package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/testenv"
)

// Network namespaces for tests of more than one host on one machine: each
// host (a VELO_HOME whose Env.Netns is set, or a store) in a namespace of
// its own, linked by veth pairs (iproute2), so that a link can be taken
// down and up.

// NewNetns makes a network namespace with its loopback up, deleted when
// the test ends (after what was registered after it: the servers in it go
// first).
func NewNetns(t testing.TB) string {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip")
	testenv.RequireCommand(t, "nsenter")
	name := "velo-" + randomHex(4)
	ipRun(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	run(t, inNetns(name, "ip", "link", "set", "lo", "up"))
	return name
}

// Veth links namespace nsA (address ipA, a /24 CIDR) and nsB (ipB); ""
// is this process's namespace. It returns the two ends' names.
func Veth(t testing.TB, nsA, ipA, nsB, ipB string) (ifA, ifB string) {
	t.Helper()
	id := randomHex(4)
	ifA, ifB = "vv"+id+"a", "vv"+id+"b"
	ipRun(t, "link", "add", ifA, "type", "veth", "peer", "name", ifB)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", ifA).Run()
		_ = inNetns(nsA, "ip", "link", "del", ifA).Run()
	})
	for _, end := range []struct{ ns, ifname, ip string }{{nsA, ifA, ipA}, {nsB, ifB, ipB}} {
		if end.ns != "" {
			ipRun(t, "link", "set", end.ifname, "netns", end.ns)
		}
		run(t, inNetns(end.ns, "ip", "addr", "add", end.ip, "dev", end.ifname))
		run(t, inNetns(end.ns, "ip", "link", "set", end.ifname, "up"))
	}
	return ifA, ifB
}

// SetLink takes interface ifname of namespace ns down or up.
func SetLink(t testing.TB, ns, ifname string, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	run(t, inNetns(ns, "ip", "link", "set", ifname, state))
}

// inNetns is the command name args run in namespace ns ("" here).
func inNetns(ns, name string, args ...string) *exec.Cmd {
	return NetnsCommand(context.Background(), ns, name, args...)
}

// NetnsCommand is exec.CommandContext of name args in namespace ns ("" here).
func NetnsCommand(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	if ns == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "nsenter", NetnsArgs(ns, name, args...)...)
}

// NetnsArgs are nsenter's arguments that run name args in namespace ns:
// the network namespace only. Not ip netns exec, which also makes a mount
// namespace, a copy of every mount there is: where mounts do not
// propagate (a private root, as here), that copy keeps each zfs-fuse
// dataset mounted at the time alive after zfs unmount, and zfs destroy
// of it "busy", for as long as the program runs.
func NetnsArgs(ns, name string, args ...string) []string {
	return append([]string{"--net=/run/netns/" + ns, "--", name}, args...)
}

func ipRun(t testing.TB, args ...string) { t.Helper(); run(t, exec.Command("ip", args...)) }

func run(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
