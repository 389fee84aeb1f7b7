package docker_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/velohq/velo/internal/runtime"
	"github.com/velohq/velo/internal/runtime/docker"
	"github.com/velohq/velo/internal/runtime/runtimetest"
	"github.com/velohq/velo/internal/testenv"
)

// TestDocker runs the conformance suite on containers of the tests' image
// (Debian's PostgreSQL 15 with PostGIS), their data directories initdb'd by
// the host's PostgreSQL 15 and owned by the image's postgres user.
func TestDocker(t *testing.T) {
	testenv.RequireRoot(t)
	d := testenv.RequireDocker(t)
	image := testenv.PostGISImage(t, d)
	labels := map[string]string{docker.LabelHome: "velo-test-docker-" + t.Name()}
	rt := docker.New(d.Client, labels)
	img, err := rt.InspectImage(context.Background(), image)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %v", img)
	runtimetest.SuiteWith(t, func() runtime.Runtime { return docker.New(d.Client, labels) }, runtimetest.Options{
		Major:   img.Install.Major,
		Image:   image,
		Install: img.Install,
		Owner:   &img.User,
		Shown: func(t *testing.T, spec runtime.Spec) string {
			ct, err := d.Client.ContainerInspect(context.Background(), docker.ContainerName(spec.DataDir))
			if err != nil {
				t.Fatal(err)
			}
			data, _ := json.Marshal(ct)
			return string(data)
		},
	})
}
