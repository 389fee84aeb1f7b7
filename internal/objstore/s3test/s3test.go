// Package s3test starts a real S3-compatible server for tests: versitygw
// (Apache-2.0) with its POSIX backend, on loopback, with a bucket.
// scripts/install-deps.sh installs versitygw from the Go module proxy; a
// test that cannot find it skips (a failure under VELO_TEST_REQUIRE).
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/velohq/velo/internal/testenv"
)

// Server is one running versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	AccessKey string
	SecretKey string
	Root      string // the POSIX backend's directory: ROOT/BUCKET/KEY
	addr      string
	cmd       *exec.Cmd
	bin       string
	t         testing.TB
	netns     string // the network namespace it runs in ("" this one)
}

// Binary finds versitygw: $VELO_VERSITYGW, PATH, then GOPATH/bin.
func Binary() string {
	if b := os.Getenv("VELO_VERSITYGW"); b != "" {
		return b
	}
	if b, err := exec.LookPath("versitygw"); err == nil {
		return b
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	b := filepath.Join(gopath, "bin", "versitygw")
	if _, err := os.Stat(b); err == nil {
		return b
	}
	return ""
}

// Start starts a server with one bucket (named bucket) and stops it when
// the test ends.
func Start(t testing.TB, bucket string) *Server { return StartIn(t, bucket, "", "") }

// StartIn is Start inside the network namespace netns, listening on all
// its addresses, Endpoint naming ip, the one this process routes to.
func StartIn(t testing.TB, bucket, netns, ip string) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		testenv.Skip(t, "s3", "versitygw not installed (scripts/install-deps.sh installs it)")
	}
	s := &Server{Bucket: bucket, AccessKey: "velotest" + randHex(4), SecretKey: randHex(16), Root: t.TempDir(), bin: bin, t: t, netns: netns}
	if err := os.MkdirAll(filepath.Join(s.Root, "gw", bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Root, "meta"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Reserved (testenv.ReservePort), since Restart binds it again after
	// Stop: no server of another test may take it meanwhile.
	for range 100 {
		if netns != "" {
			// A namespace of its own: any port is free there.
			s.addr = ":9000"
			break
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.addr = l.Addr().String()
		l.Close()
		if testenv.ReservePort(l.Addr().(*net.TCPAddr).Port) {
			break
		}
	}
	s.Endpoint = "http://" + s.addr
	if netns != "" {
		s.Endpoint = "http://" + net.JoinHostPort(ip, "9000")
	}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Dir is where the object of key lives on disk (the POSIX backend keeps
// objects as plain files).
func (s *Server) Dir(key string) string { return filepath.Join(s.Root, "gw", s.Bucket, key) }

// Restart starts the server again after Stop, on the same address.
func (s *Server) Restart() {
	s.t.Helper()
	// The keys go in the environment, never the arguments (ps shows those).
	args := []string{"--port", s.addr, "posix", "--sidecar", filepath.Join(s.Root, "meta"), filepath.Join(s.Root, "gw")}
	cmd := exec.Command(s.bin, args...)
	if s.netns != "" {
		// nsenter execs the program itself: the signals of Stop reach it.
		// The network namespace only, as harness.NetnsArgs says why.
		cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + s.netns, "--", s.bin}, args...)...)
	}
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	log, err := os.OpenFile(filepath.Join(s.Root, "versitygw.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(s.Root, "versitygw.log"))
			s.t.Fatalf("versitygw did not answer on %s: %v\n%s", s.addr, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server (the store "down").
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// Env is the environment a velo command needs to reach this server through
// the AWS chain, with no shared config of the user's read.
func (s *Server) Env(home string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// URL is s3://BUCKET/prefix.
func (s *Server) URL(prefix string) string {
	return fmt.Sprintf("s3://%s/%s", s.Bucket, strings.Trim(prefix, "/"))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Delete removes the objects under prefix through the S3 API (the POSIX
// backend keeps metadata beside the files, so removing files is not
// enough).
func (s *Server) Delete(t testing.TB, prefix string) {
	t.Helper()
	ctx := context.Background()
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")})
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	for _, o := range out.Contents {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket), Key: o.Key}); err != nil {
			t.Fatalf("delete %s: %v", aws.ToString(o.Key), err)
		}
	}
}
