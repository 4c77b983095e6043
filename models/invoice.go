package models

import (
	"strconv"
	"strings"

	"github.com/bojanz/currency"
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

// MaxAmount bounds a unit price, a line's amount and an invoice's total,
// in minor units: 2^53, so that every amount is exact in JavaScript clients.
const MaxAmount = 1 << 53

// MaxQuantity bounds a line's quantity.
const MaxQuantity = 1_000_000

// ValidCurrency reports whether code (upper case) is an ISO 4217 code in
// current use, per the CLDR data of github.com/bojanz/currency (CLDR 48.1 in
// v1.4.2; the package follows CLDR releases). golang.org/x/text/currency was
// considered and refused: its tables are CLDR 32 (2017), so ParseISO refuses
// VES, SLE and ZWG and accepts withdrawn codes (HRK, DEM), metals (XAU) and
// XTS/XXX. Withdrawn codes, metals and test codes are refused here.
func ValidCurrency(code string) bool {
	return code != "" && currency.IsValid(code)
}

// Validate checks the fields a client sets and computes the total. It names
// every invalid field at once: visit_id (or patient_id for an invoice
// without a visit), currency (an ISO 4217 code in use, see ValidCurrency),
// lines (one to 200), and per line lines[i].description, lines[i].quantity
// (1..MaxQuantity) and lines[i].unit_price (0..MaxAmount). Amounts are
// checked before they are multiplied or added: a line whose amount or whose
// running total would pass MaxAmount is named (lines[i].quantity), so no
// arithmetic overflows.
func (inv *Invoice) Validate() error {
	var v Validation
	switch {
	case inv.VisitID != nil:
		checkRef(&v, "visit_id", EntityVisit, *inv.VisitID, true)
		checkRef(&v, "patient_id", EntityPatient, inv.PatientID, false)
	case inv.PatientID == "":
		v.Add("visit_id", "is required (or patient_id, for an invoice without a visit)")
	default:
		checkRef(&v, "patient_id", EntityPatient, inv.PatientID, true)
	}
	inv.Currency = strings.ToUpper(inv.Currency)
	switch {
	case inv.Currency == "":
		v.Add("currency", "is required")
	case !ValidCurrency(inv.Currency):
		v.Add("currency", "must be an ISO 4217 currency code in use, such as EUR or USD")
	}
	switch {
	case len(inv.Lines) == 0:
		v.Add("lines", "needs at least one line")
	case len(inv.Lines) > maxItems:
		v.Add("lines", "has too many lines: at most "+strconv.Itoa(maxItems))
	}
	if inv.Lines == nil {
		inv.Lines = []InvoiceLine{}
	}
	var total int64
	overflow := false
	for i, l := range inv.Lines {
		f := "lines[" + strconv.Itoa(i) + "]."
		checkFreeText(&v, f+"description", l.Description, MaxTextLen, true)
		ok := true
		if l.Quantity <= 0 || l.Quantity > MaxQuantity {
			v.Add(f+"quantity", "must be an integer from 1 to "+strconv.Itoa(MaxQuantity))
			ok = false
		}
		if l.UnitPrice < 0 || l.UnitPrice > MaxAmount {
			v.Add(f+"unit_price", "must be an integer from 0 to 2^53 minor units")
			ok = false
		}
		if !ok || overflow {
			continue
		}
		// Checked: quantity ≤ 10^6 and unit_price ≤ 2^53, so the product
		// fits in int64 only when unit_price ≤ (MaxAmount-total)/quantity,
		// which is tested first.
		if l.UnitPrice > (MaxAmount-total)/l.Quantity {
			v.Add(f+"quantity", "makes the total exceed 2^53 minor units")
			overflow = true
			continue
		}
		total += l.Quantity * l.UnitPrice
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
