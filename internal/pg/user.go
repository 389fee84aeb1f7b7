package pg

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// UserEnv names the environment variable that picks the unprivileged user
// Postgres runs as when velo runs as root.
const UserEnv = "VELO_PG_USER"

// DefaultUser is the user Postgres runs as under root unless VELO_PG_USER
// says otherwise; Debian's postgresql-common creates it.
const DefaultUser = "postgres"

// OSUser is the operating-system account a server's files belong to and its
// processes run as.
type OSUser struct {
	Name     string
	UID, GID int
}

// Credential returns the credential to start a process as u: its uid, its
// primary gid and no supplementary groups (root's are not inherited).
func (u *OSUser) Credential() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}
}

// LookupRunAs returns the user Postgres must run as. Postgres refuses to run
// as root, so when velo runs as root it is the user VELO_PG_USER names
// (default postgres); otherwise it is nil, meaning the current user.
func LookupRunAs() (*OSUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	name := os.Getenv(UserEnv)
	if name == "" {
		name = DefaultUser
	}
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			if name == DefaultUser {
				return nil, fmt.Errorf("velo runs Postgres as the unprivileged user %s, which does not exist; create it (apt-get install postgresql-common) or set %s", name, UserEnv)
			}
			return nil, fmt.Errorf("%s=%s names a user that does not exist; create it or set %s to an existing unprivileged user", UserEnv, name, UserEnv)
		}
		return nil, fmt.Errorf("look up user %s: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q is not a number", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q is not a number", name, u.Gid)
	}
	if uid == 0 {
		return nil, fmt.Errorf("%s=%s is root, and Postgres refuses to run as root; set %s to an unprivileged user", UserEnv, name, UserEnv)
	}
	return &OSUser{Name: u.Username, UID: uid, GID: gid}, nil
}

// Chown gives path, and everything below it when it is a directory, to u
// without following symbolic links. It does nothing when u is nil.
func Chown(path string, u *OSUser) error {
	if u == nil {
		return nil
	}
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, u.UID, u.GID); err != nil {
			return fmt.Errorf("chown %s to %s: %w", p, u.Name, err)
		}
		return nil
	})
}

// chownOne gives one file to u; nil u leaves it as it is.
func chownOne(path string, u *OSUser) error {
	if u == nil {
		return nil
	}
	if err := os.Lchown(path, u.UID, u.GID); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, u.Name, err)
	}
	return nil
}

const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// PasswordLength is the length of the passwords GeneratePassword makes:
// 32 characters of 62 give about 190 bits.
const PasswordLength = 32

// GeneratePassword returns a random password of PasswordLength characters
// from [A-Za-z0-9], drawn from crypto/rand without modulo bias. The alphabet
// needs no quoting in a URL, a shell or a pgpass file.
func GeneratePassword() (string, error) {
	// 248 is the largest multiple of 62 that fits in a byte: bytes above it
	// are rejected so that every character is equally likely.
	const limit = 256 - 256%len(passwordAlphabet)
	out := make([]byte, 0, PasswordLength)
	buf := make([]byte, PasswordLength*2)
	for len(out) < PasswordLength {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, passwordAlphabet[int(b)%len(passwordAlphabet)])
			if len(out) == PasswordLength {
				break
			}
		}
	}
	return string(out), nil
}

// sysProcAttrFor runs a child process as u.
func sysProcAttrFor(u *OSUser) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: u.Credential()}
}

// CanTraverse reports whether u can reach path: every existing directory
// from / down to path grants it search (x) permission, as owner, through
// its primary group (servers get no other groups) or as anyone. A nil u is
// the current user, who made the path.
func CanTraverse(path string, u *OSUser) bool {
	if u == nil {
		return true
	}
	path = filepath.Clean(path)
	for p := path; ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err == nil && info.IsDir() {
			st := info.Sys().(*syscall.Stat_t)
			mode := info.Mode().Perm()
			var ok bool
			switch {
			case int(st.Uid) == u.UID:
				ok = mode&0o100 != 0
			case int(st.Gid) == u.GID:
				ok = mode&0o010 != 0
			default:
				ok = mode&0o001 != 0
			}
			if !ok {
				return false
			}
		}
		if p == "/" || p == "." {
			return true
		}
	}
}
