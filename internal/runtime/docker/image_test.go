package docker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/runtime/docker"
	"github.com/velohq/velo/internal/testenv"
)

// TestInspectImage: the tests' image is found to hold PostgreSQL 15 and
// its postgres user (read from the image, not assumed); an image the
// engine lacks is not found with the docker pull to run; an image without
// Postgres is refused as invalid input.
func TestInspectImage(t *testing.T) {
	d := testenv.RequireDocker(t)
	image := testenv.PostGISImage(t, d)
	rt := docker.New(d.Client, nil)
	ctx := context.Background()
	img, err := rt.InspectImage(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	if img.Install.Major != 15 || img.Install.BinDir != "/usr/lib/postgresql/15/bin" || img.User.UID <= 0 || img.ID == "" {
		t.Errorf("InspectImage(%s) = %+v, want PostgreSQL 15 in /usr/lib/postgresql/15/bin and a postgres uid", image, img)
	}

	_, err = rt.InspectImage(ctx, "velo-test-no-such-image:1")
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "docker pull velo-test-no-such-image:1") {
		t.Errorf("InspectImage of a missing image: %v, want not found naming the docker pull", err)
	}

	_, err = rt.InspectImage(ctx, testenv.NoPostgresImage(t, d))
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Errorf("InspectImage of an image without Postgres: %v, want invalid saying it needs PostgreSQL", err)
	}
}

// TestInspectImageCache: what InspectImage found is kept by image ID and
// given back alike; an entry that does not read back is looked again.
func TestInspectImageCache(t *testing.T) {
	d := testenv.RequireDocker(t)
	image := testenv.PostGISImage(t, d)
	dir := t.TempDir()
	rt := docker.New(d.Client, nil).WithCache(dir)
	ctx := context.Background()
	first, err := rt.InspectImage(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(entries) != 1 {
		t.Fatalf("cache entries after a look: %v, want one", entries)
	}
	again, err := rt.InspectImage(ctx, image)
	if err != nil || again != first {
		t.Errorf("from the cache: %+v (%v), want %+v", again, err, first)
	}
	if err := os.WriteFile(entries[0], []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if third, err := rt.InspectImage(ctx, image); err != nil || third != first {
		t.Errorf("after a broken entry: %+v (%v), want %+v", third, err, first)
	}
}
