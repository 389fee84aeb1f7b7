// Package objstore keeps copies of a project's WAL archive (and, later,
// its snapshots) in an S3-compatible object store: AWS S3, Backblaze B2,
// Ceph RGW, SeaweedFS, versitygw.
//
// Contract:
//   - An object is written once. Put refuses to replace an object whose
//     content differs (ErrConflict), and succeeds without writing when the
//     same content is already there, so an interrupted upload is simply
//     run again.
//   - Every object carries the SHA-256 of its content (metadata
//     "velo-sha256", and the S3 checksum the store verifies on receipt).
//     Put returns only after reading the object's record back and finding
//     that checksum and size; Get refuses content whose checksum differs,
//     naming the object.
//   - Credentials come from the AWS SDK's usual chain (AWS_* environment
//     variables, the shared config and credentials files, AWS_PROFILE);
//     none is ever taken as an argument or printed.
package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/velohq/velo/internal/errdefs"
	"github.com/velohq/velo/internal/ui"
)

// ErrConflict: an object of that name exists with other content.
var ErrConflict = errors.New("object exists with different content")

// Location is s3://BUCKET/PREFIX: a bucket and the key prefix (no leading
// or trailing slash; "" for the bucket's root) under which one project
// keeps its objects.
type Location struct {
	Bucket string
	Prefix string
}

func (l Location) String() string {
	if l.Prefix == "" {
		return "s3://" + l.Bucket
	}
	return "s3://" + l.Bucket + "/" + l.Prefix
}

// Key is the object name of rel under the location's prefix.
func (l Location) Key(rel string) string {
	if l.Prefix == "" {
		return rel
	}
	return l.Prefix + "/" + rel
}

// bucketName is S3's rule for bucket names (the DNS-compatible one).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

var prefixPart = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// ParseLocation reads --archive s3://BUCKET/PREFIX.
func ParseLocation(s string) (Location, error) { return ParseLocationFlag("--archive", s) }

// ParseLocationFlag reads s3://BUCKET/PREFIX given as flag.
func ParseLocationFlag(flag, s string) (Location, error) {
	const rule = "use s3://BUCKET/PREFIX: a bucket name of 3-63 lowercase letters, digits, dots and hyphens, then path parts of letters, digits, '.', '_' and '-'"
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return Location{}, errdefs.Invalid("%s %s: %s", flag, ui.Quote(s), rule)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if !bucketName.MatchString(bucket) || strings.Contains(bucket, "..") {
		return Location{}, errdefs.Invalid("%s %s: the bucket is not a valid name; %s", flag, ui.Quote(s), rule)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		for _, part := range strings.Split(prefix, "/") {
			if !prefixPart.MatchString(part) || part == "." || part == ".." {
				return Location{}, errdefs.Invalid("%s %s: prefix part %s is not allowed; %s", flag, ui.Quote(s), ui.Quote(part), rule)
			}
		}
	}
	return Location{Bucket: bucket, Prefix: prefix}, nil
}

// ValidateEndpoint checks --archive-endpoint: an http or https URL with a
// host and no user information (a secret there would show in ps).
func ValidateEndpoint(s string) error {
	if s == "" {
		return nil
	}
	bad := errdefs.Invalid("--archive-endpoint %s: use an http:// or https:// URL of the S3 service (ASCII, no query), e.g. https://s3.example.com:9000", ui.Quote(s))
	for _, c := range s {
		if c <= ' ' || c >= 0x7f {
			return bad
		}
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return bad
	}
	if u.User != nil {
		return errdefs.Invalid("--archive-endpoint must not hold credentials: give them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or ~/.aws/credentials")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return bad
		}
	}
	return nil
}

// Store is one project's place in a bucket.
type Store struct {
	Loc    Location
	client *s3.Client
}

// Open makes a client for loc. endpoint is "" for AWS itself, else the URL
// of an S3-compatible service, addressed path-style (BUCKET in the path),
// as most such services want.
func Open(ctx context.Context, loc Location, endpoint string) (*Store, error) {
	if err := ValidateEndpoint(endpoint); err != nil {
		return nil, err
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, errdefs.Environment("object store: reading the AWS configuration: %v", err)
	}
	if cfg.Region == "" {
		// S3-compatible services take any region; AWS needs one.
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
		// Checksums only where this package asks for them: some
		// S3-compatible stores do not take the SDK's default CRC32 trailer.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &Store{Loc: loc, client: client}, nil
}

// Object is one object's record.
type Object struct {
	Key    string
	Size   int64
	SHA256 string // hex; "" when the object carries none (not Velo's)
}

// Check proves the bucket is reachable with these credentials.
func (s *Store) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.Loc.Bucket)})
	if err == nil {
		return nil
	}
	// A HEAD answer has no body, so no error code: some stores answer
	// unknown credentials with a bare 404 or 403. A listing says which.
	_, lerr := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.Loc.Bucket), MaxKeys: aws.Int32(1)})
	if lerr != nil {
		return s.explain(lerr, "")
	}
	return s.explain(err, "")
}

// Head returns the record of rel, or an error of kind ErrNotFound.
func (s *Store) Head(ctx context.Context, rel string) (Object, error) {
	key := s.Loc.Key(rel)
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.Loc.Bucket), Key: aws.String(key)})
	if err != nil {
		return Object{}, s.explain(err, key)
	}
	return Object{Key: key, Size: aws.ToInt64(out.ContentLength), SHA256: out.Metadata["velo-sha256"]}, nil
}

// PutFile stores the file at local as rel, once (see the package
// contract), and returns its record as read back from the store.
func (s *Store) PutFile(ctx context.Context, rel, local string) (Object, error) {
	sum, size, err := fileSum(local)
	if err != nil {
		return Object{}, err
	}
	f, err := os.Open(local)
	if err != nil {
		return Object{}, err
	}
	defer f.Close()
	return s.put(ctx, rel, f, size, sum)
}

// PutBytes is PutFile for content in memory.
func (s *Store) PutBytes(ctx context.Context, rel string, data []byte) (Object, error) {
	h := sha256.Sum256(data)
	return s.put(ctx, rel, strings.NewReader(string(data)), int64(len(data)), h[:])
}

func (s *Store) put(ctx context.Context, rel string, body io.ReadSeeker, size int64, sum []byte) (Object, error) {
	want := hex.EncodeToString(sum)
	if obj, err := s.Head(ctx, rel); err == nil {
		return obj, sameContent(obj, size, want)
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return Object{}, err
	}
	key := s.Loc.Key(rel)
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         aws.String(s.Loc.Bucket),
		Key:            aws.String(key),
		Body:           body,
		ContentLength:  aws.Int64(size),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum)),
		Metadata:       map[string]string{"velo-sha256": want},
		// Another writer between the Head and here: the store refuses.
		IfNoneMatch: aws.String("*"),
	})
	if err != nil && !isCode(err, "PreconditionFailed", "ConditionalRequestConflict") {
		return Object{}, s.explain(err, key)
	}
	obj, err := s.Head(ctx, rel)
	if err != nil {
		return Object{}, fmt.Errorf("reading back %s after writing it: %w", key, err)
	}
	return obj, sameContent(obj, size, want)
}

func sameContent(obj Object, size int64, sum string) error {
	if obj.Size != size || obj.SHA256 != sum {
		return fmt.Errorf("%s: %w (store: %d bytes, sha256 %q; local: %d bytes, sha256 %s); it is never overwritten", obj.Key, ErrConflict, obj.Size, obj.SHA256, size, sum)
	}
	return nil
}

// GetFile downloads rel to local (through a temporary file, renamed into
// place), refusing it when its content does not match its checksum.
func (s *Store) GetFile(ctx context.Context, rel, local string) error {
	key := s.Loc.Key(rel)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Loc.Bucket), Key: aws.String(key)})
	if err != nil {
		return s.explain(err, key)
	}
	defer out.Body.Close()
	want := out.Metadata["velo-sha256"]
	if want == "" {
		return errdefs.FailedPrecondition("object %s has no velo-sha256 checksum: it was not written by velo", key)
	}
	tmp := local + ".part"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), out.Body); err != nil {
		f.Close()
		return fmt.Errorf("downloading %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return errdefs.FailedPrecondition("object %s is corrupt: its content's sha256 is %s, its record says %s; refused", key, got, want)
	}
	return os.Rename(tmp, local)
}

// GetBytes returns the content of rel, a small object (a marker, a
// manifest), refusing it when it does not match its checksum.
func (s *Store) GetBytes(ctx context.Context, rel string) ([]byte, error) {
	key := s.Loc.Key(rel)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Loc.Bucket), Key: aws.String(key)})
	if err != nil {
		return nil, s.explain(err, key)
	}
	defer out.Body.Close()
	want := out.Metadata["velo-sha256"]
	b, err := io.ReadAll(io.LimitReader(out.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", key, err)
	}
	h := sha256.Sum256(b)
	if got := hex.EncodeToString(h[:]); want == "" || got != want {
		return nil, errdefs.FailedPrecondition("object %s is corrupt or not velo's: its content's sha256 is %s, its record says %q; refused", key, got, want)
	}
	return b, nil
}

// List returns the objects under rel (a directory-like prefix), by name.
func (s *Store) List(ctx context.Context, rel string) ([]Object, error) {
	prefix := s.Loc.Key(rel)
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	var out []Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.Loc.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.explain(err, prefix)
		}
		for _, o := range page.Contents {
			out = append(out, Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)})
		}
	}
	return out, nil
}

// Delete removes rel; an object already gone is no error.
func (s *Store) Delete(ctx context.Context, rel string) error {
	key := s.Loc.Key(rel)
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Loc.Bucket), Key: aws.String(key)})
	if err != nil && !isCode(err, "NoSuchKey", "NotFound") {
		return s.explain(err, key)
	}
	return nil
}

// Base is the last part of an object's key.
func Base(key string) string { return path.Base(key) }

func fileSum(name string) ([]byte, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, 0, err
	}
	return h.Sum(nil), n, nil
}

func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.ErrorCode() == c {
			return true
		}
	}
	return false
}

// explain turns the SDK's errors into messages that say what to fix. The
// SDK's own text never holds the secret key.
func (s *Store) explain(err error, key string) error {
	if err == nil {
		return nil
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	switch {
	case isCode(err, "NoSuchBucket"):
		return errdefs.FailedPrecondition("object store: bucket %s does not exist (create it, or fix --archive)", s.Loc.Bucket)
	case errors.As(err, &nsk), errors.As(err, &nf), isCode(err, "NoSuchKey", "NotFound"):
		if key == "" {
			return errdefs.FailedPrecondition("object store: bucket %s does not exist or is not reachable with these credentials", s.Loc.Bucket)
		}
		return errdefs.NotFound("object %s not found in bucket %s", key, s.Loc.Bucket)
	case isCode(err, "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "InvalidClientTokenId", "ExpiredToken", "InvalidToken", "AuthorizationHeaderMalformed", "XAdminUserNotFound"):
		return errdefs.FailedPrecondition("object store refused the credentials for bucket %s (%s): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials", s.Loc.Bucket, code(err))
	}
	return errdefs.Environment("object store %s: %v", s.Loc, err)
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return "error"
}

// CredentialsFile is the AWS shared credentials file ([default] profile)
// of the credentials the AWS chain gives now, for a process that reads the
// store later without this one's environment (Postgres's restore_command);
// its caller keeps it as a secret (0600, outside every volume). region is
// the chain's region ("" none), which is no secret.
func CredentialsFile(ctx context.Context) (file []byte, region string, err error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, "", errdefs.Environment("object store: reading the AWS configuration: %v", err)
	}
	if cfg.Credentials == nil {
		return nil, "", errdefs.FailedPrecondition("object store: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials")
	}
	c, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, "", errdefs.FailedPrecondition("object store: no credentials (%v): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", c.AccessKeyID, c.SecretAccessKey)
	if c.SessionToken != "" {
		fmt.Fprintf(&b, "aws_session_token = %s\n", c.SessionToken)
	}
	return []byte(b.String()), cfg.Region, nil
}
