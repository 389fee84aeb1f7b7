package pg

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// ConfigFile is the file in a data directory that holds the settings velo
// controls. postgresql.conf includes it last, so it wins over anything set
// earlier there; ALTER SYSTEM (postgresql.auto.conf) still wins over it.
const ConfigFile = "velo.conf"

const includeLine = "include_if_exists = '" + ConfigFile + "'"

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path
// holds 108 bytes with the terminating NUL).
const maxSocketPath = 107

// Config is what velo controls in a data directory.
type Config struct {
	Port            int
	ListenAddresses string // default "127.0.0.1"
	SocketDir       string // unix_socket_directories; "" leaves Postgres's default
	// TLS turns ssl on with the data directory's server.crt and server.key
	// (see EnsureServerCert).
	TLS bool
	// Extra holds further settings, written sorted by name. Names velo
	// controls (port, wal_level, fsync...) are refused.
	Extra map[string]string
	// BulkLoad is for a server being loaded that nothing copies yet (a
	// logical import): wal_level minimal and no WAL senders, with which
	// rows loaded into a table made in the same transaction are not
	// written to the WAL. No snapshot may be taken of it.
	BulkLoad bool
	// MaxWALSenders raises max_wal_senders above velo's 4: a hot standby
	// must have at least its primary's.
	MaxWALSenders int
	// CopyOnWrite is for a data directory on copy-on-write storage (zfs,
	// btrfs, reflink): new WAL segments are made sparse (wal_init_zero off)
	// and old ones removed rather than renamed for reuse (wal_recycle off),
	// as PostgreSQL documents for such filesystems. Zeroing a segment
	// there reserves nothing (every write allocates new blocks anyway) and
	// costs 16 MB of the branch's own space per segment; a recycled
	// segment keeps blocks a snapshot or a clone may share.
	CopyOnWrite bool
	// NoTCP: the server listens on SocketDir alone (listen_addresses = ''),
	// for a start that must take no connection from outside (masking),
	// and never reuses an old WAL segment (wal_recycle off).
	NoTCP bool
}

// fixedSettings are always written, after the per-server ones. fsync is
// written on so that no postgresql.conf edit can turn it off behind velo's
// back: every clone and snapshot relies on it.
var fixedSettings = [][2]string{
	{"wal_level", "replica"},
	{"wal_keep_size", "256MB"},
	{"max_wal_senders", "4"},
	{"fsync", "on"},
}

var controlled = map[string]bool{
	"port": true, "listen_addresses": true, "unix_socket_directories": true,
	"wal_level": true, "wal_keep_size": true, "max_wal_senders": true, "fsync": true,
	"ssl": true, "ssl_cert_file": true, "ssl_key_file": true,
	"wal_init_zero": true, "wal_recycle": true,
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// RenderConfig returns the text of velo.conf for c.
func RenderConfig(c Config) (string, error) {
	if c.Port < 1 || c.Port > 65535 {
		return "", fmt.Errorf("config: port %d out of range 1-65535", c.Port)
	}
	listen := c.ListenAddresses
	if listen == "" {
		listen = "127.0.0.1"
	}
	if c.NoTCP {
		if c.SocketDir == "" {
			return "", fmt.Errorf("config: a server without TCP needs a socket directory")
		}
		listen = ""
	}
	var b strings.Builder
	b.WriteString("# Written by velo, which rewrites it: put your own settings in postgresql.conf\n")
	b.WriteString("# (this file is included at its end and wins) or use ALTER SYSTEM.\n")
	fmt.Fprintf(&b, "port = %d\n", c.Port)
	fmt.Fprintf(&b, "listen_addresses = %s\n", QuoteValue(listen))
	if c.SocketDir != "" {
		if !filepath.IsAbs(c.SocketDir) {
			return "", fmt.Errorf("config: socket directory %q is not an absolute path", c.SocketDir)
		}
		if p := SocketPath(c.SocketDir, c.Port); len(p) > maxSocketPath {
			return "", fmt.Errorf("config: socket path %s is %d bytes, more than the %d Linux allows; use a shorter socket directory", p, len(p), maxSocketPath)
		}
		fmt.Fprintf(&b, "unix_socket_directories = %s\n", QuoteValue(QuoteListElement(c.SocketDir)))
	}
	if c.TLS {
		// Relative paths are read from the data directory, so a clone
		// uses the files it inherited.
		b.WriteString("ssl = on\n")
		fmt.Fprintf(&b, "ssl_cert_file = %s\n", QuoteValue(ServerCertFile))
		fmt.Fprintf(&b, "ssl_key_file = %s\n", QuoteValue(ServerKeyFile))
	}
	for _, kv := range fixedSettings {
		if c.BulkLoad {
			switch kv[0] {
			case "wal_level":
				kv[1] = "minimal"
			case "max_wal_senders":
				kv[1] = "0"
			}
		}
		if kv[0] == "max_wal_senders" && c.MaxWALSenders > 4 {
			kv[1] = strconv.Itoa(c.MaxWALSenders)
		}
		fmt.Fprintf(&b, "%s = %s\n", kv[0], QuoteValue(kv[1]))
	}
	if c.CopyOnWrite {
		b.WriteString("wal_init_zero = 'off'\nwal_recycle = 'off'\n")
	} else if c.NoTCP {
		// The masking start: a segment reused under a new name would keep
		// the old one's bytes past what is written into it.
		b.WriteString("wal_recycle = 'off'\n")
	}
	keys := make([]string, 0, len(c.Extra))
	for k := range c.Extra {
		if !settingName.MatchString(k) {
			return "", fmt.Errorf("config: %q is not a valid setting name", k)
		}
		if controlled[strings.ToLower(k)] {
			return "", fmt.Errorf("config: %s is set by velo and cannot be overridden", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c.Extra[k]
		if strings.ContainsRune(v, 0) {
			return "", fmt.Errorf("config: value of %s contains a NUL byte", k)
		}
		fmt.Fprintf(&b, "%s = %s\n", k, QuoteValue(v))
	}
	return b.String(), nil
}

// QuoteValue quotes v for postgresql.conf: single quotes doubled, and the
// backslash escapes the configuration parser reads inside a quoted string
// (backslash, newline, carriage return, tab) written as escapes. Any setting,
// numeric or boolean too, may be given quoted.
func QuoteValue(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('\'')
	for _, r := range v {
		switch r {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// QuoteListElement quotes one element of a comma-separated list setting
// (unix_socket_directories): double quotes when it holds a comma, a space or
// a double quote, with embedded double quotes doubled.
func QuoteListElement(s string) string {
	if !strings.ContainsAny(s, ", \t\"") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// SocketPath returns the path of the Unix socket a server on port creates in
// socketDir.
func SocketPath(socketDir string, port int) string {
	return filepath.Join(socketDir, ".s.PGSQL."+strconv.Itoa(port))
}

// WriteConfig writes dataDir/velo.conf atomically, owned by owner, and makes
// sure postgresql.conf ends by including it (the line is appended once).
func WriteConfig(dataDir string, c Config, owner *OSUser) error {
	text, err := RenderConfig(c)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dataDir, ConfigFile), []byte(text), 0o600, owner); err != nil {
		return fmt.Errorf("write %s: %w", ConfigFile, err)
	}
	return ensureInclude(filepath.Join(dataDir, "postgresql.conf"), owner)
}

// ensureInclude appends the include of velo.conf to postgresql.conf unless it
// is already the last setting there.
func ensureInclude(path string, owner *OSUser) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s is missing: %s is not a Postgres data directory", path, filepath.Dir(path))
		}
		return err
	}
	if lastSetting(string(data)) == includeLine {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	text := string(data)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	text += "\n# Added by velo: the settings it controls. Keep this line last.\n" + includeLine + "\n"
	if owner == nil && os.Geteuid() == 0 {
		// Keep the file's owner: a root-owned postgresql.conf would stop
		// the server from reading its own configuration.
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = &OSUser{Name: strconv.FormatUint(uint64(st.Uid), 10), UID: int(st.Uid), GID: int(st.Gid)}
		}
	}
	if err := writeFileAtomic(path, []byte(text), fi.Mode().Perm(), owner); err != nil {
		return fmt.Errorf("update postgresql.conf: %w", err)
	}
	return nil
}

// lastSetting returns the last line of a configuration file that is neither
// blank nor a comment, trimmed.
func lastSetting(text string) string {
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return ""
}

// ConfigValue reads one setting from a postgresql.conf-style text; the
// last one wins, as in Postgres.
func ConfigValue(text, name string) string {
	v := ""
	for _, line := range strings.Split(text, "\n") {
		k, val, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != name {
			continue
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '\'' && val[len(val)-1] == '\'' {
			val = strings.ReplaceAll(val[1:len(val)-1], "''", "'")
		}
		v = val
	}
	return v
}

// ForeignDataDir tells a data directory that another Velo home made: its
// velo.conf archives outside archiveBase, the directory this home's WAL
// archives are in, and archive says where. A directory without velo.conf
// or an archive setting is not told foreign. Homes that share one archive
// base (/var/lib/velo/wal) cannot be told apart this way.
func ForeignDataDir(dataDir, archiveBase string) (archive string, foreign bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, ConfigFile))
	if err != nil {
		return "", false
	}
	archive = ConfigValue(string(b), "basic_archive.archive_directory")
	if archive == "" || filepath.Clean(filepath.Dir(archive)) == filepath.Clean(archiveBase) {
		return "", false
	}
	return archive, true
}

// hbaConf admits password (SCRAM) logins only: over the local socket and
// loopback with or without TLS, for ordinary and replication connections,
// and from any other address over TLS only (hostssl), for ordinary
// connections. No trust lines: every server velo runs has a password, and a
// clone must not be more open than its parent. A server listens beyond
// 127.0.0.1 only when its project was created with --listen; a connection
// without TLS from another address matches no line and is refused.
const hbaConf = `# Written by velo, which rewrites it at each start: scram-sha-256 only;
# other addresses than loopback over TLS only.
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
hostssl all             all             0.0.0.0/0               scram-sha-256
hostssl all             all             ::/0                    scram-sha-256
`

// hbaSocketOnly admits the local socket alone: a server started with it
// answers on TCP only with a refusal, so that a fresh clone can be given
// its own password before anyone can log in with its parent's.
const hbaSocketOnly = `# Written by velo for a first start: the local socket only, until the
# branch has its own password; rewritten with the usual lines after.
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     scram-sha-256
`

// WriteHBASocketOnly replaces dataDir/pg_hba.conf with lines that admit
// SCRAM logins over the local socket and nothing else (WriteHBA puts the
// usual ones back).
func WriteHBASocketOnly(dataDir string, owner *OSUser) error {
	if err := writeFileAtomic(filepath.Join(dataDir, "pg_hba.conf"), []byte(hbaSocketOnly), 0o600, owner); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return nil
}

// WriteHBA replaces dataDir/pg_hba.conf with velo's: scram-sha-256 over the
// local socket, 127.0.0.1 and ::1, replication included, and over TLS only
// from any other address (replication excluded), nothing else.
func WriteHBA(dataDir string, owner *OSUser) error {
	if err := writeFileAtomic(filepath.Join(dataDir, "pg_hba.conf"), []byte(hbaConf), 0o600, owner); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return nil
}

// PrepareClone readies a freshly cloned data directory to start as a server
// of its own: it removes the parent's postmaster.pid (which would name the
// parent's process and shared memory) and postmaster.opts (which would name
// the parent's command line). The caller then writes the clone's own config
// with WriteConfig.
func PrepareClone(dataDir string) error {
	for _, name := range []string{"postmaster.pid", "postmaster.opts"} {
		if err := removeIfExists(filepath.Join(dataDir, name)); err != nil {
			return fmt.Errorf("prepare clone: %w", err)
		}
	}
	return nil
}
