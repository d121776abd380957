package normalize

import "sort"

// View is a text form of a Doc for pattern matching with a way back to the
// Doc's tokens. Like Doc.Text it is " tok tok " with "\n " before a barrier.
type View struct {
	Text string
	// View token k is Text[pos[k]:end[k]]; first[k] and last[k] are the Doc
	// tokens it stands for.
	pos, end, first, last []int32
}

// Locate returns the Doc tokens covered by bytes [s, e) of the view's
// Text. ok is false when the range holds no token.
func (v *View) Locate(s, e int) (first, last int, ok bool) {
	a := sort.Search(len(v.pos), func(k int) bool { return int(v.end[k]) > s })
	b := sort.Search(len(v.pos), func(k int) bool { return int(v.pos[k]) >= e }) - 1
	if a >= len(v.pos) || b < a {
		return 0, 0, false
	}
	return int(v.first[a]), int(v.last[b]), true
}

// TextView returns Text as a View (one view token per Doc token).
func (d *Doc) TextView() *View {
	n := len(d.Tokens)
	v := &View{Text: d.Text, pos: make([]int32, n), end: make([]int32, n), first: make([]int32, n), last: make([]int32, n)}
	for i := range d.Tokens {
		v.pos[i] = d.Tokens[i].Pos
		v.end[i] = d.Tokens[i].Pos + d.Tokens[i].Len
		v.first[i], v.last[i] = int32(i), int32(i)
	}
	return v
}

// DigitsView returns the text with every numeric run written as one token
// of its digits ("call 2025550143 now" for "call two oh two, 555 0143
// now"), for regex rules about numbers. It is built on first use, in
// buffers the Doc reuses: do not keep it past Reset.
func (d *Doc) DigitsView() *View {
	if d.digitsView != nil {
		return d.digitsView
	}
	// Built into the Doc's own buffers, reused after Reset.
	v := &d.dv
	v.pos, v.end, v.first, v.last = v.pos[:0], v.end[:0], v.first[:0], v.last[:0]
	buf := d.dvBuf[:0]
	r := 0
	for i := 0; i < len(d.Tokens); {
		t := &d.Tokens[i]
		if t.Break && i > 0 {
			buf = append(buf, " \n"...)
		}
		buf = append(buf, ' ')
		v.pos = append(v.pos, int32(len(buf)))
		for r < len(d.Runs) && int(d.Runs[r].Groups[0].First) < i {
			r++
		}
		if r < len(d.Runs) && int(d.Runs[r].Groups[0].First) == i {
			run := &d.Runs[r]
			last := run.Groups[len(run.Groups)-1].Last
			buf = append(buf, d.DigitsOf(run, 0, len(run.Groups)-1)...)
			v.end = append(v.end, int32(len(buf)))
			v.first = append(v.first, int32(i))
			v.last = append(v.last, last)
			i = int(last) + 1
			continue
		}
		buf = append(buf, d.Norm(i)...)
		v.end = append(v.end, int32(len(buf)))
		v.first = append(v.first, int32(i))
		v.last = append(v.last, int32(i))
		i++
	}
	buf = append(buf, ' ')
	v.Text = string(buf)
	d.dvBuf = buf
	d.digitsView = v
	return v
}
