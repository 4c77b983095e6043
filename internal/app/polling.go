package app

import "github.com/labstack/echo/v4"

// listMiddleware wraps the resource list routes (owned by the polling work).
func (a *App) listMiddleware() echo.MiddlewareFunc { return nil }

// mountPolling mounts the poll routes on the authenticated group.
func (a *App) mountPolling(v1 *echo.Group) {}
