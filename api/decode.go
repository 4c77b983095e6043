package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/clinicpulse/clinicpulse/models"
)

// MaxBody is the largest request body accepted.
const MaxBody = 1 << 20

// ReadBody reads a request body of at most MaxBody bytes.
func ReadBody(r *http.Request) ([]byte, error) {
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

// Decode parses a JSON object strictly into v: unknown fields, wrong types,
// trailing data and anything but one object are EINVALID naming the field.
func Decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return models.Errorf(models.EINVALID, "the request body must be a JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return models.Errorf(models.EINVALID, "the request body must hold exactly one JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tim *time.ParseError
	switch {
	case errors.As(err, &syn):
		return models.Errorf(models.EINVALID, "malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return models.Errorf(models.EINVALID, "the request body must be a JSON object")
		}
		return models.Invalid(field, fmt.Sprintf("must be %s", jsonKind(typ.Type.String())))
	case errors.As(err, &tim):
		return models.Invalid(timeField(err), "must be an RFC 3339 time")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return models.Errorf(models.EINVALID, "malformed JSON: unexpected end of input")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return models.Invalid(name, "is not a known field")
	}
	return models.Errorf(models.EINVALID, "malformed JSON")
}

// timeField recovers the field name of a time parse error when encoding/json
// reports it ("parsing time ... as ...": no field), falling back to "body".
func timeField(err error) string {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		return typ.Field
	}
	return "body"
}

func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "string"), strings.Contains(goType, "Status"), strings.Contains(goType, "Priority"):
		return "a string"
	case strings.Contains(goType, "Time"):
		return "an RFC 3339 time"
	case strings.HasPrefix(goType, "[]"), strings.HasPrefix(goType, "*[]"):
		return "an array"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	}
	return "an object"
}
