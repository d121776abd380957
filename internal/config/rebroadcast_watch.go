package config

import (
	"net/url"
	"regexp"
	"strconv"
)

// WatchStream is an outside stream the rebroadcast stage compares with the
// live rooms: an HTTP audio URL (Icecast/Shoutcast Ogg or MP3, HLS) that
// ffmpeg decodes.
type WatchStream struct {
	// Name is how alerts, logs and the index call the stream
	// ("external:<name>"); never the URL, which may carry credentials.
	Name string `yaml:"name"`
	// URL is the stream's address, http or https; it may carry a user and
	// password or a token, so it is a Secret.
	URL Secret `yaml:"url"`
}

// watchName is what a stream may be called: it appears in alerts and
// logs and must not smuggle a URL or an identity in.
var watchName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// validateWatch reports every problem of the watch list through bad.
func validateWatch(ws []WatchStream, bad func(key, format string, a ...any)) {
	seen := map[string]bool{}
	for i, w := range ws {
		key := "rebroadcast.watch[" + strconv.Itoa(i) + "]"
		if !watchName.MatchString(w.Name) {
			bad(key+".name", "%q must be 1–64 of a-z 0-9 . _ - (it names the stream in alerts instead of its URL)", w.Name)
		}
		if seen[w.Name] {
			bad(key+".name", "%q is listed twice; give each stream its own name", w.Name)
		}
		seen[w.Name] = true
		u, err := url.Parse(w.URL.Reveal())
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(key+".url", "must be an http:// or https:// URL with a host (%s)", redactedURL(w.URL))
		}
	}
}
