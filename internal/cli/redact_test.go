package cli

import (
	"strings"
	"testing"
)

func TestRedactArgs(t *testing.T) {
	for in, want := range map[string]string{
		"postgresql://u:s3cret@h:5432/db":       "postgresql://u:***@h:5432/db",
		"--from=postgres://u:s3cret@h/db":       "--from=postgres://u:***@h/db",
		"postgresql://u@h/db":                   "postgresql://u@h/db",
		"host=h password=s3cret dbname=x":       "host=h password=*** dbname=x",
		"host=h password='s 3cret' dbname=x":    "host=h password=*** dbname=x",
		"service=prod":                          "service=prod",
		"postgresql://h/db?password=s3cret&x=1": "postgresql://h/db?password=***",
	} {
		got := redactArgs([]string{in})[0]
		if got != want || strings.Contains(got, "s3cret") {
			t.Errorf("redactArgs(%q) = %q, want %q", in, got, want)
		}
	}
}
