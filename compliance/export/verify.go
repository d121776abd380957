package export

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// File statuses in a verification.
const (
	FileOK       = "ok"
	FileModified = "modified" // content differs from the manifest
	FileMissing  = "missing"  // listed in the manifest, not in the bundle
	FileUnlisted = "unlisted" // in the bundle, not in the manifest
	FileBadName  = "bad name" // an unsafe or duplicate path
)

// FileResult is the verdict on one file.
type FileResult struct {
	Path   string
	Status string
}

// Result is a bundle's verification.
type Result struct {
	// Signature is true when manifest.json verifies under the trusted key.
	Signature bool
	// SignedBy is the key fingerprint the manifest claims (informational:
	// it is only trusted once Signature is true).
	SignedBy string
	// Manifest is the parsed manifest, when there is one.
	Manifest *Manifest
	Files    []FileResult
	// Problems are failures that are not about one file.
	Problems []string
}

// OK reports whether the bundle verified: good signature, every file as
// listed, nothing extra.
func (r *Result) OK() bool {
	if !r.Signature || len(r.Problems) > 0 {
		return false
	}
	for _, f := range r.Files {
		if f.Status != FileOK {
			return false
		}
	}
	return true
}

// Failed returns the files that failed.
func (r *Result) Failed() []FileResult {
	var out []FileResult
	for _, f := range r.Files {
		if f.Status != FileOK {
			out = append(out, f)
		}
	}
	return out
}

// maxIndexBytes bounds manifest.json and manifest.sig.
const maxIndexBytes = 64 << 20

// Verify reads a bundle and checks it against trusted, the public key the
// verifier trusts. It returns an error only when the bundle cannot be read
// as a tar at all; every other failure is in the Result.
func Verify(r io.Reader, trusted ed25519.PublicKey) (*Result, error) {
	res := &Result{}
	if len(trusted) != ed25519.PublicKeySize {
		return nil, errors.New("export: verify: the trusted key is not an ed25519 public key")
	}
	tr := tar.NewReader(r)
	got := map[string]string{} // path -> sha256
	var order []string
	var manifest, sig []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("export: verify: read bundle: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			if h.Typeflag != tar.TypeDir {
				res.Files = append(res.Files, FileResult{Path: h.Name, Status: FileBadName})
			}
			continue
		}
		name := h.Name
		if !safePath(name) {
			res.Files = append(res.Files, FileResult{Path: name, Status: FileBadName})
			continue
		}
		if _, dup := got[name]; dup || ((name == ManifestFile && manifest != nil) || (name == SignatureFile && sig != nil)) {
			res.Files = append(res.Files, FileResult{Path: name, Status: FileBadName})
			continue
		}
		switch name {
		case ManifestFile, SignatureFile:
			b, err := io.ReadAll(io.LimitReader(tr, maxIndexBytes+1))
			if err != nil {
				return nil, fmt.Errorf("export: verify: read %s: %w", name, err)
			}
			if len(b) > maxIndexBytes {
				res.Problems = append(res.Problems, name+" is too large")
				continue
			}
			if name == ManifestFile {
				manifest = b
			} else {
				sig = b
			}
			continue
		}
		hs := sha256.New()
		if _, err := io.Copy(hs, tr); err != nil {
			return nil, fmt.Errorf("export: verify: read %s: %w", name, err)
		}
		got[name] = hex.EncodeToString(hs.Sum(nil))
		order = append(order, name)
	}
	switch {
	case manifest == nil:
		res.Problems = append(res.Problems, ManifestFile+" is missing")
	case sig == nil:
		res.Problems = append(res.Problems, SignatureFile+" is missing")
	default:
		s, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
		res.Signature = err == nil && ed25519.Verify(trusted, manifest, s)
		if !res.Signature {
			res.Problems = append(res.Problems, "manifest.json is not signed by the trusted key (signed by another key, or the manifest or signature was altered)")
		}
	}
	listed := map[string]bool{}
	if manifest != nil {
		var m Manifest
		dec := json.NewDecoder(bytes.NewReader(manifest))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			res.Problems = append(res.Problems, "manifest.json does not parse: "+err.Error())
		} else {
			res.Manifest, res.SignedBy = &m, m.KeyID
			if m.Format != Format {
				res.Problems = append(res.Problems, fmt.Sprintf("manifest format %q is not %q", m.Format, Format))
			}
			for _, f := range m.Files {
				if listed[f.Path] {
					res.Files = append(res.Files, FileResult{Path: f.Path, Status: FileBadName})
					continue
				}
				listed[f.Path] = true
				sum, ok := got[f.Path]
				switch {
				case !ok:
					res.Files = append(res.Files, FileResult{Path: f.Path, Status: FileMissing})
				case sum != strings.ToLower(f.SHA256):
					res.Files = append(res.Files, FileResult{Path: f.Path, Status: FileModified})
				default:
					res.Files = append(res.Files, FileResult{Path: f.Path, Status: FileOK})
				}
			}
		}
	}
	for _, name := range order {
		if !listed[name] {
			res.Files = append(res.Files, FileResult{Path: name, Status: FileUnlisted})
		}
	}
	slices.SortStableFunc(res.Files, func(a, b FileResult) int { return strings.Compare(a.Path, b.Path) })
	return res, nil
}

// safePath accepts relative slash paths without "." or ".." segments.
func safePath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || path.Clean(p) != p {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." || seg == "." {
			return false
		}
	}
	return true
}
