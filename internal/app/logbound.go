package app

import (
	"context"
	"fmt"
	"log/slog"
	"unicode/utf8"
)

// maxLogValue bounds each string a log line carries (message, attribute
// values, error texts), in bytes.
const maxLogValue = 512

// boundedHandler keeps every log line bounded whatever reaches it: strings
// longer than maxLogValue bytes (an error quoting input, a notification
// payload) are cut at a character boundary and marked with how much was
// left out. The request log already logs only fixed-set or bounded values;
// this is the net under every other log call (issue 10 item 1).
type boundedHandler struct{ h slog.Handler }

func boundLogger(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(boundedHandler); ok {
		return l
	}
	return slog.New(boundedHandler{l.Handler()})
}

func (b boundedHandler) Enabled(ctx context.Context, l slog.Level) bool { return b.h.Enabled(ctx, l) }

func (b boundedHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, boundString(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(boundAttr(a))
		return true
	})
	return b.h.Handle(ctx, out)
}

func (b boundedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	bs := make([]slog.Attr, len(as))
	for i, a := range as {
		bs[i] = boundAttr(a)
	}
	return boundedHandler{b.h.WithAttrs(bs)}
}

func (b boundedHandler) WithGroup(name string) slog.Handler {
	return boundedHandler{b.h.WithGroup(boundString(name))}
}

func boundAttr(a slog.Attr) slog.Attr {
	a.Key = boundString(a.Key)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(boundString(v.String()))
	case slog.KindGroup:
		g := v.Group()
		bs := make([]slog.Attr, len(g))
		for i, x := range g {
			bs[i] = boundAttr(x)
		}
		a.Value = slog.GroupValue(bs...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			a.Value = slog.StringValue(boundString(x.Error()))
		case fmt.Stringer:
			a.Value = slog.StringValue(boundString(x.String()))
		case []byte:
			a.Value = slog.StringValue(boundString(string(x)))
		default:
			a.Value = slog.StringValue(boundString(fmt.Sprint(x)))
		}
	default:
		a.Value = v
	}
	return a
}

func boundString(s string) string {
	if len(s) <= maxLogValue {
		return s
	}
	cut := maxLogValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d more bytes)", s[:cut], len(s)-cut)
}
