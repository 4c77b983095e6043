package app

// mountSSE mounts the stream routes (owned by the sse work).
func (a *App) mountSSE() {}
