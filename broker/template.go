package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// destTemplate is a destination with parameters, "orders.{region}.created":
// tokens separated by "." of which some are a whole "{name}". A subscription
// to it listens to its pattern, "orders.*.created"; a publisher to it fills
// each parameter per message.
type destTemplate struct {
	raw     string
	pattern string
	tokens  []string // the tokens of raw
	params  []int    // the indexes in tokens of the parameters
}

// parseTemplate returns the template of dest, or nil when dest has no
// braces. A brace that does not make a whole "{name}" token, an empty or
// repeated name, or a name with a character that is not a letter, a digit,
// "_" or "-" is an error matching ErrInvalid.
func parseTemplate(dest string) (*destTemplate, error) {
	if !strings.ContainsAny(dest, "{}") {
		return nil, nil
	}
	t := &destTemplate{raw: dest, tokens: strings.Split(dest, ".")}
	pattern := slices.Clone(t.tokens)
	for i, tok := range t.tokens {
		if !strings.ContainsAny(tok, "{}") {
			continue
		}
		if len(tok) < 2 || tok[0] != '{' || tok[len(tok)-1] != '}' {
			return nil, fmt.Errorf("tracebus: destination %q: %q: a parameter must be a whole token, {name}: %w", dest, tok, ErrInvalid)
		}
		name := tok[1 : len(tok)-1]
		if name == "" {
			return nil, fmt.Errorf("tracebus: destination %q: a parameter without a name: %w", dest, ErrInvalid)
		}
		if strings.IndexFunc(name, notNameRune) >= 0 {
			return nil, fmt.Errorf("tracebus: destination %q: parameter name %q: only letters, digits, '_' and '-': %w", dest, name, ErrInvalid)
		}
		if t.index(name) >= 0 {
			return nil, fmt.Errorf("tracebus: destination %q: parameter %q appears twice: %w", dest, name, ErrInvalid)
		}
		t.params = append(t.params, i)
		pattern[i] = "*"
	}
	t.pattern = strings.Join(pattern, ".")
	return t, nil
}

func notNameRune(r rune) bool {
	return r != '_' && r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r)
}

// index returns the token index of parameter name, or -1.
func (t *destTemplate) index(name string) int {
	for _, i := range t.params {
		if t.tokens[i][1:len(t.tokens[i])-1] == name {
			return i
		}
	}
	return -1
}

// fill returns the destination with every parameter replaced by value(name).
// An empty value (none given), or one that would change which subject the result is
// (".", "*", ">", white space or a control character), is an error
// matching ErrInvalid: never a publish to another destination.
func (t *destTemplate) fill(value func(name string) string) (string, error) {
	var b strings.Builder
	b.Grow(len(t.raw) + 8)
	p := 0
	for i, tok := range t.tokens {
		if i > 0 {
			b.WriteByte('.')
		}
		if p >= len(t.params) || t.params[p] != i {
			b.WriteString(tok)
			continue
		}
		p++
		name := tok[1 : len(tok)-1]
		v := value(name)
		if v == "" {
			return "", fmt.Errorf("tracebus: destination %q: parameter %q has no value: ParamFunc gives none, nor does the ctx (a handler of a subscription with {%s}): %w", t.raw, name, name, ErrInvalid)
		}
		if strings.IndexFunc(v, badValueRune) >= 0 {
			return "", fmt.Errorf("tracebus: destination %q: parameter %q = %q: a value must not hold '.', '*', '>', spaces or control characters: %w", t.raw, name, v, ErrInvalid)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func badValueRune(r rune) bool {
	return r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
}

// value returns the token of dest at parameter name's position, or "" when
// dest has no such token.
func (t *destTemplate) value(dest, name string) string {
	i := t.index(name)
	if i < 0 {
		return ""
	}
	for ; i > 0; i-- {
		dot := strings.IndexByte(dest, '.')
		if dot < 0 {
			return ""
		}
		dest = dest[dot+1:]
	}
	if dot := strings.IndexByte(dest, '.'); dot >= 0 {
		dest = dest[:dot]
	}
	return dest
}

// paramsKey is the context key of the paramSource of a delivery to a
// subscription with a template.
type paramsKey struct{}

type paramSource struct {
	t    *destTemplate
	msgs []*Message
}

// Param returns the value of the subject parameter name in the destination
// of the message being handled, for a subscription to a template such as
// "orders.{region}.created": a message to "orders.eu.created" gives
// Param(ctx, "region") == "eu". In a batch handler it is the value every
// message of the batch has, or "" when they differ (read each message's
// Destination then). It is "" outside a handler and for a name the
// subscription's template does not have.
func Param(ctx context.Context, name string) string {
	src, ok := ctx.Value(paramsKey{}).(paramSource)
	if !ok || len(src.msgs) == 0 {
		return ""
	}
	v := src.t.value(src.msgs[0].Destination, name)
	for _, m := range src.msgs[1:] {
		if src.t.value(m.Destination, name) != v {
			return ""
		}
	}
	return v
}
