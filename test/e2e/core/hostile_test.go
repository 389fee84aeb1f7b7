package core

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/cli"
	"github.com/velohq/velo/internal/storage"
	"github.com/velohq/velo/internal/storage/dirtree"
	"github.com/velohq/velo/test/e2e/harness"
)

// Hostile input: every command and subcommand of velo (enumerated from
// the command tree, so a new one cannot be forgotten) is given, one at a
// time, hostile arguments and flag values: path traversal, shell
// metacharacters, quotes, control characters, Unicode look-alikes, 10,000
// characters, numbers out of range, unknown flags. Each must exit 2 with a
// message that states the rule, echo nothing raw or at length, print
// nothing on stdout, and change nothing: records, pool, servers, VELO_HOME,
// the working directory, mounts and the systemd unit directory are
// compared after every run. NUL cannot pass through exec's argv; the
// parsers' fuzz tests (internal/engine/fuzz_test.go) cover it.

var longArg = strings.Repeat("a", 10000)

// hostileStrings go wherever a name, a reference, an ID or a flag's value goes.
var hostileStrings = []string{
	"../x", "/etc", "a/../../b", // path traversal
	"a;b", "$(id)", "`id`", "a|b", // shell
	"a'b", `a"b`, // quotes
	"a\nb", "a\tb", "a\x1bb", "\x1b[2J\x1b[31m", "a\x01b", "a\x7fb", // control characters
	"dеmo",       // Cyrillic е
	"ｄｅｍｏ",       // fullwidth
	"de\u200dmo", // zero-width joiner
	"demo\u202e", // right-to-left override
	longArg, "", " ",
}

// shortStrings keep one or two of each kind of hostileStrings: the commands
// that share a parser with a command given all of them get these.
var shortStrings = []string{"../x", "/etc", "a/../../b", "a;b", "$(id)", "`id`", "a'b", "a\nb", "a\x1bb", "dеmo", "ｄｅｍｏ", "de\u200dmo", longArg, ""}

// full are the commands given every hostile value for their argument,
// every unknown flag and every bad boolean; the rest get short lists.
var full = map[string]bool{"project get": true, "branch get": true, "snapshot delete": true, "wal info": true, "help": true, "status": true}

// The rules messages must state.
const (
	nameRule    = "names are 1 to 63 characters of a-z, 0-9, '_' and '-'"
	refRule     = "must be written PROJECT/BRANCH"
	snapRule    = "unique prefix of at least 4 characters (a-z, 0-9)"
	argsRule    = "argument(s)"
	unknownCmd  = "unknown command"
	topicRule   = "unknown help topic"
	emptyRule   = "is empty: give it a value"
	timeRule    = "use RFC 3339 (2025-10-07T14:30:00Z"
	labelRule   = "printable text of at most 100 characters"
	absRule     = "must be an absolute path"
	printRule   = "paths must be printable text"
	poolRule    = "is neither a ZFS pool name"
	intRule     = "is not a whole number"
	rangeRule   = "is out of range"
	durRule     = "is not a duration such as 90s, 5m or 2h"
	boolRule    = "is not true or false"
	pathLenRule = "longer than"
	tokenRule   = "hexadecimal characters, 0-9 and a-f"
)

var flagRules = []string{"unknown flag", "unknown shorthand flag", "bad flag syntax"}

type argKind int

const (
	argNone argKind = iota
	argName
	argRef
	argProjectOrRef
	argSnapshot
	argTopic
	argPath  // a directory: any printable path is one, so only the others are hostile
	argToken // an API token's ID (velo token list)
)

// leaf is how to call one command correctly: its argument (kind, whether
// optional, a valid value naming something that exists) and the flags it
// needs. Hostile cases change one thing of it at a time.
type leaf struct {
	kind     argKind
	optional bool
	arg      string
	flags    [][2]string // name, value ("" for a bare boolean)
	// first is a valid argument before the one varied (rename's OLD).
	first string
}

// stringFlag is what a string flag takes: the rules its refusals state,
// which hostile values it legitimately accepts (not sent), and hostile
// values of its own.
type stringFlag struct {
	rules []string
	legit func(string) bool
	extra []string
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func absPrintable(s string) bool { return filepath.IsAbs(s) && printable(s) && len(s) < 4000 }

func TestHostileInput(t *testing.T) {
	e := newEnv(t, "copy")
	e.Create("demo")
	e.OK("branch", "create", "demo/dev")
	snap := strings.TrimSpace(e.OK("snapshot", "create", "demo/main", "--label", "before").Stdout)

	// velo runs in an empty working directory inside scratch, so that a
	// relative path escaping it (../x) lands where the comparison sees it;
	// setup's image, mount point and unit directory would be made there.
	scratch := harness.TmpDir(t, "velo-hostile-")
	cwd := filepath.Join(scratch, "cwd")
	if err := os.Mkdir(cwd, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(cwd)
	guardHost(t, scratch)
	poolFile := filepath.Join(scratch, "pool.img")

	leaves := map[string]leaf{
		"project create":        {kind: argName, arg: "fresh", flags: [][2]string{{"pool", e.Pool}, {"storage", "copy"}}},
		"project list":          {},
		"project get":           {kind: argName, arg: "demo"},
		"project delete":        {kind: argName, arg: "demo"},
		"branch create":         {kind: argRef, arg: "demo/fresh"},
		"branch list":           {kind: argName, optional: true, arg: "demo"},
		"branch get":            {kind: argRef, arg: "demo/dev"},
		"branch delete":         {kind: argRef, arg: "demo/dev"},
		"branch reset":          {kind: argRef, arg: "demo/dev"},
		"branch password":       {kind: argRef, arg: "demo/dev"},
		"branch start":          {kind: argRef, optional: true, arg: "demo/dev"},
		"branch stop":           {kind: argRef, arg: "demo/dev"},
		"branch restart":        {kind: argRef, arg: "demo/dev"},
		"snapshot create":       {kind: argRef, arg: "demo/main"},
		"snapshot list":         {kind: argRef, optional: true, arg: "demo/main"},
		"snapshot delete":       {kind: argSnapshot, arg: snap},
		"snapshot push":         {kind: argSnapshot, arg: snap}, // demo has no archive: refused after the ID
		"snapshot cleanup":      {kind: argRef, optional: true, arg: "demo/main", flags: [][2]string{{"days", "36500"}}},
		"wal info":              {kind: argProjectOrRef, optional: true, arg: "demo/main"},
		"wal cleanup":           {kind: argRef, arg: "demo/main", flags: [][2]string{{"days", "36500"}}},
		"status":                {},
		"doctor":                {},
		"setup":                 {flags: [][2]string{{"pool-file", poolFile}, {"size", "1G"}}},
		"completion bash":       {},
		"completion zsh":        {},
		"completion fish":       {},
		"completion powershell": {},
		"help":                  {kind: argTopic, optional: true, arg: "branch"},
		"project refresh":       {kind: argName, arg: "demo"},
		"branch env":            {kind: argRef, arg: "demo/dev"},
		"service-file":          {kind: argProjectOrRef, optional: true, arg: "demo/dev"},
		"version":               {},
		"man":                   {kind: argPath, arg: filepath.Join(scratch, "man")},
		"branch protect":        {kind: argRef, arg: "demo/dev"},
		"branch unprotect":      {kind: argRef, arg: "demo/dev"},
		"branch set":            {kind: argRef, arg: "demo/dev"},
		"prune":                 {},
		"serve":                 {},
		"project rename":        {kind: argName, first: "demo", arg: "other"},
		"branch rename":         {kind: argRef, first: "demo/dev", arg: "demo/other"},
		"branch promote":        {kind: argRef, arg: "demo/dev"},
		"diff":                  {kind: argRef, arg: "demo/dev"},
		"token create":          {},
		"token list":            {},
		"token revoke":          {kind: argToken, arg: "0123abcd"},
		"ui":                    {},
		"branch restore":        {kind: argRef, arg: "demo/dev", flags: [][2]string{{"snapshot", snap}}},
	}
	maps.Copy(leaves, archiveLeaves)
	// Flags that only count beside another.
	needs := map[string][][2]string{
		"unit-dir":       {{"systemd", ""}},
		"completion-dir": {{"completion", ""}},
		// Nothing listens on port 1: a value that passes its check would
		// fail to connect (exit 1), so the test sees it.
		"database": {{"from", "postgresql://velo@127.0.0.1:1/postgres"}, {"logical", ""}},
		// project create's --pitr goes with --from-archive (a bucket never
		// reached: the moment is refused first).
		"pitr": {{"from-archive", "s3://velo-hostile/x"}},
	}

	pathExtra := []string{"/tmp/a\nb", "/tmp/\x1b[2J", "/" + longArg}
	stringFlags := map[string]stringFlag{
		"from-snapshot":  {rules: []string{snapRule, "no snapshot has an ID starting with"}, extra: []string{"zzzz", "S123", "s12"}},
		"snapshot":       {rules: []string{snapRule, "no snapshot has an ID starting with"}, extra: []string{"zzzz", "S123", "s12"}},
		"to":             {rules: []string{timeRule, "too far back", "is in the future"}, extra: []string{"9999-12-31T00:00:00Z", "3000000000w", "99999999999 weeks ago", "-5m", "1e9d", "2025-13-45"}},
		"name":           {rules: []string{nameRule, "cannot be main"}, extra: []string{"main", "DEMO", "demo/x"}},
		"pool":           {rules: []string{poolRule, printRule, pathLenRule, "go with --rebuild-state"}, legit: absPrintable, extra: pathExtra},
		"storage":        {rules: []string{"choose one of zfs, btrfs, reflink, copy"}},
		"image":          {rules: []string{"is not an image reference"}, legit: func(s string) bool { return s == "" }},
		"parent":         {rules: []string{nameRule, refRule}, extra: []string{"demo/dev\n", "demo/dеv", "DEMO/main"}},
		"pitr":           {rules: []string{timeRule, "too far back", "is in the future"}, extra: []string{"9999-12-31T00:00:00Z", "3000000000w", "99999999999 weeks ago", "-5m", "1e9d", "2025-13-45"}},
		"label":          {rules: []string{labelRule}, legit: func(s string) bool { return printable(s) && len([]rune(s)) <= 100 }, extra: []string{"a\u200bb", strings.Repeat("é", 101)}},
		"listen":         {rules: []string{"--listen must be", "it must be"}, legit: func(s string) bool { return strings.TrimSpace(s) == "" }, extra: []string{"0.0.0.0;id", "*,127.0.0.1", "fe80::1%eth0"}},
		"pool-file":      {rules: []string{absRule, printRule, "is not a regular file", pathLenRule}, extra: pathExtra},
		"mount":          {rules: []string{absRule, printRule, "is not empty", "is not a directory", pathLenRule}, extra: pathExtra},
		"unit-dir":       {rules: []string{absRule, printRule, pathLenRule}, legit: absPrintable, extra: pathExtra},
		"fs":             {rules: []string{"choose btrfs or xfs"}},
		"from":           {rules: []string{"is neither a postgresql:// URL nor service=NAME"}},
		"database":       {rules: []string{"printable text of at most 63 bytes"}, legit: func(s string) bool { return printable(s) && len(s) <= 63 }, extra: []string{"a\u200bb", strings.Repeat("é", 32)}},
		"idle":           {rules: []string{"is not an idle timeout"}, legit: func(s string) bool { return strings.TrimSpace(s) == "" }, extra: []string{"0s", "-5m", "1.5s", "400d", "99999999999w", "1e9d", "2", "nevermore"}},
		"ttl":            {rules: []string{"is not a time to live", "is too long"}, extra: []string{"2h ago", "0s", "-5m", "99999999999w", "1e9d", "2"}},
		"expires-at":     {rules: []string{timeRule, "is not in the future", "too far ahead", "too far back"}, extra: []string{"9999-12-31T00:00:00Z", "2 hours ago", "2025-13-45", "2000-01-01T00:00:00Z"}},
		"completion-dir": {rules: []string{absRule, printRule, pathLenRule}, legit: absPrintable, extra: pathExtra},
		"format":         {rules: []string{"is not shell, dotenv or json"}},
		"http":           {rules: []string{"is not HOST:PORT", "the host must be an IP address"}, extra: []string{"127.0.0.1:0", "127.0.0.1:65536", "example.com:80", "127.0.0.1:-1", ":80:80"}},
		"tls-cert":       {rules: []string{"go together"}},
		"tls-key":        {rules: []string{"go together"}},
		"size":           {rules: []string{"give a positive size such as 20G"}, extra: []string{"-5G", "0", "99999999999T", "1e3G", "5 G"}},
		"table":          {rules: []string{"no such table", "is not a table name", "a table of the system's"}, extra: []string{"pg_catalog.pg_class", "a.b.c.d"}},
	}
	maps.Copy(stringFlags, archiveStringFlags)
	maps.Copy(stringFlags, lsnStringFlags)
	maps.Copy(stringFlags, maskStringFlags)
	intFlags := map[string][]string{
		"days":       {"-1", "36501", "99999999999999999999", "1e9", "0x10", "abc", "1.5", "", " 1"},
		"pg-version": {"-1", "99999999999999999999", "0x11", "abc", "17.2", ""},
		"rows":       {"-1", "99999999999999999999", "0x10", "abc", "1.5", ""},
		// Not 0x10: velo serve would take it (16) and serve.
		"max-connections": {"-1", "0", "100001", "99999999999999999999", "abc", "1.5", ""},
	}
	intRules := []string{intRule, rangeRule, "must be between 0 and 36500", "is not a Postgres major version", "give a count of 0 or more", "must be from 1 to 100000"}
	durations := []string{"-1s", "0", "0s", "25h", "1500ms", "abc", "5", "99999999999h", ""}
	durRules := []string{durRule, "must be whole seconds between 1s and 24h"}
	unknownFlags := []string{"--$(id)", "--" + longArg, "--a\x1bb", "-Z", "---x", "--de\u200dmo", "--dеmo"}

	root := cli.NewRoot(&cli.Globals{Stdout: io.Discard, Stderr: io.Discard})
	before := e.hostileFingerprint(scratch)
	runs := 0
	var fpTime time.Duration
	check := func(rules []string, args ...string) {
		t.Helper()
		runs++
		r := e.Run(args...)
		show := fmt.Sprintf("velo %.200q", strings.Join(args, " "))
		if r.Code != 2 {
			t.Errorf("%s: want exit 2, got %s", show, r)
		}
		stated := false
		for _, rule := range rules {
			stated = stated || strings.Contains(r.Stderr, rule)
		}
		if !stated {
			t.Errorf("%s: message states none of the rules %q:\n%s", show, rules, r.Stderr)
		}
		if r.Stdout != "" {
			t.Errorf("%s: printed on stdout: %.300q", show, r.Stdout)
		}
		if len(r.Stderr) > 600 {
			t.Errorf("%s: message is %d bytes: %.300q", show, len(r.Stderr), r.Stderr)
		}
		for _, c := range r.Stderr {
			if c != '\n' && (c < 0x20 || c == 0x7f) {
				t.Errorf("%s: raw control character %q in the message: %q", show, c, r.Stderr)
				break
			}
		}
		for _, a := range args {
			for _, c := range a {
				if c > unicode.MaxASCII && strings.ContainsRune(r.Stderr, c) {
					t.Errorf("%s: %U echoed raw (a look-alike must show escaped): %q", show, c, r.Stderr)
				}
			}
		}
		t0 := time.Now()
		after := e.hostileFingerprint(scratch)
		fpTime += time.Since(t0)
		if after != before {
			t.Errorf("%s changed things:\nbefore %s\nafter  %s", show, before, after)
			before = after
		}
	}

	seen := map[string]bool{}
	walk(root, func(c *cobra.Command) {
		path := strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), "velo"), " ")
		if c.HasSubCommands() {
			// A group: an argument is a subcommand that does not exist.
			for _, h := range []string{"../x", "$(id)", "a\nb", "\x1b[2J", "ｄｅｍｏ", longArg, ""} {
				check([]string{unknownCmd}, positional(strings.Fields(path), h)...)
			}
			check(flagRules, append(strings.Fields(path), unknownFlags[0])...)
			return
		}
		l, ok := leaves[path]
		if !ok {
			t.Errorf("velo %s has no hostile cases: add it to the leaves of TestHostileInput", path)
			return
		}
		seen[path] = true
		cmd := strings.Fields(path)
		if l.first != "" {
			cmd = append(cmd, l.first)
		}
		base := func(skip string) []string {
			args := append([]string{}, cmd...)
			for _, f := range l.flags {
				if f[0] != skip {
					args = append(args, flagArg(f))
				}
			}
			return args
		}
		withArg := func(args []string) []string {
			if l.arg == "" {
				return args
			}
			return append(args, l.arg)
		}

		// The argument.
		argRules := map[argKind][]string{
			argNone: {argsRule}, argName: {nameRule}, argRef: {nameRule, refRule},
			argProjectOrRef: {nameRule, refRule}, argSnapshot: {snapRule}, argTopic: {topicRule},
			argPath: {printRule, pathLenRule, emptyRule}, argToken: {tokenRule},
		}[l.kind]
		for _, h := range argVariants(l.kind, snap, full[path]) {
			check(argRules, positional(base(""), h)...)
		}
		// One argument too many.
		check([]string{argsRule, topicRule}, append(withArg(base("")), "x1", "x2")...)
		// Unknown flags.
		for i, f := range unknownFlags {
			if i < 3 || full[path] {
				check(flagRules, append(withArg(base("")), f)...)
			}
		}
		// Every flag it has, by type.
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			args := withArg(base(f.Name))
			for _, n := range needs[f.Name] {
				if c.Flags().Lookup(n[0]) != nil { // velo diff's --database needs nothing beside it
					args = append(args, flagArg(n))
				}
			}
			switch f.Value.Type() {
			case "bool":
				for i, v := range []string{"maybe", "$(id)", "2"} {
					if i == 0 || full[path] {
						check([]string{boolRule}, append(args, "--"+f.Name+"="+v)...)
					}
				}
			case "int":
				vals, ok := intFlags[f.Name]
				if !ok {
					t.Errorf("int flag --%s of velo %s has no hostile values: add it to intFlags", f.Name, path)
				}
				for _, v := range vals {
					check(intRules, append(args, "--"+f.Name+"="+v)...)
				}
			case "duration":
				for _, v := range durations {
					check(durRules, append(args, "--"+f.Name+"="+v)...)
				}
			case "string", "stringArray":
				sf, ok := stringFlags[f.Name]
				if !ok {
					t.Errorf("flag --%s of velo %s has no hostile cases: add it to stringFlags", f.Name, path)
					return
				}
				for _, v := range dedupe(append(append([]string{}, hostileStrings...), sf.extra...)) {
					if v != "" && sf.legit != nil && sf.legit(v) {
						continue
					}
					rules := sf.rules
					if v == "" {
						rules = []string{emptyRule}
					}
					check(rules, append(args, "--"+f.Name+"="+v)...)
				}
			default:
				t.Errorf("flag --%s of velo %s is a %s: add its hostile values", f.Name, path, f.Value.Type())
			}
		})
	})
	for path := range leaves {
		if !seen[path] && path != "help" {
			t.Errorf("leaves names velo %s, which does not exist", path)
		}
	}
	// help is added when velo runs, not in the tree.
	for _, h := range argVariants(argTopic, snap, true) {
		check([]string{topicRule}, "help", h)
	}
	t.Logf("%d hostile runs, fingerprints took %s", runs, fpTime)

	// Still intact: the data, the servers, and doctor's view.
	if got := e.Rows("demo/main", "SELECT 1"); got != "1" {
		t.Errorf("demo/main answers %q", got)
	}
	e.AssertDoctorHealthy()
	e.AssertNoLeaks()
}

// TestHostileLabelIsData: what a label accepts (printable text) is kept
// verbatim as data, never interpreted.
func TestHostileLabelIsData(t *testing.T) {
	e := newEnv(t, "copy")
	e.Create("demo")
	label := `$(touch /tmp/velo-pwned) ; rm -rf / 'x" ../../etc ｄｅｍｏ dеmo`
	id := strings.TrimSpace(e.OK("snapshot", "create", "demo/main", "--label", label).Stdout)
	var snaps []struct{ ID, Label string }
	if err := json.Unmarshal([]byte(e.OK("snapshot", "list", "--json").Stdout), &snaps); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range snaps {
		found = found || s.ID == id && s.Label == label
	}
	if !found {
		t.Errorf("label not kept verbatim: %+v", snaps)
	}
	if _, err := os.Stat("/tmp/velo-pwned"); err == nil {
		t.Errorf("a label ran a shell command")
	}
	e.OK("snapshot", "delete", id)
}

// walk visits c and every command under it.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}

func flagArg(f [2]string) string {
	if f[1] == "" {
		return "--" + f[0]
	}
	return "--" + f[0] + "=" + f[1]
}

// positional appends v as the argument; one starting with '-' goes after
// "--", so that it reaches the argument's own check, not flag parsing.
func positional(args []string, v string) []string {
	args = append([]string{}, args...)
	if strings.HasPrefix(v, "-") {
		args = append(args, "--")
	}
	return append(args, v)
}

// argVariants are hostile values of an argument, among them near misses
// of the names that exist: demo, demo/main, demo/dev and snapshot snap.
// A reference gets each hostile value as its branch name; all gets them
// all, with more near misses, where others get short lists.
func argVariants(kind argKind, snap string, all bool) []string {
	hs := shortStrings
	if all {
		hs = hostileStrings
	}
	var out []string
	switch kind {
	case argNone, argTopic:
		if !all {
			hs = []string{"../x", "$(id)", "a\nb", "ｄｅｍｏ", longArg}
		}
		out = append(out, hs...)
	case argName:
		out = append(append(out, hs...), "DEMO", "demo\n", "-demo", "ｄemo")
		if all {
			out = append(out, "demo ", " demo", "demo/main/x", "demo\u200d", "demo\x1b")
		}
	case argRef, argProjectOrRef:
		for _, h := range hs {
			out = append(out, "demo/"+h)
		}
		out = append(out, "../x", "$(id)", "", "demo/dev\n", "demo/dеv", "DEMO/dev", "-demo/dev")
		if all {
			for _, h := range hs {
				out = append(out, h, h+"/main")
			}
			out = append(out, "demo//dev", "demo/dev/", "/demo/dev", "demo/dev ", "demo/../dev", `demo\dev`, "demo/dev\u200d")
		}
		if kind == argProjectOrRef {
			out = append(out, "DEMO", "demo\n", "ｄemo")
		}
	case argPath:
		for _, h := range hostileStrings {
			if h == "" || !printable(h) || len(h) > 4095 {
				out = append(out, h)
			}
		}
	case argToken:
		out = append(out, hs...)
		out = append(out, "0123ABCD", "012", "0123abcd0123a", "0123abcd\n", "-0123", "0123abcg")
	case argSnapshot:
		out = append(out, hs...)
		out = append(out, snap+"\n", strings.ToUpper(snap), snap+"/", snap[:3], "../"+snap, snap+"\u200d", " "+snap, snap+";rm", "$("+snap+")", "-"+snap, snap+strings.Repeat("0", 60))
	}
	return dedupe(out)
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// hostileFingerprint is everything a refused command must leave alone:
// the records, the pool's entries and leftovers, each volume's server (its
// PID and start time: a restart changes them), every path under VELO_HOME
// but the WAL segments and SQLite's own files, the scratch directory (the
// working directory and where setup would write), the mounts under it,
// and the systemd unit velo setup writes. (e.fingerprint scans every
// process instead, which takes 80 ms; this runs a thousand times.)
func (e *env) hostileFingerprint(scratch string) string {
	e.T.Helper()
	var b strings.Builder
	entries := e.PoolEntries()
	fmt.Fprintln(&b, "entries", entries)
	d := e.PoolDriver()
	if t, ok := d.(*dirtree.Tree); ok {
		left, _ := t.Leftovers()
		fmt.Fprintln(&b, "leftovers", left)
	}
	for _, en := range entries {
		if en.Kind != storage.KindVolume {
			continue
		}
		p, err := d.Path(context.Background(), en.ID)
		if err != nil {
			continue
		}
		pid, _ := os.ReadFile(filepath.Join(p, "pgdata", "postmaster.pid"))
		first, _, _ := strings.Cut(string(pid), "\n")
		stat, _ := os.ReadFile("/proc/" + first + "/stat")
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 19 {
			// Alive or dead, and the start time: not the scheduling state
			// (R or S), which a postmaster changes by itself.
			alive := "alive"
			if fields[0] == "Z" || fields[0] == "X" {
				alive = "dead"
			}
			fmt.Fprintln(&b, "server", en.ID, first, alive, fields[19])
		} else {
			fmt.Fprintln(&b, "server", en.ID, "none")
		}
	}
	db := e.StateDB()
	defer db.Close()
	for _, q := range []string{
		"SELECT id || name || volume_id || port || want_running FROM branches ORDER BY id",
		"SELECT id || name FROM projects ORDER BY id",
		"SELECT id || label FROM snapshots ORDER BY id",
		"SELECT id FROM retired_volumes ORDER BY id",
		"SELECT count(*) FROM operations WHERE finished_at IS NULL",
	} {
		rows, err := db.Query(q)
		if err != nil {
			e.T.Fatal(err)
		}
		for rows.Next() {
			var v string
			_ = rows.Scan(&v)
			fmt.Fprint(&b, v, " ")
		}
		rows.Close()
		fmt.Fprintln(&b)
	}
	for _, dir := range []string{e.Home, scratch} {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			switch {
			case strings.HasPrefix(rel, "wal/") && strings.Count(rel, "/") >= 2,
				strings.HasPrefix(filepath.Base(rel), "state.db-"):
				return nil
			}
			fmt.Fprintf(&b, "%s %v\n", rel, d.Type())
			return nil
		})
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, scratch) {
			fmt.Fprintln(&b, "mount", line)
		}
	}
	if st, err := os.Stat("/etc/systemd/system/velo.service"); err == nil {
		fmt.Fprintln(&b, "unit", st.ModTime())
	}
	return b.String()
}

// guardHost undoes, if a refusal failed, what a wrongly accepted setup
// would have done: mounts under scratch, and a new systemd unit.
func guardHost(t *testing.T, scratch string) {
	const unit = "/etc/systemd/system/velo.service"
	_, err := os.Stat(unit)
	unitBefore := err == nil
	t.Cleanup(func() {
		mounts, _ := os.ReadFile("/proc/self/mountinfo")
		var points []string
		for _, line := range strings.Split(string(mounts), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], scratch) {
				points = append(points, f[4])
			}
		}
		sort.Sort(sort.Reverse(sort.StringSlice(points)))
		for _, p := range points {
			t.Logf("unmounting %s, left by a setup that should have been refused", p)
			_ = exec.Command("umount", "-l", p).Run()
		}
		if _, err := os.Stat(unit); err == nil && !unitBefore {
			t.Logf("removing %s, written by a setup that should have been refused", unit)
			_ = os.Remove(unit)
		}
	})
}
