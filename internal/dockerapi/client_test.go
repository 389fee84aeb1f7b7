package dockerapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/velohq/velo/internal/dockerapi"
	"github.com/velohq/velo/internal/testenv"
)

// TestEngineRunsTheTestImage: the engine the tests use answers, the test
// image exists (built when missing), and a container of it runs, is
// listed by its label, reports its output and exit code, gives up a file,
// and is removed.
func TestEngineRunsTheTestImage(t *testing.T) {
	d := testenv.RequireDocker(t)
	image := testenv.PostGISImage(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := d.Client.ImageInspect(ctx, "velo-test-no-such-image:1"); !dockerapi.IsNotFound(err) {
		t.Fatalf("inspect of a missing image: %v, want not found", err)
	}
	label := "dev.velo.test=" + t.Name()
	id, err := d.Client.ContainerCreate(ctx, "velo-test-dockerapi", dockerapi.ContainerConfig{
		Image:      image,
		Cmd:        []string{"postgres", "--version"},
		Labels:     map[string]string{"dev.velo.test": t.Name()},
		HostConfig: dockerapi.HostConfig{NetworkMode: "host"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Client.ContainerRemove(context.Background(), id, true) })
	passwd, err := d.Client.ReadFile(ctx, id, "/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(passwd), "\npostgres:") {
		t.Errorf("the image's /etc/passwd has no postgres user:\n%s", passwd)
	}
	list, err := d.Client.ContainerList(ctx, []string{label})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != id {
		t.Fatalf("containers labelled %s: %+v, want %s", label, list, id)
	}
	if err := d.Client.ContainerStart(ctx, id); err != nil {
		t.Fatal(err)
	}
	if code, err := d.Client.ContainerWait(ctx, id); err != nil || code != 0 {
		t.Fatalf("postgres --version exited %d (%v)", code, err)
	}
	out, err := d.Client.ContainerLogs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "(PostgreSQL) 15.") {
		t.Errorf("postgres --version in the image said %q", out)
	}
	if err := d.Client.ContainerRemove(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerInspect(ctx, id); !dockerapi.IsNotFound(err) {
		t.Errorf("inspect after remove: %v, want not found", err)
	}
}
