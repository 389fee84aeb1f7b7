package pg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/velohq/velo/internal/errdefs"
)

// BaseBackupOptions describe a base backup of a source into a new data
// directory.
type BaseBackupOptions struct {
	// Install is the source's major here; its pg_basebackup is run.
	Install Install
	Source  Source
	DataDir string  // created (0700, owned by RunAs) when missing; must be empty
	RunAs   *OSUser // owner of the copy; nil means the current user
	// TempDir holds the private passfile while pg_basebackup runs; RunAs
	// must be able to reach it.
	TempDir string
	// Slot, when set, is a permanent replication slot pg_basebackup makes
	// on the source and streams the backup's WAL through; main then streams
	// from it.
	Slot string
	// Progress is called with bytes done and the total (an estimate).
	Progress func(done, total int64)
}

// BaseBackup copies the source over the replication protocol with the
// source major's pg_basebackup: a fast checkpoint on the source, the WAL
// the copy needs streamed alongside (-X stream), so that the copy starts
// consistent by itself. The password reaches pg_basebackup only as
// PGPASSFILE, a 0600 file in a private directory removed before BaseBackup
// returns; its arguments hold none.
func BaseBackup(ctx context.Context, o BaseBackupOptions) error {
	tool := o.Install.Bin("pg_basebackup")
	if _, err := os.Stat(tool); err != nil {
		return errdefs.Environment("PostgreSQL %d here (%s) has no pg_basebackup; install the distribution's postgresql-%d (or postgresql-client-%d) package, or import with --logical", o.Install.Major, o.Install.BinDir, o.Install.Major, o.Install.Major)
	}
	if err := os.MkdirAll(filepath.Dir(o.DataDir), 0o711); err != nil {
		return fmt.Errorf("base backup: %w", err)
	}
	if err := os.Mkdir(o.DataDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("base backup: %w", err)
	}
	if err := chownOne(o.DataDir, o.RunAs); err != nil {
		return fmt.Errorf("base backup: %w", err)
	}
	passfile, cleanup, err := TempPassfile(o.TempDir, o.Source, o.RunAs)
	if err != nil {
		return err
	}
	defer cleanup()
	args := []string{
		"--pgdata=" + o.DataDir,
		"--dbname=" + o.Source.Conninfo("", map[string]string{"application_name": "velo_basebackup"}),
		"--wal-method=stream",
		"--checkpoint=fast",
		"--no-password",
		"--progress",
		"--label=velo import",
	}
	if o.Slot != "" {
		args = append(args, "--create-slot", "--slot="+o.Slot)
	}
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = ToolEnv(o.Install.Env(), passfile)
	cmd.Dir = o.DataDir
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if o.RunAs != nil {
		cmd.SysProcAttr = sysProcAttrFor(o.RunAs)
	}
	// A velo killed mid-copy takes pg_basebackup with it: nothing goes on
	// writing into a volume that doctor is to remove, nor holds the slot.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("base backup: %w", err)
	}
	var tail lastLines
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		readProgress(stderr, &tail, o.Progress)
	}()
	wg.Wait()
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, l := range tail.lines {
			if i := strings.Index(l, "could not "); i >= 0 && strings.Contains(l, "No space left on device") {
				// The copy's filesystem filled: not the source's fault.
				return errdefs.NoSpace("base backup of %s failed: %s", o.Source.Display(), l[i:])
			}
		}
		return fmt.Errorf("base backup of %s failed (%v): %s", o.Source.Display(), err, redact(errors.New(tail.String()), o.Source.Password))
	}
	return nil
}

// progressLine is pg_basebackup's --progress: "12345/67890 kB (18%), ...".
var progressLine = regexp.MustCompile(`^\s*(\d+)/(\d+) kB`)

// readProgress reads pg_basebackup's stderr, whose progress lines end in
// \r, reporting progress and keeping the other lines for an error.
func readProgress(r io.Reader, tail *lastLines, report func(done, total int64)) {
	sc := bufio.NewScanner(r)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		line := sc.Text()
		if m := progressLine.FindStringSubmatch(line); m != nil {
			done, _ := strconv.ParseInt(m[1], 10, 64)
			total, _ := strconv.ParseInt(m[2], 10, 64)
			if report != nil {
				report(done*1024, total*1024)
			}
			continue
		}
		if strings.TrimSpace(line) != "" {
			tail.add(line)
		}
	}
}

// lastLines keeps the last few lines of a tool's messages.
type lastLines struct{ lines []string }

func (l *lastLines) add(s string) {
	l.lines = append(l.lines, s)
	if len(l.lines) > 10 {
		l.lines = l.lines[1:]
	}
}

func (l *lastLines) String() string { return strings.Join(l.lines, "\n") }
