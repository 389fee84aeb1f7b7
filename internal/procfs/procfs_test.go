package procfs

import (
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses, as a process may choose.
	line := "4242 (postgres: a) b) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 10 18446744073709551615\n"
	st, err := ParseStat([]byte(line))
	if err != nil || st.State != 'S' || st.PPID != 1 || st.StartTicks != 123456 || st.Zombie() {
		t.Errorf("ParseStat = %+v, %v", st, err)
	}
	if _, err := ParseStat([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("ParseStat accepted a short line")
	}
	if _, err := ParseStat([]byte("no name")); err == nil {
		t.Error("ParseStat accepted a line without a command name")
	}
}

func TestLiveSince(t *testing.T) {
	pid := os.Getpid()
	if !LiveSince(pid, time.Now()) {
		t.Error("this process is not live since now")
	}
	if LiveSince(pid, time.Now().Add(-24*365*time.Hour)) {
		t.Error("this process is taken for one that started a year ago: a reused PID would pass")
	}
}

func TestParseCmdline(t *testing.T) {
	if got := ParseCmdline([]byte("postgres\x00-D\x00/x\x00")); !reflect.DeepEqual(got, []string{"postgres", "-D", "/x"}) {
		t.Errorf("ParseCmdline = %q", got)
	}
	if got := ParseCmdline(nil); got != nil {
		t.Errorf("ParseCmdline(zombie) = %q", got)
	}
}

func TestParseListening(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4E21 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:4E22 0100007F:9C40 01 00000000:00000000 00:00000000 00000000   101        0 2 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
`
	got := ParseListening(table)
	want := map[int]bool{20001: true, 22: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseListening = %v, want %v", got, want)
	}
	v6 := "  sl  local_address                         remote_address                        st\n" +
		"   0: 00000000000000000000000001000000:7531 00000000000000000000000000000000:0000 0A 0\n"
	if got := ParseListening(v6); !got[30001] || len(got) != 1 {
		t.Errorf("ParseListening(tcp6) = %v, want port 30001", got)
	}
}

func TestHolders(t *testing.T) {
	// /dev/shm is a mount of its own on Linux; a process with its working
	// directory there holds it.
	dev, ok := MountDev("/dev/shm")
	if !ok {
		t.Skip("/dev/shm is not a mount here")
	}
	if _, ok := MountDev("/dev/shm/."); !ok {
		t.Fatalf("MountDev(/dev/shm/.) is not the mount")
	}
	dir, err := os.MkdirTemp("/dev/shm", "holders-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if _, ok := MountDev(dir); ok {
		t.Fatalf("MountDev(%s): a plain directory taken for a mount", dir)
	}
	cmd := exec.Command("sleep", "30")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	want := fmt.Sprintf("pid %d (sleep) has its cwd %s", cmd.Process.Pid, dir)
	for _, h := range Holders(dev) {
		if h == want {
			return
		}
	}
	t.Fatalf("Holders(/dev/shm) = %v, want %q among them", Holders(dev), want)
}
