package ingest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	kit "github.com/earshot/earshot/internal/e2e"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/earshot/earshot/internal/speech"
)

// needle is one encoding of a canary.
type needle struct {
	canary, enc string
	b           []byte
	fold        bool // match case-insensitively
}

// canaryScanner looks for planted identities in every encoding that could
// carry them out of ingest.
type canaryScanner struct{ needles []needle }

// newCanaryScanner derives the needles: the canary raw, in hex, in
// base64 (standard and URL alphabets, padded or not, at each of the three
// alignments it can have inside a longer encoded value) and URL-encoded;
// numeric canaries also as a hexadecimal number and as big- and
// little-endian binary.
func newCanaryScanner(canaries ...string) *canaryScanner {
	c := &canaryScanner{}
	add := func(canary, enc string, b []byte, fold bool) {
		if len(b) >= 5 {
			c.needles = append(c.needles, needle{canary: canary, enc: enc, b: b, fold: fold})
		}
	}
	for _, s := range canaries {
		raw := []byte(s)
		add(s, "raw", raw, true)
		add(s, "hex", []byte(hex.EncodeToString(raw)), true)
		for _, e := range []struct {
			name string
			enc  *base64.Encoding
		}{{"base64", base64.RawStdEncoding}, {"base64url", base64.RawURLEncoding}} {
			for k := range 3 {
				enc := e.enc.EncodeToString(append(make([]byte, k), raw...))
				from, to := (8*k+5)/6, 8*(k+len(raw))/6
				add(s, fmt.Sprintf("%s@%d", e.name, k), []byte(enc[from:to]), false)
			}
		}
		if q := url.QueryEscape(s); q != s {
			add(s, "url-query", []byte(q), true)
		}
		if p := url.PathEscape(s); p != s {
			add(s, "url-path", []byte(p), true)
		}
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			add(s, "hex-number", []byte(strconv.FormatUint(n, 16)), true)
			var be, le [8]byte
			binary.BigEndian.PutUint64(be[:], n)
			binary.LittleEndian.PutUint64(le[:], n)
			add(s, "binary-be", bytes.TrimLeft(be[:], "\x00"), false)
			add(s, "binary-le", bytes.TrimRight(le[:], "\x00"), false)
		}
	}
	return c
}

// find returns the first needle found in data.
func (c *canaryScanner) find(data []byte) (needle, bool) {
	lower := bytes.ToLower(data)
	for _, n := range c.needles {
		if n.fold && bytes.Contains(lower, bytes.ToLower(n.b)) || !n.fold && bytes.Contains(data, n.b) {
			return n, true
		}
	}
	return needle{}, false
}

// check reports a canary found in data, naming where.
func (c *canaryScanner) check(t testing.TB, where string, data []byte) {
	t.Helper()
	if n, ok := c.find(data); ok {
		t.Errorf("canary %q leaked (%s) in %s", n.canary, n.enc, where)
	}
}

// TestCanaryScannerFindsEncodings keeps the scanner honest: each encoding
// of a canary, embedded in other bytes at any alignment, is found.
func TestCanaryScannerFindsEncodings(t *testing.T) {
	const display, feed = "canary-0123456789abcdef", "482913650177"
	sc := newCanaryScanner(display, feed)
	n, _ := strconv.ParseUint(feed, 10, 64)
	var be [8]byte
	binary.BigEndian.PutUint64(be[:], n)
	for _, pre := range []string{"", "x", "xy", "xyz"} {
		for name, data := range map[string]string{
			"raw":          "{\"display\":\"" + display + "\"}",
			"upper":        "ID=" + feed,
			"hex":          pre + hex.EncodeToString([]byte(pre+display)),
			"HEX":          fmt.Sprintf("%X", pre+feed),
			"base64":       base64.StdEncoding.EncodeToString([]byte(pre + display + "!")),
			"base64url":    base64.URLEncoding.EncodeToString([]byte(pre + "\xff\xfe" + feed)),
			"query":        url.QueryEscape(pre + "canary " + display),
			"hex-number":   "0x" + strconv.FormatUint(n, 16),
			"binary":       pre + string(be[:]),
			"display name": "speaker " + display + " joined",
		} {
			if _, ok := sc.find([]byte(data)); !ok {
				t.Errorf("%s (prefix %q): %q not found", name, pre, data)
			}
		}
	}
	for _, clean := range []string{"", "canary-", "p1_abcdefghijklmnopqrstuvwxyz234567", "482913", "{\"feed\":482913650178}"} {
		if nd, ok := sc.find([]byte(clean)); ok {
			t.Errorf("%q: false positive %s", clean, nd.enc)
		}
	}
}

// TestE2ECanaryIdentities plants high-entropy participant IDs and display
// names and looks for them everywhere the stage writes outside ingest:
// its logs, every Kafka record (keys, headers, values), the object store
// (keys, metadata, bytes, so Ogg tags too), the spool folder and /metrics.
// Both identity fields are covered.
func TestE2ECanaryIdentities(t *testing.T) {
	for _, field := range []string{"display", "feed_id"} {
		t.Run(field, func(t *testing.T) { canaryRun(t, field) })
	}
}

func canaryRun(t testing.TB, field string) {
	const room = 1237
	h := newE2E(t, e2eConfig{room: room, identity: field, embedded: true, segment: 4 * time.Second, holdUploads: true})
	tools := speechTools(t)
	clips := synthesize(t, tools, t.TempDir(), map[string][]speech.Item{
		"x": speakerScript("en-us", 2, 2),
		"y": speakerScript("en-gb", 6, 2),
	})
	var speakers []*speaker
	var canaries []string
	for _, name := range []string{"x", "y"} {
		sp := &speaker{name: name, display: "canary-" + kit.RandHex(8), feed: randomFeedID(), clip: clips[name], leadIn: 2 * time.Second}
		speakers = append(speakers, sp)
		canaries = append(canaries, sp.display, strconv.FormatUint(sp.feed, 10))
	}
	sc := newCanaryScanner(canaries...)

	// The spool is scanned while the stage runs (segments being written)
	// and, since uploads are held, once more when it holds every segment.
	// Every segment rests there sealed under its speaker's data key (the
	// bytes reaching the bucket intact is collect's check below).
	spoolFiles, sealedSegments := 0, 0
	scanSpool := func() {
		_ = filepath.WalkDir(h.spDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // gone meanwhile
			}
			sc.check(t, "spool path "+path, []byte(path))
			if d.Type().IsRegular() {
				if b, err := os.ReadFile(path); err == nil {
					sc.check(t, "spool file "+path, b)
					spoolFiles++
					if d.Name() == "segment.ogg" && len(b) > 0 {
						sealedSegments++
						if looksLikeOgg(b) {
							t.Errorf("spool file %s holds Ogg/Opus in the clear", path)
						}
					}
				}
			}
			return nil
		})
	}
	stopScan := make(chan struct{})
	var scanWG sync.WaitGroup
	scanWG.Go(func() {
		for {
			select {
			case <-stopScan:
				return
			case <-time.After(200 * time.Millisecond):
				scanSpool()
			}
		}
	})

	h.talk(speakers, 2*time.Minute)
	close(stopScan)
	scanWG.Wait()
	spooled := 0
	h.stop(func() {
		spooled = h.spool.Usage().Entries
		scanSpool()
	})
	if spooled == 0 || sealedSegments == 0 {
		t.Errorf("the spool held %d segments when the stage stopped, %d segment file reads: nothing was scanned there", spooled, sealedSegments)
	}

	// The identities did reach ingest: each speaker's pseudonym recorded.
	rec := h.collect(tools)
	checkChunks(t, rec, noLiveFaults)
	for _, sp := range speakers {
		if tr := speakerTracks(rec, h.pseud.Person(sp.identity(field))); len(tr) != 1 || len(tr[0].segs) == 0 {
			t.Errorf("speaker %s: %d tracks under the pseudonym of its %s", sp.name, len(tr), field)
		}
		// And the scanner finds them where they are meant to be.
		if _, ok := sc.find(sp.plog.Bytes()); !ok {
			t.Errorf("speaker %s: the scanner does not find the canaries in the bot's own publish log", sp.name)
		}
	}

	// Logs.
	logs := h.logs.Bytes()
	if !bytes.Contains(logs, []byte("track recording")) {
		t.Error("the stage's log has no track line: was the logger wired?")
	}
	sc.check(t, "the stage's log", logs)

	// Every Kafka record the run produced.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	parts, err := partitions(ctx, h.brokers, "")
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for topic := range parts {
		recs, err := kit.ReadTopic(ctx, h.brokers, topic, nil)
		if err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		for _, r := range recs {
			where := fmt.Sprintf("kafka %s/%d@%d", r.Topic, r.Partition, r.Offset)
			sc.check(t, where+" key", r.Key)
			sc.check(t, where+" value", r.Value)
			for _, hd := range r.Headers {
				sc.check(t, where+" header "+hd.Key, append([]byte(hd.Key+"="), hd.Value...))
			}
			records++
		}
	}
	if records < rec.segEvents+len(rec.chunks) || len(rec.chunks) == 0 {
		t.Errorf("read %d Kafka records; %d segment and %d chunk events at least were expected", records, rec.segEvents, len(rec.chunks))
	}

	// The object store: keys, metadata, content, i.e. Ogg tags and the
	// session manifests too.
	if len(rec.objects) == 0 || len(rec.manifests) == 0 {
		t.Errorf("%d objects stored, %d of them session manifests; want segments and manifests", len(rec.objects), len(rec.manifests))
	}
	for key, obj := range rec.objects {
		sc.check(t, "object key", []byte(key))
		for k, v := range obj.Metadata {
			sc.check(t, "metadata of "+key, []byte(k+"="+v))
		}
		sc.check(t, "content type of "+key, []byte(obj.ContentType))
		sc.check(t, "object "+key, obj.Data)
		if rec.manifests[key] == nil && !bytes.Contains(obj.Data, []byte("OpusTags")) {
			t.Errorf("%s has no OpusTags", key)
		}
	}

	// /metrics, as served.
	srv := httptest.NewServer(promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(metrics, []byte("earshot_ingest_segments_total")) || !bytes.Contains(metrics, []byte("earshot_spool_uploaded_total")) {
		t.Errorf("/metrics lacks the stage's or the uploader's metrics:\n%s", metrics)
	}
	sc.check(t, "/metrics", metrics)

	t.Logf("scanned: %d log bytes, %d Kafka records, %d objects, %d spool file reads (%d entries at stop), %d metrics bytes; %d needles",
		len(logs), records, len(rec.objects), spoolFiles, spooled, len(metrics), len(sc.needles))
}
