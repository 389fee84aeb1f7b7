package pg

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Files that make a server start in recovery: standby.signal keeps it a
// standby, recovery.signal makes it recover from an archive and promote.
const (
	StandbySignal  = "standby.signal"
	RecoverySignal = "recovery.signal"
)

// WriteSignal creates dataDir/name (standby.signal or recovery.signal),
// empty, owned by owner.
func WriteSignal(dataDir, name string, owner *OSUser) error {
	return writeFileAtomic(filepath.Join(dataDir, name), nil, 0o600, owner)
}

// importedDropped are settings a copied source's postgresql.auto.conf may
// hold that must not reach a Velo server: the ones velo controls, which
// ALTER SYSTEM would otherwise win over, where the source streams or
// archives from or to, and where its configuration lives.
var importedDropped = map[string]bool{
	"primary_conninfo": true, "primary_slot_name": true, "restore_command": true,
	"archive_command": true, "archive_library": true, "archive_mode": true, "archive_cleanup_command": true,
	"recovery_end_command": true, "promote_trigger_file": true,
	"data_directory": true, "config_file": true, "hba_file": true, "ident_file": true, "external_pid_file": true,
	"ssl_ca_file": true, "ssl_crl_file": true, "ssl_crl_dir": true, "ssl_passphrase_command": true,
	"synchronous_standby_names": true, "log_directory": true,
}

// PrepareImported readies a data directory copied from another server (a
// base backup, or a clone of a standby) to run under Velo: the signal
// files go (the caller adds the one it wants), postgresql.auto.conf loses
// the settings that would make it connect to, archive to or be configured
// like the source (and those velo controls), and a postgresql.conf is made
// when the source kept its configuration elsewhere (Debian's /etc).
func PrepareImported(dataDir string, owner *OSUser) error {
	for _, name := range []string{StandbySignal, RecoverySignal, "postmaster.pid", "postmaster.opts"} {
		if err := removeIfExists(filepath.Join(dataDir, name)); err != nil {
			return fmt.Errorf("prepare imported data: %w", err)
		}
	}
	auto := filepath.Join(dataDir, "postgresql.auto.conf")
	if data, err := os.ReadFile(auto); err == nil {
		var kept []string
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			line := sc.Text()
			name, _, ok := strings.Cut(strings.TrimSpace(line), "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if ok && !strings.HasPrefix(name, "#") && (importedDropped[name] || controlled[name] || strings.HasPrefix(name, "basic_archive.") || strings.HasPrefix(name, "recovery_target")) {
				continue
			}
			kept = append(kept, line)
		}
		if err := writeFileAtomic(auto, []byte(strings.Join(kept, "\n")+"\n"), 0o600, owner); err != nil {
			return fmt.Errorf("prepare imported data: %w", err)
		}
	} else if !os.IsNotExist(err) {
		return err
	}
	conf := filepath.Join(dataDir, "postgresql.conf")
	if _, err := os.Stat(conf); os.IsNotExist(err) {
		text := "# Made by velo: the source kept its postgresql.conf outside its data directory.\n"
		if err := writeFileAtomic(conf, []byte(text), 0o600, owner); err != nil {
			return fmt.Errorf("prepare imported data: %w", err)
		}
	}
	return nil
}

// Peer is Velo's own way into an imported server, whose roles and
// passwords are the source's: the local socket, peer authentication, the
// OS user velo runs as mapped to the server's bootstrap superuser.
type Peer struct {
	OSUser string // the user velo runs as
	Role   string // the server's bootstrap superuser (OID 10)
}

// CurrentPeer is the peer mapping for the user this velo runs as.
func CurrentPeer(role string) (Peer, error) {
	u, err := user.Current()
	if err != nil {
		return Peer{}, err
	}
	return Peer{OSUser: u.Username, Role: role}, nil
}

// WriteHBAPeer is WriteHBA with, first, a peer line for p over the local
// socket (map velo in pg_ident.conf, which it replaces), so that velo can
// reach an imported server whose passwords it does not know.
func WriteHBAPeer(dataDir string, owner *OSUser, p Peer) error {
	if strings.ContainsAny(p.OSUser+p.Role, " \t\n\"#") || p.OSUser == "" || p.Role == "" {
		return fmt.Errorf("pg_hba peer line: user %q or role %q cannot be written", p.OSUser, p.Role)
	}
	hba := strings.Replace(hbaConf, "local   all             all", fmt.Sprintf("local   all             %s                                     peer map=velo\nlocal   all             all", p.Role), 1)
	if err := writeFileAtomic(filepath.Join(dataDir, "pg_hba.conf"), []byte(hba), 0o600, owner); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	ident := "# Written by velo: the OS user velo runs as, as the bootstrap superuser.\nvelo    " + p.OSUser + "    " + p.Role + "\n"
	if err := writeFileAtomic(filepath.Join(dataDir, "pg_ident.conf"), []byte(ident), 0o600, owner); err != nil {
		return fmt.Errorf("write pg_ident.conf: %w", err)
	}
	return nil
}

// ConnectLocal opens a session as role over the server's local socket in
// socketDir (peer authentication, see WriteHBAPeer).
func ConnectLocal(ctx context.Context, socketDir string, port int, role string) (*pgx.Conn, error) {
	// template1 is in every cluster; postgres need not be.
	conn, err := connectTo(ctx, socketDir, port, role, "template1", "", 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect to %s as %s: %w", SocketPath(socketDir, port), role, err)
	}
	return conn, nil
}
