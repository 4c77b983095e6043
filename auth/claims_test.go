package auth

import (
	"errors"
	"strings"
	"testing"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

func TestParseClaimPath(t *testing.T) {
	for _, bad := range []string{"", strings.Repeat("a", maxClaimPathBytes+1), "a b", "a\tb", "a\x00", "a\x7f", "\xff", strings.Repeat("a.", maxClaimPathParts) + "a"} {
		if _, err := ParseClaimPath(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"tenant_id", "app_metadata.role", "https://clinic.example/tenant_id", "custom:tenant", "a..b", "a.", strings.Repeat("a.", maxClaimPathParts-1) + "a", "rôle"} {
		p, err := ParseClaimPath(good)
		if err != nil || p.String() != good {
			t.Errorf("%q: %v", good, err)
		}
	}
}

// TestClaimPathLookup: a literal top-level name wins over the dotted path;
// the dotted path goes through objects only; the value must be a string.
func TestClaimPathLookup(t *testing.T) {
	const claims = `{
		"tenant_id": "native",
		"https://clinic.example/tenant_id": "namespaced",
		"https://clinic.example/role": 7,
		"app_metadata": {"role": "doctor", "tenant": {"id": "deep"}, "n": null, "list": ["admin"], "x.y": "dotted-inside"},
		"a.b": "literal",
		"a": {"b": "nested"},
		"s": "not-an-object",
		"custom:tenant": "cognito-style"
	}`
	var top map[string]jsontext.Value
	if err := json.Unmarshal([]byte(claims), &top); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
		err        error
	}{
		{"tenant_id", "native", nil},
		{"https://clinic.example/tenant_id", "namespaced", nil},
		{"https://clinic.example/role", "", errClaimNotString},
		{"app_metadata.role", "doctor", nil},
		{"app_metadata.tenant.id", "deep", nil},
		{"app_metadata.tenant", "", errClaimNotString},
		{"app_metadata.n", "", errClaimNotString},
		{"app_metadata.list", "", errClaimNotString},
		{"app_metadata.missing", "", errClaimMissing},
		{"app_metadata.x.y", "", errClaimMissing}, // a dotted name inside an object is not addressable
		{"a.b", "literal", nil},                   // the literal top-level name wins
		{"s.t", "", errClaimMissing},
		{"custom:tenant", "cognito-style", nil},
		{"nope", "", errClaimMissing},
		{"a..b", "", errClaimMissing},
	} {
		p, err := ParseClaimPath(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.lookup(top)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%s: %q %v, want %q %v", tc.path, got, err, tc.want, tc.err)
		}
	}
}

// FuzzClaimPath: any operator path over any verified claims set finds a
// string or says why not, without a panic; the literal top-level name
// always wins.
func FuzzClaimPath(f *testing.F) {
	for _, s := range [][2]string{
		{"app_metadata.role", `{"app_metadata":{"role":"doctor"}}`},
		{"a.b", `{"a.b":"x","a":{"b":"y"}}`},
		{"https://x.example/t", `{"https://x.example/t":"t1"}`},
		{"a.b.c", `{"a":{"b":[1,{"c":"d"}]}}`},
		{"a", `{"a":"\ud800"}`},
		{"a.b", `{"a":{"b":"x","b":"y"}}`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, path, claims string) {
		p, err := ParseClaimPath(path)
		if err != nil {
			return
		}
		m := &claimMapping{tenant: p, role: p}
		got := m.resolve([]byte(claims))
		if (got.tenantErr == nil) != (got.roleErr == nil) || got.tenant != got.role {
			t.Fatalf("the same path read twice differs: %+v", got)
		}
		var top map[string]any
		if json.Unmarshal([]byte(claims), &top) == nil {
			if s, ok := top[path].(string); ok && (got.tenantErr != nil || got.tenant != s) {
				t.Fatalf("%q over %q: %+v, want the literal %q", path, claims, got, s)
			}
		}
	})
}
