package storage

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/earshot/earshot/internal/fsync"
)

// Local is the embedded object store: a directory on a local file system.
//
// Layout under the root directory:
//
//	objects/<seg>/.../<last seg>%obj/data   the content, byte for byte
//	objects/<seg>/.../<last seg>%obj/meta   JSON: size, sha256, content type, metadata
//	tmp/                                    puts and deletes in progress
//
// Each object is a directory holding its content and its metadata, so that
// one rename publishes (or removes) both at once. Segments are stored with
// '%' escaped as "%25"; the "%obj" suffix therefore never occurs in a
// directory that stands for a key prefix, and the key "a" (a%obj/) can
// coexist with "a/b" (a/b%obj/) as it can in S3.
//
// A put writes data and meta into a fresh directory under tmp/, fsyncs them
// and the directory, renames it into place (create-only puts use
// RENAME_NOREPLACE, overwrites RENAME_EXCHANGE) and fsyncs the parent, so
// after a crash a key holds either its old object or its new one, complete.
// The local store keeps no versions.
type Local struct {
	root    string
	objects string
	tmp     string
}

var _ Store = (*Local)(nil)

const (
	objSuffix = "%obj"
	dataFile  = "data"
	metaFile  = "meta"
	// staleTemp is the age after which OpenLocal removes leftovers of puts
	// and deletes that a crash interrupted. It is far longer than any put,
	// so another process's put in progress is never removed.
	staleTemp = time.Hour
	// maxNameBytes is the file-name limit of common Linux file systems.
	maxNameBytes = 255
	copyBufBytes = 256 << 10
	// maxRaceRetries bounds how often an operation starts again after a
	// concurrent put or delete changed the tree under it.
	maxRaceRetries = 100
)

var errNoExchange = errors.New("rename exchange not supported")

// OpenLocal opens (creating if needed) a local store rooted at dir and
// removes leftovers of interrupted puts older than an hour.
func OpenLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, opErr("open", "", errors.New("local store: empty directory path"))
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, opErr("open", "", fmt.Errorf("local store %s: %w", dir, err))
	}
	l := &Local{root: root, objects: filepath.Join(root, "objects"), tmp: filepath.Join(root, "tmp")}
	for _, d := range []string{l.objects, l.tmp} {
		if err := fsync.MkdirAll(d); err != nil {
			return nil, opErr("open", "", l.fsErr(err))
		}
	}
	l.sweep()
	return l, nil
}

// Dir returns the store's root directory.
func (l *Local) Dir() string { return l.root }

// DataPath returns the file that holds key's content, for tools that want
// to open it directly (e.g. to play a segment). The file must not be
// modified; it exists only while the object does.
func (l *Local) DataPath(key string) (string, error) {
	p, err := l.objPath(key)
	if err != nil {
		return "", opErr("path", key, err)
	}
	return filepath.Join(p, dataFile), nil
}

func (l *Local) sweep() {
	entries, err := os.ReadDir(l.tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			_ = os.RemoveAll(filepath.Join(l.tmp, e.Name()))
		}
	}
}

// localMeta is the content of an object's meta file.
type localMeta struct {
	Format      int               `json:"format"`
	Size        int64             `json:"size"`
	SHA256      string            `json:"sha256"`
	ContentType string            `json:"content_type"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// Put stores an object; see Putter.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error) {
	info, err := l.put(ctx, key, r, size, opts)
	return info, opErr("put", key, err)
}

func (l *Local) put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error) {
	want, err := checkPut(ctx, key, size, opts)
	if err != nil {
		return ObjectInfo{}, err
	}
	final, err := l.objPath(key)
	if err != nil {
		return ObjectInfo{}, err
	}

	tmpDir, err := os.MkdirTemp(l.tmp, "put-")
	if err != nil {
		return ObjectInfo{}, l.fsErr(err)
	}
	// Whatever ends up at tmpDir (the unfinished object, or the old one after
	// an exchange) goes; after a plain rename there is nothing left there.
	defer os.RemoveAll(tmpDir)

	pr := newPutReader(ctx, r, size, want)
	if err := fsync.WriteFile(filepath.Join(tmpDir, dataFile), func(w io.Writer) error {
		_, err := io.CopyBuffer(w, pr, make([]byte, copyBufBytes))
		return err
	}); err != nil {
		return ObjectInfo{}, l.fsErr(err)
	}
	m := localMeta{Format: 1, Size: pr.n, SHA256: pr.sum(), ContentType: cmp.Or(opts.ContentType, defaultContentType)}
	if len(opts.Metadata) > 0 {
		m.Metadata = maps.Clone(opts.Metadata)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := fsync.WriteFile(filepath.Join(tmpDir, metaFile), func(w io.Writer) error {
		_, err := w.Write(mb)
		return err
	}); err != nil {
		return ObjectInfo{}, l.fsErr(err)
	}
	if err := fsync.Dir(tmpDir); err != nil {
		return ObjectInfo{}, l.fsErr(err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}

	parent := filepath.Dir(final)
	if err := l.commit(tmpDir, final, opts.IfAbsent); err != nil {
		if errors.Is(err, ErrExists) {
			existing, serr := l.stat(key, final)
			if serr != nil {
				return ObjectInfo{}, err
			}
			return existing, err
		}
		return ObjectInfo{}, l.fsErr(err)
	}
	if err := fsync.Dir(parent); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ObjectInfo{}, l.fsErr(err)
	}
	fi, err := os.Stat(filepath.Join(final, dataFile))
	if err != nil {
		// Replaced or deleted by someone else already: report what we wrote.
		return m.info(key, time.Now()), nil
	}
	return m.info(key, fi.ModTime()), nil
}

// commit moves the finished object directory tmpDir to final.
func (l *Local) commit(tmpDir, final string, ifAbsent bool) error {
	// A concurrent Delete may prune the parent directories between our
	// mkdir and our rename; then we create them again.
	for range maxRaceRetries {
		if err := fsync.MkdirAll(filepath.Dir(final)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		err := renameNoReplace(tmpDir, final)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, fs.ErrNotExist):
			continue
		case !errors.Is(err, fs.ErrExist):
			return err
		case ifAbsent:
			return ErrExists
		}
		err = renameExchange(tmpDir, final)
		if errors.Is(err, errNoExchange) {
			// Two renames: readers may briefly see the key missing.
			var old string
			if old, err = os.MkdirTemp(l.tmp, "old-"); err != nil {
				return err
			}
			if err = os.Rename(final, filepath.Join(old, "o")); err == nil {
				err = renameNoReplace(tmpDir, final)
			}
			_ = os.RemoveAll(old)
			if err == nil || !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
				return err
			}
			continue
		}
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return err // on success tmpDir now holds the old object
		}
		// The old object was deleted meanwhile: try again as a create.
	}
	return fmt.Errorf("lost the race against concurrent deletes %d times", maxRaceRetries)
}

// Get opens an object; see Getter.
func (l *Local) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	rc, info, err := l.get(ctx, key)
	return rc, info, opErr("get", key, err)
}

func (l *Local) get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	final, err := l.objPath(key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, ObjectInfo{}, err
	}
	var (
		m localMeta
		f *os.File
	)
	err = retryReplaced(final, func(root *os.Root) error {
		var err error
		if m, err = readMeta(root); err != nil {
			return err
		}
		f, err = root.Open(dataFile)
		return err
	})
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, ObjectInfo{}, err
	}
	if fi.Size() != m.Size {
		f.Close()
		return nil, ObjectInfo{}, fmt.Errorf("%w: data file has %d bytes, meta records %d", ErrChecksum, fi.Size(), m.Size)
	}
	return newVerifyReader(ctx, f, key, m.Size, m.SHA256, nil), m.info(key, fi.ModTime()), nil
}

// Stat describes an object; see Stater.
func (l *Local) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	final, err := l.objPath(key)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return ObjectInfo{}, opErr("stat", key, err)
	}
	info, err := l.stat(key, final)
	return info, opErr("stat", key, err)
}

func (l *Local) stat(key, final string) (ObjectInfo, error) {
	var (
		m  localMeta
		fi fs.FileInfo
	)
	err := retryReplaced(final, func(root *os.Root) error {
		var err error
		if m, err = readMeta(root); err != nil {
			return err
		}
		fi, err = root.Stat(dataFile)
		return err
	})
	if err != nil {
		return ObjectInfo{}, err
	}
	return m.info(key, fi.ModTime()), nil
}

// retryReplaced runs open on a handle to the object directory final, so
// that the files it opens belong to one object: an overwrite swaps whole
// directories and cannot pair one put's meta with another's data. When the
// directory is swapped out and removed under open (its files vanish), it
// starts again from the path; a missing path is ErrNotFound.
func retryReplaced(final string, open func(*os.Root) error) error {
	var err error
	for range maxRaceRetries {
		var root *os.Root
		root, err = os.OpenRoot(final)
		if err != nil {
			return notFound(err)
		}
		err = open(root)
		root.Close()
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return notFound(err)
}

// Delete removes an object; see Deleter.
func (l *Local) Delete(ctx context.Context, key string) error {
	return opErr("delete", key, l.delete(ctx, key))
}

func (l *Local) delete(ctx context.Context, key string) error {
	final, err := l.objPath(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Move the object out of the tree in one step (a reader sees it or not),
	// then remove it at leisure.
	trash, err := os.MkdirTemp(l.tmp, "del-")
	if err != nil {
		return l.fsErr(err)
	}
	defer os.RemoveAll(trash)
	if err := os.Rename(final, filepath.Join(trash, "o")); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return l.fsErr(err)
	}
	parent := filepath.Dir(final)
	// A concurrent delete may have pruned the parent already; then there
	// is no entry left to make durable.
	if err := fsync.Dir(parent); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return l.fsErr(err)
	}
	// Prune directories the delete left empty; os.Remove refuses non-empty
	// ones, so a concurrent put into them is safe (it retries its mkdir).
	for d := parent; d != l.objects && strings.HasPrefix(d, l.objects); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// List lists objects; see Lister.
func (l *Local) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		if !startList(ctx, "list", prefix, yield) {
			return
		}
		dirKey, frag := "", prefix
		if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
			dirKey, frag = prefix[:i+1], prefix[i+1:]
		}
		dir := l.objects
		if dirKey != "" {
			dir = filepath.Join(dir, encodeSegments(strings.Split(strings.TrimSuffix(dirKey, "/"), "/")))
		}
		if _, err := l.walk(ctx, dir, dirKey, frag, yield); err != nil {
			yield(ObjectInfo{}, opErr("list", prefix, err))
		}
	}
}

// walk yields the objects below dir (whose keys start with keyPrefix) in
// lexical key order. Sorting each directory's entries by the key fragment
// they stand for (a segment for an object, segment + "/" for a prefix
// directory) and recursing in that order yields keys in lexical order, so
// listing needs memory for one directory per level, not for all keys.
func (l *Local) walk(ctx context.Context, dir, keyPrefix, filter string, yield func(ObjectInfo, error) bool) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return true, nil // pruned by a concurrent delete, or never there
		}
		return false, l.fsErr(err)
	}
	type entry struct {
		frag, name string
		obj        bool
	}
	list := make([]entry, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			continue // not ours
		}
		name := e.Name()
		obj := strings.HasSuffix(name, objSuffix)
		seg, ok := decodeSegment(strings.TrimSuffix(name, objSuffix))
		if !ok {
			continue
		}
		frag := seg
		if !obj {
			frag += "/"
		}
		if strings.HasPrefix(frag, filter) {
			list = append(list, entry{frag: frag, name: name, obj: obj})
		}
	}
	slices.SortFunc(list, func(a, b entry) int { return strings.Compare(a.frag, b.frag) })
	for _, e := range list {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		path := filepath.Join(dir, e.name)
		if !e.obj {
			more, err := l.walk(ctx, path, keyPrefix+e.frag, "", yield)
			if !more || err != nil {
				return more, err
			}
			continue
		}
		fi, err := os.Stat(filepath.Join(path, dataFile))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return false, l.fsErr(err)
		}
		if !yield(ObjectInfo{Key: keyPrefix + e.frag, Size: fi.Size(), ModTime: fi.ModTime()}, nil) {
			return false, nil
		}
	}
	return true, nil
}

// ListVersions lists each object as its only version; see VersionLister.
func (l *Local) ListVersions(ctx context.Context, prefix string) iter.Seq2[Version, error] {
	return func(yield func(Version, error) bool) {
		for info, err := range l.List(ctx, prefix) {
			if err != nil {
				yield(Version{}, opErr("list-versions", prefix, errors.Unwrap(err)))
				return
			}
			info.VersionID = NullVersion
			if !yield(Version{ObjectInfo: info, IsLatest: true}, nil) {
				return
			}
		}
	}
}

// StatVersion describes the object when versionID is NullVersion (its
// only version); any other version cannot exist here. See VersionStater.
func (l *Local) StatVersion(ctx context.Context, key, versionID string) (ObjectInfo, error) {
	if versionID != NullVersion {
		if err := ValidateKey(key); err != nil {
			return ObjectInfo{}, opErr("stat-version", key, err)
		}
		return ObjectInfo{}, opErr("stat-version", key, ErrNotFound)
	}
	info, err := l.Stat(ctx, key)
	if err != nil {
		return ObjectInfo{}, opErr("stat-version", key, errors.Unwrap(err))
	}
	info.VersionID = NullVersion
	return info, nil
}

// DeleteVersion deletes the object when versionID is NullVersion (its only
// version); any other version cannot exist here, so there is nothing to do.
func (l *Local) DeleteVersion(ctx context.Context, key, versionID string) error {
	if versionID == "" {
		return opErr("delete-version", key, errors.New("empty version id (use Delete for the latest)"))
	}
	if versionID != NullVersion {
		if err := ValidateKey(key); err != nil {
			return opErr("delete-version", key, err)
		}
		return nil
	}
	return opErr("delete-version", key, l.delete(ctx, key))
}

// DeleteAll removes the object; the local store keeps no other versions.
func (l *Local) DeleteAll(ctx context.Context, key string) error {
	return opErr("delete-all", key, l.delete(ctx, key))
}

// objPath maps a key to its object directory.
func (l *Local) objPath(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	segs := strings.Split(key, "/")
	p := encodeSegments(segs)
	// Only a segment full of '%' (escaped to three bytes each) can exceed
	// the file-name limit.
	if len(filepath.Base(p))+len(objSuffix) > maxNameBytes || slices.ContainsFunc(segs, func(s string) bool { return len(encodeSegment(s)) > maxNameBytes }) {
		return "", fmt.Errorf("%w: segment too long for a local file name once '%%' is escaped", ErrInvalidKey)
	}
	return filepath.Join(l.objects, p) + objSuffix, nil
}

// fsErr makes file-system errors say which store failed, and a full disk
// say so plainly.
func (l *Local) fsErr(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("local store %s: disk full: %w", l.root, err)
	case errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("local store %s: disk quota exceeded: %w", l.root, err)
	case errors.Is(err, ErrChecksum), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	var pe *fs.PathError
	var le *os.LinkError
	if errors.As(err, &pe) || errors.As(err, &le) {
		return err // already names the file, which is under the root
	}
	return fmt.Errorf("local store %s: %w", l.root, err)
}

func (m localMeta) info(key string, mod time.Time) ObjectInfo {
	info := ObjectInfo{Key: key, Size: m.Size, SHA256: m.SHA256, ContentType: cmp.Or(m.ContentType, defaultContentType), ModTime: mod}
	if len(m.Metadata) > 0 {
		info.Metadata = maps.Clone(m.Metadata)
	}
	return info
}

func readMeta(root *os.Root) (localMeta, error) {
	f, err := root.Open(metaFile)
	if err != nil {
		return localMeta{}, err
	}
	defer f.Close()
	var m localMeta
	dec := json.NewDecoder(io.LimitReader(f, 64<<10))
	if err := dec.Decode(&m); err != nil {
		return localMeta{}, fmt.Errorf("%w: unreadable meta file: %w", ErrChecksum, err)
	}
	if m.Format != 1 {
		return localMeta{}, fmt.Errorf("meta file format %d not supported", m.Format)
	}
	return m, nil
}

// notFound maps "no such file" (and a file where a directory should be) to
// ErrNotFound, keeping the cause.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w (%w)", ErrNotFound, err)
	}
	return err
}

// encodeSegments maps key segments to a relative path of escaped names.
func encodeSegments(segs []string) string {
	enc := make([]string, len(segs))
	for i, s := range segs {
		enc[i] = encodeSegment(s)
	}
	return filepath.Join(enc...)
}

// encodeSegment escapes '%' so that the "%obj" suffix is unambiguous.
func encodeSegment(s string) string { return strings.ReplaceAll(s, "%", "%25") }

// decodeSegment reverses encodeSegment; ok is false for names it cannot
// have produced (files that are not ours).
func decodeSegment(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	if !strings.Contains(name, "%") {
		return name, true
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] != '%' {
			b.WriteByte(name[i])
			continue
		}
		if !strings.HasPrefix(name[i:], "%25") {
			return "", false
		}
		b.WriteByte('%')
		i += 2
	}
	return b.String(), true
}
