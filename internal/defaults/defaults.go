// Package defaults fills a configuration's unset fields.
package defaults

// Set sets *v to def when *v is zero or negative (unset or invalid): the
// rule of every numeric and duration field of ClinicPulse's configs.
func Set[T ~int | ~int64 | ~float64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
