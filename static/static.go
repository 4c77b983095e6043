// Package static holds the browser client and dashboards, embedded in the binary.
package static

import "embed"

// FS holds the files of this folder (index.html, clinicpulse.js, …).
//
//go:embed *.html *.js *.css vendor
var FS embed.FS
