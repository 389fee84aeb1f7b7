// Package dockerapi is the small part of the Docker Engine API that Velo
// uses, spoken over HTTP on the engine's socket with the standard library:
// images inspected and imported, containers created, started, signalled,
// inspected, listed and removed, and a file read out of a container.
//
// The engine is found as the docker CLI finds it: DOCKER_HOST
// (unix:///path or tcp://host:port, without TLS), else the default socket
// /var/run/docker.sock. Nothing here runs the docker CLI.
package dockerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// HostEnv is the variable the docker CLI reads for the engine's address.
const HostEnv = "DOCKER_HOST"

// DefaultHost is where the engine listens when DOCKER_HOST is not set.
const DefaultHost = "unix:///var/run/docker.sock"

// apiVersion is the oldest API that has everything used here (Docker
// 20.10 speaks 1.41); asking for it keeps newer engines answering alike.
const apiVersion = "v1.41"

// Client talks to one Docker engine.
type Client struct {
	host string
	base string
	http *http.Client
}

// Error is an answer of the engine other than success.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("docker engine: %s (HTTP %d)", e.Message, e.Status)
}

// IsNotFound reports whether err is the engine saying no such image or
// container.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// HostFromEnv returns DOCKER_HOST, else the default socket.
func HostFromEnv() string {
	if h := strings.TrimSpace(os.Getenv(HostEnv)); h != "" {
		return h
	}
	return DefaultHost
}

// FromEnv returns a client for the engine HostFromEnv names.
func FromEnv() (*Client, error) { return New(HostFromEnv()) }

// New returns a client for the engine at host: unix:///path or
// tcp://host:port. Nothing is contacted until the first call.
func New(host string) (*Client, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	tr := &http.Transport{MaxIdleConns: 4, IdleConnTimeout: 30 * time.Second}
	c := &Client{host: host, http: &http.Client{Transport: tr}}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			return nil, fmt.Errorf("docker host %q names no socket", host)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://docker/" + apiVersion
	case "tcp", "http":
		if u.Host == "" {
			return nil, fmt.Errorf("docker host %q names no address", host)
		}
		c.base = "http://" + u.Host + "/" + apiVersion
	default:
		return nil, fmt.Errorf("docker host %q: only unix:// and tcp:// engines are supported", host)
	}
	return c, nil
}

// Host returns the engine's address as given.
func (c *Client) Host() string { return c.host }

// Ping checks that the engine answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/_ping", nil, nil, nil)
}

// head sends a HEAD request and returns the answer's headers.
func (c *Client) head(ctx context.Context, path string, query url.Values) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.base+path+"?"+query.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("docker engine at %s: %w", c.host, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return nil, &Error{Status: resp.StatusCode, Message: resp.Status}
	}
	return resp.Header, nil
}

// do sends one request; a JSON body is encoded from in unless in is an
// io.Reader (sent as a tar archive), and a JSON answer decoded into out
// unless out is nil.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	contentType := ""
	switch v := in.(type) {
	case nil:
	case io.Reader:
		body, contentType = v, "application/x-tar"
	default:
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body, contentType = bytes.NewReader(data), "application/json"
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("docker engine at %s: %w", c.host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var msg struct{ Message string }
		if json.Unmarshal(data, &msg) != nil || msg.Message == "" {
			msg.Message = strings.TrimSpace(string(data))
		}
		return &Error{Status: resp.StatusCode, Message: msg.Message}
	}
	switch o := out.(type) {
	case nil:
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	case *[]byte:
		*o, err = io.ReadAll(resp.Body)
		return err
	default:
		return json.NewDecoder(resp.Body).Decode(out)
	}
}
