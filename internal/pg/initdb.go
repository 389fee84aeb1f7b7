package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Superuser is the role every velo server is created with, as is the
// database of the same name.
const Superuser = "postgres"

// InitOptions describe a new cluster.
type InitOptions struct {
	Install  Install
	DataDir  string
	Password string  // the superuser's password; never put on a command line
	RunAs    *OSUser // owner of the cluster; nil means the current user
	// Run, when set, runs initdb (argv: the program, then its arguments)
	// somewhere else than on the host, as RunAs, with dir (the data
	// directory's parent, which holds the password file) visible at the
	// same path: in a container of an image. It returns initdb's output.
	Run func(ctx context.Context, argv []string, dir string) ([]byte, error)
}

// InitDB creates a cluster in o.DataDir with initdb: superuser postgres,
// scram-sha-256 authentication, UTF8, locale C.UTF-8 (C where the host lacks
// it). The directory is created (0700, owned by RunAs) when missing, with any
// missing parents made 0711 so that RunAs can reach it; an existing directory
// must be empty. The password reaches initdb through a 0600 file that only
// RunAs can read, removed before InitDB returns.
func InitDB(ctx context.Context, o InitOptions) (err error) {
	if o.Password == "" {
		return errors.New("initdb: a superuser password is required")
	}
	if strings.ContainsAny(o.Password, "\r\n") {
		return errors.New("initdb: the password must be one line")
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	parent := filepath.Dir(dataDir)
	if err := os.MkdirAll(parent, 0o711); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := chownOne(dataDir, o.RunAs); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}

	// The password file sits beside the data directory: RunAs can reach that
	// place (it must, to reach the data directory), whereas a TMPDIR may be
	// private to root.
	pw, err := os.CreateTemp(parent, ".velo-pwfile-*")
	if err != nil {
		return fmt.Errorf("initdb: password file: %w", err)
	}
	defer os.Remove(pw.Name())
	if err := pw.Chmod(0o600); err != nil {
		pw.Close()
		return fmt.Errorf("initdb: password file: %w", err)
	}
	if o.RunAs != nil {
		if err := pw.Chown(o.RunAs.UID, o.RunAs.GID); err != nil {
			pw.Close()
			return fmt.Errorf("initdb: password file: %w", err)
		}
	}
	if _, err := pw.WriteString(o.Password + "\n"); err != nil {
		pw.Close()
		return fmt.Errorf("initdb: password file: %w", err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("initdb: password file: %w", err)
	}

	locale := "C"
	// Images have C.UTF-8: glibc's since 2.35, musl's always.
	if o.Run != nil || hasCUTF8(ctx) {
		locale = "C.UTF-8"
	}
	args := []string{
		"-D", dataDir,
		"-U", Superuser,
		"--auth=scram-sha-256",
		"--encoding=UTF8",
		"--locale=" + locale,
		"--pwfile=" + pw.Name(),
	}
	if o.Run != nil {
		out, err := o.Run(ctx, append([]string{o.Install.Bin("initdb")}, args...), parent)
		if err != nil {
			return fmt.Errorf("initdb %s: %w\n%s", dataDir, err, LastLines(string(out), 20))
		}
		return nil
	}
	cmd := exec.CommandContext(ctx, o.Install.Bin("initdb"), args...)
	cmd.Env = o.Install.Env()
	cmd.Dir = dataDir
	if o.RunAs != nil {
		cmd.SysProcAttr = sysProcAttrFor(o.RunAs)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", dataDir, err, LastLines(out.String(), 20))
	}
	return nil
}

var (
	cUTF8Once sync.Once
	cUTF8     bool
)

// hasCUTF8 reports whether the C.UTF-8 locale exists on this host. glibc
// 2.35 and later build it in; Debian ships it as /usr/lib/locale/C.utf8.
func hasCUTF8(ctx context.Context) bool {
	cUTF8Once.Do(func() {
		for _, p := range []string{"/usr/lib/locale/C.utf8", "/usr/lib/locale/C.UTF-8"} {
			if _, err := os.Stat(p); err == nil {
				cUTF8 = true
				return
			}
		}
		path, err := exec.LookPath("locale")
		if err != nil {
			return
		}
		out, err := runQuick(ctx, nil, path, "-a")
		if err != nil {
			return
		}
		for _, l := range strings.Fields(out) {
			switch strings.ToLower(l) {
			case "c.utf8", "c.utf-8":
				cUTF8 = true
				return
			}
		}
	})
	return cUTF8
}

// LastLines returns the last n lines of s, trimmed, for error messages that
// carry a program's own words.
func LastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
