package view

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
