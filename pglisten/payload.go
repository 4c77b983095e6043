package pglisten

import (
	"errors"
	"strconv"
	"strings"
)

// maxTenantLen is the longest tenant id (auth.ValidTenantID).
const maxTenantLen = 64

// ParsePayload parses a change-log notification, "<tenant> <head>", as the
// store sends it: a tenant id of the grammar auth.ValidTenantID accepts
// ([A-Za-z0-9][A-Za-z0-9_.-]{0,63}), one space, and a positive head seq in
// decimal without sign or leading zero. Anything else is an error: a payload
// is never guessed at.
func ParsePayload(p string) (tenant string, head int64, err error) {
	tenant, num, ok := strings.Cut(p, " ")
	if !ok {
		return "", 0, errors.New("payload: want \"<tenant> <head>\"")
	}
	if !validTenant(tenant) {
		return "", 0, errors.New("payload: malformed tenant id")
	}
	if num == "" || len(num) > 19 || num[0] == '0' {
		return "", 0, errors.New("payload: malformed head")
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return "", 0, errors.New("payload: malformed head")
		}
	}
	head, err = strconv.ParseInt(num, 10, 64)
	if err != nil {
		return "", 0, errors.New("payload: head out of range")
	}
	return tenant, head, nil
}

func validTenant(s string) bool {
	if s == "" || len(s) > maxTenantLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}
