package srccheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKindsAddNoText: an error kind of package errdefs is given with its
// constructor (errdefs.Invalid("...")) or errdefs.Mark, never formatted
// into a message (fmt.Errorf("%w: ...", errdefs.ErrInvalid)), which would
// put the kind's name before the user's words ("invalid input: ...") and
// bring back the stacked prefixes of issue 22.
func TestKindsAddNoText(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != root || d.Name() == "vendor" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.Contains(filepath.ToSlash(p), "/internal/errdefs/") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, src, 0)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !isSel(call.Fun, "fmt", "Errorf") {
				return true
			}
			for _, a := range call.Args[1:] {
				if s, ok := a.(*ast.SelectorExpr); ok && isIdent(s.X, "errdefs") && strings.HasPrefix(s.Sel.Name, "Err") {
					rel, _ := filepath.Rel(root, p)
					t.Errorf("%s:%d: fmt.Errorf formats errdefs.%s into the message; use errdefs.New or its constructor", rel, fset.Position(call.Pos()).Line, s.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read only %d Go files under %s", files, root)
	}
}

func isSel(e ast.Expr, pkg, name string) bool {
	s, ok := e.(*ast.SelectorExpr)
	return ok && isIdent(s.X, pkg) && s.Sel.Name == name
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}
