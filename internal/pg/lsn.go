package pg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// LSN is a WAL position, as Postgres writes it: two hexadecimal numbers of
// up to eight digits, the high and low 32 bits, separated by a slash
// (0/3000060).
type LSN uint64

var lsnSyntax = regexp.MustCompile(`^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$`)

// ParseLSN reads an LSN as Postgres writes it.
func ParseLSN(s string) (LSN, error) {
	m := lsnSyntax.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, errors.New("write it as Postgres does, two hexadecimal numbers of up to 8 digits separated by a slash (0/3000060, as pg_current_wal_lsn() shows it)")
	}
	hi, _ := strconv.ParseUint(m[1], 16, 32)
	lo, _ := strconv.ParseUint(m[2], 16, 32)
	return LSN(hi<<32 | lo), nil
}

// LooksLikeLSN tells an LSN (meant, maybe mistyped) from a time: only an
// LSN holds a slash.
func LooksLikeLSN(s string) bool { return strings.Contains(s, "/") }

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF) }

// ControlCheckpoint is the latest checkpoint's location that the data
// directory's pg_control holds: for a cleanly stopped server, its
// shutdown checkpoint, the last thing it wrote. ControlFileData has begun
// with system_identifier (8 bytes), pg_control_version and
// catalog_version_no (4 each), state (4, then 4 of padding), time (8)
// and checkPoint (8, at offset 32) since PostgreSQL 9.3; the file is in
// the host's byte order.
func ControlCheckpoint(dataDir string) (LSN, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "global", "pg_control"))
	if err != nil {
		return 0, err
	}
	if len(b) < 40 {
		return 0, fmt.Errorf("%s: pg_control is %d bytes", dataDir, len(b))
	}
	return LSN(binary.NativeEndian.Uint64(b[32:40])), nil
}
