package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// DiscoveryURL returns the OpenID Provider Configuration URL of issuer
// (OpenID Connect Discovery 1.0 §4): the issuer without its trailing slash,
// then /.well-known/openid-configuration.
func DiscoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

// discover fetches issuer's configuration and returns its jwks_uri. The
// document's issuer must equal issuer exactly (§4.3: otherwise a document
// served elsewhere could name another provider's keys), and jwks_uri must
// pass CheckURL.
func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, DiscoveryURL(issuer), nil)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discovery: GET %s: status %d", DiscoveryURL(issuer), res.StatusCode)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		return "", fmt.Errorf("discovery: %s: %w", DiscoveryURL(issuer), err)
	}
	switch {
	case doc.Issuer != issuer:
		return "", fmt.Errorf("discovery: %s names the issuer %q, not JWT_ISSUER %q (they must be equal, OpenID Connect Discovery §4.3)",
			DiscoveryURL(issuer), short(doc.Issuer), issuer)
	case doc.JWKSURI == "":
		return "", errors.New("discovery: the configuration has no jwks_uri")
	}
	if err := CheckURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery: jwks_uri %q %w", short(doc.JWKSURI), err)
	}
	return doc.JWKSURI, nil
}

// short bounds a provider's value quoted in a log line.
func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
