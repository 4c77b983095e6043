package api

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/clinicpulse/clinicpulse/models"
	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// MaxBody is the largest request body accepted.
const MaxBody = 1 << 20

// ReadBody reads a request body of at most MaxBody bytes. A body with a
// Content-Encoding other than identity (gzip, br, …) is EUNSUPPORTED (415,
// RFC 9110 §15.5.16; the problem answers Accept-Encoding: identity, RFC
// 7694): read as is, its bytes would be refused as invalid JSON or, worse,
// a decompressed body would escape MaxBody.
func ReadBody(r *http.Request) ([]byte, error) {
	for _, v := range r.Header.Values("Content-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			if enc = strings.TrimSpace(enc); enc != "" && !strings.EqualFold(enc, "identity") {
				return nil, &models.Error{Code: models.EUNSUPPORTED, Message: "Content-Encoding: request bodies are read only as identity (uncompressed)",
					Fields: []models.FieldError{{Field: "Content-Encoding", Message: "must be identity or absent"}}}
			}
		}
	}
	if r.ContentLength > MaxBody {
		return nil, models.Errorf(models.ETOOLARGE, "the request body exceeds 1 MiB")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return nil, models.Errorf(models.EINVALID, "the request body could not be read")
	}
	if len(b) > MaxBody {
		return nil, models.Errorf(models.ETOOLARGE, "the request body exceeds 1 MiB")
	}
	return b, nil
}

// Decode parses a request body, which must be exactly one JSON object
// (RFC 8259), strictly into v, a pointer to a struct. Every refusal is an
// EINVALID error naming the field as a path such as lines[0].unit_price:
//
//   - text that is not UTF-8, or a \u escape that is not a Unicode scalar
//     value (a lone surrogate such as \ud800): refused, never replaced with
//     U+FFFD (RFC 8259 §8.1);
//   - a string holding U+0000 (the escape \u0000), which Postgres cannot
//     store and C-based tools truncate at;
//   - a name given twice in one object, at any depth (RFC 8259 §4 leaves its
//     meaning open; RFC 7493 §2.3 forbids it);
//   - a name that is not exactly one of v's JSON field names: names match
//     case-sensitively, so "Name" is unknown beside "name";
//   - a value of the wrong JSON type, an integer with a fraction or out of
//     int64's range, a time that is not RFC 3339;
//   - anything after the object.
//
// It uses github.com/go-json-experiment/json (encoding/json/v2), whose
// defaults refuse the first, third and fourth; encoding/json (v1) accepts
// all three silently.
func Decode(body []byte, v any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return models.Errorf(models.EINVALID, "the request body must be a JSON object")
	}
	if err := json.Unmarshal(body, v, json.RejectUnknownMembers(true)); err != nil {
		return decodeError(body, err)
	}
	// Only the six bytes \u0000 can put U+0000 into a string (a raw NUL
	// byte is a syntax error), so bodies without them need no second look.
	if bytes.Contains(body, []byte(`\u0000`)) {
		return findNUL(body)
	}
	return nil
}

// findNUL reports the first string of a valid JSON text (name or value)
// that holds U+0000.
func findNUL(body []byte) error {
	d := jsontext.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.ReadToken()
		if err != nil {
			return nil // io.EOF: none (the text was validated by Unmarshal)
		}
		if tok.Kind() == '"' && strings.IndexByte(tok.String(), 0) >= 0 {
			// After reading a name, the stack pointer names it; after
			// reading a value, the member or element holding it.
			return models.Invalid(fieldPath(d.StackPointer(), false), "must not contain U+0000 (NUL)")
		}
	}
}

func decodeError(body []byte, err error) error {
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.As(err, &syn):
		msg := syn.Err.Error()
		switch {
		case errors.Is(syn.Err, jsontext.ErrDuplicateName):
			return models.Invalid(fieldPath(syn.JSONPointer, true), "is given more than once")
		case strings.Contains(msg, "UTF-8"), strings.Contains(msg, "surrogate"), strings.Contains(msg, "escape sequence"):
			return models.Invalid(fieldPath(syn.JSONPointer, false), "must be valid UTF-8 text (no invalid bytes or lone \\u surrogate escapes)")
		case errors.Is(syn.Err, io.ErrUnexpectedEOF):
			return models.Errorf(models.EINVALID, "malformed JSON: unexpected end of input")
		case strings.Contains(msg, "after top-level value"):
			return models.Errorf(models.EINVALID, "the request body must hold exactly one JSON object")
		}
		return models.Errorf(models.EINVALID, "malformed JSON at byte %d", syn.ByteOffset)
	case errors.As(err, &sem):
		if errors.Is(sem.Err, json.ErrUnknownName) {
			return models.Invalid(fieldPath(sem.JSONPointer, true), "is not a known field")
		}
		if sem.JSONPointer == "" {
			return models.Errorf(models.EINVALID, "the request body must be a JSON object")
		}
		return models.Invalid(fieldPath(sem.JSONPointer, false), "must be "+jsonKind(sem.GoType))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return models.Errorf(models.EINVALID, "malformed JSON: unexpected end of input")
	}
	return models.Errorf(models.EINVALID, "malformed JSON")
}

// maxFieldName bounds a caller's member name echoed in a problem.
const maxFieldName = 64

// fieldPath turns a JSON Pointer (RFC 6901) into the field path our
// problems use: /lines/0/unit_price → lines[0].unit_price. lastIsName says
// the last token is a member name even if it is all digits (an unknown or
// repeated name); every other all-digit token is an array index, since no
// field of ours has a numeric name. The empty pointer is "body".
func fieldPath(p jsontext.Pointer, lastIsName bool) string {
	var b strings.Builder
	var toks []string
	for t := range p.Tokens() {
		toks = append(toks, t)
	}
	for i, t := range toks {
		if isIndex(t) && !(lastIsName && i == len(toks)-1) && i > 0 {
			b.WriteString("[" + t + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if utf8.RuneCountInString(t) > maxFieldName {
			r := []rune(t)
			t = string(r[:maxFieldName]) + "…"
		}
		b.WriteString(t)
	}
	if b.Len() == 0 {
		return "body"
	}
	return b.String()
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

var timeType = reflect.TypeFor[time.Time]()

// jsonKind names the JSON a Go type is decoded from, for "must be …".
func jsonKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "a valid value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer (no fraction or exponent)"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct:
		if t == timeType {
			return "an RFC 3339 time"
		}
	}
	return "an object"
}
