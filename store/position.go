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
// stream answers a reset and a poll 410. One primary-key read.
func (s *Store) CheckPosition(ctx context.Context, tenantID string, p models.Position) error {
	if p.Tag == "" || p.Seq == 0 {
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
		return &models.Error{Code: models.EGONE, Cursor: &head, Message: fmt.Sprintf(
			"cursor %s belongs to another history of the log (was the database restored from a backup?); refetch the snapshot", p)}
	})
	return s.wrap(ctx, "check position", err)
}
