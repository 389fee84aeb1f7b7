package engine

import (
	"errors"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
)

func TestValidateImage(t *testing.T) {
	for _, ok := range []string{"postgres", "postgres:17", "postgis/postgis:15-3.4", "ankane/pgvector:v0.8.0", "registry.example.com:5000/team/pg:17-alpine",
		"velo-test-postgis:pg15-cd1a61c6ffb2", "postgres@sha256:" + sixtyFour, "localhost/pg_x__y:1.2"} {
		if err := ValidateImage(ok); err != nil {
			t.Errorf("ValidateImage(%q) = %v, want accepted", ok, err)
		}
	}
	for _, bad := range []string{" ", "Postgres", "postgres:", ":17", "pg:17 ", "pg\n", "a//b", "pg:-x", "-pg", "pg@sha256:abc", "pg;id", "../pg", "pg:" + string(make([]byte, 129))} {
		if err := ValidateImage(bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ValidateImage(%q) = %v, want invalid", bad, err)
		}
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
