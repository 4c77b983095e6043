package models

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseSearch: any ?q= parses to a bounded search of valid UTF-8
// tokens, or to EINVALID naming q; never a panic.
func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{"mar gon", "MRN-77", "+1 555 0100", "", "-.-", "Ñúñez", "Strauß", "\xff", "a\x00b", strings.Repeat("é", 101), "ﬁ İ ß"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		s, err := ParseSearch(q)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != EINVALID || len(e.Fields) != 1 || e.Fields[0].Field != "q" {
				t.Fatalf("%q: %v", q, err)
			}
			return
		}
		if len(s.NamePrefixes) == 0 || len(s.NamePrefixes) > MaxSearchWords {
			t.Fatalf("%q: %d prefixes", q, len(s.NamePrefixes))
		}
		for _, tok := range append(append([]string{}, s.NamePrefixes...), s.MRN, s.Phone) {
			if !utf8.ValidString(tok) || utf8.RuneCountInString(tok) > 2+maxTokenLen+maxShort || strings.ContainsRune(tok, 0) {
				t.Fatalf("%q: token %q", q, tok)
			}
		}
		// The patient of that name is found by it.
		p := &Patient{Name: q}
		toks := p.SearchTokens()
		for _, pre := range s.NamePrefixes {
			found := false
			for _, tok := range toks {
				found = found || (tok >= pre && tok < PrefixEnd(pre))
			}
			if !found && utf8.RuneCountInString(pre) <= maxTokenLen {
				t.Fatalf("%q: the name's own tokens %q miss %q", q, toks, pre)
			}
		}
	})
}

// FuzzCheckParams: any query string either passes with only known names or
// names each unknown one, bounded.
func FuzzCheckParams(f *testing.F) {
	for _, s := range []string{"name=Maria", "doctorId=x&patientId=y", "limit=5", "_=1&tenant_id=t", "%ff=1", strings.Repeat("x", 100) + "=1"} {
		f.Add(s)
	}
	r := Resources[EntityPatient]
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		err = CheckParams(v, r.KnowsParam)
		unknown := 0
		for k := range v {
			if !r.KnowsParam(k) {
				unknown++
			}
		}
		var e *Error
		switch {
		case unknown == 0 && err != nil, unknown > 0 && !errors.As(err, &e):
			t.Fatalf("%q: %v with %d unknown", raw, err, unknown)
		case unknown > 0 && (len(e.Fields) != min(unknown, 20) || e.Code != EINVALID):
			t.Fatalf("%q: %d fields for %d unknown", raw, len(e.Fields), unknown)
		}
		if e != nil {
			for _, fe := range e.Fields {
				if !utf8.ValidString(fe.Field) || utf8.RuneCountInString(fe.Field) > 65 {
					t.Fatalf("%q: field %q", raw, fe.Field)
				}
			}
		}
	})
}

// Fold is safe for concurrent use (run with -race).
func TestFoldConcurrent(t *testing.T) {
	done := make(chan string, 8)
	for range 8 {
		go func() {
			var out string
			for range 200 {
				out = Fold("María José Ñúñez Strauß")
			}
			done <- out
		}()
	}
	for range 8 {
		if got := <-done; got != "maria jose nunez strauss" {
			t.Fatalf("Fold = %q", got)
		}
	}
}
