package storage

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3Config configures an S3 store.
type S3Config struct {
	// Endpoint is host:port of the S3 API, without a scheme
	// (e.g. "s3.eu-west-1.amazonaws.com" or "127.0.0.1:7070").
	Endpoint string
	// Region of the bucket; "us-east-1" when empty.
	Region string
	// Bucket holds the objects.
	Bucket string
	// AccessKey and SecretKey are static credentials.
	AccessKey string
	SecretKey string
	// UseTLS selects https.
	UseTLS bool
	// PathStyle addresses the bucket in the path (http://host/bucket/key),
	// as MinIO and versitygw expect; otherwise minio-go picks (virtual-host
	// style for AWS).
	PathStyle bool
	// SSE asks for server-side encryption of every object: "" or "none",
	// "s3" (SSE-S3, keys managed by the server) or "kms:<key id>" (SSE-KMS).
	SSE string
	// CreateBucket creates the bucket when it does not exist; otherwise a
	// missing bucket is an error at start-up.
	CreateBucket bool
	// Versioning enables bucket versioning (at start-up, idempotent).
	Versioning bool
	// ObjectLock requires S3 object lock (for retention and legal hold). S3
	// can only enable it when the bucket is created, so with CreateBucket the
	// bucket is created with it, and an existing bucket without it is an
	// error. Object lock implies versioning.
	ObjectLock bool
	// Prefix is prepended to every key (e.g. "earshot/"); empty, or a valid
	// key followed by '/'. Keys in results never include it.
	Prefix string
	// PartSize is the size up to which an object goes in one PUT (with a
	// full-object SHA-256 checksum the server verifies) and the part size of
	// larger, multipart uploads (SHA-256 checked per part). Create-only puts
	// always go in one PUT (see S3.Put). Default 16 MiB; S3 needs at least
	// 5 MiB.
	PartSize uint64
	// MaxRetries bounds minio-go's attempts per request (1: no retry).
	// Default 3, so an unreachable endpoint fails within about a second;
	// callers that must not lose data (the recorder's spool) retry on their
	// own schedule.
	MaxRetries int
}

const (
	defaultRegion     = "us-east-1"
	defaultPartSize   = 16 << 20
	minPartSize       = 5 << 20
	maxSinglePut      = 5 << 30
	defaultMaxRetries = 3
	// spoolMemBytes is the largest input of unknown hash that Put buffers in
	// memory to hash it before the upload; larger inputs go to a temp file.
	spoolMemBytes = 8 << 20
	// dialTimeout bounds connecting to the endpoint (minio-go's default is
	// 30 s per attempt).
	dialTimeout = 10 * time.Second
)

// Validate checks the configuration and says what to change.
func (c S3Config) Validate() error {
	var errs []error
	switch {
	case c.Endpoint == "":
		errs = append(errs, errors.New("s3: endpoint is empty; set it to host:port"))
	case strings.Contains(c.Endpoint, "://"):
		errs = append(errs, fmt.Errorf("s3: endpoint %q has a scheme; give host:port and set use_tls for https", c.Endpoint))
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		errs = append(errs, fmt.Errorf("s3: bucket %q: %w", c.Bucket, err))
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		errs = append(errs, errors.New("s3: access key and secret key are required"))
	}
	if _, err := parseSSE(c.SSE); err != nil {
		errs = append(errs, err)
	}
	if c.Prefix != "" {
		if !strings.HasSuffix(c.Prefix, "/") || ValidateKey(strings.TrimSuffix(c.Prefix, "/")) != nil {
			errs = append(errs, fmt.Errorf("s3: prefix %q must be a valid key followed by '/', e.g. \"earshot/\"", c.Prefix))
		}
	}
	if c.PartSize != 0 && c.PartSize < minPartSize {
		errs = append(errs, fmt.Errorf("s3: part size %d is below S3's minimum of %d bytes", c.PartSize, minPartSize))
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("s3: max retries %d is negative", c.MaxRetries))
	}
	return errors.Join(errs...)
}

func parseSSE(s string) (encrypt.ServerSide, error) {
	switch {
	case s == "" || s == "none":
		return nil, nil
	case s == "s3":
		return encrypt.NewSSE(), nil
	case strings.HasPrefix(s, "kms:") && len(s) > len("kms:"):
		sse, err := encrypt.NewSSEKMS(strings.TrimPrefix(s, "kms:"), nil)
		if err != nil {
			return nil, fmt.Errorf("s3: sse %q: %w", s, err)
		}
		return sse, nil
	}
	return nil, fmt.Errorf("s3: sse %q: use none, s3 or kms:<key id>", s)
}

// S3 is an object store in an S3 bucket, through minio-go.
//
// Content integrity: Put knows the SHA-256 of the content before it uploads
// (from PutOptions.SHA256, or by hashing a seekable reader or a spooled copy
// first), stores its hex in the user metadata "sha256" and sends it as the
// x-amz-checksum-sha256 header, so the server rejects a body that does not
// match. Objects larger than PartSize go up in parts, each with its own
// SHA-256 checksum. Get verifies the stored SHA-256 as it streams.
type S3 struct {
	client   *minio.Client
	bucket   string
	prefix   string
	endpoint string // scheme://host:port, for error messages
	sse      encrypt.ServerSide
	partSize uint64
}

var _ Store = (*S3)(nil)

// NewS3 connects to the bucket, creating it (and turning on versioning or
// checking object lock) as the configuration asks. ctx bounds these start-up
// requests. An unreachable endpoint fails with ErrUnavailable naming it.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, opErr("open", "", err)
	}
	sse, _ := parseSSE(cfg.SSE)
	tr, err := minio.DefaultTransport(cfg.UseTLS)
	if err != nil {
		return nil, opErr("open", "", fmt.Errorf("s3: transport: %w", err))
	}
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	retries := cfg.MaxRetries
	if retries == 0 {
		retries = defaultMaxRetries
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       cfg.UseTLS,
		Transport:    tr,
		Region:       cmp.Or(cfg.Region, defaultRegion),
		BucketLookup: lookup,
		// Required by minio-go to send x-amz-checksum-* headers at all.
		TrailingHeaders: true,
		MaxRetries:      retries,
	})
	if err != nil {
		return nil, opErr("open", "", fmt.Errorf("s3: endpoint %q: %w", cfg.Endpoint, err))
	}
	s := &S3{
		client:   client,
		bucket:   cfg.Bucket,
		prefix:   cfg.Prefix,
		endpoint: client.EndpointURL().String(),
		sse:      sse,
		partSize: cfg.PartSize,
	}
	if s.partSize == 0 {
		s.partSize = defaultPartSize
	}
	if err := s.setup(ctx, cfg); err != nil {
		return nil, opErr("open", "", err)
	}
	return s, nil
}

func (s *S3) setup(ctx context.Context, cfg S3Config) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s.mapErr(ctx, fmt.Errorf("bucket %q: %w", s.bucket, err))
	}
	created := false
	if !exists {
		if !cfg.CreateBucket {
			return fmt.Errorf("bucket %q does not exist at %s: create it, or set create_bucket", s.bucket, s.endpoint)
		}
		err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: cmp.Or(cfg.Region, defaultRegion), ObjectLocking: cfg.ObjectLock})
		if code := minio.ToErrorResponse(err).Code; err != nil && code != "BucketAlreadyOwnedByYou" {
			return s.mapErr(ctx, fmt.Errorf("create bucket %q: %w", s.bucket, err))
		}
		created = err == nil
	}
	if cfg.ObjectLock && !created {
		status, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.bucket)
		if err != nil && minio.ToErrorResponse(err).Code != "ObjectLockConfigurationNotFoundError" {
			return s.mapErr(ctx, fmt.Errorf("bucket %q: object lock configuration: %w", s.bucket, err))
		}
		if status != "Enabled" {
			return fmt.Errorf("bucket %q at %s has no object lock, and S3 can only enable it when a bucket is created: use a new bucket (with create_bucket) or turn object_lock off", s.bucket, s.endpoint)
		}
	}
	if cfg.Versioning && !cfg.ObjectLock {
		vc, err := s.client.GetBucketVersioning(ctx, s.bucket)
		if err != nil {
			return s.mapErr(ctx, fmt.Errorf("bucket %q: versioning: %w", s.bucket, err))
		}
		if vc.Status != "Enabled" {
			if err := s.client.EnableVersioning(ctx, s.bucket); err != nil {
				return s.mapErr(ctx, fmt.Errorf("bucket %q: enable versioning: %w", s.bucket, err))
			}
		}
	}
	return nil
}

// Bucket returns the bucket's name.
func (s *S3) Bucket() string { return s.bucket }

// Put stores an object; see Putter.
//
// IfAbsent uses a conditional write (If-None-Match: *), which AWS S3,
// MinIO and versitygw evaluate atomically on the server; such puts go in a
// single PUT of at most 5 GiB, because minio-go does not carry the condition
// to CompleteMultipartUpload. A server that ignored the header would
// overwrite: for those, a Stat before the put is the only check available and
// it is racy (two writers can both see the key missing and both write), so
// this store does not offer it as a fallback. In a versioned bucket, whether
// a key whose latest version is a delete marker counts as present depends on
// the server (versitygw 1.8.0: present, ErrExists); after DeleteAll it is
// absent everywhere.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error) {
	info, err := s.put(ctx, key, r, size, opts)
	return info, opErr("put", key, err)
}

func (s *S3) put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error) {
	want, err := checkPut(ctx, key, size, opts)
	if err != nil {
		return ObjectInfo{}, err
	}
	body, size, sum, cleanup, err := prepareBody(ctx, r, size, want)
	if err != nil {
		return ObjectInfo{}, err
	}
	defer cleanup()

	md := make(map[string]string, len(opts.Metadata)+2)
	for k, v := range opts.Metadata {
		// The full header name keeps minio-go from reading a user key as a
		// standard header.
		md["x-amz-meta-"+k] = v
	}
	md["x-amz-meta-"+metaSHA256] = sum
	po := minio.PutObjectOptions{
		ContentType:          cmp.Or(opts.ContentType, defaultContentType),
		UserMetadata:         md,
		ServerSideEncryption: s.sse,
		PartSize:             s.partSize,
	}
	// minio-go v7.4.1 drops If-None-Match from CompleteMultipartUpload
	// (completeUploadOpts keeps only encryption and checksum options), so a
	// multipart upload cannot be create-only: those go in one PUT, which S3
	// accepts up to 5 GiB.
	if opts.IfAbsent && size > maxSinglePut {
		return ObjectInfo{}, fmt.Errorf("create-only puts are limited to %d bytes (one PUT), this one has %d", int64(maxSinglePut), size)
	}
	if uint64(size) <= s.partSize || opts.IfAbsent {
		po.DisableMultipart = true
		raw, _ := hex.DecodeString(sum)
		po.UserMetadata["x-amz-checksum-sha256"] = base64.StdEncoding.EncodeToString(raw)
	} else {
		// Per-part SHA-256 checksums in trailers. Unsigned payload: versitygw
		// 1.8.0 rejects minio-go's signed-chunk trailers with BadDigest,
		// and the checksums protect the content either way.
		po.Checksum = minio.ChecksumSHA256
		po.DisableContentSha256 = true
	}
	if opts.IfAbsent {
		po.SetMatchETagExcept("*")
	}
	ui, err := s.client.PutObject(ctx, s.bucket, s.prefix+key, body, size, po)
	if err != nil {
		err = s.mapErr(ctx, err)
		if errors.Is(err, ErrUnavailable) && opts.IfAbsent && ctx.Err() == nil {
			// A server that refuses a create-only put early may answer 412
			// and close the connection while the body is still going up; the
			// client then sees a reset, not the answer. If the key exists
			// now, say so (the caller compares SHA256: it may be our own
			// upload whose answer was lost).
			if existing, serr := s.stat(ctx, key); serr == nil {
				return existing, fmt.Errorf("%w (the put failed: %v)", ErrExists, err)
			}
		}
		if errors.Is(err, ErrExists) {
			if existing, serr := s.stat(ctx, key); serr == nil {
				return existing, err
			}
		}
		return ObjectInfo{}, err
	}
	info := ObjectInfo{
		Key:         key,
		Size:        size,
		SHA256:      sum,
		ContentType: po.ContentType,
		ModTime:     time.Now(),
		VersionID:   ui.VersionID,
	}
	if len(opts.Metadata) > 0 {
		info.Metadata = make(map[string]string, len(opts.Metadata))
		for k, v := range opts.Metadata {
			info.Metadata[k] = v
		}
	}
	return info, nil
}

// prepareBody returns a reader for the upload with its size and hex SHA-256,
// which S3 needs in the request headers, before the body. A known hash lets
// the input stream straight through; a seekable input is hashed in a first
// pass; anything else is spooled (memory up to spoolMemBytes, then a temp
// file). Either way the body is verified again as it goes up, so a source
// that changes between the passes fails the put.
func prepareBody(ctx context.Context, r io.Reader, size int64, want string) (body io.Reader, n int64, sum string, cleanup func(), err error) {
	cleanup = func() {}
	if want != "" && size >= 0 {
		return newPutReader(ctx, r, size, want), size, want, cleanup, nil
	}
	if rs, ok := r.(io.ReadSeeker); ok {
		start, err := rs.Seek(0, io.SeekCurrent)
		if err == nil {
			pr := newPutReader(ctx, rs, size, want)
			if _, err := io.Copy(io.Discard, pr); err != nil {
				return nil, 0, "", cleanup, err
			}
			if _, err := rs.Seek(start, io.SeekStart); err != nil {
				return nil, 0, "", cleanup, err
			}
			sum := pr.sum()
			return newPutReader(ctx, rs, pr.n, sum), pr.n, sum, cleanup, nil
		}
	}
	pr := newPutReader(ctx, r, size, want)
	if size >= 0 && size <= spoolMemBytes {
		buf := bytes.NewBuffer(make([]byte, 0, size))
		if _, err := io.Copy(buf, pr); err != nil {
			return nil, 0, "", cleanup, err
		}
		return bytes.NewReader(buf.Bytes()), pr.n, pr.sum(), cleanup, nil
	}
	f, err := os.CreateTemp("", "earshot-s3-put-*")
	if err != nil {
		return nil, 0, "", cleanup, fmt.Errorf("spool for hashing: %w", err)
	}
	cleanup = func() {
		f.Close()
		os.Remove(f.Name())
	}
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, pr, make([]byte, copyBufBytes)); err != nil {
		cleanup()
		return nil, 0, "", func() {}, fmt.Errorf("spool for hashing: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, 0, "", func() {}, err
	}
	sum = pr.sum()
	return newPutReader(ctx, f, pr.n, sum), pr.n, sum, cleanup, nil
}

// Get opens an object; see Getter.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, ObjectInfo{}, opErr("get", key, err)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, ObjectInfo{}, opErr("get", key, s.mapErr(ctx, err))
	}
	oi, err := obj.Stat() // sends the GET and waits for its headers
	if err != nil {
		obj.Close()
		return nil, ObjectInfo{}, opErr("get", key, s.mapErr(ctx, err))
	}
	info := s.info(key, oi)
	wrap := func(err error) error { return s.mapErr(ctx, err) }
	return newVerifyReader(ctx, obj, key, info.Size, info.SHA256, wrap), info, nil
}

// Stat describes an object; see Stater.
func (s *S3) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, opErr("stat", key, err)
	}
	info, err := s.stat(ctx, key)
	return info, opErr("stat", key, err)
}

func (s *S3) stat(ctx context.Context, key string) (ObjectInfo, error) {
	oi, err := s.client.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, s.mapErr(ctx, err)
	}
	return s.info(key, oi), nil
}

// StatVersion describes one version; see VersionStater.
func (s *S3) StatVersion(ctx context.Context, key, versionID string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, opErr("stat-version", key, err)
	}
	if versionID == "" {
		return ObjectInfo{}, opErr("stat-version", key, errors.New("empty version id (use Stat for the latest)"))
	}
	if versionID == NullVersion {
		// The only version of an object in a bucket without versioning:
		// not every S3 server takes "null" as a version ID.
		versionID = ""
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{VersionID: versionID})
	if err != nil {
		return ObjectInfo{}, opErr("stat-version", key, s.mapErr(ctx, err))
	}
	info := s.info(key, oi)
	info.VersionID = cmp.Or(info.VersionID, NullVersion)
	return info, nil
}

// info converts minio-go's description of an object.
func (s *S3) info(key string, oi minio.ObjectInfo) ObjectInfo {
	info := ObjectInfo{
		Key:         key,
		Size:        oi.Size,
		ContentType: cmp.Or(oi.ContentType, defaultContentType),
		ModTime:     oi.LastModified,
		VersionID:   oi.VersionID,
	}
	for k, v := range oi.UserMetadata {
		k = strings.ToLower(k)
		if k == metaSHA256 {
			info.SHA256 = strings.ToLower(v)
			continue
		}
		if info.Metadata == nil {
			info.Metadata = map[string]string{}
		}
		info.Metadata[k] = v
	}
	return info
}

// List lists objects; see Lister.
func (s *S3) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		if !startList(ctx, "list", prefix, yield) {
			return
		}
		// minio-go lists in a goroutine until its context ends: end it when
		// the caller stops early.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for oi := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
			if oi.Err != nil {
				yield(ObjectInfo{}, opErr("list", prefix, s.mapErr(ctx, oi.Err)))
				return
			}
			key, ok := strings.CutPrefix(oi.Key, s.prefix)
			if !ok {
				continue
			}
			if !yield(ObjectInfo{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil) {
				return
			}
		}
	}
}

// Delete removes an object; see Deleter.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return opErr("delete", key, err)
	}
	err := s.client.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{})
	return opErr("delete", key, s.notFoundOK(ctx, err))
}

// ListVersions lists object versions and delete markers; see VersionLister.
func (s *S3) ListVersions(ctx context.Context, prefix string) iter.Seq2[Version, error] {
	return func(yield func(Version, error) bool) {
		if !startList(ctx, "list-versions", prefix, yield) {
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for oi := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true, WithVersions: true}) {
			if oi.Err != nil {
				yield(Version{}, opErr("list-versions", prefix, s.mapErr(ctx, oi.Err)))
				return
			}
			key, ok := strings.CutPrefix(oi.Key, s.prefix)
			if !ok {
				continue
			}
			v := Version{
				ObjectInfo:   ObjectInfo{Key: key, Size: oi.Size, ModTime: oi.LastModified, VersionID: cmp.Or(oi.VersionID, NullVersion)},
				IsLatest:     oi.IsLatest,
				DeleteMarker: oi.IsDeleteMarker,
			}
			if !yield(v, nil) {
				return
			}
		}
	}
}

// DeleteVersion removes one version for good; see VersionDeleter.
func (s *S3) DeleteVersion(ctx context.Context, key, versionID string) error {
	if err := ValidateKey(key); err != nil {
		return opErr("delete-version", key, err)
	}
	if versionID == "" {
		return opErr("delete-version", key, errors.New("empty version id (use Delete for the latest)"))
	}
	err := s.client.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{VersionID: versionID})
	return opErr("delete-version", key, s.notFoundOK(ctx, err))
}

// SetLegalHold sets (on) or clears the S3 object-lock legal hold of one
// version of key (versionID "" is the latest). While a hold is on, the
// version cannot be deleted (ErrLocked). The bucket must have object lock.
func (s *S3) SetLegalHold(ctx context.Context, key, versionID string, on bool) error {
	if err := ValidateKey(key); err != nil {
		return opErr("legal-hold", key, err)
	}
	st := minio.LegalHoldDisabled
	if on {
		st = minio.LegalHoldEnabled
	}
	err := s.client.PutObjectLegalHold(ctx, s.bucket, s.prefix+key, minio.PutObjectLegalHoldOptions{VersionID: versionID, Status: &st})
	return opErr("legal-hold", key, s.mapErr(ctx, err))
}

// DeleteAll removes every version and delete marker of key; see Eraser.
func (s *S3) DeleteAll(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return opErr("delete-all", key, err)
	}
	var errs []error
	for v, err := range s.ListVersions(ctx, key) {
		if err != nil {
			return opErr("delete-all", key, errors.Unwrap(err))
		}
		if v.Key != key {
			continue // same prefix, other key
		}
		err := s.client.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{VersionID: v.VersionID})
		if err = s.notFoundOK(ctx, err); err != nil {
			errs = append(errs, fmt.Errorf("version %s: %w", v.VersionID, err))
		}
	}
	return opErr("delete-all", key, errors.Join(errs...))
}

func (s *S3) notFoundOK(ctx context.Context, err error) error {
	err = s.mapErr(ctx, err)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// mapErr turns minio-go errors into the package's sentinels, keeping the
// server's message.
func (s *S3) mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			return err
		}
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	if errors.Is(err, ErrChecksum) { // from our own readers, inside minio-go's
		return err
	}
	var resp minio.ErrorResponse
	errors.As(err, &resp)
	switch resp.Code {
	case "":
	case "NoSuchKey", "NoSuchVersion":
		return fmt.Errorf("%w (%w)", ErrNotFound, err)
	case "NoSuchBucket":
		return fmt.Errorf("bucket %q does not exist at %s: %w", s.bucket, s.endpoint, err)
	case "PreconditionFailed":
		return fmt.Errorf("%w (%w)", ErrExists, err)
	case "BadDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch", "InvalidDigest":
		return fmt.Errorf("%w (%w)", ErrChecksum, err)
	case "AccessDenied":
		if strings.Contains(strings.ToLower(resp.Message), "object lock") {
			return fmt.Errorf("%w (%w)", ErrLocked, err)
		}
		return err
	default:
		return err
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return fmt.Errorf("%w: s3 endpoint %s: %w", ErrUnavailable, s.endpoint, err)
	}
	return err
}
