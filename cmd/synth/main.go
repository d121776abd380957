// Command synth renders a scripted conversation into one Ogg/Opus file per
// speaker (with cue sheets), on one shared timeline, for speaker bots.
//
//	synth -script conversation.txt -out DIR [-gap 500ms]
//
// Script lines are "speaker: text" or "speaker/voice: text" (voice is an
// espeak-ng voice such as en-us or ar); blank lines and # comments are
// ignored.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/earshot/earshot/internal/speech"
)

func main() {
	script := flag.String("script", "", "conversation script (required)")
	out := flag.String("out", "", "output folder (required)")
	gap := flag.Duration("gap", 500*time.Millisecond, "silence between turns")
	flag.Parse()
	if *script == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*script, *out, *gap); err != nil {
		fmt.Fprintln(os.Stderr, "synth:", err)
		os.Exit(1)
	}
}

func run(script, out string, gap time.Duration) error {
	lines, err := parse(script)
	if err != nil {
		return err
	}
	tools, err := speech.LookupTools()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	clips, err := tools.Conversation(ctx, lines, int(gap/time.Millisecond), out)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(clips))
	for n := range clips {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := clips[n]
		fmt.Printf("%s\t%s\t%.1fs\n", n, c.Path, float64(c.Samples)/speech.SampleRate)
	}
	return nil
}

func parse(path string) ([]speech.Line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []speech.Line
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		who, text, ok := strings.Cut(s, ":")
		if !ok || strings.TrimSpace(text) == "" {
			return nil, fmt.Errorf("%s:%d: want \"speaker: text\"", path, n)
		}
		speaker, voice, _ := strings.Cut(strings.TrimSpace(who), "/")
		lines = append(lines, speech.Line{Speaker: speaker, Voice: voice, Text: strings.TrimSpace(text)})
	}
	return lines, sc.Err()
}
