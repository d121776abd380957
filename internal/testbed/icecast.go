package testbed

import "testing"

// IcecastEndpoint describes the test bed's Icecast server on loopback
// (testbed/icecast.sh) and the ffmpeg that feeds and reads it.
type IcecastEndpoint struct {
	URL            string // http://127.0.0.1:18100; a mount is URL + "/name.ogg"
	SourceUser     string // what a source logs in as ("source")
	SourcePassword string
	FFmpeg         string // path of the ffmpeg binary
}

// IcecastServer returns the running Icecast server's endpoint.
func IcecastServer(tb testing.TB) IcecastEndpoint {
	tb.Helper()
	return IcecastEndpoint{
		URL:            Get(tb, Icecast, "ICECAST_URL"),
		SourceUser:     Get(tb, Icecast, "ICECAST_SOURCE_USER"),
		SourcePassword: Get(tb, Icecast, "ICECAST_SOURCE_PASSWORD"),
		FFmpeg:         Get(tb, Icecast, "FFMPEG"),
	}
}
