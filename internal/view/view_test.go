package view

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/ui"
)

// documents are every type Velo prints with --json.
var documents = []ui.Document{
	Branch{}, Branches{}, Projects{}, ProjectDetail{}, Status{}, Conn{}, StartResults{}, StopResults{}, Prune{}, Promote{}, Restore{},
	Snapshot{}, Snapshots{}, SnapshotCleanup{}, WALs{}, WALCleanup{}, Push{}, Doctor{}, Repair{}, Env{}, Version{}, Tokens{},
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestDocumentKeys checks the contract of the package doc by reflection,
// at every depth of every document: each field has a snake_case key;
// a key ending _bytes is an integer and a size field's key ends _bytes;
// times are time.Time (RFC 3339 in JSON), never strings or numbers.
func TestDocumentKeys(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(path string, ty reflect.Type)
	walk = func(path string, ty reflect.Type) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || ty == reflect.TypeOf(time.Time{}) || seen[ty] {
			return
		}
		seen[ty] = true
		for i := range ty.NumField() {
			f := ty.Field(i)
			if f.Anonymous {
				walk(path, f.Type)
				continue
			}
			tag, ok := f.Tag.Lookup("json")
			key, _, _ := strings.Cut(tag, ",")
			where := path + "." + f.Name
			if !ok || !snakeCase.MatchString(key) {
				t.Errorf("%s (%s): key %q is not snake_case", where, ty, key)
				continue
			}
			base := f.Type
			for base.Kind() == reflect.Pointer {
				base = base.Elem()
			}
			isInt := base.Kind() == reflect.Int64 || base.Kind() == reflect.Int
			if strings.HasSuffix(key, "_bytes") != (strings.HasSuffix(f.Name, "Bytes") && isInt) {
				t.Errorf("%s: key %q: sizes are integers keyed *_bytes, and only they", where, key)
			}
			if (strings.HasSuffix(key, "_at") || strings.HasSuffix(key, "_pitr") || key == "target") && base != reflect.TypeOf(time.Time{}) {
				t.Errorf("%s: key %q names a time but is %s", where, key, f.Type)
			}
			walk(where, f.Type)
		}
	}
	for _, d := range documents {
		walk(reflect.TypeOf(d).Name(), reflect.TypeOf(d))
	}
}
