// Package srccheck holds tests that read the repository's own Go source and
// enforce rules no compiler checks.
package srccheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// shells are the programs whose run is a shell run, by base name.
var shells = []string{"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox"}

// wrappers run the program named in their arguments: a shell among those
// arguments is a shell run too. su and runuser run their -c through the
// target user's shell.
var wrappers = []string{"env", "sudo", "su", "runuser", "nohup", "setsid", "timeout", "nice", "ionice", "chroot", "xargs", "script", "flock", "stdbuf", "unshare", "nsenter"}

// execFuncs are the calls that start a program, by import path and name,
// with the index of the argument naming the program.
var execFuncs = map[string]map[string]int{
	"os/exec":               {"Command": 0, "CommandContext": 1, "LookPath": 0},
	"os":                    {"StartProcess": 0},
	"syscall":               {"Exec": 0, "ForkExec": 0, "StartProcess": 0},
	"golang.org/x/sys/unix": {"Exec": 0},
}

// shellSettings are Postgres settings whose value Postgres runs through
// /bin/sh -c.
var shellSettings = []string{"archive_command", "restore_command", "archive_cleanup_command", "recovery_end_command", "ssl_passphrase_command"}

// allowed are the shell runs the repository keeps on purpose, each with its
// reason; an entry that no longer matches anything fails the test, so the
// list stays true.
var allowed = []struct{ file, what, why string }{
	{"test/e2e/install/demo_test.go", "bash", "scripts/demo.sh is the README's demo, a shell script users run; the test runs it the way the README says"},
	{"internal/pgconf/pgconf_test.go", "sh", "velo branch env's shell form is written for eval in sh; only sh itself can say that it reads every value back exactly"},
	{"test/e2e/install/ecosystem_test.go", "bash", "eval \"$(velo branch env)\", sourcing a .env file and bash completion are what users do in their shell; the test does them in bash as they would"},
	{"internal/engine/pitr.go", "restore_command", "Postgres 15 to 17 read archived WAL during recovery only through restore_command (there is no restore_library); the command is cp of paths made of velo's own IDs, and Postgres, not velo, runs it"},
	{"internal/engine/import.go", "archive_command", "set to '' on a physical copy of a source, so that the source's own archive_command never runs here (Velo archives with basic_archive); no command is given"},
	{"internal/engine/fromarchive.go", "restore_command", "a project restored from object storage reads the bucket's WAL through restore_command (Postgres 15 to 17 have no restore_library): velo wal fetch, by its absolute path, with arguments that are velo's own IDs and a checked s3:// URL and endpoint, each single-quoted; the credentials are in a file named by the environment, never in the command"},
	{"internal/pg/standby.go", "restore_command", "the name of a setting removed from a copied source's postgresql.auto.conf, so that none of the source's commands runs here; nothing is set"},
	{"internal/pg/standby.go", "archive_command", "the name of a setting removed from a copied source's postgresql.auto.conf, so that none of the source's commands runs here; nothing is set"},
	{"internal/pg/standby.go", "archive_cleanup_command", "the name of a setting removed from a copied source's postgresql.auto.conf, so that none of the source's commands runs here; nothing is set"},
	{"internal/pg/standby.go", "recovery_end_command", "the name of a setting removed from a copied source's postgresql.auto.conf, so that none of the source's commands runs here; nothing is set"},
	{"internal/pg/standby.go", "ssl_passphrase_command", "the name of a setting removed from a copied source's postgresql.auto.conf, so that none of the source's commands runs here; nothing is set"},
	{"test/e2e/serving/image_test.go", "bash", "scripts/demo.sh is the README's demo, a shell script users run; the test runs it with --image the way the README says"},
	{"test/e2e/install/readme_test.go", "bash", "the README's verify-full psql line is a shell line users paste; the test runs it, as written, the way they do"},
	{"test/e2e/importing/import_test.go", "restore_command", "the test checks that a branch's configuration holds no restore_command reaching the source; nothing is set"},
}

// excluded files are not scanned.
var excluded = map[string]string{
	"internal/srccheck/noshell_test.go": "it names the shells it looks for",
}

type finding struct {
	pos  token.Position
	what string // the shell, wrapper or setting found
	msg  string
}

// TestNoShell reads every Go file of the repository, tests included, and
// fails naming file:line for each place that runs a shell: os/exec,
// os.StartProcess, syscall or x/sys/unix exec of a shell (by literal or by
// a constant or variable holding one), a wrapper (env, sudo, su -c...)
// running one, exec.Cmd{Path: shell}, a shell's path written anywhere,
// $SHELL read, and Postgres settings that Postgres runs through a shell.
func TestNoShell(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	used := make([]bool, len(allowed))
	files := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "vendor" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || excluded[rel] != "" {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		found, err := scan(rel, src)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		for _, f := range found {
			if i := slices.IndexFunc(allowed, func(a struct{ file, what, why string }) bool { return a.file == rel && a.what == f.what }); i >= 0 {
				used[i] = true
				continue
			}
			t.Errorf("%s:%d: %s", rel, f.pos.Line, f.msg)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Errorf("scanned only %d Go files under %s", files, root)
	}
	for i, a := range allowed {
		if !used[i] {
			t.Errorf("allowed shell run %s in %s no longer exists: remove it from the list", a.what, a.file)
		}
	}
}

// TestNoShellFindsShells proves the scan finds what it looks for.
func TestNoShellFindsShells(t *testing.T) {
	src := `package x

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"syscall"
)

const sh = "/bin/sh"

func f() {
	osexec.Command("sh", "-c", "ls")                            // 13
	osexec.Command("bash", "script.sh")                         // 14
	_ = osexec.CommandContext(nil, sh, "-c", "x")               // 15
	shell := "dash"
	osexec.Command(shell)                                       // 17
	osexec.Command("/usr/bin/env", "bash", "-c", "x")           // 18
	osexec.Command("su", "postgres", "-c", "initdb")            // 19
	syscall.Exec("/bin/"+"zsh", nil, nil)                       // 20
	os.StartProcess(filepath.Join("/bin", "ksh"), nil, nil)     // 21
	_ = &osexec.Cmd{Path: "/usr/bin/bash"}                      // 22
	_ = os.Getenv("SHELL")                                      // 23
	settings := map[string]string{"archive_command": "cp %p x"} // 24
	osexec.Command("psql", "-c", "SELECT 1")                    // fine
	osexec.Command("sudo", "-u", "postgres", "initdb")          // fine
	_ = settings
}
`
	found, err := scan("x.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, f := range found {
		if !slices.Contains(lines, f.pos.Line) {
			lines = append(lines, f.pos.Line)
		}
	}
	// Line 10 is the constant "/bin/sh" itself, a shell's path.
	want := []int{10, 13, 14, 15, 17, 18, 19, 20, 21, 22, 23, 24}
	slices.Sort(lines)
	if !slices.Equal(lines, want) {
		for _, f := range found {
			t.Logf("%d: %s", f.pos.Line, f.msg)
		}
		t.Errorf("findings on lines %v, want %v", lines, want)
	}
}

// scan returns the shell runs in one Go file.
func scan(name string, src []byte) ([]finding, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	imports := map[string]string{} // local name -> import path
	for _, im := range file.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		local := path.Base(p)
		if p == "golang.org/x/sys/unix" {
			local = "unix"
		}
		if im.Name != nil {
			local = im.Name.Name
		}
		imports[local] = p
	}
	strs := stringValues(file)
	var out []finding
	add := func(n ast.Node, what, msg string) {
		out = append(out, finding{pos: fset.Position(n.Pos()), what: what, msg: msg})
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BasicLit:
			if v, ok := literal(n); ok {
				if isShellPath(v) {
					add(n, base(v), "the path of a shell, "+strconv.Quote(v))
				}
				for _, s := range shellSettings {
					if v == s {
						add(n, s, "the Postgres setting "+s+", which Postgres runs through /bin/sh -c")
					}
				}
			}
		case *ast.CompositeLit:
			if sel, ok := n.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Cmd" && imports[identName(sel.X)] == "os/exec" {
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok || identName(kv.Key) != "Path" {
						continue
					}
					for _, v := range eval(kv.Value, strs) {
						if isShell(v) {
							add(n, base(v), "exec.Cmd runs the shell "+strconv.Quote(v))
						}
					}
				}
			}
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg := imports[identName(sel.X)]
			if (pkg == "os" || pkg == "syscall") && (sel.Sel.Name == "Getenv" || sel.Sel.Name == "LookupEnv") && len(n.Args) == 1 {
				for _, v := range eval(n.Args[0], strs) {
					if v == "SHELL" {
						add(n, "SHELL", "reads $SHELL, the user's shell, to run it")
					}
				}
			}
			idx, ok := execFuncs[pkg][sel.Sel.Name]
			if !ok || idx >= len(n.Args) {
				return true
			}
			call := identName(sel.X) + "." + sel.Sel.Name
			progs := eval(n.Args[idx], strs)
			for _, p := range progs {
				if isShell(p) {
					add(n, base(p), call+" runs the shell "+strconv.Quote(p))
				}
			}
			// A wrapper running a shell, or su/runuser running -c.
			for _, p := range progs {
				if !slices.Contains(wrappers, base(p)) {
					continue
				}
				for _, a := range n.Args[idx+1:] {
					for _, v := range eval(a, strs) {
						if isShell(v) {
							add(n, base(v), call+" runs the shell "+strconv.Quote(v)+" through "+base(p))
						}
						if v == "-c" && (base(p) == "su" || base(p) == "runuser") {
							add(n, "bash", call+" runs "+base(p)+" -c, a command line through the user's shell")
						}
					}
				}
			}
		}
		return true
	})
	return out, nil
}

// stringValues collects the string values every name in the file is given
// by a constant, a variable declaration or an assignment, wherever it is:
// a name given a shell anywhere counts.
func stringValues(file *ast.File) map[string][]string {
	vals := map[string][]string{}
	set := func(names []ast.Expr, values []ast.Expr) {
		if len(names) != len(values) {
			return
		}
		for i, n := range names {
			if id := identName(n); id != "" {
				if v, ok := values[i].(*ast.BasicLit); ok {
					if s, ok := literal(v); ok {
						vals[id] = append(vals[id], s)
					}
				}
			}
		}
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ValueSpec:
			names := make([]ast.Expr, len(n.Names))
			for i, id := range n.Names {
				names[i] = id
			}
			set(names, n.Values)
		case *ast.AssignStmt:
			set(n.Lhs, n.Rhs)
		}
		return true
	})
	return vals
}

// eval returns the string values e may have: a literal, a name given
// strings, their concatenation, or filepath.Join/path.Join of them.
func eval(e ast.Expr, strs map[string][]string) []string {
	switch e := e.(type) {
	case *ast.BasicLit:
		if v, ok := literal(e); ok {
			return []string{v}
		}
	case *ast.Ident:
		return strs[e.Name]
	case *ast.ParenExpr:
		return eval(e.X, strs)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return nil
		}
		var out []string
		for _, l := range eval(e.X, strs) {
			for _, r := range eval(e.Y, strs) {
				out = append(out, l+r)
			}
		}
		return out
	case *ast.CallExpr:
		if sel, ok := e.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Join" && (identName(sel.X) == "filepath" || identName(sel.X) == "path") {
			parts := []string{""}
			for _, a := range e.Args {
				vs := eval(a, strs)
				if len(vs) == 0 {
					return nil
				}
				var next []string
				for _, p := range parts {
					for _, v := range vs {
						next = append(next, path.Join(p, v))
					}
				}
				parts = next
			}
			return parts
		}
	}
	return nil
}

func literal(l *ast.BasicLit) (string, bool) {
	if l.Kind != token.STRING {
		return "", false
	}
	v, err := strconv.Unquote(l.Value)
	return v, err == nil
}

func identName(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

func base(p string) string { return path.Base(strings.TrimSpace(p)) }

// isShell: a shell by name or by path ("sh", "/bin/bash").
func isShell(p string) bool { return slices.Contains(shells, base(p)) }

// isShellPath: an absolute path to a shell ("/bin/sh", "/usr/bin/env bash").
func isShellPath(v string) bool {
	if !strings.HasPrefix(v, "/") {
		return false
	}
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return false
	}
	if isShell(fields[0]) {
		return true
	}
	return base(fields[0]) == "env" && len(fields) > 1 && isShell(fields[1])
}
