package dockerapi

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Image is what the engine tells about an image.
type Image struct {
	ID     string
	Config struct {
		Env  []string
		User string
	}
}

// ImageInspect returns the image name refers to, or an error IsNotFound
// accepts when the engine has none.
func (c *Client) ImageInspect(ctx context.Context, name string) (Image, error) {
	var img Image
	err := c.do(ctx, http.MethodGet, "/images/"+url.PathEscape(name)+"/json", nil, nil, &img)
	return img, err
}

// ImportImage makes the image repo:tag from a tar archive of a root file
// system, as `docker import` does; changes are Dockerfile instructions
// applied to its configuration ("ENV PATH=...").
func (c *Client) ImportImage(ctx context.Context, repo, tag string, rootfs io.Reader, changes []string) error {
	q := url.Values{"fromSrc": {"-"}, "repo": {repo}, "tag": {tag}}
	for _, ch := range changes {
		q.Add("changes", ch)
	}
	var out []byte
	if err := c.do(ctx, http.MethodPost, "/images/create", q, rootfs, &out); err != nil {
		return err
	}
	// The engine streams progress as JSON lines; a failure arrives as one
	// with an error, after an HTTP 200.
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var line struct{ Error string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Error != "" {
			return fmt.Errorf("docker import %s:%s: %s", repo, tag, line.Error)
		}
	}
	return nil
}

// Mount is a bind mount into a container.
type Mount struct {
	Type     string // "bind"
	Source   string
	Target   string
	ReadOnly bool `json:",omitempty"`
}

// HostConfig is the part of a container's host configuration Velo sets.
type HostConfig struct {
	NetworkMode string  `json:",omitempty"`
	Mounts      []Mount `json:",omitempty"`
	ShmSize     int64   `json:",omitempty"`
	Init        *bool   `json:",omitempty"`
}

// ContainerConfig is what a container is created from.
type ContainerConfig struct {
	Image      string
	Entrypoint []string          `json:",omitempty"`
	Cmd        []string          `json:",omitempty"`
	User       string            `json:",omitempty"`
	Env        []string          `json:",omitempty"`
	WorkingDir string            `json:",omitempty"`
	Labels     map[string]string `json:",omitempty"`
	StopSignal string            `json:",omitempty"`
	HostConfig HostConfig
}

// ContainerCreate creates the container name (not started; "" lets the
// engine name it) and returns its ID.
func (c *Client) ContainerCreate(ctx context.Context, name string, cfg ContainerConfig) (string, error) {
	var out struct{ ID string }
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	err := c.do(ctx, http.MethodPost, "/containers/create", q, cfg, &out)
	return out.ID, err
}

// ContainerStart starts a created container.
func (c *Client) ContainerStart(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/containers/"+url.PathEscape(id)+"/start", nil, nil, nil)
}

// ContainerKill sends signal ("SIGINT") to the container's main process.
func (c *Client) ContainerKill(ctx context.Context, id, signal string) error {
	return c.do(ctx, http.MethodPost, "/containers/"+url.PathEscape(id)+"/kill", url.Values{"signal": {signal}}, nil, nil)
}

// ContainerRemove removes a container, killing it first when force is set.
// Removing one that is gone succeeds.
func (c *Client) ContainerRemove(ctx context.Context, id string, force bool) error {
	q := url.Values{"force": {fmt.Sprint(force)}}
	err := c.do(ctx, http.MethodDelete, "/containers/"+url.PathEscape(id), q, nil, nil)
	if IsNotFound(err) {
		return nil
	}
	return err
}

// Container is what the engine tells about one container.
type Container struct {
	ID    string
	Name  string
	Image string // the image's ID
	State struct {
		Status     string // "created", "running", "exited", ...
		Running    bool
		Pid        int
		ExitCode   int
		StartedAt  time.Time
		FinishedAt time.Time
	}
	Config struct {
		Image  string // as asked for
		Cmd    []string
		Env    []string
		Labels map[string]string
	}
}

// ContainerInspect returns the container id (or name) names, or an error
// IsNotFound accepts.
func (c *Client) ContainerInspect(ctx context.Context, id string) (Container, error) {
	var ct Container
	err := c.do(ctx, http.MethodGet, "/containers/"+url.PathEscape(id)+"/json", nil, nil, &ct)
	return ct, err
}

// ContainerSummary is one line of a container listing.
type ContainerSummary struct {
	ID     string
	Names  []string
	State  string
	Labels map[string]string
}

// ContainerList lists the containers, stopped ones too, that carry every
// label given ("key=value", or "key" for any value).
func (c *Client) ContainerList(ctx context.Context, labels []string) ([]ContainerSummary, error) {
	filters, err := json.Marshal(map[string][]string{"label": labels})
	if err != nil {
		return nil, err
	}
	var out []ContainerSummary
	err = c.do(ctx, http.MethodGet, "/containers/json", url.Values{"all": {"1"}, "filters": {string(filters)}}, nil, &out)
	return out, err
}

// ReadFile returns the contents of one regular file in a container
// (created or running), read through the engine's archive endpoint.
func (c *Client) ReadFile(ctx context.Context, id, path string) ([]byte, error) {
	var archive []byte
	if err := c.do(ctx, http.MethodGet, "/containers/"+url.PathEscape(id)+"/archive", url.Values{"path": {path}}, nil, &archive); err != nil {
		return nil, err
	}
	tr := tar.NewReader(strings.NewReader(string(archive)))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: not a regular file in the container", path)
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			return io.ReadAll(tr)
		}
	}
}

// ContainerWait waits for the container to stop and returns its exit code.
func (c *Client) ContainerWait(ctx context.Context, id string) (int, error) {
	var out struct {
		StatusCode int
		Error      *struct{ Message string }
	}
	if err := c.do(ctx, http.MethodPost, "/containers/"+url.PathEscape(id)+"/wait", nil, nil, &out); err != nil {
		return -1, err
	}
	if out.Error != nil && out.Error.Message != "" {
		return out.StatusCode, errors.New(out.Error.Message)
	}
	return out.StatusCode, nil
}

// ContainerLogs returns what the container wrote to its standard output
// and error, in the order written (the engine's multiplexed stream taken
// apart), for a container created without a terminal.
func (c *Client) ContainerLogs(ctx context.Context, id string) (string, error) {
	var raw []byte
	q := url.Values{"stdout": {"1"}, "stderr": {"1"}}
	if err := c.do(ctx, http.MethodGet, "/containers/"+url.PathEscape(id)+"/logs", q, nil, &raw); err != nil {
		return "", err
	}
	var b strings.Builder
	for len(raw) >= 8 {
		n := int(raw[4])<<24 | int(raw[5])<<16 | int(raw[6])<<8 | int(raw[7])
		raw = raw[8:]
		if n > len(raw) {
			n = len(raw)
		}
		b.Write(raw[:n])
		raw = raw[n:]
	}
	return b.String(), nil
}

// PathStat is what the engine tells of a path in a container.
type PathStat struct {
	Name       string
	Size       int64
	Mode       uint32 // as Go's os.FileMode
	LinkTarget string
}

// StatPath stats path in a container (created or running), or returns an
// error IsNotFound accepts when there is nothing there.
func (c *Client) StatPath(ctx context.Context, id, path string) (PathStat, error) {
	h, err := c.head(ctx, "/containers/"+url.PathEscape(id)+"/archive", url.Values{"path": {path}})
	if err != nil {
		return PathStat{}, err
	}
	raw, err := base64.StdEncoding.DecodeString(h.Get("X-Docker-Container-Path-Stat"))
	if err != nil {
		return PathStat{}, fmt.Errorf("stat %s: %w", path, err)
	}
	var st PathStat
	if err := json.Unmarshal(raw, &st); err != nil {
		return PathStat{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return st, nil
}
