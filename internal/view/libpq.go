package view

import "time"

// Env is velo branch env --format json: the libpq variables by their
// names (PGHOST, ..., DATABASE_URL), the one document whose keys are not
// snake_case, since they are the environment's names.
type Env map[string]string

// Version is velo version --json: how this binary was built.
type Version struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
}

func (Env) JSONDocument()     {}
func (Version) JSONDocument() {}

// Token is one of the HTTP API's tokens, as velo token list shows it:
// never the token itself, which only velo token create prints, once.
type Token struct {
	ID        string     `json:"id"`
	ReadOnly  bool       `json:"read_only"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	// First: the token velo serve made at its first start, kept in
	// VELO_HOME/api/token.
	First bool `json:"first"`
}

// Tokens is velo token list.
type Tokens []Token

func (Tokens) JSONDocument() {}
