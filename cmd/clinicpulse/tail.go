package main

import "errors"

// runTail follows a stream (owned by the sse work).
func runTail(args []string) error { return errors.New("not built yet") }
