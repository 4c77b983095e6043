package openapi_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/clinicpulse/clinicpulse/api/openapi"
	"github.com/getkin/kin-openapi/openapi3"
)

// TestDocumentValidates loads the document with kin-openapi's loader and
// validates it (OpenAPI 3.0.3: structure, references, schemas, patterns,
// examples and defaults against their schemas), as the apptest validator
// relies on.
func TestDocumentValidates(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.Source)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q, want 3.0.3", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableSchemaFormatValidation(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	// Every operation has an id, a summary and at least one response, and
	// the ids are unique (clients generated from the document need them).
	seen := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" || op.Summary == "" {
				t.Errorf("%s: operationId %q, summary %q", where, op.OperationID, op.Summary)
			}
			if prev, ok := seen[op.OperationID]; ok {
				t.Errorf("%s: operationId %q also on %s", where, op.OperationID, prev)
			}
			seen[op.OperationID] = where
			if op.Responses.Len() == 0 {
				t.Errorf("%s: no responses", where)
			}
		}
	}
}

// TestServedDocument checks that the bytes served are the document, compact.
func TestServedDocument(t *testing.T) {
	b, tag := openapi.Document()
	var a, want any
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(openapi.Source, &want); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(a)
	jw, _ := json.Marshal(want)
	if string(ja) != string(jw) {
		t.Error("the served document differs from openapi.json")
	}
	if len(b) >= len(openapi.Source) || len(tag) != 24 {
		t.Errorf("served %d bytes of %d, ETag %s", len(b), len(openapi.Source), tag)
	}
}
