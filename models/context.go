package models

import "context"

// Role is what a token lets its bearer do.
type Role string

// The roles of the contract.
const (
	RoleAdmin       Role = "admin"
	RoleCoordinator Role = "coordinator"
	RoleDoctor      Role = "doctor"
	RolePatient     Role = "patient"
	RoleDisplay     Role = "display"
	RolePlatform    Role = "platform"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleCoordinator, RoleDoctor, RolePatient, RoleDisplay, RolePlatform:
		return true
	}
	return false
}

// Staff reports whether r sees and writes everything in its tenant.
func (r Role) Staff() bool {
	return r == RoleAdmin || r == RoleCoordinator || r == RoleDoctor || r == RolePlatform
}

// Actor is the verified caller of a request: who, in which tenant, as what.
type Actor struct {
	Subject  string
	TenantID string
	Role     Role
}

// Scope is what part of a tenant's data an actor may see.
type Scope struct {
	// PatientID, when set, limits records and events to that patient's own
	// (plus the anonymous board).
	PatientID string
	// BoardOnly limits events to the anonymous queue board.
	BoardOnly bool
}

// Scope returns the visibility scope of the actor's role.
func (a Actor) Scope() Scope {
	switch a.Role {
	case RolePatient:
		return Scope{PatientID: a.Subject}
	case RoleDisplay:
		return Scope{BoardOnly: true}
	}
	return Scope{}
}

// Key returns a compact string naming the scope, for cache keys and ETags.
func (s Scope) Key() string {
	switch {
	case s.BoardOnly:
		return "board"
	case s.PatientID != "":
		return "patient:" + s.PatientID
	}
	return "staff"
}

type actorKey struct{}

// NewContextWithActor returns a context carrying the verified actor.
func NewContextWithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFromContext returns the actor of ctx, and false when there is none.
func ActorFromContext(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return a, ok
}

// IdempotencyKey is a write's Idempotency-Key, as the caller sent it, and a
// hash of the request it came with. The store scopes the key to the
// caller's tenant and subject (the actor of the same context) itself.
type IdempotencyKey struct {
	Key  string
	Hash string
}

type idemKey struct{}

// NewContextWithIdempotencyKey attaches an idempotency key to ctx: the write
// that runs under ctx records its result under that key, in its transaction.
func NewContextWithIdempotencyKey(ctx context.Context, k IdempotencyKey) context.Context {
	return context.WithValue(ctx, idemKey{}, k)
}

// IdempotencyKeyFromContext returns the key attached to ctx, if any.
func IdempotencyKeyFromContext(ctx context.Context) (IdempotencyKey, bool) {
	k, ok := ctx.Value(idemKey{}).(IdempotencyKey)
	return k, ok
}
