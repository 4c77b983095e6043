package models

import (
	"math"
	"strconv"
	"strings"
)

// InvoiceStatus is where an invoice stands.
type InvoiceStatus string

// Invoice statuses.
const (
	InvoiceDraft  InvoiceStatus = "draft"
	InvoiceIssued InvoiceStatus = "issued"
	InvoicePaid   InvoiceStatus = "paid"
	InvoiceVoid   InvoiceStatus = "void"
)

var invoiceMoves = transitions[InvoiceStatus]{
	InvoiceDraft:  {InvoiceIssued, InvoiceVoid},
	InvoiceIssued: {InvoicePaid, InvoiceVoid},
	InvoicePaid:   {},
	InvoiceVoid:   {},
}

// InvoiceLine is one charge, in integer minor units.
type InvoiceLine struct {
	Description string `json:"description"`
	Quantity    int64  `json:"quantity"`
	UnitPrice   int64  `json:"unit_price"`
}

// Invoice bills a patient, usually for a visit. Its total is computed here.
type Invoice struct {
	Meta
	VisitID   *string       `json:"visit_id"`
	PatientID string        `json:"patient_id" gorm:"not null"`
	Currency  string        `json:"currency" gorm:"not null"`
	Lines     []InvoiceLine `json:"lines" gorm:"serializer:json;not null"`
	Total     int64         `json:"total" gorm:"not null"`
	Status    InvoiceStatus `json:"status" gorm:"not null"`
}

func (*Invoice) Entity() string    { return EntityInvoice }
func (i *Invoice) Patient() string { return i.PatientID }

// maxAmount keeps totals exact in JavaScript clients (2^53).
const maxAmount = 1 << 53

// Validate checks the fields a client sets and computes the total.
func (inv *Invoice) Validate() error {
	var v Validation
	if inv.VisitID != nil {
		checkRef(&v, "visit_id", EntityVisit, *inv.VisitID, true)
	}
	checkRef(&v, "patient_id", EntityPatient, inv.PatientID, inv.VisitID == nil)
	inv.Currency = strings.ToUpper(inv.Currency)
	if len(inv.Currency) != 3 || strings.Trim(inv.Currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		v.Add("currency", "must be a three-letter ISO 4217 code")
	}
	if len(inv.Lines) > maxItems {
		v.Add("lines", "has too many lines")
	}
	if inv.Lines == nil {
		inv.Lines = []InvoiceLine{}
	}
	var total int64
	for i, l := range inv.Lines {
		f := "lines[" + strconv.Itoa(i) + "]."
		checkFreeText(&v, f+"description", l.Description, MaxTextLen, true)
		switch {
		case l.Quantity <= 0 || l.Quantity > 1_000_000:
			v.Add(f+"quantity", "must be between 1 and 1000000")
		case l.UnitPrice < 0 || l.UnitPrice > maxAmount:
			v.Add(f+"unit_price", "must be between 0 and 2^53")
		case l.UnitPrice > 0 && l.Quantity > (math.MaxInt64-total)/l.UnitPrice:
			v.Add(f+"quantity", "makes the total overflow")
		default:
			total += l.Quantity * l.UnitPrice
		}
	}
	if total > maxAmount {
		v.Add("lines", "total exceeds 2^53 minor units")
	}
	inv.Total = total
	return v.Err()
}

// Transition moves the invoice to status to.
func (inv *Invoice) Transition(to InvoiceStatus) error {
	if !invoiceMoves.known(to) {
		return Invalid("status", "unknown invoice status")
	}
	if !invoiceMoves.allowed(inv.Status, to) {
		return transitionError("invoice", inv.Status, to)
	}
	if to == InvoiceIssued && len(inv.Lines) == 0 {
		return Errorf(ECONFLICT, "an invoice without lines cannot be issued")
	}
	inv.Status = to
	return nil
}

// InvoiceUpdate is a partial update of an invoice.
type InvoiceUpdate struct {
	Currency *string        `json:"currency"`
	Lines    *[]InvoiceLine `json:"lines"`
	Status   *InvoiceStatus `json:"status"`
}

// Apply applies the update to inv.
func (u *InvoiceUpdate) Apply(inv *Invoice) error {
	if (u.Lines != nil || u.Currency != nil) && inv.Status != InvoiceDraft {
		return Errorf(ECONFLICT, "only a draft invoice can change its lines or currency")
	}
	set(&inv.Currency, u.Currency)
	if u.Lines != nil {
		inv.Lines = *u.Lines
	}
	if err := inv.Validate(); err != nil {
		return err
	}
	if u.Status != nil && *u.Status != inv.Status {
		return inv.Transition(*u.Status)
	}
	return nil
}
