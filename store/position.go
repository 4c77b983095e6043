package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/clinicpulse/clinicpulse/models"
	"gorm.io/gorm"
)

// CheckPosition verifies that a client's tagged cursor belongs to this
// history of the tenant's log: the event at p.Seq must still have tag p.Tag.
// A plain integer cursor (no tag) and the zero position pass unchecked; a
// cursor older than retention or ahead of the head, or whose tag names an
// event this log never had (the database was restored from a backup, or the
// cursor came from another deployment), is EGONE carrying the head, so the
// stream answers a reset and a poll 410. One primary-key read when the
// cursor is good (an event's row exists only within retention and up to the
// head); a refusal reads the head too, for the error.
func (s *Store) CheckPosition(ctx context.Context, tenantID string, p models.Position) error {
	if p.Tag == "" || p.Seq == 0 {
		return nil
	}
	if at, err := positionAt(s.db.WithContext(ctx), tenantID, p.Seq); err != nil {
		return s.wrap(ctx, "check position", err)
	} else if at == p {
		return nil
	}
	err := s.read(ctx, func(tx *gorm.DB) error {
		h, err := headOf(tx, tenantID)
		if err != nil {
			return err
		}
		if p.Seq <= h.PrunedThrough || p.Seq > h.Seq {
			return cursorExpired(p.Seq, h)
		}
		var row eventRow
		err = tx.Where("tenant_id = ? AND seq = ?", tenantID, p.Seq).Take(&row).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("read event at cursor: %w", err)
		}
		if err == nil {
			e := row.event()
			if models.EventTag(&e) == p.Tag {
				return nil
			}
		}
		head := h.Seq
		return otherHistory{&models.Error{Code: models.EGONE, Cursor: &head, Message: fmt.Sprintf(
			"cursor %s belongs to another history of the log (was the database restored from a backup?); refetch the snapshot", p)}}
	})
	return s.wrap(ctx, "check position", err)
}

// ErrOtherHistory is what CheckPosition's error wraps (errors.Is) when the
// cursor's tag does not match the event at its seq, as against a cursor
// older than retention or ahead of the head.
var ErrOtherHistory = errors.New("cursor belongs to another history of the log")

// otherHistory is the EGONE *models.Error of a cursor from another history
// of the log; errors.As finds the *models.Error, errors.Is ErrOtherHistory.
type otherHistory struct{ err *models.Error }

func (e otherHistory) Error() string        { return e.err.Error() }
func (e otherHistory) Unwrap() error        { return e.err }
func (e otherHistory) Is(target error) bool { return target == ErrOtherHistory }

// PositionAt returns the position at seq in the tenant's log, tagged with
// the event at seq, or untagged when that event is not in the log (pruned,
// or seq 0). One primary-key read.
func (s *Store) PositionAt(ctx context.Context, tenantID string, seq int64) (models.Position, error) {
	p, err := positionAt(s.db.WithContext(ctx), tenantID, seq)
	return p, s.wrap(ctx, "position at", err)
}

func positionAt(tx *gorm.DB, tenantID string, seq int64) (models.Position, error) {
	p := models.Position{Seq: seq}
	if seq <= 0 {
		return p, nil
	}
	var rows []eventRow
	if err := tx.Where("tenant_id = ? AND seq = ?", tenantID, seq).Limit(1).Find(&rows).Error; err != nil {
		return p, fmt.Errorf("read event %d: %w", seq, err)
	}
	if len(rows) == 1 {
		e := rows[0].event()
		p.Tag = models.EventTag(&e)
	}
	return p, nil
}
